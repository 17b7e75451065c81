/*
 * Cross-reference lookups over the Patchworks client (include/pd_lookup.h): one small
 * operation object per call (struct op) that makes its requests through pd_client_submit,
 * reads every page of a list, and reports once; and the sync, which reads a CSV file on the
 * thread pool, reads the lookup's rows, compares them (thread pool again) and applies the
 * plan a window of changes at a time. It builds the requests and carries out the sync; every
 * answer is read by src/net/api.c (pd_api_parse_lookups_page and its siblings, pd_api.h).
 */
#include "pd_lookup.h"

#include "pd_api.h"
#include "pd_client.h"
#include "pd_config.h"
#include "pd_error.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <uv.h>

enum kind { K_LIST, K_SHOW, K_CREATE, K_ROWS, K_ADD, K_UPDATE, K_DELETE };

struct page {
    bool have;
    struct pd_lookup_rows rows;
    struct pd_lookup_info *infos;
    size_t ninfos;
};

struct op {
    struct pd_client *c;
    const struct pd_patchworks *pw;
    enum kind kind;
    pd_lookup_done_fn done;
    void *arg;
    char *url;  /* the one request, or the list without its page query */
    char *body; /* POST/PUT/PATCH */
    const char *method;
    /* lists */
    struct page *pages;
    size_t cap_pages;
    unsigned long last_page; /* known from meta.last_page; 0 while unknown */
    unsigned long next_page; /* the next page to ask for */
    bool sequential;         /* no meta: follow links.next one page at a time */
    char *next_url;          /* sequential: the next page's URL */
    unsigned inflight;
    /* outcome */
    int err;
    char *message, *errors;
    long status;
    struct pd_lookup_info info;
    struct pd_lookup_rows rows;
};

struct page_req {
    struct op *op;
    unsigned long page;
};

/* ---- operations -------------------------------------------------------------------------- */

static void op_free(struct op *op)
{
    for (size_t i = 0; i < op->cap_pages; i++) {
        pd_lookup_rows_cleanup(&op->pages[i].rows);
        for (size_t k = 0; k < op->pages[i].ninfos; k++)
            pd_lookup_info_cleanup(&op->pages[i].infos[k]);
        free(op->pages[i].infos);
    }
    free(op->pages);
    free(op->url);
    free(op->body);
    free(op->next_url);
    free(op->message);
    free(op->errors);
    pd_lookup_info_cleanup(&op->info);
    pd_lookup_rows_cleanup(&op->rows);
    free(op);
}

static void op_error(struct op *op, int err, const char *message, long status, const char *errors)
{
    if (op->err)
        return; /* the first failure is the one to report */
    op->err = err;
    op->status = status;
    op->message = strdup(message ? message : pd_strerror(err));
    op->errors = errors ? strdup(errors) : NULL;
}

/* Hands the outcome to the caller, then frees the operation. */
static void op_report(struct op *op)
{
    struct pd_lookup_result r;
    struct pd_lookup_info *all = NULL;
    size_t nall = 0;

    memset(&r, 0, sizeof(r));
    if (!op->err && (op->kind == K_LIST || op->kind == K_ROWS)) {
        /* The pages, in order, become one list. */
        size_t total = 0;
        for (size_t i = 0; i < op->cap_pages; i++)
            total += op->kind == K_ROWS ? op->pages[i].rows.n : op->pages[i].ninfos;
        if (op->kind == K_ROWS) {
            op->rows.v = malloc((total ? total : 1) * sizeof(*op->rows.v));
            if (!op->rows.v) {
                op_error(op, PD_ENOMEM, NULL, 0, NULL);
            } else {
                op->rows.cap = total ? total : 1;
                for (size_t i = 0; i < op->cap_pages; i++) {
                    struct pd_lookup_rows *pr = &op->pages[i].rows;
                    if (pr->n)
                        memcpy(op->rows.v + op->rows.n, pr->v, pr->n * sizeof(*pr->v));
                    op->rows.n += pr->n;
                    free(pr->v);
                    memset(pr, 0, sizeof(*pr));
                }
            }
        } else {
            all = malloc((total ? total : 1) * sizeof(*all));
            if (!all) {
                op_error(op, PD_ENOMEM, NULL, 0, NULL);
            } else {
                for (size_t i = 0; i < op->cap_pages; i++) {
                    struct page *pg = &op->pages[i];
                    if (pg->ninfos)
                        memcpy(all + nall, pg->infos, pg->ninfos * sizeof(*all));
                    nall += pg->ninfos;
                    pg->ninfos = 0;
                }
            }
        }
    }
    r.err = op->err;
    r.message = op->err ? op->message : NULL;
    r.status = op->status;
    r.errors = op->errors;
    if (!op->err) {
        if (op->kind == K_LIST) {
            r.lookups = all;
            r.nlookups = nall;
        } else if (op->kind == K_SHOW || op->kind == K_CREATE) {
            r.lookups = &op->info;
            r.nlookups = 1;
        } else if (op->kind != K_DELETE) {
            r.rows = &op->rows;
        }
    }
    op->done(op->arg, &r);
    for (size_t i = 0; i < nall; i++)
        pd_lookup_info_cleanup(&all[i]);
    free(all);
    op_free(op);
}

/* ---- lists: every page ---------------------------------------------------------------------- */

static int submit_page(struct op *op, unsigned long page, const char *url);

/* Same scheme, host and port as lookups_url: only there may the credentials go. */
static bool same_origin(const char *a, const char *b)
{
    const char *sa = strstr(a, "://"), *sb = strstr(b, "://");
    if (!sa || !sb)
        return false;
    size_t la = (size_t)(sa - a) + 3 + strcspn(sa + 3, "/?#");
    size_t lb = (size_t)(sb - b) + 3 + strcspn(sb + 3, "/?#");
    return la == lb && !strncasecmp(a, b, la);
}

static int grow_pages(struct op *op, unsigned long n)
{
    if (n <= op->cap_pages)
        return 0;
    struct page *p = realloc(op->pages, n * sizeof(*p));
    if (!p)
        return PD_ENOMEM;
    memset(p + op->cap_pages, 0, (n - op->cap_pages) * sizeof(*p));
    op->pages = p;
    op->cap_pages = n;
    return 0;
}

/* Reads one page (pd_api.h) into op->pages[page - 1]; learns last_page and links.next. */
static int take_page(struct op *op, unsigned long page, const char *body, size_t len, char *why,
                     size_t whylen)
{
    struct pd_api_page meta;
    struct page *pg;
    int rc;

    if ((rc = grow_pages(op, page)) != 0)
        return rc;
    pg = &op->pages[page - 1];
    if (op->kind == K_ROWS)
        rc = pd_api_parse_rows_page(body, len, page, &pg->rows, &meta, why, whylen);
    else
        rc =
            pd_api_parse_lookups_page(body, len, page, &pg->infos, &pg->ninfos, &meta, why, whylen);
    if (rc)
        return rc;
    if (page == 1) {
        if (meta.last_page)
            op->last_page = meta.last_page;
        else if (meta.next)
            op->sequential = true;
        else
            op->last_page = 1;
    }
    free(op->next_url);
    op->next_url = NULL;
    if (op->sequential && meta.next && meta.items > 0 && page < PD_API_MAX_PAGES) {
        /* links.next is followed on the lookups_url origin only: the credentials go nowhere else.
         */
        if (same_origin(meta.next, op->pw->lookups_url)) {
            op->next_url = meta.next;
            meta.next = NULL;
        } else if (asprintf(&op->next_url, "%s?page=%lu&per_page=100", op->url, page + 1) < 0) {
            op->next_url = NULL;
        }
        if (!op->next_url)
            rc = PD_ENOMEM;
    }
    pg->have = rc == 0;
    pd_api_page_cleanup(&meta);
    return rc;
}

static void pump_pages(struct op *op);

static void on_page(void *arg, const struct pd_client_result *r)
{
    struct page_req *pr = arg;
    struct op *op = pr->op;
    unsigned long page = pr->page;
    char why[200] = "";

    free(pr);
    op->inflight--;
    if (r->err) {
        op_error(op, r->err, r->message, r->api.status, r->api.errors);
    } else if (!op->err) {
        int rc = take_page(op, page, r->body, r->body_len, why, sizeof(why));
        if (rc)
            op_error(op, rc, why[0] ? why : pd_strerror(rc), r->api.status, NULL);
    }
    pump_pages(op);
}

static int submit_page(struct op *op, unsigned long page, const char *url)
{
    char *built = NULL;
    struct page_req *pr = malloc(sizeof(*pr));
    int rc;

    if (!pr)
        return PD_ENOMEM;
    if (!url) {
        if (asprintf(&built, "%s?page=%lu&per_page=100", op->url, page) < 0) {
            free(pr);
            return PD_ENOMEM;
        }
        url = built;
    }
    pr->op = op;
    pr->page = page;
    struct pd_client_request req = {.method = "GET", .url = url};
    rc = pd_client_submit(op->c, &req, on_page, pr);
    free(built);
    if (rc) {
        free(pr);
        return rc;
    }
    op->inflight++;
    return 0;
}

/* Asks for more pages while the window allows; reports once every page is in. */
static void pump_pages(struct op *op)
{
    unsigned window = op->pw->concurrency ? (unsigned)op->pw->concurrency * 2 : 8;
    int rc = 0;

    if (!op->err && op->sequential) {
        if (op->inflight == 0 && op->next_url) {
            char *url = op->next_url;
            op->next_url = NULL;
            rc = submit_page(op, op->next_page++, url);
            free(url);
        }
    } else {
        while (!op->err && !rc && op->last_page && op->next_page <= op->last_page &&
               op->inflight < window)
            rc = submit_page(op, op->next_page++, NULL);
    }
    if (rc)
        op_error(op, rc, NULL, 0, NULL);
    if (op->inflight == 0)
        op_report(op);
}

/* ---- single requests ------------------------------------------------------------------------ */

static void on_single(void *arg, const struct pd_client_result *r)
{
    struct op *op = arg;
    char why[200] = "";
    int rc = 0;

    if (r->err) {
        op_error(op, r->err, r->message, r->api.status, r->api.errors);
        goto out;
    }
    op->status = r->api.status;
    if (op->kind == K_DELETE)
        goto out;
    if (op->kind == K_SHOW || op->kind == K_CREATE) {
        rc = pd_api_parse_lookup(r->body, r->body_len, &op->info, why, sizeof(why));
    } else {
        op->rows.v = calloc(1, sizeof(*op->rows.v));
        rc = op->rows.v
                 ? pd_api_parse_lookup_row(r->body, r->body_len, &op->rows.v[0], why, sizeof(why))
                 : PD_ENOMEM;
        if (!rc)
            op->rows.n = op->rows.cap = 1;
    }
    if (rc)
        op_error(op, rc, why[0] ? why : NULL, r->api.status, NULL);
out:
    op_report(op);
}

static struct op *op_new(struct pd_client *c, const struct pd_patchworks *pw, enum kind kind,
                         pd_lookup_done_fn done, void *arg)
{
    struct op *op = calloc(1, sizeof(*op));
    if (!op)
        return NULL;
    op->c = c;
    op->pw = pw;
    op->kind = kind;
    op->done = done;
    op->arg = arg;
    op->method = "GET";
    return op;
}

/* Starts OP (its url, method and body set): one request, or the first page of a list. */
static int op_start(struct op *op)
{
    int rc;
    if (op->kind == K_LIST || op->kind == K_ROWS) {
        op->next_page = 2;
        rc = submit_page(op, 1, NULL);
    } else {
        struct pd_client_request req = {.method = op->method,
                                        .url = op->url,
                                        .body = op->body,
                                        .body_len = op->body ? strlen(op->body) : 0};
        rc = pd_client_submit(op->c, &req, on_single, op);
    }
    if (rc)
        op_free(op);
    return rc;
}

static int url_for(struct op *op, const char *tmpl, const char *id, const char *value_id)
{
    int rc = pd_lookup_url(op->pw, tmpl, id, value_id, 0, &op->url);
    if (rc) {
        op_free(op);
        return rc == PD_ECONFIG ? PD_EUSAGE : rc;
    }
    return 0;
}

/* Builds the JSON body from KEY/VALUE pairs; NULL values are left out. */
static int json_body(struct op *op, const char *k1, const char *v1, const char *k2, const char *v2,
                     const char *k3, const char *v3)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        goto oom;
    if ((v1 && !cJSON_AddStringToObject(o, k1, v1)) ||
        (v2 && !cJSON_AddStringToObject(o, k2, v2)) ||
        (k3 && v3 && !cJSON_AddStringToObject(o, k3, v3)))
        goto oom;
    op->body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!op->body) {
        op_free(op);
        return PD_ENOMEM;
    }
    return 0;
oom:
    cJSON_Delete(o);
    op_free(op);
    return PD_ENOMEM;
}

static char *lookup_path(const struct pd_patchworks *pw, const char *id)
{
    char *out;
    if (asprintf(&out, "%s/{id}", pw->lookups_path) < 0)
        return NULL;
    (void)id;
    return out;
}

/* Starts an operation of KIND without a body on the URL TMPL (with ID, when it takes one). */
static int op_get(struct pd_client *c, const struct pd_patchworks *pw, enum kind kind,
                  const char *tmpl, const char *id, pd_lookup_done_fn done, void *arg)
{
    struct op *op = op_new(c, pw, kind, done, arg);
    int rc;
    if (!op)
        return PD_ENOMEM;
    if ((rc = url_for(op, tmpl, id, NULL)) != 0)
        return rc;
    return op_start(op);
}

int pd_lookup_list(struct pd_client *c, const struct pd_patchworks *pw, pd_lookup_done_fn done,
                   void *arg)
{
    return op_get(c, pw, K_LIST, pw->lookups_path, NULL, done, arg);
}

int pd_lookup_show(struct pd_client *c, const struct pd_patchworks *pw, const char *id,
                   pd_lookup_done_fn done, void *arg)
{
    char *tmpl = lookup_path(pw, id);
    if (!tmpl)
        return PD_ENOMEM;
    int rc = op_get(c, pw, K_SHOW, tmpl, id, done, arg);
    free(tmpl);
    return rc;
}

int pd_lookup_create(struct pd_client *c, const struct pd_patchworks *pw, const char *name,
                     const char *description, const char *default_value, pd_lookup_done_fn done,
                     void *arg)
{
    struct op *op;
    int rc;
    if (!name || !*name)
        return PD_EUSAGE;
    if (!(op = op_new(c, pw, K_CREATE, done, arg)))
        return PD_ENOMEM;
    op->method = "POST";
    if ((rc = url_for(op, pw->lookups_path, NULL, NULL)) != 0 ||
        (rc = json_body(op, "name", name, "description", description, "default_value",
                        default_value)) != 0)
        return rc;
    return op_start(op);
}

int pd_lookup_rows(struct pd_client *c, const struct pd_patchworks *pw, const char *id,
                   pd_lookup_done_fn done, void *arg)
{
    return op_get(c, pw, K_ROWS, pw->lookup_rows_path, id, done, arg);
}

int pd_lookup_add(struct pd_client *c, const struct pd_patchworks *pw, const char *id,
                  const char *left, const char *right, pd_lookup_done_fn done, void *arg)
{
    struct op *op;
    int rc;
    if (!left || !*left || !right)
        return PD_EUSAGE;
    if (!(op = op_new(c, pw, K_ADD, done, arg)))
        return PD_ENOMEM;
    op->method = "POST";
    if ((rc = url_for(op, pw->lookup_rows_path, id, NULL)) != 0 ||
        (rc = json_body(op, "left_value", left, "right_value", right, NULL, NULL)) != 0)
        return rc;
    return op_start(op);
}

int pd_lookup_update(struct pd_client *c, const struct pd_patchworks *pw, const char *id,
                     const char *value_id, const char *left, const char *right,
                     pd_lookup_done_fn done, void *arg)
{
    struct op *op;
    int rc;
    if ((!left && !right) || (left && !*left))
        return PD_EUSAGE;
    if (!(op = op_new(c, pw, K_UPDATE, done, arg)))
        return PD_ENOMEM;
    op->method = pw->lookup_update_method == PD_UPDATE_PATCH ? "PATCH" : "PUT";
    if ((rc = url_for(op, pw->lookup_value_path, id, value_id)) != 0 ||
        (rc = json_body(op, "left_value", left, "right_value", right, NULL, NULL)) != 0)
        return rc;
    return op_start(op);
}

int pd_lookup_delete(struct pd_client *c, const struct pd_patchworks *pw, const char *id,
                     const char *value_id, pd_lookup_done_fn done, void *arg)
{
    struct op *op = op_new(c, pw, K_DELETE, done, arg);
    int rc;
    if (!op)
        return PD_ENOMEM;
    op->method = "DELETE";
    if ((rc = url_for(op, pw->lookup_value_path, id, value_id)) != 0)
        return rc;
    return op_start(op);
}

/* ---- sync ------------------------------------------------------------------------------------ */

struct pd_lookup_sync {
    struct pd_client *c;
    const struct pd_patchworks *pw;
    char *lookup_id, *path, *name;
    struct pd_lookup_sync_opts opts;
    pd_lookup_sync_fn done;
    void *arg;
    uv_work_t work;
    int work_rc;
    char *work_msg;
    struct pd_lookup_rows file, remote;
    struct pd_lookup_plan plan;
    bool have_plan;
    size_t next, inflight, answered;
    size_t added, updated, deleted, refused;
    bool canceled, stop;
    int err;
    char *message;
};

struct change_req {
    struct pd_lookup_sync *s;
    size_t index;
};

static void sync_finish(struct pd_lookup_sync *s)
{
    struct pd_lookup_sync_report r;
    char *msg = NULL;

    if (!s->err && s->refused) {
        /* The first refusals say what to fix; the JSON report has every one. */
        size_t len = 0;
        FILE *f = open_memstream(&msg, &len);
        if (f) {
            fprintf(f, "%zu of %zu changes were refused by Patchworks", s->refused, s->plan.n);
            size_t shown = 0;
            for (size_t i = 0; i < s->plan.n && shown < 5; i++) {
                const struct pd_lookup_change *ch = &s->plan.v[i];
                if (ch->state != PD_LOOKUP_REFUSED)
                    continue;
                const struct pd_lookup_row *row = ch->file ? ch->file : ch->remote;
                if (ch->file)
                    fprintf(f, "%s line %llu (%s \"%.60s\"): HTTP %ld: %s", shown ? ";" : ":",
                            (unsigned long long)ch->file->line,
                            ch->op == PD_LOOKUP_ADD ? "add" : "update", row->left, ch->status,
                            ch->message ? ch->message : "refused");
                else
                    fprintf(f, "%s row %s (delete \"%.60s\"): HTTP %ld: %s", shown ? ";" : ":",
                            row->id, row->left, ch->status, ch->message ? ch->message : "refused");
                shown++;
            }
            fprintf(f, "; the other changes were made");
            fclose(f);
        }
        s->err = PD_EREJECTED;
        free(s->message);
        s->message = msg;
    } else if (!s->err && s->canceled) {
        s->err = PD_ECANCELED;
    }
    if (s->err == PD_ECANCELED && !s->message) {
        if (asprintf(&s->message,
                     "stopped after %zu of %zu changes; syncing the file again makes the rest",
                     s->answered, s->plan.n) < 0)
            s->message = NULL;
    }
    memset(&r, 0, sizeof(r));
    r.err = s->err;
    r.message = s->err ? (s->message ? s->message : pd_strerror(s->err)) : NULL;
    r.lookup_id = s->lookup_id;
    r.file = s->name;
    r.dry_run = s->opts.dry_run;
    r.delete_missing = s->opts.delete_missing;
    r.file_rows = s->file.n;
    r.lookup_rows = s->remote.n;
    r.plan = s->have_plan ? &s->plan : NULL;
    r.added = s->added;
    r.updated = s->updated;
    r.deleted = s->deleted;
    r.refused = s->refused;
    s->done(s->arg, &r);
    pd_lookup_plan_cleanup(&s->plan);
    pd_lookup_rows_cleanup(&s->file);
    pd_lookup_rows_cleanup(&s->remote);
    free(s->work_msg);
    free(s->message);
    free(s->lookup_id);
    free(s->path);
    free(s->name);
    free(s);
}

static void sync_fail(struct pd_lookup_sync *s, int err, const char *message)
{
    if (!s->err) {
        s->err = err;
        free(s->message);
        s->message = message ? strdup(message) : NULL;
    }
    s->stop = true;
}

static void sync_pump(struct pd_lookup_sync *s);

static void on_change_done(void *arg, const struct pd_lookup_result *r)
{
    struct change_req *cr = arg;
    struct pd_lookup_sync *s = cr->s;
    struct pd_lookup_change *ch = &s->plan.v[cr->index];

    free(cr);
    s->inflight--;
    ch->status = r->status;
    if (r->err == 0) {
        ch->state = PD_LOOKUP_DONE;
        s->answered++;
        if (ch->op == PD_LOOKUP_ADD) {
            s->added++;
            if (r->rows && r->rows->n && r->rows->v[0].id)
                ch->new_id = strdup(r->rows->v[0].id);
        } else if (ch->op == PD_LOOKUP_UPDATE) {
            s->updated++;
        } else {
            s->deleted++;
        }
    } else if (r->err == PD_EREJECTED || r->err == PD_ELIMIT || r->err == PD_ETOOBIG ||
               r->err == PD_EPROTOCOL) {
        /* This change only: the others may well go through. */
        ch->state = PD_LOOKUP_REFUSED;
        s->answered++;
        s->refused++;
        if (r->errors) {
            if (asprintf(&ch->message, "%s (%s)", r->message ? r->message : "refused", r->errors) <
                0)
                ch->message = NULL;
        } else
            ch->message = strdup(r->message ? r->message : "refused");
    } else {
        /* Credentials, configuration, a closed client: nothing more can work. */
        char buf[600];
        snprintf(buf, sizeof(buf), "%s; %zu of %zu changes were made before it stopped",
                 r->message ? r->message : pd_strerror(r->err), s->added + s->updated + s->deleted,
                 s->plan.n);
        sync_fail(s, r->err, buf);
    }
    sync_pump(s);
}

static void sync_pump(struct pd_lookup_sync *s)
{
    unsigned window = s->opts.window ? s->opts.window
                                     : (s->pw->concurrency ? (unsigned)s->pw->concurrency * 2 : 8);
    while (!s->stop && !s->canceled && s->next < s->plan.n && s->inflight < window) {
        size_t i = s->next++;
        struct pd_lookup_change *ch = &s->plan.v[i];
        struct change_req *cr = malloc(sizeof(*cr));
        int rc;
        if (!cr) {
            sync_fail(s, PD_ENOMEM, NULL);
            break;
        }
        cr->s = s;
        cr->index = i;
        if (ch->op == PD_LOOKUP_ADD)
            rc = pd_lookup_add(s->c, s->pw, s->lookup_id, ch->file->left, ch->file->right,
                               on_change_done, cr);
        else if (ch->op == PD_LOOKUP_UPDATE)
            rc = pd_lookup_update(s->c, s->pw, s->lookup_id, ch->remote->id, NULL, ch->file->right,
                                  on_change_done, cr);
        else
            rc = pd_lookup_delete(s->c, s->pw, s->lookup_id, ch->remote->id, on_change_done, cr);
        if (rc == PD_EUSAGE) {
            /* A row id that cannot go into a URL: this row only. */
            free(cr);
            ch->state = PD_LOOKUP_REFUSED;
            ch->message = strdup("the lookup's row id cannot be used in a URL");
            s->answered++;
            s->refused++;
            continue;
        }
        if (rc) {
            free(cr);
            sync_fail(s, rc, NULL);
            break;
        }
        s->inflight++;
    }
    if (s->inflight == 0 && (s->stop || s->canceled || s->next >= s->plan.n))
        sync_finish(s);
}

static void work_diff(uv_work_t *w)
{
    struct pd_lookup_sync *s = w->data;
    s->work_rc = pd_lookup_diff(&s->file, &s->remote, s->opts.delete_missing, s->name, &s->plan,
                                &s->work_msg);
}

static void on_diffed(uv_work_t *w, int status)
{
    struct pd_lookup_sync *s = w->data;
    if (status || s->work_rc) {
        sync_fail(s, status ? PD_ECANCELED : s->work_rc, s->work_msg);
        sync_finish(s);
        return;
    }
    s->have_plan = true;
    if (s->opts.dry_run || s->canceled) {
        sync_finish(s);
        return;
    }
    sync_pump(s);
}

static void on_rows(void *arg, const struct pd_lookup_result *r)
{
    struct pd_lookup_sync *s = arg;
    char buf[700];
    int rc;

    if (r->err) {
        snprintf(buf, sizeof(buf), "cannot read the rows of lookup %s: %s%s%s%s", s->lookup_id,
                 r->message ? r->message : pd_strerror(r->err), r->errors ? " (" : "",
                 r->errors ? r->errors : "", r->errors ? ")" : "");
        sync_fail(s, r->err, buf);
        sync_finish(s);
        return;
    }
    s->remote = *r->rows;
    memset(r->rows, 0, sizeof(*r->rows));
    if (s->canceled) {
        sync_finish(s);
        return;
    }
    s->work.data = s;
    if ((rc = uv_queue_work(pd_client_loop(s->c), &s->work, work_diff, on_diffed)) != 0) {
        sync_fail(s, PD_ENOMEM, uv_strerror(rc));
        sync_finish(s);
    }
}

static void work_read(uv_work_t *w)
{
    struct pd_lookup_sync *s = w->data;
    int fd = open(s->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        s->work_rc = -errno;
        if (asprintf(&s->work_msg, "%s: cannot open: %s", s->name, strerror(errno)) < 0)
            s->work_msg = NULL;
        return;
    }
    s->work_rc = pd_lookup_read_csv(fd, NULL, 0, s->name, &s->file, &s->work_msg);
    close(fd);
}

static void on_read(uv_work_t *w, int status)
{
    struct pd_lookup_sync *s = w->data;
    int rc;

    if (status || s->work_rc) {
        sync_fail(s, status ? PD_ECANCELED : s->work_rc, s->work_msg);
        sync_finish(s);
        return;
    }
    free(s->work_msg);
    s->work_msg = NULL;
    if (s->canceled) {
        sync_finish(s);
        return;
    }
    rc = pd_lookup_rows(s->c, s->pw, s->lookup_id, on_rows, s);
    if (rc) {
        sync_fail(s, rc, rc == PD_EUSAGE ? "the lookup id is not valid" : pd_strerror(rc));
        sync_finish(s);
    }
}

int pd_lookup_sync_start(struct pd_client *c, const struct pd_patchworks *pw, const char *lookup_id,
                         const char *csv_path, const struct pd_lookup_sync_opts *opts,
                         pd_lookup_sync_fn done, void *arg, struct pd_lookup_sync **out)
{
    struct pd_lookup_sync *s;
    int rc;

    if (out)
        *out = NULL;
    if (!pd_lookup_id_valid(lookup_id) || !csv_path)
        return PD_EUSAGE;
    s = calloc(1, sizeof(*s));
    if (!s)
        return PD_ENOMEM;
    s->c = c;
    s->pw = pw;
    if (opts)
        s->opts = *opts;
    s->done = done;
    s->arg = arg;
    s->lookup_id = strdup(lookup_id);
    s->path = strdup(csv_path);
    s->name = strdup(opts && opts->name ? opts->name : csv_path);
    s->opts.name = NULL;
    if (!s->lookup_id || !s->path || !s->name) {
        rc = PD_ENOMEM;
        goto fail;
    }
    s->work.data = s;
    if ((rc = uv_queue_work(pd_client_loop(c), &s->work, work_read, on_read)) != 0) {
        rc = PD_ENOMEM;
        goto fail;
    }
    if (out)
        *out = s;
    return 0;
fail:
    free(s->lookup_id);
    free(s->path);
    free(s->name);
    free(s);
    return rc;
}

void pd_lookup_sync_cancel(struct pd_lookup_sync *s)
{
    if (s)
        s->canceled = true;
}

void pd_lookup_sync_progress(const struct pd_lookup_sync *s, size_t *answered, size_t *total)
{
    *answered = s->answered;
    *total = s->have_plan && !s->opts.dry_run ? s->plan.n : 0;
}
