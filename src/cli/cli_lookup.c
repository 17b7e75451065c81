/*
 * `patchdrop lookup`: manages cross-reference lookups and syncs CSV files into them
 * (pd_lookup.h). Output is a readable table, or JSON with --json for scripts; export writes
 * CSV. Exit status: 0 done, 1 something refused or failed (a bad CSV file included), 2 usage
 * or configuration (credentials Patchworks refused included).
 */
#include "pd_cli.h"
#include "pd_cli_net.h"
#include "pd_client.h"
#include "pd_config.h"
#include "pd_error.h"
#include "pd_log.h"
#include "pd_lookup.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TABLE_MAX_ROWS 50 /* changes shown in a sync's table; --json has them all */
#define CELL_MAX 40       /* characters of a table cell */
#define SAFE_LEN 2048     /* bytes of one escaped message or value printed (cut beyond) */

enum sub { S_LIST, S_SHOW, S_CREATE, S_ROWS, S_ADD, S_UPDATE, S_DELETE, S_EXPORT, S_SYNC };

static const struct {
    const char *name;
    int nargs;        /* positional arguments after the subcommand */
    const char *args; /* what they are, for a message */
} subs[] = {{"list", 0, "no argument"},
            {"show", 1, "ID"},
            {"create", 0, "no argument, only --name N [--description D] [--default V]"},
            {"rows", 1, "ID"},
            {"add", 3, "ID LEFT RIGHT"},
            {"update", 2, "ID VALUEID"},
            {"delete", 2, "ID VALUEID"},
            {"export", 1, "ID"},
            {"sync", 2, "ID FILE.csv"}};

struct args {
    const char *config;
    bool json, quiet, dry_run, delete_missing;
    const char *name, *description, *def, *left, *right;
    enum sub sub;
    char **pos; /* the subcommand's positional arguments */
};

struct run {
    struct pd_cli_net net;
    const struct pd_config *cfg;
    struct args *a;
    int exit;
    bool tty;
    uv_timer_t progress;
    bool progress_on;
    struct pd_lookup_sync *sync;
};

enum { O_JSON = 256, O_NAME, O_DESC, O_DEFAULT, O_LEFT, O_RIGHT, O_DRY, O_DELETE };

static const struct option lookup_opts[] = {{"json", no_argument, NULL, O_JSON},
                                            {"name", required_argument, NULL, O_NAME},
                                            {"description", required_argument, NULL, O_DESC},
                                            {"default", required_argument, NULL, O_DEFAULT},
                                            {"left", required_argument, NULL, O_LEFT},
                                            {"right", required_argument, NULL, O_RIGHT},
                                            {"dry-run", no_argument, NULL, O_DRY},
                                            {"delete-missing", no_argument, NULL, O_DELETE},
                                            {NULL, 0, NULL, 0}};

static const struct pd_cli_spec spec = {
    .name = "lookup",
    .synopsis = "[-c FILE] [-q] [--json] COMMAND ...",
    .help = "  list                                    every lookup (all pages)\n"
            "  show ID                                 one lookup\n"
            "  create --name N [--description D] [--default V]\n"
            "  rows ID                                 every row of a lookup (all pages)\n"
            "  add ID LEFT RIGHT                       add a row\n"
            "  update ID VALUEID [--left L] [--right R]  change a row (at least one of them)\n"
            "  delete ID VALUEID                       delete a row\n"
            "  export ID                               the rows as CSV (left_value,right_value)\n"
            "  sync ID FILE.csv [--dry-run] [--delete-missing]\n"
            "      make the lookup match the file: add missing left values, update changed\n"
            "      right values, and with --delete-missing delete rows not in the file\n"
            "  -c, --config FILE  config file (default $PATCHDROP_CONFIG or "
            "/etc/patchdrop/patchdrop.conf)\n"
            "      --json         JSON on stdout instead of a table\n"
            "  -q, --quiet        no notes about retries and logins on stderr\n"
            "The CSV file has a header row naming left_value and right_value (other columns\n"
            "are ignored). Exit status: 0 done, 1 refused or failed, 2 usage or configuration.\n",
    .common = PD_CLI_CONFIG | PD_CLI_QUIET,
    .opts = lookup_opts,
    .max_args = -1,
};

/* ---- output helpers ----------------------------------------------------------------------------
 */

/* Characters of UTF-8 text (not bytes), for column widths. */
static size_t width_of(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        w += ((unsigned char)*s & 0xC0) != 0x80;
    return w;
}

/*
 * A cell's text: escaped for the terminal (pd_log_escape: lookups and server messages are
 * written by others), cut to CELL_MAX characters. Escaped, a character takes at most 4 bytes.
 */
static void cell(const char *s, char *out, size_t len)
{
    char safe[(CELL_MAX + 1) * 4 + 1];
    size_t n = 0, chars = 0;
    for (const char *p = pd_log_escape(s, safe, sizeof(safe)); *p && n + 5 < len; p++) {
        unsigned char c = (unsigned char)*p;
        if ((c & 0xC0) != 0x80 && ++chars > CELL_MAX) {
            memcpy(out + n, "...", 3);
            n += 3;
            break;
        }
        out[n++] = (char)c;
    }
    out[n] = '\0';
}

/* Text from Patchworks or a lookup, for one printf argument: escaped for the terminal. */
static const char *safe(const char *s, char buf[SAFE_LEN])
{
    return pd_log_escape(s, buf, SAFE_LEN);
}

struct table {
    size_t ncols, nrows;
    char **cells; /* nrows * ncols */
    size_t width[8];
};

static int table_add(struct table *t, const char *const *vals)
{
    char **c = realloc(t->cells, (t->nrows + 1) * t->ncols * sizeof(*c));
    if (!c)
        return PD_ENOMEM;
    t->cells = c;
    for (size_t i = 0; i < t->ncols; i++) {
        char buf[CELL_MAX * 4 + 8];
        cell(vals[i], buf, sizeof(buf));
        c[t->nrows * t->ncols + i] = strdup(buf);
        size_t w = width_of(buf);
        if (w > t->width[i])
            t->width[i] = w;
    }
    t->nrows++;
    return 0;
}

static void table_print(struct table *t, FILE *out)
{
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t i = 0; i < t->ncols; i++) {
            const char *v = t->cells[r * t->ncols + i] ? t->cells[r * t->ncols + i] : "";
            if (i + 1 == t->ncols)
                fprintf(out, "%s\n", v);
            else
                fprintf(out, "%s%*s  ", v, (int)(t->width[i] - width_of(v)), "");
        }
    }
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    t->cells = NULL;
    t->nrows = 0;
}

static void print_json(cJSON *o)
{
    char *text = cJSON_PrintUnformatted(o);
    if (text)
        printf("%s\n", text);
    free(text);
    cJSON_Delete(o);
}

static cJSON *info_json(const struct pd_lookup_info *l)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", l->id);
    cJSON_AddStringToObject(o, "name", l->name ? l->name : "");
    if (l->description)
        cJSON_AddStringToObject(o, "description", l->description);
    else
        cJSON_AddNullToObject(o, "description");
    if (l->default_value)
        cJSON_AddStringToObject(o, "default_value", l->default_value);
    else
        cJSON_AddNullToObject(o, "default_value");
    return o;
}

static cJSON *row_json(const struct pd_lookup_row *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", r->id ? r->id : "");
    cJSON_AddStringToObject(o, "left_value", r->left);
    cJSON_AddStringToObject(o, "right_value", r->right);
    return o;
}

/* An operation's failure on stderr; sets the exit status by its kind. */
static void report_error(struct run *rn, const char *what, const struct pd_lookup_result *r)
{
    char b[SAFE_LEN];
    fprintf(stderr, "patchdrop lookup: %s: %s", what,
            safe(r->message ? r->message : pd_strerror(r->err), b));
    if (r->status && !strstr(r->message ? r->message : "", "HTTP"))
        fprintf(stderr, " (HTTP %ld)", r->status);
    if (r->errors)
        fprintf(stderr, " [%s]", safe(r->errors, b));
    fputc('\n', stderr);
    rn->exit = r->err == PD_EAUTH || r->err == PD_ECONFIG ? PD_EXIT_USAGE : PD_EXIT_FAILED;
}

/* ---- operations' answers ------------------------------------------------------------------- */

static void on_list(void *arg, const struct pd_lookup_result *r)
{
    struct run *rn = arg;
    if (r->err) {
        report_error(rn, "cannot list the lookups", r);
        return;
    }
    if (rn->a->json) {
        cJSON *arr = cJSON_CreateArray();
        for (size_t i = 0; i < r->nlookups; i++)
            cJSON_AddItemToArray(arr, info_json(&r->lookups[i]));
        print_json(arr);
        return;
    }
    struct table t = {.ncols = 4};
    const char *head[] = {"ID", "NAME", "DEFAULT", "DESCRIPTION"};
    table_add(&t, head);
    for (size_t i = 0; i < r->nlookups; i++) {
        const struct pd_lookup_info *l = &r->lookups[i];
        const char *v[] = {l->id, l->name, l->default_value ? l->default_value : "",
                           l->description ? l->description : ""};
        table_add(&t, v);
    }
    table_print(&t, stdout);
    if (rn->tty)
        printf("%zu lookup(s)\n", r->nlookups);
}

static void on_one_lookup(void *arg, const struct pd_lookup_result *r)
{
    struct run *rn = arg;
    if (r->err) {
        report_error(
            rn, rn->a->sub == S_CREATE ? "cannot create the lookup" : "cannot read the lookup", r);
        return;
    }
    const struct pd_lookup_info *l = &r->lookups[0];
    if (rn->a->json) {
        print_json(info_json(l));
        return;
    }
    char b1[SAFE_LEN], b2[SAFE_LEN], b3[SAFE_LEN], b4[SAFE_LEN];
    if (rn->a->sub == S_CREATE)
        printf("created lookup %s\n", safe(l->id, b1));
    printf("id: %s\nname: %s\ndefault_value: %s\ndescription: %s\n", safe(l->id, b1),
           safe(l->name, b2), safe(l->default_value ? l->default_value : "(none)", b3),
           safe(l->description ? l->description : "(none)", b4));
}

static void on_rows_listed(void *arg, const struct pd_lookup_result *r)
{
    struct run *rn = arg;
    if (r->err) {
        report_error(rn, "cannot read the rows", r);
        return;
    }
    if (rn->a->sub == S_EXPORT) {
        char *csv;
        size_t len;
        if (pd_lookup_write_csv(r->rows, &csv, &len) != 0) {
            fprintf(stderr, "patchdrop lookup: out of memory\n");
            rn->exit = PD_EXIT_FAILED;
            return;
        }
        if (fwrite(csv, 1, len, stdout) != len || fflush(stdout) != 0) {
            fprintf(stderr, "patchdrop lookup: cannot write the CSV to stdout\n");
            rn->exit = PD_EXIT_FAILED;
        }
        free(csv);
        return;
    }
    if (rn->a->json) {
        cJSON *arr = cJSON_CreateArray();
        for (size_t i = 0; i < r->rows->n; i++)
            cJSON_AddItemToArray(arr, row_json(&r->rows->v[i]));
        print_json(arr);
        return;
    }
    struct table t = {.ncols = 3};
    const char *head[] = {"VALUE_ID", "LEFT_VALUE", "RIGHT_VALUE"};
    table_add(&t, head);
    for (size_t i = 0; i < r->rows->n; i++) {
        const struct pd_lookup_row *row = &r->rows->v[i];
        const char *v[] = {row->id, row->left, row->right};
        table_add(&t, v);
    }
    table_print(&t, stdout);
    if (rn->tty)
        printf("%zu row(s)\n", r->rows->n);
}

static void on_row_changed(void *arg, const struct pd_lookup_result *r)
{
    struct run *rn = arg;
    const char *verb = rn->a->sub == S_ADD ? "add" : rn->a->sub == S_UPDATE ? "update" : "delete";
    char what[64];
    if (r->err) {
        snprintf(what, sizeof(what), "cannot %s the row", verb);
        report_error(rn, what, r);
        return;
    }
    if (rn->a->sub == S_DELETE) {
        if (rn->a->json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "deleted", rn->a->pos[1]);
            print_json(o);
        } else {
            printf("deleted row %s of lookup %s\n", rn->a->pos[1], rn->a->pos[0]);
        }
        return;
    }
    const struct pd_lookup_row *row = r->rows && r->rows->n ? &r->rows->v[0] : NULL;
    if (rn->a->json) {
        print_json(row ? row_json(row) : cJSON_CreateObject());
        return;
    }
    char b1[SAFE_LEN], b2[SAFE_LEN], b3[SAFE_LEN];
    if (row)
        printf("%s row %s: %s -> %s\n", rn->a->sub == S_ADD ? "added" : "updated",
               safe(row->id, b1), safe(row->left, b2), safe(row->right, b3));
    else
        printf("%s\n", rn->a->sub == S_ADD ? "added" : "updated");
}

/* ---- sync ------------------------------------------------------------------------------------ */

static void stop_progress(struct run *rn)
{
    if (rn->progress_on) {
        fprintf(stderr, "\r\033[K");
        uv_close((uv_handle_t *)&rn->progress, NULL);
        rn->progress_on = false;
    }
}

static void on_progress_tick(uv_timer_t *t)
{
    struct run *rn = t->data;
    size_t done, total;
    if (!rn->sync)
        return;
    pd_lookup_sync_progress(rn->sync, &done, &total);
    if (total)
        fprintf(stderr, "\r\033[Ksyncing: %zu of %zu changes made", done, total);
}

static void sync_table(const struct pd_lookup_sync_report *r)
{
    struct table t = {.ncols = 6};
    const char *head[] = {"CHANGE", "LINE", "VALUE_ID", "LEFT_VALUE", "RIGHT_VALUE", "STATE"};
    size_t shown = 0;

    table_add(&t, head);
    for (size_t i = 0; i < r->plan->n && shown < TABLE_MAX_ROWS; i++, shown++) {
        const struct pd_lookup_change *ch = &r->plan->v[i];
        const struct pd_lookup_row *row = ch->file ? ch->file : ch->remote;
        char line[24] = "", right[CELL_MAX * 8 + 8], state[CELL_MAX * 4];
        if (ch->file)
            snprintf(line, sizeof(line), "%llu", (unsigned long long)ch->file->line);
        if (ch->op == PD_LOOKUP_UPDATE)
            snprintf(right, sizeof(right), "%.60s -> %.60s", ch->remote->right, ch->file->right);
        else
            snprintf(right, sizeof(right), "%s", row->right);
        snprintf(state, sizeof(state), "%s%s%s",
                 ch->state == PD_LOOKUP_DONE      ? "done"
                 : ch->state == PD_LOOKUP_REFUSED ? "REFUSED"
                 : r->dry_run                     ? "would do"
                                                  : "not tried",
                 ch->message ? ": " : "", ch->message ? ch->message : "");
        const char *v[] = {ch->op == PD_LOOKUP_ADD      ? "add"
                           : ch->op == PD_LOOKUP_UPDATE ? "update"
                                                        : "delete",
                           line,
                           ch->remote   ? ch->remote->id
                           : ch->new_id ? ch->new_id
                                        : "",
                           row->left,
                           right,
                           state};
        table_add(&t, v);
    }
    table_print(&t, stdout);
    if (r->plan->n > shown)
        printf("... and %zu more change(s); --json lists them all\n", r->plan->n - shown);
}

static void on_synced(void *arg, const struct pd_lookup_sync_report *r)
{
    struct run *rn = arg;
    char summary[400], b[SAFE_LEN];

    rn->sync = NULL;
    stop_progress(rn);
    pd_lookup_sync_summary(r, summary, sizeof(summary));
    if (rn->a->json) {
        char *text = pd_lookup_sync_json(r, true);
        if (text)
            printf("%s\n", text);
        free(text);
    } else {
        if (rn->tty && r->plan && r->plan->n)
            sync_table(r);
        if (r->plan)
            printf("lookup %s <- %s: %s\n", r->lookup_id, safe(r->file, b), summary);
    }
    if (r->err)
        fprintf(stderr, "patchdrop lookup sync: %s\n", safe(r->message, b));
    rn->exit = !r->err                                      ? PD_EXIT_OK
               : r->err == PD_EAUTH || r->err == PD_ECONFIG ? PD_EXIT_USAGE
                                                            : PD_EXIT_FAILED;
}

/* ---- command line ---------------------------------------------------------------------------- */

static int parse_args(int argc, char **argv, struct args *a)
{
    /* Where each option of ours goes, by its code from O_JSON: a flag set, or its value. */
    bool *flag[O_DELETE - O_JSON + 1] = {[O_JSON - O_JSON] = &a->json,
                                         [O_DRY - O_JSON] = &a->dry_run,
                                         [O_DELETE - O_JSON] = &a->delete_missing};
    const char **value[O_DELETE - O_JSON + 1] = {[O_NAME - O_JSON] = &a->name,
                                                 [O_DESC - O_JSON] = &a->description,
                                                 [O_DEFAULT - O_JSON] = &a->def,
                                                 [O_LEFT - O_JSON] = &a->left,
                                                 [O_RIGHT - O_JSON] = &a->right};
    struct pd_cli_parser p;
    int c;

    pd_cli_begin(&p, &spec, argc, argv);
    while ((c = pd_cli_next(&p)) > 0) {
        if (c < O_JSON || c > O_DELETE)
            continue;
        if (flag[c - O_JSON])
            *flag[c - O_JSON] = true;
        else if (value[c - O_JSON])
            *value[c - O_JSON] = p.arg;
    }
    if (c < 0)
        return p.status == PD_EXIT_OK ? -1 : p.status;
    a->config = p.config;
    a->quiet = p.quiet;
    if (p.nargs == 0)
        return pd_cli_usage_error(&spec, "name a command (list, show, create, rows, add, update, "
                                         "delete, export, sync)");
    size_t i;
    for (i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
        if (!strcmp(p.args[0], subs[i].name))
            break;
    if (i == sizeof(subs) / sizeof(subs[0]))
        return pd_cli_usage_error(&spec, "unknown command '%s'", p.args[0]);
    a->sub = (enum sub)i;
    a->pos = p.args + 1;
    int npos = p.nargs - 1;
    const char *bad = NULL;
    if (npos != subs[i].nargs)
        return pd_cli_usage_error(&spec, "%s takes %s", subs[i].name, subs[i].args);
    if ((a->name || a->description || a->def) && a->sub != S_CREATE)
        bad = "--name, --description and --default go with create";
    else if (a->sub == S_CREATE && (!a->name || !*a->name))
        bad = "create needs --name";
    else if ((a->left || a->right) && a->sub != S_UPDATE)
        bad = "--left and --right go with update";
    else if (a->sub == S_UPDATE && !a->left && !a->right)
        bad = "update needs --left, --right or both (the API demands at least one)";
    else if (a->left && !*a->left)
        bad = "--left must not be empty";
    else if ((a->dry_run || a->delete_missing) && a->sub != S_SYNC)
        bad = "--dry-run and --delete-missing go with sync";
    else if (a->sub == S_ADD && !*a->pos[1])
        bad = "add: LEFT must not be empty";
    else if (a->json && a->sub == S_EXPORT)
        bad = "export writes CSV; --json does not apply";
    else if (npos >= 1 && a->sub != S_CREATE && !pd_lookup_id_valid(a->pos[0]))
        bad = "ID must be letters, digits, '-', '_' or '.'";
    else if (npos >= 2 && (a->sub == S_UPDATE || a->sub == S_DELETE) &&
             !pd_lookup_id_valid(a->pos[1]))
        bad = "VALUEID must be letters, digits, '-', '_' or '.'";
    if (bad)
        return pd_cli_usage_error(&spec, "%s", bad);
    return 0;
}

static int start(struct run *rn)
{
    struct args *a = rn->a;
    struct pd_client *c = rn->net.client;
    const struct pd_patchworks *pw = &rn->cfg->pw;

    switch (a->sub) {
    case S_LIST:
        return pd_lookup_list(c, pw, on_list, rn);
    case S_SHOW:
        return pd_lookup_show(c, pw, a->pos[0], on_one_lookup, rn);
    case S_CREATE:
        return pd_lookup_create(c, pw, a->name, a->description, a->def, on_one_lookup, rn);
    case S_ROWS:
    case S_EXPORT:
        return pd_lookup_rows(c, pw, a->pos[0], on_rows_listed, rn);
    case S_ADD:
        return pd_lookup_add(c, pw, a->pos[0], a->pos[1], a->pos[2], on_row_changed, rn);
    case S_UPDATE:
        return pd_lookup_update(c, pw, a->pos[0], a->pos[1], a->left, a->right, on_row_changed, rn);
    case S_DELETE:
        return pd_lookup_delete(c, pw, a->pos[0], a->pos[1], on_row_changed, rn);
    case S_SYNC: {
        struct pd_lookup_sync_opts o = {.dry_run = a->dry_run, .delete_missing = a->delete_missing};
        int rc = pd_lookup_sync_start(c, pw, a->pos[0], a->pos[1], &o, on_synced, rn, &rn->sync);
        if (!rc && isatty(STDERR_FILENO) && !a->quiet && !a->json) {
            uv_timer_init(&rn->net.loop, &rn->progress);
            rn->progress.data = rn;
            uv_timer_start(&rn->progress, on_progress_tick, 500, 500);
            rn->progress_on = true;
        }
        return rc;
    }
    }
    return PD_EUSAGE;
}

int pd_cli_lookup(int argc, char **argv)
{
    struct args a;
    struct run rn;
    struct pd_config *cfg = NULL;
    int rc;

    memset(&a, 0, sizeof(a));
    memset(&rn, 0, sizeof(rn));
    rc = parse_args(argc, argv, &a);
    if (rc)
        return rc < 0 ? PD_EXIT_OK : rc;
    if (pd_cli_load_config(a.config, &cfg) != 0)
        return PD_EXIT_USAGE;
    rn.cfg = cfg;
    rn.a = &a;
    rn.tty = isatty(STDOUT_FILENO);
    if (pd_cli_net_open_shared(&rn.net, cfg, "lookup") != 0) {
        pd_config_destroy(&cfg);
        return PD_EXIT_USAGE;
    }
    rn.net.quiet = a.quiet;
    rc = start(&rn);
    if (rc) {
        fprintf(stderr, "patchdrop lookup %s: %s\n", subs[a.sub].name,
                rc == PD_EUSAGE ? "invalid arguments" : pd_strerror(rc));
        rn.exit = rc == PD_EUSAGE ? PD_EXIT_USAGE : PD_EXIT_FAILED;
        stop_progress(&rn);
    } else {
        pd_cli_net_run(&rn.net);
    }
    stop_progress(&rn);
    if (pd_cli_net_close(&rn.net) != 0 && rn.exit == PD_EXIT_OK)
        rn.exit = PD_EXIT_FAILED;
    fflush(stdout);
    pd_config_destroy(&cfg);
    return rn.exit;
}
