/* malloc_log.so: an LD_PRELOAD shim that logs the program's large allocations.
 *
 * Every malloc/calloc/realloc (operator new calls malloc) of at least MALLOC_LOG_MIN bytes
 * (default 4096) appends "alloc ADDR SIZE" (hex) to the file named by $MALLOC_LOG, and then
 * stores its sequence number k into marks[k % 4096], a static array whose address the log's
 * first line gives ("marks ADDR"). migrc-bench's validation (migrc_bench/validation.py) uses
 * the log to name the arrays of a real program's lackey trace (the neighbour array, the
 * parent array, ...) so that its accesses can be counted per array, as a generator's regions
 * are; the mark stores say where in the trace each allocation happened, so a block that is
 * freed and handed out again for another array is named right before and after.
 *
 * The program's own file mappings (mmap(2) of an fd through the C library's symbol) append
 * "mmap ADDR LENGTH" too, so that the llama check (migrc_bench/llama_check.py) finds where
 * run.c mapped its checkpoint; glibc's own mappings (the loader, malloc's large chunks) call
 * the kernel directly and are not seen. The mapping is the raw system call.
 *
 * glibc's __libc_* entry points do the work, so there is no dlsym recursion, and free is not
 * wrapped at all. The log is written with write(2) from a small stack buffer: no allocation
 * and no loop over earlier allocations inside the hooks, so the shim adds a handful of
 * accesses per large allocation to the program's trace and nothing else.
 *
 * Build: gcc -O2 -shared -fPIC -o malloc_log.so malloc_log.c
 * Use:   MALLOC_LOG=allocs.txt LD_PRELOAD=./malloc_log.so ./prog ...
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);

static int log_fd = -2;
static size_t log_min = 4096;
static unsigned long n_logged;
volatile unsigned long marks[4096];

static char *hex(char *p, uintptr_t v);

static int fd(void)
{
    if (log_fd == -2) {
        const char *path = getenv("MALLOC_LOG"), *min = getenv("MALLOC_LOG_MIN");
        log_fd = path ? open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644) : -1;
        if (min)
            log_min = (size_t)strtoull(min, NULL, 10);
        if (log_fd >= 0) {
            char buf[32] = "marks ", *p = hex(buf + 6, (uintptr_t)marks);
            *p++ = '\n';
            (void)!write(log_fd, buf, p - buf);
        }
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

static void track(void *addr, size_t size)
{
    char buf[48] = "alloc ", *p = buf + 6;
    int f;
    if (!addr || size < log_min || (f = fd()) < 0)
        return;
    p = hex(p, (uintptr_t)addr);
    *p++ = ' ';
    p = hex(p, size);
    *p++ = '\n';
    (void)!write(f, buf, p - buf);
    marks[n_logged % 4096] = n_logged;
    n_logged++;
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
    void *p = __libc_realloc(old, n);
    track(p, n);
    return p;
}

void *mmap(void *addr, size_t length, int prot, int flags, int fildes, off_t offset)
{
    long ret = syscall(SYS_mmap, addr, length, prot, flags, fildes, offset);
    char buf[48] = "mmap ", *p = buf + 5;
    int f;
    if (ret == -1)
        return MAP_FAILED;
    if (fildes >= 0 && (f = fd()) >= 0) {
        p = hex(p, (uintptr_t)ret);
        *p++ = ' ';
        p = hex(p, length);
        *p++ = '\n';
        (void)!write(f, buf, p - buf);
    }
    return (void *)ret;
}
