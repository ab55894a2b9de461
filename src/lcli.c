/*
 * Private helpers for the wsbeat command-line client (bin/wsbeat): stdin and
 * signals watched on the engine's own loop, so the CLI needs no other
 * event library.  Not part of the public API.
 *
 *   core._cli_open_stdin() -> "poll" | "file" | nil, message
 *   core._cli_watch_stdin(on)        start or stop watching fd 0
 *   core._cli_read_stdin(max) -> data | "" (nothing ready) | nil (end)
 *                              | nil, message
 *   core._cli_signals() -> true | nil, message
 *                                    SIGINT, SIGTERM, SIGHUP recorded, SIGPIPE
 *                                    ignored
 *   core._cli_next_signal() -> signal number | nil
 *   core._cli_EPIPE                  errno of a write to a closed pipe
 *
 * Everything happens in the engine's libuv loop, so the engine fd (and
 * core.wait) wakes up for a line on stdin or a signal as for the network.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wsbeat.h"

#define CLI_MT "wsbeat.cli"
#define CLI_NSIG 3
#define CLI_SIGQ 16            /* signals recorded and not yet taken */
#define CLI_READ_MAX (1 << 24)

enum { IN_NONE, IN_POLL, IN_FILE };

static const char cli_key = 'c'; /* registry key of the CLI userdata */
static const int cli_signums[CLI_NSIG] = { SIGINT, SIGTERM, SIGHUP };

/*
 * malloc'd, not inside the userdata: uv_close() only finishes in a later
 * loop turn, and the handles must outlive the userdata until then.  Freed
 * by the last close callback.
 */
struct cli {
	struct wsb_engine *e;
	uv_poll_t in;                  /* fd 0, when epoll takes it */
	uv_signal_t sig[CLI_NSIG];
	int in_mode;                   /* IN_* */
	int in_watching;
	int in_ready;                  /* the poll said readable since the last read */
	int sig_on;
	int sigq[CLI_SIGQ];
	unsigned sigq_head, sigq_len;
	int handles;                   /* initialised and not yet closed */
};

static void on_closed(uv_handle_t *h)
{
	struct cli *c = h->data;

	if (--c->handles == 0)
		free(c);
}

static void cli_release(struct cli *c)
{
	if (c->in_mode == IN_POLL)
		uv_close((uv_handle_t *)&c->in, on_closed);
	if (c->sig_on)
		for (int i = 0; i < CLI_NSIG; i++)
			uv_close((uv_handle_t *)&c->sig[i], on_closed);
	if (!c->handles)
		free(c);
}

/*
 * At lua_close() finalizers run newest first.  The CLI userdata is always
 * made after the engine (get_cli asks for the engine first), so this runs
 * before engine_gc, whose uv_run then completes these closes; an active
 * handle left open would keep that uv_run from ever returning.
 */
static int cli_gc(lua_State *L)
{
	struct cli **box = luaL_checkudata(L, 1, CLI_MT);

	if (*box)
		cli_release(*box);
	*box = NULL;
	return 0;
}

static struct cli *get_cli(lua_State *L)
{
	struct wsb_engine *e = wsb_engine_get(L); /* first: see cli_gc */
	struct cli **box;

	if (lua_rawgetp(L, LUA_REGISTRYINDEX, &cli_key) == LUA_TUSERDATA) {
		box = lua_touserdata(L, -1);
		lua_pop(L, 1);
		return *box;
	}
	lua_pop(L, 1);
	box = lua_newuserdatauv(L, sizeof(*box), 0);
	*box = NULL;
	luaL_setmetatable(L, CLI_MT);
	*box = calloc(1, sizeof(**box));
	if (!*box)
		luaL_error(L, "wsbeat: out of memory");
	(*box)->e = e;
	lua_rawsetp(L, LUA_REGISTRYINDEX, &cli_key);
	return *box;
}

static int push_error(lua_State *L, const char *msg)
{
	lua_pushnil(L);
	lua_pushstring(L, msg);
	return 2;
}

/* ------------------------------------------------------------------ stdin */

static void on_stdin(uv_poll_t *h, int status, int events)
{
	struct cli *c = h->data;

	(void)events;
	c->in_ready = 1;
	if (status < 0)
		c->in_watching = 0; /* libuv stopped it; the read tells why */
}

static const char *const in_modes[] = { "none", "poll", "file" };

static int l_open_stdin(lua_State *L)
{
	struct cli *c = get_cli(L);
	int flags, r;

	if (c->in_mode == IN_NONE) {
		/*
		 * uv_poll_init() makes the fd non-blocking, a flag of the open
		 * file description: a terminal shares it with the shell (and
		 * stdout), a pipe with every process holding it.  Put it back;
		 * reads only follow the poll saying readable, so they do not
		 * wait anyway.
		 */
		flags = fcntl(0, F_GETFL);
		r = uv_poll_init(&c->e->loop, &c->in, 0);
		if (flags >= 0 && fcntl(0, F_GETFL) != flags)
			fcntl(0, F_SETFL, flags);
		if (r == 0) {
			c->in.data = c;
			c->handles++;
			c->in_mode = IN_POLL;
		} else if (r == UV_EPERM || r == UV_EBADF) {
			/* a regular file or /dev/null, which epoll refuses and
			 * whose reads never wait; or no fd 0 at all, which the
			 * first read reports */
			c->in_mode = IN_FILE;
		} else {
			return push_error(L, uv_strerror(r));
		}
	}
	lua_pushstring(L, in_modes[c->in_mode]);
	return 1;
}

static int l_watch_stdin(lua_State *L)
{
	struct cli *c = get_cli(L);
	int on, r;

	luaL_checktype(L, 1, LUA_TBOOLEAN);
	on = lua_toboolean(L, 1);
	if (c->in_mode == IN_NONE)
		return luaL_error(L, "_cli_watch_stdin: stdin is not open (_cli_open_stdin)");
	if (c->in_mode != IN_POLL || on == c->in_watching)
		return 0;
	if (on) {
		r = uv_poll_start(&c->in, UV_READABLE, on_stdin);
		if (r)
			return luaL_error(L, "_cli_watch_stdin: %s", uv_strerror(r));
	} else {
		uv_poll_stop(&c->in);
		c->in_ready = 0; /* (still readable: the poll says so again) */
	}
	c->in_watching = on;
	/* libuv changes the epoll set only inside uv_run: wake the engine
	 * fd so that a host that polls it lets that happen */
	wsb_engine_kick(c->e);
	return 0;
}

static int l_read_stdin(lua_State *L)
{
	struct cli *c = get_cli(L);
	lua_Integer max = luaL_checkinteger(L, 1);
	ssize_t n;
	char *buf;
	int err;

	luaL_argcheck(L, max >= 1 && max <= CLI_READ_MAX, 1,
		      "expected a size from 1 to 16777216");
	if (c->in_mode == IN_NONE)
		return luaL_error(L, "_cli_read_stdin: stdin is not open (_cli_open_stdin)");
	if (c->in_mode == IN_POLL) {
		/* a blocking fd: read only what the poll promised */
		if (!c->in_ready) {
			lua_pushliteral(L, "");
			return 1;
		}
		c->in_ready = 0;
	}
	/* (a scratch userdata, not luaL_buffinitsize: 5.1 has none; one copy
	 * per line of a terminal is nothing) */
	buf = lua_newuserdatauv(L, (size_t)max, 0);
	do
		n = read(0, buf, (size_t)max);
	while (n < 0 && errno == EINTR);
	err = errno;
	if (n > 0) {
		lua_pushlstring(L, buf, (size_t)n);
		return 1;
	}
	if (n == 0) {
		lua_pushnil(L);
		return 1;
	}
	/* someone else made it non-blocking, or read what was there */
	if (err == EAGAIN || err == EWOULDBLOCK) {
		lua_pushliteral(L, "");
		return 1;
	}
	return push_error(L, strerror(err));
}

/* ---------------------------------------------------------------- signals */

static void on_signal(uv_signal_t *h, int signum)
{
	struct cli *c = h->data;

	if (c->sigq_len < CLI_SIGQ)
		c->sigq[(c->sigq_head + c->sigq_len++) % CLI_SIGQ] = signum;
}

static int l_signals(lua_State *L)
{
	struct cli *c = get_cli(L);
	struct sigaction sa;
	int i, r = 0;

	if (!c->sig_on) {
		for (i = 0; i < CLI_NSIG; i++) {
			r = uv_signal_init(&c->e->loop, &c->sig[i]);
			if (r)
				break;
			c->sig[i].data = c;
			c->handles++;
			r = uv_signal_start(&c->sig[i], on_signal, cli_signums[i]);
			if (r) {
				i++;
				break;
			}
		}
		if (r) {
			/* close what was made; the loop finishes the closes */
			while (i-- > 0)
				uv_close((uv_handle_t *)&c->sig[i], on_closed);
			return push_error(L, uv_strerror(r));
		}
		c->sig_on = 1;
		wsb_engine_kick(c->e); /* as in l_watch_stdin */
	}
	/* a closed stdout is then an error return (EPIPE), not a death that
	 * leaves the connection unclosed */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGPIPE, &sa, NULL);
	lua_pushboolean(L, 1);
	return 1;
}

static int l_next_signal(lua_State *L)
{
	struct cli *c = get_cli(L);

	if (!c->sigq_len)
		return 0;
	lua_pushinteger(L, c->sigq[c->sigq_head]);
	c->sigq_head = (c->sigq_head + 1) % CLI_SIGQ;
	c->sigq_len--;
	return 1;
}

int wsb_open_cli(lua_State *L)
{
	static const luaL_Reg funcs[] = {
		{ "_cli_open_stdin", l_open_stdin },
		{ "_cli_watch_stdin", l_watch_stdin },
		{ "_cli_read_stdin", l_read_stdin },
		{ "_cli_signals", l_signals },
		{ "_cli_next_signal", l_next_signal },
		{ NULL, NULL }
	};

	if (luaL_newmetatable(L, CLI_MT)) {
		lua_pushcfunction(L, cli_gc);
		lua_setfield(L, -2, "__gc");
	}
	lua_pop(L, 1);
	luaL_setfuncs(L, funcs, 0);
	lua_pushinteger(L, EPIPE);
	lua_setfield(L, -2, "_cli_EPIPE");
	return 0;
}
