/*
 * Retry delays: capped exponential backoff with full jitter, plus Retry-After parsing.
 * Full jitter spreads the retries of many clients that failed together (after a server restart,
 * say) over the whole window instead of letting them return in waves.
 */
#include "pd_backoff.h"

#include "pd_clock.h"
#include "pd_error.h"

#include <ctype.h>
#include <curl/curl.h>
#include <stdlib.h>

/* A server asking for more than a day is taken as asking for a day: files wait, never drop. */
#define RETRY_AFTER_MAX_MS (24ull * 3600 * 1000)

uint64_t pd_backoff_ceiling(uint64_t base_ms, uint64_t cap_ms, unsigned attempt)
{
    uint64_t ceiling = base_ms;
    if (base_ms == 0)
        return 0;
    for (unsigned i = 0; i < attempt && ceiling < cap_ms; i++) {
        if (ceiling > UINT64_MAX / 2)
            return cap_ms;
        ceiling *= 2;
    }
    return ceiling < cap_ms ? ceiling : cap_ms;
}

uint64_t pd_backoff_delay(uint64_t base_ms, uint64_t cap_ms, unsigned attempt,
                          const struct pd_clock *clock)
{
    uint64_t ceiling = pd_backoff_ceiling(base_ms, cap_ms, attempt);
    /* 53 random bits scaled onto [0, ceiling]: uniform enough and never above the ceiling. */
    uint64_t hi = clock->random(clock->arg), lo = clock->random(clock->arg);
    uint64_t r = (hi << 21) | (lo >> 11);
    return (uint64_t)((double)r / (double)((1ull << 53) - 1) * (double)ceiling);
}

int pd_backoff_retry_after(const char *value, uint64_t now_wall_ms, uint64_t *delay_ms)
{
    const char *p = value;
    if (!value)
        return PD_EPARSE;
    while (isspace((unsigned char)*p))
        p++;
    if (isdigit((unsigned char)*p)) {
        char *end;
        unsigned long long secs = strtoull(p, &end, 10);
        while (isspace((unsigned char)*end))
            end++;
        if (*end != '\0')
            return PD_EPARSE;
        *delay_ms = secs > RETRY_AFTER_MAX_MS / 1000 ? RETRY_AFTER_MAX_MS : secs * 1000;
        return 0;
    }
    time_t when = curl_getdate(p, NULL);
    if (when < 0)
        return PD_EPARSE;
    uint64_t when_ms = (uint64_t)when * 1000;
    *delay_ms = when_ms > now_wall_ms ? when_ms - now_wall_ms : 0;
    if (*delay_ms > RETRY_AFTER_MAX_MS)
        *delay_ms = RETRY_AFTER_MAX_MS;
    return 0;
}
