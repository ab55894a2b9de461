/*
 * lws-hold: what libwebsockets itself needs per idle connection, as the
 * baseline for wsbeat's scale benchmark (bench/scale.sh).  Opens N ws://
 * connections with libwebsockets' default poll loop, at most BATCH
 * connecting at once, waits until all are established, and prints
 *
 *   lws_rss_kb_context=..    RSS with the context created
 *   lws_rss_kb_open=..       RSS with N connections open
 *   lws_kb_per_connection=.. the difference divided by N
 *
 *   lws-hold URL N
 *
 * Exit status 1 when not every connection opens within 120 s.
 */
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BATCH 500

static unsigned long n_open, n_failed;

static int cb(struct lws *wsi, enum lws_callback_reasons reason, void *user,
	      void *in, size_t len)
{
	(void)wsi; (void)user; (void)in; (void)len;
	switch (reason) {
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		n_open++;
		break;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		n_failed++;
		break;
	case LWS_CALLBACK_CLIENT_CLOSED:
		n_open--;
		n_failed++;
		break;
	default:
		break;
	}
	return 0;
}

static const struct lws_protocols protocols[] = {
	{ "hold", cb, 0, 0, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 }
};

static long rss_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	struct lws_context_creation_info info;
	struct lws_client_connect_info ci;
	struct lws_context *ctx;
	const char *prot, *addr, *path;
	char url[512];
	unsigned long n, started = 0;
	long rss0, rss1;
	int port;
	double deadline;

	if (argc != 3 || (n = strtoul(argv[2], NULL, 10)) == 0) {
		fprintf(stderr, "usage: lws-hold ws://HOST:PORT/PATH N\n");
		return 2;
	}
	snprintf(url, sizeof(url), "%s", argv[1]);
	if (lws_parse_uri(url, &prot, &addr, &port, &path) || strcmp(prot, "ws")) {
		fprintf(stderr, "lws-hold: a ws:// URL is needed\n");
		return 2;
	}
	lws_set_log_level(0, NULL);
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	info.gid = (gid_t)-1;
	info.uid = (uid_t)-1;
	/* the same options wsbeat's engine uses, minus the libuv loop */
	info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT |
		       LWS_SERVER_OPTION_VALIDATE_UTF8;
	info.fd_limit_per_thread = (unsigned int)n + 64;
	ctx = lws_create_context(&info);
	if (!ctx) {
		fprintf(stderr, "lws-hold: cannot create the context\n");
		return 1;
	}
	lws_service(ctx, 0);
	rss0 = rss_kb();

	deadline = now() + 120;
	while (n_open < n && now() < deadline) {
		/* lws_parse_uri wrote NULs into url: addr and path stay valid */
		while (started < n && started - n_open - n_failed < BATCH) {
			char p[512];

			memset(&ci, 0, sizeof(ci));
			ci.context = ctx;
			ci.address = addr;
			ci.port = port;
			snprintf(p, sizeof(p), "/%s", path);
			ci.path = p;
			ci.host = addr;
			ci.origin = addr;
			ci.protocol = NULL;
			ci.local_protocol_name = "hold";
			if (!lws_client_connect_via_info(&ci))
				n_failed++;
			started++;
		}
		if (n_failed) {
			fprintf(stderr, "lws-hold: %lu connection(s) failed\n", n_failed);
			lws_context_destroy(ctx);
			return 1;
		}
		lws_service(ctx, 0);
	}
	/* let lws finish whatever it does after the upgrade */
	for (double t = now() + 1; now() < t;)
		lws_service(ctx, 0);
	rss1 = rss_kb();
	printf("lws_open=%lu\n", n_open);
	printf("lws_rss_kb_context=%ld\nlws_rss_kb_open=%ld\n", rss0, rss1);
	printf("lws_kb_per_connection=%.2f\n", (double)(rss1 - rss0) / (double)n);
	fflush(stdout);
	started = n_open; /* destroying closes them all */
	lws_context_destroy(ctx);
	return started == n ? 0 : 1;
}
