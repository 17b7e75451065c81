/*
 * The log (see pd_log.h). Under systemd (JOURNAL_STREAM set) lines carry a <N> priority prefix
 * and no timestamp, since journald adds its own and keeps the level from the prefix.
 */
#include "pd_log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static enum pd_log_level min_level = PD_LOG_INFO;

void pd_log_set_level(enum pd_log_level level)
{
    min_level = level;
}

void pd_log(enum pd_log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    static const int syslog_prio[] = {7, 6, 4, 3};
    char line[4096];
    va_list ap;
    int n;

    if (level < min_level)
        return;
    if (getenv("JOURNAL_STREAM")) {
        n = snprintf(line, sizeof(line), "<%d>level=%s ", syslog_prio[level], names[level]);
    } else {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, names[level]);
    }
    if (n < 0 || (size_t)n >= sizeof(line))
        n = 0;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    /* One write per line, so lines of concurrent processes never interleave. */
    fprintf(stderr, "%s\n", line);
}

const char *pd_log_quote(const char *value, char *buf, size_t len)
{
    bool plain = *value != '\0';
    size_t o = 0;

    for (const char *p = value; *p && plain; p++)
        if ((unsigned char)*p <= ' ' || *p == '"' || *p == '\\' || *p == '=' || *p == 0x7f)
            plain = false;
    if (plain) {
        snprintf(buf, len, "%s", value);
        return buf;
    }
    if (len < 3) {
        if (len)
            buf[0] = '\0';
        return buf;
    }
    buf[o++] = '"';
    for (const char *p = value; *p && o + 6 < len; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c == '\n') {
            buf[o++] = '\\';
            buf[o++] = 'n';
        } else if (c < ' ' || c == 0x7f) {
            o += (size_t)snprintf(buf + o, len - o, "\\x%02x", c);
        } else {
            buf[o++] = (char)c;
        }
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}
