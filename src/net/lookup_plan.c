/*
 * The pure half of cross-reference lookups (include/pd_lookup.h): ids and URLs, reading a
 * lookup CSV file into rows, comparing it with a lookup's rows, and the sync report as JSON.
 * No I/O beyond reading the given file descriptor, no logging.
 */
#include "pd_lookup.h"

#include "pd_config.h"
#include "pd_csv.h"
#include "pd_error.h"
#include "pd_jsonfmt.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_LISTED 20 /* bad rows named in one message */
#define PER_PAGE 100

void pd_lookup_rows_cleanup(struct pd_lookup_rows *rows)
{
    if (!rows)
        return;
    for (size_t i = 0; i < rows->n; i++) {
        free(rows->v[i].id);
        free(rows->v[i].left);
        free(rows->v[i].right);
    }
    free(rows->v);
    memset(rows, 0, sizeof(*rows));
}

void pd_lookup_info_cleanup(struct pd_lookup_info *info)
{
    if (!info)
        return;
    free(info->id);
    free(info->name);
    free(info->description);
    free(info->default_value);
    memset(info, 0, sizeof(*info));
}

/* ---- ids and URLs ---------------------------------------------------------------------- */

bool pd_lookup_id_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 64 || !strcmp(s, ".") || !strcmp(s, ".."))
        return false;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
            return false;
    return true;
}

int pd_lookup_url(const struct pd_patchworks *pw, const char *tmpl, const char *id,
                  const char *value_id, unsigned long page, char **out)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f;
    const char *base = pw->lookups_url;
    size_t blen = strlen(base);

    *out = NULL;
    if ((strstr(tmpl, "{id}") && !pd_lookup_id_valid(id)) ||
        (strstr(tmpl, "{value_id}") && !pd_lookup_id_valid(value_id)))
        return PD_ECONFIG;
    f = open_memstream(&buf, &len);
    if (!f)
        return PD_ENOMEM;
    /* lookups_url may end in '/': the template starts with one. */
    while (blen && base[blen - 1] == '/')
        blen--;
    fwrite(base, 1, blen, f);
    for (const char *p = tmpl; *p;) {
        if (!strncmp(p, "{id}", 4)) {
            fputs(id, f);
            p += 4;
        } else if (!strncmp(p, "{value_id}", 10)) {
            fputs(value_id, f);
            p += 10;
        } else {
            fputc(*p++, f);
        }
    }
    if (page)
        fprintf(f, "?page=%lu&per_page=%d", page, PER_PAGE);
    if (fclose(f) != 0 || !buf) {
        free(buf);
        return PD_ENOMEM;
    }
    *out = buf;
    return 0;
}

/* ---- reading the file ---------------------------------------------------------------------- */

struct problems {
    FILE *f;
    char *text;
    size_t len;
    size_t count;
};

static void problem(struct problems *pr, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void problem(struct problems *pr, const char *fmt, ...)
{
    va_list ap;
    if (pr->count++ >= MAX_LISTED || !pr->f)
        return;
    va_start(ap, fmt);
    vfprintf(pr->f, fmt, ap);
    va_end(ap);
    fputc('\n', pr->f);
}

/* The collected lines plus a closing line; NULL when out of memory. */
static char *problems_take(struct problems *pr, const char *name, const char *what)
{
    char *out = NULL;
    if (!pr->f)
        return NULL;
    if (pr->count > MAX_LISTED)
        fprintf(pr->f, "%s: ... and %zu more\n", name, pr->count - MAX_LISTED);
    fprintf(pr->f, "%s: %zu %s; fix %s and try again (nothing was changed)", name, pr->count, what,
            pr->count == 1 ? "it" : "them");
    if (fclose(pr->f) == 0)
        out = pr->text;
    else
        free(pr->text);
    pr->f = NULL;
    pr->text = NULL;
    return out;
}

static void problems_drop(struct problems *pr)
{
    if (pr->f)
        fclose(pr->f);
    free(pr->text);
    pr->f = NULL;
}

static bool header_is(const char *field, const char *want)
{
    size_t n = strlen(field);
    while (n && (field[n - 1] == ' ' || field[n - 1] == '\t'))
        n--;
    while (n && (*field == ' ' || *field == '\t'))
        field++, n--;
    return n == strlen(want) && !strncasecmp(field, want, n);
}

static int rows_push(struct pd_lookup_rows *rows, const char *left, const char *right,
                     uint64_t line)
{
    if (rows->n == rows->cap) {
        size_t cap = rows->cap ? rows->cap * 2 : 256;
        struct pd_lookup_row *v = realloc(rows->v, cap * sizeof(*v));
        if (!v)
            return PD_ENOMEM;
        rows->v = v;
        rows->cap = cap;
    }
    struct pd_lookup_row *r = &rows->v[rows->n];
    memset(r, 0, sizeof(*r));
    r->left = strdup(left);
    r->right = strdup(right);
    r->line = line;
    if (!r->left || !r->right) {
        free(r->left);
        free(r->right);
        return PD_ENOMEM;
    }
    rows->n++;
    return 0;
}

/* Where a lookup file's two columns are, from its header row. */
struct columns {
    bool have; /* the header was read */
    size_t n, left, right;
};

static bool row_blank(const struct pd_csv_row *row)
{
    for (size_t i = 0; i < row->nfields; i++)
        if (row->lens[i])
            return false;
    return true;
}

/* Reads the header ROW of file NAME into *COLS, or says why it is not one. */
static int read_header(struct problems *pr, const char *name, const struct pd_csv_row *row,
                       struct columns *cols)
{
    bool l = false, r = false;

    for (size_t i = 0; i < row->nfields; i++) {
        if (!l && header_is(row->fields[i], "left_value"))
            cols->left = i, l = true;
        else if (!r && header_is(row->fields[i], "right_value"))
            cols->right = i, r = true;
    }
    if (!l || !r) {
        problem(pr,
                "%s: line %llu: the first row must be the header naming the columns "
                "left_value and right_value (it starts with \"%.60s\"); add the "
                "line left_value,right_value at the top",
                name, (unsigned long long)row->line, row->nfields ? row->fields[0] : "");
        return PD_EPARSE;
    }
    cols->n = row->nfields;
    cols->have = true;
    return 0;
}

/* Whether data ROW of file NAME fits the header in COLS; says why not. */
static bool row_ok(struct problems *pr, const char *name, const struct pd_csv_row *row,
                   const struct columns *cols)
{
    if (row->nfields != cols->n) {
        problem(pr,
                "%s: line %llu: %zu values where the header has %zu; a value holding a "
                "comma must be in double quotes",
                name, (unsigned long long)row->line, row->nfields, cols->n);
        return false;
    }
    if (row->lens[cols->left] == 0) {
        problem(pr, "%s: line %llu: left_value is empty; every row needs one", name,
                (unsigned long long)row->line);
        return false;
    }
    return true;
}

int pd_lookup_read_csv(int fd, const char *buf, size_t len, const char *name,
                       struct pd_lookup_rows *out, char **msg)
{
    struct pd_csv *csv = NULL;
    struct pd_csv_row row;
    struct problems pr = {0};
    struct columns cols = {0};
    int rc;

    memset(out, 0, sizeof(*out));
    *msg = NULL;
    name = name ? name : "input";
    pr.f = open_memstream(&pr.text, &pr.len);
    if (!pr.f || (rc = pd_csv_create(fd, buf, len, name, 0, &csv)) != 0) {
        rc = PD_ENOMEM;
        goto done;
    }
    for (;;) {
        rc = pd_csv_next(csv, &row);
        if (rc == 0)
            break;
        if (rc < 0) {
            problem(&pr, "%s", pd_csv_error(csv));
            if (pd_csv_can_continue(csv))
                continue;
            break;
        }
        if (row_blank(&row))
            continue;
        if (!cols.have) {
            if ((rc = read_header(&pr, name, &row, &cols)))
                break;
            continue;
        }
        if (!row_ok(&pr, name, &row, &cols) || pr.count)
            continue; /* the file is refused: keep reading only to name every bad row */
        if ((rc = rows_push(out, row.fields[cols.left], row.fields[cols.right], row.line)) != 0)
            goto done;
    }
    if (rc == 0 && !cols.have && pr.count == 0) {
        problem(&pr,
                "%s: the file has no rows; a lookup file starts with the header "
                "left_value,right_value",
                name);
        rc = PD_EEMPTY;
    }
    if (rc == PD_ENOMEM)
        goto done;
    if (pr.count) {
        if (rc != PD_EEMPTY && rc != PD_EENCODING && !(rc < 0 && rc > -1000))
            rc = PD_EPARSE;
        *msg = problems_take(&pr, name, pr.count == 1 ? "bad row" : "bad rows");
        pd_lookup_rows_cleanup(out);
    }
done:
    if (rc == PD_ENOMEM)
        pd_lookup_rows_cleanup(out);
    problems_drop(&pr);
    pd_csv_destroy(&csv);
    return rc;
}

int pd_lookup_write_csv(const struct pd_lookup_rows *rows, char **out, size_t *len)
{
    struct pd_csv_buf b = {0};
    int rc = pd_csv_put_field(&b, "left_value", true);

    rc = rc ? rc : pd_csv_put_field(&b, "right_value", false);
    rc = rc ? rc : pd_csv_end_row(&b);
    for (size_t i = 0; !rc && i < rows->n; i++) {
        rc = pd_csv_put_field(&b, rows->v[i].left ? rows->v[i].left : "", true);
        rc = rc ? rc : pd_csv_put_field(&b, rows->v[i].right ? rows->v[i].right : "", false);
        rc = rc ? rc : pd_csv_end_row(&b);
    }
    *out = NULL;
    *len = 0;
    if (rc) {
        free(b.data);
        return rc;
    }
    *out = b.data;
    *len = b.len;
    return 0;
}

/* ---- comparing ------------------------------------------------------------------------------ */

static int cmp_index(const void *a, const void *b, void *arg)
{
    const struct pd_lookup_row *rows = arg;
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    int c = strcmp(rows[x].left, rows[y].left);
    if (c)
        return c;
    return x < y ? -1 : x > y;
}

static size_t *sorted_index(const struct pd_lookup_rows *rows)
{
    size_t *ix = malloc((rows->n ? rows->n : 1) * sizeof(*ix));
    if (!ix)
        return NULL;
    for (size_t i = 0; i < rows->n; i++)
        ix[i] = i;
    qsort_r(ix, rows->n, sizeof(*ix), cmp_index, rows->v);
    return ix;
}

static int cmp_change(const void *a, const void *b)
{
    const struct pd_lookup_change *x = a, *y = b;
    bool xd = x->op == PD_LOOKUP_DELETE, yd = y->op == PD_LOOKUP_DELETE;
    if (xd != yd)
        return xd ? 1 : -1;
    if (!xd)
        return x->file->line < y->file->line ? -1 : x->file->line > y->file->line;
    return x->remote < y->remote ? -1 : x->remote > y->remote;
}

static int plan_push(struct pd_lookup_plan *p, size_t *cap, enum pd_lookup_op op,
                     const struct pd_lookup_row *file, const struct pd_lookup_row *remote)
{
    if (p->n == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        struct pd_lookup_change *v = realloc(p->v, c * sizeof(*v));
        if (!v)
            return PD_ENOMEM;
        p->v = v;
        *cap = c;
    }
    struct pd_lookup_change *ch = &p->v[p->n++];
    memset(ch, 0, sizeof(*ch));
    ch->op = op;
    ch->file = file;
    ch->remote = remote;
    ch->state = PD_LOOKUP_PLANNED;
    if (op == PD_LOOKUP_ADD)
        p->adds++;
    else if (op == PD_LOOKUP_UPDATE)
        p->updates++;
    else
        p->deletes++;
    return 0;
}

int pd_lookup_diff(const struct pd_lookup_rows *file, const struct pd_lookup_rows *remote,
                   bool delete_missing, const char *name, struct pd_lookup_plan *out, char **msg)
{
    size_t *fi = NULL, *ri = NULL, cap = 0, a = 0, b = 0;
    struct problems pr = {0};
    int rc = PD_ENOMEM;

    memset(out, 0, sizeof(*out));
    *msg = NULL;
    name = name ? name : "input";
    fi = sorted_index(file);
    ri = sorted_index(remote);
    if (!fi || !ri)
        goto done;
    /* Duplicate left values in the file: which right value is meant is unknowable. */
    pr.f = open_memstream(&pr.text, &pr.len);
    if (!pr.f)
        goto done;
    for (size_t i = 1; i < file->n; i++) {
        const struct pd_lookup_row *x = &file->v[fi[i - 1]], *y = &file->v[fi[i]];
        if (!strcmp(x->left, y->left))
            problem(&pr,
                    "%s: line %llu and line %llu both have the left value \"%.80s\"; keep one "
                    "row per left value",
                    name, (unsigned long long)x->line, (unsigned long long)y->line, x->left);
    }
    if (pr.count) {
        *msg = problems_take(&pr, name,
                             pr.count == 1 ? "duplicate left value" : "duplicate left values");
        rc = PD_EPARSE;
        goto done;
    }
    rc = 0;
    while (!rc && (a < file->n || b < remote->n)) {
        const struct pd_lookup_row *f = a < file->n ? &file->v[fi[a]] : NULL;
        const struct pd_lookup_row *r = b < remote->n ? &remote->v[ri[b]] : NULL;
        int c = !f ? 1 : !r ? -1 : strcmp(f->left, r->left);
        if (c < 0) {
            rc = plan_push(out, &cap, PD_LOOKUP_ADD, f, NULL);
            a++;
        } else if (c > 0) {
            if (delete_missing)
                rc = plan_push(out, &cap, PD_LOOKUP_DELETE, NULL, r);
            else
                out->kept++;
            b++;
        } else {
            if (strcmp(f->right, r->right ? r->right : ""))
                rc = plan_push(out, &cap, PD_LOOKUP_UPDATE, f, r);
            else
                out->unchanged++;
            a++;
            b++;
            /* The lookup's own duplicates of this left value: missing from the file. */
            while (!rc && b < remote->n && !strcmp(remote->v[ri[b]].left, f->left)) {
                if (delete_missing)
                    rc = plan_push(out, &cap, PD_LOOKUP_DELETE, NULL, &remote->v[ri[b]]);
                else
                    out->kept++;
                b++;
            }
        }
    }
    if (!rc && out->n)
        qsort(out->v, out->n, sizeof(*out->v), cmp_change);
done:
    if (rc && rc != PD_EPARSE)
        rc = PD_ENOMEM;
    if (rc)
        pd_lookup_plan_cleanup(out);
    problems_drop(&pr);
    free(fi);
    free(ri);
    return rc;
}

void pd_lookup_plan_cleanup(struct pd_lookup_plan *plan)
{
    if (!plan)
        return;
    for (size_t i = 0; i < plan->n; i++) {
        free(plan->v[i].message);
        free(plan->v[i].new_id);
    }
    free(plan->v);
    memset(plan, 0, sizeof(*plan));
}

/* ---- reporting ---------------------------------------------------------------------------- */

static const char *op_name(enum pd_lookup_op op)
{
    return op == PD_LOOKUP_ADD ? "add" : op == PD_LOOKUP_UPDATE ? "update" : "delete";
}

static const char *state_name(enum pd_lookup_state s)
{
    return s == PD_LOOKUP_DONE ? "done" : s == PD_LOOKUP_REFUSED ? "refused" : "planned";
}

static cJSON *change_json(const struct pd_lookup_change *ch)
{
    cJSON *o = cJSON_CreateObject();
    const struct pd_lookup_row *row = ch->file ? ch->file : ch->remote;
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "op", op_name(ch->op));
    cJSON_AddStringToObject(o, "state", state_name(ch->state));
    if (ch->file)
        cJSON_AddNumberToObject(o, "line", (double)ch->file->line);
    if (ch->remote && ch->remote->id)
        cJSON_AddStringToObject(o, "value_id", ch->remote->id);
    else if (ch->new_id)
        cJSON_AddStringToObject(o, "value_id", ch->new_id);
    cJSON_AddStringToObject(o, "left_value", row->left);
    cJSON_AddStringToObject(o, "right_value", row->right ? row->right : "");
    if (ch->op == PD_LOOKUP_UPDATE)
        cJSON_AddStringToObject(o, "old_right_value", ch->remote->right ? ch->remote->right : "");
    if (ch->status)
        cJSON_AddNumberToObject(o, "status", (double)ch->status);
    if (ch->message)
        cJSON_AddStringToObject(o, "message", ch->message);
    return o;
}

char *pd_lookup_sync_json(const struct pd_lookup_sync_report *r, bool with_changes)
{
    cJSON *o = cJSON_CreateObject();
    char *text = NULL;
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "lookup_id", r->lookup_id ? r->lookup_id : "");
    cJSON_AddStringToObject(o, "file", r->file ? r->file : "");
    cJSON_AddBoolToObject(o, "ok", r->err == 0);
    if (r->err)
        cJSON_AddStringToObject(o, "error", r->message ? r->message : pd_strerror(r->err));
    cJSON_AddBoolToObject(o, "dry_run", r->dry_run);
    cJSON_AddBoolToObject(o, "delete_missing", r->delete_missing);
    cJSON_AddNumberToObject(o, "file_rows", (double)r->file_rows);
    cJSON_AddNumberToObject(o, "lookup_rows", (double)r->lookup_rows);
    if (r->plan) {
        cJSON *pl = cJSON_AddObjectToObject(o, "planned");
        cJSON_AddNumberToObject(pl, "add", (double)r->plan->adds);
        cJSON_AddNumberToObject(pl, "update", (double)r->plan->updates);
        cJSON_AddNumberToObject(pl, "delete", (double)r->plan->deletes);
        cJSON_AddNumberToObject(o, "unchanged", (double)r->plan->unchanged);
        cJSON_AddNumberToObject(o, "kept", (double)r->plan->kept);
    }
    cJSON_AddNumberToObject(o, "added", (double)r->added);
    cJSON_AddNumberToObject(o, "updated", (double)r->updated);
    cJSON_AddNumberToObject(o, "deleted", (double)r->deleted);
    cJSON_AddNumberToObject(o, "refused", (double)r->refused);
    if (with_changes && r->plan) {
        cJSON *arr = cJSON_AddArrayToObject(o, "changes");
        for (size_t i = 0; arr && i < r->plan->n; i++) {
            cJSON *c = change_json(&r->plan->v[i]);
            if (!c)
                goto out;
            cJSON_AddItemToArray(arr, c);
        }
    }
    text = cJSON_PrintUnformatted(o);
out:
    cJSON_Delete(o);
    return text;
}

void pd_lookup_sync_summary(const struct pd_lookup_sync_report *r, char *out, size_t len)
{
    const struct pd_lookup_plan *p = r->plan;
    if (!p) {
        snprintf(out, len, "nothing compared");
        return;
    }
    if (r->dry_run) {
        snprintf(out, len,
                 "dry run, nothing changed: would add %zu, update %zu, delete %zu; %zu unchanged, "
                 "%zu only in the lookup kept",
                 p->adds, p->updates, p->deletes, p->unchanged, p->kept);
        return;
    }
    int n = snprintf(out, len, "%zu added, %zu updated, %zu deleted, %zu unchanged", r->added,
                     r->updated, r->deleted, p->unchanged);
    if (n > 0 && (size_t)n < len && p->kept)
        n += snprintf(out + n, len - (size_t)n, ", %zu only in the lookup kept", p->kept);
    if (n > 0 && (size_t)n < len && r->refused)
        n += snprintf(out + n, len - (size_t)n, ", %zu REFUSED", r->refused);
    size_t planned = p->adds + p->updates + p->deletes;
    size_t answered = r->added + r->updated + r->deleted + r->refused;
    if (n > 0 && (size_t)n < len && answered < planned)
        snprintf(out + n, len - (size_t)n, ", %zu not tried", planned - answered);
}

char *pd_lookup_receipt(const char *receipt_json, const char *lookup_json)
{
    cJSON *o = cJSON_Parse(receipt_json);
    cJSON *l = cJSON_Parse(lookup_json);
    char *text = NULL;
    if (o && l && cJSON_IsObject(o)) {
        cJSON_AddItemToObject(o, "lookup", l);
        l = NULL;
        text = pd_jsonfmt_print(o);
    }
    cJSON_Delete(o);
    cJSON_Delete(l);
    return text;
}
