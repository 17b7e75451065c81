/*
 * Retention: the planner (tables, injected "now"), the pairing of files and sidecars, the
 * executor on a real temporary folder (times set with utimensat, never slept for), the
 * daemon's thread-pool object, and supersede.
 */
#include "testlib.h"

#include "pd_clock.h"
#include "pd_config.h"
#include "pd_error.h"
#include "pd_log.h"
#include "pd_retention.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MIN_MS (60LL * 1000)
#define HOUR_MS (60 * MIN_MS)
#define DAY_MS (24 * HOUR_MS)
#define NOW (1700000000000LL) /* the planner's "now": any fixed instant */

/* ---- the planner ---------------------------------------------------------------------------- */

/* One row: an entry, and what must become of it. */
struct row {
    const char *name;
    bool file, sidecar;
    int64_t age_ms;
    uint64_t bytes;
    enum pd_retention_why want_file, want_sidecar;
};

static void check_plan(const struct pd_retention_rules *r, const struct row *rows, size_t n,
                       uint64_t total)
{
    struct pd_retention_entry e[32];
    size_t going = 0;

    assert_true(n <= 32);
    for (size_t i = 0; i < n; i++) {
        e[i] = (struct pd_retention_entry){.name = rows[i].name,
                                           .has_file = rows[i].file,
                                           .has_sidecar = rows[i].sidecar,
                                           .time_ms = NOW - rows[i].age_ms,
                                           .bytes = rows[i].bytes,
                                           .id = i};
        going += (rows[i].want_file != PD_RET_KEEP) + (rows[i].want_sidecar != PD_RET_KEEP);
    }
    if (total == UINT64_MAX) {
        total = 0;
        for (size_t i = 0; i < n; i++)
            total += rows[i].file ? rows[i].bytes : 0;
    }
    assert_int_equal(pd_retention_plan(e, n, total, r, NOW), going);
    for (size_t i = 0; i < n; i++) {
        const struct row *w = &rows[e[i].id];
        assert_string_equal(e[i].name, w->name);
        if (e[i].file_why != w->want_file || e[i].sidecar_why != w->want_sidecar) {
            print_error("%s: file %d sidecar %d, expected %d %d\n", w->name, e[i].file_why,
                        e[i].sidecar_why, w->want_file, w->want_sidecar);
            fail();
        }
        /* Oldest first. */
        if (i)
            assert_true(e[i - 1].time_ms <= e[i].time_ms);
    }
}

#define ALL UINT64_MAX /* total: the rows' own */

static void test_plan_ages(void **state)
{
    (void)state;
    const struct pd_retention_rules r = {.keep_ms = 30 * DAY_MS, .sidecar_keep_ms = 30 * DAY_MS};
    const struct row rows[] = {
        /* name, file, sidecar, age, bytes, file, sidecar */
        {"old.xml", true, true, 31 * DAY_MS, 10, PD_RET_AGE, PD_RET_WITH_FILE},
        {"exactly.xml", true, true, 30 * DAY_MS, 10, PD_RET_AGE, PD_RET_WITH_FILE},
        {"young.xml", true, true, 30 * DAY_MS - 1, 10, PD_RET_KEEP, PD_RET_KEEP},
        {"new.xml", true, true, 0, 10, PD_RET_KEEP, PD_RET_KEEP},
        {"alone.xml", true, false, 40 * DAY_MS, 10, PD_RET_AGE, PD_RET_KEEP},
        {"gone.xml.receipt.json", false, true, 31 * DAY_MS, 0, PD_RET_KEEP, PD_RET_LONE_AGE},
        {"gone2.xml.receipt.json", false, true, 29 * DAY_MS, 0, PD_RET_KEEP, PD_RET_KEEP},
        /* A clock set back: a time in the future is now, kept. */
        {"future.xml", true, true, -5 * DAY_MS, 10, PD_RET_KEEP, PD_RET_KEEP},
    };
    check_plan(&r, rows, sizeof(rows) / sizeof(rows[0]), ALL);

    /* Every rule off: nothing goes, however old. */
    const struct pd_retention_rules off = {0};
    const struct row forever[] = {
        {"ancient.xml", true, true, 9000 * DAY_MS, 10, PD_RET_KEEP, PD_RET_KEEP},
        {"x.receipt.json", false, true, 9000 * DAY_MS, 0, PD_RET_KEEP, PD_RET_KEEP},
    };
    check_plan(&off, forever, 2, ALL);
}

/* A lone sidecar is a file on its way (the sidecar is written first) until it is an hour old. */
static void test_plan_lone_grace(void **state)
{
    (void)state;
    const struct pd_retention_rules r = {.keep_ms = MIN_MS, .sidecar_keep_ms = MIN_MS};
    const struct row rows[] = {
        {"coming.csv.receipt.json", false, true, 30 * MIN_MS, 0, PD_RET_KEEP, PD_RET_KEEP},
        {"left.csv.receipt.json", false, true, 2 * HOUR_MS, 0, PD_RET_KEEP, PD_RET_LONE_AGE},
        /* A pair goes by its rule alone: its file is in place. */
        {"pair.csv", true, true, 2 * MIN_MS, 5, PD_RET_AGE, PD_RET_WITH_FILE},
    };
    check_plan(&r, rows, 3, ALL);
}

static void test_plan_size_cap(void **state)
{
    (void)state;
    /* No age rule; a cap of 100 bytes over 140: the oldest goes, and only it. */
    const struct pd_retention_rules cap = {.max_bytes = 100, .sidecar_keep_ms = 30 * DAY_MS};
    const struct row rows[] = {
        {"d.json", true, true, 1 * DAY_MS, 20, PD_RET_KEEP, PD_RET_KEEP},
        {"a.json", true, true, 4 * DAY_MS, 50, PD_RET_SIZE, PD_RET_KEEP}, /* receipt stays */
        {"c.json", true, true, 2 * DAY_MS, 30, PD_RET_KEEP, PD_RET_KEEP},
        {"b.json", true, true, 3 * DAY_MS, 40, PD_RET_KEEP, PD_RET_KEEP},
    };
    check_plan(&cap, rows, 4, ALL);

    /* Over by one byte: still the oldest goes, then 90 fits. Exactly at the cap: nothing. */
    const struct row at_cap[] = {
        {"a.json", true, true, 4 * DAY_MS, 50, PD_RET_KEEP, PD_RET_KEEP},
        {"b.json", true, true, 3 * DAY_MS, 50, PD_RET_KEEP, PD_RET_KEEP},
    };
    check_plan(&cap, at_cap, 2, ALL);

    /* The entries are the oldest part of a bigger folder: the total counts the rest too. */
    const struct row part[] = {
        {"a.json", true, true, 4 * DAY_MS, 10, PD_RET_SIZE, PD_RET_KEEP},
        {"b.json", true, false, 3 * DAY_MS, 10, PD_RET_SIZE, PD_RET_KEEP},
        {"b.json.receipt.json", false, true, 3 * DAY_MS, 0, PD_RET_KEEP, PD_RET_KEEP},
    };
    check_plan(&cap, part, 3, 1000);

    /* Age first, then the cap over what is left; a receipt old enough goes with its file. */
    const struct pd_retention_rules both = {
        .keep_ms = 30 * DAY_MS, .sidecar_keep_ms = 30 * DAY_MS, .max_bytes = 60};
    const struct row mixed[] = {
        {"old.json", true, true, 40 * DAY_MS, 1000, PD_RET_AGE, PD_RET_WITH_FILE},
        {"mid.json", true, true, 10 * DAY_MS, 50, PD_RET_SIZE, PD_RET_KEEP},
        {"new.json", true, true, 1 * DAY_MS, 50, PD_RET_KEEP, PD_RET_KEEP},
    };
    check_plan(&both, mixed, 3, ALL);

    /* One file bigger than the cap goes too (its receipt stays for receipt_keep). */
    const struct row huge[] = {
        {"huge.json", true, true, 0, 500, PD_RET_SIZE, PD_RET_KEEP},
    };
    check_plan(&cap, huge, 1, ALL);
}

/* A receipt may outlive its file, never the reverse. */
static void test_plan_receipt_never_first(void **state)
{
    (void)state;
    /* receipt_keep shorter than archive_keep (the config refuses it; the planner holds anyway) */
    const struct pd_retention_rules shorter = {.keep_ms = 30 * DAY_MS,
                                               .sidecar_keep_ms = 7 * DAY_MS};
    const struct row rows[] = {
        {"a.xml", true, true, 10 * DAY_MS, 1, PD_RET_KEEP, PD_RET_KEEP},
        {"b.xml", true, true, 31 * DAY_MS, 1, PD_RET_AGE, PD_RET_WITH_FILE},
    };
    check_plan(&shorter, rows, 2, ALL);

    /* Files kept forever: their receipts too, however old. */
    const struct pd_retention_rules files_forever = {.sidecar_keep_ms = 7 * DAY_MS};
    const struct row kept[] = {
        {"a.xml", true, true, 100 * DAY_MS, 1, PD_RET_KEEP, PD_RET_KEEP},
        {"gone.xml.receipt.json", false, true, 100 * DAY_MS, 0, PD_RET_KEEP, PD_RET_LONE_AGE},
    };
    check_plan(&files_forever, kept, 2, ALL);

    /* Receipts kept longer than files: the file goes, its receipt stays until its own age. */
    const struct pd_retention_rules longer = {.keep_ms = 30 * DAY_MS,
                                              .sidecar_keep_ms = 365 * DAY_MS};
    const struct row outlive[] = {
        {"a.xml", true, true, 31 * DAY_MS, 1, PD_RET_AGE, PD_RET_KEEP},
        {"b.xml", true, true, 400 * DAY_MS, 1, PD_RET_AGE, PD_RET_WITH_FILE},
        {"c.xml.receipt.json", false, true, 364 * DAY_MS, 0, PD_RET_KEEP, PD_RET_KEEP},
        {"d.xml.receipt.json", false, true, 366 * DAY_MS, 0, PD_RET_KEEP, PD_RET_LONE_AGE},
    };
    check_plan(&longer, outlive, 4, ALL);

    /* Receipts forever (receipt_keep = 0): never removed, even with their file. */
    const struct pd_retention_rules receipts_forever = {.keep_ms = DAY_MS};
    const struct row always[] = {
        {"a.xml", true, true, 2 * DAY_MS, 1, PD_RET_AGE, PD_RET_KEEP},
        {"b.xml.receipt.json", false, true, 900 * DAY_MS, 0, PD_RET_KEEP, PD_RET_KEEP},
    };
    check_plan(&receipts_forever, always, 2, ALL);
}

/* ---- pairing ------------------------------------------------------------------------------ */

/* A folder as a list of regular files (symlinks and the like are simply not in it). */
static bool in_list(void *arg, const char *name)
{
    for (const char *const *p = arg; *p; p++)
        if (!strcmp(*p, name))
            return true;
    return false;
}

static void test_roles(void **state)
{
    (void)state;
    static const char *const files[] = {
        "a.xml", "a.xml.receipt.json", /* a pair */
        "b.xml",                       /* a file whose receipt is gone */
        "c.xml.receipt.json",          /* a receipt whose file is gone */
        /* a partner's file named like a receipt, archived before "d": it has its own receipt */
        "d", "d.receipt.json", "d.receipt.json.receipt.json",
        "e.receipt.json.receipt.json", /* the receipt of e.receipt.json, which is gone */
        NULL};
    static const struct {
        const char *name;
        enum pd_retention_role role;
        bool sidecar;
    } want[] = {
        {"a.xml", PD_RET_ROLE_FILE, true},
        {"a.xml.receipt.json", PD_RET_ROLE_SIDECAR, false},
        {"b.xml", PD_RET_ROLE_FILE, false},
        {"c.xml.receipt.json", PD_RET_ROLE_LONE_SIDECAR, false},
        {"d", PD_RET_ROLE_FILE, false},
        {"d.receipt.json", PD_RET_ROLE_FILE, true},
        {"d.receipt.json.receipt.json", PD_RET_ROLE_SIDECAR, false},
        {"e.receipt.json.receipt.json", PD_RET_ROLE_LONE_SIDECAR, false},
        /* ".receipt.json" alone names no file */
        {".receipt.json", PD_RET_ROLE_FILE, false},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        bool side = true;
        enum pd_retention_role role =
            pd_retention_role(want[i].name, PD_RETENTION_RECEIPT, in_list, (void *)files, &side);
        if (role != want[i].role || side != want[i].sidecar) {
            print_error("%s: role %d sidecar %d\n", want[i].name, role, side);
            fail();
        }
    }
    /* A symlink named like the sidecar is no sidecar: the file is alone. */
    static const char *const linked[] = {"f.xml", NULL}; /* f.xml.receipt.json is a symlink */
    bool side = true;
    assert_int_equal(
        pd_retention_role("f.xml", PD_RETENTION_RECEIPT, in_list, (void *)linked, &side),
        PD_RET_ROLE_FILE);
    assert_false(side);
}

/* ---- the executor on a real folder ---------------------------------------------------------- */

static const char *const dir = pd_test_dir;
static FILE *log_out;
static long log_from; /* what logged() already returned */

static int setup(void **state)
{
    pd_test_setup(state);
    assert_int_equal(chmod(dir, 0750), 0);
    log_out = tmpfile();
    assert_non_null(log_out);
    log_from = 0;
    pd_test_log_to(log_out, PD_LOG_DEBUG, 0);
    return 0;
}

static int teardown(void **state)
{
    pd_log_set_output(NULL);
    fclose(log_out);
    return pd_test_teardown(state);
}

static const char *at(const char *name)
{
    return pd_test_path(dir, name);
}

/* Writes NAME with SIZE bytes, its mtime AGE_MS before the real now (touch -d). */
static void put(const char *name, size_t size, int64_t age_ms)
{
    FILE *f = fopen(at(name), "w");
    assert_non_null(f);
    for (size_t i = 0; i < size; i++)
        fputc('x', f);
    fclose(f);
    struct timespec t[2];
    clock_gettime(CLOCK_REALTIME, &t[0]);
    int64_t ms = (int64_t)t[0].tv_sec * 1000 + t[0].tv_nsec / 1000000 - age_ms;
    t[0].tv_sec = ms / 1000;
    t[0].tv_nsec = (ms % 1000) * 1000000;
    t[1] = t[0];
    assert_int_equal(utimensat(AT_FDCWD, at(name), t, AT_SYMLINK_NOFOLLOW), 0);
}

/* A delivered file of SIZE bytes whose receipt was written AGE_MS ago. */
static void archived(const char *name, size_t size, int64_t age_ms)
{
    char side[300];
    put(name, size, 400 * DAY_MS); /* the partner's own old mtime: never the age */
    snprintf(side, sizeof(side), "%s%s", name, PD_RETENTION_RECEIPT);
    put(side, 7, age_ms);
}

static bool exists(const char *name)
{
    struct stat st;
    return lstat(at(name), &st) == 0;
}

/* Checks that each of NAMES (up to NULL) is there when THERE, and is gone when not. */
static void expect_there(bool there, const char *const names[])
{
    for (size_t i = 0; names[i]; i++)
        if (exists(names[i]) != there)
            fail_msg("%s is %s", names[i], there ? "gone" : "still there");
}

static int64_t real_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Everything logged since the last call. */
static char *logged(void)
{
    static char buf[65536];
    fflush(log_out);
    fseek(log_out, log_from, SEEK_SET);
    size_t n = fread(buf, 1, sizeof(buf) - 1, log_out);
    buf[n] = '\0';
    log_from = ftell(log_out);
    return buf;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

static struct pd_retention_folder archive_folder(struct pd_retention_rules r)
{
    return (struct pd_retention_folder){.watch = "orders",
                                        .folder = "archive",
                                        .dir = dir,
                                        .suffix = PD_RETENTION_RECEIPT,
                                        .rules = r,
                                        .why_age = "archive_keep",
                                        .why_size = "archive_max_size",
                                        .why_lone = "receipt_keep"};
}

static void test_sweep_ages(void **state)
{
    (void)state;
    archived("old.xml", 100, 31 * DAY_MS);
    archived("new.xml", 100, 1 * DAY_MS);
    put("lone.xml.receipt.json", 7, 40 * DAY_MS); /* its file went (receipt_keep) */
    put("young.xml.receipt.json", 7, 1 * DAY_MS);
    /* Odd entries: never followed, never removed, however old they look. */
    put("target.txt", 3, 0);
    assert_int_equal(symlink("/etc/passwd", at("link.xml")), 0);
    assert_int_equal(symlink(at("target.txt"), at("target.txt.receipt.json")), 0);
    assert_int_equal(mkdir(at("folder.xml"), 0700), 0);
    assert_int_equal(mkfifo(at("fifo.xml"), 0600), 0);
    put(".pdtmp-abc123", 5, 90 * DAY_MS); /* a durable write under way */
    logged();

    struct pd_retention_folder f = archive_folder(
        (struct pd_retention_rules){.keep_ms = 30 * DAY_MS, .sidecar_keep_ms = 30 * DAY_MS});
    struct pd_retention_result res = {0};
    assert_int_equal(pd_retention_sweep(&f, real_now(), 100, NULL, &res), 0);

    expect_there(false, (const char *const[]){"old.xml", "old.xml.receipt.json",
                                              "lone.xml.receipt.json", NULL});
    expect_there(true,
                 (const char *const[]){"new.xml", "new.xml.receipt.json", "young.xml.receipt.json",
                                       "target.txt", "link.xml", "target.txt.receipt.json",
                                       "folder.xml", "fifo.xml", ".pdtmp-abc123", NULL});
    assert_int_equal(res.removed, 3);
    assert_int_equal(res.removed_bytes, 100 + 7 + 7);
    assert_int_equal(res.files, 2); /* new.xml, target.txt */
    assert_int_equal(res.bytes, 103);
    assert_int_equal(res.ignored, 4); /* two symlinks, the folder, the fifo */
    assert_int_equal(res.errors, 0);
    assert_false(res.more);

    const char *log = logged();
    assert_non_null(strstr(log, "event=retention_removed watch=orders folder=archive "
                                "file=old.xml age_s=2678"));
    assert_int_equal(count(log, "event=retention_removed"), 3);
    assert_int_equal(count(log, "file=old.xml "), 1);
    assert_int_equal(count(log, "file=old.xml.receipt.json "), 1);
    assert_non_null(strstr(log, "bytes=100 reason=archive_keep"));
    assert_non_null(strstr(log, "file=lone.xml.receipt.json age_s=3456000 bytes=7 "
                                "reason=receipt_keep"));

    /* Injected time: forty days later everything regular goes, the ctime-aged file too. */
    res = (struct pd_retention_result){0};
    assert_int_equal(pd_retention_sweep(&f, real_now() + 40 * DAY_MS, 100, NULL, &res), 0);
    expect_there(false,
                 (const char *const[]){"new.xml", "target.txt", "young.xml.receipt.json", NULL});
    expect_there(
        true, (const char *const[]){"link.xml", "target.txt.receipt.json", ".pdtmp-abc123", NULL});
    assert_int_equal(res.files, 0);
}

static void test_sweep_size_cap(void **state)
{
    (void)state;
    archived("a.csv", 500, 4 * DAY_MS);
    archived("b.csv", 400, 3 * DAY_MS);
    archived("c.csv", 300, 2 * DAY_MS);
    archived("d.csv", 200, 1 * DAY_MS);
    logged();
    struct pd_retention_folder f = archive_folder((struct pd_retention_rules){
        .keep_ms = 30 * DAY_MS, .sidecar_keep_ms = 30 * DAY_MS, .max_bytes = 600});
    struct pd_retention_result res = {0};
    assert_int_equal(pd_retention_sweep(&f, real_now(), 100, NULL, &res), 0);
    /* 1400 bytes: a (500) and b (400) go, 500 remain. Their receipts stay (receipt_keep). */
    expect_there(false, (const char *const[]){"a.csv", "b.csv", NULL});
    expect_there(true, (const char *const[]){"c.csv", "d.csv", "a.csv.receipt.json",
                                             "b.csv.receipt.json", NULL});
    assert_int_equal(res.bytes, 500);
    const char *log = logged();
    assert_non_null(strstr(log, "file=a.csv age_s=345600 bytes=500 reason=archive_max_size"));
    assert_non_null(strstr(log, "file=b.csv age_s=259200 bytes=400 reason=archive_max_size"));
    assert_int_equal(count(log, "event=retention_removed"), 2);
}

/* At most N entries per sweep: the oldest go first and the sweep says there is more. */
static void test_sweep_bounded(void **state)
{
    (void)state;
    char name[32];
    for (int i = 0; i < 7; i++) {
        snprintf(name, sizeof(name), "f%d.json", i);
        archived(name, 10, (40 + i) * DAY_MS); /* f6 the oldest */
    }
    archived("keep.json", 10, DAY_MS);
    struct pd_retention_folder f = archive_folder(
        (struct pd_retention_rules){.keep_ms = 30 * DAY_MS, .sidecar_keep_ms = 30 * DAY_MS});
    struct pd_retention_result res = {0};
    assert_int_equal(pd_retention_sweep(&f, real_now(), 3, NULL, &res), 0);
    assert_int_equal(res.removed, 6);
    assert_true(res.more);
    expect_there(false, (const char *const[]){"f6.json", "f5.json", "f4.json", NULL});
    assert_true(exists("f3.json"));
    int sweeps = 1;
    while (res.more) {
        res = (struct pd_retention_result){0};
        assert_int_equal(pd_retention_sweep(&f, real_now(), 3, NULL, &res), 0);
        sweeps++;
        assert_true(sweeps < 10);
    }
    for (int i = 0; i < 7; i++) {
        snprintf(name, sizeof(name), "f%d.json", i);
        assert_false(exists(name));
    }
    expect_there(true, (const char *const[]){"keep.json", "keep.json.receipt.json", NULL});

    /* A cancelled sweep stops and says so. */
    archived("g.json", 10, 40 * DAY_MS);
    atomic_bool cancel;
    atomic_init(&cancel, true);
    res = (struct pd_retention_result){0};
    assert_int_equal(pd_retention_sweep(&f, real_now(), 3, &cancel, &res), 0);
    assert_true(res.more);
    assert_true(exists("g.json"));
}

/* Only patchdrop's own folder is swept; a missing one is empty. */
static void test_sweep_refuses(void **state)
{
    (void)state;
    archived("old.xml", 1, 90 * DAY_MS);
    struct pd_retention_folder f =
        archive_folder((struct pd_retention_rules){.keep_ms = DAY_MS, .sidecar_keep_ms = DAY_MS});
    struct pd_retention_result res = {0};
    logged();
    assert_int_equal(chmod(dir, 0777), 0);
    assert_int_equal(pd_retention_sweep(&f, real_now(), 100, NULL, &res), PD_ECONFIG);
    assert_true(exists("old.xml"));
    assert_non_null(strstr(logged(), "event=retention_refused"));
    assert_int_equal(chmod(dir, 0750), 0);

    /* The folder itself a symlink: not followed. */
    char link[300];
    snprintf(link, sizeof(link), "%s.link", dir);
    assert_int_equal(symlink(dir, link), 0);
    f.dir = link;
    int rc = pd_retention_sweep(&f, real_now(), 100, NULL, &res);
    assert_true(rc == -ELOOP || rc == -ENOTDIR);
    assert_true(exists("old.xml"));
    unlink(link);

    f.dir = at("not-yet");
    assert_int_equal(pd_retention_sweep(&f, real_now(), 100, NULL, &res), 0);
}

/* ---- the daemon's object: a sweep on the thread pool, a loop that closes clean ------------- */

struct fake {
    int64_t wall_ms;
};

static uint64_t fake_mono(void *arg)
{
    (void)arg;
    return 0;
}

static uint64_t fake_wall(void *arg)
{
    return (uint64_t)((struct fake *)arg)->wall_ms;
}

static void make_watch(struct pd_watch *w, char *archive, char *failed)
{
    memset(w, 0, sizeof(*w));
    w->name = "orders";
    w->archive_dir = archive;
    w->failed_dir = failed;
    w->archive_keep_ms = 30 * DAY_MS;
    w->receipt_keep_ms = 30 * DAY_MS;
    w->failed_keep_ms = 90 * DAY_MS;
}

static void test_daemon_object(void **state)
{
    (void)state;
    char archive[300], failed[300];
    snprintf(archive, sizeof(archive), "%s", dir);
    snprintf(failed, sizeof(failed), "%s/failed", dir);
    assert_int_equal(mkdir(failed, 0750), 0);
    archived("old.xml", 10, 31 * DAY_MS);
    archived("new.xml", 10, 1 * DAY_MS);
    put("failed/bad.json", 3, 100 * DAY_MS);
    put("failed/bad.json.error.json", 3, 91 * DAY_MS);
    put("failed/recent.json", 3, 100 * DAY_MS);
    put("failed/recent.json.error.json", 3, 89 * DAY_MS);
    /* The error files `patchdrop retry` kept: failed_keep applies to them too. */
    assert_int_equal(mkdir(at("failed/history"), 0750), 0);
    put("failed/history/bad.json.error.json", 3, 91 * DAY_MS);
    put("failed/history/bad-1.json.error.json", 3, 89 * DAY_MS);

    struct fake fk = {.wall_ms = real_now()};
    struct pd_clock clock = {.mono_ms = fake_mono, .wall_ms = fake_wall, .arg = &fk};
    struct pd_watch w;
    make_watch(&w, archive, failed);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct pd_retention *r = NULL;
    assert_int_equal(pd_retention_create(&loop, &w, &clock, &r), 0);
    assert_non_null(r);

    /* Due at once: the first tick starts a sweep; a second tick while it runs does nothing. */
    pd_retention_tick(r, 1000);
    assert_true(pd_retention_busy(r));
    pd_retention_tick(r, 1001);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_false(pd_retention_busy(r));
    assert_false(exists("old.xml"));
    assert_true(exists("new.xml"));
    expect_there(false,
                 (const char *const[]){"failed/bad.json", "failed/bad.json.error.json", NULL});
    assert_true(exists("failed/recent.json"));
    assert_false(exists("failed/history/bad.json.error.json"));
    assert_true(exists("failed/history/bad-1.json.error.json"));
    const char *log = logged();
    assert_non_null(strstr(log, "folder=failed file=bad.json age_s=7862400 bytes=3 "
                                "reason=failed_keep"));
    assert_non_null(strstr(log, "folder=failed/history file=bad.json.error.json"));
    assert_non_null(strstr(log, "event=retention_swept watch=orders removed=5"));

    /* Not due again before ten minutes. */
    archived("old2.xml", 10, 31 * DAY_MS);
    pd_retention_tick(r, 1000 + PD_RETENTION_PERIOD_MS - 1);
    assert_false(pd_retention_busy(r));
    pd_retention_tick(r, 1000 + PD_RETENTION_PERIOD_MS);
    assert_true(pd_retention_busy(r));
    /* Destroyed while its sweep runs: the sweep frees it when it is back on the loop. */
    pd_retention_destroy(&r);
    assert_null(r);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);

    /* No rule on: no object, and its calls are no-ops. */
    w.archive_keep_ms = w.receipt_keep_ms = w.failed_keep_ms = 0;
    assert_int_equal(pd_retention_create(&loop, &w, &clock, &r), 0);
    assert_null(r);
    pd_retention_tick(r, 0);
    pd_retention_destroy(&r);
}

/* `run --once`: both folders, until done, with a summary. */
static void test_run_once(void **state)
{
    (void)state;
    char failed[300];
    snprintf(failed, sizeof(failed), "%s/nofailed", dir);
    for (int i = 0; i < 30; i++) {
        char name[32];
        snprintf(name, sizeof(name), "x%02d.txt", i);
        archived(name, 1, 60 * DAY_MS);
    }
    struct pd_watch w;
    make_watch(&w, pd_test_dir, failed);
    logged();
    assert_int_equal(pd_retention_run(&w, NULL), 0);
    for (int i = 0; i < 30; i++) {
        char name[32];
        snprintf(name, sizeof(name), "x%02d.txt", i);
        assert_false(exists(name));
    }
    const char *log = logged();
    assert_int_equal(count(log, "event=retention_removed"), 60);
    assert_int_equal(count(log, "event=retention_swept"), 1);
    assert_non_null(strstr(log, "removed=60 removed_bytes=240 archive_files=0"));
}

/* ---- supersede ---------------------------------------------------------------------------- */

static void write_text(const char *name, const char *text, int64_t age_ms)
{
    pd_test_write(at(name), text);
    if (age_ms) {
        struct timespec t[2];
        int64_t ms = real_now() - age_ms;
        t[0].tv_sec = ms / 1000;
        t[0].tv_nsec = 0;
        t[1] = t[0];
        assert_int_equal(utimensat(AT_FDCWD, at(name), t, 0), 0);
    }
}

static cJSON *read_json(const char *name)
{
    static char buf[65536];
    FILE *f = fopen(at(name), "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    cJSON *o = cJSON_Parse(buf);
    assert_non_null(o);
    return o;
}

static const char *str(cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static time_t mtime_of(const char *name)
{
    struct stat st;
    assert_int_equal(stat(at(name), &st), 0);
    return st.st_mtime;
}

static void test_supersede(void **state)
{
    (void)state;
    char failed[300], archivedp[300];
    assert_int_equal(mkdir(at("failed"), 0750), 0);
    assert_int_equal(mkdir(at("archive"), 0750), 0);
    snprintf(failed, sizeof(failed), "%s", at("failed"));
    snprintf(archivedp, sizeof(archivedp), "%s", at("archive/broken.json"));

    /* Two failed copies of broken.json (the second the newer), one of another file whose
     * copy got a number in the same series, and one of an unrelated file. */
    write_text("failed/broken.json", "[1,", 0);
    write_text("failed/broken.json.error.json",
               "{\"file\": \"broken.json\", \"result\": \"failed\", \"reason\": \"cut short\"}\n",
               3 * DAY_MS);
    write_text("failed/broken.1.json", "[2,", 0);
    write_text("failed/broken.1.json.error.json",
               "{\"file\": \"broken.json\", \"result\": \"failed\"}\n", 2 * DAY_MS);
    write_text("failed/broken.2.json.error.json",
               "{\"file\": \"sub/broken.json\", \"result\": \"failed\"}\n", DAY_MS);
    write_text("failed/other.json.error.json", "{\"file\": \"other.json\"}\n", DAY_MS);
    write_text("archive/broken.json", "[1,2]", 0);
    write_text("archive/broken.json.receipt.json",
               "{\n\t\"file\":\t\"broken.json\",\n\t\"result\":\t\"delivered\"\n}\n", 60 * 1000);
    time_t t0 = mtime_of("failed/broken.json.error.json"),
           t1 = mtime_of("failed/broken.1.json.error.json"),
           tr = mtime_of("archive/broken.json.receipt.json");
    logged();

    char *sup = NULL;
    assert_int_equal(
        pd_retention_supersede("orders", failed, NULL, "broken.json", archivedp, 1700000000000ULL, &sup),
        0);
    assert_non_null(sup);
    assert_string_equal(sup, "broken.1.json"); /* the latest failure */
    free(sup);

    cJSON *o = read_json("archive/broken.json.receipt.json");
    assert_string_equal(str(o, "supersedes"), "broken.1.json");
    assert_string_equal(str(o, "result"), "delivered"); /* the rest as it was */
    cJSON_Delete(o);
    assert_int_equal(mtime_of("archive/broken.json.receipt.json"), tr);

    o = read_json("failed/broken.json.error.json");
    assert_string_equal(str(o, "superseded_by"), "broken.json");
    assert_string_equal(str(o, "superseded_at"), "2023-11-14T22:13:20.000Z");
    assert_string_equal(str(o, "reason"), "cut short");
    cJSON_Delete(o);
    o = read_json("failed/broken.1.json.error.json");
    assert_string_equal(str(o, "superseded_by"), "broken.json");
    cJSON_Delete(o);
    /* Retention still counts from the failure. */
    assert_int_equal(mtime_of("failed/broken.json.error.json"), t0);
    assert_int_equal(mtime_of("failed/broken.1.json.error.json"), t1);
    /* Another original name, another file: untouched. */
    o = read_json("failed/broken.2.json.error.json");
    assert_null(str(o, "superseded_by"));
    cJSON_Delete(o);
    o = read_json("failed/other.json.error.json");
    assert_null(str(o, "superseded_by"));
    cJSON_Delete(o);
    assert_true(exists("failed/broken.json")); /* kept in place until failed_keep */
    const char *log = logged();
    assert_int_equal(count(log, "event=superseded watch=orders"), 2);
    assert_non_null(strstr(log, "failed=broken.1.json archived=broken.json"));

    /* Delivered again: nothing left to mark. */
    write_text("archive/broken.1.json.receipt.json", "{\"file\": \"broken.json\"}\n", 0);
    snprintf(archivedp, sizeof(archivedp), "%s", at("archive/broken.1.json"));
    assert_int_equal(
        pd_retention_supersede("orders", failed, NULL, "broken.json", archivedp, 1700000000000ULL, &sup),
        0);
    assert_null(sup);
    o = read_json("archive/broken.1.json.receipt.json");
    assert_null(str(o, "supersedes"));
    cJSON_Delete(o);

    /* A gap (the first copy removed by retention) is looked past; a subfolder's file is found
     * by its whole name; no failed folder at all is nothing to do. */
    unlink(at("failed/broken.json.error.json"));
    unlink(at("failed/broken.1.json.error.json"));
    write_text("archive/b.receipt.json", "{\"file\": \"sub/broken.json\"}\n", 0);
    snprintf(archivedp, sizeof(archivedp), "%s", at("archive/b"));
    assert_int_equal(pd_retention_supersede("orders", failed, NULL, "sub/broken.json", archivedp,
                                            1700000000000ULL, &sup),
                     0);
    assert_non_null(sup);
    assert_string_equal(sup, "broken.2.json");
    free(sup);
    assert_int_equal(pd_retention_supersede("orders", at("nothing"), NULL, "x", archivedp, 0, &sup), 0);
    assert_null(sup);
}

/* A name that is not UTF-8 is matched by its exact bytes ("file_hex"). */
static void test_supersede_bytes(void **state)
{
    (void)state;
    char failed[300], archivedp[300];
    assert_int_equal(mkdir(at("failed"), 0750), 0);
    snprintf(failed, sizeof(failed), "%s", at("failed"));
    write_text("failed/caf\xe9.csv.error.json",
               "{\"file\": \"caf\xc3\xa9.csv\", \"file_hex\": \"636166e92e637376\"}\n", DAY_MS);
    write_text("caf\xe9.csv.receipt.json", "{\"file\": \"caf\xc3\xa9.csv\"}\n", 0);
    snprintf(archivedp, sizeof(archivedp), "%s", at("caf\xe9.csv"));
    char *sup = NULL;
    assert_int_equal(
        pd_retention_supersede("orders", failed, NULL, "caf\xe9.csv", archivedp, 1700000000000ULL, &sup),
        0);
    assert_non_null(sup);
    assert_string_equal(sup, "caf\xe9.csv");
    free(sup);
    cJSON *o = read_json("caf\xe9.csv.receipt.json");
    assert_string_equal(str(o, "supersedes_hex"), "636166e92e637376");
    cJSON_Delete(o);
    o = read_json("failed/caf\xe9.csv.error.json");
    assert_string_equal(str(o, "superseded_by_hex"), "636166e92e637376");
    cJSON_Delete(o);
}

int main(void)
{
    return PD_RUN_TESTS(NULL, NULL, test_plan_ages, test_plan_lone_grace, test_plan_size_cap,
                        test_plan_receipt_never_first, test_roles) +
           PD_RUN_TESTS(setup, teardown, test_sweep_ages, test_sweep_size_cap, test_sweep_bounded,
                        test_sweep_refuses, test_daemon_object, test_run_once, test_supersede,
                        test_supersede_bytes);
}
