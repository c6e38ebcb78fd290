"""Page allocation and freeing: zonelist fallback, watermarks, and the engines' hooks into both.

get_page_from_freelist takes the first node of the zonelist that stays above the low
watermark (K§5.2). The slow path wakes kswapd, retries at the min watermark, lets migrc
flush its held pages (the pause before direct reclaim, K§3.2 patch 7), then reclaims
directly. Engines see every watermark failure and every page that leaves or enters the
free lists (migrc counts held pages as free; LUF flushes when a tagged page is reused).
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

    def _zone_ok(self, cpu: int, node, mark: int) -> bool:
        """The watermark check with migrc's retry: a failing zone with held pages flushes them."""
        if node.nr_free and node.watermark_ok(mark):
            return True
        if self.engine is not None and self.engine.on_watermark_fail(cpu, node):
            return node.nr_free > 0 and node.watermark_ok(mark)
        return False

    def take(self, cpu: int, node) -> int:
        """Remove one frame from a node's free list (LUF pays its deferred flush here)."""
        frame = node.free.pop_one()
        if self.engine is not None:
            self.engine.on_frame_taken(cpu, frame)
        if self.r.checker is not None:
            self.r.checker.on_alloc(cpu, frame)
        self.m.frame_state[frame] = F_USED
        return frame

    def alloc_user(self, cpu: int, preferred: int = 0) -> int:
        """A user page (first touch): fast path at low, slow path at min, then reclaim."""
        m = self.m
        order = [preferred] + [n.nid for n in m.nodes if n.nid != preferred]
        for nid in order:
            node = m.nodes[nid]
            if self._zone_ok(cpu, node, node.wmark.low):
                return self._count(cpu, self.take(cpu, node), preferred)
        # __alloc_pages_slowpath: wake kswapd on every node of the zonelist, retry at min
        if self.r.tiering is not None:
            self.r.tiering.wake_kswapd(0, cpu)
        for nid in order:
            node = m.nodes[nid]
            if self._zone_ok(cpu, node, node.wmark.min):
                return self._count(cpu, self.take(cpu, node), preferred)
        # just before direct reclaim: migrc pauses (and releases what it holds) until we return
        if self.engine is not None:
            self.engine.pause_begin(cpu)
        try:
            for nid in order:
                node = m.nodes[nid]
                if self._zone_ok(cpu, node, node.wmark.min):
                    return self._count(cpu, self.take(cpu, node), preferred)
            if self.r.tiering is not None:
                self.r.tiering.direct_reclaim(cpu)
            for nid in order:
                node = m.nodes[nid]
                if node.nr_free:
                    return self._count(cpu, self.take(cpu, node), preferred)
        finally:
            if self.engine is not None:
                self.engine.pause_end(cpu)
        from ..errors import ConfigError

        raise ConfigError("out of memory: every node is full; give more 'memory.dram' or 'memory.cxl'")

    def _count(self, cpu: int, frame: int, preferred: int) -> int:
        nid = int(self.m.frame_node[frame])
        self.m.counters[cpu, C["numa_hit" if nid == preferred else "numa_miss"]] += 1
        return frame

    def alloc_on_node(self, cpu: int, nid: int, mark: str) -> int | None:
        """__GFP_THISNODE without reclaim (migration targets): this node or nothing."""
        node = self.m.nodes[nid]
        if self._zone_ok(cpu, node, getattr(node.wmark, mark)):
            return self.take(cpu, node)
        return None

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
