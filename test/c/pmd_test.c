/*
 * Unit tests for src/pmd.c: the negotiation of permessage-deflate offers
 * and the zlib streams, held against RFC 7692's own examples where it has
 * them.  Fixed inputs only.
 *
 *   gcc -std=c99 ... -I src -o /tmp/pmd_test test/c/pmd_test.c src/pmd.c -lz
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "pmd.h"

static int ntests, nfailed;

static void check(int ok, const char *what)
{
	ntests++;
	if (!ok)
		nfailed++;
	printf("%sok %d - %s\n", ok ? "" : "not ", ntests, what);
}

/* ------------------------------------------------------------ negotiation */

static const struct wsb_pmd_params defaults = { 0, 0, 15, 15 };

/* offers must be accepted with exactly params want and response resp */
static void accepts(const char *offers, struct wsb_pmd_params want,
		    const char *resp, const char *what)
{
	struct wsb_pmd_params p = { -1, -1, -1, -1 };
	char buf[256];
	int r = wsb_pmd_negotiate(offers, &p, buf, sizeof buf);

	if (r == 1 && strcmp(buf, resp))
		printf("# response \"%s\", want \"%s\"\n", buf, resp);
	check(r == 1 && !memcmp(&p, &want, sizeof p) && !strcmp(buf, resp),
	      what);
}

static void declines(const char *offers, const char *what)
{
	struct wsb_pmd_params p;
	char buf[256];

	check(wsb_pmd_negotiate(offers, &p, buf, sizeof buf) == 0, what);
}

static struct wsb_pmd_params params(int snct, int cnct, int smwb, int cmwb)
{
	struct wsb_pmd_params p = { snct, cnct, smwb, cmwb };

	return p;
}

static void test_negotiate(void)
{
	static const char *const bad[] = {
		"foo", "server_no_context_takeover; server_no_context_takeover",
		"server_max_window_bits=16", "server_max_window_bits=7",
		"client_no_context_takeover=1", "client_max_window_bits=16",
		"server_max_window_bits", "server_max_window_bits=08",
		"server_max_window_bits=\"1 0\"",
		"client_max_window_bits=9; client_max_window_bits",
	};
	char offer[256], what[300], resp[256];
	struct wsb_pmd_params p;

	accepts("permessage-deflate", defaults, "permessage-deflate",
		"plain permessage-deflate");
	accepts("permessage-deflate; server_no_context_takeover",
		params(1, 0, 15, 15),
		"permessage-deflate; server_no_context_takeover",
		"server_no_context_takeover is echoed");
	accepts("permessage-deflate; client_no_context_takeover",
		params(0, 1, 15, 15),
		"permessage-deflate; client_no_context_takeover",
		"client_no_context_takeover is echoed");
	accepts("permessage-deflate; server_max_window_bits=10",
		params(0, 0, 10, 15),
		"permessage-deflate; server_max_window_bits=10",
		"server_max_window_bits=10 is echoed");
	accepts("permessage-deflate; server_max_window_bits=8",
		params(0, 0, 8, 15),
		"permessage-deflate; server_max_window_bits=8",
		"server_max_window_bits=8 is accepted");
	accepts("permessage-deflate; client_max_window_bits",
		defaults, "permessage-deflate",
		"client_max_window_bits without a value: 15, not sent back");
	accepts("permessage-deflate; client_max_window_bits=9",
		params(0, 0, 15, 9), "permessage-deflate",
		"client_max_window_bits=9: kept, not sent back");
	accepts("permessage-deflate; client_max_window_bits=12; "
		"server_max_window_bits=10; client_no_context_takeover; "
		"server_no_context_takeover",
		params(1, 1, 10, 12),
		"permessage-deflate; server_no_context_takeover; "
		"client_no_context_takeover; server_max_window_bits=10",
		"all four parameters");
	accepts("permessage-deflate; server_max_window_bits=\"10\"",
		params(0, 0, 10, 15),
		"permessage-deflate; server_max_window_bits=10",
		"quoted value");
	accepts("permessage-deflate; client_max_window_bits=\"1\\1\"",
		params(0, 0, 15, 11), "permessage-deflate",
		"quoted value with a quoted-pair");
	accepts("permessage-deflate;server_max_window_bits=12;"
		"client_no_context_takeover",
		params(0, 1, 12, 15),
		"permessage-deflate; client_no_context_takeover; "
		"server_max_window_bits=12",
		"no whitespace at all");
	accepts(" \tpermessage-deflate \t; server_max_window_bits = 12\t;"
		"  client_no_context_takeover  ",
		params(0, 1, 12, 15),
		"permessage-deflate; client_no_context_takeover; "
		"server_max_window_bits=12",
		"whitespace around everything");
	accepts("permessage-deflate ; server_max_window_bits= \"9\" ,foo",
		params(0, 0, 9, 15),
		"permessage-deflate; server_max_window_bits=9",
		"whitespace around a quoted value, another offer after it");

	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		snprintf(offer, sizeof offer, "permessage-deflate; %s, "
			 "permessage-deflate; server_max_window_bits=11",
			 bad[i]);
		snprintf(what, sizeof what, "\"%s\" declined, next offer taken",
			 bad[i]);
		accepts(offer, params(0, 0, 11, 15),
			"permessage-deflate; server_max_window_bits=11", what);
	}
	accepts("x-webkit-deflate-frame, permessage-deflate", defaults,
		"permessage-deflate", "another extension skipped");
	accepts("foo; bar=\"a,b\", permessage-deflate; "
		"server_no_context_takeover",
		params(1, 0, 15, 15),
		"permessage-deflate; server_no_context_takeover",
		"a comma inside another extension's quoted value ends nothing");
	accepts(", ,permessage-deflate", defaults, "permessage-deflate",
		"empty list elements skipped");
	accepts("permessage-deflate; client_max_window_bits; "
		"server_max_window_bits=9, permessage-deflate; "
		"client_max_window_bits",
		params(0, 0, 9, 15),
		"permessage-deflate; server_max_window_bits=9",
		"Autobahn-style offers: the first is taken");
	accepts("permessage-deflate; server_max_window_bits=16; "
		"client_max_window_bits, permessage-deflate; "
		"client_max_window_bits",
		defaults, "permessage-deflate",
		"Autobahn-style offers: a bad first falls back to the second");

	declines("", "empty header: nothing");
	declines("x-webkit-deflate-frame", "only another extension: nothing");
	declines("permessage-deflate; foo, permessage-deflate; "
		 "server_max_window_bits=5", "only bad offers: nothing");
	declines("permessage-deflate;", "an empty parameter: declined");
	declines("permessage-deflate x", "junk after the name: declined");
	declines("permessage-deflate; server_max_window_bits=\"10",
		 "an unterminated quote: declined");
	declines("permessage-deflatex", "a longer name: declined");
	declines("foo; bar=\"x, permessage-deflate",
		 "an unterminated quote swallows the rest");

	check(wsb_pmd_negotiate("permessage-deflate; server_max_window_bits=9",
				&p, resp, 44) == 0,
	      "a response buffer one byte short: 0");
	check(wsb_pmd_negotiate("permessage-deflate; server_max_window_bits=9",
				&p, resp, 45) == 1 && strlen(resp) == 44,
	      "a response buffer just big enough: 1");
}

/* ------------------------------------------------ the client's negotiation */

static const char invalid[] = "invalid permessage-deflate response: ";
static const char not_offered[] =
	"the server agreed to an extension that was not offered";

/* a server's response the client must accept with exactly want */
static void client_accepts(const char *value, struct wsb_pmd_params want,
			   const char *what)
{
	struct wsb_pmd_params p = { -1, -1, -1, -1 };
	const char *why = NULL;
	int r = wsb_pmd_client_accept(value, &p, &why);

	if (r)
		printf("# rejected: %s\n", why ? why : "(no reason)");
	check(r == 0 && !memcmp(&p, &want, sizeof p), what);
}

/* ... and one it must reject, with why (after invalid's prefix unless it is
 * not_offered), leaving p alone */
static void client_rejects(const char *value, const char *why_want,
			   const char *what)
{
	struct wsb_pmd_params p = { -1, -1, -1, -1 };
	const char *why = NULL;
	char want[200];
	int r = wsb_pmd_client_accept(value, &p, &why);

	if (why_want == not_offered)
		snprintf(want, sizeof want, "%s", not_offered);
	else
		snprintf(want, sizeof want, "%s%s", invalid, why_want);
	if (r == -1 && why && strcmp(why, want))
		printf("# why \"%s\", want \"%s\"\n", why, want);
	check(r == -1 && why && !strcmp(why, want) && p.server_max_window_bits
	      == -1, what);
}

/* What our server says, our client takes. */
static void test_both_ends(void)
{
	struct wsb_pmd_params p;
	char resp[256];

	wsb_pmd_negotiate("permessage-deflate; client_max_window_bits=10; "
			  "server_max_window_bits=9; "
			  "client_no_context_takeover; "
			  "server_no_context_takeover", &p, resp, sizeof resp);
	client_accepts(resp, params(1, 1, 9, 15),
		       "client: our server's full response (no "
		       "client_max_window_bits in it: 15)");
	wsb_pmd_negotiate(wsb_pmd_client_offer(), &p, resp, sizeof resp);
	client_accepts(resp, p, "client: our server's response to our "
		       "offer, the same parameters");
}

static void test_client_accept(void)
{
	accepts(wsb_pmd_client_offer(), defaults, "permessage-deflate",
		"our server takes the client's offer");
	check(!strcmp(wsb_pmd_client_offer(),
		      "permessage-deflate; client_max_window_bits"),
	      "the client offers permessage-deflate; client_max_window_bits");

	client_accepts("permessage-deflate", defaults,
		       "client: plain permessage-deflate");
	client_accepts("permessage-deflate; server_no_context_takeover",
		       params(1, 0, 15, 15),
		       "client: server_no_context_takeover");
	client_accepts("permessage-deflate; client_no_context_takeover",
		       params(0, 1, 15, 15),
		       "client: client_no_context_takeover");
	client_accepts("permessage-deflate; server_max_window_bits=10",
		       params(0, 0, 10, 15),
		       "client: server_max_window_bits=10");
	client_accepts("permessage-deflate; client_max_window_bits=9",
		       params(0, 0, 15, 9), "client: client_max_window_bits=9");
	client_accepts("permessage-deflate; client_max_window_bits=8; "
		       "server_max_window_bits=8", params(0, 0, 8, 8),
		       "client: both window bits 8");
	client_accepts("permessage-deflate; client_max_window_bits=15; "
		       "server_max_window_bits=15", defaults,
		       "client: both window bits 15");
	client_accepts("permessage-deflate; server_max_window_bits=10; "
		       "client_max_window_bits=12; client_no_context_takeover; "
		       "server_no_context_takeover", params(1, 1, 10, 12),
		       "client: all four parameters, any order");
	client_accepts("permessage-deflate; server_max_window_bits=\"10\"; "
		       "client_max_window_bits=\"9\"", params(0, 0, 10, 9),
		       "client: quoted values");
	client_accepts("permessage-deflate; client_max_window_bits=\"1\\1\"",
		       params(0, 0, 15, 11), "client: a quoted-pair");
	client_accepts("permessage-deflate;server_no_context_takeover;"
		       "client_max_window_bits=13", params(1, 0, 15, 13),
		       "client: no whitespace at all");
	client_accepts(" \tpermessage-deflate\t ;  server_max_window_bits = "
		       "\"11\"\t; client_no_context_takeover \t",
		       params(0, 1, 11, 15),
		       "client: whitespace around everything");
	client_accepts(", ,permessage-deflate; server_no_context_takeover , ,",
		       params(1, 0, 15, 15),
		       "client: empty list elements ignored");

	client_rejects("x-webkit-deflate-frame", not_offered,
		       "client: another extension");
	client_rejects("permessage-deflate, permessage-deflate", not_offered,
		       "client: permessage-deflate twice");
	client_rejects("permessage-deflate; server_no_context_takeover, foo",
		       not_offered, "client: another extension after it");
	client_rejects("foo, permessage-deflate", not_offered,
		       "client: another extension before it");
	client_rejects("permessage-deflatex", not_offered,
		       "client: a longer name");
	client_rejects("Permessage-Deflate", not_offered,
		       "client: the name in another case (compared exactly)");
	client_rejects("PERMESSAGE-DEFLATE; server_no_context_takeover",
		       not_offered, "client: the name in capitals");
	client_rejects("", "an empty header", "client: an empty header");
	client_rejects(" , ,\t", "an empty header",
		       "client: only empty elements");
	client_rejects("\"permessage-deflate\"", "not a token",
		       "client: a quoted name");
	client_rejects("permessage-deflate; foo", "an unknown parameter",
		       "client: an unknown parameter");
	client_rejects("permessage-deflate; foo=1", "an unknown parameter",
		       "client: an unknown parameter with a value");
	client_rejects("permessage-deflate; Server_No_Context_Takeover",
		       "an unknown parameter",
		       "client: a parameter in another case");
	client_rejects("permessage-deflate; server_no_context_takeover; "
		       "server_no_context_takeover", "a parameter twice",
		       "client: server_no_context_takeover twice");
	client_rejects("permessage-deflate; client_max_window_bits=9; "
		       "client_max_window_bits=9", "a parameter twice",
		       "client: client_max_window_bits twice, same value");
	client_rejects("permessage-deflate; server_no_context_takeover=1",
		       "a value after no_context_takeover",
		       "client: server_no_context_takeover=1");
	client_rejects("permessage-deflate; client_no_context_takeover=\"x\"",
		       "a value after no_context_takeover",
		       "client: client_no_context_takeover=\"x\"");
	client_rejects("permessage-deflate; client_max_window_bits",
		       "window bits without a value",
		       "client: client_max_window_bits without a value");
	client_rejects("permessage-deflate; server_max_window_bits",
		       "window bits without a value",
		       "client: server_max_window_bits without a value");
	client_rejects("permessage-deflate; server_max_window_bits=7",
		       "window bits not 8..15", "client: window bits 7");
	client_rejects("permessage-deflate; client_max_window_bits=16",
		       "window bits not 8..15", "client: window bits 16");
	client_rejects("permessage-deflate; client_max_window_bits=08",
		       "window bits not 8..15", "client: window bits 08");
	client_rejects("permessage-deflate; server_max_window_bits=abc",
		       "window bits not 8..15", "client: window bits abc");
	client_rejects("permessage-deflate; client_max_window_bits=\"1 0\"",
		       "a malformed value", "client: \"1 0\"");
	client_rejects("permessage-deflate; server_max_window_bits=\"10",
		       "a malformed value", "client: an unterminated quote");
	client_rejects("permessage-deflate; server_max_window_bits=",
		       "a malformed value", "client: = and nothing");
	client_rejects("permessage-deflate;", "an empty parameter",
		       "client: a semicolon and nothing");
	client_rejects("permessage-deflate; ; server_no_context_takeover",
		       "an empty parameter", "client: two semicolons");
	client_rejects("permessage-deflate x", "unexpected characters",
		       "client: junk after the name");
	client_rejects("permessage-deflate; server_max_window_bits=10 11",
		       "unexpected characters", "client: junk after a value");
	check(wsb_pmd_client_accept("foo", &(struct wsb_pmd_params){ 0 },
				    NULL) == -1,
	      "client: why may be NULL");
}

/* --------------------------------------------------------------- streams */

/* What the sink saw. */
struct out {
	unsigned char *buf;
	size_t len, cap;
	size_t biggest; /* piece */
	int ret;        /* what the sink returns */
	int discard;    /* count only */
};

static int sink(void *arg, const unsigned char *p, size_t n)
{
	struct out *o = arg;

	if (n > o->biggest)
		o->biggest = n;
	if (!o->discard) {
		if (o->len + n > o->cap) {
			o->cap = (o->len + n) * 2;
			o->buf = realloc(o->buf, o->cap);
			if (!o->buf)
				abort();
		}
		memcpy(o->buf + o->len, p, n);
	}
	o->len += n;
	return o->ret;
}

static void out_reset(struct out *o)
{
	o->len = 0;
	o->biggest = 0;
}

static struct wsb_pmd *pmd(int snct, int cnct, int smwb)
{
	struct wsb_pmd_params p = { snct, cnct, smwb, 15 };
	struct wsb_pmd *z = wsb_pmd_new(&p);

	if (!z)
		abort();
	return z;
}

/* n bytes of text-like content: words picked by an LCG of fixed seed */
static unsigned char *lcg_text(size_t n, uint32_t seed)
{
	static const char *const words[] = {
		"alpha ", "beta ", "gamma ", "delta ", "websocket ", "frame ",
		"{\"id\":", "42,", "\"text\":\"", "\"}\n", "deflate ", "the ",
	};
	unsigned char *b = malloc(n);
	size_t i = 0;

	if (!b)
		abort();
	while (i < n) {
		const char *w;

		seed = seed * 1664525u + 1013904223u;
		w = words[(seed >> 16) % (sizeof words / sizeof *words)];
		for (; *w && i < n; w++)
			b[i++] = (unsigned char)*w;
		if ((seed >> 8 & 0xff) < 16 && i < n) /* some noise */
			b[i++] = (unsigned char)(seed >> 24);
	}
	return b;
}

/* Inflate a whole message in chunks of chunk bytes; the sink's output in o. */
static int inflate_msg(struct wsb_pmd *z, const unsigned char *in, size_t n,
		       size_t chunk, size_t limit, struct out *o)
{
	size_t off = 0;
	int r;

	out_reset(o);
	do {
		size_t k = n - off < chunk ? n - off : chunk;

		r = wsb_pmd_inflate(z, in + off, k, off + k == n, limit, sink,
				    o);
		off += k;
	} while (!r && off < n);
	return r;
}

static int same(const struct out *o, const void *want, size_t n)
{
	return o->len == n && (!n || !memcmp(o->buf, want, n));
}

/* deflate on d, inflate on i, compare */
static int round_trip(struct wsb_pmd *d, struct wsb_pmd *i,
		      const unsigned char *msg, size_t n, size_t chunk,
		      struct out *o, size_t *zlen)
{
	size_t len;
	unsigned char *b = wsb_pmd_deflate(d, msg, n, 14, &len);
	int ok;

	if (!b)
		return 0;
	ok = inflate_msg(i, b + 14, len, chunk, SIZE_MAX, o) == 0 &&
	     same(o, msg, n);
	if (zlen)
		*zlen = len;
	free(b);
	return ok;
}

static const unsigned char hello_z[] = { 0xf2, 0x48, 0xcd, 0xc9, 0xc9,
					  0x07, 0x00 };

static void test_rfc_examples(struct out *o)
{
	/* RFC 7692 7.2.3.2: "Hello" twice, the second referring back */
	static const unsigned char hello2_z[] = { 0xf2, 0x00, 0x11, 0x00,
						  0x00 };
	/* 7.2.3.3: with BFINAL set, then an empty block header */
	static const unsigned char final_z[] = { 0xf3, 0x48, 0xcd, 0xc9, 0xc9,
						 0x07, 0x00, 0x00 };
	/* 7.2.3.4: a stored block */
	static const unsigned char stored_z[] = { 0x00, 0x05, 0x00, 0xfa,
						  0xff, 0x48, 0x65, 0x6c,
						  0x6c, 0x6f, 0x00 };
	struct wsb_pmd *z = pmd(0, 0, 15);
	unsigned char *b;
	size_t len;

	check(inflate_msg(z, hello_z, sizeof hello_z, 100, 100, o) == 0 &&
	      same(o, "Hello", 5), "RFC 7692 7.2.3.1: f2 48 cd c9 c9 07 00 "
	      "inflates to Hello");
	check(inflate_msg(z, hello2_z, sizeof hello2_z, 100, 100, o) == 0 &&
	      same(o, "Hello", 5), "RFC 7692 7.2.3.2: f2 00 11 00 00 after it "
	      "inflates to Hello (window taken over)");
	wsb_pmd_free(z);

	z = pmd(0, 0, 15);
	b = wsb_pmd_deflate(z, (const unsigned char *)"Hello", 5, 0, &len);
	check(b && len == sizeof hello_z && !memcmp(b, hello_z, len),
	      "Hello deflates to f2 48 cd c9 c9 07 00 on a fresh stream");
	free(b);
	wsb_pmd_free(z);

	z = pmd(0, 0, 15);
	check(inflate_msg(z, final_z, sizeof final_z, 100, 100, o) == 0 &&
	      same(o, "Hello", 5), "RFC 7692 7.2.3.3: BFINAL block inflates");
	check(inflate_msg(z, hello2_z, sizeof hello2_z, 100, 100, o) == 0 &&
	      same(o, "Hello", 5), "the window outlives a BFINAL block");
	check(inflate_msg(z, final_z, 7, 100, 100, o) == 0 &&
	      same(o, "Hello", 5),
	      "a BFINAL block without the empty header after it inflates");
	check(inflate_msg(z, stored_z, sizeof stored_z, 100, 100, o) == 0 &&
	      same(o, "Hello", 5), "RFC 7692 7.2.3.4: stored block inflates");
	check(inflate_msg(z, (const unsigned char *)"", 1, 100, 100, o) == 0 &&
	      o->len == 0, "RFC 7692 7.2.3.6: 0x00 is an empty message");
	check(inflate_msg(z, NULL, 0, 100, 100, o) == 0 && o->len == 0,
	      "an empty payload is an empty message");
	wsb_pmd_free(z);
}

static void test_takeover(struct out *o)
{
	struct wsb_pmd *d = pmd(0, 0, 15), *i = pmd(0, 0, 15);
	const unsigned char *hello = (const unsigned char *)"Hello";
	size_t l1 = 0, l2 = 0, l3 = 0;
	int ok;
	unsigned char *b;

	ok = round_trip(d, i, hello, 5, 100, o, &l1) &&
	     round_trip(d, i, hello, 5, 100, o, &l2) &&
	     round_trip(d, i, hello, 5, 100, o, &l3);
	check(ok && l2 < l1 && l3 < l1,
	      "context takeover: 3 messages, the later ones smaller");
	wsb_pmd_free(d);
	wsb_pmd_free(i);

	d = pmd(0, 0, 15);
	free(wsb_pmd_deflate(d, hello, 5, 0, &l1));
	b = wsb_pmd_deflate(d, hello, 5, 0, &l2);
	check(b && l2 == 5 && !memcmp(b, "\xf2\x00\x11\x00\x00", 5),
	      "the second Hello deflates to RFC 7692 7.2.3.2's f2 00 11 00 00");
	free(b);
	wsb_pmd_free(d);

	/* the peer's inflater never resets; ours reset every message */
	d = pmd(1, 0, 15);
	i = pmd(0, 0, 15);
	ok = 1;
	for (int k = 0; k < 3; k++) {
		size_t len;

		b = wsb_pmd_deflate(d, hello, 5, 0, &len);
		ok = ok && b && len == sizeof hello_z &&
		     !memcmp(b, hello_z, len) &&
		     inflate_msg(i, b, len, 100, 100, o) == 0 &&
		     same(o, hello, 5);
		free(b);
	}
	check(ok, "server_no_context_takeover: every message as from a "
	      "fresh stream");
	wsb_pmd_free(d);
	wsb_pmd_free(i);

	/* client_no_context_takeover: our inflater resets, memory goes */
	d = pmd(1, 0, 15);
	i = pmd(0, 1, 15);
	ok = round_trip(d, i, hello, 5, 100, o, NULL) &&
	     round_trip(d, i, hello, 5, 100, o, NULL);
	check(ok && wsb_pmd_bytes(i) < 1024,
	      "client_no_context_takeover: inflate stream released after "
	      "each message");
	wsb_pmd_free(d);
	wsb_pmd_free(i);
}

static void test_window_bits(struct out *o)
{
	unsigned char *msg = lcg_text(200000, 7);

	for (int bits = 9; bits <= 15; bits++) {
		struct wsb_pmd *d = pmd(0, 0, bits), *i = pmd(0, 0, 15);
		char what[64];
		int ok = 1;

		/* three messages, so the window carries over too */
		for (int k = 0; k < 3; k++)
			ok = ok && round_trip(d, i, msg + k * 1000,
					      200000 - k * 1000, 65536, o,
					      NULL);
		snprintf(what, sizeof what, "window bits %d: round trip", bits);
		check(ok, what);
		wsb_pmd_free(d);
		wsb_pmd_free(i);
	}
	free(msg);
}

static void test_messages(struct out *o)
{
	struct wsb_pmd *d = pmd(0, 0, 15), *i = pmd(0, 0, 15);
	unsigned char *msg = lcg_text(1 << 20, 12345), *b;
	size_t len, zlen = 0;

	b = wsb_pmd_deflate(d, NULL, 0, 4, &len);
	check(b && len == 1 && b[4] == 0x00 &&
	      inflate_msg(i, b + 4, len, 100, 100, o) == 0 && o->len == 0,
	      "an empty message: 0x00, inflates to nothing");
	free(b);
	b = wsb_pmd_deflate(d, NULL, 0, 0, &len);
	check(b && len == 1 && round_trip(d, i, (const unsigned char *)"Hi",
					  2, 100, o, NULL),
	      "two empty messages in a row, then a message");
	free(b);

	check(round_trip(d, i, msg, 4096, 1, o, NULL),
	      "inflating in 1-byte chunks");
	check(round_trip(d, i, msg, 1 << 20, 1 << 20, o, &zlen) &&
	      zlen < (1 << 20) / 2,
	      "a 1 MiB message, in one chunk, compressed");
	check(round_trip(d, i, msg, 1 << 20, 1000, o, NULL),
	      "a 1 MiB message, in 1000-byte chunks");
	check(round_trip(d, i, msg, 100000, 100000, o, NULL),
	      "the window carries on after big messages");

	b = wsb_pmd_deflate(d, msg, 5000, 0, &len);
	check(b && inflate_msg(i, b, len / 2, len, SIZE_MAX, o) == -1,
	      "a message cut short: -1");
	free(b);
	wsb_pmd_free(d);
	d = pmd(0, 0, 15);
	check(round_trip(d, i, msg, 3000, 3000, o, NULL),
	      "after an error the next message starts afresh");
	wsb_pmd_free(d);
	wsb_pmd_free(i);
	free(msg);
}

static void test_limit(struct out *o)
{
	const size_t big = 10u << 20, limit = 1u << 20;
	unsigned char *zeros = calloc(1, big), *b;
	struct wsb_pmd *d = pmd(0, 0, 15), *i = pmd(0, 0, 15);
	size_t len;
	int r;

	if (!zeros)
		abort();
	b = wsb_pmd_deflate(d, zeros, big, 0, &len);
	check(b && len < big / 500, "10 MiB of zeros compress well");
	o->discard = 1;
	r = inflate_msg(i, b, len, len, limit, o);
	printf("# 10 MiB of zeros with limit 1 MiB: %d, sink saw %zu "
	       "bytes in pieces of at most %zu\n", r, o->len, o->biggest);
	check(r == -2 && o->len <= limit + o->biggest,
	      "a bomb: -2, the sink saw at most limit + one piece");
	check(o->len <= limit, "in fact the sink saw at most limit");
	r = inflate_msg(i, b, len, 100, limit, o);
	check(r == -2 && o->len <= limit,
	      "the limit holds across chunks of 100 bytes");
	check(inflate_msg(i, hello_z, sizeof hello_z, 100, 100, o) == 0 &&
	      o->len == 5, "the next message after -2 inflates");
	wsb_pmd_free(d);
	free(b);

	d = pmd(1, 0, 15);
	b = wsb_pmd_deflate(d, zeros, 100000, 0, &len);
	check(b && inflate_msg(i, b, len, 7, 100000, o) == 0 &&
	      o->len == 100000, "a message of exactly limit bytes: 0");
	check(inflate_msg(i, b, len, 7, 99999, o) == -2 && o->len <= 99999,
	      "a message of limit + 1 bytes: -2");
	o->discard = 0;
	free(b);
	wsb_pmd_free(d);
	wsb_pmd_free(i);
	free(zeros);
}

static void test_errors(struct out *o)
{
	/* BTYPE 11 is reserved (RFC 1951 3.2.3) */
	static const unsigned char bad[] = { 0xff, 0xff, 0xff, 0xff };
	/* a back reference with an empty window */
	static const unsigned char far[] = { 0xf2, 0x00, 0x11, 0x00, 0x00 };
	struct wsb_pmd *i = pmd(0, 0, 15), *d;
	unsigned char *b;
	size_t len;

	check(inflate_msg(i, bad, sizeof bad, 100, 100, o) == -1,
	      "a reserved block type: -1");
	check(inflate_msg(i, far, sizeof far, 100, 100, o) == -1,
	      "a distance past the start of the window: -1");
	o->ret = 7;
	check(inflate_msg(i, hello_z, sizeof hello_z, 100, 100, o) == 7,
	      "a sink's non-zero value aborts and is returned");
	o->ret = 0;

	d = pmd(0, 0, 8);
	check(!wsb_pmd_can_deflate(d) &&
	      !wsb_pmd_deflate(d, (const unsigned char *)"Hello", 5, 0,
			       &len),
	      "server_max_window_bits 8: cannot deflate");
	wsb_pmd_free(d);
	d = pmd(0, 0, 9);
	b = wsb_pmd_deflate(d, (const unsigned char *)"Hello", 5, 0, &len);
	check(wsb_pmd_can_deflate(d) && b, "server_max_window_bits 9: can");
	free(b);
	wsb_pmd_free(d);
	wsb_pmd_free(i);
}

static void test_bytes(struct out *o)
{
	struct wsb_pmd *z = pmd(0, 0, 15);
	size_t fresh = wsb_pmd_bytes(z), after_def, after_inf, len;
	unsigned char *b;

	check(fresh < 1024, "wsb_pmd_bytes before use: under 1 KiB");
	b = wsb_pmd_deflate(z, (const unsigned char *)"Hello", 5, 0, &len);
	after_def = wsb_pmd_bytes(z);
	free(b);
	check(after_def > fresh + 30000 && after_def < fresh + 48 * 1024,
	      "after a deflate: its 32 KiB (12-bit window, memLevel 5)");
	inflate_msg(z, hello_z, sizeof hello_z, 100, 100, o);
	after_inf = wsb_pmd_bytes(z);
	check(after_inf > after_def + 32768, "after an inflate: its window");
	printf("# bytes: fresh %zu, deflating %zu, both %zu\n", fresh,
	       after_def, after_inf);
	wsb_pmd_free(z);
}

/* ------------------------------------------------------- the client's role */

/* Both ends of one connection, made from the one agreement. */
struct ends {
	struct wsb_pmd *c, *s;
};

static struct ends ends_new(struct wsb_pmd_params p)
{
	struct ends e = { wsb_pmd_new_client(&p), wsb_pmd_new(&p) };

	if (!e.c || !e.s)
		abort();
	return e;
}

static void ends_free(struct ends e)
{
	wsb_pmd_free(e.c);
	wsb_pmd_free(e.s);
}

/* Hello number m from d to i: the bytes are RFC 7692's for a fresh
 * stream (7.2.3.1) or one that had Hello before (7.2.3.2; later ones,
 * whose encoding is zlib's business, are merely as short). */
static int hello_to(struct wsb_pmd *d, struct wsb_pmd *i, int m, int reset,
		    struct out *o)
{
	size_t len;
	unsigned char *b = wsb_pmd_deflate(d, (const unsigned char *)"Hello",
					   5, 0, &len);
	int ok = b && inflate_msg(i, b, len, 3, 100, o) == 0 &&
		 same(o, "Hello", 5);

	if (ok && (!m || reset))
		ok = len == sizeof hello_z && !memcmp(b, hello_z, len);
	else if (ok && m == 1)
		ok = len == 5 && !memcmp(b, "\xf2\x00\x11\x00\x00", 5);
	else if (ok)
		ok = len <= 5;
	free(b);
	return ok;
}

/* inflate a Hello on a fresh z: is the window kept after it? */
static int keeps_window(struct wsb_pmd *z, struct out *o)
{
	inflate_msg(z, hello_z, sizeof hello_z, 100, 100, o);
	return wsb_pmd_bytes(z) > 32768;
}

static void test_client_takeover(struct out *o)
{
	char what[160];

	for (int k = 0; k < 4; k++) {
		int snct = k & 1, cnct = k >> 1, c2s = 1, s2c = 1;
		struct ends e = ends_new(params(snct, cnct, 15, 15));

		for (int m = 0; m < 3; m++) {
			c2s = c2s && hello_to(e.c, e.s, m, cnct, o);
			s2c = s2c && hello_to(e.s, e.c, m, snct, o);
		}
		snprintf(what, sizeof what, "client_no_context_takeover %d: "
			 "3 Hellos client to server, %s", cnct,
			 cnct ? "each from a fresh stream" : "referring back");
		check(c2s, what);
		snprintf(what, sizeof what, "server_no_context_takeover %d: "
			 "3 Hellos server to client, %s", snct,
			 snct ? "each from a fresh stream" : "referring back");
		check(s2c, what);
		ends_free(e);
		e = ends_new(params(snct, cnct, 15, 15));
		snprintf(what, sizeof what, "snct %d cnct %d: the client keeps "
			 "its inflate window iff snct 0, the server iff cnct 0",
			 snct, cnct);
		check(keeps_window(e.c, o) == !snct &&
		      keeps_window(e.s, o) == !cnct, what);
		ends_free(e);
	}
}

/* messages of many sizes both ways, interleaved, inflated in chunks */
static void test_client_messages(struct out *o)
{
	static const size_t sizes[] = { 0, 1, 1000, 70000, 290000, 0, 5 };
	unsigned char *msg = lcg_text(300000, 99);
	char what[120];

	for (int reset = 0; reset < 2; reset++) {
		struct ends e = ends_new(params(reset, reset, 15, 15));
		int c2s = 1, s2c = 1;

		for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
			const unsigned char *m = msg + k * 7;
			size_t n = sizes[k];

			c2s = c2s && round_trip(e.c, e.s, m, n, 1000, o, NULL);
			s2c = s2c && round_trip(e.s, e.c, m, n, 777, o, NULL);
		}
		snprintf(what, sizeof what, "no_context_takeover %d: "
			 "7 messages client to server", reset);
		check(c2s, what);
		snprintf(what, sizeof what, "no_context_takeover %d: "
			 "7 messages server to client", reset);
		check(s2c, what);
		ends_free(e);
	}
	free(msg);
}

/*
 * Message after message through zlib's own raw inflate with a window of
 * s's bits, the tail appended: a sender whose window was any bigger
 * would refer past it, which zlib reports as a data error.
 */
static int narrow_msg(z_stream *s, const unsigned char *in, size_t n,
		      struct out *o)
{
	static const unsigned char tail[4] = { 0x00, 0x00, 0xff, 0xff };
	unsigned char buf[4096];

	out_reset(o);
	for (int part = 0; part < 2; part++) {
		int r;

		s->next_in = (Bytef *)(part ? tail : in);
		s->avail_in = part ? 4 : (uInt)n;
		do {
			s->next_out = buf;
			s->avail_out = sizeof buf;
			r = inflate(s, Z_SYNC_FLUSH);
			if (r != Z_OK && r != Z_BUF_ERROR)
				return -1;
			sink(o, buf, sizeof buf - s->avail_out);
		} while (r == Z_OK && (s->avail_in || !s->avail_out));
	}
	return 0;
}

/* 3 messages from d, each inflated both by i and by zlib with bits */
static int within(struct wsb_pmd *d, struct wsb_pmd *i, int bits,
		  const unsigned char *msg, struct out *o)
{
	z_stream s;
	int ok = 1;

	memset(&s, 0, sizeof s);
	if (inflateInit2(&s, -bits) != Z_OK)
		abort();
	for (int k = 0; k < 3 && ok; k++) {
		const unsigned char *m = msg + k * 1000;
		size_t n = 200000 - k * 1000, len;
		unsigned char *b = wsb_pmd_deflate(d, m, n, 0, &len);

		ok = b && inflate_msg(i, b, len, 65536, SIZE_MAX, o) == 0 &&
		     same(o, m, n) && narrow_msg(&s, b, len, o) == 0 &&
		     same(o, m, n);
		free(b);
	}
	inflateEnd(&s);
	return ok;
}

static void test_client_window_bits(struct out *o)
{
	unsigned char *msg = lcg_text(200000, 3);
	struct ends e;
	char what[120];

	for (int bits = 9; bits <= 15; bits++) {
		e = ends_new(params(0, 0, 15, bits));
		snprintf(what, sizeof what, "client_max_window_bits %d: client "
			 "to server, and within %d bits", bits, bits);
		check(within(e.c, e.s, bits, msg, o), what);
		ends_free(e);
		e = ends_new(params(0, 0, bits, 15));
		snprintf(what, sizeof what, "server_max_window_bits %d: server "
			 "to client, and within %d bits", bits, bits);
		check(within(e.s, e.c, bits, msg, o), what);
		ends_free(e);
	}
	/* the check above can fail: our 12-bit window is too big for 9 */
	e = ends_new(defaults);
	check(!within(e.c, e.s, 9, msg, o),
	      "a 12-bit window's output does not fit in 9 bits");
	ends_free(e);
	free(msg);
}

static void test_client_8_bits(struct out *o)
{
	struct ends e = ends_new(params(0, 0, 15, 8));
	size_t len;
	unsigned char *b;

	b = wsb_pmd_deflate(e.c, (const unsigned char *)"Hello", 5, 0, &len);
	check(!wsb_pmd_can_deflate(e.c) && !b,
	      "client_max_window_bits 8: the client cannot deflate");
	check(wsb_pmd_can_deflate(e.s) && hello_to(e.s, e.c, 0, 0, o),
	      "client_max_window_bits 8: the server can, the client inflates");
	ends_free(e);

	e = ends_new(params(0, 0, 8, 15));
	b = wsb_pmd_deflate(e.s, (const unsigned char *)"Hello", 5, 0, &len);
	check(!wsb_pmd_can_deflate(e.s) && !b,
	      "server_max_window_bits 8: the server cannot deflate");
	check(wsb_pmd_can_deflate(e.c) && hello_to(e.c, e.s, 0, 0, o),
	      "server_max_window_bits 8: the client can, the server inflates");
	ends_free(e);
}

static void test_client_limit(struct out *o)
{
	const size_t big = 10u << 20, limit = 1u << 20;
	unsigned char *zeros = calloc(1, big), *b;
	struct ends e = ends_new(defaults);
	size_t len;
	int r;

	if (!zeros)
		abort();
	b = wsb_pmd_deflate(e.s, zeros, big, 0, &len);
	o->discard = 1;
	r = inflate_msg(e.c, b, len, len, limit, o);
	check(b && r == -2 && o->len <= limit,
	      "client: a server's bomb: -2, the sink saw at most limit");
	r = inflate_msg(e.c, b, len, 100, limit, o);
	check(r == -2 && o->len <= limit,
	      "client: the limit holds across chunks of 100 bytes");
	o->discard = 0;
	check(inflate_msg(e.c, hello_z, sizeof hello_z, 100, 100, o) == 0 &&
	      same(o, "Hello", 5), "client: the next message after -2");
	free(b);

	b = wsb_pmd_deflate(e.c, zeros, big, 0, &len);
	o->discard = 1;
	r = inflate_msg(e.s, b, len, len, limit, o);
	o->discard = 0;
	check(b && r == -2 && o->len <= limit,
	      "a client-role deflate of 10 MiB of zeros: the server's -2");
	free(b);
	ends_free(e);
	free(zeros);
}

static void test_client_bytes(void)
{
	struct ends e = ends_new(defaults);
	size_t fresh = wsb_pmd_bytes(e.c), len;
	unsigned char *b;

	b = wsb_pmd_deflate(e.c, (const unsigned char *)"Hello", 5, 0, &len);
	check(b && wsb_pmd_bytes(e.c) > fresh + 30000 &&
	      wsb_pmd_bytes(e.c) < fresh + 48 * 1024,
	      "client: a deflate costs its 32 KiB, as a server's does");
	free(b);
	ends_free(e);
}

int main(void)
{
	struct out o = { 0 };

	test_negotiate();
	test_client_accept();
	test_both_ends();
	test_rfc_examples(&o);
	test_takeover(&o);
	test_window_bits(&o);
	test_messages(&o);
	test_limit(&o);
	test_errors(&o);
	test_bytes(&o);
	test_client_takeover(&o);
	test_client_messages(&o);
	test_client_window_bits(&o);
	test_client_8_bits(&o);
	test_client_limit(&o);
	test_client_bytes();
	free(o.buf);
	printf("# %d tests, %d failed\n", ntests, nfailed);
	return nfailed != 0;
}
