/* malloc_log.so: an LD_PRELOAD shim that logs the program's large allocations.
 *
 * Every malloc/calloc/realloc (operator new calls malloc) of at least MALLOC_LOG_MIN bytes
 * (default 4096) appends "alloc ADDR SIZE" to the file named by $MALLOC_LOG, every free of a
 * logged block "free ADDR". migrc-bench's validation (migrc_bench/validation.py) uses the log to
 * name the arrays of a real program's lackey trace (the neighbour array, the parent array, ...)
 * so that its accesses can be counted per array, as a generator's regions are.
 *
 * glibc's __libc_* entry points do the work, so there is no dlsym recursion. The log is written
 * with write(2) from a small stack buffer: no allocation inside the hooks.
 *
 * Build: gcc -O2 -shared -fPIC -o malloc_log.so malloc_log.c
 * Use:   MALLOC_LOG=allocs.txt LD_PRELOAD=./malloc_log.so ./prog ...
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

static int log_fd = -2;
static size_t log_min = 4096;
#define MAX_LOGGED 4096
static uintptr_t logged[MAX_LOGGED];

static int fd(void)
{
    if (log_fd == -2) {
        const char *path = getenv("MALLOC_LOG"), *min = getenv("MALLOC_LOG_MIN");
        log_fd = path ? open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644) : -1;
        if (min)
            log_min = (size_t)strtoull(min, NULL, 10);
    }
    return log_fd;
}

static char *hex(char *p, uintptr_t v)
{
    char tmp[17];
    int n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

static void note(const char *what, void *addr, size_t size, int with_size)
{
    char buf[64], *p = buf;
    int f = fd();
    if (f < 0 || !addr)
        return;
    while (*what)
        *p++ = *what++;
    *p++ = ' ';
    p = hex(p, (uintptr_t)addr);
    if (with_size) {
        *p++ = ' ';
        p = hex(p, size);
    }
    *p++ = '\n';
    (void)!write(f, buf, p - buf);
}

static void track(void *addr, size_t size)
{
    if (!addr || size < log_min || fd() < 0)
        return;
    for (int i = 0; i < MAX_LOGGED; i++)
        if (!logged[i]) {
            logged[i] = (uintptr_t)addr;
            break;
        }
    note("alloc", addr, size, 1);
}

static void untrack(void *addr)
{
    if (!addr)
        return;
    for (int i = 0; i < MAX_LOGGED; i++)
        if (logged[i] == (uintptr_t)addr) {
            logged[i] = 0;
            note("free", addr, 0, 0);
            return;
        }
}

void *malloc(size_t n)
{
    void *p = __libc_malloc(n);
    track(p, n);
    return p;
}

void *calloc(size_t n, size_t m)
{
    void *p = __libc_calloc(n, m);
    track(p, n * m);
    return p;
}

void *realloc(void *old, size_t n)
{
    untrack(old);
    void *p = __libc_realloc(old, n);
    track(p, n);
    return p;
}

void free(void *p)
{
    untrack(p);
    __libc_free(p);
}
