/*
 * host.c - a small C program that embeds Lua 5.4 and runs wsbeat inside its
 * own epoll loop, next to its other file descriptors.
 *
 * This is the shape of a game server or an OpenResty-style tool: the host
 * owns the loop; wsbeat is one more source of events in it.  The loop waits
 * on three fds:
 *
 *   - wsbeat.fd()  readable when wsbeat.step() has work;
 *   - a timerfd    the host's own "game tick" (every 50 ms);
 *   - a signalfd   SIGINT/SIGTERM, for a graceful shutdown.
 *
 * and epoll_wait's timeout is wsbeat.timeout() (capped, see MAX_WAIT_MS), so
 * wsbeat's timers (heartbeats, reconnect delays, close timeouts) fire on
 * time even when no fd is readable.
 *
 * The wsbeat module is NOT linked into this program: the host links liblua
 * (as any Lua host does) and the script loads wsbeat with require, which
 * finds ROOT/lua/wsbeat/init.lua and ROOT/build/wsbeat/core.so.
 *
 * Usage: host [--root DIR] SCRIPT [ARG...]
 *   DIR defaults to $WSBEAT_ROOT (the wsbeat checkout).  SCRIPT gets ARGs
 *   as `...` and must return a table of hooks:
 *     done()          -> true when the host may exit (required)
 *     on_tick(n)      called on every host tick, n = ticks so far (optional)
 *     on_signal(name) called on the first SIGINT/SIGTERM (optional; without
 *                     it the host stops at once)
 *
 * Exit status: 0 when the script said done; 1 when the host stopped
 * before that (setup failure, a second signal, a signal the script has no
 * on_signal for, a script that kept failing); 2 on bad usage.
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#define TICK_MS 50       /* the host's own tick */
#define MAX_WAIT_MS 1000 /* longest epoll_wait, whatever wsbeat says */
#define MAX_ERRORS 100   /* a script that keeps failing is given up on */

enum source { SRC_WSBEAT = 1, SRC_TICK, SRC_SIGNAL };

struct host {
	lua_State *L;
	int wsbeat_ref; /* registry: the wsbeat module table */
	int app_ref;    /* registry: the table the script returned */
	int epfd, tickfd, sigfd, wsfd;
	int stop;       /* 1: the script is done; 2: forced stop */
	int signals;    /* signals received so far */
	unsigned long ticks, steps, fd_wakeups, timeout_wakeups, lua_errors;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Open file descriptors of this process (to show teardown leaves none). */
static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* ------------------------------------------------------- Lua helpers */

/* Message handler for lua_pcall: add a traceback unless there is one. */
static int msgh(lua_State *L)
{
	const char *msg = lua_tostring(L, 1);

	if (msg == NULL) {
		if (luaL_callmeta(L, 1, "__tostring") &&
		    lua_type(L, -1) == LUA_TSTRING)
			return 1;
		msg = lua_pushfstring(L, "(error object is a %s value)",
				      luaL_typename(L, 1));
	}
	/* wsbeat re-raises callback errors with their traceback attached */
	if (strstr(msg, "stack traceback:"))
		lua_pushstring(L, msg);
	else
		luaL_traceback(L, L, msg, 1);
	return 1;
}

/*
 * Call the function under nargs arguments on the stack, with msgh; on error
 * report it on stderr, count it and leave nothing.  Returns 0 on success
 * (with nres results pushed), -1 on error.
 */
static int pcall_report(struct host *h, int nargs, int nres, const char *what)
{
	lua_State *L = h->L;
	int base = lua_gettop(L) - nargs;
	int rc;

	lua_pushcfunction(L, msgh);
	lua_insert(L, base);
	rc = lua_pcall(L, nargs, nres, base);
	lua_remove(L, base);
	if (rc != LUA_OK) {
		const char *err = lua_tostring(L, -1);

		h->lua_errors++;
		fprintf(stderr, "host: Lua error in %s: %s\n", what,
			err ? err : "(no message)");
		fflush(stderr);
		lua_pop(L, 1);
		return -1;
	}
	return 0;
}

/* Push t[name] where t is the table behind registry reference ref. */
static int push_field(lua_State *L, int ref, const char *name)
{
	int type;

	lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
	type = lua_getfield(L, -1, name);
	lua_remove(L, -2);
	return type;
}

/* package.<field> = prefix .. package.<field> */
static void prepend_path(lua_State *L, const char *field, const char *prefix)
{
	lua_getglobal(L, "package");
	lua_pushstring(L, prefix);
	lua_getfield(L, -2, field);
	lua_concat(L, 2);
	lua_setfield(L, -2, field);
	lua_pop(L, 1);
}

/* ------------------------------------------------- talking to wsbeat */

/* wsbeat.fd() -> fd, or -1 */
static int wsbeat_fd(struct host *h)
{
	lua_State *L = h->L;
	lua_Integer fd;
	int isnum;

	push_field(L, h->wsbeat_ref, "fd");
	if (pcall_report(h, 0, 1, "wsbeat.fd") != 0)
		return -1;
	fd = lua_tointegerx(L, -1, &isnum);
	lua_pop(L, 1);
	if (!isnum || fd < 0 || fd > INT32_MAX) {
		fprintf(stderr, "host: wsbeat.fd() did not return a descriptor\n");
		return -1;
	}
	return (int)fd;
}

/*
 * wsbeat.timeout() in milliseconds for epoll_wait: seconds rounded up (so
 * we never wake a little early and spin), 0 = now, nil = nothing scheduled.
 * Capped at MAX_WAIT_MS either way: the host's tick has its own timerfd,
 * the cap only bounds how long a "nothing scheduled" can last.
 */
static int wsbeat_timeout_ms(struct host *h)
{
	lua_State *L = h->L;
	double t;
	int ms = MAX_WAIT_MS;

	push_field(L, h->wsbeat_ref, "timeout");
	if (pcall_report(h, 0, 1, "wsbeat.timeout") != 0)
		return ms;
	if (lua_type(L, -1) == LUA_TNUMBER) {
		t = lua_tonumber(L, -1);
		if (t != t || t <= 0)
			ms = 0;
		else if (t * 1000.0 < MAX_WAIT_MS)
			ms = (int)ceil(t * 1000.0);
	}
	lua_pop(L, 1);
	return ms;
}

/* wsbeat.step(): never blocks; runs the script's callbacks. */
static void wsbeat_step(struct host *h)
{
	h->steps++;
	push_field(h->L, h->wsbeat_ref, "step");
	pcall_report(h, 0, 0, "wsbeat.step");
}

/* ------------------------------------------------- the script's hooks */

static int app_done(struct host *h)
{
	lua_State *L = h->L;
	int done;

	if (push_field(L, h->app_ref, "done") != LUA_TFUNCTION) {
		lua_pop(L, 1);
		return 1; /* checked at start-up; cannot happen */
	}
	if (pcall_report(h, 0, 1, "done") != 0)
		return 0;
	done = lua_toboolean(L, -1);
	lua_pop(L, 1);
	return done;
}

static void app_tick(struct host *h)
{
	lua_State *L = h->L;

	if (push_field(L, h->app_ref, "on_tick") != LUA_TFUNCTION) {
		lua_pop(L, 1);
		return;
	}
	lua_pushinteger(L, (lua_Integer)h->ticks);
	pcall_report(h, 1, 0, "on_tick");
}

static void app_signal(struct host *h, int sig)
{
	lua_State *L = h->L;
	const char *name = sig == SIGTERM ? "SIGTERM" : "SIGINT";

	h->signals++;
	printf("host: %s\n", name);
	if (h->signals > 1) {
		h->stop = 2; /* second signal: do not wait for the script */
		return;
	}
	if (push_field(L, h->app_ref, "on_signal") != LUA_TFUNCTION) {
		lua_pop(L, 1);
		h->stop = 2;
		return;
	}
	lua_pushstring(L, name);
	pcall_report(h, 1, 0, "on_signal");
}

/* ---------------------------------------------------------- the loop */

static int watch(int epfd, int fd, enum source src)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.u32 = (uint32_t)src;
	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

static void on_tick_fd(struct host *h)
{
	uint64_t expirations;

	if (read(h->tickfd, &expirations, sizeof(expirations)) !=
	    (ssize_t)sizeof(expirations))
		return; /* EAGAIN: nothing after all */
	/* a late loop counts every tick it missed, but calls the hook once */
	h->ticks += (unsigned long)expirations;
	app_tick(h);
}

static void on_signal_fd(struct host *h)
{
	struct signalfd_siginfo si;

	while (read(h->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		app_signal(h, (int)si.ssi_signo);
}

/*
 * The loop.  wsbeat's deadline is kept across iterations and only moves
 * later after a step(): wsbeat.timeout() counts from the engine's clock as
 * of its last step (libuv caches "now" in uv_run), so when our tick wakes
 * the loop every 50 ms and we asked again each time, a 200 ms timer would
 * always look 200 ms away and never fire.  Taking the earliest deadline
 * seen since the last step is right whichever way timeout() counts.
 */
static void run_loop(struct host *h)
{
	struct epoll_event evs[8];
	int64_t deadline = -1; /* when step() is due; -1: ask wsbeat */

	while (!h->stop) {
		int64_t now = now_ms(), due = now + wsbeat_timeout_ms(h);
		int n, ms, ws_ready = 0, tick = 0, sig = 0;

		if (deadline < 0 || due < deadline)
			deadline = due;
		ms = deadline > now ? (int)(deadline - now) : 0;
		n = epoll_wait(h->epfd, evs, 8, ms);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("host: epoll_wait");
			h->stop = 2;
			break;
		}
		for (int i = 0; i < n; i++) {
			switch (evs[i].data.u32) {
			case SRC_WSBEAT: ws_ready = 1; break;
			case SRC_TICK: tick = 1; break;
			case SRC_SIGNAL: sig = 1; break;
			}
		}
		/* wsbeat first: its fd is readable, or its deadline is due */
		if (ws_ready || now_ms() >= deadline) {
			if (ws_ready)
				h->fd_wakeups++;
			else
				h->timeout_wakeups++;
			wsbeat_step(h);
			deadline = -1;
		}
		if (tick)
			on_tick_fd(h);
		if (sig)
			on_signal_fd(h);
		if (!h->stop && app_done(h))
			h->stop = 1;
		if (h->lua_errors > MAX_ERRORS) {
			fprintf(stderr, "host: more than %d Lua errors, giving up\n",
				MAX_ERRORS);
			h->stop = 2;
		}
	}
}

/* ---------------------------------------------------------- start-up */

static int usage(const char *prog)
{
	fprintf(stderr, "usage: %s [--root DIR] SCRIPT [ARG...]\n"
		"  DIR: the wsbeat checkout (default: $WSBEAT_ROOT)\n", prog);
	return 2;
}

/* Load the script and run it with args; keep the table it returns. */
static int load_app(struct host *h, const char *root, const char *script,
		    int argc, char **argv)
{
	lua_State *L = h->L;
	char buf[4096];

	luaL_openlibs(L);
	snprintf(buf, sizeof(buf), "%s/lua/?.lua;%s/lua/?/init.lua;", root, root);
	prepend_path(L, "path", buf);
	snprintf(buf, sizeof(buf), "%s/build/?.so;", root);
	prepend_path(L, "cpath", buf);

	/* the host's handle on wsbeat: require "wsbeat", as the script does */
	lua_getglobal(L, "require");
	lua_pushliteral(L, "wsbeat");
	if (pcall_report(h, 1, 1, "require \"wsbeat\"") != 0)
		return -1;
	if (!lua_istable(L, -1)) {
		fprintf(stderr, "host: require \"wsbeat\" did not return a table\n");
		return -1;
	}
	h->wsbeat_ref = luaL_ref(L, LUA_REGISTRYINDEX);

	if (luaL_loadfile(L, script) != LUA_OK) {
		fprintf(stderr, "host: %s\n", lua_tostring(L, -1));
		return -1;
	}
	for (int i = 0; i < argc; i++)
		lua_pushstring(L, argv[i]);
	if (pcall_report(h, argc, 1, script) != 0)
		return -1;
	if (!lua_istable(L, -1) ||
	    lua_getfield(L, -1, "done") != LUA_TFUNCTION) {
		fprintf(stderr, "host: %s must return a table with a done() function\n",
			script);
		return -1;
	}
	lua_pop(L, 1);
	h->app_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	return 0;
}

static int setup_fds(struct host *h, const sigset_t *mask)
{
	struct itimerspec its;

	h->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (h->epfd < 0) {
		perror("host: epoll_create1");
		return -1;
	}

	h->tickfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (h->tickfd < 0) {
		perror("host: timerfd_create");
		return -1;
	}
	memset(&its, 0, sizeof(its));
	its.it_interval.tv_nsec = TICK_MS * 1000000L;
	its.it_value = its.it_interval;
	if (timerfd_settime(h->tickfd, 0, &its, NULL) < 0) {
		perror("host: timerfd_settime");
		return -1;
	}

	h->sigfd = signalfd(-1, mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (h->sigfd < 0) {
		perror("host: signalfd");
		return -1;
	}

	/* wsbeat's fd is an epoll fd itself (libuv's backend): nesting is fine */
	h->wsfd = wsbeat_fd(h);
	if (h->wsfd < 0)
		return -1;

	if (watch(h->epfd, h->wsfd, SRC_WSBEAT) < 0 ||
	    watch(h->epfd, h->tickfd, SRC_TICK) < 0 ||
	    watch(h->epfd, h->sigfd, SRC_SIGNAL) < 0) {
		perror("host: epoll_ctl");
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct host h;
	const char *root = getenv("WSBEAT_ROOT");
	sigset_t mask;
	int argi = 1, rc = 1, fds_at_start, ws_closed;

	if (argi + 1 < argc && strcmp(argv[argi], "--root") == 0) {
		root = argv[argi + 1];
		argi += 2;
	}
	if (argi >= argc || argv[argi][0] == '-')
		return usage(argv[0]);
	if (root == NULL || root[0] == '\0') {
		fprintf(stderr, "host: give the wsbeat checkout with --root DIR or WSBEAT_ROOT\n");
		return usage(argv[0]);
	}

	/* lines, so whoever reads our output sees them as they happen */
	setvbuf(stdout, NULL, _IOLBF, 0);

	/*
	 * Block the signals we read through the signalfd before any thread
	 * exists (libuv starts its resolver threads later; they inherit it).
	 * A peer that vanishes must not kill a server: ignore SIGPIPE.
	 */
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) {
		perror("host: sigprocmask");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);

	fds_at_start = count_fds();
	memset(&h, 0, sizeof(h));
	h.epfd = h.tickfd = h.sigfd = h.wsfd = -1;
	h.wsbeat_ref = h.app_ref = LUA_NOREF;
	h.L = luaL_newstate();
	if (h.L == NULL) {
		fprintf(stderr, "host: cannot create a Lua state\n");
		return 1;
	}

	if (load_app(&h, root, argv[argi], argc - argi - 1, argv + argi + 1) == 0 &&
	    setup_fds(&h, &mask) == 0) {
		run_loop(&h);
		rc = h.stop == 1 ? 0 : 1;
	}

	printf("host: ticks=%lu steps=%lu fd_wakeups=%lu timeout_wakeups=%lu "
	       "lua_errors=%lu exit=%d\n", h.ticks, h.steps, h.fd_wakeups,
	       h.timeout_wakeups, h.lua_errors, rc);

	/*
	 * lua_close runs every finalizer: wsbeat's engine closes its clients,
	 * its libwebsockets context and its libuv loop (and the wsbeat fd with
	 * it), and only then is core.so unloaded.  Take the fd out of our
	 * epoll set before it goes away.
	 */
	if (h.wsfd >= 0)
		epoll_ctl(h.epfd, EPOLL_CTL_DEL, h.wsfd, NULL);
	lua_close(h.L);
	ws_closed = h.wsfd >= 0 && fcntl(h.wsfd, F_GETFD) < 0 && errno == EBADF;
	if (h.sigfd >= 0)
		close(h.sigfd);
	if (h.tickfd >= 0)
		close(h.tickfd);
	if (h.epfd >= 0)
		close(h.epfd);
	/* everything wsbeat opened (sockets, its loop) went with lua_close */
	printf("host: teardown wsbeat_fd_closed=%s fds_left=%d\n",
	       ws_closed ? "yes" : "no", count_fds() - fds_at_start);
	return rc;
}
