/*
 * libFuzzer target for wsbeat's URL parser (src/url.c), the only parser of
 * untrusted text that is wsbeat's own besides the UTF-8 check of outgoing
 * text (fuzz/utf8_fuzz.c); frames and incoming UTF-8 are libwebsockets'.
 * Checks the parser's promises, not just that it does not crash.
 */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "../src/wsbeat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wsb_url u;
	char err[256];

	if (wsb_url_parse((const char *)data, size, &u, err, sizeof(err)) == 0) {
		assert(u.port >= 1 && u.port <= 65535);
		assert(u.host[0] != '\0');
		assert(strlen(u.host) < sizeof(u.host));
		assert(u.path[0] == '/');
		assert(!strchr(u.path, '#') && !strchr(u.path, ' '));
		assert(u.tls == 0 || u.tls == 1);
		(void)wsb_is_ip_literal(u.host);
	} else {
		assert(err[0] != '\0');
	}
	return 0;
}
