/*
 * lmtpgen - closed-loop LMTP load generator for maildir_deliver's
 * benchmark, speaking as Postfix's lmtp(8) does: LHLO once per connection,
 * then per transaction MAIL, RCPT (R of them) and DATA pipelined in one
 * write, the message after 354, and one reply per recipient after the
 * final dot. C connections, each its own thread; every thread takes the
 * next transaction number from a shared counter.
 *
 *   lmtpgen -p PORT | -u SOCKET  -c CONNS -r RCPTS -n TRANSACTIONS
 *           -m MESSAGE_DIR -a ADDRESS_FILE
 *
 * Transaction t goes to addresses (t*R .. t*R+R-1) mod A of ADDRESS_FILE
 * (one per line) with message t mod M of MESSAGE_DIR (LF line ends; sent
 * with CRLF and dots doubled), after a Received: line naming the run and
 * the transaction, as Postfix's queue file has one with its queue id: no
 * two transactions send the same bytes, so a server's duplicate
 * suppression never mistakes load for a message sent again. Prints one line: conns=... rcpts=...
 * transactions=... deliveries=... seconds=... per_s=... (deliveries per
 * second) p50_ms=... p99_ms=... (per transaction) failures=... (replies
 * other than 2xx).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int port, conns = 1, rcpts = 1;
static long transactions;
static const char *unix_path;
static char **addrs;
static size_t naddrs;
static char **msgs;      /* DATA encoded, ".\r\n" included */
static size_t *msglens, nmsgs;
static atomic_long next_txn, failures;
static long run_id;  /* distinguishes this run's Received: lines from others' */

struct worker {
    pthread_t thread;
    double *lat;
    long nlat;
};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_dbl(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int dial(void) {
    int fd;
    if (unix_path) {
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        strncpy(a.sun_path, unix_path, sizeof a.sun_path - 1);
        if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) return -1;
    } else {
        fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
        a.sin_addr.s_addr = htonl(0x7f000001);
        if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) return -1;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
}

/* A buffered reader of reply lines. */
struct conn {
    int fd;
    char buf[65536];
    size_t have, used;
};

static int read_line(struct conn *c, char *line, size_t cap) {
    for (;;) {
        char *nl = memchr(c->buf + c->used, '\n', c->have - c->used);
        if (nl) {
            size_t n = (size_t)(nl - (c->buf + c->used)) + 1;
            size_t k = n < cap - 1 ? n : cap - 1;
            memcpy(line, c->buf + c->used, k);
            line[k] = 0;
            c->used += n;
            return 1;
        }
        if (c->used > 0) {
            memmove(c->buf, c->buf + c->used, c->have - c->used);
            c->have -= c->used;
            c->used = 0;
        }
        ssize_t r = read(c->fd, c->buf + c->have, sizeof c->buf - c->have);
        if (r <= 0) return 0;
        c->have += (size_t)r;
    }
}

/* One reply (multi-line replies end with "ddd "); returns its code.
 * Sets *size if a line offers the SIZE extension. */
static int read_reply_ext(struct conn *c, int *size) {
    char line[4096];
    for (;;) {
        if (!read_line(c, line, sizeof line)) return -1;
        if (size && strncasecmp(line + 4, "SIZE", 4) == 0) *size = 1;
        if (strlen(line) < 4 || line[3] != '-') return atoi(line);
    }
}

static int read_reply(struct conn *c) { return read_reply_ext(c, NULL); }

static int write_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w <= 0) return 0;
        p += w;
        n -= (size_t)w;
    }
    return 1;
}

static void *run(void *arg) {
    struct worker *w = arg;
    struct conn *c = calloc(1, sizeof *c);
    c->fd = dial();
    if (c->fd < 0) {
        perror("connect");
        exit(69);
    }
    /* MAIL ... SIZE= only to a server that offers it, as Postfix does. */
    int has_size = 0;
    if (read_reply(c) != 220 || !write_all(c->fd, "LHLO bench.example\r\n", 20) ||
        read_reply_ext(c, &has_size) != 250) {
        fprintf(stderr, "lmtpgen: bad greeting or LHLO\n");
        exit(69);
    }
    char *cmd = malloc(1024 + (size_t)rcpts * 600);
    for (;;) {
        long t = atomic_fetch_add(&next_txn, 1);
        if (t >= transactions) break;
        size_t n = has_size ? (size_t)sprintf(cmd, "MAIL FROM:<bench@sender.example> SIZE=%zu\r\n", msglens[t % nmsgs])
                            : (size_t)sprintf(cmd, "MAIL FROM:<bench@sender.example>\r\n");
        for (int r = 0; r < rcpts; ++r)
            n += (size_t)sprintf(cmd + n, "RCPT TO:<%s>\r\n", addrs[((size_t)t * rcpts + r) % naddrs]);
        n += (size_t)sprintf(cmd + n, "DATA\r\n");
        double start = now();
        if (!write_all(c->fd, cmd, n)) goto lost;
        int ok = read_reply(c) / 100 == 2;
        int accepted = 0;
        for (int r = 0; r < rcpts; ++r) {
            int code = read_reply(c);
            if (code < 0) goto lost;
            if (code / 100 == 2) ++accepted;
            else atomic_fetch_add(&failures, 1);
        }
        int data = read_reply(c);
        if (data == 354) {
            char received[160];
            int rn = snprintf(received, sizeof received,
                              "Received: by bench.example (lmtpgen) id R%ldT%ld;\r\n\tFri, 4 Dec 2026 12:00:00 +0000\r\n",
                              run_id, t);
            if (!write_all(c->fd, received, (size_t)rn) || !write_all(c->fd, msgs[t % nmsgs], msglens[t % nmsgs]))
                goto lost;
            for (int r = 0; r < accepted; ++r) {
                int code = read_reply(c);
                if (code < 0) goto lost;
                if (code / 100 != 2) atomic_fetch_add(&failures, 1);
            }
        } else if (data < 0) {
            goto lost;
        } else {
            atomic_fetch_add(&failures, accepted);
        }
        if (!ok) atomic_fetch_add(&failures, 1);
        w->lat[w->nlat++] = now() - start;
    }
    write_all(c->fd, "QUIT\r\n", 6);
    read_reply(c);
    close(c->fd);
    return NULL;
lost:
    fprintf(stderr, "lmtpgen: connection lost\n");
    exit(75);
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    struct stat st;
    fstat(fileno(f), &st);
    char *p = malloc((size_t)st.st_size + 1);
    *len = fread(p, 1, (size_t)st.st_size, f);
    p[*len] = 0;
    fclose(f);
    return p;
}

/* LF text -> CRLF, dots doubled, final ".\r\n". */
static char *encode(const char *text, size_t len, size_t *out_len) {
    char *out = malloc(len * 2 + 8);
    size_t o = 0;
    int bol = 1;
    for (size_t i = 0; i < len; ++i) {
        if (bol && text[i] == '.') out[o++] = '.';
        if (text[i] == '\n') {
            out[o++] = '\r';
            out[o++] = '\n';
            bol = 1;
        } else {
            out[o++] = text[i];
            bol = 0;
        }
    }
    if (!bol) {
        out[o++] = '\r';
        out[o++] = '\n';
    }
    memcpy(out + o, ".\r\n", 3);
    *out_len = o + 3;
    return out;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
    const char *dir = NULL, *addr_file = NULL;
    run_id = (long)time(NULL) * 100000 + (long)getpid() % 100000;
    int opt;
    while ((opt = getopt(argc, argv, "p:u:c:r:n:m:a:")) != -1) {
        switch (opt) {
            case 'p': port = atoi(optarg); break;
            case 'u': unix_path = optarg; break;
            case 'c': conns = atoi(optarg); break;
            case 'r': rcpts = atoi(optarg); break;
            case 'n': transactions = atol(optarg); break;
            case 'm': dir = optarg; break;
            case 'a': addr_file = optarg; break;
            default: goto usage;
        }
    }
    if ((!port && !unix_path) || !dir || !addr_file || transactions <= 0 || conns <= 0 || rcpts <= 0) {
    usage:
        fprintf(stderr, "usage: lmtpgen -p PORT|-u SOCKET -c CONNS -r RCPTS -n TRANSACTIONS -m MESSAGE_DIR "
                        "-a ADDRESS_FILE\n");
        return 64;
    }
    size_t len;
    char *text = slurp(addr_file, &len);
    if (!text) {
        perror(addr_file);
        return 66;
    }
    addrs = malloc(sizeof *addrs * (len / 2 + 2));
    for (char *save = NULL, *tok = strtok_r(text, "\r\n", &save); tok; tok = strtok_r(NULL, "\r\n", &save))
        addrs[naddrs++] = tok;
    DIR *d = opendir(dir);
    if (!d || naddrs == 0) {
        fprintf(stderr, "lmtpgen: no addresses or no message directory\n");
        return 66;
    }
    size_t cap = 64;
    char **names = malloc(cap * sizeof *names);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (nmsgs == cap) names = realloc(names, (cap *= 2) * sizeof *names);
        if (asprintf(&names[nmsgs++], "%s/%s", dir, e->d_name) < 0) return 71;
    }
    closedir(d);
    qsort(names, nmsgs, sizeof *names, cmp_str);
    msgs = malloc(nmsgs * sizeof *msgs);
    msglens = malloc(nmsgs * sizeof *msglens);
    for (size_t i = 0; i < nmsgs; ++i) {
        char *m = slurp(names[i], &len);
        msgs[i] = encode(m, len, &msglens[i]);
        free(m);
    }

    struct worker *ws = calloc((size_t)conns, sizeof *ws);
    double t0 = now();
    for (int i = 0; i < conns; ++i) {
        ws[i].lat = malloc(sizeof(double) * (size_t)(transactions + 1));
        pthread_create(&ws[i].thread, NULL, run, &ws[i]);
    }
    long total = 0;
    for (int i = 0; i < conns; ++i) {
        pthread_join(ws[i].thread, NULL);
        total += ws[i].nlat;
    }
    double elapsed = now() - t0;
    double *all = malloc(sizeof(double) * (size_t)(total + 1));
    long k = 0;
    for (int i = 0; i < conns; ++i)
        for (long j = 0; j < ws[i].nlat; ++j) all[k++] = ws[i].lat[j];
    qsort(all, (size_t)total, sizeof *all, cmp_dbl);
    printf("conns=%d rcpts=%d transactions=%ld deliveries=%ld seconds=%.3f per_s=%.1f p50_ms=%.2f p99_ms=%.2f "
           "failures=%ld\n",
           conns, rcpts, total, total * rcpts, elapsed, total * rcpts / elapsed, all[total / 2] * 1e3,
           all[(long)(total * 0.99)] * 1e3, (long)failures);
    return failures ? 1 : 0;
}
