/*
 * What the readers of Patchworks answers share between src/net/api.c (classifying, logins,
 * lookups) and src/net/api_run.c (flow runs): the one number reader, the defensive lookups of
 * fields and the list pages. Not a public interface (that is pd_api.h).
 */
#ifndef PD_API_INTERNAL_H
#define PD_API_INTERNAL_H

#include "pd_api.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

/* What the user sees of a server message or body is bounded: a log line, not a dump. */
#define TEXT_MAX 2048

char *api_dup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* BODY parsed, or NULL when empty or not JSON. */
cJSON *api_parse_body(const char *body, size_t len);

/* Whether api_scalar_text() has something to read: a non-empty string or a number. */
bool api_has_text(const cJSON *v);

/* A JSON scalar as text: non-empty strings (bounded), numbers (the range-guarded reader). */
char *api_scalar_text(const cJSON *v);

/* OBJ's member KEY, or NULL when OBJ is not an object. */
const cJSON *api_object_item(const cJSON *obj, const char *key);

/* The flow-run id of a start answer: flow_run_id, run_id or id, at the top or under data. */
char *api_find_run_id(const cJSON *root);

/* Whether S is an id that may stand as a path segment. */
bool api_segment_ok(const char *s);

/* The length of BASE without its trailing slashes. */
int api_base_len(const char *base);

/* A record's field, flat or under "attributes" (JSON:API style). */
const cJSON *api_record_field(const cJSON *item, const char *key);

/* A page number: a number (or with STRINGS a numeric string) >= 1, at most PD_API_MAX_PAGES;
 * else 0. */
unsigned long api_page_number(const cJSON *v, bool strings);

/* The data list of page PAGE and its pagination; *ROOT is to be deleted by the caller. */
int api_read_page(const char *body, size_t len, unsigned long page, cJSON **root,
                  const cJSON **data, struct pd_api_page *pg, char *why, size_t whylen);

#endif
