/*
 * Both sides of the opening handshake (RFC 6455 section 4).  The server's:
 * the HTTP/1.1 request head parsed, held against the rules for an upgrade,
 * and the Sec-WebSocket-Accept that answers it.  The client's: a key, the
 * request built from an offer, and the server's response head parsed and
 * held against the client's rules (section 4.1).  Pure C, no Lua, no lws,
 * so that a unit test and a fuzzer can drive it directly.
 */
#ifndef WSB_HANDSHAKE_H
#define WSB_HANDSHAKE_H

#include <stddef.h>

/* name lower-cased; value trimmed of surrounding spaces/tabs */
struct wsb_hs_header {
	const char *name, *value;
};

/* A parsed request head, or a response head (wsb_hs_parse_response). */
struct wsb_hs_req {
	char *buf;		/* one malloc'd copy of the head that the pointers below point into */
	const char *method;	/* "GET"; NULL for a response */
	const char *target;	/* request-target as sent, e.g. "/chat?room=1&x=%20"; NULL for a response */
	const char *path;	/* the target up to '?', percent-decoded (a decoded NUL makes the request invalid); NULL for a response */
	const char *query;	/* after '?', as sent (not decoded), or NULL */
	int minor;		/* HTTP/1.<minor> */
	int status;		/* a response's status code (100-599); 0 for a request */
	const char *reason;	/* a response's reason phrase, trailing spaces dropped, possibly ""; NULL for a request */
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

/* ---- The client's side ---- */

/*
 * Sec-WebSocket-Key for 16 random bytes the caller drew: their base64, 24
 * characters + NUL.  Returns 0.
 */
int wsb_hs_key(char out[25], const unsigned char rnd[16]);

/* What the client asks for; the strings are the caller's, not copied. */
struct wsb_hs_offer {
	const char *target;	/* request-target as it goes on the wire, e.g. "/chat?room=1" ("/" when NULL or empty) */
	const char *host;	/* the Host header's value, e.g. "example.com:8080" */
	const char *origin;	/* Origin header value, or NULL/"" for none */
	const char *protocols;	/* Sec-WebSocket-Protocol value as given, e.g. "chat, superchat", or NULL/"" for none */
	const char *extensions;	/* Sec-WebSocket-Extensions value, or NULL/"" for none */
	const char *headers;	/* extra headers: "name\0value\0name\0value\0..." */
	size_t headers_len;	/* bytes in headers, the last NUL included (0: none) */
	const char *key;	/* Sec-WebSocket-Key, 24 chars (wsb_hs_key) */
};

/*
 * The request head for an offer, malloc'd and NUL-terminated, *len its
 * length without that NUL:
 *   GET <target> HTTP/1.1, Host, Upgrade: websocket, Connection: Upgrade,
 *   Sec-WebSocket-Key, Sec-WebSocket-Version: 13, then Origin,
 *   Sec-WebSocket-Protocol and Sec-WebSocket-Extensions when given, then
 *   the extra headers in their order, then the blank line.
 * The builder owns Host, Upgrade, Connection, Sec-WebSocket-Key,
 * Sec-WebSocket-Version and Sec-WebSocket-Extensions: extra headers of
 * those names (any case) are skipped, never sent twice; an extra Origin or
 * Sec-WebSocket-Protocol is skipped only when o->origin or o->protocols is
 * given.  Skipped headers are still validated.
 * NULL with *why (static string) when out of memory, when host or key is
 * NULL, when the target holds a space or a control character, when any
 * value holds CR or LF (a header injection) or a name is empty or not an
 * RFC 7230 token, or when headers is not whole NUL-terminated name/value
 * pairs (which is how a NUL inside a value shows).
 */
char *wsb_hs_request(const struct wsb_hs_offer *o, size_t *len,
		     const char **why);

/*
 * Parse a complete response head (as delimited by wsb_hs_head_end; bytes
 * after its blank line are left alone) into r, which then serves
 * wsb_hs_get, wsb_hs_get_all and wsb_hs_free like a request.  0 on
 * success; -1 with *why one of:
 *   "no HTTP status line in the response": the first line is not
 *     HTTP/1.<digit> SP <3 digits, 100-599> [SP <reason>] (a reason with
 *     control characters other than tab is not one either);
 *   "invalid or oversized HTTP response": a header line malformed by the
 *     request parser's rules, a NUL byte, more than WSB_HS_MAX_HEADERS
 *     header lines, no blank line, or out of memory.
 * Bare "\n" line ends are heard like "\r\n".  On failure r holds nothing
 * to free, but wsb_hs_free on it is harmless.
 */
int wsb_hs_parse_response(struct wsb_hs_req *r, const char *head, size_t len,
			  const char **why);

/*
 * Is this 101 response one the client may go on with (RFC 6455 section
 * 4.1)?  key is the Sec-WebSocket-Key sent, offered the
 * Sec-WebSocket-Protocol value sent (NULL for none).  0 yes, with
 * *protocol the subprotocol the server chose (a pointer into r) or NULL
 * when it chose none; otherwise -1, *protocol NULL and *why one of:
 *   "the response is not 101 Switching Protocols",
 *   "no Upgrade: websocket in the response",
 *   "no Connection: Upgrade in the response",
 *   "Sec-WebSocket-Accept missing",
 *   "Sec-WebSocket-Accept does not match the key" (repeated ones too),
 *   "the server chose a subprotocol that was not offered" (also for an
 *     empty, repeated or list-valued Sec-WebSocket-Protocol).
 * Upgrade and Connection are token lists (repeats join, any case); the
 * subprotocol must equal one offered element exactly, case included.
 * Extensions are the caller's to check.
 */
int wsb_hs_check_response(const struct wsb_hs_req *r, const char *key,
			  const char *offered, const char **protocol,
			  const char **why);

#endif
