/*
 * permessage-deflate (RFC 7692) for a server and for a client: the offer a
 * server accepts, the response a client accepts, and the zlib streams
 * behind them.  Kept apart from lws and Lua so that the parsers, which
 * read bytes straight from the network, can be fuzzed on their own.
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "pmd.h"

/*
 * Level 5: deflate runs once per message per connection (with context
 * takeover a broadcast cannot share it), so CPU is what a busy server runs
 * out of.  On ~300-byte JSON chat messages, context taken over, level 5
 * came within 5% of level 6's size at 1.6 times its speed, and level 1
 * was 20% bigger than 5 for 15% more speed.
 *
 * The level does not change memory: that is 2^(windowBits+2) for the
 * window and its hash chains plus 2^(memLevel+9) for the hash heads and
 * pending output: 256 KiB per connection with zlib's defaults (15 bits,
 * memLevel 8).  A server holds thousands of connections, so ours
 * compresses with a 12-bit window and memLevel 5: 32 KiB (python
 * websockets' server chose the same).  No need to tell the peer: a
 * smaller window than it allows is always readable (RFC 7692 7.1.2.1);
 * a peer that asks for less (server_max_window_bits of a client's offer,
 * client_max_window_bits of a server's response) gets less.  A client
 * compresses the same way: one process may hold many client connections
 * too, and it keeps one rule for both roles.
 */
#define WSB_PMD_LEVEL 5
#define WSB_PMD_WBITS 12
#define WSB_PMD_MEMLEVEL 5

/* Inflated bytes handed to the sink at a time: also how far past the limit
 * a bomb could get, were it not for the +1 cap in feed(). */
#define WSB_PMD_PIECE 16384

/* ----------------------------------------------------------- negotiation */

/* RFC 7230 3.2.6 */
static int tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static const char *ows(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

static size_t token_len(const char *s)
{
	size_t n = 0;

	while (tchar((unsigned char)s[n]))
		n++;
	return n;
}

/*
 * A parameter's value, unquoted.  Only window bits have values, and those
 * are at most two digits, so a few characters are kept; len counts them
 * all, so that "0010" is not mistaken for "00".
 */
struct val {
	char s[4];
	size_t len;
};

static void val_add(struct val *v, char c)
{
	if (v->len < sizeof v->s)
		v->s[v->len] = c;
	v->len++;
}

/*
 * The value at s, a token or a quoted-string; a quoted one must still be a
 * token once unquoted (RFC 6455 9.1), so "1\0" is 10 but "1 0" is nothing.
 * Returns its end, or NULL when it is not one.
 */
static const char *value(const char *s, struct val *v)
{
	v->len = 0;
	if (*s != '"') {
		size_t n = token_len(s);

		for (size_t i = 0; i < n; i++)
			val_add(v, s[i]);
		return n ? s + n : NULL;
	}
	for (s++; *s != '"'; s++) {
		if (*s == '\\')
			s++;
		if (!tchar((unsigned char)*s)) /* also the end of the string */
			return NULL;
		val_add(v, *s);
	}
	return v->len ? s + 1 : NULL;
}

/* 8..15 written in decimal without leading zeros (RFC 7692 7.1.2), or 0. */
static int window_bits(const struct val *v)
{
	if (v->len == 1 && (v->s[0] == '8' || v->s[0] == '9'))
		return v->s[0] - '0';
	if (v->len == 2 && v->s[0] == '1' && v->s[1] >= '0' && v->s[1] <= '5')
		return 10 + v->s[1] - '0';
	return 0;
}

enum { SNCT, CNCT, SMWB, CMWB, NPARAMS };

static const char *const param_names[NPARAMS] = {
	"server_no_context_takeover", "client_no_context_takeover",
	"server_max_window_bits", "client_max_window_bits",
};

/* A server declines a bad offer whatever is wrong with it; a client fails
 * the connection and tells its user why, in these words. */
#define BAD "invalid permessage-deflate response: "
static const char not_offered[] =
	"the server agreed to an extension that was not offered";

static int param_index(const char *s, size_t n)
{
	for (int i = 0; i < NPARAMS; i++)
		if (strlen(param_names[i]) == n &&
		    !memcmp(s, param_names[i], n))
			return i;
	return -1;
}

/*
 * The "=value" after a parameter's name, at s, if any: *bits is -1 when
 * there is none, else window_bits() of it.  Returns its end, or NULL.
 */
static const char *param_value(const char *s, int *bits, const char **why)
{
	struct val v;

	s = ows(s);
	*bits = -1;
	if (*s != '=')
		return s;
	s = value(ows(s + 1), &v);
	if (!s) {
		*why = BAD "a malformed value";
		return NULL;
	}
	*bits = window_bits(&v);
	return s;
}

/*
 * Parameter i, with bits from param_value(), into p.  reply: it comes in
 * a server's response, where client_max_window_bits needs a value too
 * (RFC 7692 7.1.2.2); in an offer it may go without.  NULL, or why not.
 */
static const char *param_set(int i, int bits, int reply,
			     struct wsb_pmd_params *p)
{
	if (i == SNCT || i == CNCT) {
		if (bits >= 0)
			return BAD "a value after no_context_takeover";
		if (i == SNCT)
			p->server_no_context_takeover = 1;
		else
			p->client_no_context_takeover = 1;
		return NULL;
	}
	if (bits < 0 && (i == SMWB || reply))
		return BAD "window bits without a value";
	if (!bits)
		return BAD "window bits not 8..15";
	if (i == SMWB)
		p->server_max_window_bits = bits;
	else
		p->client_max_window_bits = bits < 0 ? 15 : bits;
	return NULL;
}

/*
 * One parameter of a permessage-deflate element, at s, into p; seen has a
 * bit for each one so far.  Returns its end, or NULL and why.
 */
static const char *param(const char *s, struct wsb_pmd_params *p,
			 unsigned *seen, int reply, const char **why)
{
	size_t n = token_len(s);
	int i = param_index(s, n), bits;

	if (!n || i < 0 || *seen & 1u << i) {
		*why = !n ? BAD "an empty parameter" :
		       i < 0 ? BAD "an unknown parameter" :
		       BAD "a parameter twice";
		return NULL;
	}
	*seen |= 1u << i;
	s = param_value(s + n, &bits, why);
	if (s && (*why = param_set(i, bits, reply, p)))
		return NULL;
	return s;
}

/*
 * The parameters after the name of a permessage-deflate element, at s,
 * into p (whose defaults they start from) and seen.  Returns where they
 * end, which is neither a semicolon nor whitespace, or NULL and why.
 */
static const char *params(const char *s, struct wsb_pmd_params *p,
			  unsigned *seen, int reply, const char **why)
{
	p->server_no_context_takeover = 0;
	p->client_no_context_takeover = 0;
	p->server_max_window_bits = 15;
	p->client_max_window_bits = 15;
	*seen = 0;
	for (s = ows(s); *s == ';'; s = ows(s)) {
		s = param(ows(s + 1), p, seen, reply, why);
		if (!s)
			return NULL;
	}
	return s;
}

static int is_pmd(const char *s, size_t n)
{
	return n == 18 && !memcmp(s, "permessage-deflate", 18);
}

/*
 * The element at s, when it is a permessage-deflate offer we can take:
 * 1 and its parameters in p and seen.  Anything else is 0, wherever it
 * went wrong; the caller finds the next element with skip().
 */
static int offer(const char *s, struct wsb_pmd_params *p, unsigned *seen)
{
	size_t n = token_len(s);
	const char *why;

	if (!is_pmd(s, n))
		return 0;
	s = params(s + n, p, seen, 0, &why);
	return s && (*s == ',' || !*s);
}

/*
 * To the comma that ends the element at s, or the end of the header.  A
 * quoted string is stepped over whole: a comma in one ends nothing, even
 * in an element offer() gave up on halfway.
 */
static const char *skip(const char *s)
{
	for (; *s && *s != ','; s++) {
		if (*s != '"')
			continue;
		for (s++; *s && *s != '"'; s++)
			if (*s == '\\' && s[1])
				s++;
		if (!*s)
			break;
	}
	return s;
}

static int respond(const struct wsb_pmd_params *p, unsigned seen,
		   char *resp, size_t resplen)
{
	char bits[32] = "";
	int n;

	if (seen & 1u << SMWB)
		snprintf(bits, sizeof bits, "; server_max_window_bits=%d",
			 p->server_max_window_bits);
	n = snprintf(resp, resplen, "permessage-deflate%s%s%s",
		     p->server_no_context_takeover ?
		     "; server_no_context_takeover" : "",
		     p->client_no_context_takeover ?
		     "; client_no_context_takeover" : "",
		     bits);
	if (n >= 0 && (size_t)n < resplen)
		return 1;
	if (resplen)
		resp[0] = '\0'; /* not half a response */
	return 0;
}

int wsb_pmd_negotiate(const char *offers, struct wsb_pmd_params *p,
		      char *resp, size_t resplen)
{
	struct wsb_pmd_params q;
	unsigned seen;

	for (const char *s = offers;; s++) {
		s = ows(s);
		if (offer(s, &q, &seen)) {
			if (!respond(&q, seen, resp, resplen))
				return 0;
			*p = q;
			return 1;
		}
		s = skip(s);
		if (!*s)
			return 0;
	}
}

/*
 * The client's side.  We offer client_max_window_bits so that a server
 * may bound our window (which costs us nothing: we compress with a small
 * one anyway) and nothing else, which leaves every other choice to it.
 */
const char *wsb_pmd_client_offer(void)
{
	return "permessage-deflate; client_max_window_bits";
}

/* Past any empty list elements at s (RFC 7230 7: they are to be ignored). */
static const char *next_element(const char *s)
{
	for (s = ows(s); *s == ','; s = ows(s + 1))
		;
	return s;
}

/*
 * The extension name is compared exactly, as the server's side does: RFC
 * 6455 and 7692 never call extension tokens case-insensitive and the IANA
 * registry spells it in lower case.  A server that spells it otherwise
 * fails the handshake with a reason that names it.
 */
int wsb_pmd_client_accept(const char *value, struct wsb_pmd_params *p,
			  const char **why)
{
	struct wsb_pmd_params q;
	const char *s = next_element(value), *ignored;
	size_t n = token_len(s);
	unsigned seen;

	if (!why)
		why = &ignored;
	if (!*s || !n) {
		*why = *s ? BAD "not a token" : BAD "an empty header";
		return -1;
	}
	if (!is_pmd(s, n)) {
		*why = not_offered;
		return -1;
	}
	s = params(s + n, &q, &seen, 1, why);
	if (!s)
		return -1;
	if (*s && *s != ',') {
		*why = BAD "unexpected characters";
		return -1;
	}
	/* we offered one extension, once */
	if (*next_element(s)) {
		*why = not_offered;
		return -1;
	}
	*p = q;
	return 0;
}

/* ---------------------------------------------------------------- streams */

/*
 * The RFC names parameters after the role they bind, so which of them
 * apply to our deflate stream and which to the peer's depends on ours;
 * they are sorted out once, here, and no code below knows its role.
 */
struct wsb_pmd {
	int def_bits;   /* our window may be up to this: 8..15 */
	int def_reset;  /* we reset our deflate stream after each message */
	int inf_reset;  /* the peer resets its own, so we need not keep ours */
	z_stream def, inf;
	int def_on, inf_on;
	int ended;      /* a final block (BFINAL) ended the inflate stream */
	int begun;      /* the message being inflated has had payload */
	size_t out;     /* what it has inflated to so far */
	size_t bytes;   /* held by zlib, for wsb_pmd_bytes() */
};

/* zlib's allocations go through here so that they can be counted. */
union zhdr {
	size_t n;
	void *p;
	long double d; /* for malloc's alignment */
};

static voidpf zalloc_counted(voidpf opaque, uInt items, uInt size)
{
	struct wsb_pmd *z = opaque;
	union zhdr *h;
	size_t n;

	if (size && items > (SIZE_MAX - sizeof *h) / size)
		return Z_NULL;
	n = sizeof *h + (size_t)items * size;
	h = malloc(n);
	if (!h)
		return Z_NULL;
	h->n = n;
	z->bytes += n;
	return h + 1;
}

static void zfree_counted(voidpf opaque, voidpf address)
{
	struct wsb_pmd *z = opaque;
	union zhdr *h = (union zhdr *)address - 1;

	z->bytes -= h->n;
	free(h);
}

static void zinit(struct wsb_pmd *z, z_stream *s)
{
	memset(s, 0, sizeof *s);
	s->zalloc = zalloc_counted;
	s->zfree = zfree_counted;
	s->opaque = z;
}

static struct wsb_pmd *pmd_new(int def_bits, int def_reset, int inf_reset)
{
	struct wsb_pmd *z = calloc(1, sizeof *z);

	if (z) {
		z->def_bits = def_bits;
		z->def_reset = def_reset;
		z->inf_reset = inf_reset;
	}
	return z;
}

struct wsb_pmd *wsb_pmd_new(const struct wsb_pmd_params *p)
{
	return pmd_new(p->server_max_window_bits,
		       p->server_no_context_takeover,
		       p->client_no_context_takeover);
}

struct wsb_pmd *wsb_pmd_new_client(const struct wsb_pmd_params *p)
{
	return pmd_new(p->client_max_window_bits,
		       p->client_no_context_takeover,
		       p->server_no_context_takeover);
}

static void inf_close(struct wsb_pmd *z)
{
	if (z->inf_on)
		inflateEnd(&z->inf);
	z->inf_on = 0;
	z->ended = 0;
}

static void def_close(struct wsb_pmd *z)
{
	if (z->def_on)
		deflateEnd(&z->def);
	z->def_on = 0;
}

void wsb_pmd_free(struct wsb_pmd *z)
{
	if (!z)
		return;
	inf_close(z);
	def_close(z);
	free(z);
}

size_t wsb_pmd_bytes(const struct wsb_pmd *z)
{
	return sizeof *z + z->bytes;
}

/* ---------------------------------------------------------------- inflate */

static int inf_open(struct wsb_pmd *z)
{
	if (z->inf_on)
		return 0;
	zinit(z, &z->inf);
	/* 15 whatever the peer's bound: a bigger window reads a smaller
	 * one's output, so the bound only ever saves the peer memory. */
	if (inflateInit2(&z->inf, -15) != Z_OK)
		return -1;
	z->inf_on = 1;
	z->ended = 0;
	return 0;
}

/*
 * A final block ended the deflate stream (RFC 7692 7.2.3.3 lets a sender
 * flush that way) but more follows.  zlib would start the next stream with
 * an empty window; the sender may still refer to what it sent, so the
 * window is carried over.  A sender that did reset loses nothing by it.
 */
static int inf_restart(struct wsb_pmd *z)
{
	unsigned char *w = malloc(1u << 15);
	uInt len = 0;
	int ok;

	if (!w)
		return -1;
	ok = inflateGetDictionary(&z->inf, w, &len) == Z_OK &&
	     inflateReset(&z->inf) == Z_OK &&
	     inflateSetDictionary(&z->inf, w, len) == Z_OK;
	free(w);
	z->ended = 0;
	return ok ? 0 : -1;
}

/*
 * Inflate n bytes of the message into the sink; tail: they are the 4 bytes
 * we append to it.  The output buffer is cut to one byte past the limit,
 * so a bomb stops there however much one byte of input expands to.
 */
static int feed(struct wsb_pmd *z, const unsigned char *in, size_t n,
		int tail, size_t limit,
		int (*sink)(void *, const unsigned char *, size_t), void *arg)
{
	unsigned char buf[WSB_PMD_PIECE];
	z_stream *s = &z->inf;
	uInt room, got;
	int r;

	s->next_in = (Bytef *)in; /* zlib declares it without const */
	s->avail_in = 0;
	for (;;) {
		if (!s->avail_in && n) {
			s->avail_in = n > UINT_MAX ? UINT_MAX : (uInt)n;
			n -= s->avail_in;
		}
		if (z->ended) {
			/* the stream ended right where the payload did: the
			 * message is whole without our tail */
			if (tail || !s->avail_in)
				return 0;
			if (inf_restart(z))
				return -1;
		}
		room = limit - z->out < sizeof buf ?
		       (uInt)(limit - z->out + 1) : (uInt)sizeof buf;
		s->next_out = buf;
		s->avail_out = room;
		r = inflate(s, Z_SYNC_FLUSH);
		got = room - s->avail_out;
		if (got) {
			int sr;

			z->out += got;
			if (z->out > limit)
				return -2;
			sr = sink(arg, buf, got);
			if (sr)
				return sr;
		}
		if (r == Z_STREAM_END) {
			z->ended = 1;
			continue;
		}
		if (r != Z_OK && r != Z_BUF_ERROR)
			return -1;
		/* room left over: zlib has taken all the input it was given */
		if (s->avail_out && !s->avail_in && !n)
			return 0;
	}
}

int wsb_pmd_inflate(struct wsb_pmd *z, const unsigned char *in, size_t n,
		    int fin, size_t limit,
		    int (*sink)(void *arg, const unsigned char *p, size_t n),
		    void *arg)
{
	static const unsigned char tail[4] = { 0x00, 0x00, 0xff, 0xff };
	int r = 0;

	if (z->out > limit) { /* a smaller limit than the last chunk's */
		r = -2;
	} else if (n || (fin && z->begun)) {
		/* (an empty payload is taken for an empty message: with the
		 * tail alone it would be a truncated block) */
		if (inf_open(z))
			r = -1;
		if (!r && n) {
			z->begun = 1;
			r = feed(z, in, n, 0, limit, sink, arg);
		}
		if (!r && fin) {
			r = feed(z, tail, sizeof tail, 1, limit, sink, arg);
			/* After the tail a whole message stops between blocks
			 * (bit 128); anywhere else it was cut short. */
			if (!r && !z->ended && !(z->inf.data_type & 128))
				r = -1;
		}
	}
	if (r || fin) {
		z->out = 0;
		z->begun = 0;
		/* after an error the stream is mid-message for good */
		if (r || z->inf_reset)
			inf_close(z);
	}
	return r;
}

/* ---------------------------------------------------------------- deflate */

int wsb_pmd_can_deflate(const struct wsb_pmd *z)
{
	return z->def_bits >= 9 && z->def_bits <= 15;
}

static int def_open(struct wsb_pmd *z)
{
	if (z->def_on)
		return 0;
	zinit(z, &z->def);
	if (deflateInit2(&z->def, WSB_PMD_LEVEL, Z_DEFLATED,
			 -(z->def_bits < WSB_PMD_WBITS ? z->def_bits :
			   WSB_PMD_WBITS),
			 WSB_PMD_MEMLEVEL, Z_DEFAULT_STRATEGY) != Z_OK)
		return -1;
	z->def_on = 1;
	return 0;
}

unsigned char *wsb_pmd_deflate(struct wsb_pmd *z, const unsigned char *in,
			       size_t n, size_t pre, size_t *outlen)
{
	z_stream *s = &z->def;
	size_t cap, used = 0, left = n;
	unsigned char *buf, *nb;

	if (!wsb_pmd_can_deflate(z))
		return NULL;
	if (!n) {
		/* An empty stored block (RFC 7692 7.2.3.6) without touching
		 * the stream: zlib refuses a second sync flush in a row. */
		buf = malloc(pre + 1);
		if (buf) {
			buf[pre] = 0x00;
			*outlen = 1;
		}
		return buf;
	}
	if (def_open(z))
		return NULL;
	cap = deflateBound(s, n) + 16; /* + the flush's empty block */
	if (cap < n || pre > SIZE_MAX - cap)
		return NULL;
	buf = malloc(pre + cap);
	if (!buf)
		goto fail;
	s->next_in = (Bytef *)in;
	s->avail_in = 0;
	for (;;) {
		uInt room;
		int flush, r;

		if (!s->avail_in && left) {
			s->avail_in = left > UINT_MAX ? UINT_MAX : (uInt)left;
			left -= s->avail_in;
		}
		/* more than 6 bytes of room for a flush, as zlib asks, or a
		 * flush that exactly fills it is repeated */
		if (cap - used < 8) {
			if (cap > (SIZE_MAX - pre) / 2)
				goto fail;
			nb = realloc(buf, pre + cap * 2);
			if (!nb)
				goto fail;
			buf = nb;
			cap *= 2;
		}
		room = cap - used > UINT_MAX ? UINT_MAX : (uInt)(cap - used);
		s->next_out = buf + pre + used;
		s->avail_out = room;
		flush = s->avail_in || left ? Z_NO_FLUSH : Z_SYNC_FLUSH;
		r = deflate(s, flush);
		used += room - s->avail_out;
		if (r != Z_OK && r != Z_BUF_ERROR)
			goto fail;
		if (flush == Z_SYNC_FLUSH && s->avail_out)
			break;
	}
	if (used < 4 || memcmp(buf + pre + used - 4, "\0\0\xff\xff", 4))
		goto fail;
	*outlen = used - 4;
	if (z->def_reset)
		deflateReset(s);
	return buf;
fail:
	/* The stream may have taken input that the peer will never see:
	 * continuing it would refer the peer to bytes it does not have. */
	free(buf);
	def_close(z);
	return NULL;
}
