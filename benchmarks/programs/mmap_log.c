/* mmap_log.so: an LD_PRELOAD shim that logs the program's own file mappings.
 *
 * Every mmap(2) of a file (fd >= 0) made through the C library's mmap symbol appends
 * "mmap ADDR LENGTH PROT FLAGS" (hex) to the file named by $MMAP_LOG. migrc-bench's check of
 * the llama generator (migrc_bench/llama_check.py) uses it to find where run.c mapped its
 * checkpoint, so that the weights' accesses in a lackey trace can be counted as one region,
 * as the generator's file region is. glibc's own mappings (the loader, malloc's large chunks)
 * call the kernel directly and are not seen: only the program's calls are.
 *
 * The mapping itself is the raw system call (no dlsym, no allocation); the log line is
 * written with write(2) from a stack buffer.
 *
 * Build: gcc -O2 -shared -fPIC -o mmap_log.so mmap_log.c
 * Use:   MMAP_LOG=maps.txt LD_PRELOAD=./mmap_log.so ./prog ...
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

static char *put_hex(char *p, uintptr_t v)
{
    char tmp[17];
    int n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    *p++ = '0';
    *p++ = 'x';
    while (n)
        *p++ = tmp[--n];
    return p;
}

void *mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset)
{
    long ret = syscall(SYS_mmap, addr, length, prot, flags, fd, offset);
    const char *path = getenv("MMAP_LOG");
    if (fd >= 0 && ret != -1 && path) {
        int out = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (out >= 0) {
            char buf[96] = "mmap ", *p = buf + 5;
            p = put_hex(p, (uintptr_t)ret);
            *p++ = ' ';
            p = put_hex(p, length);
            *p++ = ' ';
            p = put_hex(p, (unsigned)prot);
            *p++ = ' ';
            p = put_hex(p, (unsigned)flags);
            *p++ = '\n';
            (void)!write(out, buf, p - buf);
            close(out);
        }
    }
    return ret == -1 ? MAP_FAILED : (void *)ret;
}
