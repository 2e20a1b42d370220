#include "err.h"

#include <errno.h>
#include <nng/nng.h>

static const char *const messages[TN_ERR_COUNT_] = {
	[TN_OK] = "success",
	[TN_ENOMEM] = "out of memory",
	[TN_EINVAL] = "invalid argument",
	[TN_EPROTO] = "protocol error",
	[TN_ETOOBIG] = "too large",
	[TN_ETRUNC] = "truncated input",
	[TN_ETIMEDOUT] = "timed out",
	[TN_EBUSY] = "too many requests in flight",
	[TN_ECLOSED] = "closed",
	[TN_ENOENT] = "not found",
	[TN_EEXIST] = "already exists",
	[TN_EIO] = "i/o error",
	[TN_EVERSION] = "unsupported protocol version",
	[TN_EKIND] = "unknown message kind",
	[TN_ECONFIG] = "bad configuration",
	[TN_EADDR] = "address in use or unavailable",
	[TN_EMOVED] = "room moved to another server",
	[TN_ERECOVERING] = "room is recovering",
	[TN_EUNREACH] = "server unreachable",
};

const char *
tn_strerror(int err)
{
	if (err < 0 || err >= TN_ERR_COUNT_ || messages[err] == NULL)
		return "unknown error";
	return messages[err];
}

int
tn_err_from_nng(int rv)
{
	switch (rv) {
	case 0: return TN_OK;
	case NNG_ENOMEM: return TN_ENOMEM;
	case NNG_EINVAL: return TN_EINVAL;
	case NNG_ETIMEDOUT: return TN_ETIMEDOUT;
	case NNG_ECLOSED:
	case NNG_ECANCELED:
	case NNG_ESTATE: return TN_ECLOSED;
	case NNG_EADDRINUSE:
	case NNG_EADDRINVAL: return TN_EADDR;
	case NNG_EMSGSIZE: return TN_ETOOBIG;
	case NNG_EPROTO: return TN_EPROTO;
	case NNG_ECONNREFUSED:
	case NNG_ECONNRESET:
	case NNG_ECONNSHUT:
	case NNG_EUNREACHABLE: return TN_EUNREACH;
	case NNG_EAGAIN: return TN_EBUSY;
	default: return TN_EIO;
	}
}

int
tn_err_from_errno(int e)
{
	switch (e) {
	case 0: return TN_OK;
	case ENOMEM: return TN_ENOMEM;
	case EINVAL: return TN_EINVAL;
	case ENOENT: return TN_ENOENT;
	case EEXIST: return TN_EEXIST;
	case ETIMEDOUT: return TN_ETIMEDOUT;
	case EADDRINUSE:
	case EADDRNOTAVAIL: return TN_EADDR;
	default: return TN_EIO;
	}
}
