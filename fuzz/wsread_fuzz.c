/*
 * libFuzzer target for the server's frame reader (src/wsread.c) and the
 * piecewise UTF-8 validator (wsb_utf8_step, src/utf8.c).
 *
 * The input is a flags byte, a count k and k chunk sizes, then the bytes
 * a client sent.  Those bytes are read in one piece, then in the chunks
 * (cycling through the sizes, 0 being an empty feed) with callbacks that
 * stop the feed now and then, then a byte at a time: the callbacks must
 * tell the same story every time (the payload of each message, every
 * control frame, the result and r->err), and each must keep the rules of
 * wsread.h on its own.  The same bytes in the same chunks go through
 * wsb_utf8_step, which must agree with wsb_utf8_valid and fail at the
 * very byte that no valid text can have there.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/wsread.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int wsb_utf8_valid(const unsigned char *s, size_t n); /* src/utf8.c */

/* What the callbacks saw, with no trace of the chunking. */
struct story {
	unsigned char *log;
	size_t len, cap;
	int pmd;
	int client;               /* read as a client: unmasked frames */
	int in_msg, op, comp;
	unsigned calls, stop_every; /* stop_every 0: never stop */
	const unsigned char *buf;   /* the bytes being fed */
	size_t buf_len;
};

static void put(struct story *s, const void *p, size_t n)
{
	assert(s->len + n <= s->cap);
	if (n)
		memcpy(s->log + s->len, p, n);
	s->len += n;
}

static int stop(struct story *s)
{
	s->calls++;
	if (s->stop_every && s->calls % s->stop_every == 0)
		return (int)s->stop_every + 100;
	return 0;
}

static int on_data(void *arg, int op, int comp, const unsigned char *p,
		   size_t n, int first, int fin)
{
	struct story *s = arg;
	unsigned char tag[3] = { '<', (unsigned char)op, (unsigned char)comp };

	assert(op == 1 || op == 2);
	assert(comp == 0 || (comp == 1 && s->pmd));
	assert(first == !s->in_msg);
	assert(p && (n || first || fin));
	/* in place: inside the bytes of this feed */
	assert(!n || (p >= s->buf && p + n <= s->buf + s->buf_len));
	if (first) {
		s->in_msg = 1;
		s->op = op;
		s->comp = comp;
		put(s, tag, 3);
	} else {
		assert(op == s->op && comp == s->comp);
	}
	put(s, p, n);
	if (fin) {
		s->in_msg = 0;
		put(s, ">", 1);
	}
	return stop(s);
}

/* RFC 6455 7.4.1 and IANA's registry, as a list rather than as ranges. */
static int sendable(unsigned code)
{
	static const unsigned ok[] = {
		1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012,
		1013, 1014,
	};

	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
		if (code == ok[i])
			return 1;
	return code >= 3000 && code < 5000;
}

static int on_control(void *arg, int op, const unsigned char *p, size_t n)
{
	struct story *s = arg;
	unsigned char tag[3] = { '[', (unsigned char)op, (unsigned char)n };

	assert(op == 8 || op == 9 || op == 10);
	assert(p && n <= 125);
	if (op == 8 && n) {
		assert(n >= 2 && sendable((unsigned)p[0] << 8 | p[1]));
		assert(wsb_utf8_valid(p + 2, n - 2));
	}
	put(s, tag, 3);
	put(s, p, n);
	put(s, "]", 1);
	return stop(s);
}

static const struct wsb_rd_ops ops = { on_data, on_control };

struct result {
	int rv;
	const char *err;
};

/* The chunk sizes: sz[j % k], with every size 0 meaning "in one piece". */
struct chunks {
	const uint8_t *sz;
	size_t k, j;
	int any;
};

static size_t next_chunk(struct chunks *c, size_t left)
{
	size_t n;

	if (!c->any)
		return left;
	n = c->sz[c->j++ % c->k];
	return n < left ? n : left;
}

/*
 * Read stream (copied to an address off bytes into a fresh buffer) in the
 * chunks c gives, or whole when c is NULL, resuming after every stop.
 */
static struct result read_all(struct story *s, const uint8_t *stream,
			      size_t len, struct chunks *c, size_t off)
{
	unsigned char *buf = malloc(len + off + 1);
	struct wsb_rd r;
	struct result res = { 0, NULL };
	size_t pos = 0, used;

	assert(buf);
	memcpy(buf + off, stream, len);
	wsb_rd_init(&r, s->pmd);
	r.client = s->client;
	while (pos < len) {
		size_t n = c ? next_chunk(c, len - pos) : len - pos;
		size_t done = 0;

		/* a stop leaves the rest of the chunk to feed again */
		do {
			s->buf = buf + off + pos + done;
			s->buf_len = n - done;
			res.rv = wsb_rd_feed(&r, buf + off + pos + done,
					     n - done, &used, &ops, s);
			assert(used <= n - done);
			done += used;
			assert(res.rv || done == n);
			assert(res.rv <= 0 ||
			       res.rv == (int)s->stop_every + 100);
		} while (res.rv > 0 && done < n);
		pos += done;
		if (res.rv < 0)
			break;
		res.rv = 0;
	}
	res.err = r.err;
	if (res.rv < 0) {
		unsigned calls = s->calls;

		assert(res.rv == -1002 || res.rv == -1007);
		assert(r.err);
		assert(wsb_rd_feed(&r, buf + off + pos, len - pos, &used, &ops,
				   s) == res.rv && !used && s->calls == calls);
	} else {
		assert(!r.err);
	}
	free(buf);
	return res;
}

static void story_init(struct story *s, size_t len, int pmd, int client,
		       unsigned stop_every)
{
	memset(s, 0, sizeof *s);
	/* each frame has at least 2 bytes (6 masked) and adds at most 4 of
	 * tags */
	s->cap = 3 * len + 16;
	s->client = client;
	s->log = malloc(s->cap);
	assert(s->log);
	s->pmd = pmd;
	s->stop_every = stop_every;
}

/* Can s[0..n) be the start of a valid text?  The next byte of any
 * unfinished character may be 0x80, 0x90 or 0xA0 for some valid one. */
static int valid_prefix(const uint8_t *s, size_t n)
{
	static const uint8_t next[3] = { 0x80, 0x90, 0xA0 };
	uint8_t *b = malloc(n + 3);
	int yes = 0;

	assert(b);
	if (n)
		memcpy(b, s, n);
	for (size_t more = 0; more <= 3 && !yes; more++) {
		size_t ways = 1;

		for (size_t i = 0; i < more; i++)
			ways *= 3;
		for (size_t w = 0; w < ways && !yes; w++) {
			size_t x = w;

			for (size_t i = 0; i < more; i++, x /= 3)
				b[n + i] = next[x % 3];
			yes = wsb_utf8_valid(b, n + more);
		}
	}
	free(b);
	return yes;
}

static void check_utf8(const uint8_t *s, size_t len, struct chunks *c)
{
	int valid = wsb_utf8_valid(s, len), bad = 0;
	uint32_t st = 0;
	size_t pos = 0, at = len;

	/* in the chunks, 0-byte steps included */
	while (pos < len) {
		size_t n = next_chunk(c, len - pos);

		bad |= wsb_utf8_step(&st, s + pos, n) != 0;
		pos += n;
	}
	assert((!bad && st == 0) == valid);
	/* a byte at a time: it fails at the first byte ruled out */
	st = 0;
	for (size_t i = 0; i < len; i++) {
		if (wsb_utf8_step(&st, s + i, 1)) {
			at = i;
			break;
		}
	}
	if (at < len) {
		assert(!valid);
		assert(valid_prefix(s, at) && !valid_prefix(s, at + 1));
		assert(wsb_utf8_step(&st, s, len) == -1); /* it sticks */
	} else {
		assert((st == 0) == valid);
		assert(valid_prefix(s, len));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct story whole, chunked, bytes;
	struct result a, b, one;
	struct chunks c, unit = { (const uint8_t *)"\1", 1, 0, 1 };
	int pmd, client;
	size_t off, len;
	const uint8_t *stream;

	if (size < 2)
		return 0;
	pmd = data[0] & 1;
	off = data[0] >> 1 & 7; /* the stream's alignment */
	c.k = data[1] % 8 + 1;
	client = data[1] >> 7; /* the reader's role */
	if (size < 2 + c.k)
		return 0;
	c.sz = data + 2;
	c.j = 0;
	c.any = 0;
	for (size_t i = 0; i < c.k; i++)
		c.any |= c.sz[i] != 0;
	stream = data + 2 + c.k;
	len = size - 2 - c.k;

	story_init(&whole, len, pmd, client, 0);
	a = read_all(&whole, stream, len, NULL, 0);
	story_init(&chunked, len, pmd, client, data[0] >> 4); /* stops now and then */
	b = read_all(&chunked, stream, len, &c, off);
	story_init(&bytes, len, pmd, client, 0);
	one = read_all(&bytes, stream, len, &unit, (off + 1) & 7);

	assert(a.rv == b.rv && a.err == b.err);
	assert(a.rv == one.rv && a.err == one.err);
	assert(whole.len == chunked.len &&
	       !memcmp(whole.log, chunked.log, whole.len));
	assert(whole.len == bytes.len &&
	       !memcmp(whole.log, bytes.log, whole.len));
	free(whole.log);
	free(chunked.log);
	free(bytes.log);

	c.j = 0;
	check_utf8(stream, len, &c);
	return 0;
}
