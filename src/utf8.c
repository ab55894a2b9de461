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
#include "wsread.h" /* wsb_utf8_step */

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

/*
 * The same rules for text that arrives in pieces (wsrx.c: fragments, a
 * frame's payload split across reads, inflated output), failing at the first byte that no
 * valid text can have there, so a bad message is refused before the rest
 * of it is read.  The state is what the next byte must be: 0 at a
 * character boundary, else the continuation bytes still owed (bits 16 and
 * up) and the range the next one must fall in (lowest byte in bits 8-15,
 * highest in 0-7), which is narrower than 0x80-0xBF only right after a
 * lead byte that allows overlong forms, surrogates or code points above
 * U+10FFFF.  (wsb_utf8_valid over one piece would be this function, but
 * decoding a whole sequence at once is 1.4x faster on non-ASCII text, and
 * send() checks every text message with it.)
 */
#define UTF8_DEAD UINT32_MAX

static uint32_t utf8_lead(unsigned char c)
{
	if (c < 0xC2) /* a stray continuation, or an overlong pair */
		return 0;
	if (c < 0xE0)
		return 1u << 16 | 0x80BF;
	if (c < 0xF0) /* E0: no overlong form; ED: no surrogate */
		return 2u << 16 |
		       (c == 0xE0 ? 0xA0BF : c == 0xED ? 0x809F : 0x80BF);
	if (c < 0xF5) /* F0: no overlong form; F4: nothing above U+10FFFF */
		return 3u << 16 |
		       (c == 0xF0 ? 0x90BF : c == 0xF4 ? 0x808F : 0x80BF);
	return 0;
}

int wsb_utf8_step(uint32_t *state, const unsigned char *s, size_t n)
{
	uint32_t st = *state;
	size_t i = 0;

	if (st == UTF8_DEAD)
		return -1;
	while (i < n) {
		unsigned char c = s[i];

		if (st) {
			uint32_t owed = (st >> 16) - 1;

			if (c < (st >> 8 & 0xff) || c > (st & 0xff))
				goto bad;
			st = owed ? owed << 16 | 0x80BF : 0;
			i++;
		} else if (c < 0x80) {
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
		} else {
			st = utf8_lead(c);
			if (!st)
				goto bad;
			i++;
		}
	}
	*state = st;
	return 0;
bad:
	/* it sticks: no later byte can make the text valid again */
	*state = UTF8_DEAD;
	return -1;
}
