/*
 * Strict UTF-8 validation for text messages, the same rules as Lua 5.4's
 * utf8.len() without "lax": no overlong forms, no surrogates, nothing above
 * U+10FFFF.  In C with an ASCII fast path because send() checks every text
 * message: calling utf8.len through the Lua API cost more than writing a
 * 32-byte message, and decoded 4 KiB one character at a time.
 */
#include <stdint.h>
#include <string.h>

#include "wsbeat.h"

static int cont(unsigned char c)
{
	return (c & 0xC0) == 0x80;
}

int wsb_utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned char c = s[i];

		if (c < 0x80) {
			uint64_t v;

			/* eight ASCII bytes at a time */
			while (i + 8 <= n) {
				memcpy(&v, s + i, 8);
				if (v & UINT64_C(0x8080808080808080))
					break;
				i += 8;
			}
			while (i < n && s[i] < 0x80)
				i++;
			continue;
		}
		if (c < 0xC2) /* a stray continuation, or an overlong pair */
			return 0;
		if (c < 0xE0) {
			if (n - i < 2 || !cont(s[i + 1]))
				return 0;
			i += 2;
		} else if (c < 0xF0) {
			if (n - i < 3 || !cont(s[i + 1]) || !cont(s[i + 2]))
				return 0;
			if (c == 0xE0 && s[i + 1] < 0xA0) /* overlong */
				return 0;
			if (c == 0xED && s[i + 1] >= 0xA0) /* surrogate */
				return 0;
			i += 3;
		} else if (c < 0xF5) {
			if (n - i < 4 || !cont(s[i + 1]) || !cont(s[i + 2]) ||
			    !cont(s[i + 3]))
				return 0;
			if (c == 0xF0 && s[i + 1] < 0x90) /* overlong */
				return 0;
			if (c == 0xF4 && s[i + 1] >= 0x90) /* above U+10FFFF */
				return 0;
			i += 4;
		} else {
			return 0;
		}
	}
	return 1;
}
