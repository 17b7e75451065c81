/* The system's clocks and a small PRNG for jitter, behind the injectable pd_clock interface. */
#include "pd_clock.h"

#include <stdio.h>
#include <sys/random.h>
#include <time.h>

static uint64_t system_mono_ms(void *arg)
{
    struct timespec ts;
    (void)arg;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t system_wall_ms(void *arg)
{
    struct timespec ts;
    (void)arg;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/*
 * xorshift64*: jitter needs spread, not secrecy. Seeded once from getrandom() (falling back to
 * the clocks) so that several instances started together do not retry in lockstep.
 */
static uint64_t prng_state;

static uint32_t system_random(void *arg)
{
    (void)arg;
    if (prng_state == 0) {
        uint64_t seed = 0;
        if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed))
            seed = system_wall_ms(NULL) ^ (system_mono_ms(NULL) << 20);
        prng_state = seed ? seed : 0x9E3779B97F4A7C15ull;
    }
    prng_state ^= prng_state >> 12;
    prng_state ^= prng_state << 25;
    prng_state ^= prng_state >> 27;
    return (uint32_t)((prng_state * 0x2545F4914F6CDD1Dull) >> 32);
}

static const struct pd_clock system_clock = {
    .mono_ms = system_mono_ms,
    .wall_ms = system_wall_ms,
    .random = system_random,
    .arg = NULL,
};

const struct pd_clock *pd_clock_system(void)
{
    return &system_clock;
}

void pd_clock_iso(uint64_t ms, char *buf, size_t len)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}
