/*
 * libFuzzer target for the opening handshake (src/handshake.c), both
 * sides on the same input: as a request head (the first thing anyone who
 * connects gets to send a server), as a response head (the first thing a
 * server, or whatever answers in its place, sends a client), and cut at
 * its NULs into an offer for the request builder.  Checks the promises,
 * not just that nothing crashes: where the head ends is the same however
 * it arrives, what parses is what the interface says it is, a refusal
 * always carries its words, and no offer the builder takes can add a line
 * to the request or end it early.
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

static const char fuzz_key[] = "dGhlIHNhbXBsZSBub25jZQ==";
static const char fuzz_offered[] = "chat, superchat";

static int is_one_of(const char *s, const char *const *list)
{
	for (; *list; list++)
		if (!strcmp(s, *list))
			return 1;
	return 0;
}

/* A response that parsed: what wsb_hs_check_response makes of it. */
static void check_response(const struct wsb_hs_req *r)
{
	static const char *const whys[] = {
		"the response is not 101 Switching Protocols",
		"no Upgrade: websocket in the response",
		"no Connection: Upgrade in the response",
		"Sec-WebSocket-Accept missing",
		"Sec-WebSocket-Accept does not match the key",
		"the server chose a subprotocol that was not offered",
		NULL,
	};
	const char *why = NULL, *p = "unset";
	char want[29];
	int rc = wsb_hs_check_response(r, fuzz_key, fuzz_offered, &p, &why);

	assert(rc == 0 || rc == -1);
	if (rc) {
		assert(!p && why && is_one_of(why, whys));
		return;
	}
	assert(r->status == 101);
	wsb_hs_accept(fuzz_key, want);
	assert(!strcmp(wsb_hs_get(r, "sec-websocket-accept"), want));
	assert(!p || !strcmp(p, "chat") || !strcmp(p, "superchat"));
	assert(!p == !wsb_hs_get(r, "sec-websocket-protocol"));
	/* Nothing offered: a chosen subprotocol is a refusal. */
	p = "unset";
	rc = wsb_hs_check_response(r, fuzz_key, NULL, &p, &why);
	assert(rc == (wsb_hs_get(r, "sec-websocket-protocol") ? -1 : 0) && !p);
}

static void check_parsed_response(const struct wsb_hs_req *r, const char *s,
				  size_t end)
{
	size_t rl = strlen(r->reason);

	assert(r->buf && !r->method && !r->target && !r->path && !r->query);
	assert(!memcmp(s, "HTTP/1.", 7) && r->minor == s[7] - '0');
	assert(r->status >= 100 && r->status <= 599);
	assert(r->status ==
	       (s[9] - '0') * 100 + (s[10] - '0') * 10 + s[11] - '0');
	assert(!rl || (r->reason[rl - 1] != ' ' && r->reason[rl - 1] != '\t'));
	for (const char *c = r->reason; *c; c++)
		assert(((unsigned char)*c >= 0x20 || *c == '\t') && *c != 0x7f);
	assert(r->nh <= WSB_HS_MAX_HEADERS && strlen(r->reason) < end);
	for (size_t i = 0; i < r->nh; i++)
		check_header(r, i);
	check_response(r);
}

static void fuzz_response(const char *s, size_t size, size_t end)
{
	static const char no_status[] = "no HTTP status line in the response";
	static const char bad[] = "invalid or oversized HTTP response";
	struct wsb_hs_req r, r2;
	const char *why = NULL;
	int rc = wsb_hs_parse_response(&r, s, size, &why);

	if (rc) {
		assert(rc == -1 && why && !r.buf && !r.h && !r.nh);
		assert(!strcmp(why, no_status) || !strcmp(why, bad));
		/* Only a status line gets as far as the headers. */
		assert(!strcmp(why, no_status) || !memcmp(s, "HTTP/1.", 7));
		wsb_hs_free(&r);
		return;
	}
	assert(end);
	check_parsed_response(&r, s, end);
	assert(wsb_hs_parse_response(&r2, s, end, &why) == 0 &&
	       r2.nh == r.nh && r2.status == r.status);
	wsb_hs_free(&r2);
	wsb_hs_free(&r);
}

/*
 * The input cut at its NULs into an offer: target, host, origin,
 * protocols, extensions, key, and the rest as the extra headers.  What
 * the builder takes must come out as one head, every line ended by CRLF,
 * its only blank line the last: an injected line would show here.
 */
static void fuzz_request(const char *s, size_t size)
{
	struct wsb_hs_offer o = { 0 };
	const char **f[] = { &o.target, &o.host, &o.origin, &o.protocols,
			     &o.extensions, &o.key };
	char *in = malloc(size + 1), *p, *req;
	const char *why = NULL;
	size_t i, len = 0, cr = 0, lf = 0;

	if (!in)
		return;
	memcpy(in, s, size);
	in[size] = '\0';
	for (p = in, i = 0; i < 6 && p < in + size; i++) {
		*f[i] = p;
		p += strlen(p) + 1;
	}
	if (p < in + size) {
		o.headers = p;
		o.headers_len = (size_t)(in + size - p);
	}
	req = wsb_hs_request(&o, &len, &why);
	if (!req) {
		assert(why && why[0]);
		free(in);
		return;
	}
	assert(!why && strlen(req) == len && !strncmp(req, "GET ", 4));
	assert(wsb_hs_head_end(req, len) == len &&
	       !strcmp(req + len - 4, "\r\n\r\n"));
	for (i = 0; i < len; i++) {
		cr += req[i] == '\r';
		lf += req[i] == '\n';
		if (req[i] == '\n')
			assert(i && req[i - 1] == '\r');
	}
	assert(cr == lf);
	free(req);
	free(in);
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
	fuzz_response(s, size, end);
	fuzz_request(s, size);
	/* The raw input as a token list, cut at its first NUL. */
	if (size && memchr(s, '\0', size)) {
		const char *tok = s + strlen(s) + 1;

		if (memchr(tok, '\0', size - (size_t)(tok - s)))
			(void)wsb_hs_has_token(s, tok);
	}
	return 0;
}
