/*
 * The streaming CSV reader (include/pd_csv.h): a byte-at-a-time state machine over a 64 KiB
 * buffer, one row at a time, with the line number of every row for messages.
 */
#include "pd_csv.h"

#include "pd_error.h"
#include "pd_mem.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define READ_BUF 65536
#define DEFAULT_MAX_FIELD 65536
#define END_OF_INPUT (-1)
#define READ_ERROR (-2)

enum st {
    S_START,  /* at the start of a field */
    S_UNQ,    /* inside an unquoted field */
    S_QUOTED, /* inside a quoted field */
    S_QQ,     /* a quote inside a quoted field: the end, or the first of a doubled pair */
    S_SKIP,   /* a bad row: skipping to its end */
};

struct pd_csv {
    int fd;
    const unsigned char *mem;
    size_t mem_len;
    char *name;
    size_t max_field;
    unsigned char *buf;
    size_t blen, bpos;
    bool eof, started, skip_lf;
    int read_errno;
    uint64_t line;
    /* the row being read: field values back to back, each NUL-terminated */
    char *row;
    size_t rlen, rcap;
    size_t *starts, *lens;
    const char **ptrs;
    size_t nf, capf;
    size_t field_start;
    int fatal;
    char err[600];
};

static void set_error(struct pd_csv *r, uint64_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_error(struct pd_csv *r, uint64_t line, const char *fmt, ...)
{
    va_list ap;
    int n = line ? snprintf(r->err, sizeof(r->err), "%s: line %llu: ", r->name,
                            (unsigned long long)line)
                 : snprintf(r->err, sizeof(r->err), "%s: ", r->name);
    if (n < 0 || (size_t)n >= sizeof(r->err))
        return;
    va_start(ap, fmt);
    vsnprintf(r->err + n, sizeof(r->err) - (size_t)n, fmt, ap);
    va_end(ap);
}

int pd_csv_create(int fd, const char *buf, size_t len, const char *name, size_t max_field,
                  struct pd_csv **out)
{
    struct pd_csv *r = calloc(1, sizeof(*r));
    *out = NULL;
    if (!r)
        return PD_ENOMEM;
    r->fd = fd;
    r->mem = (const unsigned char *)buf;
    r->mem_len = buf ? len : 0;
    r->name = strdup(name ? name : "input");
    r->max_field = max_field ? max_field : DEFAULT_MAX_FIELD;
    r->line = 1;
    if (fd >= 0)
        r->buf = malloc(READ_BUF);
    if (!r->name || (fd >= 0 && !r->buf)) {
        pd_csv_destroy(&r);
        return PD_ENOMEM;
    }
    if (fd < 0) {
        r->buf = (unsigned char *)r->mem; /* read-only use */
        r->blen = r->mem_len;
        r->eof = true;
    }
    *out = r;
    return 0;
}

void pd_csv_destroy(struct pd_csv **rp)
{
    struct pd_csv *r = rp ? *rp : NULL;
    if (!r)
        return;
    if (r->fd >= 0)
        free(r->buf);
    free(r->name);
    free(r->row);
    free(r->starts);
    free(r->lens);
    free(r->ptrs);
    free(r);
    *rp = NULL;
}

bool pd_csv_can_continue(const struct pd_csv *r)
{
    return r->fatal == 0;
}

const char *pd_csv_error(const struct pd_csv *r)
{
    return r->err[0] ? r->err : "no error";
}

/* Refills the buffer; false at the end or on an error (read_errno). */
static bool fill(struct pd_csv *r)
{
    if (r->eof)
        return false;
    for (;;) {
        ssize_t n = read(r->fd, r->buf, READ_BUF);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r->read_errno = errno;
            return false;
        }
        r->blen = (size_t)n;
        r->bpos = 0;
        if (n == 0)
            r->eof = true;
        return n > 0;
    }
}

static int next_byte(struct pd_csv *r)
{
    if (r->bpos == r->blen && !fill(r))
        return r->read_errno ? READ_ERROR : END_OF_INPUT;
    return r->buf[r->bpos++];
}

/* The first bytes: a UTF-8 byte-order mark is dropped, a UTF-16 one refused. */
static int check_start(struct pd_csv *r)
{
    r->started = true;
    if (r->blen == 0 && r->fd >= 0 && !fill(r) && r->read_errno)
        return 0; /* the read error is reported by next_byte */
    /* A short first read could cut the mark: read on until three bytes are there. */
    while (r->fd >= 0 && !r->eof && r->blen - r->bpos < 3) {
        unsigned char keep[3];
        size_t have = r->blen - r->bpos;
        memcpy(keep, r->buf + r->bpos, have);
        ssize_t n = read(r->fd, r->buf + have, READ_BUF - have);
        if (n < 0 && errno == EINTR)
            continue;
        memmove(r->buf, keep, have);
        r->bpos = 0;
        r->blen = have + (n > 0 ? (size_t)n : 0);
        if (n <= 0) {
            r->eof = n == 0;
            r->read_errno = n < 0 ? errno : 0;
            break;
        }
    }
    const unsigned char *b = r->buf + r->bpos;
    size_t have = r->blen - r->bpos;
    if (have >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF) {
        r->bpos += 3;
    } else if (have >= 2 && ((b[0] == 0xFF && b[1] == 0xFE) || (b[0] == 0xFE && b[1] == 0xFF))) {
        set_error(r, 0, "the file is UTF-16 text; save it as UTF-8 (\"CSV UTF-8\" in Excel)");
        return PD_EENCODING;
    }
    return 0;
}

static bool utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        unsigned min;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF)
            len = 2, min = 0x80;
        else if (c >= 0xE0 && c <= 0xEF)
            len = 3, min = 0x800;
        else if (c >= 0xF0 && c <= 0xF4)
            len = 4, min = 0x10000;
        else
            return false;
        if (i + len > n)
            return false;
        unsigned cp = c & (0x7F >> len);
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

static int append(struct pd_csv *r, char c)
{
    if (r->rlen - r->field_start >= r->max_field)
        return PD_ELIMIT;
    if (r->rlen + 2 > r->rcap) {
        size_t cap = r->rcap ? r->rcap * 2 : 256;
        char *p = realloc(r->row, cap);
        if (!p)
            return PD_ENOMEM;
        r->row = p;
        r->rcap = cap;
    }
    r->row[r->rlen++] = c;
    return 0;
}

/* Closes the field being read: NUL-terminates it and records where it is. */
static int end_field(struct pd_csv *r)
{
    if (r->nf == r->capf) {
        size_t cap = r->capf ? r->capf * 2 : 8;
        size_t *s = realloc(r->starts, cap * sizeof(*s));
        if (s)
            r->starts = s;
        size_t *l = s ? realloc(r->lens, cap * sizeof(*l)) : NULL;
        if (l)
            r->lens = l;
        const char **p = l ? realloc(r->ptrs, cap * sizeof(*p)) : NULL;
        if (!p)
            return PD_ENOMEM;
        r->ptrs = p;
        r->capf = cap;
    }
    r->starts[r->nf] = r->field_start;
    r->lens[r->nf] = r->rlen - r->field_start;
    r->nf++;
    if (r->rlen + 1 > r->rcap) {
        char *p = realloc(r->row, r->rcap + 64);
        if (!p)
            return PD_ENOMEM;
        r->row = p;
        r->rcap += 64;
    }
    r->row[r->rlen++] = '\0';
    r->field_start = r->rlen;
    return 0;
}

static void hand_out(struct pd_csv *r, struct pd_csv_row *row, uint64_t line)
{
    for (size_t i = 0; i < r->nf; i++)
        r->ptrs[i] = r->row + r->starts[i];
    row->nfields = r->nf;
    row->fields = r->ptrs;
    row->lens = r->lens;
    row->line = line;
}

static int fail(struct pd_csv *r, int code)
{
    r->fatal = code;
    return code;
}

/* Where pd_csv_next() is in the row it reads. */
struct row_scan {
    enum st st;
    bool any, bad;
    uint64_t row_line, quote_line;
};

#define STEP_NEXT 1 /* row_step(): the byte is used up, read the next one */

/* One byte through the state machine (not the end of a line outside quotes, which the caller
 * handles). Returns 0, STEP_NEXT, or the error of append() or end_field(). */
static inline int row_step(struct pd_csv *r, struct row_scan *rs, int c, bool eol)
{
    if (rs->st == S_QUOTED) {
        if (c == '"') {
            rs->st = S_QQ;
            return STEP_NEXT;
        }
        if (c == '\n')
            r->line++;
        return append(r, (char)c);
    }
    if (rs->st == S_SKIP)
        return eol ? 0 : STEP_NEXT;
    if (rs->st == S_QQ && c == '"') {
        rs->st = S_QUOTED;
        return append(r, '"');
    }
    if (c == ',') {
        rs->any = true;
        rs->st = S_START;
        return end_field(r);
    }
    if (eol)
        return 0;
    if (rs->st == S_QQ) {
        set_error(r, rs->row_line,
                  "text after the closing quote of a field; a quote inside a quoted field "
                  "must be doubled (\"\"), or the whole field quoted");
        rs->bad = true;
        rs->st = S_SKIP;
        return STEP_NEXT;
    }
    if (c == '"' && rs->st == S_START) {
        rs->any = true;
        rs->quote_line = r->line;
        rs->st = S_QUOTED;
        return STEP_NEXT;
    }
    /* A quote inside an unquoted field is taken as it is (12" pipe). */
    rs->any = true;
    rs->st = S_UNQ;
    return append(r, (char)c);
}

/* The end of the input: 0 no row, 1 the row is complete, or an error. */
static int row_at_end(struct pd_csv *r, const struct row_scan *rs)
{
    int rc;
    if (rs->st == S_QUOTED) {
        set_error(r, rs->quote_line,
                  "a quoted field starts here and never ends; a quote inside a quoted "
                  "field must be doubled (\"\"), and the field needs a closing quote");
        return fail(r, PD_EPARSE);
    }
    if (rs->bad)
        return PD_EPARSE;
    if (!rs->any)
        return 0;
    if ((rc = end_field(r)) != 0)
        return fail(r, rc);
    return 1;
}

/* The row's fields must be UTF-8 text: 0, or PD_EPARSE naming the first that is not. */
static int check_fields(struct pd_csv *r, uint64_t row_line)
{
    for (size_t i = 0; i < r->nf; i++) {
        if (!utf8_valid((const unsigned char *)r->row + r->starts[i], r->lens[i])) {
            set_error(r, row_line,
                      "field %zu is not UTF-8 text; save the file as UTF-8 (\"CSV UTF-8\" in "
                      "Excel)",
                      i + 1);
            return PD_EPARSE;
        }
    }
    return 0;
}

int pd_csv_next(struct pd_csv *r, struct pd_csv_row *row)
{
    struct row_scan rs = {.st = S_START};
    int rc;

    memset(row, 0, sizeof(*row));
    if (r->fatal)
        return r->fatal;
    if (!r->started && (rc = check_start(r)) != 0)
        return fail(r, rc);
    r->rlen = 0;
    r->nf = 0;
    r->field_start = 0;
    rs.row_line = r->line;
    for (;;) {
        int c = next_byte(r);
        if (c == READ_ERROR) {
            set_error(r, r->line, "cannot read: %s", strerror(r->read_errno));
            return fail(r, -r->read_errno);
        }
        if (r->skip_lf) {
            r->skip_lf = false;
            if (c == '\n')
                continue;
        }
        if (c == END_OF_INPUT) {
            if ((rc = row_at_end(r, &rs)) <= 0)
                return rc;
            break;
        }
        if (c == 0) {
            set_error(r, r->line, "a NUL byte: this is not a text file; export the data as CSV");
            return fail(r, PD_EENCODING);
        }
        bool eol = c == '\n' || c == '\r';
        rc = row_step(r, &rs, c, eol);
        if (rc == STEP_NEXT)
            continue;
        if (rc == PD_ELIMIT) {
            set_error(r, rs.row_line,
                      "a field longer than %zu bytes; is a closing quote missing (a quoted "
                      "field runs until its closing quote, across lines)?",
                      r->max_field);
            return fail(r, PD_ELIMIT);
        }
        if (rc)
            return fail(r, rc);
        if (eol && rs.st != S_QUOTED) {
            r->line++;
            r->skip_lf = c == '\r';
            if (rs.bad)
                return PD_EPARSE;
            if (!rs.any && rs.st == S_START)
                break; /* an empty line: a row without fields */
            if ((rc = end_field(r)) != 0)
                return fail(r, rc);
            break;
        }
    }
    if ((rc = check_fields(r, rs.row_line)) != 0)
        return rc;
    hand_out(r, row, rs.row_line);
    return 1;
}

static int reserve(struct pd_csv_buf *out, size_t need)
{
    return pd_reserve(&out->data, &out->cap, need, 256, UINT64_MAX);
}

int pd_csv_end_row(struct pd_csv_buf *out)
{
    if (reserve(out, out->len + 2))
        return PD_ENOMEM;
    out->data[out->len++] = '\n';
    out->data[out->len] = '\0';
    return 0;
}

int pd_csv_put_field(struct pd_csv_buf *out, const char *value, bool first)
{
    size_t n = strlen(value);
    bool quote = n && (value[0] == ' ' || value[n - 1] == ' ');
    for (const char *p = value; *p && !quote; p++)
        quote = *p == ',' || *p == '"' || *p == '\n' || *p == '\r';
    if (reserve(out, out->len + 2 * n + 4))
        return PD_ENOMEM;
    if (!first)
        out->data[out->len++] = ',';
    if (quote)
        out->data[out->len++] = '"';
    for (const char *p = value; *p; p++) {
        if (*p == '"')
            out->data[out->len++] = '"';
        out->data[out->len++] = *p;
    }
    if (quote)
        out->data[out->len++] = '"';
    out->data[out->len] = '\0';
    return 0;
}
