/*
 * What the unit tests that talk to the in-process emulator (pdmock) share: a temp folder, the
 * emulator recording what it receives, a libuv loop guarded by real time, a fake clock the test
 * moves by hand, and a config for them. Not a test itself (tests/test_*.c are); linked into the
 * tests listed in tests/CMakeLists.txt.
 */
#ifndef PD_TEST_NET_FIXTURE_H
#define PD_TEST_NET_FIXTURE_H

#include "pd_clock.h"
#include "pd_mock.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define NF_USER "ops@example.com"
#define NF_PASSWORD "s3cret-pw"
/* Real time a wait may take at most: a guard, never a wait. */
#define NF_GUARD_MS 20000

struct pd_config;

struct net_fixture {
    char dir[64];     /* the temp folder, removed at the end */
    char rec[96];     /* dir/rec: what the emulator received */
    char url[64];     /* http://127.0.0.1:PORT */
    char lookups[64]; /* where lookups_url points (+ /core-main/api/v1); "": the emulator */
    char conf[96];    /* dir/c.conf */
    struct pd_mock *mock;
    uv_loop_t loop;
    uv_timer_t guard, poll;
    bool timed_out;
    /* The fake clock: read from the thread pool too, so atomic. Random is 0: no jitter. */
    struct pd_clock clock;
    _Atomic uint64_t mono, wall;
    FILE *log; /* pd_log's lines */
};

/* Temp folder, emulator (recording, its own MAX_BODY unless 0), loop, clock, log to a file. */
void nf_setup(struct net_fixture *f, uint64_t max_body);
/* Closes what is left on the loop, proves it closed clean, stops the emulator, removes dir. */
void nf_teardown(struct net_fixture *f);

/* Moves both fake clocks on by MS. */
void nf_advance(struct net_fixture *f, uint64_t ms);

/* Runs the loop until DONE(ARG) holds (looked at every few ms); fails the test after the guard. */
void nf_run_until(struct net_fixture *f, bool (*done)(void *arg), void *arg);
/* Runs the loop for MS of real time: to show that something does NOT happen meanwhile. */
void nf_run_for(struct net_fixture *f, uint64_t ms);

/* The emulator's next start-flow answers (pd_mock_script_set). */
void nf_script(struct net_fixture *f, const char *list);
struct pd_mock_stats nf_stats(struct net_fixture *f);

/*
 * Writes dir/c.conf: [patchworks] for the emulator (PW_EXTRA lines added), [state] in dir, and
 * when WATCH is not NULL a [watch:drop] on dir/drop (own folder dir/drop.pd) with WATCH's lines;
 * then loads it. Fails the test when it does not load.
 */
struct pd_config *nf_config(struct net_fixture *f, const char *pw_extra, const char *watch);

/* DIR/NAME's whole content (malloc'd, NUL-terminated), or NULL when it cannot be read. */
char *nf_read(const char *dir, const char *name, size_t *len);
/* Writes TEXT to DIR/NAME, whole at once (renamed in): a watcher never sees it half written. */
void nf_write(const char *dir, const char *name, const char *text);
/* Whether DIR/NAME exists. */
bool nf_exists(const char *dir, const char *name);
/* How many times NEEDLE occurs in HAY. */
size_t nf_count(const char *hay, const char *needle);
/* Everything pd_log wrote so far (malloc'd). */
char *nf_log_text(struct net_fixture *f);

#endif
