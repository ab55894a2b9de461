/*
 * Unit tests for the server's opening handshake (src/handshake.c), on
 * fixed request heads: what real clients send, and each way a head can be
 * malformed or not an upgrade we accept.  TAP-like output, no framework.
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
	static char buf[2048];
	size_t n = 0;

	n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s\r\n",
			      reqline ? reqline : "GET /chat HTTP/1.1");
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		if (!omit || strncmp(lines[i], omit, strlen(omit)))
			n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s\r\n",
					      lines[i]);
	if (extra)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s\r\n", extra);
	snprintf(buf + n, sizeof(buf) - n, "\r\n");
	return buf;
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
	printf("# %d tests, %d failed\n", n_run, n_failed);
	return n_failed ? 1 : 0;
}
