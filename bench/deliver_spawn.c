/*
 * deliver_spawn - runs a delivery command once per message, one after the
 * other, as Postfix's pipe(8) or local(8) would: the message on standard
 * input, output discarded. Measures what a per-process delivery agent
 * costs, with as little of the driver in the figure as posix_spawn allows.
 *
 *   deliver_spawn -n COUNT -d MESSAGE_DIR [-s START] [-p] -- COMMAND [ARGS...]
 *
 * Message i is file (START + i) mod N of MESSAGE_DIR (sorted by name),
 * standard input opened on it; with -p it comes through a pipe instead, as
 * Postfix's local(8) and pipe(8) give it: what fits in the pipe is written
 * before the command starts, the rest while it runs.
 * Prints one line: runs=... seconds=... per_s=... p50_ms=... p99_ms=...
 * failures=... (a failure is any exit status but 0).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <signal.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }
static int cmp_dbl(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    long count = 0, start = 0;
    const char *dir = NULL;
    int opt, through_pipe = 0;
    while ((opt = getopt(argc, argv, "+n:d:s:p")) != -1) {
        switch (opt) {
            case 'n': count = atol(optarg); break;
            case 'd': dir = optarg; break;
            case 's': start = atol(optarg); break;
            case 'p': through_pipe = 1; break;
            default: goto usage;
        }
    }
    if (count <= 0 || !dir || optind >= argc) {
    usage:
        fprintf(stderr, "usage: deliver_spawn -n COUNT -d MESSAGE_DIR [-s START] [-p] -- COMMAND [ARGS...]\n");
        return 64;
    }
    char **cmd = argv + optind;
    signal(SIGPIPE, SIG_IGN);  /* a command that refuses a message reads none of it */

    DIR *d = opendir(dir);
    if (!d) {
        perror(dir);
        return 66;
    }
    size_t nfiles = 0, cap = 64;
    char **files = malloc(cap * sizeof *files);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (nfiles == cap) files = realloc(files, (cap *= 2) * sizeof *files);
        if (asprintf(&files[nfiles++], "%s/%s", dir, e->d_name) < 0) return 71;
    }
    closedir(d);
    if (nfiles == 0) {
        fprintf(stderr, "deliver_spawn: no messages in %s\n", dir);
        return 66;
    }
    qsort(files, nfiles, sizeof *files, cmp_str);

    double *lat = malloc(count * sizeof *lat);
    long failures = 0;
    int devnull = open("/dev/null", O_WRONLY);
    double t0 = now();
    for (long i = 0; i < count; ++i) {
        const char *file = files[(start + i) % nfiles];
        int in = open(file, O_RDONLY);
        if (in < 0) {
            perror(file);
            return 66;
        }
        char *text = NULL;
        size_t size = 0, sent = 0;
        int feed = -1;
        if (through_pipe) {
            struct stat st;
            int p[2];
            if (fstat(in, &st) != 0 || pipe2(p, O_CLOEXEC) != 0) return 71;
            size = (size_t)st.st_size;
            text = malloc(size ? size : 1);
            if (!text || read(in, text, size) != (ssize_t)size) return 74;
            close(in);
            in = p[0];
            feed = p[1];
            fcntl(feed, F_SETPIPE_SZ, (int)(size < (1 << 20) ? size : (1 << 20)));
            fcntl(feed, F_SETFL, O_NONBLOCK);
            for (ssize_t w; sent < size && (w = write(feed, text + sent, size - sent)) > 0;) sent += (size_t)w;
            fcntl(feed, F_SETFL, 0);
        }
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, in, 0);
        posix_spawn_file_actions_adddup2(&fa, devnull, 1);
        posix_spawn_file_actions_adddup2(&fa, devnull, 2);
        double t = now();
        pid_t pid;
        int rc = posix_spawn(&pid, cmd[0], &fa, NULL, cmd, environ);
        posix_spawn_file_actions_destroy(&fa);
        close(in);
        if (rc != 0) {
            fprintf(stderr, "deliver_spawn: %s: %s\n", cmd[0], strerror(rc));
            return 69;
        }
        if (feed >= 0) {
            // The command may stop reading early (it refused the message).
            for (ssize_t w; sent < size && (w = write(feed, text + sent, size - sent)) > 0;) sent += (size_t)w;
            close(feed);
            free(text);
        }
        int status = 0;
        while (waitpid(pid, &status, 0) < 0) {
        }
        lat[i] = now() - t;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failures;
    }
    double elapsed = now() - t0;
    qsort(lat, count, sizeof *lat, cmp_dbl);
    printf("runs=%ld seconds=%.3f per_s=%.1f p50_ms=%.2f p99_ms=%.2f failures=%ld\n", count, elapsed,
           count / elapsed, lat[count / 2] * 1e3, lat[(long)(count * 0.99)] * 1e3, failures);
    return failures ? 1 : 0;
}
