/*
 * wsbeat: an incremental reader of WebSocket frames (RFC 6455 section 5,
 * with RFC 7692's RSV1 for permessage-deflate), for either role: a server
 * reads masked frames, a client unmasked ones (client set).
 *
 * Pure C with no allocation, no lws and no Lua, so that it can be fuzzed
 * and unit-tested on its own: the caller embeds struct wsb_rd and feeds it
 * whatever bytes arrived, in pieces of any size.
 */
#ifndef WSREAD_H
#define WSREAD_H

#include <stddef.h>
#include <stdint.h>

/* What the reader hands on; a non-zero return makes wsb_rd_feed stop. */
struct wsb_rd_ops {
	/* Payload bytes of the current data message, unmasked (in place, in
	 * the caller's buffer).  op: 1 text / 2 binary (the message's
	 * opcode, also on continuation frames); compressed: RSV1 was set on
	 * the message's first frame; first: these are the message's first
	 * bytes (called at least once per message, with n possibly 0);
	 * fin: these are its last bytes (the FIN frame's payload is all
	 * delivered; for an empty FIN frame it is called with n == 0).
	 * Return 0 to go on, anything else to make wsb_rd_feed stop and
	 * return that value. */
	int (*data)(void *arg, int op, int compressed, const unsigned char *p,
		    size_t n, int first, int fin);
	/* A whole control frame (8 close, 9 ping, 10 pong), payload unmasked.
	 * A close frame's payload is already validated: no 1-byte payload,
	 * a code an endpoint may send, a UTF-8 reason.  Same return
	 * convention. */
	int (*control)(void *arg, int op, const unsigned char *p, size_t n);
};

#define WSB_RD_CTL_MAX 125 /* RFC 6455 5.5: a control frame's payload */

struct wsb_rd {
	/* private */
	unsigned char hdr[14];   /* the frame header collected so far */
	unsigned hlen;           /* bytes in hdr */
	unsigned hneed;          /* bytes the header has: 2 until known */
	unsigned char key[4];    /* the frame's mask key */
	unsigned kpos;           /* position in key of the next payload byte */
	uint64_t left;           /* payload bytes of this frame still to come */
	int in_payload;          /* reading a payload, not a header */
	int op, fin;             /* the current frame's */
	int msg_op;              /* message in progress: 1, 2, or 0 for none */
	int msg_comp;            /* it had RSV1 on its first frame */
	int msg_first;           /* its first bytes are not yet delivered */
	int dead;                /* 0, or the close code (< 0) of a violation */
	size_t ctl_len;          /* bytes of a control payload in ctl */
	unsigned char ctl[WSB_RD_CTL_MAX];
	/* public */
	int pmd;                 /* permessage-deflate: RSV1 allowed */
	int client;              /* we are the client: frames come unmasked */
	const char *err;         /* after a violation: why (a static string) */
};

void wsb_rd_init(struct wsb_rd *r, int pmd);

/*
 * Feed len bytes, which are unmasked in place.  Returns 0 when all were
 * consumed; a callback's non-zero value, with *used bytes consumed (those
 * given to that callback included) and the reader ready for the rest; or
 * -1002 (protocol error) or -1007 (a close reason that is not UTF-8) when
 * the peer broke the protocol: r->err says why, and every later call
 * returns the same value without reading.
 */
int wsb_rd_feed(struct wsb_rd *r, unsigned char *buf, size_t len,
		size_t *used, const struct wsb_rd_ops *ops, void *arg);

/*
 * Strict UTF-8 (as wsb_utf8_valid) in pieces (src/utf8.c).  *state is 0
 * at a character boundary: start with 0.  Returns 0 while the bytes so far
 * can begin a valid text, -1 from the first byte that rules it out (and on
 * every call after).  A text is valid iff no call returned -1 and *state
 * is 0 at its end.
 */
int wsb_utf8_step(uint32_t *state, const unsigned char *s, size_t n);

#endif
