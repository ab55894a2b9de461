/*
 * Client frames as wsbeat writes them (RFC 6455 section 5.2): the header,
 * and the payload masked with the frame's key.  Pure functions, so the
 * fuzz target can hold them against a byte-at-a-time reference.
 */
#include <stdint.h>
#include <string.h>

#include "wsbeat.h"

/*
 * The header of a masked frame of len payload bytes, without the 4-byte
 * key that follows it: 2, 4 or 10 bytes into h.  first is FIN | RSV |
 * opcode.  Returns the length written.
 */
size_t wsb_frame_header(unsigned char *h, unsigned first, uint64_t len)
{
	h[0] = (unsigned char)first;
	if (len < 126) {
		h[1] = (unsigned char)(0x80 | len);
		return 2;
	}
	if (len < 65536) {
		h[1] = 0x80 | 126;
		h[2] = (unsigned char)(len >> 8);
		h[3] = (unsigned char)len;
		return 4;
	}
	h[1] = 0x80 | 127;
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
 * The one builder of the frames wsbeat writes: the payload is masked from
 * src into payload (src may be payload itself: masked in place), and the
 * header and key go into the wsb_frame_head_len(len) bytes right before
 * it.  Returns the first byte of the frame, which ends at payload + len.
 * Callers keep that headroom: LWS_PRE before a queued message, room in
 * the batch buffer, a small array for a close frame.
 */
unsigned char *wsb_frame_build(unsigned char *payload, unsigned first,
			       const unsigned char *src, size_t len,
			       const unsigned char key[4])
{
	unsigned char *f = payload - wsb_frame_head_len(len);
	size_t hl = wsb_frame_header(f, first, len);

	memcpy(f + hl, key, 4);
	wsb_mask(payload, src, len, key);
	return f;
}
