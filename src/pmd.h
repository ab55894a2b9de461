/*
 * permessage-deflate (RFC 7692) for both roles.  A server picks an offer
 * from the client's Sec-WebSocket-Extensions header (wsb_pmd_negotiate)
 * and makes its streams with wsb_pmd_new; a client sends
 * wsb_pmd_client_offer(), checks the server's answer with
 * wsb_pmd_client_accept and makes its streams with wsb_pmd_new_client.
 * Both roles share struct wsb_pmd_params, named as the RFC names them
 * (server_* binds the server's sending, client_* the client's), and the
 * rest of the stream API: "our" deflate follows our role's parameters,
 * our inflate reads the peer's stream.  No lws and no Lua in here, so the
 * unit test and the fuzz target link it alone (with -lz).
 */
#ifndef WSB_PMD_H
#define WSB_PMD_H

#include <stddef.h>

/* server_*: how the server deflates, client_*: how the client does */
struct wsb_pmd_params {
	int server_no_context_takeover; /* 1: resets after each message */
	int client_no_context_takeover;
	int server_max_window_bits;     /* 8..15, 15 when absent */
	int client_max_window_bits;     /* 8..15, 15 when absent or bare */
};

/* Pick the first acceptable permessage-deflate offer from the value of a
 * Sec-WebSocket-Extensions request header (offers separated by commas,
 * parameters by semicolons, optional whitespace, values possibly quoted:
 * RFC 7692 section 5 and RFC 6455 9.1).  An offer is declined (and the
 * next one tried) when it has an unknown parameter, a parameter twice, a
 * value where none is allowed, or a window-bits value that is not 8..15.
 * Other extensions (names other than permessage-deflate) are skipped.
 * Returns 1 and fills p and writes the response element into resp
 * (e.g. "permessage-deflate; server_no_context_takeover;
 * client_no_context_takeover; server_max_window_bits=10"), or 0 when no
 * offer is acceptable (or resp is too small).  The response: echo
 * server_no_context_takeover and server_max_window_bits=N when offered;
 * echo client_no_context_takeover when offered; never send
 * client_max_window_bits (we always inflate with a 15-bit window, which
 * reads any smaller window too). */
int wsb_pmd_negotiate(const char *offers, struct wsb_pmd_params *p,
		      char *resp, size_t resplen);

/* The client's Sec-WebSocket-Extensions value: "permessage-deflate;
 * client_max_window_bits" (a server may bound our window; nothing else
 * asked for). */
const char *wsb_pmd_client_offer(void);

/* Check the server's Sec-WebSocket-Extensions response (all such headers
 * joined with ", "; call only when there is one) against that offer, by
 * RFC 7692 5 and 7.1: exactly one element, named permessage-deflate
 * (compared exactly, as in the server's parser), with parameters
 * server_no_context_takeover, client_no_context_takeover and
 * server_max_window_bits / client_max_window_bits = 8..15 (quoted or not),
 * none twice.  Empty list elements are ignored.  Returns 0 and fills p
 * (15 / 0 for what is absent), or -1 with *why (unless why is NULL) set
 * to a static string for the close reason: "the server agreed to an
 * extension that was not offered" or "invalid permessage-deflate
 * response: <what>".  p is untouched then. */
int wsb_pmd_client_accept(const char *value, struct wsb_pmd_params *p,
			  const char **why);

struct wsb_pmd; /* opaque: the two zlib streams of one connection */
/* A server's streams: our deflate follows server_*, our inflate reads the
 * client's stream (client_*). */
struct wsb_pmd *wsb_pmd_new(const struct wsb_pmd_params *p);
/* A client's: our deflate follows client_*, our inflate reads the
 * server's stream (server_*). */
struct wsb_pmd *wsb_pmd_new_client(const struct wsb_pmd_params *p);
void wsb_pmd_free(struct wsb_pmd *z);
/* zlib streams are created lazily, on first use (a connection that never
 * sends or receives a compressed message costs only the struct), and the
 * inflate stream is released after each message when the peer resets its
 * own (client_no_context_takeover for a server, server_ for a client:
 * nothing to keep).  Our deflate uses at most a 12-bit window and
 * memLevel 5 whatever was agreed (smaller is always allowed), about
 * 32 KiB.  Report their memory: */
size_t wsb_pmd_bytes(const struct wsb_pmd *z);

/* Inflate a chunk of a compressed message; fin: this is its last chunk
 * (the 0x00 0x00 0xff 0xff tail RFC 7692 7.2.2 removed is appended by
 * us).  Output goes to sink(arg, bytes, n) in pieces (a sink returning
 * non-zero aborts with that value).  limit: the most output bytes the
 * whole message may inflate to (counted across chunks of the message;
 * past it: return -2 at once — a decompression bomb must never be
 * inflated further than limit plus one piece).  Returns 0, -1 on a
 * corrupt stream (the caller closes with 1007; also when zlib is out of
 * memory), -2 past limit, or the sink's value.  With context takeover,
 * the window carries to the next message.  After any non-zero return the
 * message is abandoned, and the window with it: the next call starts a new
 * message on a fresh stream. */
int wsb_pmd_inflate(struct wsb_pmd *z, const unsigned char *in, size_t n,
		    int fin, size_t limit,
		    int (*sink)(void *arg, const unsigned char *p, size_t n),
		    void *arg);

/* Deflate one whole message into a new malloc'd buffer that has `pre`
 * spare bytes before the compressed payload (the caller writes the frame
 * header there); *outlen is the payload's length (with the 4-byte tail
 * removed, RFC 7692 7.2.1).  NULL when out of memory, or when this
 * connection cannot compress (our role's max_window_bits == 8: zlib's raw
 * deflate refuses an 8-bit window, so such messages go uncompressed,
 * which RFC 7692 allows) — wsb_pmd_can_deflate() says which in advance.
 * With our role's no_context_takeover the stream is reset after the
 * message. */
int wsb_pmd_can_deflate(const struct wsb_pmd *z);
unsigned char *wsb_pmd_deflate(struct wsb_pmd *z, const unsigned char *in,
			       size_t n, size_t pre, size_t *outlen);

#endif
