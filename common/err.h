/* The project's error codes. 0 is success; every failing function returns one of these. */
#ifndef TN_ERR_H
#define TN_ERR_H

enum tn_err {
	TN_OK = 0,
	TN_ENOMEM = 1,    /* allocation failed (normally aborts instead) */
	TN_EINVAL = 2,    /* invalid argument or value */
	TN_EPROTO = 3,    /* malformed input from a peer or client */
	TN_ETOOBIG = 4,   /* input over a size limit */
	TN_ETRUNC = 5,    /* input ends before the structure does */
	TN_ETIMEDOUT = 6, /* a deadline passed */
	TN_EBUSY = 7,     /* a bound on work in flight was reached */
	TN_ECLOSED = 8,   /* the object was closed or is stopping */
	TN_ENOENT = 9,    /* no such entry (server id, route, user, ...) */
	TN_EEXIST = 10,   /* the entry already exists */
	TN_EIO = 11,      /* a system or transport error */
	TN_EVERSION = 12, /* unsupported protocol version */
	TN_EKIND = 13,    /* unknown message kind */
	TN_ECONFIG = 14,  /* bad configuration */
	TN_EADDR = 15,    /* address in use or not available */
	TN_EMOVED = 16,   /* the room is owned by another server (retryable) */
	TN_ERECOVERING = 17, /* the room is being rebuilt (retryable) */
	TN_EUNREACH = 18, /* the target server is not connected */
	TN_ERR_COUNT_ = 19,
};

/* Returns a static, human-readable description of err. Any thread. */
const char *tn_strerror(int err);

/* Converts an nng error code to the project's code. Any thread. */
int tn_err_from_nng(int nng_rv);

/* Converts an errno value to the project's code. Any thread. */
int tn_err_from_errno(int e);

#endif
