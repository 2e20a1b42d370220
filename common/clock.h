/* Monotonic clock. Any thread. */
#ifndef TN_CLOCK_H
#define TN_CLOCK_H

#include <stdint.h>

/* Milliseconds and microseconds since an arbitrary fixed point (CLOCK_MONOTONIC). */
int64_t tn_now_ms(void);
int64_t tn_now_us(void);

/* Milliseconds since the Unix epoch (wall clock; for display and uptime only). */
int64_t tn_wall_ms(void);

#endif
