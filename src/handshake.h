/*
 * The server's side of the opening handshake (RFC 6455 section 4.2): the
 * HTTP/1.1 request head parsed, held against the rules for an upgrade, and
 * the Sec-WebSocket-Accept that answers it.  Pure C, no Lua, no lws, so
 * that a unit test and a fuzzer can drive it directly.
 */
#ifndef WSB_HANDSHAKE_H
#define WSB_HANDSHAKE_H

#include <stddef.h>

/* name lower-cased; value trimmed of surrounding spaces/tabs */
struct wsb_hs_header {
	const char *name, *value;
};

struct wsb_hs_req {
	char *buf;		/* one malloc'd copy of the head that the pointers below point into */
	const char *method;	/* "GET" */
	const char *target;	/* request-target as sent, e.g. "/chat?room=1&x=%20" */
	const char *path;	/* the target up to '?', percent-decoded (a decoded NUL makes the request invalid) */
	const char *query;	/* after '?', as sent (not decoded), or NULL */
	int minor;		/* HTTP/1.<minor> */
	struct wsb_hs_header *h;/* in order of arrival */
	size_t nh;
};

/* Header lines a head may hold; more is answered 400. */
#define WSB_HS_MAX_HEADERS 100

/*
 * Where the head ends: the length up to and including the first blank
 * line ("\r\n\r\n"; a bare "\n\n" is accepted too), or 0 when it has not
 * arrived yet.  For incremental use: the caller calls it again after each
 * read with the whole buffer so far.
 */
size_t wsb_hs_head_end(const char *buf, size_t len);

/*
 * Parse a complete head (as delimited above; bytes after its blank line
 * are left alone).  0 on success; otherwise an HTTP status to answer with
 * (400 malformed: bad request line, a header line without a colon, a name
 * with characters outside RFC 7230's tchar, a space before the colon,
 * obs-fold continuation lines, control characters other than tab in a
 * value, more than WSB_HS_MAX_HEADERS header lines; 505 for a version
 * other than HTTP/1.x; 500 when out of memory; any token is a method, 501
 * is the caller's) and *why set to a short plain-words reason (static
 * string).  On failure q holds nothing to free, but wsb_hs_free on it is
 * harmless.
 */
int wsb_hs_parse(struct wsb_hs_req *q, const char *head, size_t len,
		 const char **why);
void wsb_hs_free(struct wsb_hs_req *q);

/*
 * A header's value (name compared case-insensitively); repeated headers:
 * the first (wsb_hs_get_all joins all of them with ", " into a malloc'd
 * string the caller frees, NULL when absent or out of memory).
 */
const char *wsb_hs_get(const struct wsb_hs_req *q, const char *name);
char *wsb_hs_get_all(const struct wsb_hs_req *q, const char *name);

/*
 * Whether a comma-separated list of tokens (e.g. Connection: keep-alive,
 * Upgrade) holds token, case-insensitively, whitespace ignored.  A NULL
 * list or an empty token holds nothing.
 */
int wsb_hs_has_token(const char *list, const char *token);

/*
 * Is this a WebSocket upgrade request that we can accept?  0 yes;
 * otherwise the status to answer with and *why:
 *   - not an upgrade at all (no "Upgrade: websocket" and no
 *     Sec-WebSocket-Key): 426 "upgrade required" -- the caller answers a
 *     plain HTTP request that way;
 *   - method not GET: 405; HTTP/1.0: 400;
 *   - Upgrade header present but not holding the token "websocket": 400;
 *   - Connection not holding the token "upgrade": 400;
 *   - no Host (or an empty or repeated one): 400;
 *   - Sec-WebSocket-Version missing or not "13": 426 (the caller adds
 *     "Sec-WebSocket-Version: 13" to that answer);
 *   - Sec-WebSocket-Key missing, repeated, or not the base64 of exactly
 *     16 bytes (24 characters ending "=="): 400.
 * Repeated Connection/Upgrade headers count as one list.
 */
int wsb_hs_check(const struct wsb_hs_req *q, const char **why);

/*
 * Sec-WebSocket-Accept for a key: base64(SHA-1(key ||
 * "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")), 28 characters + NUL (an
 * empty string only if a key far longer than any valid one cannot be
 * copied for want of memory).
 */
void wsb_hs_accept(const char *key, char out[29]);

#endif
