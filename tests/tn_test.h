/* A tiny unit-test header: TN_TEST(name) { ... } functions, registered in a table and run
 * by TN_TEST_MAIN(). Checks print the file, line and expression, count the failure and
 * return from the test. Exit status is non-zero when any check failed. */
#ifndef TN_TEST_H
#define TN_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tn_test_case {
	const char *name;
	void (*fn)(void);
};

extern int tn_test_failures_;

#define TN_TEST(name) static void name(void)

#define TN_CHECK(cond)                                                                \
	do {                                                                              \
		if (!(cond)) {                                                                \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			tn_test_failures_++;                                                      \
			return;                                                                   \
		}                                                                             \
	} while (0)

#define TN_CHECK_INT(a, op, b)                                                       \
	do {                                                                             \
		long long a_ = (long long)(a), b_ = (long long)(b);                          \
		if (!(a_ op b_)) {                                                           \
			fprintf(stderr, "%s:%d: check failed: %s %s %s (%lld vs %lld)\n",        \
				__FILE__, __LINE__, #a, #op, #b, a_, b_);                            \
			tn_test_failures_++;                                                     \
			return;                                                                  \
		}                                                                            \
	} while (0)

#define TN_CHECK_OK(expr) TN_CHECK_INT((expr), ==, 0)

#define TN_CHECK_STR(a, b)                                                           \
	do {                                                                             \
		const char *a_ = (a), *b_ = (b);                                             \
		if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0) {                       \
			fprintf(stderr, "%s:%d: check failed: %s == %s (\"%s\" vs \"%s\")\n",    \
				__FILE__, __LINE__, #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); \
			tn_test_failures_++;                                                     \
			return;                                                                  \
		}                                                                            \
	} while (0)

#define TN_CHECK_MEM(a, alen, b, blen)                                                \
	do {                                                                              \
		size_t al_ = (size_t)(alen), bl_ = (size_t)(blen);                            \
		if (al_ != bl_ || memcmp((a), (b), al_) != 0) {                               \
			fprintf(stderr, "%s:%d: check failed: bytes of %s (%zu) != %s (%zu)\n",   \
				__FILE__, __LINE__, #a, al_, #b, bl_);                                \
			tn_test_failures_++;                                                      \
			return;                                                                   \
		}                                                                             \
	} while (0)

#define TN_TEST_MAIN(...)                                                            \
	int tn_test_failures_ = 0;                                                       \
	int main(int argc, char **argv)                                                  \
	{                                                                                \
		static const struct tn_test_case cases[] = {__VA_ARGS__};                    \
		int ran = 0;                                                                 \
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {             \
			if (argc > 1 && strcmp(argv[1], cases[i].name) != 0)                     \
				continue;                                                            \
			int before = tn_test_failures_;                                          \
			cases[i].fn();                                                           \
			ran++;                                                                   \
			fprintf(stderr, "%s %s\n", tn_test_failures_ == before ? "ok  " : "FAIL", \
				cases[i].name);                                                      \
		}                                                                            \
		if (ran == 0) {                                                              \
			fprintf(stderr, "no test ran\n");                                        \
			return 2;                                                                \
		}                                                                            \
		return tn_test_failures_ ? 1 : 0;                                            \
	}

#define TN_CASE(fn) {#fn, fn}

/* Decodes a hex string with optional spaces ("04 00 00 1c ...") into out; returns the
 * length. Aborts on bad hex (a test-author mistake). */
static inline size_t
tn_test_hex(const char *hex, unsigned char *out, size_t cap)
{
	size_t n = 0;
	while (*hex) {
		if (*hex == ' ' || *hex == '\n') {
			hex++;
			continue;
		}
		unsigned v;
		if (sscanf(hex, "%2x", &v) != 1 || n >= cap)
			abort();
		out[n++] = (unsigned char)v;
		hex += 2;
	}
	return n;
}

#endif
