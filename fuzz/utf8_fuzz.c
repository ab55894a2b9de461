/*
 * libFuzzer target for wsbeat's UTF-8 validator (src/utf8.c): it must agree
 * with a plain decoder written the way the rules read (the rules of Lua
 * 5.4's strict utf8.len), one code point at a time, with no fast path.
 */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "../src/wsbeat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Decode one sequence at p; returns its length, or 0 when it is invalid. */
static size_t decode_one(const uint8_t *p, size_t left)
{
	static const uint32_t min_for_len[5] = { 0, 0, 0x80, 0x800, 0x10000 };
	uint32_t cp;
	size_t len;

	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xE0) == 0xC0) {
		len = 2;
		cp = p[0] & 0x1F;
	} else if ((p[0] & 0xF0) == 0xE0) {
		len = 3;
		cp = p[0] & 0x0F;
	} else if ((p[0] & 0xF8) == 0xF0) {
		len = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (left < len)
		return 0;
	for (size_t k = 1; k < len; k++) {
		if ((p[k] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[k] & 0x3F);
	}
	if (cp < min_for_len[len] || cp > 0x10FFFF ||
	    (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return len;
}

static int reference(const uint8_t *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		size_t len = decode_one(s + i, n - i);

		if (!len)
			return 0;
		i += len;
	}
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int ok = wsb_utf8_valid(data, size);

	assert(ok == reference(data, size));
	/* every split of a valid text is valid on both sides, or not, alike */
	if (size > 1) {
		size_t cut = data[0] % size;

		assert(wsb_utf8_valid(data, cut) == reference(data, cut));
		assert(wsb_utf8_valid(data + cut, size - cut) ==
		       reference(data + cut, size - cut));
	}
	return 0;
}
