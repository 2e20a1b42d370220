/* The fuzzer's seed corpus (proto/fuzz_corpus/) is the sample messages as the encoder
 * writes them. This test checks each checked-in seed against the encoder byte for byte,
 * which also pins the wire format: a change that alters the bytes fails here until the
 * seeds are regenerated on purpose, with
 *   TN_PROTO_WRITE_CORPUS=1 ./proto_corpus_test */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "buf.h"
#include "proto_testutil.h"
#include "tn_test.h"

#ifndef TN_PROTO_CORPUS_DIR
#error "TN_PROTO_CORPUS_DIR must name proto/fuzz_corpus"
#endif

/* Reads the whole file at path into b; false when it cannot be read. */
static bool
read_file(struct tn_buf *b, const char *path)
{
	char chunk[4096];
	size_t n;
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return false;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		tn_buf_append(b, chunk, n);
	bool ok = !ferror(f);
	fclose(f);
	return ok;
}

static bool
write_file(const char *path, const struct tn_buf *b)
{
	FILE *f = fopen(path, "wb");
	if (f == NULL)
		return false;
	bool ok = fwrite(b->data, 1, b->len, f) == b->len;
	return fclose(f) == 0 && ok;
}

TN_TEST(test_seed_corpus)
{
	const char *write = getenv("TN_PROTO_WRITE_CORPUS");
	struct tn_buf want, got;
	char path[512];
	tn_buf_init(&want);
	tn_buf_init(&got);
	for (int s = 0; s < TN_SAMPLE_COUNT; s++) {
		tn_buf_reset(&want);
		tn_buf_reset(&got);
		enum tn_kind kind = tn_test_sample(&want, s);
		TN_CHECK_OK(tn_test_check(kind, want.data, want.len, NULL));
		snprintf(path, sizeof(path), "%s/%s.bin", TN_PROTO_CORPUS_DIR, tn_sample_names[s]);
		if (write != NULL && write[0] == '1') {
			TN_CHECK(write_file(path, &want));
			fprintf(stderr, "wrote %s (%zu bytes)\n", path, want.len);
		}
		if (!read_file(&got, path))
			fprintf(stderr, "%s: %s\n", path, strerror(errno));
		TN_CHECK_MEM(got.data, got.len, want.data, want.len);
	}
	tn_buf_fini(&want);
	tn_buf_fini(&got);
}

TN_TEST_MAIN(TN_CASE(test_seed_corpus))
