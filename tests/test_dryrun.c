/* --dry-run of run --once and send (src/cli/cli_dryrun.c): one line per file, the summary, and
 * nothing touched, over a real config and drop folder in a temporary folder. */
#include "testlib.h"

#include "pd_cli.h"
#include "pd_config.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

static struct pd_config *cfg;
static char drop[512];

static int setup(void **state)
{
    char conf[600], text[2048], *errors = NULL;
    if (pd_test_setup(state))
        return -1;
    snprintf(drop, sizeof(drop), "%s/drop", pd_test_dir);
    snprintf(conf, sizeof(conf), "%s/c.conf", pd_test_dir);
    snprintf(text, sizeof(text),
             "[patchworks]\nemail = a@example.com\npassword = x\n"
             "start_url = http://127.0.0.1:1/api\nmax_body = 300\n"
             "[state]\ndir = %s/state\n"
             "[watch:w]\npath = %s\nwork_dir = %s/own\nflow_id = 1\nsettle = 1m\n"
             "recursive = yes\n",
             pd_test_dir, drop, pd_test_dir);
    pd_test_write(conf, text);
    chmod(conf, 0600);
    if (mkdir(drop, 0700) || mkdir(pd_test_path(drop, "sub"), 0700))
        return -1;
    int rc = pd_config_load(conf, &cfg, &errors);
    if (rc)
        fprintf(stderr, "%s\n", errors ? errors : "");
    free(errors);
    return rc;
}

static int teardown(void **state)
{
    pd_config_destroy(&cfg);
    return pd_test_teardown(state);
}

/* An old file: settled. */
static void old_file(const char *rel, const char *text)
{
    struct timespec t[2] = {{.tv_sec = time(NULL) - 3600}, {.tv_sec = time(NULL) - 3600}};
    pd_test_write(pd_test_path(drop, rel), text);
    assert_int_equal(utimensat(AT_FDCWD, pd_test_path(drop, rel), t, 0), 0);
}

static char out[8192];

/* What F holds into out; F closed. */
static void read_back(FILE *f)
{
    rewind(f);
    size_t n = fread(out, 1, sizeof(out) - 1, f);
    out[n] = '\0';
    fclose(f);
}

static int dry_run(void)
{
    FILE *f = tmpfile();
    int rc = pd_cli_dryrun_run(cfg, f);
    read_back(f);
    return rc;
}

static void test_run_verdicts(void **state)
{
    (void)state;
    char big[2048] = "[";
    for (int i = 0; i < 100; i++)
        strcat(big, i ? ",{\"n\":1}" : "{\"n\":1}");
    strcat(big, "]");
    old_file("sub/big.json", big);
    old_file("a.csv", "a,b\n1,2\n");
    pd_test_write(pd_test_path(drop, "fresh.txt"), "now");
    pd_test_write(pd_test_path(drop, ".hidden"), "x");
    assert_int_equal(dry_run(), 0);
    assert_non_null(strstr(out, "w: a.csv: take: 8 bytes, csv, 1 chunk(s) of "));
    assert_non_null(strstr(out, "w: sub/big.json: take: 801 bytes, json, "));
    assert_non_null(strstr(out, "100 record(s)"));
    assert_non_null(strstr(out, "w: fresh.txt: skip (settling): changed "));
    assert_non_null(strstr(out, "w: .hidden: skip (excluded): excluded by the glob .*"));
    assert_non_null(strstr(out, "dry run: 2 file(s) would be taken ("));
    assert_non_null(strstr(out, "2 skipped, 0 would fail; nothing was sent, moved or changed"));
    /* Nothing moved: both still there, no work/ made. */
    struct stat st;
    assert_int_equal(stat(pd_test_path(drop, "a.csv"), &st), 0);
    assert_int_equal(stat(pd_test_path(drop, "sub/big.json"), &st), 0);
}

static void test_would_fail(void **state)
{
    (void)state;
    old_file("broken.json", "{\"a\": ");
    assert_int_equal(dry_run(), 1);
    assert_non_null(strstr(out, "w: broken.json: would fail: "));
    assert_non_null(strstr(out, "1 would fail"));
}

/* send --dry-run of PATHS: its exit status, its lines in out. */
static int dry_send(char **paths, int n)
{
    FILE *f = tmpfile();
    int rc = pd_cli_dryrun_send(cfg, NULL, paths, n, f);
    read_back(f);
    return rc;
}

static void test_send(void **state)
{
    (void)state;
    const char *path = pd_test_path(pd_test_dir, "x.ndjson");
    pd_test_write(path, "{\"a\":1}\n{\"a\":2}\n");
    char *paths[] = {(char *)path, (char *)pd_test_path(pd_test_dir, "nosuch")};
    assert_int_equal(dry_send(paths, 2), 1);
    assert_non_null(strstr(out, "x.ndjson: take: 16 bytes, ndjson, 1 chunk(s)"));
    assert_non_null(strstr(out, "nosuch: would fail: No such file or directory"));
    assert_non_null(strstr(out, "dry run: 1 file(s) would be sent"));
}

/* A compressed file: said to be one, expanded for a look when small, refused when it lies. */
static void test_compressed(void **state)
{
    (void)state;
    const char *path = pd_test_path(pd_test_dir, "x.ndjson.gz");
    gzFile g = gzopen(path, "wb");
    assert_int_equal(gzwrite(g, "{\"a\":1}\n{\"a\":2}\n", 16), 16);
    gzclose(g);
    const char *liar = pd_test_path(pd_test_dir, "y.csv.zst");
    pd_test_write(liar, "a,b\n");
    char *paths[] = {(char *)path, (char *)liar};
    assert_int_equal(mkdir(pd_test_path(pd_test_dir, "state"), 0700), 0);
    assert_int_equal(dry_send(paths, 2), 1);
    assert_non_null(strstr(out, "x.ndjson.gz: take: "));
    assert_non_null(strstr(out, " bytes, gzip of x.ndjson, expanded: ndjson, 1 chunk(s)"));
    assert_non_null(strstr(out, "y.csv.zst: would fail: the name "));
    assert_non_null(strstr(out, "says zstd, but the file is not compressed"));
}

int main(void)
{
    return PD_RUN_TESTS(setup, teardown, test_run_verdicts, test_would_fail, test_send,
                        test_compressed);
}
