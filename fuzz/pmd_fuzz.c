/*
 * libFuzzer target for permessage-deflate (src/pmd.c).  Every input is
 * used four ways:
 *  - as a Sec-WebSocket-Extensions offer: negotiation must not crash, and
 *    a response it writes must, offered back, be accepted with the same
 *    parameters and the same response (client_max_window_bits, which we
 *    never send, then comes back as 15), and need exactly its own length
 *    plus the NUL in the buffer; our client must accept that response
 *    with those parameters too;
 *  - as a server's response: the client's check must not crash, must give
 *    a reason when it rejects, and what it accepts must be an offer our
 *    server takes with the same parameters (a response is an offer's
 *    grammar cut down to one element);
 *  - as compressed messages from the peer, in either role: inflating must
 *    not crash and the sink must never see more than the limit;
 *  - as messages to the peer, from either role to the other: deflated,
 *    they must inflate back to themselves, the window carried over.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/pmd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same_params(const struct wsb_pmd_params *a,
		       const struct wsb_pmd_params *b)
{
	return a->server_no_context_takeover == b->server_no_context_takeover &&
	       a->client_no_context_takeover == b->client_no_context_takeover &&
	       a->server_max_window_bits == b->server_max_window_bits &&
	       a->client_max_window_bits == b->client_max_window_bits;
}

static void params_sane(const struct wsb_pmd_params *p)
{
	assert(p->server_max_window_bits >= 8 &&
	       p->server_max_window_bits <= 15);
	assert(p->client_max_window_bits >= 8 &&
	       p->client_max_window_bits <= 15);
	assert(!(p->server_no_context_takeover & ~1));
	assert(!(p->client_no_context_takeover & ~1));
}

/* the input as a C string, up to its first NUL as a header would be */
static char *string(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	assert(s);
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

static void negotiate(const uint8_t *data, size_t size)
{
	struct wsb_pmd_params p, q;
	char *s = string(data, size), resp[256], again[256];
	size_t len;

	if (wsb_pmd_negotiate(s, &p, resp, sizeof resp)) {
		len = strlen(resp);
		assert(len < sizeof resp);
		params_sane(&p);
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
		assert(wsb_pmd_client_accept(resp, &q, NULL) == 0);
		p.client_max_window_bits = 15;
		assert(same_params(&p, &q));
	}
	free(s);
}

static void client_accept(const uint8_t *data, size_t size)
{
	static const char invalid[] = "invalid permessage-deflate response: ";
	struct wsb_pmd_params p = { -1, -1, -1, -1 }, q;
	char *s = string(data, size), resp[256];
	const char *why = NULL;
	int r = wsb_pmd_client_accept(s, &p, &why);

	if (r == 0) {
		params_sane(&p);
		assert(wsb_pmd_negotiate(s, &q, resp, sizeof resp) == 1);
		assert(same_params(&p, &q));
	} else {
		assert(r == -1 && why);
		assert(!strncmp(why, invalid, sizeof invalid - 1) ||
		       !strcmp(why, "the server agreed to an extension that "
			       "was not offered"));
		assert(p.server_no_context_takeover == -1);
		assert(p.server_max_window_bits == -1);
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
 * data[0]: bit 0 the peer's no_context_takeover, bit 1 the client's role,
 * bits 2-7 the chunk size; data[1]: the limit (0..255, or no limit at
 * 255) and whether the sink aborts; then the messages, split at every
 * 0xfe byte.
 */
static void inflate_any(const uint8_t *data, size_t size)
{
	struct wsb_pmd_params p = { 0, 0, 15, 15 };
	struct wsb_pmd *z;
	size_t chunk, limit, start;

	if (size < 2)
		return;
	p.client_no_context_takeover = data[0] & 1;
	p.server_no_context_takeover = data[0] & 1;
	chunk = (data[0] >> 2) + 1;
	limit = data[1] == 255 ? SIZE_MAX : (size_t)data[1] * 97;
	z = data[0] & 2 ? wsb_pmd_new_client(&p) : wsb_pmd_new(&p);
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

/*
 * data[0]: window bits 9..15, the sender's no_context_takeover (bit 7)
 * and whether the client sends (bit 6), to a receiver in the other role,
 * which must keep or drop its window just as the sender does; the rest:
 * three messages, its halves and then the whole of it
 */
static void round_trip(const uint8_t *data, size_t size)
{
	struct wsb_pmd_params p = { 0, 0, 15, 15 };
	struct wsb_pmd *d, *i;
	struct seen c = { 0, SIZE_MAX, SIZE_MAX, NULL, 0 };
	int bits, reset;

	if (size < 1)
		return;
	bits = 9 + data[0] % 7;
	reset = data[0] >> 7;
	if (data[0] & 64) {
		p.client_max_window_bits = bits;
		p.client_no_context_takeover = reset;
		d = wsb_pmd_new_client(&p);
		i = wsb_pmd_new(&p);
	} else {
		p.server_max_window_bits = bits;
		p.server_no_context_takeover = reset;
		d = wsb_pmd_new(&p);
		i = wsb_pmd_new_client(&p);
	}
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
	client_accept(data, size);
	inflate_any(data, size);
	round_trip(data, size);
	return 0;
}
