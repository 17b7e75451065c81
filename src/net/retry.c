/*
 * The retry policy (include/pd_retry.h): verdict x the request's history x Retry-After -> one
 * decision. Nothing is dropped by default: a transient failure is retried with capped
 * exponential backoff and full jitter (pd_backoff) until max_retry_time, if set, runs out. A
 * request sent whole without an answer may have started a flow run, so such retries are marked
 * ambiguous and bounded by max_ambiguous_retries.
 */
#include "pd_retry.h"

#include "pd_api.h"
#include "pd_backoff.h"
#include "pd_config.h"
#include "pd_error.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

const char *pd_retry_action_name(enum pd_retry_action a)
{
    switch (a) {
    case PD_RETRY_DONE_OK:
        return "done-ok";
    case PD_RETRY_AFTER:
        return "retry-after";
    case PD_RETRY_RELOGIN:
        return "relogin";
    case PD_RETRY_RESPLIT:
        return "resplit";
    case PD_RETRY_REJECT:
        return "reject";
    case PD_RETRY_GIVE_UP:
        return "give-up";
    case PD_RETRY_FATAL:
        return "fatal";
    }
    return "unknown";
}

static void end(struct pd_retry_decision *out, enum pd_retry_action action, int err,
                const char *message)
{
    out->action = action;
    out->err = err;
    out->message = err ? message : NULL;
}

/* "hh:mm:ss.mmmZ, ..." for the ambiguous attempts, this one (NOW) included. */
static void ambiguous_times(const struct pd_retry_input *in, char *when, size_t len)
{
    size_t n = 0, earlier = in->ambiguous, k;
    uint64_t at[PD_RETRY_AMBIGUOUS_TIMES];

    if (earlier > PD_RETRY_AMBIGUOUS_TIMES)
        earlier = PD_RETRY_AMBIGUOUS_TIMES;
    for (k = 0; k < earlier; k++)
        at[k] = in->ambiguous_at[k];
    if (k < PD_RETRY_AMBIGUOUS_TIMES)
        at[k++] = in->now_wall_ms;
    when[0] = '\0';
    for (size_t i = 0; i < k && n < len - 40; i++) {
        time_t t = (time_t)(at[i] / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        n += (size_t)snprintf(when + n, len - n, "%s%02d:%02d:%02d.%03dZ", i ? ", " : "",
                              tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(at[i] % 1000));
    }
}

/* A transient failure: wait and send again, unless a limit says this was the last try. */
static void decide_retry(const struct pd_patchworks *pw, const struct pd_retry_input *in,
                         struct pd_retry_decision *out)
{
    const struct pd_api_result *api = in->api;
    const char *why = api->message ? api->message : "no answer";
    uint64_t hinted;

    out->retryable = true;
    if (in->retry_after && pd_backoff_retry_after(in->retry_after, in->now_wall_ms, &hinted) == 0) {
        out->delay_ms = hinted;
        out->retry_after = true;
    } else {
        out->delay_ms =
            pd_backoff_delay(pw->retry_base_ms, pw->retry_cap_ms, in->retries, in->clock);
    }
    /* Slow-down answers are about the account, not this request: everybody waits. */
    out->pause_account = api->status == 429 || api->status == 503;
    /* Sent whole, no answer: the server may have started a flow run. Every such retry is told
     * (never folded), counted, and bounded. */
    out->ambiguous = !api->status && in->body_sent && !in->login;
    if (out->ambiguous && pw->max_ambiguous && in->ambiguous + 1 > pw->max_ambiguous) {
        char when[400];
        ambiguous_times(in, when, sizeof(when));
        snprintf(out->words, sizeof(out->words),
                 "sent whole %u times without an answer (%s: at %s, UTC), so each may have "
                 "started a flow run; not sent again (max_ambiguous_retries = %llu): check "
                 "the flow runs in Patchworks around those times",
                 in->ambiguous + 1, why, when, (unsigned long long)pw->max_ambiguous);
        end(out, PD_RETRY_GIVE_UP, PD_EAMBIGUOUS, out->words);
        return;
    }
    if (pw->max_retry_time_ms && in->elapsed_ms + out->delay_ms > pw->max_retry_time_ms) {
        snprintf(out->words, sizeof(out->words),
                 "gave up after %u attempts in %llu s (max_retry_time): %s", in->attempts,
                 (unsigned long long)(in->elapsed_ms / 1000), why);
        end(out, PD_RETRY_GIVE_UP, PD_ELIMIT, out->words);
        return;
    }
    end(out, PD_RETRY_AFTER, 0, NULL);
}

void pd_retry_decide(const struct pd_patchworks *pw, const struct pd_retry_input *in,
                     struct pd_retry_decision *out)
{
    const struct pd_api_result *api = in->api;

    memset(out, 0, sizeof(*out));
    switch (api->verdict) {
    case PD_API_OK:
        end(out, PD_RETRY_DONE_OK, 0, NULL);
        break;
    case PD_API_REJECT:
        end(out, PD_RETRY_REJECT, PD_EREJECTED, api->message);
        break;
    case PD_API_RESPLIT:
        end(out, PD_RETRY_RESPLIT, PD_ETOOBIG, api->message);
        break;
    case PD_API_FATAL:
        end(out, PD_RETRY_FATAL, PD_ECONFIG, in->curl_error ? in->curl_error : api->message);
        break;
    case PD_API_REAUTH:
        /* The login's own 401: pd_auth turns it into a configuration error. */
        if (in->login)
            end(out, PD_RETRY_REJECT, PD_EAUTH, api->message);
        else
            end(out, PD_RETRY_RELOGIN, 0, NULL);
        break;
    case PD_API_RETRY:
        decide_retry(pw, in, out);
        break;
    }
}

bool pd_retry_relogin_wait(const struct pd_patchworks *pw, unsigned suspect,
                           const struct pd_clock *clock, uint64_t *delay_ms)
{
    *delay_ms = 0;
    if (suspect == 0)
        return false;
    /* Fresh tokens refused at once: log in again, but no faster than backoff allows. */
    *delay_ms = pd_backoff_delay(pw->retry_base_ms, pw->retry_cap_ms, suspect - 1, clock);
    return true;
}
