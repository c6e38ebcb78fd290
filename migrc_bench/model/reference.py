"""A small pure-Python reference model of the replay core, written for clarity, not speed.

It shares nothing with the compiled loop, the page map, the feeder or the flush mechanism:
only the config parsing, the cost figures, the TLB geometry and the initial placement. A
hypothesis test replays random traces with random flushes and PTE changes through both and
requires every counter (and every CPU clock) to be identical.

The rules it encodes, one access at a time (model.md §3-§5, K§1):
- each CPU runs the thread of the same number; inside a quantum CPUs run in index order,
  each until its clock reaches the quantum's end; events run at the first boundary at or
  after their time;
- a lookup tries the L1 (iTLB for fetches, dTLB otherwise), then the STLB (refilling the L1),
  then walks the page table (refilling STLB and L1); a walk of a missing or PROT_NONE PTE, or
  a store walk of a read-only PTE, faults without counting a miss;
- replacement: the first empty way of the set, else the least recently used;
- a store through a read-only translation drops that page's translations and faults;
- a flush that frees page tables (flush_tlb_mm) IPIs lazy CPUs too, which switch to init_mm,
  leave the mm's cpumask and keep their stale generation; flush_tlb_batched_pending does
  such a flush when a batched unmap was recorded since it last looked;
- several processes: each thread belongs to an mm; pages and TLB entries are keyed
  (mm, vpn), kernel text (KERNEL, vpn); each mm has its generation, cpumask and batched
  count; a flush names its mm (a batched flush none); a CPU that has another mm loaded
  counts the IPI and returns; a CPU with no mm loaded (init_mm) likewise; a full flush drops
  the loaded mm's entries only;
- more threads than CPUs: thread t queues on CPU t mod ncpu; the first of each queue runs;
  a CPU runs its task until its clock reaches the quantum's end or the slice's end (a slice
  of CPU time that never ends while the task is alone), then the next task in the queue
  runs (a task that ran out of records leaves the queue): a context switch counted, its
  mm switched (same mm: nothing; another: the mm's ASID slot, flushed if its generation is
  behind, else the next slot round-robin, flushed, dropping its old owner's entries), and
  its cost charged;
- THP (memory.thp): a 2 MiB-aligned range fully inside an eligible anonymous region, all of
  whose 512 pages start on consecutive frames of one node, is one PMD. Its translation lives in
  the 2 MiB L1 array (iTLB or dTLB) and in the STLB, keyed by the range's first page and
  indexed by its 2 MiB page number, holding the first page's frame; a walk to it costs 3/4 of a
  4 KiB walk; its bits are kept per page (present, PROT_NONE, write alike; accessed and dirty
  where used); invalidating any of its pages drops the 2 MiB translation; a write fault makes
  the whole PMD writable;
- broadcast flushes (machine.flush invlpgb or rar): after an IPI flush of an mm that reached
  another CPU, the mm gets a global ASID when (1000 + the initiator's task) and the jiffies
  (from 2^32 - 300 HZ, one per 1/HZ x time_scale of its clock) agree in their low 5 bits and
  more than 3 CPUs of its cpumask run it non-lazily; the first grant flushes every CPU's
  non-global entries (INVLPGB: one INVLPGB + TLBSYNC; RAR: flush_tlb_all, a request to every
  CPU, globals too). A CPU takes the global PCID (its entries of the mm dropped, its slot of
  the mm freed) when it loads the mm, switches to a thread of it, or an IPI for it arrives
  (counted, then nothing more). A flush of a global-ASID mm: INVLPGB one instruction per
  PCID for a full flush, else one per invlpgb_count_max pages (x2 with PTI), on every CPU
  holding the global PCID; RAR one request per PCID to the mm's cpumask, whole-PCID once
  pages + 1 reach 63. Then, while some CPU runs the mm on a dynamic ASID, IPIs to the whole
  cpumask (lazy CPUs too, counted as a remote flush) -- else the transition ends; INVLPGB
  then waits in TLBSYNC. A batched flush: INVLPGB every CPU's non-global entries, RAR every
  entry on the batch's CPUs. Under RAR a CPU loading a global-ASID mm it was not in the
  cpumask of flushes that PCID.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Iterable

from ..config import Config
from .counters import COUNTERS, SOURCE_FIGURES, TIMES
import math

from .machine import KERNEL_TEXT_VPN, Costs, tlb_geometry
from .memory import Node, min_free_kbytes, set_watermarks
from .presets import PRESET_FLUSH
from .sched import base_slice_ns

IFETCH, LOAD, STORE, MODIFY = 0, 1, 2, 3
KERNEL = -1  # the "mm" of kernel text keys
NASID = 6    # TLB_NR_DYN_ASIDS


@dataclass
class Event:
    """A scheduled kernel action used by tests: both models apply it the same way."""

    t_ns: float
    kind: str  # "range" | "full" | "batch" | "wrprotect" | "unmap" | "batched" | "pending" | "mm" | "mprotect"
    cpu: int
    vpns: tuple[int, ...] = ()
    mask: tuple[bool, ...] = ()
    mm: int = 0  # the process whose pages (and flush) the event is about


@dataclass
class Pte:
    frame: int
    present: bool = True
    protnone: bool = False
    write: bool = False
    dirty: bool = False
    young: bool = False


class Tlb:
    """One set-associative level: sets of ways, each way [key, frame, writable, last_use] or None."""

    def __init__(self, entries: int, ways: int):
        self.nsets = entries // ways
        self.sets = [[None] * ways for _ in range(self.nsets)]

    def lookup(self, vpn: int, key: int, stamp: int):
        for way in self.sets[vpn % self.nsets]:
            if way is not None and way[0] == key:
                way[3] = stamp
                return way
        return None

    def fill(self, vpn: int, key: int, frame: int, writable: bool, stamp: int) -> None:
        ways = self.sets[vpn % self.nsets]
        empty = [i for i, w in enumerate(ways) if w is None]
        if empty:
            victim = empty[0]
        else:
            victim = min(range(len(ways)), key=lambda i: ways[i][3])
        ways[victim] = [key, frame, writable, stamp]

    def drop(self, vpn: int, key: int) -> None:
        ways = self.sets[vpn % self.nsets]
        for i, w in enumerate(ways):
            if w is not None and w[0] == key:
                ways[i] = None

    def drop_all(self, keep) -> None:
        for ways in self.sets:
            for i, w in enumerate(ways):
                if w is not None and not keep(w[0]):
                    ways[i] = None


@dataclass
class Cpu:
    itlb: Tlb
    dtlb: Tlb
    stlb: Tlb
    itlb2: Tlb | None = None  # the 2 MiB L1 arrays
    dtlb2: Tlb | None = None
    clock: float = 0.0
    stamp: int = 0
    gen: int = 1
    kernel_next: int = 0  # position in the kernel text pool
    lazy: bool = False
    running: bool = True
    loaded: int = -1  # the loaded mm; -1 init_mm
    asid_mm: list = field(default_factory=lambda: [-1] * NASID)
    asid_gen: list = field(default_factory=lambda: [0] * NASID)
    asid: int = 0
    next_asid: int = 1
    gmms: set = field(default_factory=set)  # mms whose global PCID this CPU has loaded
    queue: deque = field(default_factory=deque)
    slice_end: float = float("inf")
    counters: dict = field(default_factory=lambda: {c: 0 for c in COUNTERS})
    times: dict = field(default_factory=lambda: {t: 0.0 for t in TIMES})


class ReferenceModel:
    def __init__(self, cfg: Config, threads: list[list[tuple[int, int, int]]],
                 regions_pages: list[tuple], footprint_bytes: int,
                 events: Iterable[Event] = (), thread_mm: list[int] | None = None,
                 thp_regions: Iterable[tuple[int, int, int, bool]] = ()):
        """``threads[t]`` = [(op, addr, size)...]; ``regions_pages`` = [(vpn, writable)...] or
        [(mm, vpn, writable)...] present at the start in first-touch order; capacities as in
        the config; ``thread_mm[t]`` the mm of thread t (default: all mm 0); ``thp_regions``
        = [(mm, first vpn, end vpn, madvised)...] the anonymous regions. Without regions
        the trace file is taken to hold the threads' records one thread after another: its
        page set in that order is present in a steady-state start, and shares are of its
        data pages."""
        self.cfg = cfg
        g = tlb_geometry(cfg)
        self.costs = Costs.from_config(cfg)
        c = self.costs
        self.cpi_ns = c.cpi * (1e9 / c.cpu_freq_hz)
        self.stlb_ns = c.stlb_hit_cycles * (1e9 / c.cpu_freq_hz)
        self.walk_ns = c.walk_ns * c.nested_walk_factor
        ncpu = cfg.machine.ncpu
        self.cpus = [Cpu(Tlb(g.itlb_entries, g.itlb_ways), Tlb(g.dtlb_entries, g.dtlb_ways),
                         Tlb(g.stlb_entries, g.stlb_ways)) for _ in range(ncpu)]
        self.thp = cfg.memory.thp
        for cpu in self.cpus:
            cpu.itlb2 = Tlb(g.itlb2m_entries, g.itlb2m_ways)
            cpu.dtlb2 = Tlb(g.dtlb2m_entries, g.dtlb2m_ways)
        self.walk_pmd_ns = self.walk_ns * 3 / 4
        self.pmd: dict[tuple[int, int], int] = {}  # page -> first vpn of its PMD mapping
        self.thread_mm = list(thread_mm) if thread_mm is not None else [0] * len(threads)
        nmm = max(self.thread_mm, default=0) + 1
        self.streams = [[(op, (self.thread_mm[t], vpn)) for op, vpn in self._split_pages(recs)]
                        for t, recs in enumerate(threads)]
        # what the pre-pass knows: accesses per page, pages written, pages fetched from (by
        # address: the processes' records are not told apart)
        touches: dict[int, int] = {}
        written, fetched = set(), set()
        for stream in self.streams:
            for op, (_, vpn) in stream:
                touches[vpn] = touches.get(vpn, 0) + 1
                (fetched if op == IFETCH else written if op in (STORE, MODIFY) else set()).add(vpn)
        if not regions_pages:
            footprint_bytes = len(set(touches) - fetched) * 4096
        self.pos = [0] * len(threads)
        self.slice = base_slice_ns(cfg, ncpu)
        self.switch_cost = float(cfg.machine.context_switch_cost)
        self.mm_cpumask = [[False] * ncpu for _ in range(nmm)]
        self.mm_gen = [1] * nmm
        self.batched_pending = [0] * nmm  # mm->tlb_flush_batched
        self.batched_flushed = [0] * nmm
        for t in range(len(threads)):
            self.cpus[t % ncpu].queue.append(t)
        for i, cpu in enumerate(self.cpus):
            cpu.running = bool(cpu.queue)
            if cpu.queue:
                mm = self.thread_mm[cpu.queue[0]]
                cpu.loaded = mm
                cpu.asid_mm[0], cpu.asid_gen[0] = mm, 1
                self.mm_cpumask[mm][i] = True
                if len(cpu.queue) > 1:
                    cpu.slice_end = self.slice
        self.pti = cfg.tlb.pti
        self.ceiling = cfg.tlb.single_page_flush_ceiling
        self.events_per_flush = cfg.tlb.itlb_flush_events_per_flush
        self.events = sorted(events, key=lambda e: e.t_ns)
        # broadcast flushes: the mechanism, the global ASIDs and their pool
        self.mech = cfg.machine.flush or PRESET_FLUSH[cfg.machine.preset]
        self.count_max = cfg.tlb.invlpgb_count_max
        self.global_asid = [0] * nmm
        self.transition = [False] * nmm
        self.asid_used: set[int] = set()
        self.asid_last = 2046
        self.asid_avail = 2046 - NASID - 1
        self.jiffy = 1e9 / cfg.machine.hz * cfg.replay.time_scale
        self.jiffies0 = 2**32 - 300 * cfg.machine.hz
        self.ipis_on_global = 0
        # IPIs received and broadcasts issued per source: flush_tlb_batched_pending's are
        # "batched_pending", every other event's "other" (the events name no kernel path)
        self.source = "other"
        self.by_source = dict.fromkeys(SOURCE_FIGURES, 0)
        # memory: same capacities, watermarks and placement rule as the fast model
        from ..config import resolve_capacity

        n0 = resolve_capacity(cfg.memory.dram, footprint_bytes)
        n1 = resolve_capacity(cfg.memory.cxl, footprint_bytes)
        self.nodes = [Node(0, 0, n0, c.dram_latency, c.copy_bandwidth_dram, True),
                      Node(1, n0, n1, c.cxl_latency, c.copy_bandwidth_cxl, False)]
        set_watermarks(self.nodes, cfg.memory.min_free_kbytes or min_free_kbytes(n0 + n1),
                       cfg.memory.watermark_scale_factor)
        self.free = [list(range(n0)), list(range(n0, n0 + n1))]
        self.node_of = lambda f: 0 if f < n0 else 1
        self.pt: dict[tuple[int, int], Pte] = {}
        self.vma_write: dict[tuple[int, int], bool] = {}
        per_entry = cfg.tlb.kernel_text_pages
        pool = max(cfg.tlb.kernel_text_pool, per_entry) if per_entry else 0
        self.kernel_vpns = [(KERNEL, KERNEL_TEXT_VPN + i) for i in range(pool)]
        self.kernel_per_entry = per_entry
        for i, v in enumerate(self.kernel_vpns):
            self.pt[v] = Pte(frame=n0 + n1 + i)
        mode = cfg.memory.initial_pte
        if not regions_pages:  # VMAs inferred: text is what is fetched from and never written
            self.vma_write = {(0, v): False for v in fetched - written}
            if mode == "steady-state":
                regions_pages = [(v, self.vma_write.get((0, v), True)) for v in touches]
        regions_pages = [p if len(p) == 4 else (*p, None) if len(p) == 3 else (0, *p, None)
                         for p in regions_pages]
        # a file page mapped again (the same file key) takes the frame of its first mapping
        first_of: dict = {}
        again = []
        for p in regions_pages:
            if p[3] is not None and p[3] in first_of:
                again.append((p, first_of[p[3]]))
            elif p[3] is not None:
                first_of[p[3]] = p
        regions_pages = [p for p in regions_pages if p[3] is None or first_of[p[3]] is p]
        placement = cfg.memory.placement
        if placement == "hot":
            regions_pages = sorted(regions_pages, key=lambda p: -touches.get(p[1], 0))
        room0 = max(0, n0 - self.nodes[0].wmark.low)
        to0 = [i < room0 for i in range(len(regions_pages))]
        if placement == "interleave":
            to0 = [i % 2 == 0 for i in range(len(regions_pages))]
            extra = sum(to0) - room0
            for i in reversed(range(len(to0))):
                if extra <= 0:
                    break
                if to0[i]:
                    to0[i], extra = False, extra - 1
        nodes = [0 if x else 1 for x in to0]
        frames = [self.free[nid].pop(0) for nid in nodes]
        if placement == "hot":  # the hottest page gets its node's highest frame (the LRU head)
            for nid in (0, 1):
                at = [i for i, x in enumerate(nodes) if x == nid]
                for i, f in zip(at, reversed([frames[i] for i in at])):
                    frames[i] = f
        for (mm, vpn, writable, _), node, frame in zip(regions_pages, nodes, frames):
            if mode == "steady-state":  # (the test traces have no stack regions)
                write, dirty = (True, True) if vpn in written else (node == 1, False)
            else:
                write, dirty = mode != "readonly-clean", mode == "writable-dirty"
            self.pt[(mm, vpn)] = Pte(frame=frame, write=writable and write, dirty=writable and dirty)
            self.vma_write[(mm, vpn)] = writable
        for (mm, vpn, writable, _), (mm0, vpn0, _, _) in again:
            pte = self.pt[(mm0, vpn0)]
            self.pt[(mm, vpn)] = Pte(frame=pte.frame, write=writable and pte.write,
                                     dirty=writable and pte.dirty)
            self.vma_write[(mm, vpn)] = writable
        for mm, first, end, madvised in thp_regions:
            if self.thp == "always" or (self.thp == "madvise" and madvised):
                self._map_pmds(mm, first, end)

    def _map_pmds(self, mm: int, first: int, end: int) -> None:
        for h in range(-(-first // 512) * 512, end // 512 * 512, 512):
            ptes = [self.pt.get((mm, h + i)) for i in range(512)]
            if any(p is None or not p.present for p in ptes):
                continue
            if any(p.frame != ptes[0].frame + i for i, p in enumerate(ptes)):
                continue
            if len({self.node_of(p.frame) for p in ptes}) > 1:
                continue
            if any((mm, h + i) in self.pmd for i in range(512)):
                continue
            write = any(p.write for p in ptes)
            for i, p in enumerate(ptes):
                p.write = write
                self.pmd[(mm, h + i)] = h

    @staticmethod
    def _split_pages(records):
        out = []
        for op, addr, size in records:
            first, last = addr >> 12, (addr + max(size, 1) - 1) >> 12
            for vpn in range(first, last + 1):
                out.append((op, vpn))
        return out

    # ---- translation -------------------------------------------------------------------
    def _translate(self, c: int, key: tuple[int, int], kind: int, stamp: int):
        cpu = self.cpus[c]
        n = cpu.counters
        if key in self.pmd:  # a 2 MiB entry: keyed by the PMD's first page, its 2 MiB number
            h = self.pmd[key]
            tkey, sv, off = (key[0], h), h >> 9, key[1] - h
            l1, walk_ns = (cpu.itlb2 if kind == IFETCH else cpu.dtlb2), self.walk_pmd_ns
        else:
            tkey, sv, off = key, key[1], 0
            l1, walk_ns = (cpu.itlb if kind == IFETCH else cpu.dtlb), self.walk_ns
        hit = l1.lookup(sv, tkey, stamp)
        if hit is not None:
            n["itlb_hits" if kind == IFETCH else "dtlb_hits"] += 1
            frame, writable = hit[1] + off, hit[2]
        else:
            n["itlb_l1_misses" if kind == IFETCH else "dtlb_l1_misses"] += 1
            hit = cpu.stlb.lookup(sv, tkey, stamp)
            if hit is not None:
                n["stlb_hits"] += 1
                frame, writable = hit[1] + off, hit[2]
                l1.fill(sv, tkey, hit[1], writable, stamp)
                cpu.times["busy"] += self.stlb_ns
            else:
                pte = self.pt.get(key)
                if pte is None or not pte.present:
                    return "missing"
                if pte.protnone:
                    return "hint"
                if kind == STORE and not pte.write:
                    return "wp"
                n["stlb_misses"] += 1
                n[{IFETCH: "itlb_misses", LOAD: "dtlb_load_misses", STORE: "dtlb_store_misses"}[kind]] += 1
                pte.young = True
                if kind == STORE:
                    pte.dirty = True
                frame, writable = pte.frame, pte.write
                cpu.stlb.fill(sv, tkey, frame - off, writable, stamp)
                l1.fill(sv, tkey, frame - off, writable, stamp)
                cpu.times["busy"] += walk_ns
                cpu.times["walk"] += walk_ns
        if kind == STORE:
            if not writable:
                self._drop_page(cpu, key)
                return "wp"
            pte = self.pt[key]
            if frame == pte.frame:
                pte.dirty = True
        return frame

    def _drop_page(self, cpu: Cpu, key: tuple[int, int]) -> None:
        """INVLPG of one page: its translation, or its PMD's 2 MiB one."""
        if key in self.pmd:
            self._drop_huge(cpu, (key[0], self.pmd[key]))
            return
        for t in (cpu.itlb, cpu.dtlb, cpu.stlb):
            t.drop(key[1], key)

    def _drop_huge(self, cpu: Cpu, head: tuple[int, int]) -> None:
        for t in (cpu.itlb2, cpu.dtlb2, cpu.stlb):
            t.drop(head[1] >> 9, head)

    def _access(self, c: int, op: int, vpn: int):
        cpu = self.cpus[c]
        cpu.stamp += 1
        t0 = cpu.times["busy"]
        if op == IFETCH:
            r = self._translate(c, vpn, IFETCH, cpu.stamp)
        else:
            r = self._translate(c, vpn, STORE if op == STORE else LOAD, cpu.stamp)
            if isinstance(r, int) and op == MODIFY:
                r = self._translate(c, vpn, STORE, cpu.stamp)
        if isinstance(r, str):
            cpu.clock += cpu.times["busy"] - t0
            return r
        if op == IFETCH:
            cpu.counters["instructions"] += 1
            cpu.times["busy"] += self.cpi_ns
        else:
            cpu.counters["loads" if op == LOAD else "stores"] += 1
            if op == MODIFY:
                cpu.counters["loads"] += 1
            mem = self.costs.cache_miss_rate * self.nodes[self.node_of(r)].latency_ns
            cpu.times["busy"] += mem
            cpu.times["mem"] += mem
        cpu.counters["accesses"] += 1
        cpu.clock += cpu.times["busy"] - t0
        return None

    # ---- kernel side -------------------------------------------------------------------
    def _charge(self, c: int, ns: float, bucket: str | None = None) -> None:
        cpu = self.cpus[c]
        cpu.times["busy"] += ns
        if bucket:
            cpu.times[bucket] += ns
        cpu.clock += ns

    def _kernel_entry(self, c: int) -> float:
        cpu = self.cpus[c]
        t0 = cpu.times["busy"]
        for _ in range(self.kernel_per_entry):
            v = self.kernel_vpns[cpu.kernel_next]
            cpu.kernel_next = (cpu.kernel_next + 1) % len(self.kernel_vpns)
            cpu.stamp += 1
            self._translate(c, v, IFETCH, cpu.stamp)
        ns = cpu.times["busy"] - t0
        cpu.clock += ns
        return ns

    def _fault(self, c: int, kind: str, vpn: tuple[int, int]) -> None:
        cpu = self.cpus[c]
        cpu.counters["pgfault"] += 1
        self._charge(c, self.costs.fault, "fault")
        cpu.times["fault"] += self._kernel_entry(c)
        if kind == "missing":
            nid = self._pick_node()
            frame = self.free[nid].pop(0)
            cpu.counters["numa_hit" if nid == 0 else "numa_miss"] += 1
            write = self.vma_write.setdefault(vpn, True)
            self.pt[vpn] = Pte(frame=frame, write=write)
        elif kind == "wp":
            pte = self.pt[vpn]
            if not pte.write:
                if vpn in self.pmd:  # do_huge_pmd_wp_page: the whole PMD
                    for i in range(512):
                        self.pt[(vpn[0], self.pmd[vpn] + i)].write = True
                pte.write = pte.dirty = pte.young = True
        else:
            raise AssertionError(kind)

    def _pick_node(self) -> int:
        """Preferred node 0, then 1: above low, else above min, else anything free."""
        for level in ("low", "min"):
            for nid in (0, 1):
                mark = getattr(self.nodes[nid].wmark, level)
                if self.free[nid] and len(self.free[nid]) - 1 >= mark:
                    return nid
        return 0 if self.free[0] else 1

    def _drop_mms(self, cpu: Cpu, mms) -> None:
        """A full flush of the PCIDs of ``mms``: their entries, and kernel text under PTI."""
        def keep(k):
            return (not self.pti) if k[0] == KERNEL else k[0] not in mms
        for t in (cpu.itlb, cpu.dtlb, cpu.stlb, cpu.itlb2, cpu.dtlb2):
            t.drop_all(keep)

    def _flush_local_or_remote(self, c: int, pages, new_gen: int, local: bool, mm) -> None:
        cpu = self.cpus[c]
        on_global_mm = (cpu.loaded >= 0 and self.global_asid[cpu.loaded] != 0
                        and mm in (None, cpu.loaded))
        if not local:
            if on_global_mm and cpu.loaded in cpu.gmms and not self.transition[cpu.loaded]:
                self.ipis_on_global += 1
            cpu.counters["nr_tlb_remote_flush_received"] += 1
            cpu.counters["tlb_shootdown_irqs"] += 1
            self.by_source[f"tlb_ipis_{self.source}"] += 1
            self._charge(c, self.costs.ipi_receive, "ipi")
            cpu.times["ipi"] += self._kernel_entry(c)
        if on_global_mm:  # reload onto the global ASID; the broadcasts keep it current
            self._to_global(c, cpu.loaded)
            return
        if mm is not None and mm != cpu.loaded:
            return  # another mm is loaded
        if cpu.loaded < 0:
            return  # init_mm
        if cpu.lazy:  # only a page-table-freeing flush reaches a lazy CPU: to init_mm
            self.mm_cpumask[cpu.loaded][c] = False
            return
        mm_gen = self.mm_gen[cpu.loaded]
        if new_gen != 0 and new_gen <= cpu.gen:
            return
        if cpu.gen == mm_gen:
            return
        if pages is not None and new_gen == cpu.gen + 1 and new_gen == mm_gen:
            for v in pages:
                self._drop_page(cpu, (cpu.loaded, v))
            if local:
                cpu.counters["nr_tlb_local_flush_one"] += len(pages)
            self._charge(c, len(pages) * self.costs.flush_one, "ipi")
            n = len(pages)
        else:
            self._drop_mms(cpu, (cpu.loaded,))
            if local:
                cpu.counters["nr_tlb_local_flush_all"] += 1
            self._charge(c, self.costs.flush_full, "ipi")
            n = 1
        cpu.counters["itlb_flush"] += n * self.events_per_flush
        cpu.counters["dtlb_flush"] += n
        cpu.counters["stlb_flush"] += n
        cpu.gen = mm_gen

    def _flush(self, initiator: int, mask: list[bool], pages, new_gen: int, freed: bool = False,
               mm=None) -> None:
        mask = list(mask)
        others = [i for i, b in enumerate(mask) if b and i != initiator]
        if others:
            self._multi(initiator, mask, pages, new_gen, freed, mm)
        elif mask[initiator] and (freed or not self.cpus[initiator].lazy):
            self._flush_local_or_remote(initiator, pages, new_gen, True, mm)

    def _multi(self, initiator: int, mask: list[bool], pages, new_gen: int, freed: bool, mm) -> None:
        self.cpus[initiator].counters["nr_tlb_remote_flush"] += 1
        ipis = 0
        for i, b in enumerate(mask):
            if not b or (self.cpus[i].lazy and not freed):
                continue
            if i == initiator:
                self._flush_local_or_remote(i, pages, new_gen, True, mm)
            else:
                ipis += 1
                self._flush_local_or_remote(i, pages, new_gen, False, mm)
        if ipis:
            co = self.costs
            self._charge(initiator, ipis * co.ipi_send + co.vmexit + co.ipi_wait, "ipi")

    def _flush_range(self, initiator: int, vpns, mm: int, freed: bool = False) -> None:
        self.mm_gen[mm] += 1
        pages = None if vpns is None or len(vpns) > self.ceiling else list(vpns)
        if self.mech != "ipi" and self.global_asid[mm]:
            self._broadcast(initiator, mm, pages, len(vpns) if vpns is not None else 0)
            return
        others = any(b for i, b in enumerate(self.mm_cpumask[mm]) if i != initiator)
        self._flush(initiator, self.mm_cpumask[mm], pages, self.mm_gen[mm], freed, mm)
        if self.mech != "ipi" and others:
            self._consider_global_asid(initiator, mm)

    # ---- broadcast flushes -------------------------------------------------------------
    def _consider_global_asid(self, initiator: int, mm: int) -> None:
        cpu = self.cpus[initiator]
        pid = 1000 + (cpu.queue[0] if cpu.queue else 0)
        jiffies = self.jiffies0 + math.floor(cpu.clock / self.jiffy)
        if pid % 32 != jiffies % 32:
            return
        mask = self.mm_cpumask[mm]
        if sum(mask) <= 3:
            return
        active = sum(1 for i, b in enumerate(mask)
                     if b and self.cpus[i].loaded == mm and not self.cpus[i].lazy)
        if active <= 3 or self.global_asid[mm] or self.asid_avail == 0:
            return
        if self.asid_last >= 2046 - 1:  # the pool wraps: flush, start again at 6
            self._flush_all(initiator)
            self.asid_last = NASID
        asid = self.asid_last
        while asid in self.asid_used:
            asid += 1
        if asid >= 2046:
            return
        self.asid_used.add(asid)
        self.asid_last = asid
        self.asid_avail -= 1
        self.global_asid[mm] = asid
        self.transition[mm] = True

    def _to_global(self, c: int, mm: int) -> None:
        cpu = self.cpus[c]
        if mm not in cpu.gmms:
            self._drop_mms(cpu, (mm,))
            cpu.asid_mm = [-1 if x == mm else x for x in cpu.asid_mm]
            cpu.gmms.add(mm)

    def _drop_everything(self, c: int, keep_kernel: bool) -> None:
        """Every entry of every mm, 2 MiB ones too (kernel.invalidate_all clears the row)."""
        cpu = self.cpus[c]
        for t in (cpu.itlb, cpu.dtlb, cpu.stlb, cpu.itlb2, cpu.dtlb2):
            t.drop_all(lambda k: keep_kernel and k[0] == KERNEL)

    def _invlpgb(self, initiator: int, n: int) -> None:
        self.cpus[initiator].counters["invlpgb_issued"] += n
        self.by_source[f"tlb_broadcasts_{self.source}"] += n
        self._charge(initiator, n * self.costs.invlpgb, "ipi")

    def _tlbsync(self, initiator: int) -> None:
        self.cpus[initiator].counters["tlbsync"] += 1
        self._charge(initiator, self.costs.tlbsync, "ipi")

    def _rar(self, initiator: int, mask: list[bool], n: int) -> None:
        co = self.costs
        remote = sum(mask) - int(mask[initiator])
        self.cpus[initiator].counters["rar_requests"] += n
        self.by_source[f"tlb_broadcasts_{self.source}"] += n
        self._charge(initiator, n * (co.rar_request + remote * co.ipi_send + co.vmexit + co.rar_wait),
                     "ipi")

    def _flush_all(self, initiator: int) -> None:
        """Every CPU's non-global entries (INVLPGB), or everything (RAR's flush_tlb_all)."""
        if self.mech == "invlpgb":
            self._invlpgb(initiator, 1)
            for c in range(len(self.cpus)):
                self._drop_everything(c, not self.pti)
            self._tlbsync(initiator)
        else:
            self.cpus[initiator].counters["nr_tlb_remote_flush"] += 1
            self._rar(initiator, [True] * len(self.cpus), 1)
            for c in range(len(self.cpus)):
                self._drop_everything(c, False)

    def _broadcast(self, initiator: int, mm: int, pages, npages: int) -> None:
        mask = list(self.mm_cpumask[mm])
        full = pages is None
        if self.mech == "invlpgb":
            n = 1 if full else -(-max(npages, 1) // self.count_max)
            self._invlpgb(initiator, 2 * n if self.pti else n)
            targets = [c for c, cpu in enumerate(self.cpus) if mm in cpu.gmms]
        elif any(mask):
            full = full or npages + 1 >= 63
            self._rar(initiator, mask, 2 if self.pti else 1)
            targets = [c for c, b in enumerate(mask) if b and mm in self.cpus[c].gmms]
        else:
            targets = []
        for c in targets:
            cpu = self.cpus[c]
            if full:
                self._drop_mms(cpu, (mm,))
            else:
                for v in pages:
                    self._drop_page(cpu, (mm, v))
        if self.transition[mm]:  # finish_asid_transition
            stragglers = [c for c, b in enumerate(self.mm_cpumask[mm])
                          if b and self.cpus[c].loaded == mm and mm not in self.cpus[c].gmms]
            if stragglers:
                self._multi(initiator, list(self.mm_cpumask[mm]), pages, self.mm_gen[mm], True, mm)
            else:
                self.transition[mm] = False
        if self.mech == "invlpgb":
            self._tlbsync(initiator)

    def _batch(self, initiator: int, mask: list[bool]) -> None:
        """arch_tlbbatch_flush of a batch with unmapped pages."""
        if not any(mask):
            return
        if self.mech == "invlpgb":
            self._flush_all(initiator)
        elif self.mech == "rar":
            self._rar(initiator, mask, 1)
            for c, b in enumerate(mask):
                if b:
                    self._drop_everything(c, False)
            if mask[initiator]:
                self._charge(initiator, self.costs.flush_full, "ipi")
        else:
            self._flush(initiator, mask, None, 0)

    def _flush_batched_pending(self, initiator: int, mm: int) -> None:
        if self.batched_pending[mm] != self.batched_flushed[mm]:
            self.source = "batched_pending"
            self._flush_range(initiator, None, mm, freed=True)
            self.source = "other"
            self.batched_flushed[mm] = self.batched_pending[mm]

    def _apply(self, ev: Event) -> None:
        mm = ev.mm
        keys = [(mm, v) for v in ev.vpns]
        if ev.kind == "range":
            self._flush_range(ev.cpu, ev.vpns, mm)
        elif ev.kind == "full":
            self._flush_range(ev.cpu, None, mm)
        elif ev.kind == "batch":
            self._batch(ev.cpu, list(ev.mask))
        elif ev.kind == "batched":  # a batched unmap recorded in mm->tlb_flush_batched
            self.batched_pending[mm] += 1
        elif ev.kind == "pending":
            self._flush_batched_pending(ev.cpu, mm)
        elif ev.kind == "mm":
            self._flush_range(ev.cpu, None, mm, freed=True)
        elif ev.kind == "wrprotect":
            for k in keys:
                if k in self.pt and self.pt[k].present:
                    self.pt[k].write = False
            self._flush_range(ev.cpu, ev.vpns, mm)
        elif ev.kind == "mprotect":  # change_protection: entry, per-PMD check, PTE walk, flush
            cpu = self.cpus[ev.cpu]
            cpu.times["fault"] += self._kernel_entry(ev.cpu)
            self._flush_batched_pending(ev.cpu, mm)
            present = [k for k in keys if k in self.pt and self.pt[k].present]
            for k in present:
                self.pt[k].write = False
            self._charge(ev.cpu, len(present) * self.costs.pte_update, "fault")
            self._flush_range(ev.cpu, ev.vpns, mm)
        elif ev.kind == "unmap":
            freed = []
            for k in keys:
                pte = self.pt.get(k)
                if pte is not None and pte.present:
                    pte.present = False
                    if not any(p.present and p.frame == pte.frame for p in self.pt.values()):
                        freed.append(pte.frame)  # (a shared file page stays while mapped)
            self._flush_range(ev.cpu, ev.vpns, mm)
            for f in freed:
                self.free[self.node_of(f)].insert(0, f)
        else:
            raise AssertionError(ev.kind)

    # ---- scheduling --------------------------------------------------------------------
    def _switch_mm(self, c: int, nxt: int) -> None:
        """switch_mm_irqs_off to another mm (threads of one mm switch without it)."""
        cpu = self.cpus[c]
        if self.mech != "ipi" and self.global_asid[nxt]:  # no flush (RAR: unless new to it)
            if cpu.loaded >= 0:
                if not (cpu.loaded in cpu.gmms and self.global_asid[cpu.loaded]):
                    cpu.asid_gen[cpu.asid] = cpu.gen
                self.mm_cpumask[cpu.loaded][c] = False
            new_cpu = not self.mm_cpumask[nxt][c]
            self.mm_cpumask[nxt][c] = True
            cpu.loaded = nxt
            self._to_global(c, nxt)
            if self.mech == "rar" and new_cpu:
                self._drop_mms(cpu, (nxt,))
                cpu.counters["itlb_flush"] += self.events_per_flush
                cpu.counters["dtlb_flush"] += 1
                cpu.counters["stlb_flush"] += 1
                cpu.counters["tlb_flush_on_task_switch"] += 1
                self._charge(c, self.costs.flush_full, "ipi")
            return
        if cpu.loaded >= 0:
            cpu.asid_gen[cpu.asid] = cpu.gen
            self.mm_cpumask[cpu.loaded][c] = False
        self.mm_cpumask[nxt][c] = True
        gen = self.mm_gen[nxt]
        if nxt in cpu.asid_mm:
            asid = cpu.asid_mm.index(nxt)
            flush = cpu.asid_gen[asid] < gen
        else:
            asid = cpu.next_asid
            cpu.next_asid += 1
            if asid >= NASID:
                asid, cpu.next_asid = 0, 1
            flush = True
        old = cpu.asid_mm[asid]
        cpu.loaded, cpu.asid = nxt, asid
        if not flush:
            cpu.gen = cpu.asid_gen[asid]
            return
        self._drop_mms(cpu, {old, nxt})
        cpu.counters["itlb_flush"] += self.events_per_flush
        cpu.counters["dtlb_flush"] += 1
        cpu.counters["stlb_flush"] += 1
        cpu.asid_mm[asid] = nxt
        cpu.gen = cpu.asid_gen[asid] = gen
        cpu.counters["tlb_flush_on_task_switch"] += 1
        self._charge(c, self.costs.flush_full, "ipi")

    def _switch(self, c: int) -> None:
        """The running task's slice is used up (to the queue's tail) or its records ended
        (it leaves): the next task of the queue runs."""
        cpu = self.cpus[c]
        t = cpu.queue.popleft()
        if self.pos[t] < len(self.streams[t]):
            cpu.queue.append(t)
        nxt = cpu.queue[0]
        if nxt != t:
            cpu.counters["nr_context_switches"] += 1
            if self.thread_mm[nxt] != cpu.loaded:
                self._switch_mm(c, self.thread_mm[nxt])
            elif self.mech != "ipi" and self.global_asid[cpu.loaded]:
                self._to_global(c, cpu.loaded)  # mm_needs_global_asid: reload
            self._charge(c, self.switch_cost)
        cpu.slice_end = cpu.clock + self.slice if len(cpu.queue) > 1 else float("inf")

    # ---- the replay --------------------------------------------------------------------
    def run(self) -> dict:
        quantum = float(self.cfg.replay.quantum)
        q_end = quantum
        ev = 0
        while True:
            for c, cpu in enumerate(self.cpus):
                while cpu.running:
                    ended = False
                    while cpu.clock < min(q_end, cpu.slice_end):
                        t = cpu.queue[0]
                        if self.pos[t] == len(self.streams[t]):
                            ended = True
                            break
                        op, key = self.streams[t][self.pos[t]]
                        fault = self._access(c, op, key)
                        if fault is None:
                            self.pos[t] += 1
                            continue
                        self._set_lazy()
                        self._fault(c, fault, key)
                    if ended and len(cpu.queue) == 1:
                        cpu.running = False
                    elif ended or cpu.clock >= cpu.slice_end:
                        self._switch(c)
                        continue
                    break
            if not any(cpu.running for cpu in self.cpus):
                break
            self._set_lazy()
            while ev < len(self.events) and self.events[ev].t_ns <= q_end:
                self._apply(self.events[ev])
                ev += 1
            q_end += quantum
        return self.totals()

    def _set_lazy(self) -> None:
        for cpu in self.cpus:
            if cpu.loaded >= 0 and not cpu.running:
                cpu.lazy = True

    def totals(self) -> dict:
        out = {c: sum(cpu.counters[c] for cpu in self.cpus) for c in COUNTERS}
        out["clocks"] = [cpu.clock for cpu in self.cpus]
        out["global_asids"] = sum(1 for a in self.global_asid if a)
        out["tlb_ipis_global_asid"] = self.ipis_on_global
        out.update(self.by_source)
        return out
