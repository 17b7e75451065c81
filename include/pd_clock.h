/*
 * Time and randomness as values passed in, so that expiry, backoff and rate limits can be
 * tested without sleeping. Production code uses pd_clock_system(); tests build their own.
 */
#ifndef PD_CLOCK_H
#define PD_CLOCK_H

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

#endif
