/* Context-switch cost: two processes pinned to one CPU pass a byte through two pipes
 * (lmbench lat_ctx's method, size 0); the pipe read/write cost measured in one process
 * without a switch is subtracted. CPU time (getrusage), not wall time, so other load on the
 * machine does not count. Prints ns per switch. */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
static double cpu_ns(int who) {
    struct rusage r; getrusage(who, &r);
    return (r.ru_utime.tv_sec + r.ru_stime.tv_sec) * 1e9 + (r.ru_utime.tv_usec + r.ru_stime.tv_usec) * 1e3;
}
int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 200000;
    cpu_set_t set; CPU_ZERO(&set); CPU_SET(0, &set); sched_setaffinity(0, sizeof set, &set);
    int a[2], b[2]; char c = 0;
    /* pipe overhead: one process, write then read its own pipe */
    pipe(a);
    double t0 = cpu_ns(RUSAGE_SELF);
    for (long i = 0; i < n; i++) { write(a[1], &c, 1); read(a[0], &c, 1); }
    double pipe_ns = (cpu_ns(RUSAGE_SELF) - t0) / n;  /* one write + one read */
    pipe(b);
    double s0 = cpu_ns(RUSAGE_SELF);
    pid_t p = fork();
    if (p == 0) {
        for (long i = 0; i < n; i++) { read(a[0], &c, 1); write(b[1], &c, 1); }
        _exit(0);
    }
    for (long i = 0; i < n; i++) { write(a[1], &c, 1); read(b[0], &c, 1); }
    waitpid(p, NULL, 0);
    double total = (cpu_ns(RUSAGE_SELF) - s0) + cpu_ns(RUSAGE_CHILDREN);
    /* 2n switches, 2n writes and 2n reads */
    printf("pipe write+read %.0f ns; per switch (process) %.0f ns\n", pipe_ns, (total - 2 * n * pipe_ns) / (2.0 * n));
    return 0;
}
