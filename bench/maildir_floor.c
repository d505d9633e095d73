/*
 * maildir_floor - the least a safe per-process Maildir delivery must do,
 * as a yardstick for maildir_deliver's benchmark: read the message from
 * stdin, write it to DIR/tmp/<unique>, fsync it, rename it into
 * DIR/new/, fsync DIR/new. No quota, no checks, no configuration.
 *
 *   maildir_floor DIR < message
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: maildir_floor DIR < message\n");
        return 64;
    }
    static char buf[1 << 16];
    char tmp[4096], dst[4096], newdir[4096];
    struct timeval tv;
    gettimeofday(&tv, NULL);
    snprintf(tmp, sizeof tmp, "%s/tmp/%ld.M%06ldP%d.floor", argv[1], (long)tv.tv_sec, (long)tv.tv_usec, (int)getpid());
    snprintf(dst, sizeof dst, "%s/new/%ld.M%06ldP%d.floor", argv[1], (long)tv.tv_sec, (long)tv.tv_usec, (int)getpid());
    snprintf(newdir, sizeof newdir, "%s/new", argv[1]);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) return 75;
    for (;;) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n < 0) return 75;
        if (n == 0) break;
        if (write(fd, buf, (size_t)n) != n) return 75;
    }
    if (fsync(fd) != 0 || close(fd) != 0) return 75;
    if (rename(tmp, dst) != 0) return 75;
    int d = open(newdir, O_RDONLY | O_DIRECTORY);
    if (d < 0 || fsync(d) != 0) return 75;
    close(d);
    return 0;
}
