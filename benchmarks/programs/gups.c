/* GUPS: the HPCC RandomAccess update loop, written from the published algorithm.
 *
 * Table of 2^LOG2 64-bit words, Table[i] = i; UPDATES updates (default 4 x 2^LOG2, HPCC's
 * NUPDATE), each  ran = (ran << 1) ^ (ran < 0 ? POLY : 0);  Table[ran & (size-1)] ^= ran.
 * The random stream is HPCC's: HPCC_starts(k) jumps to its k-th element (the squaring method
 * of the reference code), so OpenMP thread t of T runs updates [U t/T, U (t+1)/T) of the one
 * stream, as the MPI version splits it across processes. FIRST shifts the whole stream
 * (migrc-bench's --seed).
 *
 *   gups LOG2 [UPDATES [FIRST]]        prints the XOR of the table (a checksum)
 *
 * This is migrc-bench's reference program for checking `trace gen gups` against a real trace
 * (tests/test_workloads_real.py): the kernel is update(), cut out of a lackey trace by its
 * symbol. Build: gcc -O2 -fopenmp -no-pie -o gups gups.c
 */
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define POLY 0x0000000000000007ULL
#define PERIOD 1317624576693539401LL

/* HPCC_starts: the n-th element of the stream, by repeated squaring over GF(2). */
__attribute__((noinline)) uint64_t starts(int64_t n)
{
    uint64_t m2[64], temp, ran;
    int i, j;

    while (n < 0)
        n += PERIOD;
    while (n > PERIOD)
        n -= PERIOD;
    if (n == 0)
        return 0x1;
    temp = 0x1;
    for (i = 0; i < 64; i++) {
        m2[i] = temp;
        temp = (temp << 1) ^ ((int64_t)temp < 0 ? POLY : 0);
        temp = (temp << 1) ^ ((int64_t)temp < 0 ? POLY : 0);
    }
    for (i = 62; i >= 0; i--)
        if ((n >> i) & 1)
            break;
    ran = 0x2;
    while (i > 0) {
        temp = 0;
        for (j = 0; j < 64; j++)
            if ((ran >> j) & 1)
                temp ^= m2[j];
        ran = temp;
        i -= 1;
        if ((n >> i) & 1)
            ran = (ran << 1) ^ ((int64_t)ran < 0 ? POLY : 0);
    }
    return ran;
}

__attribute__((noinline)) void update(uint64_t *table, uint64_t mask, int64_t updates,
                                      int64_t first)
{
#pragma omp parallel
    {
        int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
        int64_t lo = updates * t / nt, hi = updates * (t + 1) / nt;
        uint64_t ran = starts(first + lo);
        for (int64_t i = lo; i < hi; i++) {
            ran = (ran << 1) ^ ((int64_t)ran < 0 ? POLY : 0);
            table[ran & mask] ^= ran;
        }
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: gups LOG2 [UPDATES [FIRST]]\n");
        return 2;
    }
    int log2 = atoi(argv[1]);
    uint64_t size = 1ULL << log2;
    int64_t updates = argc > 2 ? atoll(argv[2]) : (int64_t)(4 * size);
    int64_t first = argc > 3 ? atoll(argv[3]) : 0;
    uint64_t *table = malloc(size * sizeof *table);
    if (!table)
        return 1;
    for (uint64_t i = 0; i < size; i++)
        table[i] = i;
    update(table, size - 1, updates, first);
    uint64_t sum = 0;
    for (uint64_t i = 0; i < size; i++)
        sum ^= table[i];
    printf("%llu\n", (unsigned long long)sum);
    return 0;
}
