/*
 * libFuzzer target for the splitter. FUZZ_FORMAT picks the format (one binary per format,
 * so each gets its own corpus); the first two input bytes pick the budget and options, the
 * rest is the file. Checks what must hold for any input: no crash or leak, every body within
 * the budget and exactly {"payload": "<string>"}, ranges that tile, the same chunks again
 * after resuming at a chunk start, and errors that come with a message.
 */
#include "pd_config.h"
#include "pd_encode.h"
#include "pd_error.h"
#include "pd_split.h"

#include <cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef FUZZ_FORMAT
#define FUZZ_FORMAT PD_SPLIT_JSON
#endif

#define MAX_CHUNKS 4096

/* The record index's grain and size (split_index.c, built with PD_SPLIT_IDX_TUNABLE). */
extern uint64_t pd_split_idx_min_grain;
extern size_t pd_split_idx_max;

static uint64_t fnv(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

static void check_body(const struct pd_chunk *c, uint64_t budget)
{
    if (c->body_len > budget || c->body_len < PD_ENCODE_BODY_OVERHEAD)
        abort();
    cJSON *j = cJSON_ParseWithLength(c->body, c->body_len);
    if (!j || !cJSON_IsObject(j) || !j->child || j->child->next ||
        !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "payload")))
        abort();
    cJSON_Delete(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint64_t starts[MAX_CHUNKS], hashes[MAX_CHUNKS];
    if (size < 2)
        return 0;
    struct pd_split_opts o = {0};
    o.format = FUZZ_FORMAT;
    o.max_body = 15 + (uint64_t)data[0] * (data[0] > 200 ? 97 : 3);
    o.header_lines = data[1] & 3;
    o.json_array = data[1] & 4 ? "/a" : NULL;
    o.xml_record = data[1] & 8 ? "r" : NULL;
    static const char *const encodings[] = {NULL /* auto */, "ISO-8859-1", "UTF-16",
                                            "windows-1252"};
    o.encoding = encodings[(data[1] & 0x30) >> 4];
    o.name = data[1] & 0x40 ? "f.tsv" : "f";
    int fd = memfd_create("fuzz", 0);
    if (fd < 0)
        abort();
    if (write(fd, data + 2, size - 2) != (ssize_t)(size - 2))
        abort();

    struct pd_splitter *sp = NULL;
    struct pd_chunk c;
    /* First without the record index (no entry is ever made), so that the run with it below
     * can be compared chunk for chunk. */
    pd_split_idx_min_grain = UINT64_MAX / 4;
    int rc = pd_split_create(fd, NULL, &o, &sp);
    size_t n = 0;
    uint64_t prev_end = 0;
    if (rc == 0) {
        while ((rc = pd_split_next(sp, &c)) == 1) {
            check_body(&c, o.max_body);
            if (c.index != n || (n > 0 && c.start != prev_end) || c.end < c.start)
                abort();
            if (n < MAX_CHUNKS) {
                starts[n] = c.start;
                hashes[n] = fnv(c.body, c.body_len);
            }
            prev_end = c.end;
            n++;
        }
    }
    if (rc < 0 && !strcmp(pd_split_error(sp), "no error"))
        abort();
    pd_split_destroy(&sp);

    /* With an index entry every few bytes (thinned when 2 to 9 are full): the same chunks. */
    pd_split_idx_min_grain = 1 + (data[1] >> 7) * 7;
    pd_split_idx_max = 2 + data[0] % 8;
    if (n <= MAX_CHUNKS) {
        size_t m = 0;
        int rc2 = pd_split_create(fd, NULL, &o, &sp);
        if (rc2 == 0) {
            while ((rc2 = pd_split_next(sp, &c)) == 1) {
                if (m >= n || c.start != starts[m] || fnv(c.body, c.body_len) != hashes[m])
                    abort();
                m++;
            }
        }
        if (rc2 != rc || (rc == 0 && m != n))
            abort();
        pd_split_destroy(&sp);
    }

    /* Resume in the middle: the same chunks follow. */
    if (rc == 0 && n > 1 && n <= MAX_CHUNKS) {
        size_t k = n / 2;
        if (pd_split_create(fd, NULL, &o, &sp) != 0 || pd_split_seek(sp, starts[k], (unsigned)k) != 0)
            abort();
        for (size_t i = k; i < n; i++) {
            if (pd_split_next(sp, &c) != 1 || c.start != starts[i] || fnv(c.body, c.body_len) != hashes[i])
                abort();
        }
        if (pd_split_next(sp, &c) != 0)
            abort();
        pd_split_destroy(&sp);
    }
    /* A 413 on the first chunk: cutting again with less must keep every body in budget. */
    if (rc == 0 && n >= 1) {
        if (pd_split_create(fd, NULL, &o, &sp) != 0)
            abort();
        if (pd_split_next(sp, &c) == 1 && c.body_len > 20) {
            uint64_t nb = c.body_len - 1 - (c.body_len - 20) * data[0] / 256;
            if (pd_split_resplit(sp, nb) == 0) {
                int r;
                while ((r = pd_split_next(sp, &c)) == 1)
                    check_body(&c, nb);
            }
        }
        pd_split_destroy(&sp);
    }
    close(fd);
    return 0;
}
