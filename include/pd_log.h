/*
 * The daemon's log: one line per event, `event=NAME key=value ...`, to stderr. A value with
 * spaces, quotes or control characters is quoted and escaped by pd_log_quote(). Never pass a
 * secret here.
 */
#ifndef PD_LOG_H
#define PD_LOG_H

#include <stddef.h>

enum pd_log_level { PD_LOG_DEBUG, PD_LOG_INFO, PD_LOG_WARN, PD_LOG_ERROR };

void pd_log_set_level(enum pd_log_level level);
void pd_log(enum pd_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* VALUE made safe for one key=value field (quoted when needed) into BUF; returns BUF. */
const char *pd_log_quote(const char *value, char *buf, size_t len);

#endif
