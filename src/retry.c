/*
 * The retry policy, pure: which failures deserve another attempt, how
 * long to wait before it, and the names of close codes.  No I/O, so the
 * Lua binding can test it without a network.
 */
#include <math.h>
#include <string.h>

#include "wsbeat.h"
#include "conn.h"

const char *wsb_close_code_name(int code)
{
	switch (code) {
	case 1000: return "normal closure";
	case 1001: return "going away";
	case 1002: return "protocol error";
	case 1003: return "unsupported data";
	case 1005: return "no status";
	case 1006: return "abnormal closure";
	case 1007: return "invalid payload data";
	case 1008: return "policy violation";
	case 1009: return "message too big";
	case 1010: return "mandatory extension";
	case 1011: return "internal error";
	case 1012: return "service restart";
	case 1013: return "try again later";
	case 1014: return "bad gateway";
	case 1015: return "TLS handshake";
	default: return code >= 4000 ? "application" : "unknown";
	}
}

int wsb_default_retry(const char *cause, int code, int status)
{
	if (!strcmp(cause, "http_status"))
		return status == 408 || status == 429 || status >= 500 ||
		       status < 400;
	if (!strcmp(cause, "closed_by_peer"))
		return code == 1000 || code == 1001 || code == 1005 ||
		       code == 1006 || (code >= 1011 && code <= 1014) ||
		       (code >= 4000 && code <= 4999);
	if (!strcmp(cause, "too_big") || !strcmp(cause, "protocol_error") ||
	    !strcmp(cause, "tls") || !strcmp(cause, "proxy_auth"))
		return 0;
	return 1;
}

/*
 * Reconnect attempt n (1-based) waits min(max_delay, delay * factor^(n-1)),
 * less up to `jitter` of it (r: a uniform draw in [0, 1]), and at least
 * what the server asked for with Retry-After (retry_after > 0).
 */
double wsb_backoff(const struct wsb_opts *o, int n, double r,
		   double retry_after)
{
	double d = o->rc_delay * pow(o->rc_factor, n - 1);

	if (d > o->rc_max_delay || !isfinite(d))
		d = o->rc_max_delay;
	if (o->rc_jitter > 0)
		d -= d * o->rc_jitter * r;
	if (retry_after > 0 && d < retry_after)
		d = retry_after;
	return d;
}
