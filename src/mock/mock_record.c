/*
 * The --record folder of patchdrop-mock, so tests can check exactly what arrived:
 *   DIR/payloads/NNNNNN  each accepted payload string, exactly its bytes, named by flow_run_id
 *   DIR/requests.jsonl   one JSON line per request, flushed as it is written
 *   DIR/runs.jsonl       one JSON line per flow run created, with the outcome decided for it
 * Payload files appear whole (written under a temporary name, then renamed), so a test that
 * polls the folder while the server runs never reads half a file. The log holds methods, paths,
 * statuses and sizes only: never a header, a password or a token.
 */
#include "mock.h"

#include "pd_error.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct mock_record {
    char *dir;
    FILE *log;
    FILE *runs;
    pthread_mutex_t lock;
};

static int make_dir(const char *path)
{
    if (mkdir(path, 0755) && errno != EEXIST)
        return -errno;
    return 0;
}

/* Opens DIR/NAME for appending into *F; *PATH gets its name (NULL when out of memory). */
static int open_log(const char *dir, const char *name, FILE **f, char **path)
{
    if (asprintf(path, "%s/%s", dir, name) < 0) {
        *path = NULL;
        return PD_ENOMEM;
    }
    *f = fopen(*path, "a");
    return *f ? 0 : -errno;
}

int mock_record_open(const char *dir, struct mock_record **out, char **err)
{
    struct mock_record *rec = calloc(1, sizeof(*rec));
    char *path = NULL;
    int rc = PD_ENOMEM;
    const char *step = "allocate";
    if (!rec)
        goto fail;
    rec->dir = strdup(dir);
    if (!rec->dir)
        goto fail;
    pthread_mutex_init(&rec->lock, NULL);
    step = "create the folder";
    if ((rc = make_dir(dir)))
        goto fail;
    rc = PD_ENOMEM;
    if (asprintf(&path, "%s/payloads", dir) < 0) {
        path = NULL;
        goto fail;
    }
    step = "create the folder";
    if ((rc = make_dir(path)))
        goto fail;
    free(path);
    path = NULL;
    step = "open the request log";
    if ((rc = open_log(dir, "requests.jsonl", &rec->log, &path)))
        goto fail;
    free(path);
    path = NULL;
    step = "open the run log";
    if ((rc = open_log(dir, "runs.jsonl", &rec->runs, &path)))
        goto fail;
    free(path);
    *out = rec;
    return 0;
fail:
    if (err && asprintf(err, "--record %s: cannot %s %s: %s", dir, step, path ? path : dir,
                        pd_strerror(rc)) < 0)
        *err = NULL;
    free(path);
    mock_record_close(&rec);
    return rc;
}

void mock_record_close(struct mock_record **recp)
{
    if (!recp || !*recp)
        return;
    struct mock_record *rec = *recp;
    if (rec->log)
        fclose(rec->log);
    if (rec->runs)
        fclose(rec->runs);
    if (rec->dir)
        pthread_mutex_destroy(&rec->lock);
    free(rec->dir);
    free(rec);
    *recp = NULL;
}

int mock_record_payload(struct mock_record *rec, uint64_t id, const char *data, size_t len,
                        char *name, size_t cap)
{
    char tmp[4096], final[4096];
    snprintf(name, cap, "payloads/%06llu", (unsigned long long)id);
    snprintf(final, sizeof(final), "%s/%s", rec->dir, name);
    snprintf(tmp, sizeof(tmp), "%s/payloads/.tmp-%06llu", rec->dir, (unsigned long long)id);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    int rc = 0;
    size_t off = 0;
    while (off < len) {
        ssize_t k = write(fd, data + off, len - off);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        off += (size_t)k;
    }
    if (close(fd) && !rc)
        rc = -errno;
    if (!rc && rename(tmp, final))
        rc = -errno;
    if (rc)
        unlink(tmp);
    return rc;
}

/* Writes O (and frees it) as one line of F, flushed. */
static void write_line(struct mock_record *rec, FILE *f, cJSON *o)
{
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!text)
        return;
    pthread_mutex_lock(&rec->lock);
    fprintf(f, "%s\n", text);
    fflush(f);
    pthread_mutex_unlock(&rec->lock);
    free(text);
}

void mock_record_line(struct mock_record *rec, const struct mock_logline *line)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return;
    cJSON_AddNumberToObject(o, "seq", (double)line->seq);
    cJSON_AddNumberToObject(o, "time_ms", (double)line->time_ms);
    cJSON_AddStringToObject(o, "method", line->method);
    cJSON_AddStringToObject(o, "path", line->path);
    cJSON_AddNumberToObject(o, "status", line->status);
    cJSON_AddNumberToObject(o, "body_bytes", (double)line->body_bytes);
    if (line->flow_run_id)
        cJSON_AddNumberToObject(o, "flow_run_id", (double)line->flow_run_id);
    if (line->payload_file)
        cJSON_AddStringToObject(o, "payload_file", line->payload_file);
    cJSON_AddStringToObject(o, "outcome", line->outcome);
    cJSON_AddNumberToObject(o, "elapsed_ms", (double)line->elapsed_ms);
    if (line->route)
        cJSON_AddStringToObject(o, "route", line->route);
    write_line(rec, rec->log, o);
}

void mock_record_run(struct mock_record *rec, const struct mock_run *run)
{
    static const char *const outcomes[] = {"running", "success", "failed", "stopped", "partial"};
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return;
    cJSON_AddNumberToObject(o, "flow_run_id", (double)run->id);
    cJSON_AddStringToObject(o, "flow_id", run->flow_id);
    if (run->version_id)
        cJSON_AddStringToObject(o, "version_id", run->version_id);
    cJSON_AddNumberToObject(o, "status", run->final_status);
    if (run->final_status >= 1 && run->final_status <= 5)
        cJSON_AddStringToObject(o, "outcome", outcomes[run->final_status - 1]);
    cJSON_AddStringToObject(o, "cause", run->cause);
    if (run->retry_of)
        cJSON_AddNumberToObject(o, "retry_of", (double)run->retry_of);
    cJSON_AddStringToObject(o, "payload_file", run->payload_file);
    write_line(rec, rec->runs, o);
}
