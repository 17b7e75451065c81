/* Error codes to words: the one table behind pd_strerror(). */
#include "pd_error.h"

#include <string.h>

const char *pd_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
#define XX(name, value, text)                                                                      \
    case value:                                                                                    \
        return text;
        PD_ERRNO_MAP(XX)
#undef XX
    default:
        break;
    }
    if (code < 0 && code > -1000)
        return strerror(-code);
    return "unknown error";
}
