/*
 * The opening handshake (RFC 6455 section 4), the client's side: the
 * request built (refusing anything that would inject a line), and the
 * response parsed with the server side's header rules (hsparse.h) but a
 * status line read the way sloppy servers write it, then checked.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "handshake.h"
#include "hsparse.h"

int wsb_hs_key(char out[25], const unsigned char rnd[16])
{
	EVP_EncodeBlock((unsigned char *)out, rnd, 16);
	return 0;
}

/* Where a request is written, or (p NULL) only measured. */
struct sink {
	char *p;
	size_t n;
};

static void put(struct sink *o, const char *s, size_t l)
{
	if (o->p)
		memcpy(o->p + o->n, s, l);
	o->n += l;
}

static void put_str(struct sink *o, const char *s)
{
	put(o, s, strlen(s));
}

static void put_header(struct sink *o, const char *name, const char *value)
{
	put_str(o, name);
	put(o, ": ", 2);
	put_str(o, value);
	put(o, "\r\n", 2);
}

static int given(const char *s)
{
	return s && *s;
}

/* A request's own header, or one an offer field sets: an extra header
 * of that name would contradict it, so it is not sent. */
static int skipped(const struct wsb_hs_offer *o, const char *name)
{
	static const char *const owned[] = {
		"host", "upgrade", "connection", "sec-websocket-key",
		"sec-websocket-version", "sec-websocket-extensions",
	};

	for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++)
		if (wsb_hsp_name_is(owned[i], name))
			return 1;
	return (given(o->origin) && wsb_hsp_name_is("origin", name)) ||
	       (given(o->protocols) && wsb_hsp_name_is("sec-websocket-protocol", name));
}

/* The extra headers, already validated, less the skipped ones. */
static void put_extras(const struct wsb_hs_offer *o, struct sink *out)
{
	const char *h = o->headers, *end = h + o->headers_len;

	while (h < end) {
		const char *v = h + strlen(h) + 1;

		if (!skipped(o, h))
			put_header(out, h, v);
		h = v + strlen(v) + 1;
	}
}

static void build(const struct wsb_hs_offer *o, struct sink *out)
{
	put_str(out, "GET ");
	put_str(out, given(o->target) ? o->target : "/");
	put_str(out, " HTTP/1.1\r\n");
	put_header(out, "Host", o->host);
	put_str(out, "Upgrade: websocket\r\nConnection: Upgrade\r\n");
	put_header(out, "Sec-WebSocket-Key", o->key);
	put_str(out, "Sec-WebSocket-Version: 13\r\n");
	if (given(o->origin))
		put_header(out, "Origin", o->origin);
	if (given(o->protocols))
		put_header(out, "Sec-WebSocket-Protocol", o->protocols);
	if (given(o->extensions))
		put_header(out, "Sec-WebSocket-Extensions", o->extensions);
	if (o->headers_len)
		put_extras(o, out);
	put(out, "\r\n", 2);
}

/* A value that cannot end its line early and start another. */
static int value_ok(const char *v)
{
	return !v || !strpbrk(v, "\r\n");
}

static int name_ok(const char *n)
{
	if (!*n)
		return 0;
	for (; *n; n++)
		if (!wsb_hsp_is_tchar((unsigned char)*n))
			return 0;
	return 1;
}

/* The extra headers (len > 0): whole NUL-terminated pairs, each a token
 * name and a one-line value.  Validated before anything is written,
 * skipped or not, so a bad one is the caller's error either way. */
static const char *extras_error(const char *h, size_t len)
{
	const char *end;

	if (!h || h[len - 1] != '\0')
		return "extra headers not NUL-terminated name/value pairs";
	end = h + len;
	while (h < end) {
		const char *v = h + strlen(h) + 1;

		if (v >= end)
			return "extra headers not NUL-terminated name/value pairs";
		if (!name_ok(h))
			return "empty or invalid header name";
		if (!value_ok(v))
			return "CR or LF in a header value";
		h = v + strlen(v) + 1;
	}
	return NULL;
}

/* The request line gets its own spaces; one in the target, or a control
 * character, would let the target rewrite the rest of the line. */
static int target_ok(const char *t)
{
	for (; t && *t; t++)
		if ((unsigned char)*t <= 0x20 || *t == 0x7f)
			return 0;
	return 1;
}

static const char *offer_error(const struct wsb_hs_offer *o)
{
	if (!o->host || !o->key)
		return "no Host or Sec-WebSocket-Key for the request";
	if (!target_ok(o->target))
		return "space or control character in the request target";
	if (!value_ok(o->host) || !value_ok(o->key) || !value_ok(o->origin) ||
	    !value_ok(o->protocols) || !value_ok(o->extensions))
		return "CR or LF in a header value";
	return o->headers_len ? extras_error(o->headers, o->headers_len) : NULL;
}

char *wsb_hs_request(const struct wsb_hs_offer *o, size_t *len,
		     const char **why)
{
	struct sink out = { NULL, 0 };

	if ((*why = offer_error(o)))
		return NULL;
	/* Measured first, so that one allocation fits it exactly. */
	build(o, &out);
	if (!(out.p = malloc(out.n + 1))) {
		*why = "out of memory";
		return NULL;
	}
	*len = out.n;
	out.n = 0;
	build(o, &out);
	out.p[out.n] = '\0';
	return out.p;
}

static const char no_status[] = "no HTTP status line in the response";
static const char bad_response[] = "invalid or oversized HTTP response";

/* reason-phrase = *( HTAB / SP / VCHAR / obs-text ), up to the line's end
 * (a '\r' is allowed only just before the '\n'). */
static int reason_ok(const char *s, const char *end)
{
	for (; s < end && *s != '\n'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '\r' && s + 1 < end && s[1] == '\n')
			continue;
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return 0;
	}
	return 1;
}

/*
 * "HTTP/1." DIGIT SP 3DIGIT [SP reason], read from the raw head so that a
 * peer that is not speaking HTTP at all (a TLS alert, a banner) is told
 * apart from one whose headers are bad.  Sets minor and status; *at is
 * where the reason starts in the line.
 */
static int parse_status_line(struct wsb_hs_req *r, const char *s, size_t len,
			     size_t *at)
{
	const char *end = s + len;

	if (len < 12 || memcmp(s, "HTTP/1.", 7) || !wsb_hsp_is_digit(s[7]) ||
	    s[8] != ' ' || s[9] < '1' || s[9] > '5' || !wsb_hsp_is_digit(s[10]) ||
	    !wsb_hsp_is_digit(s[11]))
		return -1;
	*at = 12;
	if (len > 12 && s[12] == ' ')
		*at = 13;
	else if (len > 12 && s[12] != '\r' && s[12] != '\n')
		return -1;
	if (!reason_ok(s + *at, end))
		return -1;
	r->minor = s[7] - '0';
	r->status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
	return 0;
}

/* The reason phrase, in r->buf after its line was cut, trimmed at its end
 * the way header values are. */
static void set_reason(struct wsb_hs_req *r, size_t at)
{
	char *s = r->buf + at, *e = s + strlen(s);

	while (e > s && wsb_hsp_is_ows((unsigned char)e[-1]))
		e--;
	*e = '\0';
	r->reason = s;
}

int wsb_hs_parse_response(struct wsb_hs_req *r, const char *head, size_t len,
			  const char **why)
{
	const char *ignored;
	size_t nlines, at;
	char *next;

	memset(r, 0, sizeof(*r));
	if (parse_status_line(r, head, len, &at)) {
		*why = no_status;
		return -1;
	}
	if (wsb_hsp_load_head(r, head, len, 0, &nlines, &ignored))
		goto bad;
	next = wsb_hsp_cut_line(r->buf);
	set_reason(r, at);
	if (wsb_hsp_parse_headers(r, next, nlines - 2, &ignored))
		goto bad;
	return 0;
bad:
	wsb_hs_free(r);
	*why = bad_response;
	return -1;
}

/* The one token the server chose, if it is one of those offered. */
static int protocol_ok(const char *chosen, const char *offered)
{
	if (!*chosen)
		return 0;
	for (const char *c = chosen; *c; c++)
		if (!wsb_hsp_is_tchar((unsigned char)*c))
			return 0;
	return wsb_hsp_list_has(offered, chosen, 0);
}

static int check_accept(const struct wsb_hs_req *r, const char *key,
			const char **why)
{
	char want[29] = "";
	int many;
	const char *v = wsb_hsp_single(r, "sec-websocket-accept", &many);

	if (!v)
		return wsb_hsp_fail(why, -1, "Sec-WebSocket-Accept missing");
	if (key)
		wsb_hs_accept(key, want);
	/* An empty want (no key, or no memory for an odd one) matches
	 * nothing, not even an empty header. */
	if (many || !want[0] || strcmp(v, want))
		return wsb_hsp_fail(why, -1, "Sec-WebSocket-Accept does not match the key");
	return 0;
}

int wsb_hs_check_response(const struct wsb_hs_req *r, const char *key,
			  const char *offered, const char **protocol,
			  const char **why)
{
	const char *v;
	int many;

	*protocol = NULL;
	if (r->status != 101)
		return wsb_hsp_fail(why, -1, "the response is not 101 Switching Protocols");
	if (!wsb_hsp_any_has_token(r, "upgrade", "websocket"))
		return wsb_hsp_fail(why, -1, "no Upgrade: websocket in the response");
	if (!wsb_hsp_any_has_token(r, "connection", "upgrade"))
		return wsb_hsp_fail(why, -1, "no Connection: Upgrade in the response");
	if (check_accept(r, key, why))
		return -1;
	v = wsb_hsp_single(r, "sec-websocket-protocol", &many);
	if (!v)
		return 0;
	if (many || !protocol_ok(v, offered))
		return wsb_hsp_fail(why, -1,
			    "the server chose a subprotocol that was not offered");
	*protocol = v;
	return 0;
}
