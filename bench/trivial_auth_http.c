/*
 * trivial_auth_http - the ceiling of nginx's mail path: an auth_http
 * responder that checks nothing. It answers "Auth-Status: OK" to every
 * login with the login's backend from an in-memory hash of
 * "login<TAB>address<TAB>imap-port" lines (logins it does not know go to
 * the first backend). Single-threaded, epoll, one request per connection
 * as nginx sends them. Whatever a real responder does costs time on top.
 *
 *   trivial_auth_http PORT MAPFILE
 */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

struct conn {
    int fd;
    size_t have;
    char buf[8192];
};

static void percent_decode(char *s) {
    char *o = s;
    for (; *s; s++) {
        unsigned v;
        if (*s == '%' && s[1] && s[2] && sscanf(s + 1, "%2x", &v) == 1) {
            *o++ = (char)v;
            s += 2;
        } else {
            *o++ = *s;
        }
    }
    *o = 0;
}

/* The Auth-User value of a complete header block (changed in place). */
static char *auth_user(char *head) {
    for (char *h = strstr(head, "\r\n"); h; h = strstr(h + 2, "\r\n")) {
        if (strncasecmp(h + 2, "Auth-User:", 10)) continue;
        char *v = h + 12;
        while (*v == ' ') v++;
        v[strcspn(v, "\r")] = 0;
        percent_decode(v);
        return v;
    }
    return NULL;
}

static void reply(int fd, const char *text, size_t len) {
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, text + off, len - off);
        if (w <= 0) break;
        off += (size_t)w;
    }
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: trivial_auth_http PORT MAPFILE\n");
        return 64;
    }
    FILE *f = fopen(argv[2], "r");
    if (!f) {
        perror(argv[2]);
        return 66;
    }
    hcreate(1 << 20);
    char line[8192], *fallback = NULL;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        char *tab = strchr(line, '\t');
        if (!tab) continue;
        *tab = 0;
        char *port = strchr(tab + 1, '\t');
        if (!port) continue;
        *port++ = 0;
        char answer[512];
        snprintf(answer, sizeof answer, "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: %s\r\nAuth-Port: %s\r\n\r\n",
                 tab + 1, port);
        ENTRY e = {strdup(line), strdup(answer)};
        if (!fallback) fallback = e.data;
        hsearch(e, ENTER);
    }
    fclose(f);
    if (!fallback) {
        fprintf(stderr, "trivial_auth_http: %s: no \"login<TAB>address<TAB>port\" line\n", argv[2]);
        return 65;
    }
    static const char too_big[] = "HTTP/1.0 431 Request Header Fields Too Large\r\n\r\n";
    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[1]))};
    a.sin_addr.s_addr = htonl(0x7f000001);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 4096)) {
        perror("bind");
        return 69;
    }
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (!c) {
                int fd = accept(ls, NULL, NULL);
                if (fd < 0) continue;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                c = calloc(1, sizeof *c);
                c->fd = fd;
                struct epoll_event ce = {.events = EPOLLIN, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ce);
                continue;
            }
            ssize_t r = read(c->fd, c->buf + c->have, sizeof c->buf - 1 - c->have);
            if (r > 0) {
                c->have += (size_t)r;
                c->buf[c->have] = 0;
                char *end = strstr(c->buf, "\r\n\r\n");
                if (!end && c->have < sizeof c->buf - 1) continue;
                if (!end) {
                    reply(c->fd, too_big, sizeof too_big - 1);
                } else {
                    end[2] = 0;
                    char *user = auth_user(c->buf);
                    ENTRY q = {user, NULL}, *hit = user ? hsearch(q, FIND) : NULL;
                    const char *answer = hit ? hit->data : fallback;
                    reply(c->fd, answer, strlen(answer));
                }
            }
            close(c->fd); /* closing also takes it out of the epoll set */
            free(c);
        }
    }
}
