/* Unit tests of the pure half of lookups: reading a lookup file, the diff, URLs, reports. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include "testlib.h"

#include "pd_config.h"
#include "pd_error.h"
#include "pd_lookup.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int read_text(const char *text, struct pd_lookup_rows *rows, char **msg)
{
    return pd_lookup_read_csv(-1, text, strlen(text), "m.csv", rows, msg);
}

/* Checks that MSG holds each of NEEDLES (up to NULL). */
static void expect_said(const char *msg, const char *const needles[])
{
    for (size_t i = 0; needles[i]; i++)
        if (!strstr(msg, needles[i]))
            fail_msg("'%s' not in: %s", needles[i], msg);
}

/* Reads TEXT, which must be refused with RC (no rows) in words holding each of NEEDLES.
 * Returns the words, for the caller to free. */
static char *expect_refused(const char *text, int rc, const char *const needles[])
{
    struct pd_lookup_rows rows;
    char *msg = NULL;
    assert_int_equal(read_text(text, &rows, &msg), rc);
    assert_int_equal(rows.n, 0);
    expect_said(msg, needles);
    return msg;
}

static void test_reads_header_in_any_order_with_extra_columns(void **state)
{
    struct pd_lookup_rows rows;
    char *msg = NULL;
    (void)state;
    assert_int_equal(read_text("\xEF\xBB\xBF"
                               "id, Right_Value ,note,LEFT_VALUE\r\n"
                               "7,United Parcel,x,UPS\r\n"
                               "\r\n"
                               ",,,\r\n"
                               "8,\"DHL, Express\",y,DHL\r\n"
                               "9,,z,EMPTY-RIGHT\r\n",
                               &rows, &msg),
                     0);
    assert_null(msg);
    assert_int_equal(rows.n, 3);
    assert_string_equal(rows.v[0].left, "UPS");
    assert_string_equal(rows.v[0].right, "United Parcel");
    assert_int_equal(rows.v[0].line, 2);
    assert_string_equal(rows.v[1].left, "DHL");
    assert_string_equal(rows.v[1].right, "DHL, Express");
    assert_int_equal(rows.v[1].line, 5);
    assert_string_equal(rows.v[2].right, "");
    assert_null(rows.v[0].id);
    pd_lookup_rows_cleanup(&rows);
}

static void test_bad_rows_are_all_named(void **state)
{
    (void)state;
    free(expect_refused("left_value,right_value\n"
                        "A,1\n"
                        "B,2,extra\n"
                        ",3\n"
                        "\"C\"x,4\n"
                        "D,5\n",
                        PD_EPARSE,
                        (const char *const[]){"m.csv: line 3: 3 values where the header has 2",
                                              "m.csv: line 4: left_value is empty",
                                              "m.csv: line 5: text after the closing quote",
                                              "3 bad rows; fix them and try again (nothing was "
                                              "changed)",
                                              NULL}));
}

static void test_many_bad_rows_are_counted(void **state)
{
    char text[4096] = "left_value,right_value\n";
    (void)state;
    for (int i = 0; i < 30; i++)
        strcat(text, ",x\n");
    char *msg = expect_refused(text, PD_EPARSE,
                               (const char *const[]){"line 21: left_value is empty",
                                                     "... and 10 more", "30 bad rows", NULL});
    assert_null(strstr(msg, "line 22:"));
    free(msg);
}

static void test_header_and_empty_file(void **state)
{
    struct pd_lookup_rows rows;
    char *msg = NULL;
    (void)state;
    free(expect_refused("a,b\n1,2\n", PD_EPARSE,
                        (const char *const[]){"line 1: the first row must be the header", NULL}));
    free(expect_refused("\n\n", PD_EEMPTY, (const char *const[]){"the file has no rows", NULL}));
    /* a header alone is a valid, empty lookup file */
    assert_int_equal(read_text("left_value,right_value\n", &rows, &msg), 0);
    assert_int_equal(rows.n, 0);
    pd_lookup_rows_cleanup(&rows);
}

static void add_row(struct pd_lookup_rows *r, const char *id, const char *left, const char *right,
                    uint64_t line)
{
    r->v = realloc(r->v, (r->n + 1) * sizeof(*r->v));
    r->v[r->n].id = id ? strdup(id) : NULL;
    r->v[r->n].left = strdup(left);
    r->v[r->n].right = strdup(right);
    r->v[r->n].line = line;
    r->n++;
    r->cap = r->n;
}

/* One row given to ADD_ROWS: id (NULL: none), left, right, file line. */
struct row_in {
    const char *id, *left, *right;
    uint64_t line;
};

static void add_rows(struct pd_lookup_rows *r, const struct row_in *in, size_t n)
{
    for (size_t i = 0; i < n; i++)
        add_row(r, in[i].id, in[i].left, in[i].right, in[i].line);
}

/* ADD_ROWS(&rows, {id, left, right, line}, ...): the rows, in order. */
#define ADD_ROWS(r, ...)                                                                           \
    add_rows(r, (const struct row_in[]){__VA_ARGS__},                                              \
             sizeof((const struct row_in[]){__VA_ARGS__}) / sizeof(struct row_in))

/* What a diff test works on: the file's rows, the lookup's, the plan and the words. */
struct diff {
    struct pd_lookup_rows file, remote;
    struct pd_lookup_plan plan;
    char *msg;
};

/* Checks every count of a plan. */
static void expect_plan(const struct pd_lookup_plan *p, size_t n, size_t adds, size_t updates,
                        size_t deletes, size_t unchanged, size_t kept)
{
    assert_int_equal(p->n, n);
    assert_int_equal(p->adds, adds);
    assert_int_equal(p->updates, updates);
    assert_int_equal(p->deletes, deletes);
    assert_int_equal(p->unchanged, unchanged);
    assert_int_equal(p->kept, kept);
}

static void diff_cleanup(struct diff *d)
{
    pd_lookup_plan_cleanup(&d->plan);
    pd_lookup_rows_cleanup(&d->file);
    pd_lookup_rows_cleanup(&d->remote);
}

static void test_diff_adds_updates_deletes(void **state)
{
    struct diff d = {0};
    (void)state;
    ADD_ROWS(&d.file, {NULL, "same", "1", 2}, {NULL, "changed", "new", 3}, {NULL, "added", "x", 4});
    /* 13: the lookup's own duplicate of "same" */
    ADD_ROWS(&d.remote, {"10", "gone", "g", 0}, {"11", "changed", "old", 0}, {"12", "same", "1", 0},
             {"13", "same", "dup", 0});

    assert_int_equal(pd_lookup_diff(&d.file, &d.remote, false, "f", &d.plan, &d.msg), 0);
    expect_plan(&d.plan, 2, 1, 1, 0, 1, 2);
    /* file order: line 3's update before line 4's add */
    assert_int_equal(d.plan.v[0].op, PD_LOOKUP_UPDATE);
    assert_string_equal(d.plan.v[0].remote->id, "11");
    assert_string_equal(d.plan.v[0].file->right, "new");
    assert_int_equal(d.plan.v[1].op, PD_LOOKUP_ADD);
    assert_string_equal(d.plan.v[1].file->left, "added");
    pd_lookup_plan_cleanup(&d.plan);

    assert_int_equal(pd_lookup_diff(&d.file, &d.remote, true, "f", &d.plan, &d.msg), 0);
    expect_plan(&d.plan, 4, 1, 1, 2, 1, 0);
    /* deletes come last, in the lookup's order */
    assert_int_equal(d.plan.v[2].op, PD_LOOKUP_DELETE);
    assert_string_equal(d.plan.v[2].remote->id, "10");
    assert_string_equal(d.plan.v[3].remote->id, "13");
    pd_lookup_plan_cleanup(&d.plan);

    /* an empty lookup: everything is added; an identical one: nothing to do */
    struct pd_lookup_rows none = {0};
    assert_int_equal(pd_lookup_diff(&d.file, &none, true, "f", &d.plan, &d.msg), 0);
    expect_plan(&d.plan, 3, 3, 0, 0, 0, 0);
    pd_lookup_plan_cleanup(&d.plan);
    assert_int_equal(pd_lookup_diff(&d.file, &d.file, true, "f", &d.plan, &d.msg), 0);
    expect_plan(&d.plan, 0, 0, 0, 0, 3, 0);
    diff_cleanup(&d);
}

static void test_diff_duplicate_left_values_name_both_lines(void **state)
{
    struct diff d = {0};
    (void)state;
    ADD_ROWS(&d.file, {NULL, "A", "1", 2}, {NULL, "B", "1", 3}, {NULL, "A", "2", 17});
    assert_int_equal(pd_lookup_diff(&d.file, &d.remote, false, "f.csv", &d.plan, &d.msg),
                     PD_EPARSE);
    assert_non_null(
        strstr(d.msg, "f.csv: line 2 and line 17 both have the left value \"A\"; keep one row"));
    assert_int_equal(d.plan.n, 0);
    free(d.msg);
    pd_lookup_rows_cleanup(&d.file);
}

/* Values are compared as exact bytes: case and spaces matter, as they do to a flow. */
static void test_diff_is_exact(void **state)
{
    struct diff d = {0};
    (void)state;
    ADD_ROWS(&d.file, {NULL, "ups", "x", 2}, {NULL, "DHL", "y ", 3});
    ADD_ROWS(&d.remote, {"1", "UPS", "x", 0}, {"2", "DHL", "y", 0});
    assert_int_equal(pd_lookup_diff(&d.file, &d.remote, false, "f", &d.plan, &d.msg), 0);
    expect_plan(&d.plan, 2, 1, 1, 0, 0, 1);
    diff_cleanup(&d);
}

static void test_urls(void **state)
{
    struct pd_patchworks pw = {.lookups_url = "http://h:1/core-main/api/v1/"};
    char *u = NULL;
    (void)state;
    assert_int_equal(pd_lookup_url(&pw, "/cross-reference-lookups/{id}/values", "7", NULL, 3, &u),
                     0);
    assert_string_equal(
        u, "http://h:1/core-main/api/v1/cross-reference-lookups/7/values?page=3&per_page=100");
    free(u);
    assert_int_equal(pd_lookup_url(&pw, "/maps/{id}/values/{value_id}", "7", "99", 0, &u), 0);
    assert_string_equal(u, "http://h:1/core-main/api/v1/maps/7/values/99");
    free(u);
    /* ids never change the path */
    assert_int_equal(pd_lookup_url(&pw, "/x/{id}", "../admin", NULL, 0, &u), PD_ECONFIG);
    assert_int_equal(pd_lookup_url(&pw, "/x/{id}", "7?a=b", NULL, 0, &u), PD_ECONFIG);
    assert_int_equal(pd_lookup_url(&pw, "/x/{id}", "", NULL, 0, &u), PD_ECONFIG);
    assert_null(u);
    assert_true(pd_lookup_id_valid("abc-1_2.3"));
    assert_false(pd_lookup_id_valid(".."));
    assert_false(pd_lookup_id_valid("a/b"));
}

static void test_export_round_trips(void **state)
{
    struct pd_lookup_rows rows = {0}, back;
    char *csv, *msg = NULL;
    size_t len;
    (void)state;
    ADD_ROWS(&rows, {"1", "plain", "value", 0}, {"2", "comma, inside", "quote \" inside", 0},
             {"3", "multi\nline", "", 0}, {"4", " spaced ", "\xC3\xA9t\xC3\xA9", 0});
    assert_int_equal(pd_lookup_write_csv(&rows, &csv, &len), 0);
    assert_int_equal(pd_lookup_read_csv(-1, csv, len, "x", &back, &msg), 0);
    assert_int_equal(back.n, rows.n);
    for (size_t i = 0; i < rows.n; i++) {
        assert_string_equal(back.v[i].left, rows.v[i].left);
        assert_string_equal(back.v[i].right, rows.v[i].right);
    }
    free(csv);
    pd_lookup_rows_cleanup(&rows);
    pd_lookup_rows_cleanup(&back);
}

static void test_report_json_and_receipt(void **state)
{
    struct diff d = {0};
    char words[300];
    (void)state;
    ADD_ROWS(&d.file, {NULL, "A", "1", 2}, {NULL, "B", "2", 3});
    add_row(&d.remote, "5", "B", "old", 0);
    assert_int_equal(pd_lookup_diff(&d.file, &d.remote, false, "f", &d.plan, &d.msg), 0);
    d.plan.v[0].state = PD_LOOKUP_DONE;
    d.plan.v[0].new_id = strdup("9");
    d.plan.v[1].state = PD_LOOKUP_REFUSED;
    d.plan.v[1].status = 422;
    d.plan.v[1].message = strdup("The right value is too long.");
    struct pd_lookup_sync_report r = {.err = PD_EREJECTED,
                                      .message = "1 of 2 changes were refused",
                                      .lookup_id = "7",
                                      .file = "f.csv",
                                      .file_rows = 2,
                                      .lookup_rows = 1,
                                      .plan = &d.plan,
                                      .added = 1,
                                      .refused = 1};
    pd_lookup_sync_summary(&r, words, sizeof(words));
    assert_string_equal(words, "1 added, 0 updated, 0 deleted, 0 unchanged, 1 REFUSED");
    char *json = pd_lookup_sync_json(&r, true);
    cJSON *o = cJSON_Parse(json);
    assert_non_null(o);
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(o, "ok")));
    assert_int_equal(cJSON_GetObjectItem(o, "added")->valueint, 1);
    cJSON *ch = cJSON_GetObjectItem(o, "changes");
    assert_int_equal(cJSON_GetArraySize(ch), 2);
    cJSON *c0 = cJSON_GetArrayItem(ch, 0), *c1 = cJSON_GetArrayItem(ch, 1);
    assert_string_equal(cJSON_GetObjectItem(c0, "value_id")->valuestring, "9");
    assert_string_equal(cJSON_GetObjectItem(c1, "state")->valuestring, "refused");
    assert_string_equal(cJSON_GetObjectItem(c1, "old_right_value")->valuestring, "old");
    assert_int_equal(cJSON_GetObjectItem(c1, "line")->valueint, 3);
    cJSON_Delete(o);

    char *receipt = pd_lookup_receipt("{\"file\":\"f.csv\",\"result\":\"failed\"}", json);
    o = cJSON_Parse(receipt);
    assert_string_equal(cJSON_GetObjectItem(o, "file")->valuestring, "f.csv");
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(o, "lookup"), "lookup_id")->valuestring, "7");
    cJSON_Delete(o);
    assert_null(pd_lookup_receipt("not json", json));
    free(receipt);
    free(json);

    r.dry_run = true;
    pd_lookup_sync_summary(&r, words, sizeof(words));
    assert_non_null(strstr(words, "dry run, nothing changed: would add 1, update 1, delete 0"));
    diff_cleanup(&d);
}

/* Loads a config naming a drop folder; returns rc, with *errors or *cfg. */
static int load_conf2(const char *pw_keys, const char *watch_keys, struct pd_config **cfg,
                      char **errors)
{
    char dir[] = "/tmp/pd-test-lookup-XXXXXX", path[600], drop[600];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/c.conf", dir);
    snprintf(drop, sizeof(drop), "%s/drop", dir);
    mkdir(drop, 0700);
    FILE *f = fopen(path, "w");
    fprintf(f, "[patchworks]\nemail = a@b.c\npassword = pw\n%s[watch:w]\npath = drop\n%s", pw_keys,
            watch_keys);
    fclose(f);
    chmod(path, 0600);
    int rc = pd_config_load(path, cfg, errors);
    unlink(path);
    rmdir(drop);
    rmdir(dir);
    return rc;
}

static int load_conf(const char *watch_keys, struct pd_config **cfg, char **errors)
{
    return load_conf2("", watch_keys, cfg, errors);
}

/* A config with these keys is refused, saying NEEDLE. */
static void expect_conf_error(const char *pw_keys, const char *watch_keys, const char *needle)
{
    struct pd_config *cfg = NULL;
    char *errors = NULL;
    assert_int_equal(load_conf2(pw_keys, watch_keys, &cfg, &errors), PD_ECONFIG);
    assert_non_null(strstr(errors, needle));
    free(errors);
}

static void test_config_lookup_watch(void **state)
{
    struct pd_config *cfg = NULL;
    char *errors = NULL;
    (void)state;
    assert_int_equal(load_conf("lookup_id = 17\ndelete_missing = yes\n", &cfg, &errors), 0);
    assert_string_equal(cfg->watches[0].lookup_id, "17");
    assert_null(cfg->watches[0].flow_id);
    assert_true(cfg->watches[0].delete_missing);
    assert_string_equal(cfg->pw.lookup_rows_path, "/cross-reference-lookups/{id}/values");
    assert_string_equal(cfg->pw.lookup_value_path,
                        "/cross-reference-lookups/{id}/values/{value_id}");
    assert_int_equal(cfg->pw.lookup_update_method, PD_UPDATE_PUT);
    pd_config_destroy(&cfg);

    expect_conf_error("", "lookup_id = 17\nflow_id = 3\n", "has both flow_id and lookup_id");
    expect_conf_error("", "", "has no flow_id");
    expect_conf_error("", "lookup_id = 17\nversion_id = 2\n", "version_id belongs to a flow");
    expect_conf_error("lookup_value_path = /maps/{id}/values\n", "flow_id = 1\n",
                      "holding {id} and {value_id}");
    assert_int_equal(load_conf2("lookup_rows_path = /maps/{id}/rows\nlookups_path = /maps\n"
                                "lookup_update_method = patch\n",
                                "flow_id = 1\n", &cfg, &errors),
                     0);
    assert_int_equal(cfg->pw.lookup_update_method, PD_UPDATE_PATCH);
    pd_config_destroy(&cfg);
}

int main(void)
{
    return PD_RUN_TESTS(
        NULL, NULL, test_reads_header_in_any_order_with_extra_columns, test_bad_rows_are_all_named,
        test_many_bad_rows_are_counted, test_header_and_empty_file, test_diff_adds_updates_deletes,
        test_diff_duplicate_left_values_name_both_lines, test_diff_is_exact, test_urls,
        test_export_round_trips, test_report_json_and_receipt, test_config_lookup_watch);
}
