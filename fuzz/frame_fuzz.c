/*
 * libFuzzer target for the frames wsbeat writes (src/frame.c): the header
 * must read back, by RFC 6455 5.2's rules, as a frame (masked for a client,
 * unmasked for a server) of the given first byte and length in its
 * shortest form, and the word-at-a-time mask
 * must equal the byte-at-a-time XOR of the RFC (5.3), out of place and in
 * place, at every alignment; and the builder must put them together.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/wsbeat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_header(unsigned first, uint64_t len, int masked)
{
	unsigned char h[10];
	size_t n = wsb_frame_header(h, first, len, masked), want;
	uint64_t got = 0;

	assert(h[0] == (first & 0xff));
	assert(!(h[1] & 0x80) == !masked); /* a client's frames are masked */
	switch (h[1] & 0x7f) {
	case 126:
		want = 4;
		got = (uint64_t)h[2] << 8 | h[3];
		assert(got >= 126); /* shortest form */
		break;
	case 127:
		want = 10;
		assert(!(h[2] & 0x80)); /* the most significant bit is 0 */
		for (int i = 0; i < 8; i++)
			got = got << 8 | h[2 + i];
		assert(got >= 65536);
		break;
	default:
		want = 2;
		got = h[1] & 0x7f;
	}
	assert(n == want);
	assert(got == len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char key[4];
	uint64_t len = 0;
	unsigned char *out, *in;
	size_t off, n;

	if (size < 14)
		return 0;
	memcpy(key, data, 4);
	for (int i = 0; i < 8; i++)
		len = len << 8 | data[4 + i];
	check_header(data[12], len >> (data[13] % 64) & 0x7fffffffffffffffULL,
		     data[13] & 0x40);
	check_header(data[12], size, 1);
	check_header(data[12], size, 0);
	off = data[13] % 8; /* alignment of the payload */
	data += 14;
	size -= 14;

	out = malloc(size + 8);
	in = malloc(size + 8);
	assert(out && in);
	wsb_mask(out + off, data, size, key);
	for (n = 0; n < size; n++)
		assert(out[off + n] == (data[n] ^ key[n % 4]));
	memcpy(in + off, data, size);
	wsb_mask(in + off, in + off, size, key);
	assert(!memcmp(in + off, out + off, size));
	free(out);
	free(in);

	/* the builder: header, key, then the masked payload, contiguous,
	 * from a payload masked in place behind the headroom it needs */
	{
		size_t hl = wsb_frame_head_len(size, 1);
		unsigned char h[10], *buf = malloc(hl + size + 1), *f;

		assert(buf);
		memcpy(buf + hl, data, size);
		f = wsb_frame_build(buf + hl, 0x82, buf + hl, size, key);
		assert(f == buf);
		n = wsb_frame_header(h, f[0], size, 1);
		assert(hl == n + 4 && !memcmp(f, h, n) && !memcmp(f + n, key, 4));
		for (size_t i = 0; i < size; i++)
			assert(f[hl + i] == (data[i] ^ key[i % 4]));
		free(buf);
	}
	/* a server's frame: no key, the payload as it is, copied in */
	{
		size_t hl = wsb_frame_head_len(size, 0);
		unsigned char h[10], *buf = malloc(hl + size + 1), *f;

		assert(buf);
		f = wsb_frame_build(buf + hl, 0x81, data, size, NULL);
		assert(f == buf);
		n = wsb_frame_header(h, f[0], size, 0);
		assert(hl == n && !memcmp(f, h, n) && !(f[1] & 0x80));
		assert(!size || !memcmp(f + hl, data, size));
		free(buf);
	}
	return 0;
}
