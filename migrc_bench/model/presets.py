"""TLB geometry and cost presets, each figure with where it comes from.

The L1 TLBs have separate arrays for 4 KiB and for 2 MiB translations; the STLB is shared by
both (a 2 MiB entry is indexed by its 2 MiB page number). The 2 MiB arrays are used only when
``memory.thp`` maps something with PMDs.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TlbGeometry:
    itlb_entries: int
    itlb_ways: int
    dtlb_entries: int
    dtlb_ways: int
    stlb_entries: int
    stlb_ways: int
    source: str
    itlb2m_entries: int = 8
    itlb2m_ways: int = 8
    dtlb2m_entries: int = 32
    dtlb2m_ways: int = 4


TLB_PRESETS: dict[str, TlbGeometry] = {
    # Skylake-SP (the seed's host class): Intel 64 and IA-32 Architectures Optimization Reference
    # Manual, table "TLB parameters of the Skylake microarchitecture": ITLB 4K 128 entries 8-way,
    # DTLB 4K 64 entries 4-way, STLB (4K/2M) 1536 entries 12-way. 2 MiB: ITLB 8 entries per thread
    # (associativity not stated by the manual; CPUID leaf 2 descriptor 0x76 "fully associative,
    # 8 entries"), DTLB 2M/4M 32 entries 4-way (same table; CPUID descriptor 0xC4). The STLB's
    # 12 ways are the manual's; CPUID descriptor 0xC3 says 6-way (J. McCalpin, Intel Software
    # Tuning forum thread 1371605, quoting manual 248966-045 table 2-15 and a Skylake-SP dump).
    "skylake-sp": TlbGeometry(128, 8, 64, 4, 1536, 12,
                              "Intel optimization manual, Skylake microarchitecture TLB table",
                              8, 8, 32, 4),
    # Sapphire Rapids (Golden Cove cores): ITLB 4K 256 entries 8-way, DTLB (loads) 4K 64 entries
    # 4-way, STLB 2048 entries 16-way shared by 4K/2M pages (optimization manual, Golden Cove TLB
    # table). The 16-entry fully associative store DTLB is folded into the load DTLB. 2 MiB:
    # ITLB 32 entries (associativity not published: taken as fully associative), DTLB 32 entries
    # 4-way (Golden Cove TLB table; Intel Architecture Day 2021).
    "sapphire-rapids": TlbGeometry(256, 8, 64, 4, 2048, 16,
                                   "Intel optimization manual, Golden Cove TLB table",
                                   32, 32, 32, 4),
    # AMD Zen 4 (EPYC 9004 "Genoa"): INVLPGB (Zen 3 and later), so broadcast flushes. Zen 4's own
    # TLB sizes could NOT be sourced (no stored AMD SOG or measurement); these are Zen 2's, the
    # latest AMD core with sourced figures, a lower bound on Zen 4's reach: L1 iTLB 64 fully
    # associative (7-cpu.com/cpu/Zen2.html), L1 dTLB 64 fully associative, L2 dTLB 2048
    # entries 12-way (WikiChip amd/microarchitectures/zen_2). The model's STLB needs a
    # power-of-two set count: 2048 entries 16-way (128 sets) instead of 12-way; the separate
    # 512-entry L2 iTLB is folded into the unified STLB as on Intel.
    "zen4": TlbGeometry(64, 64, 64, 64, 2048, 16,
                        "Zen 4 sizes unsourced: Zen 2's (WikiChip zen_2, 7-cpu.com Zen2), "
                        "L2 dTLB 16-way for 12-way",
                        # 2 MiB: Zen's L1 TLBs hold every page size in one fully associative
                        # array (Zen 2: 64 entries each); modelled as a separate 2M array of the
                        # same size (more reach than one shared array)
                        64, 64, 64, 64),
}

# The remote flush mechanism each preset implies (machine.flush's default): INVLPGB on Zen 3
# and later (X86_FEATURE_INVLPGB, v6.15); IPIs on the Intel presets (RAR, present from
# Sapphire Rapids on, is an unmerged RFC: machine.flush = "rar" asks for it).
PRESET_FLUSH: dict[str, str] = {"skylake-sp": "ipi", "sapphire-rapids": "ipi", "zen4": "invlpgb"}


# Cost presets. Keys match the cost.* config keys; times in ns, bandwidths in bytes/s.
COST_PRESETS: dict[str, dict[str, float]] = {
    "bare-metal": {
        "cpi": 0.7,                  # non-stall cycles per instruction of a memory-bound loop
        "stlb_hit_cycles": 9.0,      # Skylake STLB hit latency (optimization manual: ~9 cycles)
        "walk_ns": 25.0,             # 4-level walk, upper levels in paging-structure caches, PTE from L2/LLC
        "nested_walk_factor": 1.0,   # no EPT on bare metal
        "cache_miss_rate": 0.3,      # share of data accesses served by memory (XSBench: random rows)
        "dram_latency": 90.0,        # local DDR4 load-to-use latency
        "cxl_latency": 200.0,        # CXL-ASIC ≈ 2.2× DDR latency (CXL-DMSim silicon validation)
        "ipi_send": 150.0,           # per target: x2APIC ICR write + bookkeeping
        "ipi_wait": 1500.0,          # initiator waits for the slowest ack (1-3 µs round trips on Xeons)
        "ipi_receive": 600.0,        # interrupt entry/exit + flush_tlb_func on the receiver
        "vmexit": 0.0,               # no hypervisor
        "invlpgb": 100.0,            # ASSUMPTION (no published latency): about one INVLPG, which
                                     # the kernel's ceiling comment puts at ~100 ns
        "tlbsync": 1000.0,           # ASSUMPTION: a fabric round trip to every CPU, no interrupt
                                     # entry on the targets: below ipi_wait's 1.5 us
        "rar_request": 100.0,        # ASSUMPTION: payload slot + action vector writes
        "rar_wait": 1000.0,          # ASSUMPTION: as tlbsync, the slowest target's microcode ack
        "flush_full": 150.0,         # CR3 write / INVPCID single-context
        "flush_one": 100.0,          # one INVLPG (arch/x86/mm/tlb.c ceiling comment: ~100 ns)
        "fault": 1000.0,             # minor fault entry, handling and return
        "major_fault": 20000.0,      # assumption: one 4 KiB NVMe read (~10-20 us; readahead
                                     # and the device's queueing not modelled)
        "migrate_page": 2500.0,      # per page: isolate, rmap walk, unmap, remap, free (no copy)
        "pte_update": 20.0,          # change_prot_numa per PTE
        "lru_scan": 500.0,           # kswapd per folio: isolate + folio_referenced rmap walk
        "copy_bandwidth_dram": 10e9, # single-thread 4 KiB copy into DRAM
        "copy_bandwidth_cxl": 5e9,   # into the CXL node
    },
    "kvm-guest": {
        "cpi": 0.7,
        "stlb_hit_cycles": 9.0,
        "walk_ns": 25.0,
        "nested_walk_factor": 2.0,   # 2D walk (guest + EPT), mostly cached: ~2× native
        "cache_miss_rate": 0.3,
        "dram_latency": 90.0,
        "cxl_latency": 140.0,        # the seed's "CXL" node was plain host DRAM behind a CPU-less node
        "ipi_send": 300.0,           # per target: the host kicks each receiving vCPU
        "ipi_wait": 3000.0,          # round trip to the slowest ack through two VM transitions
        "ipi_receive": 3000.0,       # receiver: kicked out of guest mode, injection, handler, EOI exit
        "vmexit": 1500.0,            # sender: one exit per flush call (PV send-IPI hypercall),
                                     # not per target
        "invlpgb": 100.0,            # ASSUMPTION: as bare metal (an instruction; no exit modelled)
        "tlbsync": 1000.0,           # ASSUMPTION: as bare metal
        "rar_request": 100.0,        # ASSUMPTION: as bare metal; RAR's APIC send costs ipi_send
                                     # per target and one vmexit, as an IPI's
        "rar_wait": 1000.0,          # ASSUMPTION: as bare metal
        "flush_full": 150.0,
        "flush_one": 100.0,
        "fault": 1500.0,             # guest fault plus occasional EPT violation
        "major_fault": 20000.0,      # as bare metal (assumption): the read dominates
        "migrate_page": 2500.0,
        "pte_update": 20.0,
        "lru_scan": 1000.0,          # 2x bare metal: the rmap walk's cold page-table and struct
                                     # page accesses take 2-D walks; the seed's own table implies
                                     # kswapd spends ~1.5 flush round trips per demoted page
        "copy_bandwidth_dram": 10e9,
        "copy_bandwidth_cxl": 5e9,
    },
}
