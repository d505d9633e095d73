/*
 * policy_loadgen - closed-loop load generator for Postfix policy delegation
 * servers (check_policy_service), as Postfix's smtpd processes use them:
 * N threads, one persistent connection each, one request at a time.
 *
 *   policy_loadgen -p PORT [-c 64] -k requests.txt [-P PASSES]
 *
 * Each line of requests.txt is "name=value<TAB>name=value..."; it completes
 * a request with the attributes Postfix 3.7 sends at RCPT (the line's come
 * last, and the last of a repeated name counts). Every thread takes the
 * next line from a shared list, sends it, waits for "action=...\n\n" and
 * records the latency. DUNNO counts as found, any other action as
 * notfound, a connection that breaks as an error.
 *
 * Prints one line, as bench/loadgen does: mode=policy conns=... requests=...
 * seconds=... rps=... p50_us=... p99_us=... p999_us=... found=...
 * notfound=... errors=...
 */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int port, conns = 64, passes = 1;
static char **lines;
static size_t nlines;
static atomic_size_t next_line;
static atomic_long found, notfound, errors;

struct worker {
    pthread_t thread;
    double *lat;
    size_t nlat;
};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int dial(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(0x7f000001);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        perror("connect");
        exit(1);
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static int send_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w <= 0) return -1;
        p += w;
        n -= w;
    }
    return 0;
}

static size_t format_request(char *out, size_t cap, const char *line, unsigned long serial) {
    int n = snprintf(out, cap,
                     "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
                     "client_address=192.0.2.7\nclient_name=client.example.net\nclient_port=40000\n"
                     "reverse_client_name=client.example.net\nserver_address=127.0.0.1\nserver_port=25\n"
                     "helo_name=client.example.net\nqueue_id=\nrecipient_count=0\ninstance=%lx.5f3c1d2e.0\n"
                     "size=0\netrn_domain=\nstress=\nsasl_method=PLAIN\nsasl_sender=\nccert_subject=\n"
                     "ccert_issuer=\nccert_fingerprint=\nccert_pubkey_fingerprint=\nencryption_protocol=\n"
                     "encryption_cipher=\nencryption_keysize=0\npolicy_context=\ncompatibility_level=3.6\n"
                     "mail_version=3.7.11\n",
                     serial);
    size_t len = (size_t)n;
    for (const char *p = line; *p && len < cap - 3; p++) out[len++] = *p == '\t' ? '\n' : *p;
    out[len++] = '\n';
    out[len++] = '\n';
    return len;
}

/* One "action=...\n\n" reply: 1 DUNNO, 0 another action, -1 error. */
static int read_reply(int fd, char *buf, size_t cap, size_t *have) {
    for (;;) {
        char *end = memmem(buf, *have, "\n\n", 2);
        if (end) {
            int r = !strncmp(buf, "action=DUNNO\n", 13) ? 1 : !strncmp(buf, "action=", 7) ? 0 : -1;
            size_t used = end - buf + 2;
            memmove(buf, end + 2, *have - used);
            *have -= used;
            return r;
        }
        if (*have == cap) return -1;
        ssize_t n = read(fd, buf + *have, cap - *have);
        if (n <= 0) return -1;
        *have += n;
    }
}

static void *run(void *arg) {
    struct worker *w = arg;
    size_t cap = 65536, have = 0;
    char *buf = malloc(cap), *req = malloc(cap);
    int fd = dial();
    for (;;) {
        size_t i = atomic_fetch_add(&next_line, 1);
        if (i >= nlines * passes) break;
        /* Each pass is a new message: a new instance. */
        size_t n = format_request(req, cap, lines[i % nlines], (unsigned long)i);
        double t0 = now();
        int r = send_all(fd, req, n) ? -1 : read_reply(fd, buf, cap, &have);
        w->lat[w->nlat++] = now() - t0;
        if (r == 1) atomic_fetch_add(&found, 1);
        else if (r == 0) atomic_fetch_add(&notfound, 1);
        else {
            atomic_fetch_add(&errors, 1);
            close(fd);
            fd = dial();
            have = 0;
        }
    }
    close(fd);
    free(buf);
    free(req);
    return NULL;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    const char *file = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "p:c:k:P:")) != -1) {
        switch (opt) {
            case 'p': port = atoi(optarg); break;
            case 'c': conns = atoi(optarg); break;
            case 'k': file = optarg; break;
            case 'P': passes = atoi(optarg); break;
            default:
                fprintf(stderr, "usage: policy_loadgen -p PORT [-c CONNS] -k REQUESTS [-P PASSES]\n");
                return 64;
        }
    }
    if (!file || !port || conns < 1 || passes < 1) {
        fprintf(stderr, "usage: policy_loadgen -p PORT [-c CONNS] -k REQUESTS [-P PASSES]\n");
        return 64;
    }
    FILE *f = fopen(file, "r");
    if (!f) {
        perror(file);
        return 66;
    }
    size_t cap = 1024;
    lines = malloc(cap * sizeof *lines);
    char line[8192];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!*line) continue;
        if (nlines == cap) lines = realloc(lines, (cap *= 2) * sizeof *lines);
        lines[nlines++] = strdup(line);
    }
    fclose(f);
    struct worker *ws = calloc(conns, sizeof *ws);
    size_t per = nlines * passes + 1;
    for (int i = 0; i < conns; i++) ws[i].lat = malloc(per * sizeof(double));
    double t0 = now();
    for (int i = 0; i < conns; i++) pthread_create(&ws[i].thread, NULL, run, &ws[i]);
    for (int i = 0; i < conns; i++) pthread_join(ws[i].thread, NULL);
    double elapsed = now() - t0;
    size_t total = 0;
    for (int i = 0; i < conns; i++) total += ws[i].nlat;
    double *all = malloc((total + 1) * sizeof(double));
    size_t k = 0;
    for (int i = 0; i < conns; i++)
        for (size_t j = 0; j < ws[i].nlat; j++) all[k++] = ws[i].lat[j];
    qsort(all, total, sizeof(double), cmp);
#define PCT(p) (total ? all[(size_t)((p) * (total - 1))] * 1e6 : 0)
    printf("mode=policy conns=%d requests=%zu seconds=%.3f rps=%.0f p50_us=%.0f p99_us=%.0f p999_us=%.0f "
           "found=%ld notfound=%ld errors=%ld\n",
           conns, total, elapsed, total / elapsed, PCT(0.50), PCT(0.99), PCT(0.999), (long)found, (long)notfound,
           (long)errors);
    return errors ? 1 : 0;
}
