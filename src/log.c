/*
 * Logging: wsbeat's own lines and libwebsockets' lines, by level, to stderr
 * or to a Lua function.
 *
 * Lines are produced inside library callbacks, where Lua must not run, so
 * for a Lua target they are queued (bounded) and handed over from step().
 * libwebsockets' log emitter is process-wide and carries no context: its
 * lines go to the engine that enabled logging last.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wsbeat.h"

#define LOG_QUEUE_MAX 1000

struct wsb_logline {
	STAILQ_ENTRY(wsb_logline) link;
	int level;
	char text[];
};

static struct wsb_engine *lws_target; /* engine receiving lws's lines */

static const char *const level_names[] = { "error", "warn", "info", "debug" };

static void enqueue(struct wsb_engine *e, int level, const char *text)
{
	size_t n = strlen(text);
	struct wsb_logline *l;

	while (n && (text[n - 1] == '\n' || text[n - 1] == '\r'))
		n--;
	if (e->log_to_stderr) {
		fprintf(stderr, "wsbeat %s: %.*s\n", level_names[level], (int)n,
			text);
		return;
	}
	if (e->log_count >= LOG_QUEUE_MAX) {
		e->log_dropped++;
		return;
	}
	l = malloc(sizeof(*l) + n + 1);
	if (!l) {
		e->log_dropped++;
		return;
	}
	l->level = level;
	memcpy(l->text, text, n);
	l->text[n] = '\0';
	STAILQ_INSERT_TAIL(&e->log_lines, l, link);
	e->log_count++;
	e->news++;
}

void wsb_log(struct wsb_engine *e, int level, const char *fmt, ...)
{
	char buf[600];
	va_list ap;

	if (!e || level > e->log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	enqueue(e, level, buf);
}

static void lws_emit(int lll, const char *line)
{
	int level = (lll & LLL_ERR) ? WSB_LOG_ERROR :
		    (lll & LLL_WARN) ? WSB_LOG_WARN :
		    (lll & LLL_NOTICE) ? WSB_LOG_INFO : WSB_LOG_DEBUG;
	char buf[600];

	if (!lws_target || level > lws_target->log_level)
		return;
	snprintf(buf, sizeof(buf), "libwebsockets: %s", line);
	enqueue(lws_target, level, buf);
}

/* level: -1 = off; otherwise WSB_LOG_*; to_stderr or queue for Lua */
void wsb_log_configure(struct wsb_engine *e, int level, int to_stderr)
{
	int lll = 0;

	e->log_level = level;
	e->log_to_stderr = to_stderr;
	if (level >= WSB_LOG_ERROR)
		lll |= LLL_ERR;
	if (level >= WSB_LOG_WARN)
		lll |= LLL_WARN;
	if (level >= WSB_LOG_INFO)
		lll |= LLL_NOTICE;
	if (level >= WSB_LOG_DEBUG)
		lll |= LLL_INFO;
	if (level < 0) {
		if (lws_target == e) {
			lws_target = NULL;
			lws_set_log_level(0, NULL);
		}
		return;
	}
	lws_target = e;
	lws_set_log_level(lll, lws_emit);
}

void wsb_log_release(struct wsb_engine *e)
{
	struct wsb_logline *l;

	if (lws_target == e) {
		lws_target = NULL;
		lws_set_log_level(0, NULL);
	}
	while ((l = STAILQ_FIRST(&e->log_lines))) {
		STAILQ_REMOVE_HEAD(&e->log_lines, link);
		free(l);
	}
	e->log_count = 0;
}

/* core.next_log() -> level, text | nil */
int wsb_l_next_log(lua_State *L)
{
	struct wsb_engine *e = wsb_engine_get(L);
	struct wsb_logline *l = STAILQ_FIRST(&e->log_lines);

	if (e->log_dropped) {
		lua_pushstring(L, "warn");
		lua_pushfstring(L, "%d log lines dropped (queue full)",
				(int)e->log_dropped);
		e->log_dropped = 0;
		return 2;
	}
	if (!l)
		return 0;
	STAILQ_REMOVE_HEAD(&e->log_lines, link);
	e->log_count--;
	lua_pushstring(L, level_names[l->level]);
	lua_pushstring(L, l->text);
	free(l);
	return 2;
}

/* core.set_log(level | nil, to_stderr) */
int wsb_l_set_log(lua_State *L)
{
	static const char *const names[] = { "error", "warn", "info", "debug",
					     NULL };
	struct wsb_engine *e = wsb_engine_get(L);
	int level = lua_isnoneornil(L, 1) ? -1 : luaL_checkoption(L, 1, NULL, names);

	wsb_log_configure(e, level, lua_toboolean(L, 2));
	return 0;
}
