/*
 * The frames a server reads (RFC 6455 section 5), in pieces of any size:
 * the header is collected a byte at a time so that every rule is checked
 * at the first byte that breaks it, whatever the chunking, and a data
 * payload is handed on in place as it arrives, never copied.  Only a
 * control frame's payload (125 bytes at most) is kept, because it must be
 * seen whole: a close frame is validated before anyone acts on it.
 */
#include <stdint.h>
#include <string.h>

#include "wsread.h"

#define FIN 0x80
#define RSV1 0x40
#define RSV23 0x30
#define MASK 0x80

void wsb_rd_init(struct wsb_rd *r, int pmd)
{
	memset(r, 0, sizeof *r);
	r->hneed = 2;
	r->pmd = pmd;
	r->err = NULL;
}

/* A violation: it sticks, so the connection can only be closed. */
static int fail(struct wsb_rd *r, int code, const char *why)
{
	r->dead = code;
	r->err = why;
	return code;
}

/*
 * XOR n bytes at p with the key, starting at key position kpos; returns
 * the position after them.  The key is rotated once to p's first byte, so
 * the word loop needs no alignment of p and the position carries across
 * feeds that end anywhere.
 */
static unsigned unmask(unsigned char *p, size_t n, const unsigned char key[4],
		       unsigned kpos)
{
	unsigned char k[8];
	uint64_t k64, v;
	size_t i = 0;

	for (unsigned j = 0; j < 8; j++)
		k[j] = key[(kpos + j) & 3];
	memcpy(&k64, k, 8);
	for (; i + 8 <= n; i += 8) {
		memcpy(&v, p + i, 8);
		v ^= k64;
		memcpy(p + i, &v, 8);
	}
	for (; i < n; i++)
		p[i] ^= k[i & 3];
	return (unsigned)((kpos + n) & 3);
}

/* Everything the first byte alone can rule out. */
static int check_first(struct wsb_rd *r, unsigned char c)
{
	int op = c & 0x0f;

	r->op = op;
	r->fin = !!(c & FIN);
	if (c & RSV23)
		return fail(r, -1002, "RSV2 or RSV3 set: no extension "
			    "defines them");
	if ((op > 2 && op < 8) || op > 10)
		return fail(r, -1002, "reserved opcode");
	if (op & 8) {
		if (c & RSV1)
			return fail(r, -1002, "RSV1 set on a control frame");
		if (!(c & FIN))
			return fail(r, -1002, "fragmented control frame");
		return 0;
	}
	if ((c & RSV1) && !r->pmd)
		return fail(r, -1002, "RSV1 set without permessage-deflate");
	if (op == 0) {
		/* RFC 7692 6: only a message's first frame says "compressed" */
		if (c & RSV1)
			return fail(r, -1002, "RSV1 set on a continuation "
				    "frame");
		if (!r->msg_op)
			return fail(r, -1002, "continuation frame with no "
				    "message in progress");
	} else if (r->msg_op) {
		return fail(r, -1002, "new data frame before the last "
			    "message's final fragment");
	}
	return 0;
}

/* The mask bit and the length field: they decide the header's size. */
static int check_second(struct wsb_rd *r, unsigned char c)
{
	unsigned len7 = c & 0x7f;

	if (!(c & MASK) != !!r->client)
		return fail(r, -1002, r->client ? "masked frame from a server" :
			    "unmasked frame from a client");
	if ((r->op & 8) && len7 > WSB_RD_CTL_MAX)
		return fail(r, -1002, "control frame payload over 125 bytes");
	if (r->op == 8 && len7 == 1)
		return fail(r, -1002, "close frame with a 1-byte payload");
	r->hneed = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) +
		   (r->client ? 0 : 4);
	return 0;
}

static int header_byte(struct wsb_rd *r, unsigned char c)
{
	r->hdr[r->hlen++] = c;
	switch (r->hlen) {
	case 1:
		return check_first(r, c);
	case 2:
		return check_second(r, c);
	case 3:
		if ((r->hdr[1] & 0x7f) == 127 && (c & 0x80))
			return fail(r, -1002, "64-bit payload length with its "
				    "most significant bit set");
	}
	return 0;
}

/* RFC 6455 7.4: the codes an endpoint may put in a close frame. */
static int close_code_ok(unsigned code)
{
	if (code >= 3000 && code <= 4999)
		return 1;
	if (code < 1000 || code > 1014)
		return 0;
	/* 1004 is reserved; 1005 and 1006 only stand for "no close frame" */
	return code < 1004 || code > 1006;
}

/* The control frame is all in ctl. */
static int control_done(struct wsb_rd *r, const struct wsb_rd_ops *ops,
			void *arg)
{
	r->in_payload = 0;
	if (r->op == 8 && r->ctl_len) {
		uint32_t st = 0;

		if (!close_code_ok((unsigned)r->ctl[0] << 8 | r->ctl[1]))
			return fail(r, -1002, "close code that may not be "
				    "sent");
		if (wsb_utf8_step(&st, r->ctl + 2, r->ctl_len - 2) || st)
			return fail(r, -1007, "close reason is not UTF-8");
	}
	return ops->control(arg, r->op, r->ctl, r->ctl_len);
}

/*
 * Hand on n payload bytes of a data frame, r->left already counting them
 * out.  The state moves on before the call, so that a callback that stops
 * the feed leaves the reader right after the bytes it was given.
 */
static int deliver(struct wsb_rd *r, const unsigned char *p, size_t n,
		   const struct wsb_rd_ops *ops, void *arg)
{
	int first = r->msg_first, fin = r->fin && !r->left;
	int op = r->msg_op, comp = r->msg_comp;

	r->msg_first = 0;
	if (!r->left) {
		r->in_payload = 0;
		if (fin)
			r->msg_op = r->msg_comp = 0;
	}
	return ops->data(arg, op, comp, p, n, first, fin);
}

/* The header is complete: the frame's length and key, and what it starts. */
static int frame_start(struct wsb_rd *r, const struct wsb_rd_ops *ops,
		       void *arg)
{
	static const unsigned char none[1];
	unsigned len7 = r->hdr[1] & 0x7f, k = 2;
	uint64_t len = len7;

	if (len7 == 126) {
		len = (uint64_t)r->hdr[2] << 8 | r->hdr[3];
		k = 4;
	} else if (len7 == 127) {
		len = 0;
		for (k = 2; k < 10; k++)
			len = len << 8 | r->hdr[k];
	}
	if (!r->client)
		memcpy(r->key, r->hdr + k, 4);
	r->kpos = 0;
	r->left = len;
	r->hlen = 0;
	r->hneed = 2;
	r->in_payload = 1;
	if (r->op & 8) {
		r->ctl_len = 0;
		return len ? 0 : control_done(r, ops, arg);
	}
	if (r->op) {
		r->msg_op = r->op;
		r->msg_comp = !!(r->hdr[0] & RSV1);
		r->msg_first = 1;
	}
	if (len)
		return 0;
	/* an empty frame still opens or ends its message */
	if (r->msg_first || r->fin)
		return deliver(r, none, 0, ops, arg);
	r->in_payload = 0;
	return 0;
}

int wsb_rd_feed(struct wsb_rd *r, unsigned char *buf, size_t len,
		size_t *used, const struct wsb_rd_ops *ops, void *arg)
{
	size_t i = 0;
	int rv = 0;

	*used = 0;
	if (r->dead)
		return r->dead;
	while (i < len && !rv) {
		size_t n = len - i;

		if (!r->in_payload) {
			rv = header_byte(r, buf[i++]);
			if (!rv && r->hlen == r->hneed)
				rv = frame_start(r, ops, arg);
			continue;
		}
		if (n > r->left)
			n = (size_t)r->left;
		if (r->op & 8) {
			memcpy(r->ctl + r->ctl_len, buf + i, n);
			if (!r->client)
				r->kpos = unmask(r->ctl + r->ctl_len, n,
						 r->key, r->kpos);
			r->ctl_len += n;
			r->left -= n;
			i += n;
			if (!r->left)
				rv = control_done(r, ops, arg);
		} else {
			if (!r->client)
				r->kpos = unmask(buf + i, n, r->key, r->kpos);
			r->left -= n;
			i += n;
			rv = deliver(r, buf + i - n, n, ops, arg);
		}
	}
	*used = i;
	return rv;
}
