#include <string.h>

#include "edge_internal.h"

static bool
is_host_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '-' || c == '_';
}

static bool
is_ipv6_char(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
	       c == ':' || c == '.';
}

/* ":digits" or nothing. */
static bool
is_port_suffix(const char *p, size_t len)
{
	if (len == 0)
		return true;
	if (p[0] != ':' || len < 2 || len > 6)
		return false;
	for (size_t i = 1; i < len; i++)
		if (p[i] < '0' || p[i] > '9')
			return false;
	return true;
}

bool
edge_host_parse(char *out, size_t cap, const char *value, size_t len)
{
	out[0] = '\0';
	while (len > 0 && (value[0] == ' ' || value[0] == '\t')) {
		value++;
		len--;
	}
	while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\t'))
		len--;
	size_t host_len;
	if (len > 0 && value[0] == '[') {
		const char *close = memchr(value, ']', len);
		if (close == NULL || close == value + 1)
			return false;
		host_len = (size_t)(close - value) + 1;
		for (size_t i = 1; i + 1 < host_len; i++)
			if (!is_ipv6_char((unsigned char)value[i]))
				return false;
	} else {
		host_len = 0;
		while (host_len < len && is_host_char((unsigned char)value[host_len]))
			host_len++;
	}
	if (host_len == 0 || host_len >= cap || host_len > 253 ||
	        !is_port_suffix(value + host_len, len - host_len))
		return false;
	memcpy(out, value, host_len);
	out[host_len] = '\0';
	return true;
}

/* The code point of a valid 4-byte sequence at p (n bytes left), or 0. */
static uint32_t
utf8_4byte(const unsigned char *p, size_t n)
{
	if (n < 4 || p[0] < 0xf0 || p[0] > 0xf4)
		return 0;
	for (int i = 1; i < 4; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	uint32_t cp = ((uint32_t)(p[0] & 0x07) << 18) | ((uint32_t)(p[1] & 0x3f) << 12) |
	              ((uint32_t)(p[2] & 0x3f) << 6) | (uint32_t)(p[3] & 0x3f);
	return cp >= 0x10000 && cp <= 0x10ffff ? cp : 0;
}

/* Appends \uXXXX (lower-case hex). */
static void
put_u16_escape(struct tn_buf *out, uint32_t unit)
{
	static const char hex[] = "0123456789abcdef";
	char esc[6] = {'\\', 'u', hex[(unit >> 12) & 15], hex[(unit >> 8) & 15],
	        hex[(unit >> 4) & 15], hex[unit & 15]};
	tn_buf_append(out, esc, sizeof(esc));
}

bool
edge_utf8_escape(struct tn_buf *out, const char *json, size_t len)
{
	const unsigned char *p = (const unsigned char *)json;
	/* The common case: nothing to do, found by a scan for lead bytes. */
	size_t i = 0;
	while (i < len && !(p[i] >= 0xf0 && utf8_4byte(p + i, len - i)))
		i++;
	if (i == len)
		return false;
	size_t done = 0;
	for (; i < len; i++) {
		uint32_t cp = p[i] >= 0xf0 ? utf8_4byte(p + i, len - i) : 0;
		if (cp == 0)
			continue;
		tn_buf_append(out, p + done, i - done);
		cp -= 0x10000;
		put_u16_escape(out, 0xd800u + (cp >> 10));
		put_u16_escape(out, 0xdc00u + (cp & 0x3ffu));
		i += 3;
		done = i + 1;
	}
	tn_buf_append(out, p + done, len - done);
	return true;
}
