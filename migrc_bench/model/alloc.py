"""Page allocation and freeing: zonelist fallback, watermarks, and the engines' hooks into both.

get_page_from_freelist takes the first node of the zonelist that passes its watermark
(migrc's held pages count as free there) and has a page to give (K§5.2); a node that fails
its watermark lets the engine act first (migrc v6 6/7: flush held pages, check again).
__alloc_pages_slowpath retries at the min watermark (after waking kswapd when the caller
may), then -- migrc v6 7/7 -- pauses migrc and flushes what it holds, before the
``can_direct_reclaim`` check: an allocation that may not reclaim (a migration target) fails
there, a user allocation reclaims directly and tries again. Engines see every page that
leaves or enters the free lists (LUF flushes when a tagged page is reused).
"""

from __future__ import annotations

from .counters import C
from .memory import F_FREE, F_USED


class Allocator:
    def __init__(self, replay):
        self.r = replay
        self.m = replay.machine

    @property
    def engine(self):
        return self.r.engine

    def get_page_from_freelist(self, cpu: int, nids: list[int], mark: str) -> int | None:
        m = self.m
        for nid in nids:
            node = m.nodes[nid]
            wmark = getattr(node.wmark, mark)
            if not node.watermark_ok(wmark):
                retry = self.engine is not None and self.engine.on_watermark_fail(cpu, node)
                if not (retry and node.watermark_ok(wmark)):
                    continue
            if node.nr_free:  # rmqueue: the watermark may pass on held pages alone
                return self.take(cpu, node)
        return None

    def take(self, cpu: int, node) -> int:
        """Remove one frame from a node's free list (LUF pays its deferred flush here)."""
        frame = node.free.pop_one()
        if self.engine is not None:
            self.engine.on_frame_taken(cpu, frame)
        if self.r.checker is not None:
            self.r.checker.on_alloc(cpu, frame)
        self.m.frame_state[frame] = F_USED
        return frame

    def alloc_pages(self, cpu: int, nids: list[int], can_reclaim: bool, wake_kswapd: bool) -> int | None:
        """__alloc_pages: the fast path at the low watermark, then __alloc_pages_slowpath."""
        frame = self.get_page_from_freelist(cpu, nids, "low")
        if frame is not None:
            return frame
        if wake_kswapd and self.r.tiering is not None:  # wake_all_kswapds
            for nid in nids:
                self.r.tiering.wake_kswapd(nid, cpu)
        frame = self.get_page_from_freelist(cpu, nids, "min")
        if frame is not None:
            return frame
        # migrc v6 7/7: pause migrc (and flush what it holds) until the slow path returns
        if self.engine is not None:
            self.engine.pause_begin(cpu)
        try:
            if not can_reclaim:
                return None  # goto nopage
            if self.r.tiering is not None:
                self.r.tiering.direct_reclaim(cpu)
            frame = self.get_page_from_freelist(cpu, nids, "min")
            if frame is None:  # the retries and reserves that follow: any free page
                node = next((nd for nd in (self.m.nodes[n] for n in nids) if nd.nr_free), None)
                frame = self.take(cpu, node) if node is not None else None
            return frame
        finally:
            if self.engine is not None:
                self.engine.pause_end(cpu)

    def alloc_user(self, cpu: int, preferred: int = 0) -> int:
        """A user page (first touch): the local node, then the rest of the zonelist."""
        m = self.m
        order = [preferred] + [n.nid for n in m.nodes if n.nid != preferred]
        frame = self.alloc_pages(cpu, order, can_reclaim=True, wake_kswapd=True)
        if frame is None:
            from ..errors import ConfigError

            raise ConfigError("out of memory: every node is full; give more 'memory.dram' or "
                              "'memory.cxl'")
        return self._count(cpu, frame, preferred)

    def _count(self, cpu: int, frame: int, preferred: int) -> int:
        nid = int(self.m.frame_node[frame])
        self.m.counters[cpu, C["numa_hit" if nid == preferred else "numa_miss"]] += 1
        return frame

    def alloc_migration_target(self, cpu: int, nid: int, wake_kswapd: bool) -> int | None:
        """__GFP_THISNODE without reclaim (migration targets): this node or nothing."""
        return self.alloc_pages(cpu, [nid], can_reclaim=False, wake_kswapd=wake_kswapd)

    def free(self, frame: int, tail: bool = False) -> None:
        """Back to the buddy lists: the head (hot, via pcp) or the tail (FPI_TO_TAIL)."""
        m = self.m
        m.frame_state[frame] = F_FREE
        m.frame_pid[frame] = -1
        node = m.nodes[int(m.frame_node[frame])]
        if tail:
            node.free.push_tail(frame)
        else:
            node.free.push_head(frame)
