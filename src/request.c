/*
 * A server's upgrade request as Lua sees it (on_upgrade, conn:request()),
 * made from the head handshake.c parsed: every header, by name.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wsbeat.h"
#include "handshake.h"

void wsb_request_add(struct wsb_request *r, const char *name,
		     const char *value, size_t vlen)
{
	size_t nl = strlen(name), need = r->headers_len + nl + vlen + 2;

	if (need > r->headers_cap) {
		size_t cap = r->headers_cap ? r->headers_cap : 256;
		char *b;

		while (cap < need)
			cap *= 2;
		b = realloc(r->headers, cap);
		if (!b)
			return;
		r->headers = b;
		r->headers_cap = cap;
	}
	memcpy(r->headers + r->headers_len, name, nl + 1);
	memcpy(r->headers + r->headers_len + nl + 1, value, vlen);
	r->headers[r->headers_len + nl + 1 + vlen] = '\0';
	r->headers_len = need;
}

/* The query with its percent-escapes decoded (an escape that is not one
 * stays as sent: the query is the application's to judge). */
static char *query_decode(const char *q)
{
	size_t n, j = 0;
	char *out;

	if (!q)
		return NULL;
	n = strlen(q);
	out = malloc(n + 1);
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (q[i] == '%' && isxdigit((unsigned char)q[i + 1]) &&
		    isxdigit((unsigned char)q[i + 2]) &&
		    (q[i + 1] != '0' || q[i + 2] != '0')) {
			char hex[3] = { q[i + 1], q[i + 2], 0 };

			out[j++] = (char)strtol(hex, NULL, 16);
			i += 2;
		} else {
			out[j++] = q[i];
		}
	}
	out[j] = '\0';
	return out;
}

void wsb_request_free(struct wsb_request *r)
{
	if (!r)
		return;
	free(r->path);
	free(r->query);
	free(r->protocols);
	free(r->headers);
	free(r);
}

/* The request as Lua sees it: every header by its lower-case name, the
 * values of a repeated header joined with ", " (RFC 7230 3.2.2). */
struct wsb_request *wsb_request_capture(const struct wsb_hs_req *q,
					const struct wsb_pending *p)
{
	struct wsb_request *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->path = strdup(q->path && q->path[0] ? q->path : "/");
	r->query = query_decode(q->query);
	r->protocols = wsb_hs_get_all(q, "sec-websocket-protocol");
	snprintf(r->remote, sizeof(r->remote), "%s", p->remote);
	r->remote_port = p->remote_port;
	for (size_t i = 0; i < q->nh; i++) {
		const char *name = q->h[i].name;
		char *v;
		size_t k;

		for (k = 0; k < i && strcmp(q->h[k].name, name); k++)
			;
		if (k < i)
			continue; /* (joined with its first occurrence) */
		v = wsb_hs_get_all(q, name);
		if (v) {
			wsb_request_add(r, name, v, strlen(v));
			free(v);
		}
	}
	return r;
}
