/*
 * libFuzzer target for the server's opening handshake (src/handshake.c):
 * the request head is the first thing anyone who connects gets to send.
 * Checks the parser's promises, not just that it does not crash: where
 * the head ends is the same however it arrives, what parses is what the
 * interface says it is, and a refusal always carries a status and words.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/handshake.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int is_tchar(int ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
	       (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* The head ends at its first blank line, and nowhere before it. */
static size_t check_head_end(const char *s, size_t size)
{
	size_t end = wsb_hs_head_end(s, size);

	assert(end <= size);
	if (!end)
		return 0;
	assert(end >= 2 && s[end - 1] == '\n');
	assert(s[end - 2] == '\n' ||
	       (end >= 3 && s[end - 2] == '\r' && s[end - 3] == '\n'));
	assert(wsb_hs_head_end(s, end) == end);
	assert(wsb_hs_head_end(s, end - 1) == 0);
	/* Heard in two reads, split anywhere: the same answer. */
	assert(wsb_hs_head_end(s, end / 2) == 0);
	return end;
}

static void check_header(const struct wsb_hs_req *q, size_t i)
{
	const struct wsb_hs_header *h = &q->h[i];
	size_t vl = strlen(h->value);
	char *all;

	assert(h->name[0]);
	for (const char *c = h->name; *c; c++)
		assert(is_tchar((unsigned char)*c));
	assert(!vl || (h->value[0] != ' ' && h->value[0] != '\t' &&
		       h->value[vl - 1] != ' ' && h->value[vl - 1] != '\t'));
	for (const char *c = h->value; *c; c++)
		assert((unsigned char)*c >= 0x20 || *c == '\t');
	/* get gives the first of a name, get_all starts with it. */
	assert(wsb_hs_get(q, h->name) != NULL);
	all = wsb_hs_get_all(q, h->name);
	assert(all && !strncmp(all, wsb_hs_get(q, h->name),
			       strlen(wsb_hs_get(q, h->name))));
	/* Each comma-free value is a token of its own list, and of the join. */
	if (vl && !strchr(h->value, ',')) {
		assert(wsb_hs_has_token(h->value, h->value));
		assert(wsb_hs_has_token(all, h->value));
	}
	free(all);
}

static void check_parsed(const struct wsb_hs_req *q, const char *head,
			 size_t end)
{
	const char *why = NULL;
	char out[29];
	int r;

	assert(q->buf && q->method[0] && q->target[0]);
	assert(q->path[0] == '/');
	assert(q->minor >= 0 && q->minor <= 9);
	assert(q->nh <= WSB_HS_MAX_HEADERS);
	assert(strlen(q->path) <= end);
	if (q->query)
		assert(q->query > q->target && q->query[-1] == '?');
	for (size_t i = 0; i < q->nh; i++)
		check_header(q, i);
	assert(!wsb_hs_get(q, "") && !wsb_hs_get_all(q, "no such header:"));
	r = wsb_hs_check(q, &why);
	assert(r == 0 || r == 400 || r == 405 || r == 426);
	if (r) {
		assert(why && why[0]);
		return;
	}
	assert(!strcmp(q->method, "GET") && q->minor >= 1);
	assert(strlen(wsb_hs_get(q, "Sec-WebSocket-Key")) == 24);
	wsb_hs_accept(wsb_hs_get(q, "Sec-WebSocket-Key"), out);
	assert(strlen(out) == 28);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data, *why = NULL;
	struct wsb_hs_req q;
	size_t end = check_head_end(s, size);
	int r = wsb_hs_parse(&q, s, size, &why);

	assert(r == 0 || r == 400 || r == 500 || r == 505);
	if (r) {
		assert(why && why[0] && !q.buf && !q.h && !q.nh);
		wsb_hs_free(&q);	/* harmless on a refusal */
	} else {
		struct wsb_hs_req q2;

		assert(end);
		check_parsed(&q, s, end);
		/* Bytes after the blank line change nothing. */
		assert(wsb_hs_parse(&q2, s, end, &why) == 0 && q2.nh == q.nh);
		wsb_hs_free(&q2);
		wsb_hs_free(&q);
	}
	/* The raw input as a token list, cut at its first NUL. */
	if (size && memchr(s, '\0', size)) {
		const char *tok = s + strlen(s) + 1;

		if (memchr(tok, '\0', size - (size_t)(tok - s)))
			(void)wsb_hs_has_token(s, tok);
	}
	return 0;
}
