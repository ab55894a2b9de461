/*
 * Frames as wsbeat writes them (RFC 6455 section 5.2): the header, and for
 * a client the payload masked with the frame's key.  Pure functions, so the
 * fuzz target can hold them against a byte-at-a-time reference.
 */
#include <stdint.h>
#include <string.h>

#include "wsbeat.h"

/*
 * The header of a frame of len payload bytes, without the 4-byte key that
 * follows it when masked (a client's frames): 2, 4 or 10 bytes into h.
 * first is FIN | RSV | opcode.  Returns the length written.
 */
size_t wsb_frame_header(unsigned char *h, unsigned first, uint64_t len,
			int masked)
{
	unsigned char m = masked ? 0x80 : 0;

	h[0] = (unsigned char)first;
	if (len < 126) {
		h[1] = (unsigned char)(m | len);
		return 2;
	}
	if (len < 65536) {
		h[1] = m | 126;
		h[2] = (unsigned char)(len >> 8);
		h[3] = (unsigned char)len;
		return 4;
	}
	h[1] = m | 127;
	for (int i = 0; i < 8; i++)
		h[2 + i] = (unsigned char)(len >> (56 - 8 * i));
	return 10;
}

/*
 * dst = src XOR key, key[i % 4] on byte i; dst may be src.  Eight bytes at
 * a time (the compiler widens it further): libwebsockets masks one byte per
 * loop turn, which was visible at 1 MiB.
 */
void wsb_mask(unsigned char *dst, const unsigned char *src, size_t len,
	      const unsigned char key[4])
{
	uint32_t k32;
	uint64_t k64, v;
	size_t i = 0;

	memcpy(&k32, key, 4);
	k64 = (uint64_t)k32 << 32 | k32;
	for (; i + 8 <= len; i += 8) {
		memcpy(&v, src + i, 8);
		v ^= k64;
		memcpy(dst + i, &v, 8);
	}
	for (; i < len; i++)
		dst[i] = src[i] ^ key[i & 3];
}

/*
 * The one builder of the frames wsbeat writes, both roles': the payload
 * goes from src into payload (src may be payload itself), masked with key
 * when there is one (a client's frame) or as it is (key NULL: a server's),
 * and the header (and key) into the wsb_frame_head_len(len, key != NULL)
 * bytes right before it.  Returns the first byte of the frame, which ends
 * at payload + len.  Callers keep that headroom: LWS_PRE before a queued
 * message, room in the batch buffer, a small array for a close frame.
 */
unsigned char *wsb_frame_build(unsigned char *payload, unsigned first,
			       const unsigned char *src, size_t len,
			       const unsigned char *key)
{
	unsigned char *f = payload - wsb_frame_head_len(len, key != NULL);
	size_t hl = wsb_frame_header(f, first, len, key != NULL);

	if (key) {
		memcpy(f + hl, key, 4);
		wsb_mask(payload, src, len, key);
	} else if (src != payload && len) {
		memmove(payload, src, len);
	}
	return f;
}

/* The whole size of the frame that starts at f (header, key, payload). */
size_t wsb_frame_size(const unsigned char *f)
{
	size_t n = f[1] & 0x7f, hl = 2;

	if (n == 126) {
		n = (size_t)f[2] << 8 | f[3];
		hl = 4;
	} else if (n == 127) {
		n = 0;
		for (int i = 0; i < 8; i++)
			n = n << 8 | f[2 + i];
		hl = 10;
	}
	return hl + (f[1] & 0x80 ? 4 : 0) + n;
}
