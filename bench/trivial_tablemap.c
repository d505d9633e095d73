/*
 * trivial_tablemap - the ceiling: a tcp_table(5) server that answers from
 * an in-memory hash of "key<TAB>value" lines, single-threaded, epoll.
 * Whatever a real lookup server does costs time on top of this.
 *
 *   trivial_tablemap PORT MAPFILE
 */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

struct conn {
    int fd;
    size_t have;
    char buf[65536];
};

static void unquote(char *s) {
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

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: trivial_tablemap PORT MAPFILE\n");
        return 64;
    }
    FILE *f = fopen(argv[2], "r");
    if (!f) { perror(argv[2]); return 66; }
    hcreate(1 << 21);
    char line[8192];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        char *tab = strchr(line, '\t');
        if (!tab) continue;
        *tab = 0;
        ENTRY e = {strdup(line), strdup(tab + 1)};
        hsearch(e, ENTER);
    }
    fclose(f);
    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
    a.sin_addr.s_addr = htonl(0x7f000001);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 1024)) { perror("bind"); return 69; }
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    struct epoll_event evs[256];
    char out[1 << 16];
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
            ssize_t r = read(c->fd, c->buf + c->have, sizeof c->buf - c->have - 1);
            if (r <= 0) {
                close(c->fd);
                free(c);
                continue;
            }
            c->have += r;
            size_t olen = 0, start = 0;
            for (size_t k = 0; k < c->have; k++) {
                if (c->buf[k] != '\n') continue;
                c->buf[k] = 0;
                char *req = c->buf + start;
                start = k + 1;
                if (strncmp(req, "get ", 4)) {
                    olen += snprintf(out + olen, sizeof out - olen, "400 bad request\n");
                    continue;
                }
                unquote(req + 4);
                ENTRY q = {req + 4, NULL}, *hit = hsearch(q, FIND);
                olen += hit ? snprintf(out + olen, sizeof out - olen, "200 %s\n", (char *)hit->data)
                            : snprintf(out + olen, sizeof out - olen, "500 not found\n");
                if (olen > sizeof out - 8192) break;
            }
            memmove(c->buf, c->buf + start, c->have - start);
            c->have -= start;
            for (size_t off = 0; off < olen;) {
                ssize_t w = write(c->fd, out + off, olen - off);
                if (w <= 0) break;
                off += w;
            }
        }
    }
}
