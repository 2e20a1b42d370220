/* libFuzzer harness: decodes arbitrary bytes as every message kind, that is every kind of
 * tn_test_kinds (proto_testutil.h), each through its tn_test_check case. Beyond "no crash,
 * no out-of-bounds read" (AddressSanitizer, UBSan), tn_test_check reads every byte of every
 * decoded view and, when a decode succeeds, re-encodes and re-decodes the message and
 * aborts if anything changed. Built with -DTERN_FUZZ=ON (clang); seeds in fuzz_corpus/. */
#include <stddef.h>
#include <stdint.h>

#include "proto_testutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Tight limits as well as the defaults, so the limit checks get exercised. */
	static const struct tn_proto_limits tight = {256, 8, 32, 4, 4};
	enum tn_kind kind = TN_KIND_REPLY;
	int peek = tn_proto_peek(&kind, data, size);
	if (peek == TN_OK && !tn_kind_is_known(kind))
		tn_test_fail("peek accepted an unknown kind");
	for (size_t i = 0; i < TN_TEST_N_KINDS; i++) {
		int rv = tn_test_check(tn_test_kinds[i], data, size, NULL);
		if (rv == TN_OK && (peek != TN_OK || kind != tn_test_kinds[i]))
			tn_test_fail("a message decoded as a kind peek did not report");
		tn_test_check(tn_test_kinds[i], data, size, &tight);
	}
	return 0;
}
