/*
 * Private parts of the drop-folder daemon shared by the files of src/daemon/: its watches,
 * candidates, jobs and the daemon itself, and the functions its files call in one another. Not a
 * public interface (that is pd_daemon.h). src/daemon/daemon.c's top comment walks a file's way.
 */
#ifndef PD_DAEMON_INTERNAL_H
#define PD_DAEMON_INTERNAL_H

#include "pd_bodylimit.h"
#include "pd_client.h"
#include "pd_config.h"
#include "pd_daemon.h"
#include "pd_deliver.h"
#include "pd_follow.h"
#include "pd_jobstate.h"
#include "pd_ready.h"
#include "pd_split.h"
#include "pd_watch.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define NEVER UINT64_MAX
/* The daemon sleeps until its next deadline (dw_wake): at most WAKE_MAX_MS, so a moved clock
 * (the injected one of the tests, retention's own schedule) is seen within a second; wakes come
 * at least WAKE_GAP_MS apart, so a busy drop folder costs no more than a scan per WAKE_GAP_MS;
 * a stopping daemon looks for its last answer every STOP_POLL_MS. */
#define WAKE_MAX_MS 1000
#define WAKE_GAP_MS 20
#define STOP_POLL_MS 50
#define PARK_RETRY_MS 10000
#define MIN_BUDGET 256
#define MAX_OPEN_BATCHES 8     /* per watch: formats, CSV headers and XML roots gathering at once */
#define REHASH_MAX (64u << 20) /* files up to this size are compared again before archiving */
#define RECENT_NAMES 64        /* per watch: names delivered lately, to notice one coming back */

/* ---- candidates: names seen in a drop folder, waiting to be ready ----------------------- */

struct cand {
    struct cand *next; /* hash chain */
    char *name;        /* relative to the watch's root */
    struct pd_ready_obs obs;
    uint64_t due_ms; /* when to look again; NEVER: only on an event or rescan */
    uint64_t gen;    /* scan generation that last saw it */
    bool warned;     /* said once that it is not a regular file */
    bool unreadable; /* said once that it cannot be read */
    bool linked;     /* said once that it has other names (hard links) */
    bool busy_said;  /* said once that a writer still holds it open */
    bool queued;     /* in the ready heap */
};

struct job;
struct dbatch;
struct holder;

struct dwatch {
    struct pd_daemon *d;
    const struct pd_watch *cfg;
    struct pd_ready_rules rules;
    struct pd_watcher *watcher;
    char *work_dir, *state_dir;
    int root_fd;   /* the drop folder, opened once per scan: names resolve beneath it */
    bool disabled; /* its folders could not be set up: the others go on without it */
    char *disabled_why;
    uint64_t setup_due; /* when to try setting it up again */
    unsigned max_jobs;  /* claimed files handled at once */
    bool no_lease;      /* its file system takes no leases: settle alone judges */
    char **odd;         /* items in work/ that are not files, said once each */
    size_t nodd;
    /* Files found in work/ (left by a stop or a crash) are resumed as slots free, before any
     * new claim, so a restart holds no more files at once than a running daemon: those tried
     * in this round (one per scan) and whether some still wait for a slot. */
    char **orphans_tried;
    size_t norphans_tried;
    bool orphans_left;
    struct recent { /* names delivered lately: a writer still appending shows up */
        char *name;
        uint64_t at_ms;
    } recent[RECENT_NAMES];
    unsigned recent_next;
    struct cand **buckets;
    size_t nbuckets, ncands;
    struct cand **heap; /* ready candidates, oldest first */
    size_t nheap, capheap;
    uint64_t gen;
    uint64_t next_due; /* the earliest due_ms of its candidates not queued (0: look now) */
    bool watching; /* its watcher runs */
    bool scanned;  /* a full scan finished at least once */
    unsigned active;
    struct dbatch *batches;         /* batch = N: the open batches (one per format and header) */
    struct pd_retention *retention; /* archive_keep...: sweeps of its archive and failed folders */
};

enum job_step {
    STEP_PREPARE,
    STEP_CHUNK_READY, /* a body waits to be sent */
    STEP_SENDING,
    STEP_ACK,
    STEP_RESPLIT,
    STEP_FINISH_OK,
    STEP_FINISH_FAIL,
    STEP_PARKED, /* could not be moved out of work/: retried later */
    STEP_ENDED,
    STEP_BATCHED, /* waits in its watch's open batch */
};

/* What a thread-pool step asks the loop thread to do next. */
enum after {
    AFTER_SEND,    /* a chunk body is ready */
    AFTER_FINISH,  /* every chunk acknowledged (or a duplicate): archive it */
    AFTER_FAIL,    /* reject the file: failed folder */
    AFTER_DONE,    /* moved out of work/: the job is over */
    AFTER_LOCKED,  /* another daemon holds the file */
    AFTER_PARK,    /* a disk step failed: keep the file in work/ and try again later */
    AFTER_RELEASE, /* leave the file in work/ for later (shutdown, transient error) */
    AFTER_LOOKUP,  /* a lookup watch's file: sync it into the lookup */
    /* [cluster]: claim the content account-wide before sending it */
    AFTER_SHARED_DEDUPE,
};

struct job {
    struct job *next, *prev;
    struct pd_daemon *d;
    struct dwatch *w;
    enum job_step step;
    bool resume;    /* found in work/, not claimed now */
    bool busy;      /* a thread-pool step or a request is under way */
    bool in_flight; /* a request is under way */
    bool counted;   /* holds one of the daemon's active slots */
    bool finishing; /* archiving without a slot (counted in d->finishing) */
    int fd;
    char *work_path, *state_path;
    /* The file's name as the status document shows it: the loop's own copy of js.name, which
     * a thread-pool step may replace (a resumed file's record is read) while the loop reads. */
    char *label;
    struct pd_jobstate js;
    struct pd_delivery dl; /* the file's splitter and its way through 413s */
    struct pd_chunk chunk; /* the chunk being sent (body below) */
    char *body;
    size_t body_len;
    struct pd_chunk_rec ack; /* the acknowledgement to record */
    /* batch = N: a small file's bytes, read once (hashed, split and batched from memory; kept
     * while its delivery is open), whether they may join a batch, the batch, and its place in
     * it */
    char *raw;
    size_t raw_len;
    bool batchable;
    int format;
    struct dbatch *batch;
    struct job *batch_next;
    char *batch_id;
    unsigned batch_files, batch_pos;
    bool fail_saved; /* js.fail is in the delivery record on disk */
    char *final_path; /* where the file went */
    char *park_why;
    uint64_t park_until;
    bool finish_failed; /* a parked finish goes to the failed folder */
    bool reprepare;     /* parked until its twin (another name of the file) is done */
    bool dedupe_wait;   /* parked until the same content, in flight, is archived */
    bool holds_dedupe;  /* registered as the one delivering its content (dedupe) */
    bool shared_claim;  /* [cluster]: claimed its content account-wide; given up at its end */
    int64_t ctime_ns;   /* its ctime when opened: unchanged at the finish, nothing wrote to it */
    ino_t ino;          /* the claimed file, once opened */
    dev_t dev;
    uv_work_t work;
    enum after after;
    uint64_t since_ms; /* monotonic: claimed or found in work/, for the metrics */
    uint64_t sent_ms;  /* monotonic: when its current chunk was first handed to the client */
    unsigned warned;   /* stuck_warning lines said about the current chunk */
    struct pd_lookup_sync *sync; /* a lookup watch's sync under way */
    char *lookup_json;           /* its report, for the receipt */
    char *lookup_words;          /* its summary, for the log */
    struct pd_follow_rec *follow; /* its chunks' runs to follow, saved; adopted once archived */
    size_t nfollow;
};

/* Files archiving at once after their last acknowledgement, beside the active slots. */
#define FINISHING_MAX 64

struct frun;
struct dstatus;
struct dcontrol;

struct pd_daemon {
    uv_loop_t *loop;
    const struct pd_config *cfg;
    struct pd_daemon_opts opts;
    const struct pd_clock *clock; /* every time the daemon reads; never NULL */
    struct pd_client *client;
    struct pd_cluster *cluster; /* [cluster]: the rate shared with other hosts; NULL: alone */
    struct dwatch *watches;
    size_t nwatches;
    size_t rr; /* round-robin start for dispatch */
    struct job *jobs;
    unsigned active, max_active;
    unsigned finishing; /* jobs archiving after giving back their slot (at most FINISHING_MAX) */
    uv_timer_t wake;    /* one shot, armed for the next deadline (dw_wake) */
    uint64_t woke_ms;   /* the loop's clock at the last wake, for WAKE_GAP_MS */
    uv_timer_t grace;
    bool stopping, stopped_told, closing;
    atomic_bool cancel_expand; /* stopping, for expansions on the thread pool (pd_expand.h) */
    bool started;              /* pd_daemon_start ran: watches set up later begin at once */
    bool lease;                /* may take read leases on partners' files (root or CAP_LEASE) */
    struct pd_bodylimit limit; /* the body the server really accepts, learned from 413s */
    bool limit_ready;
    uv_mutex_t holders_lock; /* dedupe: contents being delivered now */
    struct holder *holders;
    size_t nholders;
    char *fatal;
    struct pd_daemon_summary sum;
    struct pd_commit *commit; /* durable steps share syncs ([state] group_commit) */
    struct frun *runs; /* flow runs being followed (follow.c) */
    size_t nruns;
    struct dstatus *status;   /* the last deliveries and failures (status.c) */
    struct dcontrol *control; /* the control socket (control.c) */
    int pending_closes;
    void (*on_closed)(void *);
    void *closed_arg;
};

/* daemon.c: clocks and words, dispatch, stopping */
uint64_t dw_now_ms(const struct pd_daemon *d);  /* monotonic, from the injected clock */
uint64_t dw_wall_ms(const struct pd_daemon *d); /* since the epoch, from the injected clock */
char *dw_join(const char *a, const char *b);
const char *dw_q(const char *v, char *buf, size_t len);
/* Makes the daemon wake by AT (the injected clock's ms; 0: at once), whenever a deadline may
 * have moved earlier; a later AT than the one armed changes nothing. */
void dw_wake(struct pd_daemon *d, uint64_t at);
void dw_dispatch(struct pd_daemon *d);
bool dw_is_once_idle(struct pd_daemon *d);
void dw_check_stopped(struct pd_daemon *d);

/* pending.c: candidates, the ready heap, names delivered lately */
void recent_add(struct dwatch *w, const char *name);
void recent_check(struct dwatch *w, const char *name);
struct cand *cand_find(struct dwatch *w, const char *name);
struct cand *cand_add(struct dwatch *w, const char *name);
void cand_remove(struct dwatch *w, struct cand *c);
/* C is looked at again at AT (0: at once; NEVER: on an event or rescan). */
void cand_due(struct dwatch *w, struct cand *c, uint64_t at);
int dw_heap_push(struct dwatch *w, struct cand *c);
struct cand *dw_heap_pop(struct dwatch *w);

/* intake.c: noticing, readiness, claim, resume orphans */
void cand_check(struct dwatch *w, struct cand *c, uint64_t now);
void dw_on_watch_event(void *arg, enum pd_watch_event ev, const char *name);
void dw_resume_orphans(struct dwatch *w, bool new_round);
void dw_orphans_free(struct dwatch *w);
void dw_claim(struct dwatch *w, struct cand *c);
void dw_sweep_temps(struct pd_daemon *d, const char *path);

/* dedupe.c: hashing and dedupe */
bool dedupe_hold(struct job *j);
void dedupe_release(struct job *j);
int dw_sha256_file(int fd, char out[65], bool *blank);
int dw_sha256_mem(const void *buf, size_t n, char out[65], bool *blank);
void dedupe_check(struct job *j);
/* [cluster]: claims the content account-wide (AFTER_SHARED_DEDUPE), then sends it, finishes it
 * as a duplicate, or parks it while another host sends it. */
void dedupe_shared_ask(struct job *j);
/* The job ends: a delivered content stays claimed for the window, else the claim goes. */
void dedupe_shared_end(struct job *j, bool delivered);

/* beat.c: the gauges for /metrics (pd_daemon_sample); [cluster]: this host's heartbeat summary,
 * malloc'd JSON (pd_cluster_set_beat). */
char *dw_beat_json(void *arg);
void dedupe_record(struct job *j);

/* steps.c: thread-pool steps up to the request */
void job_fail(struct job *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void job_park(struct job *j, const char *step, int rc);
void work_prepare(uv_work_t *wk);
void work_ack(uv_work_t *wk);
void work_next(uv_work_t *wk);
/* The rest of work_prepare once the content may be sent: open the delivery, cut a chunk. */
void work_open(uv_work_t *wk);
int open_delivery(struct job *j);

/* finish.c: placing the file, reporting */
/*
 * Moves FROM into DIR under a name no other file or SIDECAR uses (NAME's last part, numbered on
 * a clash), after writing the sidecar TEXT beside it; *FINAL gets where it went. Nothing is ever
 * overwritten. A sidecar naming CLAIM_ID left by a crash (between the sidecar and the move) is
 * taken up instead of starting a second name.
 */
struct dw_place {
    const char *from, *dir, *name, *claim_id, *sidecar, *text;
};
int dw_place(const struct dw_place *pl, char **final);
void work_finish(uv_work_t *wk);
void job_report(struct job *j, bool ok);

/* job.c: a job on the loop thread */
void job_set(struct job *j, enum job_step s);
void job_sending(struct job *j);
void job_free(struct job *j);
void job_end(struct job *j);
void job_send_chunk(struct job *j);
void dw_warn_stuck(struct pd_daemon *d, uint64_t now);
void job_run(struct job *j, void (*fn)(uv_work_t *));
/* Does what j->after says, as when a thread-pool step returns (for steps on the loop). */
void job_continue(struct job *j);
void dw_on_request_done(void *arg, const struct pd_client_result *r);
struct job *job_new(struct dwatch *w, const char *work_name, const char *name, bool resume);

/* batcher.c: open batches */
bool batch_enabled(const struct dwatch *w);
bool batch_read(struct job *j);
void batch_dissolve(struct dbatch *bt);
bool batch_join(struct job *j);
/* Sends the batches whose window is over; returns when the next window ends (or NEVER). */
uint64_t batch_tick(struct pd_daemon *d, uint64_t now);

/* follow.c: following flow runs to their end */
void follow_records(struct job *j);
char *follow_receipt_start(struct job *j, char *text);
void follow_adopt(struct job *j);
void follow_load(struct pd_daemon *d);
/* Polls the runs due; returns when the next one is due (or NEVER). */
uint64_t follow_tick(struct pd_daemon *d, uint64_t now);
bool follow_idle(const struct pd_daemon *d);
bool follow_busy(const struct pd_daemon *d);
void follow_stop(struct pd_daemon *d);

/* lookup_watch.c: lookup watches */
void job_lookup_start(struct job *j);

/* status.c: the last deliveries and failures, for pd_daemon_status_json */
void status_note(struct job *j, bool ok);
void status_free(struct pd_daemon *d);
void status_tick(struct pd_daemon *d); /* on each wake: the account's requests per minute */
/* The rings and the history kept in the state dir across a reload or restart (status.c). */
void status_save(const struct pd_daemon *d);
void status_load(struct pd_daemon *d);

/* control.c: the control socket; closing returns false when there is none, else DONE runs
 * once its handles are closed */
void dw_control_open(struct pd_daemon *d);
bool dw_control_close(struct pd_daemon *d, void (*done)(struct pd_daemon *d));

/* setup.c: a watch's folders */
void dw_watch_begin(struct dwatch *w);
void dw_commit_begin(struct pd_daemon *d);
void dw_commit_end(struct pd_daemon *d);
void dw_watch_try_setup(struct dwatch *w);

#endif
