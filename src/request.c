/*
 * A server's upgrade request as Lua sees it (on_upgrade, conn:request()):
 * copied out of lws's header table before lws drops it at the upgrade.
 * lws 4.1 can list only the headers it knows by name; the others are
 * looked up while on_upgrade runs (lserver.c) and added here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wsbeat.h"

static char *hdr_dup(struct lws *wsi, enum lws_token_indexes t)
{
	int n = lws_hdr_total_length(wsi, t);
	char *v;

	if (n <= 0)
		return NULL;
	v = malloc((size_t)n + 1);
	if (v && lws_hdr_copy(wsi, v, n + 1, t) < 0) {
		free(v);
		v = NULL;
	}
	return v;
}

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

/* The query, parameter by parameter as lws split (and decoded) it. */
static char *query_dup(struct lws *wsi)
{
	int total = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS);
	char *q, *p;

	if (total <= 0)
		return NULL;
	q = malloc((size_t)total + 64);
	if (!q)
		return NULL;
	p = q;
	for (int i = 0;; i++) {
		int n = lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i);

		if (n <= 0 || (size_t)(p - q) + (size_t)n + 2 > (size_t)total + 64)
			break;
		if (p > q)
			*p++ = '&';
		if (lws_hdr_copy_fragment(wsi, p, n + 1, WSI_TOKEN_HTTP_URI_ARGS,
					  i) < 0)
			break;
		p += n;
	}
	*p = '\0';
	return q;
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

/* What lws parsed of the request: every header it knows by name (custom
 * ones only by lookup, while on_upgrade runs: lws 4.1 can't list them). */
struct wsb_request *wsb_request_capture(struct lws *wsi,
					   const struct wsb_pending *p)
{
	struct wsb_request *r = calloc(1, sizeof(*r));
	char *v;

	if (!r)
		return NULL;
	r->path = hdr_dup(wsi, WSI_TOKEN_GET_URI);
	if (!r->path)
		r->path = strdup("/");
	r->query = query_dup(wsi);
	r->protocols = hdr_dup(wsi, WSI_TOKEN_PROTOCOL);
	snprintf(r->remote, sizeof(r->remote), "%s", p->remote);
	r->remote_port = p->remote_port;
	for (int t = 0; t < WSI_TOKEN_COUNT; t++) {
		const char *name = (const char *)
			lws_token_to_string((enum lws_token_indexes)t);
		char lname[64];
		size_t nl;

		if (!name || name[0] == ':' || !(nl = strlen(name)) ||
		    name[nl - 1] != ':' || nl >= sizeof(lname))
			continue; /* methods, pseudo-headers, the URI */
		if (lws_hdr_total_length(wsi, (enum lws_token_indexes)t) <= 0)
			continue;
		memcpy(lname, name, nl - 1);
		lname[nl - 1] = '\0';
		v = hdr_dup(wsi, (enum lws_token_indexes)t);
		if (v) {
			wsb_request_add(r, lname, v, strlen(v));
			free(v);
		}
	}
	return r;
}
