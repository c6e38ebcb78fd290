"""Machine state (model.md §3) as numpy arrays shared by the compiled loop and the Python paths."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..config import Config, resolve_capacity
from ..errors import ConfigError
from ..trace.native import Region, TraceMeta
from ..trace.pageset import FETCH
from ..trace.prepass import TraceProfile, footprint_bytes
from . import kernel as K
from .counters import N_COUNTERS, N_TIMES
from .memory import F_FREE, F_KERNEL, F_USED, PAGE_SIZE, Node, min_free_kbytes, set_watermarks
from .pagemap import PageMap
from .presets import COST_PRESETS, TLB_PRESETS, TlbGeometry

KERNEL_TEXT_VPN = 0xFFFFFFFF81000  # vpn of 0xffffffff81000000, x86-64 kernel text base

# Pages are keyed by (mm, vpn): key = mm << MM_SHIFT | vpn, so mm 0 (a one-process trace)
# keys its pages by the vpn itself. A user vpn is below 2^35 (47-bit user space; the trace's
# addresses are checked below 2^57 = 2^(MM_SHIFT + 12)), and kernel text keys have bit 51 set,
# which no user mm (at most MAX_MMS) reaches: entries of different mms never alias, as PCIDs
# keep them apart in the hardware.
MM_SHIFT = 45
VPN_OF_KEY = (1 << MM_SHIFT) - 1
MAX_MMS = 64
TLB_NR_DYN_ASIDS = 6  # arch/x86/include/asm/tlbflush.h: per-CPU ASID slots (PCIDs)


def tlb_geometry(cfg: Config) -> TlbGeometry:
    base = TLB_PRESETS[cfg.machine.preset]
    t = cfg.tlb
    geo = dataclasses.replace(
        base, itlb_entries=t.itlb_entries or base.itlb_entries,
        itlb_ways=t.itlb_ways or base.itlb_ways, dtlb_entries=t.dtlb_entries or base.dtlb_entries,
        dtlb_ways=t.dtlb_ways or base.dtlb_ways, stlb_entries=t.stlb_entries or base.stlb_entries,
        stlb_ways=t.stlb_ways or base.stlb_ways,
        itlb2m_entries=t.itlb2m_entries or base.itlb2m_entries,
        itlb2m_ways=t.itlb2m_ways or base.itlb2m_ways,
        dtlb2m_entries=t.dtlb2m_entries or base.dtlb2m_entries,
        dtlb2m_ways=t.dtlb2m_ways or base.dtlb2m_ways)
    for level in ("itlb", "dtlb", "stlb", "itlb2m", "dtlb2m"):
        entries, ways = getattr(geo, f"{level}_entries"), getattr(geo, f"{level}_ways")
        sets = entries // ways
        if entries % ways or sets & (sets - 1):
            raise ConfigError(f"config key 'tlb.{level}_entries': {entries} entries with {ways} ways "
                              f"must give a power-of-two number of sets")
    return geo


@dataclass(frozen=True)
class Costs:
    """Every cost figure in ns (bandwidths in bytes/s), from the preset with overrides applied."""

    cpi: float
    stlb_hit_cycles: float
    walk_ns: float
    nested_walk_factor: float
    cache_miss_rate: float
    dram_latency: float
    cxl_latency: float
    ipi_send: float
    ipi_wait: float
    ipi_receive: float
    vmexit: float
    invlpgb: float
    tlbsync: float
    rar_request: float
    rar_wait: float
    flush_full: float
    flush_one: float
    fault: float
    major_fault: float
    migrate_page: float
    pte_update: float
    lru_scan: float
    copy_bandwidth_dram: float
    copy_bandwidth_cxl: float
    cpu_freq_hz: float

    @classmethod
    def from_config(cls, cfg: Config) -> "Costs":
        values = dict(COST_PRESETS[cfg.cost.preset])
        for name in values:
            override = getattr(cfg.cost, name)
            if override is not None:
                values[name] = float(override)
        return cls(cpu_freq_hz=cfg.machine.cpu_freq, **values)

    def vector(self) -> np.ndarray:
        """The compact cost vector the compiled loop reads (indices K_* in kernel.py)."""
        ns_per_cycle = 1e9 / self.cpu_freq_hz
        v = np.zeros(K.N_COST, np.float64)
        v[K.K_CPI_NS] = self.cpi * ns_per_cycle
        v[K.K_STLB_HIT_NS] = self.stlb_hit_cycles * ns_per_cycle
        v[K.K_WALK_NS] = self.walk_ns * self.nested_walk_factor
        v[K.K_MISS_RATE] = self.cache_miss_rate
        v[K.K_WALK_PMD_NS] = self.walk_ns * PMD_WALK_SHARE * self.nested_walk_factor
        return v

    def copy_ns(self, node: Node, pages: int = 1) -> float:
        return pages * PAGE_SIZE / node.copy_bw * 1e9


# A walk that ends at a huge PMD reads 3 of the 4 levels' entries (PML4E, PDPTE, PDE with PS=1;
# SDM Vol. 3 ch. 4): its cost is taken as 3/4 of a 4 KiB walk's (natively and under EPT alike).
PMD_WALK_SHARE = 3 / 4
HPAGE_PMD_NR = 512
THP_REGION_KINDS = ("heap", "anon", "stack")  # anonymous VMAs (file THP is not modelled)


def thp_eligible(r: Region, mode: str) -> bool:
    """hugepage_vma_check for an anonymous VMA: thp=always, or madvise with VM_HUGEPAGE."""
    if mode == "never" or r.kind not in THP_REGION_KINDS or r.file is not None:
        return False
    return mode == "always" or r.hugepage


class Machine:
    """CPUs with TLBs, one mm's page table, frames on nodes, and the counters."""

    def __init__(self, cfg: Config, meta: TraceMeta, ncpu: int | None = None,
                 profile: TraceProfile | None = None):
        """``profile``: the trace's pre-pass (page set), when the run needs it (see
        ``needs_profile``): footprint and VMAs without regions, the steady-state start."""
        self.cfg = cfg
        self.meta = meta
        self.profile = profile
        self.ncpu = ncpu or cfg.machine.ncpu
        self.geometry = tlb_geometry(cfg)
        self.costs = Costs.from_config(cfg)
        self.cost_vec = self.costs.vector()
        g = self.geometry
        # One row per CPU holds iTLB, dTLB and STLB slots; geo says where each level starts.
        slots = g.itlb_entries + g.dtlb_entries + g.stlb_entries
        # the 2 MiB L1 arrays (kernel.G_ITLB2, G_DTLB2) get slots only when THP is on: a
        # 4 KiB-only run keeps its TLB rows (and full flushes) as short as before
        self.thp = cfg.memory.thp != "never"
        i2 = (g.itlb2m_entries, g.itlb2m_ways) if self.thp else (0, 1)
        d2 = (g.dtlb2m_entries, g.dtlb2m_ways) if self.thp else (0, 1)
        self.tlb_geo = np.array([0, g.itlb_entries // g.itlb_ways, g.itlb_ways,
                                 g.itlb_entries, g.dtlb_entries // g.dtlb_ways, g.dtlb_ways,
                                 g.itlb_entries + g.dtlb_entries, g.stlb_entries // g.stlb_ways,
                                 g.stlb_ways,
                                 slots, max(1, i2[0] // i2[1]), i2[0] and i2[1],
                                 slots + i2[0], max(1, d2[0] // d2[1]), d2[0] and d2[1]],
                                np.int64)
        slots += i2[0] + d2[0]
        self.tlb_tag = np.full((self.ncpu, slots), -1, np.int32)  # page id, -1 empty
        self.tlb_pfn = np.zeros((self.ncpu, slots), np.int32)
        self.tlb_wr = np.zeros((self.ncpu, slots), np.uint8)
        self.tlb_lru = np.zeros((self.ncpu, slots), np.int64)
        # the compiled loop's same-page filter: per CPU the slot of its last iTLB and dTLB use
        self.tlb_last = np.full((self.ncpu, 2), -1, np.int64)
        self.stamps = np.zeros(self.ncpu, np.int64)
        self.counters = np.zeros((self.ncpu, N_COUNTERS), np.int64)
        self.times = np.zeros((self.ncpu, N_TIMES), np.float64)
        self.clock = np.zeros(self.ncpu, np.float64)
        # invariant violations found by the checked loop: (code, cpu, pid, frame, pte frame, t)
        self.viol = np.zeros((K.N_VIOL_KEPT, 6), np.int64)
        self.viol_n = np.zeros(1, np.int64)
        # mms (one per process of the trace): context.tlb_gen and mm_cpumask per mm (K§1.3);
        # ``mm_cpumask`` is mm 0's row (a one-process trace's only mm)
        self.nmm = max(1, len(meta.processes))
        self.mm_gens = np.ones(self.nmm, np.int64)
        self.mm_cpumasks = np.zeros((self.nmm, self.ncpu), np.bool_)
        self.mm_cpumask = self.mm_cpumasks[0]
        # per CPU (struct tlb_state): the loaded mm (-1: init_mm), the lazy flag, the ASID
        # slots (ctxs[].ctx_id as the owning mm, ctxs[].tlb_gen), the loaded slot and
        # next_asid; ``cpu_gen`` is the loaded slot's tlb_gen (ctxs[loaded_mm_asid].tlb_gen)
        self.cpu_gen = np.ones(self.ncpu, np.int64)
        self.lazy = np.zeros(self.ncpu, np.bool_)
        self.loaded_mm = np.full(self.ncpu, -1, np.int64)
        self.asid_mm = np.full((self.ncpu, TLB_NR_DYN_ASIDS), -1, np.int64)
        self.asid_gen = np.zeros((self.ncpu, TLB_NR_DYN_ASIDS), np.int64)
        self.loaded_asid = np.zeros(self.ncpu, np.int64)
        self.next_asid = np.zeros(self.ncpu, np.int64)
        self._mm_index = {p.pid: i for i, p in enumerate(meta.processes)}
        # pages
        self.regions = tuple(sorted((self._in_key_space(r) for r in meta.regions),
                                    key=lambda r: r.start))
        self._region_starts = np.array([r.start for r in self.regions], np.int64)
        if profile is not None and not self.regions:  # VMAs inferred from the page set
            order = np.argsort(profile.vpns)
            self._profile_vpns = profile.vpns[order].astype(np.int64)
            self._profile_vma = _inferred_vma_flags(profile)[order]
        self.pagemap = PageMap(capacity=max(1 << 16, sum(r.pages for r in self.regions) + 4096))
        self.page_flags = np.zeros(0, np.uint8)
        self.pte_pfn = np.zeros(0, np.int32)
        self.pte_flags = np.zeros(0, np.uint8)
        self.scan_time = np.zeros(0, np.float64)  # NUMA scan timestamp per page (ns)
        self.page_pmd = np.zeros(0, np.int32)  # the first page of the page's PMD mapping, or -1
        # nodes and frames
        self.footprint_bytes = footprint = footprint_bytes(meta, profile)
        dram, cxl = cfg.memory.dram, cfg.memory.cxl
        if self.nmm > 1 and not meta.regions:
            raise ConfigError("a trace of several processes needs its regions (metadata "
                              "migrc_bench.regions per pid): its pages are keyed by process")
        if (isinstance(dram, float) or isinstance(cxl, float)) and footprint == 0:
            raise ConfigError("config key 'memory.dram'/'memory.cxl': a share of the footprint needs "
                              "the trace's data pages, and this trace has none; give an absolute "
                              "size such as \"1GiB\"")
        c = self.costs
        n0 = resolve_capacity(dram, footprint)
        n1 = resolve_capacity(cxl, footprint)
        self.nodes = [Node(0, 0, n0, c.dram_latency, c.copy_bandwidth_dram, True),
                      Node(1, n0, n1, c.cxl_latency, c.copy_bandwidth_cxl, False)]
        mfk = cfg.memory.min_free_kbytes or min_free_kbytes(n0 + n1)
        set_watermarks(self.nodes, mfk, cfg.memory.watermark_scale_factor)
        self.kernel_per_entry = cfg.tlb.kernel_text_pages
        nk = max(cfg.tlb.kernel_text_pool, self.kernel_per_entry) if self.kernel_per_entry else 0
        nframes = n0 + n1 + nk
        self.frame_node = np.zeros(nframes, np.int8)
        self.frame_node[n0:n0 + n1] = 1
        self.frame_state = np.full(nframes, F_FREE, np.int8)
        self.frame_ver = np.zeros(nframes, np.int64)
        self.frame_pid = np.full(nframes, -1, np.int32)  # reverse map: the frame's first mapping
        self.frame_maps: dict[int, list[int]] = {}  # its other mappings (shared file pages)
        self.frame_nr = np.ones(nframes, np.int32)  # base pages of the folio a frame heads (THP: 512)
        self.page_cache_peers: dict[int, list[int]] = {}  # pages mapping one file page
        self.evicted_ver: dict[int, int] = {}  # reclaimed file pages: their data's version
        self.left_out: set[int] = set()  # file pages placed outside the page cache at the start
        self.folio_dirty: set[int] = set()  # PG_dirty of file folios a migration moved dirty
        self.node_lat = np.array([n.latency_ns for n in self.nodes], np.float64)
        # kernel text: present, global unless PTI, on reserved frames
        # each CPU walks the kernel text pool round-robin, kernel_text_pages per entry
        self.kernel_pos = np.zeros(self.ncpu, np.int64)
        self.kernel_pids = np.arange(self.pagemap.add_range(KERNEL_TEXT_VPN, nk),
                                     self.pagemap.n, dtype=np.int32) if nk else np.zeros(0, np.int32)
        self.n_pages = self.pagemap.n  # pages the replay knows of (the map may run ahead)
        self._grow(self.n_pages)
        kframes = np.arange(n0 + n1, nframes, dtype=np.int32)
        self.page_flags[self.kernel_pids] = K.VMA_EXEC | K.VMA_KERNEL
        self.pte_pfn[self.kernel_pids] = kframes
        self.pte_flags[self.kernel_pids] = K.PTE_PRESENT
        self.frame_state[kframes] = F_KERNEL
        self.frame_pid[kframes] = self.kernel_pids

    @property
    def mm_gen(self) -> int:
        """mm 0's context.tlb_gen (a one-process trace's only mm)."""
        return int(self.mm_gens[0])

    @mm_gen.setter
    def mm_gen(self, value: int) -> None:
        self.mm_gens[0] = value

    def mm_of_pid(self, pid: int | None) -> int:
        """The mm index of a trace process id (None, a version-1 trace: mm 0)."""
        return self._mm_index.get(pid, 0) if pid is not None else 0

    def _in_key_space(self, r: Region) -> Region:
        """A region of mm k moved to the key space's addresses (key << 12 = mm << 57 | addr),
        so everything that looks regions up by address works on page keys unchanged."""
        off = self.mm_of_pid(r.pid) << (MM_SHIFT + 12)
        return dataclasses.replace(r, start=r.start + off, end=r.end + off) if off else r

    def task_mms(self, threads: int) -> np.ndarray:
        """The mm index of each thread (task) of the trace."""
        out = np.zeros(threads, np.int64)
        for i, p in enumerate(self.meta.processes):
            out[[t for t in p.tids if t < threads]] = i
        return out

    def page_mm(self, pids) -> np.ndarray:
        """The mm index of page ids (kernel text: 127, no user mm)."""
        return self.page_vpn[pids] >> MM_SHIFT

    # ---- pages -------------------------------------------------------------------------
    def _grow(self, n: int) -> None:
        old = len(self.pte_pfn)
        if n <= old:
            return
        cap = max(n, 2 * old, 1024)
        for name, fill, dtype in (("page_flags", 0, np.uint8), ("pte_pfn", -1, np.int32),
                                  ("pte_flags", 0, np.uint8), ("scan_time", 0.0, np.float64),
                                  ("page_pmd", -1, np.int32)):
            arr = np.full(cap, fill, dtype)
            arr[:old] = getattr(self, name)
            setattr(self, name, arr)

    def on_new_pages(self, first_new: int, end: int | None = None) -> None:
        """Called when the replay takes a batch that added pages [first_new, end) to the map
        (end: the map's size now); the trace reader thread may already have mapped more."""
        n = self.pagemap.n if end is None else end
        if n <= first_new:
            return
        self._grow(n)
        self.page_flags[first_new:n] = self._vma_flags(self.pagemap.vpns_of(first_new, n))
        self.n_pages = n

    def lookup_pages(self, vpns: np.ndarray) -> np.ndarray:
        """Page ids of the given vpns, -1 for pages the replay has not met yet."""
        pids = self.pagemap.lookup(vpns)
        pids[pids >= self.n_pages] = -1
        return pids

    def _vma_flags(self, vpns: np.ndarray) -> np.ndarray:
        flags = np.full(len(vpns), K.VMA_WRITE, np.uint8)
        if not self.regions:
            if self.profile is not None:
                known = self._profile_vpns
                idx = np.minimum(np.searchsorted(known, vpns), len(known) - 1)
                hit = known[idx] == vpns
                flags[hit] = self._profile_vma[idx[hit]]
            return flags
        addr = vpns << 12
        idx = np.searchsorted(self._region_starts, addr, side="right") - 1
        ends = np.array([r.end for r in self.regions], np.int64)
        region_flags = np.array([_region_vma_flags(r) for r in self.regions], np.uint8)
        inside = idx >= 0
        inside[inside] = addr[inside] < ends[idx[inside]]
        flags[inside] = region_flags[idx[inside]]
        return flags

    @property
    def page_vpn(self) -> np.ndarray:
        return self.pagemap.vpns

    # ---- initial state (model.md §3) ------------------------------------------------------
    def _region_pages(self) -> tuple[np.ndarray, np.ndarray, bool]:
        """Every page of the trace's regions, registered in first-touch order; which are stack
        pages; and whether the pages are one range of new ids in that order (no overlaps)."""
        first_new = self.pagemap.n
        parts = []
        overlapping = False
        # first-touch order: code and stacks first (touched at start-up and hot ever after, so
        # they stay in DRAM in a long run), then the other regions in address order
        order = sorted(self.regions, key=lambda r: (r.kind not in ("code", "stack"), r.start))
        stack_parts = []
        for r in order:
            start, npages = r.start >> 12, r.pages
            try:
                base = self.pagemap.add_range(start, npages)
                parts.append(np.arange(base, base + npages, dtype=np.int32))
            except ValueError:  # overlapping regions: page by page, first region wins
                parts.append(self.pagemap.add_vpns(np.arange(start, start + npages, dtype=np.int64)))
                overlapping = True
            if r.kind == "stack":
                stack_parts.append(parts[-1])
        if overlapping:
            self.on_new_pages(first_new)
        else:  # each region's pages are one id range: its flags, without a search per page
            self._grow(self.pagemap.n)
            for r, ids in zip(order, parts):
                if len(ids):
                    self.page_flags[ids[0]:ids[-1] + 1] = _region_vma_flags(r)
            # a region's first page also holds the bytes before an unaligned start
            heads = np.array([ids[0] for ids in parts if len(ids)], np.int64)
            self.page_flags[heads] = self._vma_flags(self.pagemap.vpns[heads])
            self.n_pages = self.pagemap.n
        if overlapping:
            pids = np.concatenate(parts) if parts else np.zeros(0, np.int32)
        else:  # the ranges were handed out in this order: one id range, all pages new
            pids = np.arange(first_new, self.pagemap.n, dtype=np.int32)
        stacks = np.concatenate(stack_parts) if stack_parts else np.zeros(0, np.int32)
        return pids, stacks, not overlapping

    def _profile_pages(self) -> np.ndarray:
        """The page set of a trace without regions, registered in its first-touch order."""
        first_new = self.pagemap.n
        pids = self.pagemap.add_vpns(self.profile.vpns.astype(np.int64))
        self.on_new_pages(first_new)
        return pids

    def _profile_column(self, pids: np.ndarray, values: np.ndarray,
                        first: int | None = None) -> np.ndarray:
        """The profile's per-page ``values`` for page ids (0 for pages the trace never touches);
        ``first``: the ids are first, first + 1, ... (no index array as long as every id)."""
        out = np.zeros(len(pids), values.dtype)
        where = None if first is not None else np.full(self.pagemap.n, -1, np.int64)
        # the pre-pass counts by address: with several mms, each mm's page at that address
        # gets the value (an approximation: the processes' records are not told apart)
        for mm in range(self.nmm):
            keys = self.profile.vpns.astype(np.int64) | (mm << MM_SHIFT)
            prof = self.pagemap.lookup(keys)
            if where is None:
                sel = (prof >= first) & (prof < first + len(pids))
                out[prof[sel] - first] = values[sel]
            else:
                known = prof >= 0  # pages outside the regions are not registered yet
                where[prof[known]] = np.flatnonzero(known)
        if where is not None:
            idx = where[pids]
            out[idx >= 0] = values[idx[idx >= 0]]
        return out

    def place_initial(self) -> None:
        """Make the trace's pages present at the start: every region page, or without regions
        the page set of the pre-pass in a steady-state start. Placed first-touch (DRAM to its
        low mark, then CXL), interleaved, or hottest first; PTEs as ``memory.initial_pte``."""
        mode = self.cfg.memory.initial_pte
        placement = self.cfg.memory.placement
        stacks = np.zeros(0, np.int32)
        one_range = False  # pids is one range of new ids: slices instead of gathers
        if self.regions:
            pids, stacks, one_range = self._region_pages()
        elif self.profile is not None and mode == "steady-state":
            pids = self._profile_pages()
        else:
            return  # the trace starts with its program: pages fault in as they are touched
        if not one_range:
            pids = pids[self.pte_pfn[pids] < 0]
            if len(pids):  # a page once, in the first region that has it
                pids = pids[np.sort(np.unique(pids, return_index=True)[1])]
        shared, sharing = self._shared_file_pages(pids)
        if len(shared):  # a file page mapped again: the frame of its first mapping
            keep = np.ones(len(pids), np.bool_)
            keep[shared] = False
            shared, sharing = pids[shared], pids[sharing]
            pids = pids[keep]
            one_range = False
            self._note_page_cache_peers(shared, sharing)
        pids, left_out = self._fit_page_cache(pids)
        if len(left_out):  # file pages beyond memory start outside the page cache
            one_range = False
            if len(shared):
                out = np.zeros(self.pagemap.n, np.bool_)
                out[left_out] = True
                mapped = ~out[sharing]
                self.left_out.update(shared[~mapped].tolist())
                shared, sharing = shared[mapped], sharing[mapped]
            self.left_out.update(left_out.tolist())
        if placement == "hot":  # most accessed first; ties keep first-touch order
            pids = pids[np.argsort(-self._profile_column(pids, self.profile.counts), kind="stable")]
            one_range = False
        idx: slice | np.ndarray = slice(int(pids[0]), int(pids[-1]) + 1) if one_range and len(pids) else pids
        n = len(pids)
        dram, cxl = self.nodes
        # first-touch allocations fall back to the next node below the low watermark (K§5.2)
        room0 = max(0, dram.nr_free - dram.wmark.low)
        room1 = max(0, cxl.nr_free - cxl.wmark.low)
        if n > room0 + room1:
            what = "regions" if self.regions else "pages"
            raise ConfigError(f"config keys 'memory.dram' + 'memory.cxl': the trace's {what} need "
                              f"{n} pages but the nodes hold only {room0 + room1} above their low "
                              f"watermarks; give more memory")
        if placement == "interleave":
            to0 = np.zeros(n, bool)
            to0[::2] = True
            if to0.sum() > room0:
                extra = int(to0.sum() - room0)
                to0[np.flatnonzero(to0)[-extra:]] = False
        else:  # the first room0 pages to DRAM
            to0 = slice(0, min(room0, n))
        n0 = to0.stop if isinstance(to0, slice) else int(to0.sum())
        to1 = slice(n0, n) if isinstance(to0, slice) else ~to0
        frames = np.empty(n, np.int32)
        frames[to0] = dram.free.pop(n0)
        frames[to1] = cxl.free.pop(n - n0)
        if placement == "hot":  # the lowest frame is the LRU's tail: the hottest page at its head
            frames[to0] = frames[to0][::-1]
            frames[to1] = frames[to1][::-1]
        rw_dirty = K.PTE_PRESENT | K.PTE_WRITE | K.PTE_DIRTY
        rw_clean = K.PTE_PRESENT | K.PTE_WRITE
        ro_clean = K.PTE_PRESENT
        if mode == "steady-state":  # promoted pages are read-only; demoted ones kept write access
            pte = np.full(n, rw_clean, np.uint8)
            pte[to0] = ro_clean
            # stacks are written all the time and never migrate; a page the trace writes has
            # been written since it last migrated (its first store needs no fault)
            if len(stacks):
                stack = np.zeros(self.pagemap.n, np.bool_)
                stack[stacks] = True
                written = stack[idx]
            else:
                written = np.zeros(n, np.bool_)
            if self.profile is not None:
                written |= self._profile_column(pids, self.profile.written,
                                                first=idx.start if isinstance(idx, slice) else None)
            pte[written] = rw_dirty
        else:
            pte = np.full(n, {"writable-dirty": rw_dirty, "writable-clean": rw_clean,
                              "readonly-clean": ro_clean}[mode])
        writable = (self.page_flags[idx] & K.VMA_WRITE) != 0
        self.pte_pfn[idx] = frames
        self.pte_flags[idx] = np.where(writable, pte, K.PTE_PRESENT).astype(np.uint8)
        self.frame_state[frames] = F_USED
        self.frame_pid[frames] = pids
        if len(shared):
            self._map_shared(shared, sharing)
        if self.thp:
            self._map_pmds()

    def _map_pmds(self) -> None:
        """PMD-map every 2 MiB-aligned range fully inside an eligible region
        (transhuge_vma_suitable) whose 512 pages are present on consecutive frames of one
        node, as a THP allocated at the first fault is; a range that is not (interleaved or
        hottest-first placement, a node boundary inside it) stays PTE-mapped, as after
        THP_FAULT_FALLBACK. The PMD's bits are kept in each of its 512 PTE slots: present,
        PROT_NONE and write alike in all (write if any page was written: the PMD is one
        entry), accessed and dirty as the OR over the slots."""
        for r in self.regions:
            if not thp_eligible(r, self.cfg.memory.thp):
                continue
            first = -(-(r.start >> 12) // HPAGE_PMD_NR) * HPAGE_PMD_NR
            last = (r.end >> 12) // HPAGE_PMD_NR * HPAGE_PMD_NR
            for h in range(first, last, HPAGE_PMD_NR):
                pids = self.lookup_pages(np.arange(h, h + HPAGE_PMD_NR, dtype=np.int64))
                if (pids < 0).any() or (np.diff(pids) != 1).any():
                    continue
                p0 = int(pids[0])
                sl = slice(p0, p0 + HPAGE_PMD_NR)
                frames = self.pte_pfn[sl]
                if (frames < 0).any() or (np.diff(frames) != 1).any():
                    continue
                if (self.frame_node[frames] != self.frame_node[frames[0]]).any():
                    continue
                if (self.page_pmd[sl] >= 0).any():
                    continue
                fl = self.pte_flags[sl]
                self.pte_flags[sl] = fl | (np.bitwise_or.reduce(fl) & K.PTE_WRITE)
                self.page_pmd[sl] = p0
                self.frame_nr[frames[0]] = HPAGE_PMD_NR

    def _fit_page_cache(self, pids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(pages to place, file pages left out): when the regions need more pages than the
        nodes hold above their low watermarks, the last file-data pages (not text) are left
        out of the page cache, as after drop_caches with a file larger than memory; they are
        read in (major faults) when first touched. Anonymous pages that do not fit stay an
        error (place_initial)."""
        dram, cxl = self.nodes
        room = max(0, dram.nr_free - dram.wmark.low) + max(0, cxl.nr_free - cxl.wmark.low)
        excess = len(pids) - room
        if excess <= 0:
            return pids, np.zeros(0, pids.dtype)
        fl = self.page_flags[pids]
        data = np.flatnonzero(((fl & K.VMA_FILE) != 0) & ((fl & K.VMA_EXEC) == 0))
        if len(data) < excess:
            return pids, np.zeros(0, pids.dtype)  # place_initial names the shortfall
        drop = np.zeros(len(pids), np.bool_)
        drop[data[len(data) - excess:]] = True
        return pids[~drop], pids[drop]

    def _note_page_cache_peers(self, shared: np.ndarray, sharing: np.ndarray) -> None:
        """Remember which pages map one page-cache page (a shared file), so that a fault on
        one of them after reclaim finds the page if another mapping has read it again."""
        for pid, first in zip(shared.tolist(), sharing.tolist()):
            self.page_cache_peers.setdefault(first, [first]).append(pid)
            self.page_cache_peers[pid] = self.page_cache_peers[first]

    def out_of_page_cache(self, pid: int) -> bool:
        """A file page reclaimed, or left out at the start: its fault goes to filemap_fault
        (other pages fault as first touches do)."""
        return pid in self.evicted_ver or pid in self.left_out

    def page_cache_frame(self, pid: int) -> int:
        """filemap_get_folio: the frame holding file page ``pid`` if any mapping of that page
        has it (-1 if the page is not in the page cache)."""
        for peer in self.page_cache_peers.get(pid, ()):
            if peer != pid and self.pte_pfn[peer] >= 0:
                return int(self.pte_pfn[peer])
        return -1

    def _shared_file_pages(self, pids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions in ``pids`` of pages that map a file page an earlier page already maps
        (regions naming one file id: the same page-cache pages), and the positions of those
        earlier pages."""
        files = [r for r in self.regions if r.file is not None]
        if len(files) < 2 or not len(pids):
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        ids = {fid: i for i, fid in enumerate(sorted({r.file.id for r in files}))}
        vpns = self.page_vpn[pids]
        fkey = np.full(len(pids), -1, np.int64)
        for r in files:
            first, last = r.start >> 12, (r.end - 1) >> 12
            sel = (vpns >= first) & (vpns <= last)
            fkey[sel] = (ids[r.file.id] << 40) + r.file.offset // 4096 + (vpns[sel] - first)
        at = np.flatnonzero(fkey >= 0)
        _, first_at, inverse = np.unique(fkey[at], return_index=True, return_inverse=True)
        canon = at[first_at][inverse]
        again = canon != at
        return at[again], canon[again]

    def _map_shared(self, pids: np.ndarray, sharing: np.ndarray) -> None:
        """Map ``pids`` to the frames of ``sharing`` (the page's first mapping): its PTE, without
        write access where the page's own VMA is read-only; the frame's rmap lists them."""
        frames = self.pte_pfn[sharing]
        self.pte_pfn[pids] = frames
        fl = self.pte_flags[sharing]
        ro = (self.page_flags[pids] & K.VMA_WRITE) == 0
        self.pte_flags[pids] = np.where(ro, fl & ~(K.PTE_WRITE | K.PTE_DIRTY), fl).astype(np.uint8)
        for f, pid in zip(frames.tolist(), pids.tolist()):
            self.frame_maps.setdefault(f, []).append(pid)

    def drop_mapping(self, frame: int, pid: int) -> bool:
        """Page ``pid`` no longer maps ``frame``: True if no mapping is left (a shared file
        page stays in the page cache while another VMA maps it)."""
        more = self.frame_maps.get(frame)
        if not more:
            return True
        if self.frame_pid[frame] == pid:
            self.frame_pid[frame] = more.pop(0)
        else:
            more.remove(pid)
        if not more:
            del self.frame_maps[frame]
        return False

    def mappings(self, frame: int) -> list[int]:
        """Every page (PTE) mapping ``frame``: the rmap walk (a shared file page: one per VMA
        that maps it, of any mm)."""
        first = int(self.frame_pid[frame])
        more = self.frame_maps.get(frame)
        return [first] + more if more else [first]

    # ---- bookkeeping --------------------------------------------------------------------
    def tlb_args(self):
        return self.tlb_tag, self.tlb_pfn, self.tlb_wr, self.tlb_lru, self.tlb_geo

    def kernel_entry(self, cpu: int) -> float:
        """Fetch the kernel text pages on ``cpu`` (fault, IPI, kthread); returns the ns spent."""
        if len(self.kernel_pids) == 0:
            return 0.0
        ns = float(K.kernel_text_fetch(cpu, self.kernel_pids, self.kernel_pos, self.kernel_per_entry,
                                       *self.tlb_args(), self.stamps,
                                       self.page_vpn, self.pte_pfn, self.pte_flags, self.counters,
                                       self.times, self.cost_vec, self.frame_state, self.frame_ver,
                                       self.viol, self.viol_n))
        self.clock[cpu] += ns
        return ns

    def charge(self, cpu: int, ns: float, stall: int | None = None) -> None:
        """Add kernel time to one CPU (its clock and, optionally, one stall bucket)."""
        self.times[cpu, 0] += ns
        if stall is not None:
            self.times[cpu, stall] += ns
        self.clock[cpu] += ns

    def region_of(self, addr: int) -> Region | None:
        i = int(np.searchsorted(self._region_starts, addr, side="right")) - 1
        if i >= 0 and addr < self.regions[i].end:
            return self.regions[i]
        return None


def needs_profile(cfg: Config, meta: TraceMeta) -> bool:
    """Whether a run needs the trace's pre-pass: without regions (footprint, VMAs, the page
    set), for a steady-state start (which pages the trace writes) and for hot placement."""
    return (not meta.regions or cfg.memory.initial_pte == "steady-state"
            or cfg.memory.placement == "hot")


def _inferred_vma_flags(profile: TraceProfile) -> np.ndarray:
    """VMAs of a trace without regions: text (fetched from: exec, writable only if the trace
    writes it) and private writable data (heap, stack, anonymous maps)."""
    flags = np.full(len(profile.vpns), K.VMA_WRITE, np.uint8)
    fetched = (profile.flags & FETCH) != 0
    flags[fetched] = np.where(profile.written[fetched], K.VMA_EXEC | K.VMA_WRITE, K.VMA_EXEC)
    return flags


def _region_vma_flags(r) -> int:
    """A region's VMA bits: VM_WRITE, VM_EXEC, and whether it maps a file (page cache)."""
    return ((K.VMA_WRITE if r.writable else 0) | (K.VMA_EXEC if r.exec else 0)
            | (K.VMA_FILE if r.file is not None else 0))
