/*
 * Time and randomness as values passed in, so that expiry, backoff and rate limits can be
 * tested without sleeping. Production code uses pd_clock_system(); tests build their own.
 */
#ifndef PD_CLOCK_H
#define PD_CLOCK_H

#include <stddef.h>
#include <stdint.h>

struct pd_clock {
    /* Milliseconds on a clock that never jumps: for timers, pacing and backoff. */
    uint64_t (*mono_ms)(void *arg);
    /* Milliseconds since the Unix epoch: for token expiry and HTTP dates. */
    uint64_t (*wall_ms)(void *arg);
    /* 32 uniformly random bits: for jitter. */
    uint32_t (*random)(void *arg);
    void *arg;
};

/* The real clocks and a random source seeded once from the kernel. Never NULL. */
const struct pd_clock *pd_clock_system(void);

/* Wall-clock MS as ISO 8601 UTC with milliseconds, "2026-11-30T08:57:23.329Z", into BUF (at
 * least 32 bytes), as receipts and logs write times. */
void pd_clock_iso(uint64_t ms, char *buf, size_t len);

#endif
