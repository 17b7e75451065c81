/*
 * How long to wait before trying a request again: capped exponential backoff with full jitter
 * (a uniformly random delay between 0 and min(cap, base * 2^attempt)), and the server's
 * Retry-After header when it sends one. Pure: the random source and "now" are passed in.
 */
#ifndef PD_BACKOFF_H
#define PD_BACKOFF_H

#include <stdint.h>

struct pd_clock;

/* Upper bound of the delay before retry number ATTEMPT (0 for the first retry). */
uint64_t pd_backoff_ceiling(uint64_t base_ms, uint64_t cap_ms, unsigned attempt);

/* A delay drawn uniformly from [0, pd_backoff_ceiling(...)] with CLOCK's random source. */
uint64_t pd_backoff_delay(uint64_t base_ms, uint64_t cap_ms, unsigned attempt,
                          const struct pd_clock *clock);

/*
 * Parses a Retry-After value: delta seconds ("120") or an HTTP date ("Wed, 21 Oct 2015 07:28:00
 * GMT", read with curl_getdate). NOW_WALL_MS is the current time since the epoch. A date in the
 * past gives 0. Returns 0 and *delay_ms, or PD_EPARSE when the value is neither.
 */
int pd_backoff_retry_after(const char *value, uint64_t now_wall_ms, uint64_t *delay_ms);

#endif
