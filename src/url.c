/*
 * URL parsing for ws:// and wss:// (RFC 6455 section 3).  Pure C, no Lua:
 * kept apart so that a fuzzer can drive it directly.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "wsbeat.h"

static int fail(char *err, size_t errlen, const char *msg, const char *arg)
{
	if (arg)
		snprintf(err, errlen, msg, arg);
	else
		snprintf(err, errlen, "%s", msg);
	return -1;
}

int wsb_is_ip_literal(const char *s)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static int lower(int ch)
{
	return (ch >= 'A' && ch <= 'Z') ? ch + 32 : ch;
}

/* "ws:" or "wss:" before "//"; *rest points after the "//". */
static int parse_scheme(const char *s, const char *end, struct wsb_url *u,
			const char **rest, char *err, size_t errlen)
{
	const char *p = memchr(s, ':', (size_t)(end - s));
	char scheme[16];
	size_t n;

	if (!p || end - p < 3 || p[1] != '/' || p[2] != '/' || p == s)
		return fail(err, errlen,
			    "invalid URL, expected ws://host[:port][/path]", NULL);
	n = (size_t)(p - s);
	if (n >= sizeof(scheme))
		n = sizeof(scheme) - 1;
	for (size_t i = 0; i < n; i++)
		scheme[i] = (char)lower((unsigned char)s[i]);
	scheme[n] = '\0';
	if ((size_t)(p - s) == 2 && !strcmp(scheme, "ws"))
		u->tls = 0;
	else if ((size_t)(p - s) == 3 && !strcmp(scheme, "wss"))
		u->tls = 1;
	else
		return fail(err, errlen,
			    "unsupported scheme '%s', expected ws or wss", scheme);
	*rest = p + 3;
	return 0;
}

/* The host of the authority [auth, auth_end): a name or a bracketed IPv6
 * literal; *rest points after it (at a ':' or auth_end). */
static int parse_host(const char *auth, const char *auth_end,
		      struct wsb_url *u, const char **rest, char *err,
		      size_t errlen)
{
	const char *h, *h_end;
	size_t n;

	if (*auth == '[') {
		h = auth + 1;
		h_end = memchr(h, ']', (size_t)(auth_end - h));
		if (!h_end)
			return fail(err, errlen, "unterminated IPv6 literal in URL",
				    NULL);
		*rest = h_end + 1;
		u->ipv6 = 1;
	} else {
		h = auth;
		h_end = memchr(h, ':', (size_t)(auth_end - h));
		if (!h_end)
			h_end = auth_end;
		*rest = h_end;
	}
	n = (size_t)(h_end - h);
	if (!n)
		return fail(err, errlen, "URL has no host", NULL);
	if (n >= sizeof(u->host))
		return fail(err, errlen, "host name too long", NULL);
	memcpy(u->host, h, n);
	u->host[n] = '\0';
	if (u->ipv6) {
		unsigned char buf[16];

		if (inet_pton(AF_INET6, u->host, buf) != 1)
			return fail(err, errlen, "invalid IPv6 address '%s'",
				    u->host);
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)u->host[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' ||
		      ch == '_'))
			return fail(err, errlen, "invalid character in host '%s'",
				    u->host);
	}
	return 0;
}

/* An optional ":port" in [p, auth_end); the scheme's port otherwise. */
static int parse_port(const char *p, const char *auth_end, struct wsb_url *u,
		      char *err, size_t errlen)
{
	long port = 0;

	u->port = u->tls ? 443 : 80;
	if (p == auth_end)
		return 0;
	if (*p != ':')
		return fail(err, errlen, "invalid characters after host", NULL);
	p++;
	if (p == auth_end)
		return fail(err, errlen, "empty port in URL", NULL);
	for (; p < auth_end; p++) {
		if (*p < '0' || *p > '9')
			return fail(err, errlen, "invalid port in URL", NULL);
		port = port * 10 + (*p - '0');
		if (port > 65535)
			break;
	}
	if (port < 1 || port > 65535)
		return fail(err, errlen, "port out of range, expected 1-65535",
			    NULL);
	u->port = (int)port;
	return 0;
}

/* Path and query [p, end), at least "/"; no fragment, no raw spaces. */
static int parse_path(const char *p, const char *end, struct wsb_url *u,
		      char *err, size_t errlen)
{
	size_t n = 0;

	if (p < end && *p == '#')
		return fail(err, errlen, "URL fragments are not allowed", NULL);
	if (p == end || *p == '?')
		u->path[n++] = '/';
	for (; p < end; p++) {
		unsigned char ch = (unsigned char)*p;

		if (ch == '#')
			return fail(err, errlen, "URL fragments are not allowed",
				    NULL);
		if (ch <= 0x20 || ch == 0x7f)
			return fail(err, errlen,
				    "URL path contains a space or control character",
				    NULL);
		if (n + 1 >= sizeof(u->path))
			return fail(err, errlen, "URL path too long", NULL);
		u->path[n++] = (char)ch;
	}
	u->path[n] = '\0';
	return 0;
}

int wsb_url_parse(const char *s, size_t len, struct wsb_url *u, char *err,
		  size_t errlen)
{
	const char *end = s + len, *auth, *auth_end, *p;

	memset(u, 0, sizeof(*u));
	if (memchr(s, '\0', len))
		return fail(err, errlen, "URL contains a NUL byte", NULL);
	if (parse_scheme(s, end, u, &auth, err, errlen))
		return -1;
	auth_end = auth;
	while (auth_end < end && *auth_end != '/' && *auth_end != '?' &&
	       *auth_end != '#')
		auth_end++;
	if (memchr(auth, '@', (size_t)(auth_end - auth)))
		return fail(err, errlen, "user information in URLs is not supported",
			    NULL);
	if (auth == auth_end)
		return fail(err, errlen, "URL has no host", NULL);
	if (parse_host(auth, auth_end, u, &p, err, errlen) ||
	    parse_port(p, auth_end, u, err, errlen) ||
	    parse_path(auth_end, end, u, err, errlen))
		return -1;
	return 0;
}
