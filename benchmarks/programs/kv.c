/* kv: a memcached-like key-value store under YCSB-style requests (migrc-bench's own code).
 *
 * The store is memcached's core, reduced to what touches memory on a request:
 *  - items of a 48-byte header (hash-chain link, free-list link, key, size, CAS, time) and
 *    the value, in chunks carved from 1 MiB slab pages (memcached's slab allocator);
 *  - a hash table of 2^hashpower bucket heads, hashpower 16 and doubled while there are more
 *    than 1.5 items per bucket (memcached's default and its expansion rule), chains headed
 *    by the newest item;
 *  - 4096 item locks picked by the hash (memcached's item_locks), a lock for the slab free list.
 * A get locks, walks the chain comparing keys and copies the value into the connection's
 * write buffer; a put takes a chunk from the free list, writes its header and the value
 * (from the connection's read buffer), links it in place of the old item and frees the old.
 *
 * Requests are YCSB's: a share of puts, keys from the scrambled zipfian generator (theta
 * 0.99 by default: a zipfian rank, FNV-1a-64 hashed, modulo the key count), one splitmix64
 * stream per thread. The client fills each thread's request buffer (4096 requests) before the
 * server, serve(), works through it: serve() is the kernel that migrc-bench's validation cuts
 * out of a lackey trace (tests/test_workloads_real.py); `trace gen kv` generates its trace.
 *
 *   kv KEYS VALUE_BYTES THETA PUT_SHARE OPS [SEED]       prints hits, misses and puts
 *
 * Build: gcc -O2 -fopenmp -no-pie -o kv kv.c -lm
 */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HDR 48
#define SLAB_BYTES (1 << 20)
#define N_LOCKS 4096
#define BATCH 4096
#define BUF_BYTES 16384

typedef struct item {
    struct item *h_next;   /* hash chain */
    struct item *next;     /* free list */
    uint64_t key;
    uint32_t nbytes;
    uint32_t flags;
    uint64_t cas;
    uint64_t time;
    char data[];
} item;

typedef struct store {
    item **buckets;
    uint64_t mask;
    item *free;
    uint64_t cas;
    uint32_t slab_lock;
    uint32_t pad;
    uint32_t locks[N_LOCKS];
} store;

typedef struct conn {
    uint64_t hits, misses, puts;
    char wbuf[BUF_BYTES];
    char rbuf[BUF_BYTES];
} conn;

static inline uint64_t mix64(uint64_t k) /* MurmurHash3's fmix64 */
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

static inline void lock(uint32_t *l)
{
    while (__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE))
        ;
}

static inline void unlock(uint32_t *l) { __atomic_store_n(l, 0, __ATOMIC_RELEASE); }

__attribute__((noinline)) void serve(store *s, const uint64_t *reqs, int n, conn *c,
                                     uint32_t nbytes)
{
    for (int i = 0; i < n; i++) {
        uint64_t r = reqs[i], key = r >> 1, hv = mix64(key);
        uint32_t *l = &s->locks[hv & (N_LOCKS - 1)];
        lock(l);
        item **link = &s->buckets[hv & s->mask], *it = *link;
        while (it && it->key != key) {
            link = &it->h_next;
            it = *link;
        }
        if (!(r & 1)) {                                    /* get */
            if (it) {
                memcpy(c->wbuf, it->data, it->nbytes);
                c->hits++;
            } else {
                c->misses++;
            }
        } else {                                           /* put */
            lock(&s->slab_lock);
            item *nw = s->free;
            s->free = nw->next;
            unlock(&s->slab_lock);
            nw->key = key;
            nw->nbytes = nbytes;
            nw->cas = ++s->cas;
            memcpy(nw->data, c->rbuf, nbytes);
            if (it) {
                nw->h_next = it->h_next;
                *link = nw;
                lock(&s->slab_lock);
                it->next = s->free;
                s->free = it;
                unlock(&s->slab_lock);
            } else {
                nw->h_next = s->buckets[hv & s->mask];
                s->buckets[hv & s->mask] = nw;
            }
            c->puts++;
        }
        unlock(l);
    }
}

/* ---- the client: YCSB's scrambled zipfian keys ---------------------------------------- */
typedef struct zipf {
    double theta, zetan, alpha, eta, half_pow_theta;
    uint64_t n;
} zipf;

static inline uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline double uniform(uint64_t *x) { return (splitmix64(x) >> 11) * 0x1.0p-53; }

static zipf make_zipf(uint64_t n, double theta)
{
    zipf z = {theta, 0, 1.0 / (1.0 - theta), 0, pow(0.5, theta), n};
    double zeta2 = 1.0 + pow(0.5, theta);
    for (uint64_t i = 1; i <= n; i++)
        z.zetan += 1.0 / pow((double)i, theta);
    z.eta = (1.0 - pow(2.0 / (double)n, 1.0 - theta)) / (1.0 - zeta2 / z.zetan);
    return z;
}

static uint64_t zipf_rank(const zipf *z, uint64_t *x) /* YCSB ZipfianGenerator.nextLong */
{
    double u = uniform(x), uz = u * z->zetan;
    if (uz < 1.0)
        return 0;
    if (uz < 1.0 + z->half_pow_theta)
        return 1;
    return (uint64_t)((double)z->n * pow(z->eta * u - z->eta + 1.0, z->alpha));
}

static uint64_t fnv1a64(uint64_t v) /* YCSB Utils.fnvhash64 */
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int i = 0; i < 8; i++) {
        h ^= v & 0xff;
        v >>= 8;
        h *= 1099511628211ULL;
    }
    return (int64_t)h < 0 ? -h : h;
}

__attribute__((noinline)) void client(uint64_t *reqs, int n, const zipf *z, uint64_t *x,
                                      double put_share, uint64_t keys)
{
    for (int i = 0; i < n; i++) {
        uint64_t key = fnv1a64(zipf_rank(z, x)) % keys;
        reqs[i] = key << 1 | (uniform(x) < put_share);
    }
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: kv KEYS VALUE_BYTES THETA PUT_SHARE OPS [SEED]\n");
        return 2;
    }
    uint64_t keys = strtoull(argv[1], NULL, 10), ops = strtoull(argv[5], NULL, 10);
    uint32_t nbytes = (uint32_t)atoi(argv[2]);
    double theta = atof(argv[3]), put_share = atof(argv[4]);
    uint64_t seed = argc > 6 ? strtoull(argv[6], NULL, 10) : 0;
    int threads = omp_get_max_threads();
    uint64_t chunk = (HDR + nbytes + 7) & ~7ULL, per_slab = SLAB_BYTES / chunk;
    uint64_t n_items = keys + 2 * threads + 1; /* spare chunks for puts in flight */

    store *s = calloc(1, sizeof *s);
    int hp = 16;
    while (keys > 3 * (1ULL << hp) / 2)
        hp++;
    s->mask = (1ULL << hp) - 1;
    s->buckets = calloc(1ULL << hp, sizeof *s->buckets);
    item **slots = malloc(n_items * sizeof *slots);
    for (uint64_t i = 0; i < n_items; i += per_slab) {
        char *slab = malloc(SLAB_BYTES);
        for (uint64_t j = 0; j < per_slab && i + j < n_items; j++)
            slots[i + j] = (item *)(slab + j * chunk);
    }
    for (uint64_t k = 0; k < keys; k++) { /* the load phase: keys in order */
        item *it = slots[k];
        uint64_t hv = mix64(k);
        it->key = k;
        it->nbytes = nbytes;
        it->cas = ++s->cas;
        memset(it->data, (int)(k & 0xff), nbytes);
        it->h_next = s->buckets[hv & s->mask];
        s->buckets[hv & s->mask] = it;
    }
    for (uint64_t i = n_items; i-- > keys;) { /* the rest is the free list, lowest first */
        slots[i]->next = s->free;
        s->free = slots[i];
    }
    zipf z = make_zipf(keys, theta);
    uint64_t hits = 0, misses = 0, puts = 0;
#pragma omp parallel reduction(+ : hits, misses, puts)
    {
        int t = omp_get_thread_num();
        uint64_t lo = ops * t / threads, hi = ops * (t + 1) / threads;
        uint64_t x = seed + (uint64_t)t;
        conn *c = calloc(1, sizeof *c);
        uint64_t *reqs = malloc(BATCH * sizeof *reqs);
        memset(c->rbuf, 'v', BUF_BYTES);
        for (uint64_t done = lo; done < hi; done += BATCH) {
            int n = hi - done < BATCH ? (int)(hi - done) : BATCH;
            client(reqs, n, &z, &x, put_share, keys);
            serve(s, reqs, n, c, nbytes);
        }
        hits += c->hits;
        misses += c->misses;
        puts += c->puts;
    }
    printf("%llu %llu %llu\n", (unsigned long long)hits, (unsigned long long)misses,
           (unsigned long long)puts);
    return 0;
}
