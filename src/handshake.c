/*
 * The opening handshake (RFC 6455 section 4), both sides.  The server's:
 * the request head parsed strictly (RFC 7230 section 3), checked for an
 * upgrade we can accept, and the Sec-WebSocket-Accept computed.  Strict
 * because the head comes from anyone who can connect, and a lenient parser
 * is where request smuggling and header confusion start.  The client's: the
 * request built (refusing anything that would inject a line), and the
 * response parsed with the same header rules but a status line read the
 * way sloppy servers write it.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "handshake.h"

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* ASCII only: the locale must not decide what a header name matches. */
static int lower(int ch)
{
	return (ch >= 'A' && ch <= 'Z') ? ch + 32 : ch;
}

static int is_digit(int ch)
{
	return ch >= '0' && ch <= '9';
}

static int is_alpha(int ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static int is_ows(int ch)
{
	return ch == ' ' || ch == '\t';
}

/* RFC 7230's tchar: what a method or a header name may be made of. */
static int is_tchar(int ch)
{
	if (is_alpha(ch) || is_digit(ch))
		return 1;
	return ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static int hex(int ch)
{
	if (is_digit(ch))
		return ch - '0';
	ch = lower(ch);
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

static int fail(const char **why, int status, const char *msg)
{
	*why = msg;
	return status;
}

/*
 * Each '\n' ends a line; the head ends at the first line that is empty
 * (nothing, or a lone '\r', before its '\n').  That takes "\r\n\r\n",
 * "\n\n" and the mixed forms alike, so a client that sends bare newlines
 * is still heard.
 */
size_t wsb_hs_head_end(const char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (buf[i] != '\n')
			continue;
		if (i + 1 < len && buf[i + 1] == '\n')
			return i + 2;
		if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

/* Cuts the line at s (in buf) off at its '\n', dropping a '\r' before
 * it; returns the start of the next line. */
static char *cut_line(char *s)
{
	char *nl = strchr(s, '\n');

	*nl = '\0';
	if (nl > s && nl[-1] == '\r')
		nl[-1] = '\0';
	return nl + 1;
}

/* "HTTP/" DIGIT "." DIGIT, nothing else. */
static int parse_version(struct wsb_hs_req *q, const char *v,
			 const char **why)
{
	if (strncmp(v, "HTTP/", 5) || !is_digit(v[5]) || v[6] != '.' ||
	    !is_digit(v[7]) || v[8])
		return fail(why, 400, "malformed HTTP version");
	if (v[5] != '1')
		return fail(why, 505, "HTTP version not supported");
	q->minor = v[7] - '0';
	return 0;
}

/* Where the path starts in an absolute-form target ("http://host/p?q"),
 * or NULL when the target is not one. */
static const char *absolute_path(const char *t)
{
	const char *p = t;

	if (!is_alpha(*p))
		return NULL;
	while (is_alpha(*p) || is_digit(*p) || *p == '+' || *p == '-' ||
	       *p == '.')
		p++;
	if (strncmp(p, "://", 3))
		return NULL;
	p += 3;
	while (*p && *p != '/' && *p != '?')
		p++;
	return p;
}

/*
 * The path of target [p, up to '?') percent-decoded into out, which has
 * room for it (decoding only shrinks).  A decoded NUL would cut the path
 * short for anyone who reads it as a C string, so it is refused.
 */
static int decode_path(const char *p, char *out, const char **why)
{
	char *o = out;

	if (*p != '/')
		*o++ = '/';
	for (; *p && *p != '?'; p++) {
		int hi, lo;

		if (*p != '%') {
			*o++ = *p;
			continue;
		}
		hi = hex((unsigned char)p[1]);
		lo = hi < 0 ? -1 : hex((unsigned char)p[2]);
		if (lo < 0)
			return fail(why, 400, "bad percent-encoding in the path");
		if (!hi && !lo)
			return fail(why, 400, "NUL byte in the path");
		*o++ = (char)(hi << 4 | lo);
		p += 2;
	}
	*o = '\0';
	return 0;
}

/* The target: origin-form, or absolute-form (taken for its path); no
 * spaces, controls, non-ASCII or fragment. */
static int parse_target(struct wsb_hs_req *q, char *pathbuf,
			const char **why)
{
	const char *t = q->target, *p, *qm;

	for (p = t; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f ||
		    *p == '#')
			return fail(why, 400, "invalid character in the target");
	p = *t == '/' ? t : absolute_path(t);
	if (!p)
		return fail(why, 400, "unsupported request target");
	qm = strchr(p, '?');
	q->query = qm ? qm + 1 : NULL;
	q->path = pathbuf;
	return decode_path(p, pathbuf, why);
}

/* method SP request-target SP HTTP-version, single spaces. */
static int parse_request_line(struct wsb_hs_req *q, char *line,
			      char *pathbuf, const char **why)
{
	char *sp1 = strchr(line, ' '), *sp2;
	int r;

	if (!sp1 || sp1 == line)
		return fail(why, 400, "malformed request line");
	*sp1 = '\0';
	sp2 = strchr(sp1 + 1, ' ');
	if (!sp2 || sp2 == sp1 + 1)
		return fail(why, 400, "malformed request line");
	*sp2 = '\0';
	for (const char *m = line; *m; m++)
		if (!is_tchar((unsigned char)*m))
			return fail(why, 400, "invalid character in the method");
	q->method = line;
	q->target = sp1 + 1;
	if ((r = parse_version(q, sp2 + 1, why)))
		return r;
	return parse_target(q, pathbuf, why);
}

/* name ":" OWS value OWS, the name folded to lower case in place. */
static int parse_header(struct wsb_hs_header *hd, char *line,
			const char **why)
{
	char *colon, *v, *e;

	if (is_ows((unsigned char)*line))
		return fail(why, 400, "folded header lines are not supported");
	colon = strchr(line, ':');
	if (!colon)
		return fail(why, 400, "header line without a colon");
	if (colon == line)
		return fail(why, 400, "empty header name");
	if (is_ows((unsigned char)colon[-1]))
		return fail(why, 400, "space before the colon in a header");
	*colon = '\0';
	for (char *n = line; *n; n++) {
		if (!is_tchar((unsigned char)*n))
			return fail(why, 400, "invalid character in a header name");
		*n = (char)lower((unsigned char)*n);
	}
	for (v = colon + 1; is_ows((unsigned char)*v); v++)
		;
	e = v + strlen(v);
	while (e > v && is_ows((unsigned char)e[-1]))
		e--;
	*e = '\0';
	for (const char *c = v; *c; c++)
		if (((unsigned char)*c < 0x20 && *c != '\t') || *c == 0x7f)
			return fail(why, 400,
				    "control character in a header value");
	hd->name = line;
	hd->value = v;
	return 0;
}

/* The header lines after the first line (next), nh of them, into q->h. */
static int parse_headers(struct wsb_hs_req *q, char *next, size_t nh,
			 const char **why)
{
	for (size_t i = 0; i < nh; i++) {
		char *line = next;
		int r;

		next = cut_line(line);
		if ((r = parse_header(&q->h[q->nh], line, why)))
			return r;
		q->nh++;
	}
	return 0;
}

/* Lines of the head already cut down to its end, in q->buf. */
static int parse_lines(struct wsb_hs_req *q, size_t nlines, char *pathbuf,
		       const char **why)
{
	char *line = q->buf, *next = cut_line(line);
	int r;

	if ((r = parse_request_line(q, line, pathbuf, why)))
		return r;
	return parse_headers(q, next, nlines - 2, why);
}

/*
 * The head copied into q->buf (NUL-terminated, extra bytes of room after
 * it) and q->h sized for its lines; *nlines counts them, blank line
 * included.  Refusals are a request's statuses.
 */
static int load_head(struct wsb_hs_req *q, const char *head, size_t len,
		     size_t extra, size_t *nlines, const char **why)
{
	size_t end = wsb_hs_head_end(head, len), n = 0;

	if (!end)
		return fail(why, 400, "incomplete request head");
	if (memchr(head, '\0', end))
		return fail(why, 400, "NUL byte in the request head");
	for (size_t i = 0; i < end; i++)
		n += head[i] == '\n';
	/* Counted before anything is allocated: the first line and the
	 * blank line are not header lines. */
	if (n - 2 > WSB_HS_MAX_HEADERS)
		return fail(why, 400, "too many header lines");
	q->buf = malloc(end + 1 + extra);
	q->h = malloc((n - 1) * sizeof(*q->h));
	if (!q->buf || !q->h) {
		wsb_hs_free(q);
		return fail(why, 500, "out of memory");
	}
	memcpy(q->buf, head, end);
	q->buf[end] = '\0';
	*nlines = n;
	return 0;
}

int wsb_hs_parse(struct wsb_hs_req *q, const char *head, size_t len,
		 const char **why)
{
	size_t end = wsb_hs_head_end(head, len), nlines;
	int r;

	memset(q, 0, sizeof(*q));
	/* After the head's NUL, room for the decoded path (never longer than
	 * the head, plus the '/' an absolute-form target may lack). */
	if ((r = load_head(q, head, len, end + 1, &nlines, why)))
		return r;
	if ((r = parse_lines(q, nlines, q->buf + end + 1, why)))
		wsb_hs_free(q);
	return r;
}

void wsb_hs_free(struct wsb_hs_req *q)
{
	free(q->buf);
	free(q->h);
	memset(q, 0, sizeof(*q));
}

/* name against a stored, already lower-cased header name. */
static int name_is(const char *stored, const char *name)
{
	for (; *name; stored++, name++)
		if (*stored != lower((unsigned char)*name))
			return 0;
	return *stored == '\0';
}

const char *wsb_hs_get(const struct wsb_hs_req *q, const char *name)
{
	for (size_t i = 0; i < q->nh; i++)
		if (name_is(q->h[i].name, name))
			return q->h[i].value;
	return NULL;
}

char *wsb_hs_get_all(const struct wsb_hs_req *q, const char *name)
{
	size_t n = 0, k = 0;
	char *s;

	for (size_t i = 0; i < q->nh; i++)
		if (name_is(q->h[i].name, name))
			n += strlen(q->h[i].value) + 2, k++;
	if (!k || !(s = malloc(n - 1)))
		return NULL;
	n = 0;
	for (size_t i = 0; i < q->nh; i++) {
		size_t l;

		if (!name_is(q->h[i].name, name))
			continue;
		if (n) {
			memcpy(s + n, ", ", 2);
			n += 2;
		}
		l = strlen(q->h[i].value);
		memcpy(s + n, q->h[i].value, l);
		n += l;
	}
	s[n] = '\0';
	return s;
}

static int same_ci(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
			return 0;
	return 1;
}

/* Whether list's comma-separated, whitespace-trimmed elements hold token;
 * ci: compared case-insensitively (header tokens) or exactly
 * (subprotocol names, which RFC 6455 compares case-sensitively). */
static int list_has(const char *list, const char *token, int ci)
{
	size_t tl = token ? strlen(token) : 0;

	if (!list || !tl)
		return 0;
	while (*list) {
		const char *e = list, *b;

		while (*e && *e != ',')
			e++;
		for (b = list; b < e && is_ows((unsigned char)*b); b++)
			;
		list = *e ? e + 1 : e;
		while (e > b && is_ows((unsigned char)e[-1]))
			e--;
		if ((size_t)(e - b) == tl &&
		    (ci ? same_ci(b, token, tl) : !memcmp(b, token, tl)))
			return 1;
	}
	return 0;
}

int wsb_hs_has_token(const char *list, const char *token)
{
	return list_has(list, token, 1);
}

/* Whether any of the headers called name holds token: the same answer
 * as has_token on get_all's join, without an allocation that could fail. */
static int any_has_token(const struct wsb_hs_req *q, const char *name,
			 const char *token)
{
	for (size_t i = 0; i < q->nh; i++)
		if (name_is(q->h[i].name, name) &&
		    wsb_hs_has_token(q->h[i].value, token))
			return 1;
	return 0;
}

/* The one value of a header that must not repeat: NULL when absent,
 * *many set when it is there more than once. */
static const char *single(const struct wsb_hs_req *q, const char *name,
			  int *many)
{
	const char *v = NULL;

	*many = 0;
	for (size_t i = 0; i < q->nh; i++) {
		if (!name_is(q->h[i].name, name))
			continue;
		if (v)
			*many = 1;
		else
			v = q->h[i].value;
	}
	return v;
}

/*
 * 22 base64 characters and "==": what 16 random bytes encode to.  The
 * alphabet is checked here because EVP_DecodeBlock skips whitespace and
 * would let a padded or shortened key through.
 */
static int key_ok(const char *key)
{
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	unsigned char out[18];

	if (strlen(key) != 24 || strcmp(key + 22, "=="))
		return 0;
	for (int i = 0; i < 22; i++)
		if (!strchr(b64, key[i]))
			return 0;
	return EVP_DecodeBlock(out, (const unsigned char *)key, 24) == 18;
}

static int check_host_and_key(const struct wsb_hs_req *q, const char **why)
{
	const char *v;
	int many;

	v = single(q, "host", &many);
	if (!v || !*v || many)
		return fail(why, 400, v ? "Host header empty or repeated"
					: "no Host header");
	v = single(q, "sec-websocket-version", &many);
	if (!v || many || strcmp(v, "13"))
		return fail(why, 426, "unsupported WebSocket version, expected 13");
	v = single(q, "sec-websocket-key", &many);
	if (!v || many || !key_ok(v))
		return fail(why, 400, v ? "invalid Sec-WebSocket-Key"
					: "no Sec-WebSocket-Key");
	return 0;
}

int wsb_hs_check(const struct wsb_hs_req *q, const char **why)
{
	int upgrade = any_has_token(q, "upgrade", "websocket");

	if (!upgrade && !wsb_hs_get(q, "sec-websocket-key"))
		return fail(why, 426, "upgrade required");
	if (strcmp(q->method, "GET"))
		return fail(why, 405, "method not allowed, expected GET");
	if (q->minor < 1)
		return fail(why, 400, "WebSocket needs HTTP/1.1");
	if (!upgrade)
		return fail(why, 400, "Upgrade header does not name websocket");
	if (!any_has_token(q, "connection", "upgrade"))
		return fail(why, 400, "Connection header does not name upgrade");
	return check_host_and_key(q, why);
}

void wsb_hs_accept(const char *key, char out[29])
{
	unsigned char md[SHA_DIGEST_LENGTH], small[128], *in = small;
	size_t kl = strlen(key), gl = sizeof(ws_guid) - 1;

	/* A valid key is 24 bytes; only a caller's odd one needs the heap. */
	if (kl + gl > sizeof(small) && !(in = malloc(kl + gl))) {
		out[0] = '\0';
		return;
	}
	memcpy(in, key, kl);
	memcpy(in + kl, ws_guid, gl);
	SHA1(in, kl + gl, md);
	if (in != small)
		free(in);
	EVP_EncodeBlock((unsigned char *)out, md, SHA_DIGEST_LENGTH);
}

/* ---- The client's side ---- */

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
		if (name_is(owned[i], name))
			return 1;
	return (given(o->origin) && name_is("origin", name)) ||
	       (given(o->protocols) && name_is("sec-websocket-protocol", name));
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
		if (!is_tchar((unsigned char)*n))
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

	if (len < 12 || memcmp(s, "HTTP/1.", 7) || !is_digit(s[7]) ||
	    s[8] != ' ' || s[9] < '1' || s[9] > '5' || !is_digit(s[10]) ||
	    !is_digit(s[11]))
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

	while (e > s && is_ows((unsigned char)e[-1]))
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
	if (load_head(r, head, len, 0, &nlines, &ignored))
		goto bad;
	next = cut_line(r->buf);
	set_reason(r, at);
	if (parse_headers(r, next, nlines - 2, &ignored))
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
		if (!is_tchar((unsigned char)*c))
			return 0;
	return list_has(offered, chosen, 0);
}

static int check_accept(const struct wsb_hs_req *r, const char *key,
			const char **why)
{
	char want[29] = "";
	int many;
	const char *v = single(r, "sec-websocket-accept", &many);

	if (!v)
		return fail(why, -1, "Sec-WebSocket-Accept missing");
	if (key)
		wsb_hs_accept(key, want);
	/* An empty want (no key, or no memory for an odd one) matches
	 * nothing, not even an empty header. */
	if (many || !want[0] || strcmp(v, want))
		return fail(why, -1, "Sec-WebSocket-Accept does not match the key");
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
		return fail(why, -1, "the response is not 101 Switching Protocols");
	if (!any_has_token(r, "upgrade", "websocket"))
		return fail(why, -1, "no Upgrade: websocket in the response");
	if (!any_has_token(r, "connection", "upgrade"))
		return fail(why, -1, "no Connection: Upgrade in the response");
	if (check_accept(r, key, why))
		return -1;
	v = single(r, "sec-websocket-protocol", &many);
	if (!v)
		return 0;
	if (many || !protocol_ok(v, offered))
		return fail(why, -1,
			    "the server chose a subprotocol that was not offered");
	*protocol = v;
	return 0;
}
