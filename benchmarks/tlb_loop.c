/* The C yardstick of benchmarks/bench_replay.py: a minimal per-CPU set-associative TLB loop.
 *
 * Per CPU (one per trace thread): an iTLB, a dTLB and a unified STLB, set-associative with true
 * LRU (a use stamp per entry; the victim is the first empty way, else the least recently used),
 * indexed by vpn & (sets - 1) and tagged by the vpn. A fetch looks up the iTLB, a load or store
 * the dTLB, a modify (lackey's M) the dTLB twice (load, then store); an L1 miss looks up the
 * STLB (refilling the L1), an STLB miss "walks" (refilling both). An access that crosses a page
 * boundary is one access per page, each with its own stamp, as in migrc-bench's replay.
 *
 * No page table, no faults, no flushes, no costs: with tiering off and every page present and
 * writable where it is written, migrc-bench's per-CPU streams are independent, so its miss
 * counts must equal these (bench_replay.py asserts it). The records sit in memory as a raw
 * array, read from a file before the clock starts.
 *
 * usage: tlb_loop RECORDS NCPU ITLB_ENTRIES ITLB_WAYS DTLB_ENTRIES DTLB_WAYS STLB_ENTRIES STLB_WAYS
 * RECORDS: packed little-endian records {u64 addr; u16 tid; u8 op; u8 size} (12 bytes).
 * Prints one JSON object: the seconds of the loop and the counter totals.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#pragma pack(push, 1)
typedef struct {
    uint64_t addr;
    uint16_t tid;
    uint8_t op;
    uint8_t size;
} record;
#pragma pack(pop)

typedef struct {
    int64_t *tag; /* vpn, or -1 when empty */
    uint64_t *lru;
    int64_t sets, ways;
} level;

enum { IFETCH, LOAD, STORE, MODIFY };
enum { ITLB_HITS, ITLB_L1_MISSES, DTLB_HITS, DTLB_L1_MISSES, STLB_HITS, STLB_MISSES,
       ITLB_MISSES, DTLB_LOAD_MISSES, DTLB_STORE_MISSES, ACCESSES, N_COUNTS };
static const char *names[N_COUNTS] = {
    "itlb_hits", "itlb_l1_misses", "dtlb_hits", "dtlb_l1_misses", "stlb_hits", "stlb_misses",
    "itlb_misses", "dtlb_load_misses", "dtlb_store_misses", "accesses"};

static level make_level(int64_t ncpu, int64_t entries, int64_t ways) {
    level l = {malloc(sizeof(int64_t) * ncpu * entries), calloc(ncpu * entries, sizeof(uint64_t)),
               entries / ways, ways};
    for (int64_t i = 0; i < ncpu * entries; i++) l.tag[i] = -1;
    return l;
}

/* index of vpn's entry in CPU c's level, or -1; a hit becomes the most recent of its set */
static inline int64_t lookup(level *l, int64_t c, int64_t vpn, uint64_t stamp) {
    int64_t base = (c * l->sets + (vpn & (l->sets - 1))) * l->ways;
    for (int64_t i = base; i < base + l->ways; i++)
        if (l->tag[i] == vpn) {
            l->lru[i] = stamp;
            return i;
        }
    return -1;
}

static inline void fill(level *l, int64_t c, int64_t vpn, uint64_t stamp) {
    int64_t base = (c * l->sets + (vpn & (l->sets - 1))) * l->ways;
    int64_t victim = base;
    uint64_t oldest = l->lru[base];
    for (int64_t i = base; i < base + l->ways; i++) {
        if (l->tag[i] == -1) {
            victim = i;
            break;
        }
        if (l->lru[i] < oldest) {
            oldest = l->lru[i];
            victim = i;
        }
    }
    l->tag[victim] = vpn;
    l->lru[victim] = stamp;
}

static inline void translate(level *l1, level *stlb, int64_t c, int64_t vpn, int kind,
                             uint64_t stamp, int64_t *n) {
    int fetch = kind == IFETCH;
    if (lookup(l1, c, vpn, stamp) >= 0) {
        n[fetch ? ITLB_HITS : DTLB_HITS]++;
        return;
    }
    n[fetch ? ITLB_L1_MISSES : DTLB_L1_MISSES]++;
    if (lookup(stlb, c, vpn, stamp) >= 0) {
        n[STLB_HITS]++;
    } else {
        n[STLB_MISSES]++;
        n[fetch ? ITLB_MISSES : kind == LOAD ? DTLB_LOAD_MISSES : DTLB_STORE_MISSES]++;
        fill(stlb, c, vpn, stamp);
    }
    fill(l1, c, vpn, stamp);
}

int main(int argc, char **argv) {
    if (argc != 9) {
        fprintf(stderr, "usage: %s RECORDS NCPU ITLB_ENTRIES ITLB_WAYS DTLB_ENTRIES DTLB_WAYS "
                        "STLB_ENTRIES STLB_WAYS\n", argv[0]);
        return 2;
    }
    FILE *fh = fopen(argv[1], "rb");
    if (!fh) {
        perror(argv[1]);
        return 2;
    }
    fseek(fh, 0, SEEK_END);
    long bytes = ftell(fh);
    fseek(fh, 0, SEEK_SET);
    int64_t nrec = bytes / (long)sizeof(record);
    record *rec = malloc(bytes > 0 ? bytes : 1);
    if (nrec && fread(rec, sizeof(record), nrec, fh) != (size_t)nrec) {
        perror("fread");
        return 2;
    }
    fclose(fh);
    int64_t ncpu = atoll(argv[2]);
    level itlb = make_level(ncpu, atoll(argv[3]), atoll(argv[4]));
    level dtlb = make_level(ncpu, atoll(argv[5]), atoll(argv[6]));
    level stlb = make_level(ncpu, atoll(argv[7]), atoll(argv[8]));
    uint64_t *stamp = calloc(ncpu, sizeof(uint64_t));
    int64_t *n = calloc(ncpu * N_COUNTS, sizeof(int64_t));

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int64_t r = 0; r < nrec; r++) {
        int64_t c = rec[r].tid;
        int op = rec[r].op;
        int64_t first = (int64_t)(rec[r].addr >> 12);
        int64_t last = (int64_t)((rec[r].addr + (rec[r].size ? rec[r].size : 1) - 1) >> 12);
        int64_t *nc = n + c * N_COUNTS;
        for (int64_t vpn = first; vpn <= last; vpn++) {
            uint64_t st = ++stamp[c];
            if (op == IFETCH) {
                translate(&itlb, &stlb, c, vpn, IFETCH, st, nc);
            } else {
                translate(&dtlb, &stlb, c, vpn, op == STORE ? STORE : LOAD, st, nc);
                if (op == MODIFY) translate(&dtlb, &stlb, c, vpn, STORE, st, nc);
            }
            nc[ACCESSES]++;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);

    double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
    printf("{\"seconds\": %.6f, \"records\": %lld", secs, (long long)nrec);
    for (int k = 0; k < N_COUNTS; k++) {
        long long total = 0;
        for (int64_t c = 0; c < ncpu; c++) total += n[c * N_COUNTS + k];
        printf(", \"%s\": %lld", names[k], total);
    }
    printf("}\n");
    return 0;
}
