/*
 * What patchdrop has done, for people and for Prometheus: counters of files and requests, gauges
 * of what waits, and a health verdict, served as Prometheus text at /metrics and as 200/503 at
 * /healthz by libmicrohttpd on its own thread (`[metrics] listen`).
 *
 * Events arrive from the loop thread through small calls (pd_metrics_file_event and friends);
 * the HTTP thread reads them under one mutex, so every call here is safe from any thread, and
 * every call accepts a NULL pd_metrics as "metrics off". The loop proves it is alive by calling
 * pd_metrics_heartbeat() from a timer; /healthz says 503 when that stops, or when a request has
 * been failing (and retrying) for longer than unhealthy_after.
 *
 * Never put a secret in a label: the only labels are watch names, HTTP statuses and flow run
 * outcomes.
 */
#ifndef PD_METRICS_H
#define PD_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pd_clock;
struct pd_metrics;

enum pd_metrics_file {
    PD_METRICS_DISCOVERED, /* a new name appeared in a drop folder */
    PD_METRICS_CLAIMED,    /* moved into work/ to be delivered */
    PD_METRICS_DELIVERED,  /* every chunk acknowledged; archived with a receipt */
    PD_METRICS_DUPLICATE,  /* archived as a duplicate, not sent */
    PD_METRICS_REJECTED,   /* moved to the failed folder */
    PD_METRICS_FILE_EVENTS
};

enum pd_metrics_counter {
    PD_METRICS_RETRIES, /* answers that will be retried (5xx, 429, network, timeout) */
    PD_METRICS_LOGINS,  /* login requests */
    PD_METRICS_REAUTHS, /* 401 answers to data requests */
    PD_METRICS_AMBIGUOUS, /* retries of requests sent whole without an answer */
    PD_METRICS_POLLS,     /* polls of flow runs started (retries included) */
    PD_METRICS_POLLS_DEFERRED, /* polls held back by follow_share (each poll once) */
    PD_METRICS_CLUSTER_FALLBACKS, /* [cluster]: Redis went away, the local share took over */
    PD_METRICS_CLUSTER_REJOINS,   /* [cluster]: back to Redis's shared rate */
    PD_METRICS_COUNTERS
};

struct pd_metrics_opts {
    uint64_t unhealthy_after_ms;  /* failing this long: /healthz 503 (0: 10 minutes) */
    uint64_t stall_ms;            /* no heartbeat this long: 503 (0: 15 s) */
    const struct pd_clock *clock; /* NULL: the system clock */
};

/* What the loop sees now, handed over once a second (see pd_daemon_sample). */
struct pd_metrics_watch_sample {
    const char *watch;
    uint64_t files_pending;   /* seen or claimed, not yet delivered or rejected */
    uint64_t oldest_since_ms; /* monotonic time the oldest of them was seen; 0: none */
};

struct pd_metrics_sample {
    uint64_t requests_waiting;   /* for a token, a slot or a retry */
    uint64_t requests_in_flight; /* sent, no answer yet */
    uint64_t failing_since_ms;   /* monotonic time the oldest retrying request first failed; 0 */
    long last_failure_status;    /* its last answer's HTTP status, 0: no answer */
    uint64_t runs_followed;      /* flow runs being followed to their final status */
    const struct pd_metrics_watch_sample *watches;
    size_t nwatches;
};

/* Totals over every watch, for progress displays. */
struct pd_metrics_totals {
    uint64_t files[PD_METRICS_FILE_EVENTS];
    uint64_t claimed_bytes;   /* sizes of the files claimed */
    uint64_t finished_bytes;  /* sizes of the files delivered, duplicate or rejected */
    uint64_t chunks, bytes_sent; /* acknowledged chunks and their request bodies */
};

int pd_metrics_create(const struct pd_metrics_opts *opts, struct pd_metrics **out);

/*
 * Serves /metrics, /healthz, / and /api/status on LISTEN ("127.0.0.1:9465"; port 0: any free port) from a
 * thread of its own. Returns 0, PD_ECONFIG for a bad address, or -EADDRINUSE with ERR saying
 * what could not be done.
 */
int pd_metrics_listen(struct pd_metrics *m, const char *listen, char *err, size_t errlen);
unsigned pd_metrics_port(const struct pd_metrics *m); /* the port listened on, 0: none */

/*
 * The daemon's status document (README, "Status") for / (as HTML, pd_status_page_render) and
 * /api/status: FN returns it malloc'd, or NULL when there is none yet. FN runs on the HTTP
 * thread: it must be safe there (a copy the loop leaves under a lock, not the daemon itself).
 * Set it before pd_metrics_listen.
 */
typedef char *(*pd_metrics_status_fn)(void *arg);
void pd_metrics_set_status(struct pd_metrics *m, pd_metrics_status_fn fn, void *arg);

/*
 * Asks for "Authorization: Bearer TOKEN" (copied; never logged) on /, /api/status and /metrics:
 * 401 without it. /healthz stays open. Without a token, a listener that is not on loopback
 * answers / and /api/status with 403 (they show file names). Set it before pd_metrics_listen.
 * Returns 0 or PD_ENOMEM.
 */
int pd_metrics_set_token(struct pd_metrics *m, const char *token);

/* The status page: JSON, the status document (NULL or not JSON: a page saying it is not
 * there yet), as one self-contained HTML page, malloc'd into *HTML. 0 or PD_ENOMEM. */
int pd_status_page_render(const char *json, char **html, size_t *len);

/* Stops the HTTP thread and frees everything; NULLs *M. NULL is a no-op. */
void pd_metrics_destroy(struct pd_metrics **m);

/* Events. BYTES: the file's size (claimed and finished events), else 0. */
/*
 * A watch's folders are set up (DOWN_WHY NULL) or not (DOWN_WHY says why): shown as
 * patchdrop_watch_up, and /healthz answers 503 with the reason while a watch is disabled.
 */
void pd_metrics_watch_state(struct pd_metrics *m, const char *watch, const char *down_why);

void pd_metrics_file_event(struct pd_metrics *m, const char *watch, enum pd_metrics_file ev,
                           uint64_t bytes);
void pd_metrics_chunk(struct pd_metrics *m, const char *watch, uint64_t body_bytes);
void pd_metrics_response(struct pd_metrics *m, long status); /* 0: no answer arrived */
void pd_metrics_count(struct pd_metrics *m, enum pd_metrics_counter c);
/*
 * A flow run followed for WATCH reached its final status OUTCOME (success, failed, stopped,
 * partial; anything else counts as unknown), TOOK_MS after its start request was acknowledged.
 * Called once per followed chunk, as the run --once summary counts them.
 */
void pd_metrics_flow_run(struct pd_metrics *m, const char *watch, const char *outcome,
                         uint64_t took_ms);

void pd_metrics_heartbeat(struct pd_metrics *m);
/* Replaces every gauge; a watch missing from S has nothing pending. */
void pd_metrics_sample(struct pd_metrics *m, const struct pd_metrics_sample *s);

struct pd_metrics_totals pd_metrics_totals(struct pd_metrics *m);

/* The page /metrics serves, malloc'd into *TEXT. Returns 0 or PD_ENOMEM. */
int pd_metrics_render(struct pd_metrics *m, char **text, size_t *len);

/* 200 when healthy, else 503; REASON says why in words ("ok" when healthy). */
int pd_metrics_health(struct pd_metrics *m, char *reason, size_t len);

#endif
