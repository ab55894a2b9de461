/*
 * Unit tests for the opening handshake (src/handshake.c).  The server's
 * side on fixed request heads: what real clients send, and each way a
 * head can be malformed or not an upgrade we accept.  The client's side:
 * the request bytes an offer makes, each injection it refuses, and
 * response heads as servers write them, well and badly.  TAP-like output,
 * no framework.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handshake.h"

static int n_run, n_failed;

static void ok(int cond, const char *desc)
{
	n_run++;
	if (!cond)
		n_failed++;
	printf("%s %d - %s\n", cond ? "ok" : "not ok", n_run, desc);
}

static int streq(const char *a, const char *b)
{
	return a && b && !strcmp(a, b);
}

/* The status wsb_hs_parse gives for head, freeing what it parsed. */
static int parse_status(const char *head)
{
	struct wsb_hs_req q;
	const char *why = NULL;
	int r = wsb_hs_parse(&q, head, strlen(head), &why);

	if (r && (!why || !*why))
		r = -1;	/* a refusal must say why */
	wsb_hs_free(&q);
	return r;
}

/* The status of parse then check: parse's refusal, or check's verdict. */
static int check_status(const char *head)
{
	struct wsb_hs_req q;
	const char *why = NULL;
	int r = wsb_hs_parse(&q, head, strlen(head), &why);

	if (!r)
		r = wsb_hs_check(&q, &why);
	if (r && (!why || !*why))
		r = -1;
	wsb_hs_free(&q);
	return r;
}

/* A head: first, then lines (less the one starting with omit), then
 * extra, then the blank line. */
static char *head_of(const char *first, const char *const *lines, size_t nl,
		     const char *extra, const char *omit)
{
	static char buf[2048];
	size_t n = 0;

	n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s\r\n", first);
	for (size_t i = 0; i < nl; i++)
		if (!omit || strncmp(lines[i], omit, strlen(omit)))
			n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s\r\n",
					      lines[i]);
	if (extra)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s\r\n", extra);
	snprintf(buf + n, sizeof(buf) - n, "\r\n");
	return buf;
}

/* A good upgrade head, its request line replaced (unless NULL), the line
 * starting with omit left out, extra lines added at the end. */
static char *head_with(const char *reqline, const char *extra,
		       const char *omit)
{
	static const char *const lines[] = {
		"Host: example.com",
		"Upgrade: websocket",
		"Connection: Upgrade",
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
		"Sec-WebSocket-Version: 13",
	};

	return head_of(reqline ? reqline : "GET /chat HTTP/1.1", lines,
		       sizeof(lines) / sizeof(lines[0]), extra, omit);
}

static void test_accept(void)
{
	char out[29], key[301];

	wsb_hs_accept("dGhlIHNhbXBsZSBub25jZQ==", out);
	/* The RFC's own text; "s3pPLMBiTxaQ9kYGzzhZK+xOo0s=" is a garbled
	 * copy of it that circulates. */
	ok(streq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") && strlen(out) == 28,
	   "accept: RFC 6455 section 1.3 example");
	wsb_hs_accept("AQIDBAUGBwgJCgsMDQ4PEA==", out);
	ok(streq(out, "C/0nmHhBztSRGR1CwL6Tf4ZjwpY="),
	   "accept: a second key");
	memset(key, 'k', 300);
	key[300] = '\0';
	wsb_hs_accept(key, out);
	ok(streq(out, "0epks0nN8rNytIigCrEHZPQGWfI="),
	   "accept: a key longer than the stack buffer");
}

static const char chrome[] =
	"GET /chat?room=1 HTTP/1.1\r\n"
	"Host: example.com:8080\r\n"
	"Connection: Upgrade\r\n"
	"Pragma: no-cache\r\n"
	"Cache-Control: no-cache\r\n"
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 "
	"(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n"
	"Upgrade: websocket\r\n"
	"Origin: http://example.com:8080\r\n"
	"Sec-WebSocket-Version: 13\r\n"
	"Accept-Encoding: gzip, deflate, br, zstd\r\n"
	"Accept-Language: en-US,en;q=0.9\r\n"
	"Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
	"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
	"\r\n";

static void test_chrome(void)
{
	struct wsb_hs_req q;
	const char *why = NULL;
	char out[29];
	int r = wsb_hs_parse(&q, chrome, strlen(chrome), &why);

	ok(r == 0 && streq(q.method, "GET") && streq(q.target, "/chat?room=1") &&
		   streq(q.path, "/chat") && streq(q.query, "room=1") &&
		   q.minor == 1 && q.nh == 12,
	   "chrome: request line and header count");
	if (r)
		return;
	ok(streq(q.h[0].name, "host") && streq(q.h[0].value, "example.com:8080") &&
		   streq(q.h[11].name, "sec-websocket-extensions"),
	   "chrome: headers in order of arrival, names lower-cased");
	ok(wsb_hs_check(&q, &why) == 0, "chrome: check accepts it");
	wsb_hs_accept(wsb_hs_get(&q, "Sec-WebSocket-Key"), out);
	ok(streq(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk="), "chrome: accept value");
	ok(streq(wsb_hs_get(&q, "ORIGIN"), "http://example.com:8080"),
	   "chrome: Origin looked up case-insensitively");
	wsb_hs_free(&q);
}

static const char python_ws[] =
	"GET /ws HTTP/1.1\r\n"
	"Host: localhost:8765\r\n"
	"Upgrade: websocket\r\n"
	"Connection: Upgrade\r\n"
	"Sec-WebSocket-Key: yw0dS0bxM3JNm6ZiNU5cIA==\r\n"
	"Sec-WebSocket-Version: 13\r\n"
	"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
	"User-Agent: Python/3.11 websockets/12.0\r\n"
	"\r\n";

static const char node_ws[] =
	"GET / HTTP/1.1\r\n"
	"Sec-WebSocket-Version: 13\r\n"
	"Sec-WebSocket-Key: E4WSEcseoWr4csPLS2QJHA==\r\n"
	"Connection: Upgrade\r\n"
	"Upgrade: websocket\r\n"
	"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
	"Host: 127.0.0.1:8080\r\n"
	"\r\n";

static void test_client(const char *name, const char *head, const char *path,
			const char *accept)
{
	struct wsb_hs_req q;
	const char *why = NULL;
	char out[29], desc[128];
	int r = wsb_hs_parse(&q, head, strlen(head), &why);

	if (!r)
		r = wsb_hs_check(&q, &why);
	if (!r)
		wsb_hs_accept(wsb_hs_get(&q, "sec-websocket-key"), out);
	snprintf(desc, sizeof(desc), "%s: parsed, accepted, accept value", name);
	ok(!r && streq(q.path, path) && !q.query && streq(out, accept), desc);
	wsb_hs_free(&q);
}

static void test_head_end(void)
{
	static const char head[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\nrest";
	size_t full = sizeof(head) - 1 - 4, split = full - 2, found = 0, i;

	ok(wsb_hs_head_end(head, split) == 0 &&
		   wsb_hs_head_end(head, sizeof(head) - 1) == full,
	   "head_end: blank line split across two feeds");
	for (i = 1; i <= sizeof(head) - 1 && !found; i++)
		found = wsb_hs_head_end(head, i);
	ok(found == full && i - 1 == full, "head_end: 1-byte increments");
	ok(wsb_hs_head_end("GET / HTTP/1.1\n\n", 16) == 16 &&
		   wsb_hs_head_end("GET / HTTP/1.1\nHost: a\n", 23) == 0,
	   "head_end: bare \\n\\n");
	ok(wsb_hs_head_end("", 0) == 0 && wsb_hs_head_end("\r\n\r", 3) == 0,
	   "head_end: nothing yet");
}

static void test_lf_only(void)
{
	static const char head[] =
		"GET /x HTTP/1.1\nHost: h\nUpgrade: websocket\n"
		"Connection: Upgrade\nSec-WebSocket-Version: 13\n"
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\n\n";

	ok(wsb_hs_head_end(head, strlen(head)) == strlen(head) &&
		   check_status(head) == 0,
	   "\\n\\n head parsed and accepted");
}

static int parse(struct wsb_hs_req *q, const char *head)
{
	const char *why;

	return wsb_hs_parse(q, head, strlen(head), &why);
}

static void test_path(void)
{
	struct wsb_hs_req q;
	int r;

	r = parse(&q, "GET /a%20b/c%2Fd?x=%20&y=%zz HTTP/1.1\r\n\r\n");
	ok(r == 0 && streq(q.path, "/a b/c/d"),
	   "path: %20 and %2F decoded");
	ok(r == 0 && streq(q.query, "x=%20&y=%zz") &&
		   streq(q.target, "/a%20b/c%2Fd?x=%20&y=%zz"),
	   "path: query and target kept raw");
	wsb_hs_free(&q);
	ok(parse_status("GET /a%zz HTTP/1.1\r\n\r\n") == 400 &&
		   parse_status("GET /a%2 HTTP/1.1\r\n\r\n") == 400,
	   "path: invalid or cut %-escape is 400");
	ok(parse_status("GET /a%00b HTTP/1.1\r\n\r\n") == 400,
	   "path: %00 is 400");
	r = parse(&q, "GET /? HTTP/1.1\r\n\r\n");
	ok(r == 0 && streq(q.path, "/") && streq(q.query, ""),
	   "path: empty query is \"\", not NULL");
	wsb_hs_free(&q);
	r = parse(&q, "GET http://host:80/p%41th?q=1 HTTP/1.1\r\n\r\n");
	ok(r == 0 && streq(q.path, "/pAth") && streq(q.query, "q=1"),
	   "path: absolute-form target gives its path");
	wsb_hs_free(&q);
	r = parse(&q, "GET ws://host?q HTTP/1.1\r\n\r\n");
	ok(r == 0 && streq(q.path, "/") && streq(q.query, "q"),
	   "path: absolute-form without a path is \"/\"");
	wsb_hs_free(&q);
	ok(parse_status("GET * HTTP/1.1\r\n\r\n") == 400 &&
		   parse_status("GET host:80 HTTP/1.1\r\n\r\n") == 400 &&
		   parse_status("GET /a#frag HTTP/1.1\r\n\r\n") == 400,
	   "path: asterisk, authority-form and fragment are 400");
}

static void test_headers(void)
{
	static const char head[] =
		"GET / HTTP/1.1\r\n"
		"X-Thing:   spaced value \t \r\n"
		"x-THING:plain\r\n"
		"Empty:\r\n"
		"Tabbed: a\tb\r\n"
		"\r\n";
	struct wsb_hs_req q;
	const char *why;
	char *all;
	int r = wsb_hs_parse(&q, head, strlen(head), &why);

	ok(r == 0 && q.nh == 4 && streq(q.h[0].name, "x-thing") &&
		   streq(q.h[1].name, "x-thing") &&
		   streq(q.h[0].value, "spaced value") &&
		   streq(q.h[1].value, "plain"),
	   "headers: names lower-cased, values trimmed");
	ok(r == 0 && streq(wsb_hs_get(&q, "X-THING"), "spaced value") &&
		   streq(wsb_hs_get(&q, "empty"), "") &&
		   streq(wsb_hs_get(&q, "tabbed"), "a\tb") &&
		   !wsb_hs_get(&q, "x-thin") && !wsb_hs_get(&q, "x-things"),
	   "headers: get takes the first, whole names only");
	all = r ? NULL : wsb_hs_get_all(&q, "x-thing");
	ok(streq(all, "spaced value, plain"), "headers: get_all joins repeats");
	free(all);
	all = r ? NULL : wsb_hs_get_all(&q, "empty");
	ok(streq(all, ""), "headers: get_all of one empty value");
	free(all);
	ok(r == 0 && !wsb_hs_get_all(&q, "absent"),
	   "headers: get_all of an absent header is NULL");
	wsb_hs_free(&q);
}

static void test_has_token(void)
{
	ok(wsb_hs_has_token("Upgrade", "upgrade"), "has_token: \"Upgrade\"");
	ok(wsb_hs_has_token("keep-alive, Upgrade", "upgrade"),
	   "has_token: \"keep-alive, Upgrade\"");
	ok(wsb_hs_has_token(" upgrade ", "upgrade"), "has_token: \" upgrade \"");
	ok(wsb_hs_has_token("a,\tUPGRADE\t,b", "Upgrade"),
	   "has_token: tabs around, any case");
	ok(!wsb_hs_has_token("upgrades", "upgrade"),
	   "has_token: \"upgrades\" does not match");
	ok(!wsb_hs_has_token("keep-alive upgrade", "upgrade"),
	   "has_token: no match inside a space-separated element");
	ok(!wsb_hs_has_token("", "upgrade") && !wsb_hs_has_token(NULL, "upgrade"),
	   "has_token: empty or NULL list");
	ok(!wsb_hs_has_token(", ,", "upgrade") && !wsb_hs_has_token("a,,b", ""),
	   "has_token: empty elements, empty token");
}

static void test_check(void)
{
	ok(check_status(head_with(NULL, NULL, NULL)) == 0, "check: good head");
	ok(check_status("GET / HTTP/1.1\r\nHost: a\r\n\r\n") == 426,
	   "check: plain HTTP request is 426");
	ok(check_status("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\n"
			"Connection: Upgrade\r\n\r\n") == 426,
	   "check: another protocol's upgrade, no key, is 426");
	ok(check_status(head_with("POST /chat HTTP/1.1", NULL, NULL)) == 405,
	   "check: POST is 405");
	ok(check_status(head_with("get /chat HTTP/1.1", NULL, NULL)) == 405,
	   "check: method is case-sensitive");
	ok(check_status(head_with("GET /chat HTTP/1.0", NULL, NULL)) == 400,
	   "check: HTTP/1.0 is 400");
	ok(check_status(head_with(NULL, "Upgrade: h2c", "Upgrade")) == 400,
	   "check: Upgrade without websocket (key present) is 400");
	ok(check_status(head_with(NULL, NULL, "Upgrade")) == 400,
	   "check: no Upgrade (key present) is 400");
	ok(check_status(head_with(NULL, "Connection: keep-alive",
				  "Connection")) == 400,
	   "check: Connection without upgrade is 400");
	ok(check_status(head_with(NULL, NULL, "Connection")) == 400,
	   "check: no Connection is 400");
	ok(check_status(head_with(NULL, "Connection: keep-alive\r\n"
				  "Upgrade: foo\r\nConnection: Upgrade\r\n"
				  "Upgrade: WebSocket",
				  "Connection")) == 0,
	   "check: repeated Connection/Upgrade count as one list");
	ok(check_status(head_with(NULL, NULL, "Host")) == 400,
	   "check: no Host is 400");
	ok(check_status(head_with(NULL, "Host: b", NULL)) == 400,
	   "check: two Hosts are 400");
	ok(check_status(head_with(NULL, NULL, "Sec-WebSocket-Version")) == 426,
	   "check: no Sec-WebSocket-Version is 426");
	ok(check_status(head_with(NULL, "Sec-WebSocket-Version: 8",
				  "Sec-WebSocket-Version")) == 426,
	   "check: Sec-WebSocket-Version 8 is 426");
	ok(check_status(head_with(NULL, NULL, "Sec-WebSocket-Key")) == 400,
	   "check: no Sec-WebSocket-Key (Upgrade present) is 400");
	ok(check_status(head_with(NULL, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ",
				  "Sec-WebSocket-Key")) == 400 &&
		   check_status(head_with(NULL,
					  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZXg=",
					  "Sec-WebSocket-Key")) == 400 &&
		   check_status(head_with(NULL,
					  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j*Q==",
					  "Sec-WebSocket-Key")) == 400 &&
		   check_status(head_with(NULL,
					  "Sec-WebSocket-Key: ZGhlIHNhbXBsZSBub25jZXhh",
					  "Sec-WebSocket-Key")) == 400,
	   "check: keys not the base64 of 16 bytes are 400");
	ok(check_status(head_with(NULL, "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==",
				  NULL)) == 400,
	   "check: two keys are 400");
}

static void test_malformed(void)
{
	char big[8192];
	size_t n;

	ok(check_status(head_with("GET  /chat HTTP/1.1", NULL, NULL)) == 400 &&
		   check_status(head_with("GET /chat  HTTP/1.1", NULL, NULL)) == 400,
	   "malformed: request line with two spaces");
	ok(parse_status("GET /chat\r\n\r\n") == 400 &&
		   parse_status("GET /chat \r\n\r\n") == 400 &&
		   parse_status("GET /chat HTTP/1.1 \r\n\r\n") == 400 &&
		   parse_status("GET /chat HTTP/1.12\r\n\r\n") == 400 &&
		   parse_status("GET /chat http/1.1\r\n\r\n") == 400,
	   "malformed: missing or bad version");
	ok(parse_status("GET /chat HTTP/2.0\r\n\r\n") == 505 &&
		   parse_status("GET /chat HTTP/0.9\r\n\r\n") == 505,
	   "malformed: HTTP/2.0 and 0.9 are 505");
	ok(parse_status("GET /chat HTTP/1.7\r\n\r\n") == 0 &&
		   parse_status("M-SEARCH /x HTTP/1.1\r\n\r\n") == 0,
	   "parse: any 1.x version and any token method");
	ok(parse_status("G(T /chat HTTP/1.1\r\n\r\n") == 400 &&
		   parse_status("\r\nGET / HTTP/1.1\r\n\r\n") == 400,
	   "malformed: bad method, empty request line");
	ok(check_status(head_with(NULL, "X-Long: a\r\n continued", NULL)) == 400 &&
		   check_status(head_with(NULL, "X-Long: a\r\n\tcontinued",
					  NULL)) == 400,
	   "malformed: obs-fold is 400");
	ok(check_status(head_with(NULL, "NoColonHere", NULL)) == 400,
	   "malformed: header line without a colon");
	ok(check_status(head_with(NULL, "X-Bad : v", NULL)) == 400,
	   "malformed: space before the colon");
	ok(check_status(head_with(NULL, "X(Bad): v", NULL)) == 400 &&
		   check_status(head_with(NULL, ": v", NULL)) == 400,
	   "malformed: name outside tchar, empty name");
	ok(check_status(head_with(NULL, "X-Bad: a\rb", NULL)) == 400 &&
		   check_status(head_with(NULL, "X-Bad: a\x01" "b", NULL)) == 400 &&
		   check_status(head_with(NULL, "X-Bad: a\x7f", NULL)) == 400,
	   "malformed: control characters in a value");
	ok(check_status(head_with(NULL, "X-Fine: caf\xc3\xa9", NULL)) == 0,
	   "parse: obs-text in a value is kept");
	ok(parse_status("GET / HTTP/1.1\r\nHost: a\r\n") == 400,
	   "malformed: head without its blank line");
	ok(wsb_hs_parse(&(struct wsb_hs_req){0}, "GET / HTTP/1.1\r\n\0: a\r\n\r\n",
			26, &(const char *){NULL}) == 400,
	   "malformed: NUL byte in the head");

	n = (size_t)snprintf(big, sizeof(big), "GET / HTTP/1.1\r\n");
	for (int i = 0; i < WSB_HS_MAX_HEADERS; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, "X-%d: v\r\n", i);
	snprintf(big + n, sizeof(big) - n, "\r\n");
	ok(parse_status(big) == 0, "limit: 100 header lines parse");
	snprintf(big + n, sizeof(big) - n, "X-Last: v\r\n\r\n");
	ok(parse_status(big) == 400, "limit: 101 header lines are 400");
}

static void test_trailing_bytes(void)
{
	static const char buf[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n\x81\x05hello";
	struct wsb_hs_req q;
	const char *why;
	int r = wsb_hs_parse(&q, buf, sizeof(buf) - 1, &why);

	ok(r == 0 && q.nh == 1 && streq(wsb_hs_get(&q, "host"), "a"),
	   "parse: bytes after the head are left alone");
	wsb_hs_free(&q);
}

/* ---- The client's side ---- */

static const char rfc_key[] = "dGhlIHNhbXBsZSBub25jZQ==";
static const char rfc_accept[] = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
static const char no_status[] = "no HTTP status line in the response";
static const char bad_response[] = "invalid or oversized HTTP response";

static void test_key(void)
{
	unsigned char rnd[16];
	char out[25];

	ok(wsb_hs_key(out, (const unsigned char *)"the sample nonce") == 0 &&
		   streq(out, rfc_key),
	   "key: RFC 6455's sample nonce");
	for (int i = 0; i < 16; i++)
		rnd[i] = (unsigned char)(i + 1);
	wsb_hs_key(out, rnd);
	ok(streq(out, "AQIDBAUGBwgJCgsMDQ4PEA=="), "key: bytes 1..16");
	memset(rnd, 0xff, sizeof(rnd));
	wsb_hs_key(out, rnd);
	ok(streq(out, "/////////////////////w==") && strlen(out) == 24,
	   "key: all 0xff, 24 characters");
}

/* The request for o, or NULL; *why is checked to be set on a refusal
 * and *len to leave the NUL out. */
static char *request(const struct wsb_hs_offer *o, const char **why)
{
	size_t len = 0;
	char *s;

	*why = NULL;
	s = wsb_hs_request(o, &len, why);
	if (s && (len != strlen(s) || *why))
		s[0] = '\0';	/* fails the caller's comparison */
	if (!s && (!*why || !**why))
		*why = NULL;
	return s;
}

/* Whether o is refused, for a reason that says what (holds what). */
static int refused(const struct wsb_hs_offer *o, const char *what)
{
	const char *why;
	char *s = request(o, &why);

	free(s);
	return !s && why && strstr(why, what);
}

static const struct wsb_hs_offer minimal = {
	.host = "example.com", .key = "dGhlIHNhbXBsZSBub25jZQ==",
};

static const char minimal_request[] =
	"GET / HTTP/1.1\r\n"
	"Host: example.com\r\n"
	"Upgrade: websocket\r\n"
	"Connection: Upgrade\r\n"
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	"Sec-WebSocket-Version: 13\r\n"
	"\r\n";

static void test_request(void)
{
	/* headers_len leaves out the NUL C adds to the literal: it would be
	 * one field too many. */
	static const char extras[] = "Authorization\0Bearer x y\0X-Empty\0\0";
	struct wsb_hs_offer o = {
		.target = "/chat?room=1", .host = "example.com:8080",
		.origin = "http://example.com", .protocols = "chat, superchat",
		.extensions = "permessage-deflate; client_max_window_bits",
		.headers = extras, .headers_len = sizeof(extras) - 1, .key = rfc_key,
	};
	const char *why;
	char *s = request(&o, &why);

	ok(streq(s, "GET /chat?room=1 HTTP/1.1\r\n"
		    "Host: example.com:8080\r\n"
		    "Upgrade: websocket\r\n"
		    "Connection: Upgrade\r\n"
		    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
		    "Sec-WebSocket-Version: 13\r\n"
		    "Origin: http://example.com\r\n"
		    "Sec-WebSocket-Protocol: chat, superchat\r\n"
		    "Sec-WebSocket-Extensions: permessage-deflate; "
		    "client_max_window_bits\r\n"
		    "Authorization: Bearer x y\r\n"
		    "X-Empty: \r\n"
		    "\r\n"),
	   "request: full offer, exact bytes");
	free(s);
	s = request(&minimal, &why);
	ok(streq(s, minimal_request),
	   "request: minimal offer, exact bytes, target \"/\"");
	free(s);
	o = minimal;
	o.target = "";
	o.origin = o.protocols = o.extensions = "";
	s = request(&o, &why);
	ok(streq(s, minimal_request),
	   "request: empty target is \"/\", empty optional values are absent");
	free(s);
}

/* A literal as extra headers: without the NUL C adds to it, which would
 * be one field too many. */
#define EXTRA(lit) lit, sizeof(lit) - 1

/* The request for minimal plus these extra headers and fields. */
static char *request_extras(const char *h, size_t hl, const char *origin,
			    const char *protocols)
{
	struct wsb_hs_offer o = minimal;
	const char *why;

	o.headers = h;
	o.headers_len = hl;
	o.origin = origin;
	o.protocols = protocols;
	return request(&o, &why);
}

static void test_request_skipped(void)
{
	static const char owned[] =
		"HOST\0evil.example\0upgrade\0h2c\0Connection\0close\0"
		"sec-websocket-key\0AQIDBAUGBwgJCgsMDQ4PEA==\0"
		"Sec-WebSocket-Version\0008\0"
		"SEC-WEBSOCKET-EXTENSIONS\0x-evil\0X-Kept\0yes\0";
	static const char pair[] =
		"Origin\0http://extra\0Sec-WebSocket-Protocol\0extra\0";
	char *s = request_extras(EXTRA(owned), NULL, NULL);
	const char *tail = "Sec-WebSocket-Version: 13\r\nX-Kept: yes\r\n\r\n";

	ok(s && strlen(s) > strlen(tail) &&
		   streq(s + strlen(s) - strlen(tail), tail) &&
		   !strstr(s, "evil") && !strstr(s, "h2c") && !strstr(s, "close") &&
		   !strstr(s, "AQID") && !strstr(s, ": 8"),
	   "request: the six owned headers given as extras are skipped");
	free(s);
	s = request_extras(EXTRA(pair), NULL, NULL);
	ok(s && strstr(s, "\r\nOrigin: http://extra\r\n"
			  "Sec-WebSocket-Protocol: extra\r\n\r\n"),
	   "request: extra Origin and Sec-WebSocket-Protocol sent when the "
	   "offer has none");
	free(s);
	s = request_extras(EXTRA(pair), "http://o", "chat");
	ok(s && !strstr(s, "extra") && strstr(s, "\r\nOrigin: http://o\r\n") &&
		   strstr(s, "\r\nSec-WebSocket-Protocol: chat\r\n"),
	   "request: extra Origin and Sec-WebSocket-Protocol skipped when the "
	   "offer sets them");
	free(s);
}

/* Whether minimal with these extra headers is refused, for a reason that
 * says what. */
static int extra_refused(const char *h, size_t hl, const char *what)
{
	struct wsb_hs_offer o = minimal;

	o.headers = h;
	o.headers_len = hl;
	return refused(&o, what);
}

static void test_request_refused(void)
{
	static const char crlf[] = "CR or LF", name[] = "header name",
			  pairs[] = "name/value pairs", target[] = "target",
			  missing[] = "no Host or Sec-WebSocket-Key";
	struct wsb_hs_offer o;
	char *s;

	o = minimal, o.target = "/a\r\nX-Evil: 1";
	ok(refused(&o, target), "request refused: CR LF in the target");
	o = minimal, o.target = "/a\nb";
	ok(refused(&o, target), "request refused: LF in the target");
	o = minimal, o.target = "/a HTTP/1.0";
	ok(refused(&o, target), "request refused: space in the target");
	o = minimal, o.target = "/a\tb";
	ok(refused(&o, target), "request refused: tab in the target");
	o = minimal, o.host = "h\r\nX-Evil: 1";
	ok(refused(&o, crlf), "request refused: CR LF in Host");
	o = minimal, o.key = "k\n";
	ok(refused(&o, crlf), "request refused: LF in the key");
	o = minimal, o.origin = "http://o\rX";
	ok(refused(&o, crlf), "request refused: CR in Origin");
	o = minimal, o.protocols = "chat\r\n";
	ok(refused(&o, crlf), "request refused: CR LF in the protocols");
	o = minimal, o.extensions = "x\n\n";
	ok(refused(&o, crlf), "request refused: LF in the extensions");
	o = minimal, o.host = NULL;
	ok(refused(&o, missing), "request refused: no host");
	o = minimal, o.key = NULL;
	ok(refused(&o, missing), "request refused: no key");
	ok(extra_refused(EXTRA("X-A\0a\r\nX-Evil: 1\0"), crlf),
	   "request refused: CR LF in an extra value");
	ok(extra_refused(EXTRA("X-A\0a\rb\0"), crlf) &&
		   extra_refused(EXTRA("X-A\0a\nb\0"), crlf),
	   "request refused: lone CR or LF in an extra value");
	ok(extra_refused(EXTRA("X-A\r\nX-B\0v\0"), name),
	   "request refused: CR LF in an extra name");
	ok(extra_refused(EXTRA("\0v\0"), name),
	   "request refused: empty extra name");
	ok(extra_refused(EXTRA("X A\0v\0"), name) &&
		   extra_refused(EXTRA("X:A\0v\0"), name) &&
		   extra_refused(EXTRA("X(A)\0v\0"), name) &&
		   extra_refused(EXTRA("X\xc3\xa9\0v\0"), name),
	   "request refused: extra names not a token");
	ok(extra_refused(EXTRA("X-A\0va\0lue\0"), pairs),
	   "request refused: NUL inside an extra value leaves a name alone");
	ok(extra_refused(EXTRA("X-A\0v"), pairs) &&
		   extra_refused(EXTRA("X-A"), pairs),
	   "request refused: extra headers not NUL-terminated");
	ok(extra_refused(NULL, 4, pairs),
	   "request refused: headers_len without headers");
	ok(extra_refused(EXTRA("Host\0a\nb\0"), crlf),
	   "request refused: a skipped extra header is still validated");
	s = request_extras(EXTRA("X-A\0caf\xc3\xa9\tx\0"), NULL, NULL);
	ok(s && strstr(s, "\r\nX-A: caf\xc3\xa9\tx\r\n\r\n"),
	   "request: obs-text and tab in an extra value are sent");
	free(s);
}

/* A good 101 response (RFC 6455 section 1.3's, less its subprotocol),
 * its status line replaced (unless NULL), the line starting with omit
 * left out, extra lines added at the end. */
static char *response_with(const char *status, const char *extra,
			   const char *omit)
{
	static const char *const lines[] = {
		"Upgrade: websocket",
		"Connection: Upgrade",
		"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
	};

	return head_of(status ? status : "HTTP/1.1 101 Switching Protocols",
		       lines, sizeof(lines) / sizeof(lines[0]), extra, omit);
}

/* wsb_hs_parse_response's reason for head, NULL when it parses; a
 * refusal without words, or a parse that leaves a request's fields set,
 * shows as "?". */
static const char *response_why(const char *head, size_t len)
{
	struct wsb_hs_req r;
	const char *why = NULL;
	int rc = wsb_hs_parse_response(&r, head, len, &why);

	if (rc)
		return rc == -1 && why && !r.buf && !r.h ? why : "?";
	rc = r.method || r.target || r.path || r.query || !r.reason;
	wsb_hs_free(&r);
	return rc ? "?" : NULL;
}

static const char *parse_why(const char *head)
{
	return response_why(head, strlen(head));
}

/* wsb_hs_check_response's reason for head (parsed first), NULL when it
 * accepts; *protocol is copied to chosen (or "" when NULL). */
static const char *check_why(const char *head, const char *key,
			     const char *offered, char chosen[64])
{
	struct wsb_hs_req r;
	const char *why = NULL, *p = "unset";
	int rc = wsb_hs_parse_response(&r, head, strlen(head), &why);

	if (!rc)
		rc = wsb_hs_check_response(&r, key, offered, &p, &why);
	snprintf(chosen, 64, "%s", p ? p : "");
	if (rc && (!why || !*why || (p && r.buf)))
		why = "?";	/* a refusal says why and chooses nothing */
	wsb_hs_free(&r);
	return rc ? why : NULL;
}

static void test_response_parse(void)
{
	static const char rfc[] =
		"HTTP/1.1 101 Switching Protocols\r\n"
		"Upgrade: websocket\r\n"
		"Connection: Upgrade\r\n"
		"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
		"Sec-WebSocket-Protocol: chat\r\n"
		"\r\n\x81\x02hi";
	struct wsb_hs_req r;
	const char *why = NULL, *p = NULL;
	int rc = wsb_hs_parse_response(&r, rfc, sizeof(rfc) - 1, &why);

	ok(rc == 0 && r.status == 101 && r.minor == 1 &&
		   streq(r.reason, "Switching Protocols") && r.nh == 4 &&
		   !r.method && !r.target && !r.path && !r.query,
	   "response: RFC 6455's example, status line, frame bytes after it");
	ok(rc == 0 && streq(r.h[3].name, "sec-websocket-protocol") &&
		   streq(wsb_hs_get(&r, "Sec-WebSocket-Accept"), rfc_accept),
	   "response: headers in order, names lower-cased, get works");
	ok(rc == 0 && wsb_hs_check_response(&r, rfc_key, "chat, superchat",
					    &p, &why) == 0 &&
		   streq(p, "chat") && p >= r.buf && p < r.buf + sizeof(rfc),
	   "response: RFC 6455's example checks, protocol \"chat\" inside r");
	wsb_hs_free(&r);

	rc = wsb_hs_parse_response(&r, "HTTP/1.1 101\r\nX: 1\r\n\r\n", 22, &why);
	ok(rc == 0 && r.status == 101 && streq(r.reason, "") && r.nh == 1,
	   "response: status line without a reason");
	wsb_hs_free(&r);
	rc = wsb_hs_parse_response(&r, "HTTP/1.1 101 \r\n\r\n", 17, &why);
	ok(rc == 0 && streq(r.reason, ""),
	   "response: status line with an empty reason");
	wsb_hs_free(&r);
	rc = wsb_hs_parse_response(&r, "HTTP/1.0 404 Not  Found \t\r\n\r\n", 29,
				   &why);
	ok(rc == 0 && r.status == 404 && r.minor == 0 &&
		   streq(r.reason, "Not  Found"),
	   "response: HTTP/1.0, reason kept, trailing blanks dropped");
	wsb_hs_free(&r);
	rc = wsb_hs_parse_response(&r, "HTTP/1.1 200 caf\xc3\xa9\tok\r\n\r\n",
				   25, &why);
	ok(rc == 0 && streq(r.reason, "caf\xc3\xa9\tok"),
	   "response: obs-text and tab in the reason");
	wsb_hs_free(&r);
	ok(check_why("HTTP/1.1 101 Switching Protocols\nUpgrade: websocket\n"
		     "Connection: Upgrade\n"
		     "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\n\n",
		     rfc_key, NULL, (char[64]){0}) == NULL,
	   "response: bare LF line ends parse and check");
	ok(!parse_why("HTTP/1.1 100 Continue\r\n\r\n") &&
		   !parse_why("HTTP/1.9 599 x\r\n\r\n"),
	   "response: statuses 100 and 599, any 1.x version");
}

static void test_response_repeated(void)
{
	static const char head[] =
		"HTTP/1.1 101 OK\r\nSet-Cookie: a=1\r\nX: y\r\nset-cookie: b=2\r\n\r\n";
	struct wsb_hs_req r;
	const char *why;
	char *all;
	int rc = wsb_hs_parse_response(&r, head, strlen(head), &why);

	ok(rc == 0 && streq(wsb_hs_get(&r, "SET-COOKIE"), "a=1"),
	   "response repeated: get takes the first");
	all = rc ? NULL : wsb_hs_get_all(&r, "set-cookie");
	ok(streq(all, "a=1, b=2"), "response repeated: get_all joins them");
	free(all);
	wsb_hs_free(&r);
	wsb_hs_free(&r);
	ok(r.buf == NULL && r.status == 0, "response: free twice is harmless");
}

static void test_response_no_status(void)
{
	static const char tls_alert[] = "\x15\x03\x01\x00\x02\x02\x46";

	ok(streq(parse_why("HTTP/1.1 abc\r\n\r\n"), no_status),
	   "no status line: \"HTTP/1.1 abc\"");
	ok(streq(parse_why("HTP/1.1 101\r\n\r\n"), no_status),
	   "no status line: \"HTP/1.1 101\"");
	ok(streq(parse_why("header: only\r\n\r\n"), no_status),
	   "no status line: a header line first");
	ok(streq(parse_why("HTTP/1.1 099 Low\r\n\r\n"), no_status),
	   "no status line: status 099");
	ok(streq(parse_why("HTTP/1.1 600 High\r\n\r\n"), no_status),
	   "no status line: status 600");
	ok(streq(parse_why("HTTP/2 101\r\n\r\n"), no_status) &&
		   streq(parse_why("HTTP/2.0 101\r\n\r\n"), no_status) &&
		   streq(parse_why("http/1.1 101\r\n\r\n"), no_status) &&
		   streq(parse_why("HTTP/1.x 101\r\n\r\n"), no_status),
	   "no status line: other versions, lower-case HTTP");
	ok(streq(parse_why("HTTP/1.1  101\r\n\r\n"), no_status) &&
		   streq(parse_why("HTTP/1.1 1011\r\n\r\n"), no_status) &&
		   streq(parse_why("HTTP/1.1 10\r\n\r\n"), no_status) &&
		   streq(parse_why("HTTP/1.1 101\tOK\r\n\r\n"), no_status),
	   "no status line: two spaces, four or two digits, tab after code");
	ok(streq(parse_why("HTTP/1.1 101 O\x01K\r\n\r\n"), no_status) &&
		   streq(parse_why("HTTP/1.1 101 O\rK\r\n\r\n"), no_status) &&
		   streq(parse_why("HTTP/1.1 101 OK\x7f\r\n\r\n"), no_status) &&
		   streq(response_why("HTTP/1.1 101 O\0K\r\n\r\n", 19), no_status),
	   "no status line: control characters in the reason");
	ok(streq(parse_why("\r\nHTTP/1.1 101 OK\r\n\r\n"), no_status) &&
		   streq(response_why("", 0), no_status),
	   "no status line: empty first line, nothing at all");
	ok(streq(response_why(tls_alert, sizeof(tls_alert) - 1), no_status),
	   "no status line: a TLS alert (ws:// to a wss:// port)");
}

static void test_response_malformed(void)
{
	char big[8192];
	size_t n;

	ok(streq(parse_why(response_with(NULL, "NoColonHere", NULL)),
		 bad_response),
	   "bad response: header line without a colon");
	ok(streq(parse_why(response_with(NULL, "X(Bad): v", NULL)),
		 bad_response) &&
		   streq(parse_why(response_with(NULL, ": v", NULL)), bad_response),
	   "bad response: name outside tchar, empty name");
	ok(streq(parse_why(response_with(NULL, "X-Bad : v", NULL)),
		 bad_response),
	   "bad response: space before the colon");
	ok(streq(parse_why(response_with(NULL, "X-Long: a\r\n continued", NULL)),
		 bad_response) &&
		   streq(parse_why(response_with(NULL, "X-Long: a\r\n\tcontinued",
						 NULL)),
			 bad_response),
	   "bad response: obs-fold");
	ok(streq(parse_why(response_with(NULL, "X-Bad: a\rb", NULL)),
		 bad_response) &&
		   streq(parse_why(response_with(NULL, "X-Bad: a\x01" "b", NULL)),
			 bad_response) &&
		   streq(parse_why(response_with(NULL, "X-Bad: a\x7f", NULL)),
			 bad_response),
	   "bad response: control characters in a value");
	ok(!parse_why(response_with(NULL, "X-Fine: a\tb caf\xc3\xa9", NULL)),
	   "response: tab and obs-text in a value are kept");
	ok(streq(response_why("HTTP/1.1 101 OK\r\nX: \0\r\n\r\n", 23),
		 bad_response),
	   "bad response: NUL byte in a header");
	ok(streq(parse_why("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\n"),
		 bad_response) &&
		   streq(parse_why("HTTP/1.1 101 OK"), bad_response),
	   "bad response: no blank line");

	n = (size_t)snprintf(big, sizeof(big), "HTTP/1.1 101 OK\r\n");
	for (int i = 0; i < WSB_HS_MAX_HEADERS; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, "X-%d: v\r\n", i);
	snprintf(big + n, sizeof(big) - n, "\r\n");
	ok(!parse_why(big), "response limit: 100 header lines parse");
	snprintf(big + n, sizeof(big) - n, "X-Last: v\r\n\r\n");
	ok(streq(parse_why(big), bad_response),
	   "bad response: 101 header lines");
}

static void test_check_response(void)
{
	char p[64];

	ok(!check_why(response_with(NULL, NULL, NULL), rfc_key, NULL, p) &&
		   streq(p, ""),
	   "check_response: accepted, no protocol offered or chosen");
	ok(!check_why(response_with(NULL, NULL, NULL), rfc_key, "chat", p) &&
		   streq(p, ""),
	   "check_response: accepted, server declined every protocol");
	ok(!check_why(response_with(NULL, "Sec-WebSocket-Protocol: superchat",
				    NULL),
		      rfc_key, " chat ,\tsuperchat ", p) &&
		   streq(p, "superchat"),
	   "check_response: accepted, protocol from a spaced offer list");
	ok(!check_why(response_with(NULL, "Upgrade: WebSocket\r\n"
				    "Connection: keep-alive, UPGRADE",
				    "Upgrade"),
		      rfc_key, NULL, p),
	   "check_response: Upgrade and Connection tokens in any case, in lists");
	ok(!check_why(response_with(NULL, "Connection: keep-alive\r\n"
				    "Connection: upgrade",
				    "Connection"),
		      rfc_key, NULL, p),
	   "check_response: repeated Connection headers count as one list");
	ok(streq(check_why(response_with("HTTP/1.1 200 OK", NULL, NULL),
			   rfc_key, NULL, p),
		 "the response is not 101 Switching Protocols"),
	   "check_response fails: status 200");
	{
		struct wsb_hs_req q;
		const char *why = NULL, *proto = "unset";
		int rc = wsb_hs_parse(&q, head_with(NULL, NULL, NULL),
				      strlen(head_with(NULL, NULL, NULL)), &why);

		ok(rc == 0 && q.status == 0 && !q.reason &&
			   wsb_hs_check_response(&q, rfc_key, NULL, &proto,
						 &why) == -1 &&
			   !proto &&
			   streq(why, "the response is not 101 Switching Protocols"),
		   "check_response fails: a request (status 0)");
		wsb_hs_free(&q);
	}
	ok(streq(check_why(response_with(NULL, NULL, "Upgrade"), rfc_key, NULL,
			   p),
		 "no Upgrade: websocket in the response"),
	   "check_response fails: no Upgrade");
	ok(streq(check_why(response_with(NULL, "Upgrade: h2c", "Upgrade"),
			   rfc_key, NULL, p),
		 "no Upgrade: websocket in the response"),
	   "check_response fails: Upgrade: h2c");
	ok(streq(check_why(response_with(NULL, NULL, "Connection"), rfc_key,
			   NULL, p),
		 "no Connection: Upgrade in the response"),
	   "check_response fails: no Connection");
	ok(streq(check_why(response_with(NULL, "Connection: keep-alive",
					 "Connection"),
			   rfc_key, NULL, p),
		 "no Connection: Upgrade in the response"),
	   "check_response fails: Connection: keep-alive");
	ok(streq(check_why(response_with(NULL, NULL, "Sec-WebSocket-Accept"),
			   rfc_key, NULL, p),
		 "Sec-WebSocket-Accept missing"),
	   "check_response fails: no Sec-WebSocket-Accept");
	ok(streq(check_why(response_with(NULL, NULL, NULL),
			   "AQIDBAUGBwgJCgsMDQ4PEA==", NULL, p),
		 "Sec-WebSocket-Accept does not match the key"),
	   "check_response fails: accept for another key");
	ok(streq(check_why(response_with(NULL, "Sec-WebSocket-Accept: "
					 "S3PPLMBITXAQ9KYGZZHZRBK+XOO=",
					 "Sec-WebSocket-Accept"),
			   rfc_key, NULL, p),
		 "Sec-WebSocket-Accept does not match the key"),
	   "check_response fails: accept in another case");
	ok(streq(check_why(response_with(NULL, "Sec-WebSocket-Accept:",
					 "Sec-WebSocket-Accept"),
			   rfc_key, NULL, p),
		 "Sec-WebSocket-Accept does not match the key"),
	   "check_response fails: empty accept");
	ok(streq(check_why(response_with(NULL, "Sec-WebSocket-Accept: "
					 "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
					 NULL),
			   rfc_key, NULL, p),
		 "Sec-WebSocket-Accept does not match the key"),
	   "check_response fails: accept repeated, even with the right value");
	ok(streq(check_why(response_with(NULL, NULL, NULL), NULL, NULL, p),
		 "Sec-WebSocket-Accept does not match the key"),
	   "check_response fails: no key to match");
}

static void test_check_response_protocol(void)
{
	static const char not_offered[] =
		"the server chose a subprotocol that was not offered";
	char p[64];

	ok(streq(check_why(response_with(NULL, "Sec-WebSocket-Protocol: mqtt",
					 NULL),
			   rfc_key, "chat, superchat", p),
		 not_offered),
	   "check_response fails: protocol not offered");
	ok(streq(check_why(response_with(NULL, "Sec-WebSocket-Protocol: chat",
					 NULL),
			   rfc_key, NULL, p),
		 not_offered),
	   "check_response fails: protocol chosen, none offered");
	ok(streq(check_why(response_with(NULL, "Sec-WebSocket-Protocol: Chat",
					 NULL),
			   rfc_key, "chat", p),
		 not_offered),
	   "check_response fails: protocol in another case");
	ok(streq(check_why(response_with(NULL, "Sec-WebSocket-Protocol: sup",
					 NULL),
			   rfc_key, "superchat", p),
		 not_offered),
	   "check_response fails: a prefix of an offered protocol");
	ok(streq(check_why(response_with(NULL, "Sec-WebSocket-Protocol:", NULL),
			   rfc_key, "chat", p),
		 not_offered),
	   "check_response fails: empty protocol");
	ok(streq(check_why(response_with(NULL, "Sec-WebSocket-Protocol: chat\r\n"
					 "Sec-WebSocket-Protocol: chat",
					 NULL),
			   rfc_key, "chat", p),
		 not_offered),
	   "check_response fails: protocol repeated");
	ok(streq(check_why(response_with(NULL, "Sec-WebSocket-Protocol: chat, "
					 "superchat",
					 NULL),
			   rfc_key, "chat, superchat", p),
		 not_offered),
	   "check_response fails: a list of protocols");
	ok(streq(check_why(response_with(NULL, "Sec-WebSocket-Protocol: a b",
					 NULL),
			   rfc_key, "a b", p),
		 not_offered),
	   "check_response fails: a protocol that is not a token");
}

int main(void)
{
	test_accept();
	test_chrome();
	test_client("python websockets", python_ws, "/ws",
		    "KVksDrOv7LycEtBQMY5Rgru8puQ=");
	test_client("node ws", node_ws, "/", "7eQChgCtQMnVILefJAO6dK5JwPc=");
	test_head_end();
	test_lf_only();
	test_path();
	test_headers();
	test_has_token();
	test_check();
	test_malformed();
	test_trailing_bytes();
	test_key();
	test_request();
	test_request_skipped();
	test_request_refused();
	test_response_parse();
	test_response_repeated();
	test_response_no_status();
	test_response_malformed();
	test_check_response();
	test_check_response_protocol();
	printf("# %d tests, %d failed\n", n_run, n_failed);
	return n_failed ? 1 : 0;
}
