/*
 * libFuzzer target for reading Patchworks answers: the classifier, the login answer and the
 * flow-run record must cope with any body (the server, a proxy or a captive portal may send
 * anything) without crashing or leaking.
 */
#include "pd_api.h"
#include "pd_error.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const long statuses[] = {0, 200, 201, 204, 301, 400, 401, 403, 404, 408,
                                    413, 422, 429, 500, 502, 503, 504, 599};
    struct pd_api_result r;
    char *token = NULL, *words = NULL, *raw = NULL;
    uint64_t ttl = 0;

    if (size < 2)
        return 0;
    long status = statuses[data[0] % (sizeof(statuses) / sizeof(statuses[0]))];
    int curl_code = data[1] % 4 == 0 ? (int)(data[1] / 4) : 0;
    const char *body = (const char *)data + 2;
    size_t len = size - 2;

    memset(&r, 0, sizeof(r));
    if (pd_api_classify(status, curl_code, body, len, &r) == 0) {
        if (r.verdict > PD_API_FATAL)
            abort();
        if (status >= 200 && status < 300 && curl_code == 0 && r.verdict != PD_API_OK)
            abort();
        pd_api_result_cleanup(&r);
    }
    if (pd_api_parse_login(body, len, 86400, &token, &ttl) == 0 && !token)
        abort();
    free(token);
    if (pd_api_parse_run_status(body, len, &words, &raw) == 0 && !words)
        abort();
    free(words);
    free(raw);
    return 0;
}
