/* Monotonic clock. Any thread. */
#ifndef TN_CLOCK_H
#define TN_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Milliseconds and microseconds since an arbitrary fixed point (CLOCK_MONOTONIC). */
int64_t tn_now_ms(void);
int64_t tn_now_us(void);

/* Milliseconds since the Unix epoch (wall clock; for display and uptime only). */
int64_t tn_wall_ms(void);

/* Sets *ts to ms milliseconds from now on clock `clock` (an absolute time for
 * pthread_cond_timedwait on a condition variable of that clock). */
void tn_timespec_after(struct timespec *ts, clockid_t clock, int64_t ms);

#endif
