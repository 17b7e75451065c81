/* libFuzzer target for the escaper: the body must parse back to the same bytes. */
#include "pd_encode.h"

#include <cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t cap = PD_ENCODE_BODY_OVERHEAD + 6 * size, len;
    char *body = malloc(cap + 1);
    if (!body || pd_encode_body(data, size, body, cap, &len) != 0)
        abort();
    if (len != PD_ENCODE_BODY_OVERHEAD + pd_encode_escaped_len(data, size))
        abort();
    /* cJSON stops at NUL and checks no UTF-8: compare only inputs it can round-trip. */
    if (!memchr(data, 0, size)) {
        cJSON *j = cJSON_ParseWithLength(body, len);
        cJSON *p = j ? cJSON_GetObjectItemCaseSensitive(j, "payload") : NULL;
        if (!cJSON_IsString(p) || strlen(p->valuestring) != size || memcmp(p->valuestring, data, size))
            abort();
        cJSON_Delete(j);
    }
    free(body);
    return 0;
}
