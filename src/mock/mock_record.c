/*
 * The --record folder of patchdrop-mock, so tests can check exactly what arrived:
 *   DIR/payloads/NNNNNN  each accepted payload string, exactly its bytes, named by flow_run_id
 *   DIR/requests.jsonl   one JSON line per request, flushed as it is written
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
    pthread_mutex_t lock;
};

static int make_dir(const char *path)
{
    if (mkdir(path, 0755) && errno != EEXIST)
        return -errno;
    return 0;
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
    rc = PD_ENOMEM;
    if (asprintf(&path, "%s/requests.jsonl", dir) < 0) {
        path = NULL;
        goto fail;
    }
    step = "open the request log";
    rec->log = fopen(path, "a");
    if (!rec->log) {
        rc = -errno;
        goto fail;
    }
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
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!text)
        return;
    pthread_mutex_lock(&rec->lock);
    fprintf(rec->log, "%s\n", text);
    fflush(rec->log);
    pthread_mutex_unlock(&rec->lock);
    free(text);
}
