"""A deliberately unsafe migrc for tests only: it also defers writable or dirty folios.

A writable source keeps stale writable translations on other CPUs after the destination
is mapped writable: stores on either side diverge. It exists so a test can prove that
``--check-invariants`` catches a real bug; never use it for measurements.
"""

from __future__ import annotations

from ..model import kernel as K
from .base import Unmapped
from .migrc import Migrc


class MigrcUnsafe(Migrc):
    name = "migrc-unsafe"

    def may_defer(self, u: Unmapped) -> bool:
        return u.accessible

    def add_pending(self, initiator: int, u: Unmapped, pte_flags: int) -> None:
        super().add_pending(initiator, u, pte_flags & ~(K.PTE_WRITE | K.PTE_DIRTY))
