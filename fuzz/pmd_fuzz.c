/*
 * libFuzzer target for permessage-deflate (src/pmd.c).  Every input is
 * used three ways:
 *  - as a Sec-WebSocket-Extensions value: negotiation must not crash, and
 *    a response it writes must, offered back, be accepted with the same
 *    parameters and the same response (client_max_window_bits, which we
 *    never send, then comes back as 15), and need exactly its own length
 *    plus the NUL in the buffer;
 *  - as compressed messages from a client: inflating must not crash and
 *    the sink must never see more than the limit;
 *  - as messages to a client: deflated, they must inflate back to
 *    themselves, the window carried over between them.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/pmd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void negotiate(const uint8_t *data, size_t size)
{
	struct wsb_pmd_params p, q;
	char *s = malloc(size + 1), resp[256], again[256];
	size_t len;

	assert(s);
	memcpy(s, data, size);
	s[size] = '\0';
	if (wsb_pmd_negotiate(s, &p, resp, sizeof resp)) {
		len = strlen(resp);
		assert(len < sizeof resp);
		assert(p.server_max_window_bits >= 8 &&
		       p.server_max_window_bits <= 15);
		assert(p.client_max_window_bits >= 8 &&
		       p.client_max_window_bits <= 15);
		assert(!(p.server_no_context_takeover & ~1));
		assert(!(p.client_no_context_takeover & ~1));
		assert(wsb_pmd_negotiate(resp, &q, again, sizeof again));
		assert(!strcmp(resp, again));
		assert(q.server_no_context_takeover ==
		       p.server_no_context_takeover);
		assert(q.client_no_context_takeover ==
		       p.client_no_context_takeover);
		assert(q.server_max_window_bits == p.server_max_window_bits);
		assert(q.client_max_window_bits == 15);
		assert(!wsb_pmd_negotiate(s, &q, again, len));
		assert(wsb_pmd_negotiate(s, &q, again, len + 1));
		assert(!strcmp(resp, again));
	}
	free(s);
}

struct seen {
	size_t n, limit;
	size_t abort_at; /* the sink returns 3 once past this */
	unsigned char *copy;
	size_t cap;
};

static int count(void *arg, const unsigned char *p, size_t n)
{
	struct seen *c = arg;

	c->n += n;
	assert(c->n <= c->limit);
	return c->n > c->abort_at ? 3 : 0;
}

/*
 * data[0]: bit 0 client_no_context_takeover, bits 1-7 the chunk size;
 * data[1]: the limit (0..255, or no limit at 255) and whether the sink
 * aborts; then the messages, split at every 0xfe byte.
 */
static void inflate_any(const uint8_t *data, size_t size)
{
	struct wsb_pmd_params p = { 0, 0, 15, 15 };
	struct wsb_pmd *z;
	size_t chunk, limit, start;

	if (size < 2)
		return;
	p.client_no_context_takeover = data[0] & 1;
	chunk = (data[0] >> 1) + 1;
	limit = data[1] == 255 ? SIZE_MAX : (size_t)data[1] * 97;
	z = wsb_pmd_new(&p);
	assert(z);
	data += 2;
	size -= 2;
	start = 0;
	for (size_t i = 0; i <= size; i++) {
		struct seen c = { 0, limit, SIZE_MAX, NULL, 0 };
		size_t off;
		int r;

		if (i < size && data[i] != 0xfe)
			continue;
		if (data[-1] < 8) /* some sinks abort */
			c.abort_at = data[-1] * 31u;
		off = start;
		do {
			size_t k = i - off < chunk ? i - off : chunk;

			r = wsb_pmd_inflate(z, data + off, k, off + k == i,
					    limit, count, &c);
			off += k;
		} while (!r && off < i);
		assert(r == 0 || r == -1 || r == -2 || r == 3);
		assert(c.n <= limit);
		if (r == 3)
			assert(c.n > c.abort_at);
		start = i + 1;
	}
	wsb_pmd_free(z);
}

static int collect(void *arg, const unsigned char *p, size_t n)
{
	struct seen *c = arg;

	if (c->n + n > c->cap) {
		c->cap = (c->n + n) * 2;
		c->copy = realloc(c->copy, c->cap);
		assert(c->copy);
	}
	memcpy(c->copy + c->n, p, n);
	c->n += n;
	return 0;
}

/* data[0]: window bits 9..15 and server_no_context_takeover; the rest:
 * three messages, its halves and then the whole of it */
static void round_trip(const uint8_t *data, size_t size)
{
	struct wsb_pmd_params p = { 0, 0, 15, 15 };
	struct wsb_pmd *d, *i;
	struct seen c = { 0, SIZE_MAX, SIZE_MAX, NULL, 0 };

	if (size < 1)
		return;
	p.server_max_window_bits = 9 + data[0] % 7;
	p.server_no_context_takeover = data[0] >> 7;
	d = wsb_pmd_new(&p);
	i = wsb_pmd_new(&p);
	assert(d && i);
	data++;
	size--;
	for (int k = 0; k < 3; k++) {
		const uint8_t *m = k == 1 ? data + size / 2 : data;
		size_t n = k == 0 ? size / 2 : k == 1 ? size - size / 2 : size;
		size_t len;
		unsigned char *b = wsb_pmd_deflate(d, m, n, 10, &len);

		assert(b);
		c.n = 0;
		assert(wsb_pmd_inflate(i, b + 10, len, 1, n, collect, &c) == 0);
		assert(c.n == n && (!n || !memcmp(c.copy, m, n)));
		free(b);
	}
	free(c.copy);
	wsb_pmd_free(d);
	wsb_pmd_free(i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	negotiate(data, size);
	inflate_any(data, size);
	round_trip(data, size);
	return 0;
}
