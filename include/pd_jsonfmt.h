/*
 * JSON for people to read (receipts, error files): two spaces of indent, one member or element
 * per line, keys in the order they were added (which is what makes the order stable), and a
 * newline at the end; `JSON.stringify(v, null, 2)` and `json.dumps(v, indent=2)` print the
 * same layout. cJSON_Print() indents with tabs and puts array elements on one line.
 */
#ifndef PD_JSONFMT_H
#define PD_JSONFMT_H

#include <cjson/cJSON.h>

/* ITEM as text (malloc'd), or NULL when out of memory. Strings and numbers are written as
 * cJSON writes them. */
char *pd_jsonfmt_print(const cJSON *item);

#endif
