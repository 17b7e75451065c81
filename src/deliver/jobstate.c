/* A claimed file's durable delivery record, receipt and error file (see pd_jobstate.h). */
#include "pd_jobstate.h"

#include "pd_clock.h"
#include "pd_error.h"
#include "pd_fsutil.h"
#include "pd_log.h"
#include "pd_jsonfmt.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define STATE_VERSION 1
#define STATE_MAX_BYTES (64u << 20)

/*
 * V as valid UTF-8: every byte that starts no valid sequence is read as Latin-1 (0xE9 -> é), as
 * old Windows and mainframe exports mean it. NULL when V is valid already (or out of memory).
 */
static char *as_utf8(const char *v)
{
    const unsigned char *p = (const unsigned char *)v;
    size_t bad = 0, len = strlen(v);
    for (size_t i = 0; i < len;) {
        size_t n = pd_utf8_len(p + i, len - i);
        bad += !n;
        i += n ? n : 1;
    }
    if (!bad)
        return NULL;
    char *out = malloc(len + bad + 1), *q = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < len;) {
        size_t n = pd_utf8_len(p + i, len - i);
        if (n) {
            memcpy(q, p + i, n);
            q += n;
            i += n;
        } else {
            *q++ = (char)(0xC0 | (p[i] >> 6));
            *q++ = (char)(0x80 | (p[i] & 0x3F));
            i++;
        }
    }
    *q = '\0';
    return out;
}

/*
 * Every file patchdrop writes must parse with any JSON reader, and a name can be any bytes
 * (caf\xe9.csv from a Latin-1 system). A string that is not valid UTF-8 is written as UTF-8
 * (invalid bytes read as Latin-1); for names (EXACT) the exact bytes follow as "<key>_hex",
 * which the state record is read back from.
 */
static int add_text(cJSON *o, const char *k, const char *v, bool exact)
{
    if (!v)
        return cJSON_AddNullToObject(o, k) ? 0 : PD_ENOMEM;
    char *fixed = as_utf8(v);
    int rc = cJSON_AddStringToObject(o, k, fixed ? fixed : v) ? 0 : PD_ENOMEM;
    if (fixed && exact && !rc) {
        size_t len = strlen(v);
        char *hex = malloc(2 * len + 1), key[64];
        for (size_t i = 0; hex && i < len; i++)
            snprintf(hex + 2 * i, 3, "%02x", (unsigned char)v[i]);
        snprintf(key, sizeof(key), "%s_hex", k);
        rc = hex && cJSON_AddStringToObject(o, key, hex) ? 0 : PD_ENOMEM;
        free(hex);
    }
    free(fixed);
    return rc;
}

static int add_str(cJSON *o, const char *k, const char *v)
{
    return add_text(o, k, v, false);
}

static int add_name(cJSON *o, const char *k, const char *v)
{
    return add_text(o, k, v, true);
}

/* Numbers go out as JSON numbers; cJSON holds doubles, exact up to 2^53, plenty for bytes. */
static int add_num(cJSON *o, const char *k, double v)
{
    return cJSON_AddNumberToObject(o, k, v) ? 0 : PD_ENOMEM;
}

static cJSON *chunk_json(const struct pd_chunk_rec *c, bool for_people, bool with_entry)
{
    cJSON *o = cJSON_CreateObject();
    char when[80];
    int rc = 0;

    if (!o)
        return NULL;
    rc |= add_num(o, "index", c->index);
    rc |= add_num(o, "start", (double)c->start);
    rc |= add_num(o, "end", (double)c->end);
    rc |= add_num(o, "records", (double)c->records);
    rc |= add_num(o, "body_bytes", (double)c->body_bytes);
    rc |= add_num(o, "status", (double)c->status);
    rc |= add_str(o, "flow_run_id", c->run_id);
    if (c->answer)
        rc |= add_str(o, "answer", c->answer);
    if (for_people) {
        pd_clock_iso(c->time_ms, when, sizeof(when));
        rc |= add_str(o, "time", when);
    } else {
        rc |= add_num(o, "time_ms", (double)c->time_ms);
    }
    rc |= add_num(o, "attempts", c->attempts);
    if (c->control[0])
        rc |= add_str(o, "control_numbers", c->control);
    if (with_entry)
        rc |= add_num(o, "entry", c->entry);
    if (c->batch_id) {
        cJSON *b = cJSON_AddObjectToObject(o, "batch");
        rc |= b ? 0 : PD_ENOMEM;
        rc |= b ? add_str(b, "request_id", c->batch_id) : 0;
        rc |= b ? add_num(b, "files", c->batch_files) : 0;
        rc |= b ? add_num(b, "position", c->batch_pos) : 0;
    }
    if (rc) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* A compressed file's entries, each with its chunks (their indexes) and flow runs. */
static int entries_json(const struct pd_jobstate *js, cJSON *o)
{
    int rc = 0;

    if (!js->compression)
        return 0;
    rc |= add_str(o, "compression", js->compression);
    cJSON *arr = cJSON_AddArrayToObject(o, "entries");
    for (size_t i = 0; arr && !rc && i < js->nentries; i++) {
        const struct pd_entry_rec *e = &js->entries[i];
        cJSON *eo = cJSON_CreateObject();
        if (!eo || !cJSON_AddItemToArray(arr, eo))
            return PD_ENOMEM;
        rc |= add_name(eo, "name", e->name);
        rc |= add_num(eo, "size", (double)e->size);
        rc |= add_str(eo, "format", e->format);
        cJSON *chunks = cJSON_AddArrayToObject(eo, "chunks");
        cJSON *runs = cJSON_AddArrayToObject(eo, "flow_run_ids");
        if (!chunks || !runs)
            return PD_ENOMEM;
        for (size_t k = 0; !rc && k < js->nchunks; k++) {
            const struct pd_chunk_rec *c = &js->chunks[k];
            if (c->entry != i)
                continue;
            if (!cJSON_AddItemToArray(chunks, cJSON_CreateNumber(c->index)) ||
                (c->run_id && !cJSON_AddItemToArray(runs, cJSON_CreateString(c->run_id))))
                rc = PD_ENOMEM;
        }
    }
    return arr ? rc : PD_ENOMEM;
}

/* The facts shared by the state record, the receipt and the error file. */
static cJSON *common_json(const struct pd_jobstate *js, bool for_people)
{
    cJSON *o = cJSON_CreateObject(), *arr;
    int rc = 0;

    if (!o)
        return NULL;
    rc |= add_name(o, "file", js->name);
    rc |= add_num(o, "size", (double)js->size);
    rc |= add_str(o, "sha256", js->sha256);
    rc |= add_str(o, "watch", js->watch);
    rc |= add_str(o, "flow_id", js->flow_id);
    rc |= add_str(o, "version_id", js->version_id);
    rc |= add_str(o, "claim_id", js->claim_id);
    if (js->duplicate_of)
        rc |= add_name(o, "duplicate_of", js->duplicate_of);
    /* Requests sent whole that got no answer and went again: a person may find one more flow
     * run per such attempt. Only written when there were some. */
    if (js->possible_duplicates)
        rc |= add_num(o, "possible_duplicates", js->possible_duplicates);
    arr = cJSON_AddArrayToObject(o, "chunks");
    if (!arr)
        rc = PD_ENOMEM;
    for (size_t i = 0; !rc && i < js->nchunks; i++) {
        cJSON *c = chunk_json(&js->chunks[i], for_people, js->compression != NULL);
        if (!c)
            rc = PD_ENOMEM;
        else
            cJSON_AddItemToArray(arr, c);
    }
    rc = rc ? rc : entries_json(js, o);
    if (rc) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static int save(const struct pd_jobstate *js, const char *path, bool durable)
{
    cJSON *o = common_json(js, false);
    char *text = NULL;
    int rc = 0;

    if (!o)
        return PD_ENOMEM;
    rc |= add_num(o, "version", STATE_VERSION);
    rc |= add_name(o, "work_name", js->work_name);
    {
        /* As text: nanoseconds since 1970 need more digits than a JSON number keeps. */
        char ns[32];
        snprintf(ns, sizeof(ns), "%lld", (long long)js->mtime_ns);
        rc |= add_str(o, "mtime_ns", ns);
    }
    rc |= add_num(o, "claimed_ms", (double)js->claimed_ms);
    rc |= add_num(o, "max_body", (double)js->max_body);
    rc |= add_num(o, "next_offset", (double)js->next_offset);
    rc |= add_num(o, "next_index", js->next_index);
    rc |= add_num(o, "next_entry", js->next_entry);
    rc |= add_num(o, "attempts", js->attempts);
    rc |= add_num(o, "first_failure_ms", (double)js->first_failure_ms);
    if (!cJSON_AddBoolToObject(o, "finished", js->finished))
        rc = PD_ENOMEM;
    if (js->fail.reason) {
        rc |= add_str(o, "fail_reason", js->fail.reason);
        rc |= add_num(o, "fail_status", (double)js->fail.status);
        rc |= add_str(o, "fail_message", js->fail.message);
        rc |= add_str(o, "fail_errors", js->fail.errors);
        rc |= add_num(o, "fail_chunk", js->fail.chunk);
        rc |= add_num(o, "fail_offset", (double)js->fail.offset);
    }
    if (!rc && !(text = cJSON_PrintUnformatted(o)))
        rc = PD_ENOMEM;
    if (!rc)
        rc = durable ? pd_fs_write_atomic(path, text, strlen(text), 0600)
                     : pd_fs_write_replace(path, text, strlen(text), 0600);
    free(text);
    cJSON_Delete(o);
    return rc;
}

int pd_jobstate_save(const struct pd_jobstate *js, const char *path)
{
    return save(js, path, true);
}

int pd_jobstate_save_claim(const struct pd_jobstate *js, const char *path)
{
    return save(js, path, false);
}

static int get_str(const cJSON *o, const char *k, bool required, char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    char key[64];
    *out = NULL;
    /* A name that is not UTF-8 comes back byte for byte from its hex twin (add_name). */
    snprintf(key, sizeof(key), "%s_hex", k);
    const cJSON *hex = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsString(hex)) {
        size_t n = strlen(hex->valuestring) / 2;
        char *b = malloc(n + 1);
        if (!b)
            return PD_ENOMEM;
        for (size_t i = 0; i < n; i++) {
            unsigned x;
            if (sscanf(hex->valuestring + 2 * i, "%2x", &x) != 1 || !x) {
                free(b);
                return PD_ESTATE;
            }
            b[i] = (char)x;
        }
        b[n] = '\0';
        *out = b;
        return 0;
    }
    if (!v || cJSON_IsNull(v))
        return required ? PD_ESTATE : 0;
    if (!cJSON_IsString(v))
        return PD_ESTATE;
    return (*out = strdup(v->valuestring)) ? 0 : PD_ENOMEM;
}

static int get_u64(const cJSON *o, const char *k, uint64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v) || v->valuedouble < 0)
        return PD_ESTATE;
    *out = (uint64_t)v->valuedouble;
    return 0;
}

/* The failure a record holds, if any. */
static int load_failure(const cJSON *o, struct pd_failure *f)
{
    const cJSON *v;
    int rc;

    pd_failure_clear(f);
    if ((rc = get_str(o, "fail_reason", false, &f->reason)) || !f->reason)
        return rc;
    rc = get_str(o, "fail_message", false, &f->message);
    rc = rc ? rc : get_str(o, "fail_errors", false, &f->errors);
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "fail_status")) && cJSON_IsNumber(v))
        f->status = (long)v->valuedouble;
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "fail_chunk")) && cJSON_IsNumber(v))
        f->chunk = (int)v->valuedouble;
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "fail_offset")) && cJSON_IsNumber(v))
        f->offset = (int64_t)v->valuedouble;
    return rc;
}

/* One acknowledged chunk of a record, appended to JS as saved. */
static int load_chunk(const cJSON *item, struct pd_jobstate *js)
{
    struct pd_chunk_rec c;
    uint64_t u = 0;
    int rc;

    memset(&c, 0, sizeof(c));
    rc = get_u64(item, "index", &u);
    c.index = (unsigned)u;
    rc = rc ? rc : get_u64(item, "start", &c.start);
    rc = rc ? rc : get_u64(item, "end", &c.end);
    rc = rc ? rc : get_u64(item, "records", &c.records);
    rc = rc ? rc : get_u64(item, "body_bytes", &c.body_bytes);
    rc = rc ? rc : get_u64(item, "time_ms", &c.time_ms);
    if (!rc && !(rc = get_u64(item, "status", &u)))
        c.status = (long)u;
    if (!rc && !(rc = get_u64(item, "attempts", &u)))
        c.attempts = (unsigned)u;
    rc = rc ? rc : get_str(item, "flow_run_id", false, &c.run_id);
    rc = rc ? rc : get_str(item, "answer", false, &c.answer);
    const cJSON *ctl = cJSON_GetObjectItemCaseSensitive(item, "control_numbers");
    if (cJSON_IsString(ctl))
        snprintf(c.control, sizeof(c.control), "%s", ctl->valuestring);
    const cJSON *batch = cJSON_GetObjectItemCaseSensitive(item, "batch");
    if (!rc && cJSON_GetObjectItemCaseSensitive(item, "entry") &&
        !(rc = get_u64(item, "entry", &u)))
        c.entry = (unsigned)u;
    if (!rc && batch) {
        rc = get_str(batch, "request_id", true, &c.batch_id);
        rc = rc ? rc : get_u64(batch, "files", &u);
        c.batch_files = (unsigned)u;
        rc = rc ? rc : get_u64(batch, "position", &u);
        c.batch_pos = (unsigned)u;
    }
    if (!rc) {
        /* add_chunk copies; keep next_offset as saved, not as re-derived. */
        uint64_t off = js->next_offset;
        unsigned idx = js->next_index, entry = js->next_entry;
        rc = pd_jobstate_add_chunk(js, &c);
        js->next_offset = off;
        js->next_index = idx;
        js->next_entry = entry;
    }
    free(c.run_id);
    free(c.answer);
    free(c.batch_id);
    return rc;
}

/* A compressed file's kind and entries, when the record has them. */
static int load_entries(const cJSON *o, struct pd_jobstate *js)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "entries"), *item;
    int rc = get_str(o, "compression", false, &js->compression);

    if (rc || !js->compression)
        return rc;
    if (!cJSON_IsArray(arr))
        return PD_ESTATE;
    js->entries = calloc((size_t)cJSON_GetArraySize(arr) + 1, sizeof(*js->entries));
    if (!js->entries)
        return PD_ENOMEM;
    cJSON_ArrayForEach(item, arr)
    {
        struct pd_entry_rec *e = &js->entries[js->nentries++];
        rc = rc ? rc : get_str(item, "name", true, &e->name);
        rc = rc ? rc : get_u64(item, "size", &e->size);
        rc = rc ? rc : get_str(item, "format", false, &e->format);
    }
    return rc;
}

/* The counters of a record: chunk index, attempts, possible repeats, mtime, finished. */
static int load_progress(const cJSON *o, struct pd_jobstate *js)
{
    uint64_t u;
    int rc;
    if (!(rc = get_u64(o, "next_index", &u)))
        js->next_index = (unsigned)u;
    if (!rc && !(rc = get_u64(o, "attempts", &u)))
        js->attempts = (unsigned)u;
    if (!rc && cJSON_GetObjectItemCaseSensitive(o, "next_entry") &&
        !(rc = get_u64(o, "next_entry", &u)))
        js->next_entry = (unsigned)u;
    if (!rc && cJSON_GetObjectItemCaseSensitive(o, "possible_duplicates") &&
        !(rc = get_u64(o, "possible_duplicates", &u)))
        js->possible_duplicates = (unsigned)u;
    if (rc)
        return rc;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "mtime_ns");
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, "finished");
    js->mtime_ns = cJSON_IsString(m) ? (int64_t)strtoll(m->valuestring, NULL, 10) : 0;
    if (!cJSON_IsBool(f))
        return PD_ESTATE;
    js->finished = cJSON_IsTrue(f);
    return 0;
}

int pd_jobstate_load(const char *path, struct pd_jobstate *js, char **why)
{
    char *text = NULL;
    size_t len;
    cJSON *o = NULL;
    const cJSON *arr, *item;
    uint64_t u;
    int rc;

    memset(js, 0, sizeof(*js));
    *why = NULL;
    rc = pd_fs_read_all(path, STATE_MAX_BYTES, &text, &len);
    if (rc)
        return rc;
    if (len == 0) {
        /* A claim's record a power cut caught before it reached the disk
         * (pd_jobstate_save_claim): nothing was acknowledged, as if there were none. */
        free(text);
        return -ENOENT;
    }
    o = cJSON_ParseWithLength(text, len);
    if (!o || !cJSON_IsObject(o)) {
        rc = PD_ESTATE;
        if (asprintf(why, "%s is not a JSON object (damaged or cut short)", path) < 0)
            *why = NULL;
        goto done;
    }
    if (get_u64(o, "version", &u) || u != STATE_VERSION) {
        rc = PD_ESTATE;
        if (asprintf(why, "%s has an unknown version", path) < 0)
            *why = NULL;
        goto done;
    }
    rc = get_str(o, "claim_id", true, &js->claim_id);
    rc = rc ? rc : get_str(o, "watch", true, &js->watch);
    rc = rc ? rc : get_str(o, "file", true, &js->name);
    rc = rc ? rc : get_str(o, "work_name", true, &js->work_name);
    rc = rc ? rc : get_str(o, "flow_id", true, &js->flow_id);
    rc = rc ? rc : get_str(o, "version_id", false, &js->version_id);
    rc = rc ? rc : get_str(o, "sha256", false, &js->sha256);
    rc = rc ? rc : get_str(o, "duplicate_of", false, &js->duplicate_of);
    rc = rc ? rc : load_failure(o, &js->fail);
    rc = rc ? rc : get_u64(o, "size", &js->size);
    rc = rc ? rc : get_u64(o, "claimed_ms", &js->claimed_ms);
    rc = rc ? rc : get_u64(o, "max_body", &js->max_body);
    rc = rc ? rc : get_u64(o, "next_offset", &js->next_offset);
    rc = rc ? rc : get_u64(o, "first_failure_ms", &js->first_failure_ms);
    rc = rc ? rc : load_progress(o, js);
    arr = cJSON_GetObjectItemCaseSensitive(o, "chunks");
    if (!rc && !cJSON_IsArray(arr))
        rc = PD_ESTATE;
    cJSON_ArrayForEach(item, arr)
    {
        if (rc)
            break;
        rc = load_chunk(item, js);
    }
    rc = rc ? rc : load_entries(o, js);
    if (rc == PD_ESTATE && !*why &&
        asprintf(why, "%s misses a field or has one of the wrong type", path) < 0)
        *why = NULL;
done:
    if (rc)
        pd_jobstate_cleanup(js);
    cJSON_Delete(o);
    free(text);
    return rc;
}

int pd_jobstate_add_chunk(struct pd_jobstate *js, const struct pd_chunk_rec *c)
{
    struct pd_chunk_rec *grown = realloc(js->chunks, (js->nchunks + 1) * sizeof(*grown));
    struct pd_chunk_rec *n;

    if (!grown)
        return PD_ENOMEM;
    js->chunks = grown;
    n = &grown[js->nchunks];
    *n = *c;
    n->run_id = c->run_id ? strdup(c->run_id) : NULL;
    n->answer = c->answer ? strdup(c->answer) : NULL;
    n->batch_id = c->batch_id ? strdup(c->batch_id) : NULL;
    if ((c->run_id && !n->run_id) || (c->answer && !n->answer) || (c->batch_id && !n->batch_id)) {
        free(n->run_id);
        free(n->answer);
        free(n->batch_id);
        return PD_ENOMEM;
    }
    js->nchunks++;
    js->next_offset = c->end;
    js->next_index = c->index + 1;
    js->next_entry = c->entry;
    return 0;
}

void pd_jobstate_cleanup(struct pd_jobstate *js)
{
    for (size_t i = 0; i < js->nchunks; i++) {
        free(js->chunks[i].run_id);
        free(js->chunks[i].answer);
        free(js->chunks[i].batch_id);
    }
    free(js->chunks);
    free(js->claim_id);
    free(js->watch);
    free(js->name);
    free(js->work_name);
    free(js->flow_id);
    free(js->version_id);
    free(js->sha256);
    free(js->duplicate_of);
    for (size_t i = 0; i < js->nentries; i++) {
        free(js->entries[i].name);
        free(js->entries[i].format);
    }
    free(js->entries);
    free(js->compression);
    pd_failure_clear(&js->fail);
    memset(js, 0, sizeof(*js));
    pd_failure_clear(&js->fail);
}

void pd_failure_clear(struct pd_failure *f)
{
    free(f->reason);
    free(f->message);
    free(f->errors);
    memset(f, 0, sizeof(*f));
    f->chunk = -1;
    f->offset = -1;
}

/* The file for people: two-space indent, keys in the order added above (pd_jsonfmt.h). */
static char *finish_json(cJSON *o)
{
    char *text = o ? pd_jsonfmt_print(o) : NULL;
    cJSON_Delete(o);
    return text;
}

char *pd_jobstate_receipt(const struct pd_jobstate *js, uint64_t finished_ms)
{
    cJSON *o = common_json(js, true);
    char when[80];

    if (!o)
        return NULL;
    pd_clock_iso(finished_ms, when, sizeof(when));
    if (add_str(o, "delivered_at", when) ||
        add_str(o, "result", js->duplicate_of ? "duplicate" : "delivered")) {
        cJSON_Delete(o);
        return NULL;
    }
    return finish_json(o);
}

char *pd_jobstate_error_report(const struct pd_jobstate *js, const struct pd_failure *f,
                               uint64_t failed_ms)
{
    cJSON *o = common_json(js, true);
    char when[80];
    int rc = 0;

    if (!o)
        return NULL;
    pd_clock_iso(failed_ms, when, sizeof(when));
    rc |= add_str(o, "result", "failed");
    rc |= add_str(o, "reason", f->reason ? f->reason : "rejected");
    rc |= add_str(o, "failed_at", when);
    if (f->status)
        rc |= add_num(o, "http_status", (double)f->status);
    if (f->message)
        rc |= add_str(o, "server_message", f->message);
    if (f->errors)
        rc |= add_str(o, "server_errors", f->errors);
    if (f->chunk >= 0)
        rc |= add_num(o, "chunk", f->chunk);
    if (f->offset >= 0)
        rc |= add_num(o, "byte_offset", (double)f->offset);
    rc |= add_num(o, "attempts", js->attempts);
    rc |= add_num(o, "chunks_delivered", (double)js->nchunks);
    if (rc) {
        cJSON_Delete(o);
        return NULL;
    }
    return finish_json(o);
}

char *pd_jobstate_annotate(const char *text, const struct pd_jobstate_note *notes, size_t n)
{
    cJSON *o = cJSON_Parse(text);
    int rc = 0;

    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return NULL;
    }
    for (size_t i = 0; !rc && i < n; i++) {
        char when[80];
        if (cJSON_GetObjectItemCaseSensitive(o, notes[i].key))
            continue;
        if (!notes[i].text) {
            pd_clock_iso(notes[i].time_ms, when, sizeof(when));
            rc = add_str(o, notes[i].key, when);
        } else {
            rc = add_text(o, notes[i].key, notes[i].text, notes[i].name);
        }
    }
    if (rc) {
        cJSON_Delete(o);
        return NULL;
    }
    return finish_json(o);
}

int pd_jobstate_new_claim_id(char out[33])
{
    unsigned char raw[16];
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
        return -errno;
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    return 0;
}
