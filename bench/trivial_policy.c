/*
 * trivial_policy - the ceiling: a Postfix policy delegation server that
 * answers "action=DUNNO" to every request without looking at it,
 * single-threaded, epoll. Whatever a real policy server does costs time
 * on top of this.
 *
 *   trivial_policy PORT
 */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <netinet/tcp.h>
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

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: trivial_policy PORT\n");
        return 64;
    }
    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
    a.sin_addr.s_addr = htonl(0x7f000001);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 1024)) {
        perror("bind");
        return 69;
    }
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    struct epoll_event evs[256];
    static const char reply[] = "action=DUNNO\n\n";
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
            ssize_t r = read(c->fd, c->buf + c->have, sizeof c->buf - c->have);
            if (r <= 0 || (c->have += r) == sizeof c->buf) {
                close(c->fd);
                free(c);
                continue;
            }
            /* One reply per empty line (the end of a request). */
            size_t olen = 0, start = 0;
            for (size_t k = 1; k < c->have; k++) {
                if (c->buf[k] == '\n' && c->buf[k - 1] == '\n') {
                    memcpy(out + olen, reply, sizeof reply - 1);
                    olen += sizeof reply - 1;
                    start = k + 1;
                    if (olen > sizeof out - 64) break;
                }
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
