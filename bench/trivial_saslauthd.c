/*
 * trivial_saslauthd - the ceiling of the mux protocol: answers OK to every
 * request without checking anything. Single-threaded, epoll.
 *
 *   trivial_saslauthd SOCKET_PATH
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

struct conn {
    int fd;
    size_t have;
    unsigned char buf[2048];
};

/* Four complete counted strings? */
static int complete(const unsigned char *b, size_t n) {
    size_t pos = 0;
    for (int i = 0; i < 4; i++) {
        if (n - pos < 2) return 0;
        size_t len = (b[pos] << 8) | b[pos + 1];
        if (n - pos - 2 < len) return 0;
        pos += 2 + len;
    }
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: trivial_saslauthd SOCKET_PATH\n");
        return 64;
    }
    int ls = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strncpy(a.sun_path, argv[1], sizeof a.sun_path - 1);
    unlink(argv[1]);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 1024)) { perror("bind"); return 69; }
    chmod(argv[1], 0777);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    struct epoll_event evs[256];
    static const char ok[] = "\0\2OK";
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (!c) {
                int fd = accept(ls, NULL, NULL);
                if (fd < 0) continue;
                c = calloc(1, sizeof *c);
                c->fd = fd;
                struct epoll_event ce = {.events = EPOLLIN, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ce);
                continue;
            }
            ssize_t r = read(c->fd, c->buf + c->have, sizeof c->buf - c->have);
            if (r > 0) c->have += r;
            if (r > 0 && !complete(c->buf, c->have) && c->have < sizeof c->buf) continue;
            if (r > 0) (void)!write(c->fd, ok, 4);
            close(c->fd);
            free(c);
        }
    }
}
