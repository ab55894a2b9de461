/*
 * A wake-up for hosts that cannot wait on a foreign fd.  nginx's Lua
 * module is the one that matters: its cosockets wait only on sockets they
 * opened themselves, never on wsbeat.fd().  So a thread of ours waits on
 * the engine's fd for the host and says so on a unix socket the host
 * connected to, which the host can wait on.
 *
 * The protocol on that socket, one exchange per loop turn: the host,
 * after step(), writes "<ms>\n" (how long it may sleep: wsbeat.timeout()
 * in milliseconds); the thread polls the engine's fd that long and writes
 * one byte, "!", when it turned readable or the time is up; the host reads
 * the byte and steps.  The thread polls only while the host waits, so an
 * fd that stays readable until the host's step does not spin it, and it
 * never touches the engine itself: polling an epoll fd from another thread
 * is safe, the loop behind it is the host's thread's alone.
 *
 * The socket is made in a fresh 0700 directory, accepted once (the peer
 * must be this process: SO_PEERCRED), then unlinked with its directory, so
 * nothing else can reach it.  The engine stops the thread before it closes
 * the fd (wsb_waker_stop from wsb_engine_close).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "wsbeat.h"

struct wsb_waker {
	pthread_t thread;
	int lfd;        /* listening until the host connects, then -1 */
	int cfd;        /* the host's connection */
	int epfd;       /* the engine's fd: only polled */
	int stopfd;     /* an eventfd: the engine is closing */
	char dir[64];
	char path[96];
};

static void unlink_socket(struct wsb_waker *w)
{
	if (w->path[0]) {
		unlink(w->path);
		w->path[0] = '\0';
	}
	if (w->dir[0]) {
		rmdir(w->dir);
		w->dir[0] = '\0';
	}
}

/* The host's connection, once: anything but this process is refused. */
static int accept_host(struct wsb_waker *w)
{
	struct ucred cred;
	struct sockaddr_un peer;
	socklen_t len = sizeof(cred), plen = sizeof(peer);
	int fd = accept4(w->lfd, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);

	if (fd < 0)
		return errno == EINTR || errno == EAGAIN || errno == ECONNABORTED ? 0 : -1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) || cred.pid != getpid()) {
		close(fd);
		return 0;
	}
	w->cfd = fd;
	close(w->lfd);
	w->lfd = -1;
	unlink_socket(w);
	return 1;
}

/* Reads what the host wrote: the last complete "<ms>\n" in it sets *ms.
 * Returns 0 when the host has closed its end (or failed), 1 otherwise. */
static int read_command(struct wsb_waker *w, int *armed, int *ms)
{
	char buf[128];
	ssize_t n = read(w->cfd, buf, sizeof(buf) - 1);

	if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
		return 0;
	if (n < 0)
		return 1;
	buf[n] = '\0';
	for (char *line = buf, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
		long v = strtol(line, NULL, 10);

		*ms = v < 0 ? -1 : v > 86400000 ? 86400000 : (int)v;
		*armed = 1;
	}
	return 1;
}

static void *waker_main(void *arg)
{
	struct wsb_waker *w = arg;
	int armed = 0, ms = -1;

	for (;;) {
		struct pollfd p[3];
		int n = 0, r;

		p[n++] = (struct pollfd){ .fd = w->stopfd, .events = POLLIN };
		p[n++] = (struct pollfd){ .fd = w->lfd >= 0 ? w->lfd : w->cfd, .events = POLLIN };
		if (armed)
			p[n++] = (struct pollfd){ .fd = w->epfd, .events = POLLIN };
		r = poll(p, (nfds_t)n, armed ? ms : -1);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[0].revents)
			break;
		if (p[1].revents) {
			if (w->lfd >= 0) {
				if (accept_host(w) < 0)
					break;
				continue;
			}
			if (!read_command(w, &armed, &ms))
				break;
			if (armed && ms != 0)
				continue; /* (a new deadline: poll again) */
		}
		if (armed && (r == 0 || ms == 0 || (n == 3 && p[2].revents))) {
			ssize_t k;

			/* (send, not write: a host gone meanwhile is EPIPE, never
			 * SIGPIPE to a process that may not ignore it) */
			do
				k = send(w->cfd, "!", 1, MSG_NOSIGNAL);
			while (k < 0 && errno == EINTR);
			if (k < 0 && errno != EAGAIN)
				break;
			armed = 0;
		}
		if (n == 3 && (p[2].revents & POLLNVAL))
			break;
	}
	/* the host sees its socket close: it knows its waker is gone */
	if (w->cfd >= 0)
		shutdown(w->cfd, SHUT_RDWR);
	return NULL;
}

void wsb_waker_stop(struct wsb_engine *e)
{
	struct wsb_waker *w = e->waker;
	uint64_t one = 1;

	if (!w)
		return;
	e->waker = NULL;
	if (write(w->stopfd, &one, sizeof(one)) < 0)
		abort(); /* (an eventfd takes 1 unless it overflows: cannot) */
	pthread_join(w->thread, NULL);
	unlink_socket(w);
	if (w->lfd >= 0)
		close(w->lfd);
	if (w->cfd >= 0)
		close(w->cfd);
	close(w->stopfd);
	free(w);
}

/* core.waker_listen() -> path | nil, message: a unix socket for the host
 * to connect to (once); the thread runs until the engine closes or the
 * host closes its end.  One per engine: a second call replaces the first. */
int wsb_l_waker_listen(lua_State *L)
{
	struct wsb_engine *e = wsb_engine_get(L);
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	const char *tmp = getenv("TMPDIR");
	struct wsb_waker *w;
	int err;

	wsb_waker_stop(e);
	w = calloc(1, sizeof(*w));
	if (!w)
		return luaL_error(L, "wsbeat: out of memory");
	w->lfd = w->cfd = w->stopfd = -1;
	w->epfd = uv_backend_fd(&e->loop);
	if (!tmp || !*tmp || strlen(tmp) > 40)
		tmp = "/tmp";
	snprintf(w->dir, sizeof(w->dir), "%s/wsbeat-XXXXXX", tmp);
	if (!mkdtemp(w->dir)) {
		err = errno;
		w->dir[0] = '\0';
		goto fail;
	}
	snprintf(w->path, sizeof(w->path), "%s/wake", w->dir);
	memcpy(addr.sun_path, w->path, strlen(w->path) + 1);
	w->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	w->stopfd = eventfd(0, EFD_CLOEXEC);
	if (w->lfd < 0 || w->stopfd < 0 ||
	    bind(w->lfd, (struct sockaddr *)&addr, sizeof(addr)) || listen(w->lfd, 1)) {
		err = errno;
		goto fail;
	}
	err = pthread_create(&w->thread, NULL, waker_main, w);
	if (err)
		goto fail;
	e->waker = w;
	lua_pushstring(L, w->path);
	return 1;
fail:
	unlink_socket(w);
	if (w->lfd >= 0)
		close(w->lfd);
	if (w->stopfd >= 0)
		close(w->stopfd);
	free(w);
	luaL_pushfail(L);
	lua_pushfstring(L, "waker: %s", strerror(err));
	return 2;
}
