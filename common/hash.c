#include "hash.h"

#include <string.h>
#include <xxhash.h>
#include <zlib.h>

uint32_t
tn_hash_crc32(const void *data, size_t len)
{
	uLong c = crc32(0L, Z_NULL, 0);
	const Bytef *p = data;
	/* zlib takes uInt lengths: feed very long input in pieces. */
	while (len > 0) {
		uInt chunk = len > 0x40000000u ? 0x40000000u : (uInt)len;
		c = crc32(c, p, chunk);
		p += chunk;
		len -= chunk;
	}
	return (uint32_t)c;
}

uint32_t
tn_hash_pomelo_index(const void *key, size_t len, uint32_t n)
{
	int64_t s = (int32_t)tn_hash_crc32(key, len);
	uint64_t a = (uint64_t)(s < 0 ? -s : s);
	return (uint32_t)(a % n);
}

uint64_t
tn_hash64(const void *data, size_t len, uint64_t seed)
{
	return XXH3_64bits_withSeed(data, len, seed);
}

uint64_t
tn_hash_server_seed(const char *id)
{
	return XXH3_64bits(id, strlen(id));
}

int
tn_hash_rendezvous_seeded(const void *key, size_t key_len, const uint64_t *seeds, size_t n)
{
	int best = -1;
	uint64_t best_score = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t score = XXH3_64bits_withSeed(key, key_len, seeds[i]);
		if (best < 0 || score > best_score) {
			best = (int)i;
			best_score = score;
		}
	}
	return best;
}

int
tn_hash_rendezvous(const void *key, size_t key_len, const char *const *ids, size_t n)
{
	int best = -1;
	uint64_t best_score = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t score = XXH3_64bits_withSeed(key, key_len, tn_hash_server_seed(ids[i]));
		if (best < 0 || score > best_score) {
			best = (int)i;
			best_score = score;
		}
	}
	return best;
}
