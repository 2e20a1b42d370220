/* Hashing for routing. Any thread. */
#ifndef TN_HASH_H
#define TN_HASH_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32 (IEEE, as zlib and the npm "crc" package compute it) of len bytes. */
uint32_t tn_hash_crc32(const void *data, size_t len);

/* pomelo's dispatcher: Math.abs(crc.crc32(key)) % n, where the crc package of the
 * chatofpomelo era returns the CRC as a signed 32-bit number. n must be > 0. */
uint32_t tn_hash_pomelo_index(const void *key, size_t len, uint32_t n);

/* A fast 64-bit hash (XXH3) with a seed. */
uint64_t tn_hash64(const void *data, size_t len, uint64_t seed);

/* Rendezvous (highest random weight) selection: returns the index in ids[0..n) of the
 * server with the highest score hash64(key, seed=hash64(id)); -1 when n == 0. Adding a
 * server moves only the keys that it now wins (about 1/(n+1) of them). Ties, which need
 * a 64-bit collision, go to the lower index. */
int tn_hash_rendezvous(const void *key, size_t key_len, const char *const *ids, size_t n);

/* The per-server seed used by tn_hash_rendezvous, for callers that cache it. */
uint64_t tn_hash_server_seed(const char *id);

/* Like tn_hash_rendezvous with precomputed server seeds. */
int tn_hash_rendezvous_seeded(const void *key, size_t key_len, const uint64_t *seeds, size_t n);

#endif
