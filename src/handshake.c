/*
 * The opening handshake (RFC 6455 section 4), the server's side: the
 * request head parsed strictly (RFC 7230 section 3), checked for an upgrade
 * we can accept, and the Sec-WebSocket-Accept computed.  Strict because the
 * head comes from anyone who can connect, and a lenient parser is where
 * request smuggling and header confusion start.  The client's side is
 * hsclient.c, with the same header rules (hsparse.h).
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "handshake.h"
#include "hsparse.h"

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* ASCII only: the locale must not decide what a header name matches. */
static int lower(int ch)
{
	return (ch >= 'A' && ch <= 'Z') ? ch + 32 : ch;
}

int wsb_hsp_is_digit(int ch)
{
	return ch >= '0' && ch <= '9';
}

static int is_alpha(int ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

int wsb_hsp_is_ows(int ch)
{
	return ch == ' ' || ch == '\t';
}

/* RFC 7230's tchar: what a method or a header name may be made of. */
int wsb_hsp_is_tchar(int ch)
{
	if (is_alpha(ch) || wsb_hsp_is_digit(ch))
		return 1;
	return ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static int hex(int ch)
{
	if (wsb_hsp_is_digit(ch))
		return ch - '0';
	ch = lower(ch);
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

int wsb_hsp_fail(const char **why, int status, const char *msg)
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
char *wsb_hsp_cut_line(char *s)
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
	if (strncmp(v, "HTTP/", 5) || !wsb_hsp_is_digit(v[5]) || v[6] != '.' ||
	    !wsb_hsp_is_digit(v[7]) || v[8])
		return wsb_hsp_fail(why, 400, "malformed HTTP version");
	if (v[5] != '1')
		return wsb_hsp_fail(why, 505, "HTTP version not supported");
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
	while (is_alpha(*p) || wsb_hsp_is_digit(*p) || *p == '+' || *p == '-' ||
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
			return wsb_hsp_fail(why, 400, "bad percent-encoding in the path");
		if (!hi && !lo)
			return wsb_hsp_fail(why, 400, "NUL byte in the path");
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
			return wsb_hsp_fail(why, 400, "invalid character in the target");
	p = *t == '/' ? t : absolute_path(t);
	if (!p)
		return wsb_hsp_fail(why, 400, "unsupported request target");
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
		return wsb_hsp_fail(why, 400, "malformed request line");
	*sp1 = '\0';
	sp2 = strchr(sp1 + 1, ' ');
	if (!sp2 || sp2 == sp1 + 1)
		return wsb_hsp_fail(why, 400, "malformed request line");
	*sp2 = '\0';
	for (const char *m = line; *m; m++)
		if (!wsb_hsp_is_tchar((unsigned char)*m))
			return wsb_hsp_fail(why, 400, "invalid character in the method");
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

	if (wsb_hsp_is_ows((unsigned char)*line))
		return wsb_hsp_fail(why, 400, "folded header lines are not supported");
	colon = strchr(line, ':');
	if (!colon)
		return wsb_hsp_fail(why, 400, "header line without a colon");
	if (colon == line)
		return wsb_hsp_fail(why, 400, "empty header name");
	if (wsb_hsp_is_ows((unsigned char)colon[-1]))
		return wsb_hsp_fail(why, 400, "space before the colon in a header");
	*colon = '\0';
	for (char *n = line; *n; n++) {
		if (!wsb_hsp_is_tchar((unsigned char)*n))
			return wsb_hsp_fail(why, 400, "invalid character in a header name");
		*n = (char)lower((unsigned char)*n);
	}
	for (v = colon + 1; wsb_hsp_is_ows((unsigned char)*v); v++)
		;
	e = v + strlen(v);
	while (e > v && wsb_hsp_is_ows((unsigned char)e[-1]))
		e--;
	*e = '\0';
	for (const char *c = v; *c; c++)
		if (((unsigned char)*c < 0x20 && *c != '\t') || *c == 0x7f)
			return wsb_hsp_fail(why, 400,
				    "control character in a header value");
	hd->name = line;
	hd->value = v;
	return 0;
}

/* The header lines after the first line (next), nh of them, into q->h. */
int wsb_hsp_parse_headers(struct wsb_hs_req *q, char *next, size_t nh,
			 const char **why)
{
	for (size_t i = 0; i < nh; i++) {
		char *line = next;
		int r;

		next = wsb_hsp_cut_line(line);
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
	char *line = q->buf, *next = wsb_hsp_cut_line(line);
	int r;

	if ((r = parse_request_line(q, line, pathbuf, why)))
		return r;
	return wsb_hsp_parse_headers(q, next, nlines - 2, why);
}

/*
 * The head copied into q->buf (NUL-terminated, extra bytes of room after
 * it) and q->h sized for its lines; *nlines counts them, blank line
 * included.  Refusals are a request's statuses.
 */
int wsb_hsp_load_head(struct wsb_hs_req *q, const char *head, size_t len,
		     size_t extra, size_t *nlines, const char **why)
{
	size_t end = wsb_hs_head_end(head, len), n = 0;

	if (!end)
		return wsb_hsp_fail(why, 400, "incomplete request head");
	if (memchr(head, '\0', end))
		return wsb_hsp_fail(why, 400, "NUL byte in the request head");
	for (size_t i = 0; i < end; i++)
		n += head[i] == '\n';
	/* Counted before anything is allocated: the first line and the
	 * blank line are not header lines. */
	if (n - 2 > WSB_HS_MAX_HEADERS)
		return wsb_hsp_fail(why, 400, "too many header lines");
	q->buf = malloc(end + 1 + extra);
	q->h = malloc((n - 1) * sizeof(*q->h));
	if (!q->buf || !q->h) {
		wsb_hs_free(q);
		return wsb_hsp_fail(why, 500, "out of memory");
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
	if ((r = wsb_hsp_load_head(q, head, len, end + 1, &nlines, why)))
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
int wsb_hsp_name_is(const char *stored, const char *name)
{
	for (; *name; stored++, name++)
		if (*stored != lower((unsigned char)*name))
			return 0;
	return *stored == '\0';
}

const char *wsb_hs_get(const struct wsb_hs_req *q, const char *name)
{
	for (size_t i = 0; i < q->nh; i++)
		if (wsb_hsp_name_is(q->h[i].name, name))
			return q->h[i].value;
	return NULL;
}

char *wsb_hs_get_all(const struct wsb_hs_req *q, const char *name)
{
	size_t n = 0, k = 0;
	char *s;

	for (size_t i = 0; i < q->nh; i++)
		if (wsb_hsp_name_is(q->h[i].name, name))
			n += strlen(q->h[i].value) + 2, k++;
	if (!k || !(s = malloc(n - 1)))
		return NULL;
	n = 0;
	for (size_t i = 0; i < q->nh; i++) {
		size_t l;

		if (!wsb_hsp_name_is(q->h[i].name, name))
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
int wsb_hsp_list_has(const char *list, const char *token, int ci)
{
	size_t tl = token ? strlen(token) : 0;

	if (!list || !tl)
		return 0;
	while (*list) {
		const char *e = list, *b;

		while (*e && *e != ',')
			e++;
		for (b = list; b < e && wsb_hsp_is_ows((unsigned char)*b); b++)
			;
		list = *e ? e + 1 : e;
		while (e > b && wsb_hsp_is_ows((unsigned char)e[-1]))
			e--;
		if ((size_t)(e - b) == tl &&
		    (ci ? same_ci(b, token, tl) : !memcmp(b, token, tl)))
			return 1;
	}
	return 0;
}

int wsb_hs_has_token(const char *list, const char *token)
{
	return wsb_hsp_list_has(list, token, 1);
}

/* Whether any of the headers called name holds token: the same answer
 * as has_token on get_all's join, without an allocation that could fail. */
int wsb_hsp_any_has_token(const struct wsb_hs_req *q, const char *name,
			 const char *token)
{
	for (size_t i = 0; i < q->nh; i++)
		if (wsb_hsp_name_is(q->h[i].name, name) &&
		    wsb_hs_has_token(q->h[i].value, token))
			return 1;
	return 0;
}

/* The one value of a header that must not repeat: NULL when absent,
 * *many set when it is there more than once. */
const char *wsb_hsp_single(const struct wsb_hs_req *q, const char *name,
			  int *many)
{
	const char *v = NULL;

	*many = 0;
	for (size_t i = 0; i < q->nh; i++) {
		if (!wsb_hsp_name_is(q->h[i].name, name))
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

	v = wsb_hsp_single(q, "host", &many);
	if (!v || !*v || many)
		return wsb_hsp_fail(why, 400, v ? "Host header empty or repeated"
					: "no Host header");
	v = wsb_hsp_single(q, "sec-websocket-version", &many);
	if (!v || many || strcmp(v, "13"))
		return wsb_hsp_fail(why, 426, "unsupported WebSocket version, expected 13");
	v = wsb_hsp_single(q, "sec-websocket-key", &many);
	if (!v || many || !key_ok(v))
		return wsb_hsp_fail(why, 400, v ? "invalid Sec-WebSocket-Key"
					: "no Sec-WebSocket-Key");
	return 0;
}

int wsb_hs_check(const struct wsb_hs_req *q, const char **why)
{
	int upgrade = wsb_hsp_any_has_token(q, "upgrade", "websocket");

	if (!upgrade && !wsb_hs_get(q, "sec-websocket-key"))
		return wsb_hsp_fail(why, 426, "upgrade required");
	if (strcmp(q->method, "GET"))
		return wsb_hsp_fail(why, 405, "method not allowed, expected GET");
	if (q->minor < 1)
		return wsb_hsp_fail(why, 400, "WebSocket needs HTTP/1.1");
	if (!upgrade)
		return wsb_hsp_fail(why, 400, "Upgrade header does not name websocket");
	if (!wsb_hsp_any_has_token(q, "connection", "upgrade"))
		return wsb_hsp_fail(why, 400, "Connection header does not name upgrade");
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
