/*
 * loadgen - closed-loop load generator for mailgrid's benchmarks.
 *
 * N threads, one persistent connection each; every thread takes the next
 * key from a shared list, sends one request, waits for the answer, and
 * records the latency. A pass sends every key once.
 *
 *   loadgen -m tcp       -p PORT -c 64 -k keys.txt          tcp_table(5)
 *   loadgen -m socketmap -p PORT -c 64 -k keys.txt -n NAME  socketmap_table(5)
 *   loadgen -m ldap      -p PORT -c 64 -k keys.txt -b BASE  slapd directly:
 *                        (mailacceptinggeneralid=KEY), attribute maildrop
 *   loadgen -m mux       -u SOCKET -c 32 -k logins.txt      saslauthd's mux
 *                        protocol, one connection per login as libsasl2
 *                        does; each line "login<TAB>password[<TAB>service]";
 *                        OK counts as found, NO as notfound
 *   loadgen -m http      -p PORT -c 64 -k logins.txt [-a /auth] [-s SECRET]
 *                        [-C CLIENT-IP|spread]   nginx's mail auth_http: one
 *                        HTTP/1.0 connection per login with the headers nginx
 *                        sends (Auth-User and Auth-Pass %-escaped as nginx
 *                        does, X-Auth-Key: SECRET if given); Client-IP is
 *                        fixed (default 127.0.0.1) or, with "spread", a
 *                        different 10.x.y.z per login. "Auth-Status: OK"
 *                        counts as found, any other Auth-Status as notfound
 *   loadgen -m imap      -p PORT -c 8 -k logins.txt    a whole IMAP session
 *                        per login: greeting, a1 LOGIN (quoted strings, or
 *                        literals when needed), a2 LOGOUT, read until the
 *                        server closes; OK counts as found, NO as notfound
 *
 * Login files have one "login<TAB>password" a line.
 *
 * -h ADDRESS connects there instead of 127.0.0.1 (TCP modes).
 *
 * -r RATE makes any mode open-loop: requests are due at RATE per second in
 * all (at most -c in flight), and latency counts from when each was due.
 *
 * Prints one line: mode=... conns=... requests=... seconds=... rps=...
 * p50_us=... p99_us=... p999_us=... found=... notfound=... errors=...
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <ldap.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static const char *mode = "tcp", *host = "127.0.0.1", *map_name = "virtual", *base = "dc=example,dc=com";
static const char *unix_path;
static const char *auth_path = "/auth", *secret, *client_ip = "127.0.0.1";
static int port, conns = 64, passes = 1;
static double rate, start_time; /* -r: open loop, request i is due at start_time + i / rate */
static char **keys;
static size_t nkeys;
static atomic_size_t next_key;
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
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
        fprintf(stderr, "loadgen: -h %s: not an IPv4 address\n", host);
        exit(1);
    }
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        perror("connect");
        exit(1);
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static int dial_unix(void) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strncpy(a.sun_path, unix_path, sizeof a.sun_path - 1);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
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

/* Reads one reply; returns 1 found, 0 not found, -1 error. */
static int read_tcp_reply(int fd, char *buf, size_t cap, size_t *have) {
    for (;;) {
        char *nl = memchr(buf, '\n', *have);
        if (nl) {
            int r = buf[0] == '2' ? 1 : buf[0] == '5' ? 0 : -1;
            size_t used = nl - buf + 1;
            memmove(buf, nl + 1, *have - used);
            *have -= used;
            return r;
        }
        ssize_t n = read(fd, buf + *have, cap - *have);
        if (n <= 0) return -1;
        *have += n;
    }
}

static int read_netstring_reply(int fd, char *buf, size_t cap, size_t *have) {
    for (;;) {
        char *colon = memchr(buf, ':', *have);
        if (colon) {
            size_t len = strtoul(buf, NULL, 10);
            size_t total = (colon - buf) + 1 + len + 1;
            if (*have >= total) {
                int r = !strncmp(colon + 1, "OK ", 3) ? 1 : !strncmp(colon + 1, "NOTFOUND", 8) ? 0 : -1;
                memmove(buf, buf + total, *have - total);
                *have -= total;
                return r;
            }
        }
        ssize_t n = read(fd, buf + *have, cap - *have);
        if (n <= 0) return -1;
        *have += n;
    }
}

static size_t put_counted(char *out, const char *s, size_t n) {
    out[0] = (char)(n >> 8);
    out[1] = (char)(n & 0xff);
    memcpy(out + 2, s, n);
    return n + 2;
}

/* One saslauthd request on a new connection: 1 OK, 0 NO, -1 no answer. */
static int mux_check(const char *line, char *buf) {
    char copy[2048];
    snprintf(copy, sizeof copy, "%s", line);
    char *login = copy, *pw = strchr(copy, '\t'), *service = "imap";
    if (!pw) return -1;
    *pw++ = 0;
    char *t = strchr(pw, '\t');
    if (t) { *t = 0; service = t + 1; }
    char req[4096];
    size_t n = 0;
    n += put_counted(req + n, login, strlen(login));
    n += put_counted(req + n, pw, strlen(pw));
    n += put_counted(req + n, service, strlen(service));
    n += put_counted(req + n, "", 0);
    int fd = dial_unix();
    if (fd < 0) return -1;
    int r = -1;
    if (send_all(fd, req, n) == 0) {
        size_t have = 0;
        ssize_t k;
        while ((k = read(fd, buf + have, 1024 - have)) > 0) {
            have += k;
            if (have >= 2 && have >= 2u + (((unsigned char)buf[0] << 8) | (unsigned char)buf[1])) break;
        }
        if (have >= 4) r = !strncmp(buf + 2, "OK", 2) ? 1 : !strncmp(buf + 2, "NO", 2) ? 0 : -1;
    }
    close(fd);
    return r;
}

/* Splits "login<TAB>password" into copy; returns 0 or -1. */
static int split_login(const char *line, char *copy, size_t cap, char **login, char **pw) {
    snprintf(copy, cap, "%s", line);
    char *tab = strchr(copy, '\t');
    if (!tab) return -1;
    *tab = 0;
    *login = copy;
    *pw = tab + 1;
    return 0;
}

/* nginx's escaping of Auth-User and Auth-Pass: space, '%' and control
 * bytes become %XX, nothing else (PROTOCOLS.md, auth_http). */
static size_t mail_escape(char *out, const char *s) {
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 0x20 || c == '%') {
            out[n++] = '%';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        } else {
            out[n++] = (char)c;
        }
    }
    out[n] = 0;
    return n;
}

/* One auth_http request on a new connection, as nginx sends it:
 * 1 Auth-Status: OK, 0 another Auth-Status, -1 no usable answer. */
static int http_check(const char *line, size_t index, char *buf, size_t cap) {
    char copy[2048], user[6144], pass[6144], ip[64], req[16384];
    char *login, *pw;
    if (split_login(line, copy, sizeof copy, &login, &pw)) return -1;
    mail_escape(user, login);
    mail_escape(pass, pw);
    if (!strcmp(client_ip, "spread")) {
        index++; /* 10.0.0.1, 10.0.0.2, ... */
        snprintf(ip, sizeof ip, "10.%u.%u.%u", (unsigned)(index >> 16) & 255, (unsigned)(index >> 8) & 255,
                 (unsigned)index & 255);
    } else {
        snprintf(ip, sizeof ip, "%s", client_ip);
    }
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.0\r\nHost: %s\r\nAuth-Method: plain\r\nAuth-User: %s\r\nAuth-Pass: %s\r\n"
                     "Auth-Protocol: imap\r\nAuth-Login-Attempt: 1\r\nClient-IP: %s\r\n",
                     auth_path, host, user, pass, ip);
    if (secret) n += snprintf(req + n, sizeof req - n, "X-Auth-Key: %s\r\n", secret);
    n += snprintf(req + n, sizeof req - n, "\r\n");
    int fd = dial();
    int r = -1;
    if (send_all(fd, req, n) == 0) {
        /* nginx reads the header block and closes: so do we. */
        size_t have = 0;
        ssize_t k;
        buf[0] = 0;
        while (have < cap - 1 && (k = read(fd, buf + have, cap - 1 - have)) > 0) {
            have += k;
            buf[have] = 0;
            if (strstr(buf, "\r\n\r\n")) break;
        }
        char *end = strstr(buf, "\r\n\r\n");
        if (end) {
            *end = 0;
            for (char *h = strstr(buf, "\r\n"); h; h = strstr(h + 2, "\r\n")) {
                if (strncasecmp(h + 2, "Auth-Status:", 12)) continue;
                char *v = h + 14;
                while (*v == ' ') v++;
                r = !strncmp(v, "OK\r", 3) || !strcmp(v, "OK");
                break;
            }
        }
    }
    close(fd);
    return r;
}

/* Appends an IMAP string: quoted if it can be, else a synchronising
 * literal, whose continuation request is awaited before going on. */
static int imap_string(int fd, char *out, size_t *olen, const char *s, char *buf, size_t cap) {
    int quotable = 1;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f) quotable = 0;
    if (quotable) {
        out[(*olen)++] = '"';
        for (const char *p = s; *p; p++) {
            if (*p == '"' || *p == '\\') out[(*olen)++] = '\\';
            out[(*olen)++] = *p;
        }
        out[(*olen)++] = '"';
        return 0;
    }
    *olen += sprintf(out + *olen, "{%zu}\r\n", strlen(s));
    if (send_all(fd, out, *olen)) return -1;
    *olen = 0;
    size_t have = 0;
    ssize_t k;
    while ((k = read(fd, buf + have, cap - 1 - have)) > 0) {
        have += k;
        buf[have] = 0;
        if (strstr(buf, "\r\n")) break;
    }
    if (k <= 0 || buf[0] != '+') return -1;
    memcpy(out, s, strlen(s));
    *olen = strlen(s);
    return 0;
}

/* Reads lines until the one tagged with tag; returns 1 OK, 0 NO, -1 else. */
static int imap_tagged(int fd, const char *tag, char *buf, size_t cap) {
    size_t have = 0, tl = strlen(tag);
    for (;;) {
        char *nl;
        while ((nl = memchr(buf, '\n', have))) {
            size_t used = nl - buf + 1;
            int r = -2;
            if (used > tl + 1 && !memcmp(buf, tag, tl) && buf[tl] == ' ')
                r = !strncmp(buf + tl + 1, "OK", 2) ? 1 : !strncmp(buf + tl + 1, "NO", 2) ? 0 : -1;
            memmove(buf, nl + 1, have - used);
            have -= used;
            if (r != -2) return r;
        }
        if (have == cap) have = 0; /* an overlong untagged line: drop it */
        ssize_t k = read(fd, buf + have, cap - have);
        if (k <= 0) return -1;
        have += k;
    }
}

/* One whole IMAP session: greeting, LOGIN, LOGOUT, until the server closes. */
static int imap_session(const char *line, char *buf, size_t cap) {
    char copy[2048], out[8192];
    char *login, *pw;
    if (split_login(line, copy, sizeof copy, &login, &pw)) return -1;
    int fd = dial();
    int r = -1;
    size_t have = 0;
    ssize_t k;
    while ((k = read(fd, buf + have, cap - 1 - have)) > 0) {
        have += k;
        if (memchr(buf, '\n', have)) break;
    }
    if (k > 0 && have > 4 && !strncmp(buf, "* OK", 4)) {
        size_t olen = sprintf(out, "a1 LOGIN ");
        if (!imap_string(fd, out, &olen, login, buf, cap)) {
            out[olen++] = ' ';
            if (!imap_string(fd, out, &olen, pw, buf, cap)) {
                olen += sprintf(out + olen, "\r\n");
                if (!send_all(fd, out, olen)) r = imap_tagged(fd, "a1", buf, cap);
            }
        }
        /* After a refusal nginx may already have closed: that is fine. */
        if (r >= 0 && !send_all(fd, "a2 LOGOUT\r\n", 11))
            while (read(fd, buf, cap) > 0) {
            }
    }
    close(fd);
    return r;
}

static void *run(void *arg) {
    struct worker *w = arg;
    size_t cap = 1 << 20;
    char *buf = malloc(cap), *req = malloc(65536);
    size_t have = 0;
    int fd = -1;
    LDAP *ld = NULL;
    if (!strcmp(mode, "ldap")) {
        char uri[256];
        snprintf(uri, sizeof uri, "ldap://%s:%d/", host, port);
        int v3 = LDAP_VERSION3;
        if (ldap_initialize(&ld, uri) != LDAP_SUCCESS) exit(1);
        ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3);
        if (ldap_connect(ld) != LDAP_SUCCESS) {
            fprintf(stderr, "ldap connect failed\n");
            exit(1);
        }
    } else if (strcmp(mode, "mux") && strcmp(mode, "http") && strcmp(mode, "imap")) {
        fd = dial();
    }
    char *attrs[] = {"maildrop", NULL};
    for (;;) {
        size_t i = atomic_fetch_add(&next_key, 1);
        if (i >= nkeys * passes) break;
        const char *key = keys[i % nkeys];
        double t0 = now();
        if (rate > 0) {
            /* Latency counts from when the request was due, so a stall
             * that delays later requests is measured, not hidden. */
            double due = start_time + (double)i / rate;
            if (due > t0) {
                struct timespec ts = {.tv_sec = (time_t)due, .tv_nsec = (long)((due - (time_t)due) * 1e9)};
                clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
            }
            t0 = due;
        }
        int r;
        if (!strcmp(mode, "mux")) {
            r = mux_check(key, buf);
        } else if (!strcmp(mode, "http")) {
            r = http_check(key, i, buf, cap);
        } else if (!strcmp(mode, "imap")) {
            r = imap_session(key, buf, cap);
        } else if (ld) {
            char filter[8192];
            snprintf(filter, sizeof filter, "(mailacceptinggeneralid=%s)", key);
            LDAPMessage *res = NULL;
            int rc = ldap_search_ext_s(ld, base, LDAP_SCOPE_SUBTREE, filter, attrs, 0, NULL, NULL, NULL, 0, &res);
            r = rc != LDAP_SUCCESS ? -1 : ldap_count_entries(ld, res) > 0;
            if (res) ldap_msgfree(res);
        } else if (!strcmp(mode, "tcp")) {
            int n = snprintf(req, 65536, "get %s\n", key);
            r = send_all(fd, req, n) ? -1 : read_tcp_reply(fd, buf, cap, &have);
        } else {
            char payload[8192];
            int pl = snprintf(payload, sizeof payload, "%s %s", map_name, key);
            int n = snprintf(req, 65536, "%d:%s,", pl, payload);
            r = send_all(fd, req, n) ? -1 : read_netstring_reply(fd, buf, cap, &have);
        }
        w->lat[w->nlat++] = now() - t0;
        if (r == 1) atomic_fetch_add(&found, 1);
        else if (r == 0) atomic_fetch_add(&notfound, 1);
        else atomic_fetch_add(&errors, 1);
    }
    if (ld) ldap_unbind_ext(ld, NULL, NULL);
    if (fd >= 0) close(fd);
    free(buf);
    free(req);
    return NULL;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    const char *keyfile = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "m:h:p:c:k:n:b:P:u:a:s:C:r:")) != -1) {
        switch (opt) {
            case 'm': mode = optarg; break;
            case 'h': host = optarg; break;
            case 'p': port = atoi(optarg); break;
            case 'c': conns = atoi(optarg); break;
            case 'k': keyfile = optarg; break;
            case 'n': map_name = optarg; break;
            case 'b': base = optarg; break;
            case 'P': passes = atoi(optarg); break;
            case 'u': unix_path = optarg; break;
            case 'a': auth_path = optarg; break;
            case 's': secret = optarg; break;
            case 'C': client_ip = optarg; break;
            case 'r': rate = atof(optarg); break;
            default:
                fprintf(stderr, "usage: loadgen -m tcp|socketmap|ldap|mux|http|imap -p PORT|-u SOCKET [-c CONNS] -k KEYS [-n MAP] [-b BASE] "
                                    "[-P PASSES] [-a PATH] [-s SECRET] [-C CLIENT-IP|spread] [-r RATE]\n");
                return 64;
        }
    }
    if (!keyfile || (!port && !unix_path)) return 64;
    signal(SIGPIPE, SIG_IGN); /* a refused login may be closed under our LOGOUT */
    FILE *f = fopen(keyfile, "r");
    if (!f) { perror(keyfile); return 66; }
    size_t cap = 1024;
    keys = malloc(cap * sizeof *keys);
    char line[8192];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!*line) continue;
        if (nkeys == cap) keys = realloc(keys, (cap *= 2) * sizeof *keys);
        keys[nkeys++] = strdup(line);
    }
    fclose(f);
    struct worker *ws = calloc(conns, sizeof *ws);
    size_t per = nkeys * passes + 1;
    for (int i = 0; i < conns; i++) ws[i].lat = malloc(per * sizeof(double));
    double t0 = now();
    start_time = t0;
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
    printf("mode=%s conns=%d requests=%zu seconds=%.3f rps=%.0f p50_us=%.0f p99_us=%.0f p999_us=%.0f "
           "found=%ld notfound=%ld errors=%ld\n",
           mode, conns, total, elapsed, total / elapsed, PCT(0.50), PCT(0.99), PCT(0.999), (long)found,
           (long)notfound, (long)errors);
    /* For logins (mux, http, imap) errors are reported, not fatal. */
    return errors && (!strcmp(mode, "tcp") || !strcmp(mode, "socketmap") || !strcmp(mode, "ldap")) ? 1 : 0;
}
