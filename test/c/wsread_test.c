/*
 * Unit tests of the server's frame reader (src/wsread.c) and the piecewise
 * UTF-8 validator (wsb_utf8_step in src/utf8.c), TAP-like: one "ok N" or
 * "not ok N" line a case, exit status 1 when any failed.
 *
 * Every stream is built from fixed bytes, masked with RFC 6455 5.7's key,
 * and read several ways: whole, a byte at a time, in pieces of 3 and 7 at
 * odd addresses, and with callbacks that stop the feed every time.  The
 * callbacks write what they see to a log in which the chunking leaves no
 * trace ("<1z:" opens a compressed text message, ">" ends it, "[9:...]" is
 * a ping), so every way must give the same log and the same result.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wsread.h"

int wsb_utf8_valid(const unsigned char *s, size_t n); /* src/utf8.c */

#define STREAM_MAX 80000

static const unsigned char key[4] = { 0x37, 0xfa, 0x21, 0x3d };
static int client_mode; /* streams are a server's: unmasked, read as a client */
static int cases, failed;
static int chunk_cases, chunk_mismatches; /* the byte-at-a-time reads */

static void ok(int cond, const char *fmt, ...)
{
	va_list ap;

	cases++;
	if (!cond)
		failed++;
	printf("%sok %d - ", cond ? "" : "not ", cases);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* ------------------------------------------------------------ streams */

struct stream {
	size_t len;
	unsigned char b[STREAM_MAX];
};

static struct stream st;

/* A client's frame: first byte, the shortest length form, key, payload. */
static void add(struct stream *s, unsigned first, const void *payload,
		size_t n)
{
	unsigned char *h = s->b + s->len;
	const unsigned char *p = payload;
	size_t hl;

	h[0] = (unsigned char)first;
	if (n < 126) {
		h[1] = (unsigned char)(0x80 | n);
		hl = 2;
	} else if (n < 65536) {
		h[1] = 0x80 | 126;
		h[2] = (unsigned char)(n >> 8);
		h[3] = (unsigned char)n;
		hl = 4;
	} else {
		h[1] = 0x80 | 127;
		for (int i = 0; i < 8; i++)
			h[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
		hl = 10;
	}
	if (client_mode) {
		h[1] &= 0x7f;
		memcpy(h + hl, p, n);
		s->len += hl + n;
		return;
	}
	memcpy(h + hl, key, 4);
	for (size_t i = 0; i < n; i++)
		h[hl + 4 + i] = p[i] ^ key[i & 3];
	s->len += hl + 4 + n;
}

static void adds(struct stream *s, unsigned first, const char *text)
{
	add(s, first, text, strlen(text));
}

/* Raw bytes, for headers no well-behaved client writes. */
static void raw(struct stream *s, const unsigned char *b, size_t n)
{
	memcpy(s->b + s->len, b, n);
	s->len += n;
}

/* ---------------------------------------------------------- recording */

struct rec {
	int in_msg, op, comp, bad;
	int calls, data_calls, control_calls;
	int stop_every;             /* return this from every callback */
	int stop_at, stop_val;      /* return stop_val from call stop_at */
	const unsigned char *last_p;
	size_t last_n;
	int last_first, last_fin;
	size_t len;
	unsigned char log[STREAM_MAX + 1024]; /* last: rec_reset keeps it */
};

static struct rec rc;

static void logs(struct rec *r, const void *p, size_t n)
{
	if (r->len + n > sizeof r->log) {
		r->bad++;
		return;
	}
	memcpy(r->log + r->len, p, n);
	r->len += n;
}

static void logf_(struct rec *r, const char *fmt, int a, const char *b)
{
	char s[32];

	logs(r, s, (size_t)snprintf(s, sizeof s, fmt, a, b));
}

static int stop(struct rec *r)
{
	if (r->stop_every)
		return r->stop_every;
	return r->calls == r->stop_at ? r->stop_val : 0;
}

static int on_data(void *arg, int op, int comp, const unsigned char *p,
		   size_t n, int first, int fin)
{
	struct rec *r = arg;

	r->calls++;
	r->data_calls++;
	if (first != !r->in_msg)
		r->bad++;
	if (first) {
		r->op = op;
		r->comp = comp;
		r->in_msg = 1;
		logf_(r, "<%d%s:", op, comp ? "z" : "");
	} else if (op != r->op || comp != r->comp) {
		r->bad++;
	}
	if (!n && !first && !fin) /* a call that says nothing */
		r->bad++;
	logs(r, p, n);
	if (fin) {
		logs(r, ">", 1);
		r->in_msg = 0;
	}
	r->last_p = p;
	r->last_n = n;
	r->last_first = first;
	r->last_fin = fin;
	return stop(r);
}

static int on_control(void *arg, int op, const unsigned char *p, size_t n)
{
	struct rec *r = arg;

	r->calls++;
	r->control_calls++;
	logf_(r, "[%d%s:", op, "");
	logs(r, p, n);
	logs(r, "]", 1);
	r->last_p = p;
	r->last_n = n;
	return stop(r);
}

static const struct wsb_rd_ops ops = { on_data, on_control };

static void rec_reset(struct rec *r)
{
	memset(r, 0, offsetof(struct rec, log));
}

/* The log is exactly this text. */
static int logged(const struct rec *r, const char *text)
{
	return r->len == strlen(text) && !memcmp(r->log, text, r->len);
}

/*
 * Read s in pieces of chunk bytes (0: whole) at buf + align, resuming
 * wherever a callback stopped the feed.  Returns the last result; a
 * violation must then stick, without reading or calling anything.
 */
static int run(struct rec *r, const struct stream *s, int pmd, size_t chunk,
	       size_t align, const char **err)
{
	static unsigned char buf[STREAM_MAX + 16];
	struct wsb_rd rd;
	size_t pos = 0, used;
	int rv = 0;

	memcpy(buf + align, s->b, s->len);
	wsb_rd_init(&rd, pmd);
	rd.client = client_mode;
	while (pos < s->len) {
		size_t n = s->len - pos;

		if (chunk && chunk < n)
			n = chunk;
		rv = wsb_rd_feed(&rd, buf + align + pos, n, &used, &ops, r);
		if (used > n || (!rv && used != n)) {
			r->bad++;
			break;
		}
		pos += used;
		if (rv < 0)
			break;
		if (rv && rv != (r->stop_every ? r->stop_every : r->stop_val))
			r->bad++;
		rv = 0; /* a stop: go on after it */
	}
	if (rv < 0) {
		int calls = r->calls;

		if (wsb_rd_feed(&rd, buf + align + pos, s->len - pos, &used,
				&ops, r) != rv || used || r->calls != calls)
			r->bad++;
		if (!rd.err)
			r->bad++;
	} else if (rd.err) {
		r->bad++;
	}
	*err = rd.err;
	return rv;
}

/*
 * Read the stream every way; all must give want (the log of the expected
 * callbacks), the result want_rv and, after a violation, an error that
 * mentions why.
 */
static int check(const struct stream *s, int pmd, int want_rv,
		 const char *why, const char *want, size_t want_len)
{
	static const struct { size_t chunk, align; int stop; } way[] = {
		{ 0, 0, 0 }, { 1, 0, 0 }, { 3, 1, 0 }, { 7, 3, 0 },
		{ 0, 5, 9 }, { 1, 1, 9 }, { 5, 2, 9 },
	};
	const char *first_err = NULL;
	int good = 1;

	for (size_t w = 0; w < sizeof way / sizeof way[0]; w++) {
		const char *err;
		int rv, same;

		rec_reset(&rc);
		rc.stop_every = way[w].stop;
		rv = run(&rc, s, pmd, way[w].chunk, way[w].align, &err);
		same = rc.len == want_len && !memcmp(rc.log, want, want_len);
		if (way[w].chunk == 1) {
			chunk_cases++;
			chunk_mismatches += !same || rv != want_rv;
		}
		if (!same || rc.bad || rv != want_rv) {
			fprintf(stderr, "# way %zu: rv %d (want %d), bad %d, "
				"log %.*s\n", w, rv, want_rv, rc.bad,
				(int)(rc.len > 200 ? 200 : rc.len), rc.log);
			good = 0;
		}
		if (w == 0)
			first_err = err;
		else if (err != first_err)
			good = 0;
		if (why && (!err || !strstr(err, why))) {
			fprintf(stderr, "# err \"%s\", want \"%s\"\n",
				err ? err : "(null)", why);
			good = 0;
		}
	}
	return good;
}

#define CHECK(s, pmd, rv, why, want) \
	check(s, pmd, rv, why, want, sizeof want - 1)

static struct stream *fresh(void)
{
	st.len = 0;
	return &st;
}

/* --------------------------------------------------------- passing */

static void test_passing(void)
{
	static const unsigned char hello[] = { /* RFC 6455 5.7 */
		0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51,
		0x58,
	};
	static unsigned char big[70000], want[70100];
	struct stream *s;
	size_t wl;
	int good;

	s = fresh();
	raw(s, hello, sizeof hello);
	ok(CHECK(s, 0, 0, NULL, "<1:Hello>"), "masked text in one frame");

	s = fresh();
	adds(s, 0x01, "Hel");
	adds(s, 0x89, "ping!");
	adds(s, 0x00, "lo");
	adds(s, 0x80, " world");
	ok(CHECK(s, 0, 0, NULL, "<1:Hel[9:ping!]lo world>"),
	   "3 fragments with a ping between the first two");

	s = fresh();
	adds(s, 0x02, "ab");
	adds(s, 0x8a, "");
	adds(s, 0x00, "");
	adds(s, 0x80, "");
	ok(CHECK(s, 0, 0, NULL, "<2:ab[10:]>"),
	   "binary with an empty middle and an empty final fragment");

	s = fresh();
	adds(s, 0x81, "");
	rec_reset(&rc);
	{
		const char *err;
		int once = !run(&rc, s, 0, 0, 0, &err) && rc.data_calls == 1 &&
			   rc.last_n == 0 && rc.last_first && rc.last_fin;

		ok(once && CHECK(s, 0, 0, NULL, "<1:>"),
		   "empty text frame: data once, n 0, first, fin");
	}

	for (int i = 0; i < 125; i++)
		big[i] = (unsigned char)(i * 7 + 1);
	s = fresh();
	add(s, 0x89, big, 125);
	wl = (size_t)sprintf((char *)want, "[9:");
	memcpy(want + wl, big, 125);
	wl += 125;
	want[wl++] = ']';
	ok(check(s, 0, 0, NULL, (char *)want, wl) && s->b[1] == 0xfd,
	   "125-byte ping");

	for (int i = 0; i < 70000; i++)
		big[i] = (unsigned char)(i ^ i >> 8);
	s = fresh();
	add(s, 0x82, big, 126);
	wl = (size_t)sprintf((char *)want, "<2:");
	memcpy(want + wl, big, 126);
	wl += 126;
	want[wl++] = '>';
	ok(check(s, 0, 0, NULL, (char *)want, wl) && s->b[1] == 0xfe &&
	   s->b[2] == 0 && s->b[3] == 126, "126-byte payload, 16-bit length");

	s = fresh();
	add(s, 0x82, big, 70000);
	wl = (size_t)sprintf((char *)want, "<2:");
	memcpy(want + wl, big, 70000);
	wl += 70000;
	want[wl++] = '>';
	good = s->b[1] == 0xff && !memcmp(s->b + 2,
		"\0\0\0\0\0\x01\x11\x70", 8);
	ok(check(s, 0, 0, NULL, (char *)want, wl) && good,
	   "70000-byte payload, 64-bit length");

	s = fresh();
	adds(s, 0x41, "ab");
	adds(s, 0x89, "p");
	adds(s, 0x00, "cd");
	adds(s, 0x80, "ef");
	adds(s, 0x81, "gh");
	adds(s, 0xc2, "ij");
	ok(CHECK(s, 1, 0, NULL, "<1z:ab[9:p]cdef><1:gh><2z:ij>"),
	   "pmd: compressed on every piece of a message, not the next");

	s = fresh();
	add(s, 0x88, "\x03\xe8" "bye", 5);
	ok(CHECK(s, 0, 0, NULL, "[8:\x03\xe8" "bye]"),
	   "close 1000 \"bye\" passed to control");

	s = fresh();
	adds(s, 0x88, "");
	ok(CHECK(s, 0, 0, NULL, "[8:]"), "close with an empty payload");

	s = fresh();
	add(s, 0x88, "\x03\xe8\xe2\x82\xac", 5);
	ok(CHECK(s, 0, 0, NULL, "[8:\x03\xe8\xe2\x82\xac]"),
	   "close reason with a 3-byte character");
}

static void test_close_codes(void)
{
	static const unsigned good_codes[] = {
		1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012,
		1013, 1014, 3000, 3999, 4000, 4999,
	};
	static const unsigned bad_codes[] = {
		0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999,
		5000, 65535,
	};

	for (size_t i = 0; i < sizeof good_codes / sizeof good_codes[0]; i++) {
		unsigned c = good_codes[i];
		unsigned char p[2] = { (unsigned char)(c >> 8),
				       (unsigned char)c };
		char want[8] = { '[', '8', ':', (char)p[0], (char)p[1], ']' };
		struct stream *s = fresh();

		add(s, 0x88, p, 2);
		ok(check(s, 0, 0, NULL, want, 6), "close code %u passes", c);
	}
	for (size_t i = 0; i < sizeof bad_codes / sizeof bad_codes[0]; i++) {
		unsigned c = bad_codes[i];
		unsigned char p[2] = { (unsigned char)(c >> 8),
				       (unsigned char)c };
		struct stream *s = fresh();

		add(s, 0x88, p, 2);
		adds(s, 0x81, "after");
		ok(CHECK(s, 0, -1002, "close code", ""),
		   "close code %u: -1002", c);
	}
}

/* ------------------------------------------------------ stop and resume */

static void test_stops(void)
{
	static unsigned char buf[256];
	struct stream *s;
	struct wsb_rd rd;
	size_t used, n;
	int a, b, c;

	/* stop on the first data call: the feed ends right after "Hello" */
	s = fresh();
	adds(s, 0x81, "Hello");
	adds(s, 0x89, "p");
	adds(s, 0x82, "xyz");
	memcpy(buf, s->b, s->len);
	rec_reset(&rc);
	rc.stop_at = 1;
	rc.stop_val = 5;
	wsb_rd_init(&rd, 0);
	a = wsb_rd_feed(&rd, buf, s->len, &used, &ops, &rc) == 5 &&
	    used == 11 && rc.last_p + rc.last_n == buf + used;
	b = wsb_rd_feed(&rd, buf + used, s->len - used, &n, &ops, &rc) == 0 &&
	    n == s->len - 11;
	ok(a && b && !rc.bad && logged(&rc, "<1:Hello>[9:p]<2:xyz>"),
	   "data callback returning 5 stops the feed after its bytes");

	/* stops in mid-payload, at key positions 3 and 1, and resumes */
	s = fresh();
	adds(s, 0x01, "abcde");
	adds(s, 0x80, "fghijklmnopq");
	memcpy(buf + 1, s->b, s->len);
	rec_reset(&rc);
	rc.stop_every = 5;
	wsb_rd_init(&rd, 0);
	a = wsb_rd_feed(&rd, buf + 1, 9, &used, &ops, &rc) == 5 &&
	    used == 9 && rc.last_n == 3 && !memcmp(rc.last_p, "abc", 3);
	b = wsb_rd_feed(&rd, buf + 10, 13, &used, &ops, &rc) == 5 &&
	    used == 2 && !memcmp(rc.last_p, "de", 2);
	b = b && wsb_rd_feed(&rd, buf + 12, 11, &used, &ops, &rc) == 5 &&
	    used == 11 && rc.last_n == 5 && !memcmp(rc.last_p, "fghij", 5);
	c = wsb_rd_feed(&rd, buf + 23, s->len - 22, &used, &ops, &rc) == 5 &&
	    used == s->len - 22 && rc.last_fin;
	ok(a && b && c && !rc.bad && logged(&rc, "<1:abcdefghijklmnopq>"),
	   "stopped in mid-payload, resumed at the right key position");

	/* a control callback's stop: the feed ends right after the frame */
	s = fresh();
	adds(s, 0x89, "hi");
	adds(s, 0x81, "ok");
	memcpy(buf, s->b, s->len);
	rec_reset(&rc);
	rc.stop_at = 1;
	rc.stop_val = 7;
	wsb_rd_init(&rd, 0);
	a = wsb_rd_feed(&rd, buf, s->len, &used, &ops, &rc) == 7 &&
	    used == 8 && rc.control_calls == 1 && !rc.data_calls;
	b = wsb_rd_feed(&rd, buf + 8, s->len - 8, &n, &ops, &rc) == 0 &&
	    n == s->len - 8;
	ok(a && b && !rc.bad && logged(&rc, "[9:hi]<1:ok>"),
	   "control callback returning 7 stops right after its frame");

	/* an empty frame's call may stop the feed too */
	s = fresh();
	adds(s, 0x81, "");
	adds(s, 0x88, "");
	memcpy(buf, s->b, s->len);
	rec_reset(&rc);
	rc.stop_at = 1;
	rc.stop_val = 3;
	wsb_rd_init(&rd, 0);
	a = wsb_rd_feed(&rd, buf, s->len, &used, &ops, &rc) == 3 && used == 6;
	b = wsb_rd_feed(&rd, buf + 6, 6, &n, &ops, &rc) == 0 && n == 6;
	ok(a && b && !rc.bad && logged(&rc, "<1:>[8:]"),
	   "empty frame's callback returning 3 stops after its header");
}

/* Every start address and every cut of a long payload: the word loop. */
static void test_alignment(void)
{
	static unsigned char pay[1000], buf[1100];
	struct wsb_rd rd;
	int good = 1;

	for (int i = 0; i < 1000; i++)
		pay[i] = (unsigned char)(i * 31 + 7);
	for (size_t align = 0; align < 8; align++) {
		for (size_t cut = 6; cut < 6 + 21; cut++) {
			struct stream *s = fresh();
			size_t used, n;

			add(s, 0x82, pay, 1000);
			memcpy(buf + align, s->b, s->len);
			rec_reset(&rc);
			wsb_rd_init(&rd, 0);
			n = s->len;
			if (wsb_rd_feed(&rd, buf + align, cut, &used, &ops,
					&rc) ||
			    wsb_rd_feed(&rd, buf + align + cut, n - cut, &used,
					&ops, &rc) ||
			    rc.bad || rc.len != 1004 ||
			    memcmp(rc.log + 3, pay, 1000))
				good = 0;
		}
	}
	ok(good, "unmasking at 8 alignments and 21 cuts of a 1000-byte "
	   "payload");
}

/* --------------------------------------------------------- violations */

static void test_violations(void)
{
	static const unsigned char k[4] = { 0x37, 0xfa, 0x21, 0x3d };
	struct stream *s;

	s = fresh();
	raw(s, (const unsigned char *)"\x81\x05Hello", 7);
	ok(CHECK(s, 0, -1002, "unmasked", ""), "unmasked frame: -1002");

	s = fresh();
	adds(s, 0xa1, "x");
	ok(CHECK(s, 1, -1002, "RSV2 or RSV3", ""), "RSV2 set: -1002");

	s = fresh();
	adds(s, 0x91, "x");
	ok(CHECK(s, 1, -1002, "RSV2 or RSV3", ""), "RSV3 set: -1002");

	s = fresh();
	adds(s, 0xc1, "x");
	ok(CHECK(s, 0, -1002, "without permessage-deflate", ""),
	   "RSV1 without pmd: -1002");

	s = fresh();
	adds(s, 0x41, "ab");
	adds(s, 0xc0, "cd");
	ok(CHECK(s, 1, -1002, "continuation", "<1z:ab"),
	   "RSV1 on a continuation frame, pmd 1: -1002");

	s = fresh();
	adds(s, 0xc9, "");
	ok(CHECK(s, 1, -1002, "control", ""),
	   "RSV1 on a control frame, pmd 1: -1002");

	for (unsigned op = 3; op < 16; op++) {
		if (op >= 8 && op <= 10)
			continue;
		s = fresh();
		adds(s, 0x80 | op, "");
		ok(CHECK(s, 0, -1002, "reserved opcode", ""),
		   "reserved opcode %u: -1002", op);
	}

	s = fresh();
	adds(s, 0x09, "");
	ok(CHECK(s, 0, -1002, "fragmented control", ""),
	   "ping with FIN clear: -1002");

	s = fresh();
	adds(s, 0x01, "a");
	adds(s, 0x08, "");
	ok(CHECK(s, 0, -1002, "fragmented control", "<1:a"),
	   "close with FIN clear, inside a message: -1002");

	s = fresh();
	raw(s, (const unsigned char *)"\x89\xfe\x00\x7e", 4);
	raw(s, k, 4);
	ok(CHECK(s, 0, -1002, "over 125", ""),
	   "ping of 126 bytes (16-bit length): -1002");

	s = fresh();
	raw(s, (const unsigned char *)"\x8a\xfe\x00\x05", 4);
	raw(s, k, 4);
	ok(CHECK(s, 0, -1002, "over 125", ""),
	   "pong of 5 bytes in the 16-bit form: -1002");

	s = fresh();
	raw(s, (const unsigned char *)"\x88\xff\0\0\0\0\0\0\0\x02", 10);
	raw(s, k, 4);
	ok(CHECK(s, 0, -1002, "over 125", ""),
	   "close in the 64-bit form: -1002");

	s = fresh();
	adds(s, 0x80, "x");
	ok(CHECK(s, 0, -1002, "no message", ""),
	   "continuation with no message in progress: -1002");

	s = fresh();
	adds(s, 0x81, "done");
	adds(s, 0x00, "x");
	ok(CHECK(s, 0, -1002, "no message", "<1:done>"),
	   "continuation after a finished message: -1002");

	s = fresh();
	adds(s, 0x01, "ab");
	adds(s, 0x81, "cd");
	ok(CHECK(s, 0, -1002, "final fragment", "<1:ab"),
	   "text frame while a message is in progress: -1002");

	s = fresh();
	adds(s, 0x02, "ab");
	adds(s, 0x89, "");
	adds(s, 0x82, "cd");
	ok(CHECK(s, 0, -1002, "final fragment", "<2:ab[9:]"),
	   "binary frame while a message is in progress: -1002");

	s = fresh();
	raw(s, (const unsigned char *)"\x82\xff\x80\0\0\0\0\0\0\x01", 10);
	raw(s, k, 4);
	ok(CHECK(s, 0, -1002, "most significant bit", ""),
	   "64-bit length with its most significant bit set: -1002");

	s = fresh();
	adds(s, 0x88, "\x03");
	ok(CHECK(s, 0, -1002, "1-byte", ""),
	   "close with a 1-byte payload: -1002");

	s = fresh();
	add(s, 0x88, "\x03\xe8\xc0\xaf", 4);
	ok(CHECK(s, 0, -1007, "UTF-8", ""),
	   "close reason with an overlong form: -1007");

	s = fresh();
	add(s, 0x88, "\x03\xe8" "ab\xed\xa0\x80", 7);
	ok(CHECK(s, 0, -1007, "UTF-8", ""),
	   "close reason with a surrogate: -1007");

	s = fresh();
	add(s, 0x88, "\x03\xe8" "ab\xe2\x82", 6);
	ok(CHECK(s, 0, -1007, "UTF-8", ""),
	   "close reason ending in half a character: -1007");

	/* run() already feeds again after each violation; here it is alone */
	{
		static unsigned char buf[32];
		struct wsb_rd rd;
		size_t used = 99;
		int a, b, c;

		s = fresh();
		raw(s, (const unsigned char *)"\x81\x01x", 3);
		adds(s, 0x81, "ok");
		memcpy(buf, s->b, s->len);
		rec_reset(&rc);
		wsb_rd_init(&rd, 0);
		a = wsb_rd_feed(&rd, buf, s->len, &used, &ops, &rc) == -1002;
		b = wsb_rd_feed(&rd, buf + 3, s->len - 3, &used, &ops,
				&rc) == -1002 && used == 0;
		c = wsb_rd_feed(&rd, buf, 0, &used, &ops, &rc) == -1002;
		ok(a && b && c && !rc.calls && rd.err,
		   "after a violation the next calls return the same code");
	}
}

/* ---------------------------------------------------------- UTF-8 steps */

/* The index of the byte at which a byte-at-a-time run fails, or -1. */
static long fails_at(const char *s, size_t n, uint32_t *state)
{
	*state = 0;
	for (size_t i = 0; i < n; i++)
		if (wsb_utf8_step(state, (const unsigned char *)s + i, 1))
			return (long)i;
	return -1;
}

static void test_utf8(void)
{
	static const unsigned char at_once[] = {
		0x80, 0xbf, 0xc0, 0xc1, 0xf5, 0xf8, 0xfe, 0xff,
	};
	static unsigned char text[300];
	uint32_t stt;
	int good;

	ok(fails_at("\xf4\x90", 2, &stt) == 1, "UTF-8: F4 90 fails at byte 2");
	ok(fails_at("\xed\xa0", 2, &stt) == 1, "UTF-8: ED A0 fails at byte 2");
	ok(fails_at("\xe0\x9f", 2, &stt) == 1 &&
	   fails_at("\xf0\x8f", 2, &stt) == 1,
	   "UTF-8: overlong E0 9F and F0 8F fail at byte 2");
	good = 1;
	for (size_t i = 0; i < sizeof at_once; i++) {
		char s[2] = { (char)at_once[i], 0 };

		good &= fails_at(s, 1, &stt) == 0;
	}
	ok(good, "UTF-8: 80, BF, C0, C1, F5, F8, FE, FF fail at once");
	ok(fails_at("\xe2\x82\xac", 3, &stt) == -1 && stt == 0 &&
	   fails_at("\xf4\x8f\xbf\xbf", 4, &stt) == -1 && stt == 0 &&
	   fails_at("\xed\x9f\xbf", 3, &stt) == -1 && stt == 0,
	   "UTF-8: E2 82 AC, F4 8F BF BF, ED 9F BF pass a byte at a time");
	ok(fails_at("a\xe2\x82", 3, &stt) == -1 && stt != 0,
	   "UTF-8: a text ending in half a character leaves state != 0");
	stt = 0;
	ok(wsb_utf8_step(&stt, (const unsigned char *)"\xc0", 1) &&
	   wsb_utf8_step(&stt, (const unsigned char *)"abc", 3) &&
	   wsb_utf8_step(&stt, (const unsigned char *)"", 0),
	   "UTF-8: a failure sticks");

	/* the ASCII fast path around a character, at every offset */
	good = 1;
	for (size_t at = 0; at < 40; at++) {
		for (size_t cut = 0; cut <= 44; cut++) {
			memset(text, 'a', 44);
			memcpy(text + at, "\xf0\x9f\x98\x80", 4);
			if (cut == 0)
				text[at + 3] = 'x'; /* and broken, once */
			stt = 0;
			int bad = wsb_utf8_step(&stt, text, cut) ||
				  wsb_utf8_step(&stt, text + cut, 44 - cut);
			good &= (!bad && !stt) == wsb_utf8_valid(text, 44);
		}
	}
	ok(good, "UTF-8: a 4-byte character in ASCII, every offset and cut");

	/* every sequence of 1 to 3 bytes, whole and a byte at a time */
	good = 1;
	for (uint32_t v = 0; v < 1u << 24 && good; v++) {
		unsigned char b[3] = { (unsigned char)(v >> 16),
				       (unsigned char)(v >> 8),
				       (unsigned char)v };

		for (size_t n = 1; n <= 3; n++) {
			uint32_t s1 = 0, s2 = 0;
			int w, one, by = 1;

			if ((n == 1 && (v & 0xffff)) || (n == 2 && (v & 0xff)))
				continue; /* once each is enough */
			w = wsb_utf8_valid(b, n);
			one = !wsb_utf8_step(&s1, b, n) && !s1;
			for (size_t i = 0; i < n; i++)
				by &= !wsb_utf8_step(&s2, b + i, 1);
			good &= one == w && (by && !s2) == w;
		}
	}
	ok(good, "UTF-8: all 1- to 3-byte sequences agree with "
	   "wsb_utf8_valid");

	good = 1;
	for (unsigned lead = 0xf0; lead <= 0xf4; lead++) {
		static const unsigned char c[] = {
			0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0,
		};
		size_t m = sizeof c;

		for (size_t i = 0; i < m * m * m; i++) {
			unsigned char b[4] = { (unsigned char)lead, c[i % m],
					       c[i / m % m], c[i / m / m] };
			uint32_t s1 = 0;
			int one = !wsb_utf8_step(&s1, b, 4) && !s1;

			good &= one == wsb_utf8_valid(b, 4);
		}
	}
	ok(good, "UTF-8: 4-byte sequences on the range edges agree with "
	   "wsb_utf8_valid");
}

/* ------------------------------------------------------- client role */

/* The reader as a client: a server's frames are unmasked, and a masked one
 * is a violation; the rest of the rules are the same. */
static void test_client(void)
{
	static const unsigned char masked_hello[] = { /* RFC 6455 5.7 */
		0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51,
		0x58,
	};
	static unsigned char big[70000], want[70100];
	struct stream *s;
	size_t wl;

	client_mode = 1;
	s = fresh();
	raw(s, (const unsigned char *)"\x81\x05Hello", 7);
	ok(CHECK(s, 0, 0, NULL, "<1:Hello>"),
	   "client: RFC 6455 5.7's unmasked text frame");

	s = fresh();
	raw(s, masked_hello, sizeof masked_hello);
	ok(CHECK(s, 0, -1002, "masked frame from a server", ""),
	   "client: a masked frame: -1002");

	s = fresh();
	adds(s, 0x01, "Hel");
	adds(s, 0x89, "ping!");
	adds(s, 0x00, "lo");
	adds(s, 0x80, " world");
	adds(s, 0x8a, "");
	ok(CHECK(s, 0, 0, NULL, "<1:Hel[9:ping!]lo world>[10:]"),
	   "client: fragments with a ping between them, then a pong");

	for (int i = 0; i < 70000; i++)
		big[i] = (unsigned char)(i ^ i >> 8);
	for (size_t n = 126; n <= 70000; n += 70000 - 126) {
		s = fresh();
		add(s, 0x82, big, n);
		wl = (size_t)sprintf((char *)want, "<2:");
		memcpy(want + wl, big, n);
		wl += n;
		want[wl++] = '>';
		ok(check(s, 0, 0, NULL, (char *)want, wl) &&
		   s->b[1] == (n < 65536 ? 126 : 127),
		   "client: %zu-byte binary, %s length", n,
		   n < 65536 ? "16-bit" : "64-bit");
	}

	s = fresh();
	adds(s, 0x41, "ab");
	adds(s, 0x80, "cd");
	adds(s, 0xc2, "ij");
	ok(CHECK(s, 1, 0, NULL, "<1z:abcd><2z:ij>"),
	   "client: pmd, RSV1 on first frames");

	s = fresh();
	add(s, 0x88, "\x03\xe9" "away", 6);
	ok(CHECK(s, 0, 0, NULL, "[8:\x03\xe9" "away]"),
	   "client: close 1001 \"away\"");

	s = fresh();
	add(s, 0x88, "\x03\xed", 2);
	ok(CHECK(s, 0, -1002, "may not be sent", ""),
	   "client: close 1005 from a server: -1002");

	s = fresh();
	adds(s, 0xa1, "x");
	ok(CHECK(s, 1, -1002, "RSV2 or RSV3", ""), "client: RSV2: -1002");

	s = fresh();
	add(s, 0x89, big, 126);
	ok(CHECK(s, 0, -1002, "over 125", ""),
	   "client: a 126-byte ping: -1002");

	s = fresh();
	raw(s, (const unsigned char *)"\x82\x7f\x80\0\0\0\0\0\0\0", 10);
	ok(CHECK(s, 0, -1002, "most significant bit", ""),
	   "client: 64-bit length with its top bit set: -1002");
	client_mode = 0;
}

int main(void)
{
	test_passing();
	test_close_codes();
	test_stops();
	test_alignment();
	test_violations();
	test_client();
	ok(chunk_cases > 0 && !chunk_mismatches,
	   "all %d streams fed one byte at a time gave the callbacks and "
	   "results of one whole feed", chunk_cases / 2);
	test_utf8();
	printf("1..%d\n", cases);
	if (failed)
		printf("# %d of %d failed\n", failed, cases);
	return failed != 0;
}
