/*
 * mupdate_load - load generator for a MUPDATE master (mupdate_bridge or
 * Cyrus's own `mupdate -m`), speaking the protocol as Cyrus's client does:
 * AUTHENTICATE "PLAIN" with a {n+} literal, every argument a literal.
 *
 *   mupdate_load -m pipeline  -p PORT -c 4  -n 100000 [-W 256]   ACTIVATEs, W in flight per connection
 *   mupdate_load -m percreate -p PORT -c 16 -n 5000            a connection per create, as backends do:
 *                                                               banner, AUTHENTICATE, RESERVE, ACTIVATE, LOGOUT
 *   mupdate_load -m find      -p PORT -c 32 -n 50000 -r RANGE   FIND of random existing names, one at a time
 *   mupdate_load -m sync      -p PORT [-c 8]                    a new follower's UPDATE until "streaming starts";
 *                                                               -c FIND clients run meanwhile (their latency)
 *   mupdate_load -m delay     -p PORT -n 200 [-i 20]            a follower and a writer: from a write to the
 *                                                               change on the follower's stream (no NOOP)
 *   mupdate_load -m list      -p PORT -s SERVER! -n 10          LIST "SERVER!" as a backend's push does
 *   mupdate_load -m hold      -p PORT -c 10000                  open c connections; how many get a banner,
 *                                                               log in and answer NOOP while all are open
 *
 * Names are user.<prefix><7 digits> (-x PREFIX, default "b"), the location
 * -s SERVER!PARTITION (default bench!default) or, with -S N, one of N
 * servers "srvNN:2143!default" by the name's number; user -u / password -w.
 * In sync mode one more client writes (ACTIVATE) while the list is sent,
 * and its latency is reported too.
 * Prints one line of key=value pairs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *mode = "pipeline", *user = "mupdate", *pass = "mupdatepw", *prefix = "b",
                  *location = "bench!default";
static int port, conns = 1, window = 256, interval_ms = 20, servers = 0;
static long count = 10000, range = 0, offset = 0;
static atomic_long next_index, done_ok, done_bad, errors;
static atomic_int stop_finders;

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
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static int send_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w <= 0) {
            if (w < 0 && errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* A buffered reader of response lines; literals are kept inline. */
struct conn {
    int fd;
    char *buf;
    size_t cap, have, pos;
};

static void conn_init(struct conn *c, int fd) {
    c->fd = fd;
    c->cap = 1 << 20;
    c->buf = malloc(c->cap);
    c->have = c->pos = 0;
}

static void conn_free(struct conn *c) {
    if (c->fd >= 0) close(c->fd);
    free(c->buf);
}

static int fill(struct conn *c) {
    if (c->pos > 0) {
        memmove(c->buf, c->buf + c->pos, c->have - c->pos);
        c->have -= c->pos;
        c->pos = 0;
    }
    if (c->have == c->cap) return -1;
    ssize_t n = read(c->fd, c->buf + c->have, c->cap - c->have);
    if (n <= 0) return -1;
    c->have += (size_t)n;
    return 0;
}

/* One logical line (literals included); *line points into the buffer,
 * valid until the next call. Returns its length or -1. */
static long next_line(struct conn *c, char **line) {
    size_t scan = c->pos;
    for (;;) {
        char *nl = memmem(c->buf + scan, c->have - scan, "\r\n", 2);
        if (!nl) {
            size_t off = scan - c->pos;
            if (fill(c) < 0) return -1;
            scan = c->pos + off;
            continue;
        }
        size_t end = (size_t)(nl - c->buf);
        /* "{n+}" right before CRLF: n bytes of literal follow. */
        if (end > c->pos + 2 && c->buf[end - 1] == '}') {
            size_t j = end - 2;
            if (c->buf[j] == '+') j--;
            while (j > c->pos && c->buf[j] >= '0' && c->buf[j] <= '9') j--;
            if (c->buf[j] == '{') {
                size_t n = strtoul(c->buf + j + 1, NULL, 10);
                size_t need = end + 2 + n;
                while (c->have < need) {
                    size_t off = scan - c->pos, e = end - c->pos, nd = need - c->pos;
                    if (fill(c) < 0) return -1;
                    scan = c->pos + off;
                    end = c->pos + e;
                    need = c->pos + nd;
                }
                scan = need;
                continue;
            }
        }
        *line = c->buf + c->pos;
        long len = (long)(end - c->pos);
        c->pos = end + 2;
        return len;
    }
}

/* Reads lines until one tagged `tag`; 1 OK, 0 NO/BAD, -1 error. Counts
 * data lines in *data if given. */
static int until_tag(struct conn *c, const char *tag, long *data) {
    size_t tl = strlen(tag);
    char *l;
    long n;
    while ((n = next_line(c, &l)) >= 0) {
        if ((size_t)n > tl && !memcmp(l, tag, tl) && l[tl] == ' ') {
            const char *w = l + tl + 1;
            if (!strncmp(w, "OK", 2)) return 1;
            if (!strncmp(w, "NO", 2) || !strncmp(w, "BAD", 3) || !strncmp(w, "BYE", 3)) return 0;
            if (data) (*data)++;
        } else if (n >= 5 && !memcmp(l, "* BYE", 5)) {
            return -1;
        }
    }
    return -1;
}

static size_t lit(char *out, const char *s) {
    size_t n = strlen(s);
    int k = sprintf(out, "{%zu+}\r\n", n);
    memcpy(out + k, s, n);
    return (size_t)k + n;
}

static int banner(struct conn *c) {
    char *l;
    long n;
    while ((n = next_line(c, &l)) >= 0)
        if (n >= 4 && !memcmp(l, "* OK", 4)) return 0;
    return -1;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t base64(char *out, const unsigned char *in, size_t n) {
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = in[i] << 16 | (i + 1 < n ? in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
        out[o++] = b64[v >> 18 & 63];
        out[o++] = b64[v >> 12 & 63];
        out[o++] = i + 1 < n ? b64[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? b64[v & 63] : '=';
    }
    return o;
}

static int login(struct conn *c) {
    unsigned char raw[512];
    size_t un = strlen(user), pn = strlen(pass);
    raw[0] = 0;
    memcpy(raw + 1, user, un);
    raw[1 + un] = 0;
    memcpy(raw + 2 + un, pass, pn);
    char enc[1024], cmd[1200];
    size_t e = base64(enc, raw, 2 + un + pn);
    enc[e] = 0;
    int k = snprintf(cmd, sizeof cmd, "A01 AUTHENTICATE \"PLAIN\" {%zu+}\r\n%s\r\n", e, enc);
    if (send_all(c->fd, cmd, (size_t)k) != 0) return -1;
    return until_tag(c, "A01", NULL) == 1 ? 0 : -1;
}

static struct conn *open_session(struct conn *c) {
    int fd = dial();
    if (fd < 0) return NULL;
    conn_init(c, fd);
    if (banner(c) != 0 || login(c) != 0) {
        conn_free(c);
        return NULL;
    }
    return c;
}

static void name_of(char *out, long i) { sprintf(out, "user.%s%07ld", prefix, i); }

static const char *location_of(char *buf, long i) {
    if (!servers) return location;
    sprintf(buf, "srv%02ld:2143!default", i % servers);
    return buf;
}

static size_t activate_cmd(char *out, const char *tag, long i) {
    char name[128], acl[160], loc[64];
    name_of(name, i);
    sprintf(acl, "%s%07ld\tlrswipkxtecdan\t", prefix, i);
    size_t k = (size_t)sprintf(out, "%s ACTIVATE ", tag);
    k += lit(out + k, name);
    out[k++] = ' ';
    k += lit(out + k, location_of(loc, i));
    out[k++] = ' ';
    k += lit(out + k, acl);
    memcpy(out + k, "\r\n", 2);
    return k + 2;
}

/* ---- latencies */
struct lat {
    double *v;
    size_t n, cap;
};
static void lat_add(struct lat *l, double x) {
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 1024;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n++] = x;
}
static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static double pct(struct lat *l, double p) {
    if (!l->n) return 0;
    return l->v[(size_t)(p * (double)(l->n - 1))];
}
static pthread_mutex_t lat_mu = PTHREAD_MUTEX_INITIALIZER;
static struct lat all_lat;

/* ---- pipeline: each connection keeps `window` ACTIVATEs in flight */
static void *pipeline_worker(void *arg) {
    (void)arg;
    struct conn c;
    if (!open_session(&c)) {
        atomic_fetch_add(&errors, 1);
        return NULL;
    }
    char *out = malloc((size_t)window * 400 + 400);
    long inflight = 0, sent = 0;
    long mine_end = 0;
    (void)mine_end;
    for (;;) {
        size_t k = 0;
        while (inflight < window) {
            long i = atomic_fetch_add(&next_index, 1);
            if (i >= count) break;
            char tag[32];
            sprintf(tag, "P%ld", sent++);
            k += activate_cmd(out + k, tag, i + offset);
            inflight++;
        }
        if (k && send_all(c.fd, out, k) != 0) break;
        if (!inflight) break;
        char *l;
        long n = next_line(&c, &l);
        if (n < 0) break;
        if (n > 1 && l[0] == 'P') {
            const char *sp = memchr(l, ' ', (size_t)n);
            if (sp && !strncmp(sp + 1, "OK", 2)) atomic_fetch_add(&done_ok, 1);
            else atomic_fetch_add(&done_bad, 1);
            inflight--;
        }
    }
    free(out);
    send_all(c.fd, "Q01 LOGOUT\r\n", 12);
    conn_free(&c);
    return NULL;
}

/* ---- percreate: a connection per mailbox, as a backend's imapd does */
static void *percreate_worker(void *arg) {
    (void)arg;
    struct lat mine = {0};
    char out[2048];
    for (;;) {
        long i = atomic_fetch_add(&next_index, 1);
        if (i >= count) break;
        double t0 = now();
        struct conn c;
        if (!open_session(&c)) {
            atomic_fetch_add(&errors, 1);
            continue;
        }
        char name[128], loc[64];
        name_of(name, i + offset);
        size_t k = (size_t)sprintf(out, "X0 RESERVE ");
        k += lit(out + k, name);
        out[k++] = ' ';
        k += lit(out + k, location_of(loc, i + offset));
        memcpy(out + k, "\r\n", 2);
        k += 2;
        int ok = send_all(c.fd, out, k) == 0 && until_tag(&c, "X0", NULL) == 1;
        if (ok) {
            k = activate_cmd(out, "X1", i + offset);
            ok = send_all(c.fd, out, k) == 0 && until_tag(&c, "X1", NULL) == 1;
        }
        /* Cyrus's client closes right after sending LOGOUT. */
        send_all(c.fd, "Q01 LOGOUT\r\n", 12);
        conn_free(&c);
        atomic_fetch_add(ok ? &done_ok : &done_bad, 1);
        lat_add(&mine, now() - t0);
    }
    pthread_mutex_lock(&lat_mu);
    for (size_t j = 0; j < mine.n; j++) lat_add(&all_lat, mine.v[j]);
    pthread_mutex_unlock(&lat_mu);
    free(mine.v);
    return NULL;
}

/* ---- find: one FIND at a time per connection */
static void *find_worker(void *arg) {
    long background = (long)arg;
    struct conn c;
    if (!open_session(&c)) {
        atomic_fetch_add(&errors, 1);
        return NULL;
    }
    struct lat mine = {0};
    unsigned seed = (unsigned)(uintptr_t)&c ^ (unsigned)time(NULL);
    char out[512], name[128];
    long tagn = 0;
    for (;;) {
        if (background) {
            if (atomic_load(&stop_finders)) break;
        } else if (atomic_fetch_add(&next_index, 1) >= count) {
            break;
        }
        long i = range ? (long)(rand_r(&seed) % (unsigned long)range) : 0;
        name_of(name, i + offset);
        char tag[32];
        sprintf(tag, "F%ld", tagn++);
        size_t k = (size_t)sprintf(out, "%s FIND ", tag);
        k += lit(out + k, name);
        memcpy(out + k, "\r\n", 2);
        double t0 = now();
        long data = 0;
        if (send_all(c.fd, out, k + 2) != 0 || until_tag(&c, tag, &data) != 1) {
            atomic_fetch_add(&errors, 1);
            break;
        }
        lat_add(&mine, now() - t0);
        atomic_fetch_add(data ? &done_ok : &done_bad, 1);
    }
    pthread_mutex_lock(&lat_mu);
    for (size_t j = 0; j < mine.n; j++) lat_add(&all_lat, mine.v[j]);
    pthread_mutex_unlock(&lat_mu);
    free(mine.v);
    conn_free(&c);
    return NULL;
}

static void print_lat(const char *what) {
    qsort(all_lat.v, all_lat.n, sizeof(double), cmpd);
    printf("%s_p50_us=%.0f %s_p99_us=%.0f %s_p999_us=%.0f %s_max_us=%.0f ", what, pct(&all_lat, 0.5) * 1e6, what,
           pct(&all_lat, 0.99) * 1e6, what, pct(&all_lat, 0.999) * 1e6, what,
           all_lat.n ? all_lat.v[all_lat.n - 1] * 1e6 : 0.0);
}

static int run_threads(void *(*fn)(void *), int n, void *arg) {
    pthread_t *t = calloc((size_t)n, sizeof *t);
    for (int i = 0; i < n; i++) pthread_create(&t[i], NULL, fn, arg);
    for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
    free(t);
    return 0;
}

static struct lat write_lat;

/* Writes new mailboxes one at a time until told to stop. */
static void *sync_writer(void *arg) {
    (void)arg;
    struct conn c;
    if (!open_session(&c)) {
        atomic_fetch_add(&errors, 1);
        return NULL;
    }
    char out[1024];
    for (long i = 0; !atomic_load(&stop_finders); i++) {
        size_t k = activate_cmd(out, "W1", 9000000 + offset + i);
        double t0 = now();
        if (send_all(c.fd, out, k) != 0 || until_tag(&c, "W1", NULL) != 1) {
            atomic_fetch_add(&errors, 1);
            break;
        }
        lat_add(&write_lat, now() - t0);
    }
    conn_free(&c);
    return NULL;
}

static int mode_sync(void) {
    pthread_t *t = NULL, writer;
    if (conns > 0) {
        t = calloc((size_t)conns, sizeof *t);
        for (int i = 0; i < conns; i++) pthread_create(&t[i], NULL, find_worker, (void *)1L);
    }
    pthread_create(&writer, NULL, sync_writer, NULL);
    usleep(200000);
    struct conn c;
    if (!open_session(&c)) {
        fprintf(stderr, "cannot log in\n");
        return 1;
    }
    double t0 = now();
    send_all(c.fd, "U01 UPDATE\r\n", 12);
    long data = 0;
    int r = until_tag(&c, "U01", &data);
    double secs = now() - t0;
    atomic_store(&stop_finders, 1);
    if (t) {
        for (int i = 0; i < conns; i++) pthread_join(t[i], NULL);
        free(t);
    }
    pthread_join(writer, NULL);
    conn_free(&c);
    printf("mode=sync mailboxes=%ld seconds=%.3f ok=%d finds_during=%zu writes_during=%zu ", data, secs, r == 1,
           all_lat.n, write_lat.n);
    if (all_lat.n) print_lat("find_during");
    if (write_lat.n) {
        free(all_lat.v);
        all_lat = write_lat;
        print_lat("write_during");
    }
    printf("errors=%ld\n", atomic_load(&errors));
    return r == 1 ? 0 : 1;
}

static int mode_delay(void) {
    struct conn f, w;
    if (!open_session(&f) || !open_session(&w)) {
        fprintf(stderr, "cannot log in\n");
        return 1;
    }
    send_all(f.fd, "U01 UPDATE\r\n", 12);
    if (until_tag(&f, "U01", NULL) != 1) return 1;
    char out[1024];
    for (long i = 0; i < count; i++) {
        size_t k = activate_cmd(out, "D1", i + offset);
        double t0 = now();
        if (send_all(w.fd, out, k) != 0 || until_tag(&w, "D1", NULL) != 1) {
            atomic_fetch_add(&errors, 1);
            break;
        }
        char *l;
        long n;
        int seen = 0;
        struct pollfd p = {.fd = f.fd, .events = POLLIN};
        while (!seen) {
            if (f.pos == f.have && poll(&p, 1, 15000) <= 0) break;
            if ((n = next_line(&f, &l)) < 0) break;
            if (n > 12 && !memcmp(l, "U01 MAILBOX", 11)) seen = 1;
        }
        if (!seen) {
            atomic_fetch_add(&errors, 1);
            break;
        }
        lat_add(&all_lat, now() - t0);
        usleep((useconds_t)interval_ms * 1000);
    }
    printf("mode=delay changes=%zu ", all_lat.n);
    print_lat("delay");
    printf("errors=%ld\n", atomic_load(&errors));
    conn_free(&f);
    conn_free(&w);
    return 0;
}

static int mode_list(void) {
    for (long i = 0; i < count; i++) {
        struct conn c;
        if (!open_session(&c)) return 1;
        char out[512];
        size_t k = (size_t)sprintf(out, "X0 LIST ");
        k += lit(out + k, location);
        memcpy(out + k, "\r\n", 2);
        double t0 = now();
        long data = 0;
        send_all(c.fd, out, k + 2);
        if (until_tag(&c, "X0", &data) != 1) atomic_fetch_add(&errors, 1);
        lat_add(&all_lat, now() - t0);
        atomic_store(&done_ok, data);
        conn_free(&c);
    }
    printf("mode=list prefix=%s mailboxes=%ld runs=%zu ", location, atomic_load(&done_ok), all_lat.n);
    print_lat("list");
    printf("errors=%ld\n", atomic_load(&errors));
    return 0;
}

static int mode_hold(void) {
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    struct conn *cs = calloc((size_t)conns, sizeof *cs);
    long opened = 0, bannered = 0, logged = 0, answered = 0;
    double t0 = now();
    for (int i = 0; i < conns; i++) {
        int fd = dial();
        if (fd < 0) {
            cs[i].fd = -1;
            continue;
        }
        opened++;
        conn_init(&cs[i], fd);
        cs[i].cap = 4096;
        cs[i].buf = realloc(cs[i].buf, 4096);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 5000) > 0 && banner(&cs[i]) == 0) bannered++;
        else {
            conn_free(&cs[i]);
            cs[i].fd = -1;
            cs[i].buf = NULL;
        }
    }
    double opened_s = now() - t0;
    for (int i = 0; i < conns; i++)
        if (cs[i].fd >= 0 && login(&cs[i]) == 0) logged++;
    for (int i = 0; i < conns; i++) {
        if (cs[i].fd < 0) continue;
        if (send_all(cs[i].fd, "N1 NOOP\r\n", 9) == 0 && until_tag(&cs[i], "N1", NULL) == 1) answered++;
    }
    printf("mode=hold wanted=%d opened=%ld banners=%ld logged_in=%ld noop_answered=%ld open_seconds=%.2f\n", conns,
           opened, bannered, logged, answered, opened_s);
    for (int i = 0; i < conns; i++)
        if (cs[i].fd >= 0) conn_free(&cs[i]);
    free(cs);
    return 0;
}

int main(int argc, char **argv) {
    int o;
    while ((o = getopt(argc, argv, "m:p:c:n:W:r:o:x:s:S:u:w:i:")) != -1) {
        switch (o) {
            case 'm': mode = optarg; break;
            case 'p': port = atoi(optarg); break;
            case 'c': conns = atoi(optarg); break;
            case 'n': count = atol(optarg); break;
            case 'W': window = atoi(optarg); break;
            case 'r': range = atol(optarg); break;
            case 'o': offset = atol(optarg); break;
            case 'x': prefix = optarg; break;
            case 's': location = optarg; break;
            case 'S': servers = atoi(optarg); break;
            case 'u': user = optarg; break;
            case 'w': pass = optarg; break;
            case 'i': interval_ms = atoi(optarg); break;
            default: fprintf(stderr, "usage: see the comment at the top of mupdate_load.c\n"); return 2;
        }
    }
    if (!port) {
        fprintf(stderr, "-p PORT is required\n");
        return 2;
    }
    if (!strcmp(mode, "sync")) return mode_sync();
    if (!strcmp(mode, "delay")) return mode_delay();
    if (!strcmp(mode, "list")) return mode_list();
    if (!strcmp(mode, "hold")) return mode_hold();
    double t0 = now();
    if (!strcmp(mode, "pipeline")) run_threads(pipeline_worker, conns, NULL);
    else if (!strcmp(mode, "percreate")) run_threads(percreate_worker, conns, NULL);
    else if (!strcmp(mode, "find")) run_threads(find_worker, conns, NULL);
    else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    double secs = now() - t0;
    long ok = atomic_load(&done_ok), bad = atomic_load(&done_bad);
    printf("mode=%s conns=%d requests=%ld seconds=%.3f rps=%.0f ok=%ld refused=%ld ", mode, conns, ok + bad, secs,
           (double)(ok + bad) / secs, ok, bad);
    if (all_lat.n) print_lat("lat");
    printf("errors=%ld\n", atomic_load(&errors));
    return 0;
}
