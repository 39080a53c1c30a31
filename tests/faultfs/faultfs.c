/*
 * faultfs: an LD_PRELOAD library that gives the broker under test a misbehaving disk, for the
 * fault tests in tests/it/faults.rs. It wraps the calls sprat's storage makes (write, pwrite,
 * writev, fsync, fdatasync) and only touches files below FAULTFS_DIR.
 *
 *   FAULTFS_DIR       the directory whose files are affected (the log directory).
 *   FAULTFS_CTL       a file the test writes to switch faults on and off; read on every call.
 *                     "enospc"     writes fail as on a full disk: a write of more than one byte
 *                                  first stores half of it (a short write, as a disk filling up
 *                                  mid-write does), the rest fails with ENOSPC.
 *                     "eio_fsync"  fsync and fdatasync fail with EIO. Like the kernel, the data
 *                                  stays in the page cache and the next fsync succeeds: only the
 *                                  program can remember that the failed one lost something.
 *   FAULTFS_SYNC_LOG  a file to which every successful fsync or fdatasync of a regular file
 *                     appends "<size> <path>": what a power loss would keep (tests/it/faults.rs
 *                     cuts each file back to it).
 *
 * Built by the tests with `cc -shared -fPIC`; not part of the broker.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

enum { FAULT_ENOSPC = 1, FAULT_EIO_FSYNC = 2 };

typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);
typedef ssize_t (*writev_fn)(int, const struct iovec *, int);
typedef int (*sync_fn)(int);

static write_fn real_write;
static pwrite_fn real_pwrite;
static pwrite_fn real_pwrite64;
static writev_fn real_writev;
static sync_fn real_fsync;
static sync_fn real_fdatasync;

static const char *fault_dir;
static size_t fault_dir_len;
static const char *ctl_path;
static const char *sync_log_path;

__attribute__((constructor)) static void faultfs_init(void) {
    real_write = (write_fn)dlsym(RTLD_NEXT, "write");
    real_pwrite = (pwrite_fn)dlsym(RTLD_NEXT, "pwrite");
    real_pwrite64 = (pwrite_fn)dlsym(RTLD_NEXT, "pwrite64");
    real_writev = (writev_fn)dlsym(RTLD_NEXT, "writev");
    real_fsync = (sync_fn)dlsym(RTLD_NEXT, "fsync");
    real_fdatasync = (sync_fn)dlsym(RTLD_NEXT, "fdatasync");
    fault_dir = getenv("FAULTFS_DIR");
    fault_dir_len = fault_dir ? strlen(fault_dir) : 0;
    ctl_path = getenv("FAULTFS_CTL");
    sync_log_path = getenv("FAULTFS_SYNC_LOG");
}

/* The path of an open file, or 0 when it has none. */
static int fd_path(int fd, char *path, size_t size) {
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, size - 1);
    if (n <= 0) {
        return 0;
    }
    path[n] = '\0';
    return 1;
}

/* Whether the file is below FAULTFS_DIR. */
static int affected(int fd) {
    char path[4096];
    if (fault_dir_len == 0 || !fd_path(fd, path, sizeof path)) {
        return 0;
    }
    return strncmp(path, fault_dir, fault_dir_len) == 0;
}

/* The faults switched on in FAULTFS_CTL now. */
static int faults(void) {
    if (!ctl_path) {
        return 0;
    }
    int fd = open(ctl_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    char text[256];
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0) {
        return 0;
    }
    text[n] = '\0';
    int mask = 0;
    if (strstr(text, "enospc")) {
        mask |= FAULT_ENOSPC;
    }
    if (strstr(text, "eio_fsync")) {
        mask |= FAULT_EIO_FSYNC;
    }
    return mask;
}

/* How many bytes a write of `count` may store now, or -1 (errno set) when it must fail. */
static ssize_t allowed(int fd, size_t count) {
    if (count == 0 || !affected(fd) || !(faults() & FAULT_ENOSPC)) {
        return (ssize_t)count;
    }
    if (count > 1) {
        return (ssize_t)(count / 2);
    }
    errno = ENOSPC;
    return -1;
}

ssize_t write(int fd, const void *buf, size_t count) {
    ssize_t n = allowed(fd, count);
    return n < 0 ? -1 : real_write(fd, buf, (size_t)n);
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset) {
    ssize_t n = allowed(fd, count);
    return n < 0 ? -1 : real_pwrite(fd, buf, (size_t)n, offset);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off_t offset) {
    ssize_t n = allowed(fd, count);
    return n < 0 ? -1 : real_pwrite64(fd, buf, (size_t)n, offset);
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt) {
    if (iovcnt > 0 && affected(fd) && (faults() & FAULT_ENOSPC)) {
        /* Only the first buffer, halved: a short write, then ENOSPC. */
        return write(fd, iov[0].iov_base, iov[0].iov_len);
    }
    return real_writev(fd, iov, iovcnt);
}

/* Appends "<size> <path>" to FAULTFS_SYNC_LOG after a successful sync of a regular file. */
static void record_sync(int fd) {
    char path[4096];
    struct stat st;
    if (!sync_log_path || !fd_path(fd, path, sizeof path) || fstat(fd, &st) != 0 ||
        !S_ISREG(st.st_mode)) {
        return;
    }
    char line[4200];
    int len = snprintf(line, sizeof line, "%lld %s\n", (long long)st.st_size, path);
    int log = open(sync_log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log >= 0) {
        /* One write per line: O_APPEND keeps lines from several threads whole. */
        (void)real_write(log, line, (size_t)len);
        close(log);
    }
}

static int faulty_sync(int fd, sync_fn real) {
    if (affected(fd)) {
        if (faults() & FAULT_EIO_FSYNC) {
            errno = EIO;
            return -1;
        }
        int result = real(fd);
        if (result == 0) {
            record_sync(fd);
        }
        return result;
    }
    return real(fd);
}

int fsync(int fd) { return faulty_sync(fd, real_fsync); }

int fdatasync(int fd) { return faulty_sync(fd, real_fdatasync); }
