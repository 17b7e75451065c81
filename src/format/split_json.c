/*
 * The JSON record scanner of the splitter (json and ndjson formats): a validating push
 * tokenizer (RFC 8259) that tracks nesting in a bit stack instead of recursing, so a
 * document nested 100,000 deep costs 12.5 KB and no C stack.
 *
 * json: finds the array to split (the top-level array, or the one json_array points to in
 * a top-level object) and reports where each of its elements starts and ends.
 * ndjson: every line must hold one JSON value (or nothing); each line is a record.
 */
#include "split_internal.h"

#include "pd_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { J_VALUE, J_AFTER, J_KEY, J_COLON, J_STR, J_ESC, J_HEX, J_NUM, J_LIT, J_END };
enum { N_MINUS, N_ZERO, N_INT, N_DOT, N_FRAC, N_E, N_ESIGN, N_EXP };

#define JSON_MAX_DEPTH 100000
#define KEY_MAX 256

struct jscan {
    uint8_t st, num, str_key, first, hex_left, ndjson, found, area_done;
    uint8_t lit_len, lit_i, in_line_value, pending_hi_used;
    const char *lit;
    uint32_t depth, arr_depth, onpath;
    uint64_t idx;    /* element index in the array at depth onpath */
    int key_on_path; /* the last key read matches the pointer at its depth */
    uint32_t key_len, hex_val, pending_hi;
    int key_over, collect_key;
    char key[KEY_MAX];
    uint8_t stack[JSON_MAX_DEPTH / 8 + 1]; /* bit set: container at that depth is an array */
};

/* Splits a JSON pointer (RFC 6901) into unescaped segments. */
static int parse_pointer(struct scan *sc)
{
    const char *ptr = sc->pointer;
    if (!ptr || !*ptr)
        return 0;
    if (*ptr != '/') {
        snprintf(sc->msg, sizeof(sc->msg),
                 "json_array '%s' is not a JSON pointer: it must start with '/' (e.g. /orders)",
                 ptr);
        return PD_ECONFIG;
    }
    size_t n = 0;
    for (const char *p = ptr; *p; p++)
        n += *p == '/';
    sc->segs = calloc(n, sizeof(*sc->segs));
    if (!sc->segs)
        return PD_ENOMEM;
    const char *p = ptr + 1;
    for (size_t k = 0; k < n; k++) {
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char *s = malloc(len + 1), *d = s;
        if (!s)
            return PD_ENOMEM;
        sc->segs[sc->nsegs++] = s;
        for (size_t i = 0; i < len; i++) {
            if (p[i] == '~' && i + 1 < len && (p[i + 1] == '0' || p[i + 1] == '1')) {
                *d++ = p[i + 1] == '0' ? '~' : '/';
                i++;
            } else {
                *d++ = p[i];
            }
        }
        *d = '\0';
        if (d - s >= KEY_MAX) {
            snprintf(sc->msg, sizeof(sc->msg), "json_array: a key longer than %d bytes",
                     KEY_MAX - 1);
            return PD_ECONFIG;
        }
        p += len + 1;
    }
    return 0;
}

static int is_ws(unsigned c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/*
 * The offset of the first byte of B[i..n) that ends a run of plain string text ('"', '\\' or
 * a control character), or N. A word at a time: most bytes of a JSON file are inside strings.
 * The lowest flagged byte is exact (borrows run upwards only), and it is the one taken. Kept
 * here rather than calling the escaper's SSE2 scan (pd_encode.h), the same bytes, because a
 * call per string costs more than it saves on the short strings of most JSON.
 */
#define ONES8 0x0101010101010101ull
#define HIGH8 0x8080808080808080ull
static size_t str_run(const unsigned char *b, size_t i, size_t n)
{
    while (i + 8 <= n) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        uint64_t q = w ^ (ONES8 * '"'), s = w ^ (ONES8 * '\\');
        uint64_t hit = ((q - ONES8) & ~q) | ((s - ONES8) & ~s) | ((w - ONES8 * 0x20) & ~w);
        if (hit & HIGH8)
            return i + (size_t)(__builtin_ctzll(hit & HIGH8) >> 3);
        i += 8;
    }
    while (i < n && b[i] != '"' && b[i] != '\\' && b[i] >= 0x20)
        i++;
    return i;
}

static int is_array(const struct jscan *j, uint32_t depth)
{
    return (j->stack[depth / 8] >> (depth % 8)) & 1;
}

static void set_kind(struct jscan *j, uint32_t depth, int array)
{
    if (array)
        j->stack[depth / 8] |= (uint8_t)(1u << (depth % 8));
    else
        j->stack[depth / 8] &= (uint8_t)~(1u << (depth % 8));
}

static void jscan_reset(struct scan *sc)
{
    struct jscan *j = sc->u;
    memset(j, 0, offsetof(struct jscan, stack));
    j->st = J_VALUE;
}

static void ndscan_reset(struct scan *sc)
{
    jscan_reset(sc);
    ((struct jscan *)sc->u)->ndjson = 1;
}

static const char *kind_name(unsigned c)
{
    switch (c) {
    case '{': return "an object";
    case '[': return "an array";
    case '"': return "a string";
    case 't': case 'f': return "a boolean";
    case 'n': return "null";
    default: return "a number";
    }
}

/* Does the value about to start (inside the container at depth j->depth) lie on the pointer? */
static int value_on_path(struct scan *sc)
{
    struct jscan *j = sc->u;
    if (j->found)
        return 0;
    if (j->depth == 0)
        return 1;
    if (j->onpath != j->depth)
        return 0;
    if (!is_array(j, j->depth))
        return j->key_on_path;
    const char *seg = sc->segs[j->depth - 1];
    char *end;
    unsigned long long want = strtoull(seg, &end, 10);
    return *seg && !*end && want == j->idx;
}

/*
 * Called at the first byte of a value. Returns 2 when it opens the split array, SCAN_ERROR,
 * or 0; *ev is SCAN_REC_START when an element of the split array starts. Handles the pointer
 * (json_array) bookkeeping and the record start of elements of the split array.
 */
static int value_start(struct scan *sc, unsigned c, uint64_t at, int *ev)
{
    struct jscan *j = sc->u;
    *ev = SCAN_MORE;
    if (j->ndjson) {
        j->in_line_value = 1;
        return 0;
    }
    int on = value_on_path(sc);
    if (j->depth > 0 && j->onpath == j->depth && is_array(j, j->depth) && !j->found)
        j->idx++;
    if (on && j->depth == sc->nsegs) {
        if (c != '[') {
            /* Not splittable as configured; keep reading, so that a file that fits whole is
             * still checked for well-formedness to its end. */
            if (sc->shape_msg[0])
                return 0;
            sc->shape_dec = at;
            if (sc->nsegs == 0 && c == '{')
                snprintf(sc->shape_msg, sizeof(sc->shape_msg),
                         "the top-level JSON value is an object, which cannot be split; set "
                         "json_array to the JSON pointer of the array inside it (for example "
                         "json_array = /orders)");
            else if (sc->nsegs == 0)
                snprintf(sc->shape_msg, sizeof(sc->shape_msg),
                         "the top-level JSON value is %s, not an array or object; the file "
                         "is not JSON that can be split (is the split format right?)",
                         kind_name(c));
            else
                snprintf(sc->shape_msg, sizeof(sc->shape_msg),
                         "json_array %s points to %s, not an array", sc->pointer, kind_name(c));
            return 0;
        }
        j->found = 1;
        j->arr_depth = j->depth + 1;
        return 2; /* caller emits AREA_START after the '[' */
    }
    if (on && (c == '[' || c == '{'))
        j->onpath = j->depth + 1, j->idx = 0;
    if (j->found && !j->area_done && j->depth == j->arr_depth) {
        sc->ev_dec = at;
        *ev = SCAN_REC_START;
    }
    return 0;
}

/* A value just ended at AT (exclusive). Emits REC_END for elements of the split array. */
static int value_end(struct scan *sc, uint64_t at)
{
    struct jscan *j = sc->u;
    j->st = j->depth == 0 ? J_END : J_AFTER;
    if (j->found && !j->area_done && j->depth == j->arr_depth) {
        sc->ev_dec = at;
        return SCAN_REC_END;
    }
    return SCAN_MORE;
}

static void key_add(struct jscan *j, uint32_t cp)
{
    char u[4];
    int n;
    if (cp < 0x80) {
        u[0] = (char)cp, n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6)), u[1] = (char)(0x80 | (cp & 63)), n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12)), u[1] = (char)(0x80 | ((cp >> 6) & 63));
        u[2] = (char)(0x80 | (cp & 63)), n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18)), u[1] = (char)(0x80 | ((cp >> 12) & 63));
        u[2] = (char)(0x80 | ((cp >> 6) & 63)), u[3] = (char)(0x80 | (cp & 63)), n = 4;
    }
    for (int i = 0; i < n; i++) {
        if (j->key_len < KEY_MAX)
            j->key[j->key_len++] = u[i];
        else
            j->key_over = 1;
    }
}

static void key_done(struct scan *sc)
{
    struct jscan *j = sc->u;
    j->key_on_path = 0;
    if (j->collect_key && !j->key_over) {
        const char *seg = sc->segs[j->depth - 1];
        j->key_on_path = strlen(seg) == j->key_len && !memcmp(seg, j->key, j->key_len);
    }
}

static int push(struct scan *sc, int array, uint64_t at)
{
    struct jscan *j = sc->u;
    if (j->depth + 1 >= JSON_MAX_DEPTH)
        return scan_fail(sc, at, "JSON nested deeper than %d levels", JSON_MAX_DEPTH);
    j->depth++;
    set_kind(j, j->depth, array);
    j->first = 1;
    j->st = array ? J_VALUE : J_KEY;
    return SCAN_MORE;
}

/* Closes the container at the current depth with C (']' or '}') at AT. */
static int pop(struct scan *sc, unsigned c, uint64_t at)
{
    struct jscan *j = sc->u;
    int arr = is_array(j, j->depth);
    if (j->depth == 0 || arr != (c == ']'))
        return scan_fail(sc, at, "unexpected '%c'", c);
    if (j->found && j->depth == j->arr_depth)
        j->area_done = 1;
    if (j->onpath == j->depth)
        j->onpath = j->depth - 1;
    j->depth--;
    if (j->ndjson && j->depth == 0)
        j->in_line_value = 1;
    return value_end(sc, at + 1);
}

/* One byte C of a number in state j->num: sets *OK to 0 when it cannot be there, *END to 1
 * when the number ended before it. */
static void num_step(struct jscan *j, unsigned c, int *ok, int *end)
{
    switch (j->num) {
    case N_MINUS: if (c == '0') j->num = N_ZERO; else if (c >= '1' && c <= '9') j->num = N_INT; else *ok = 0; break;
    case N_ZERO: if (c == '.') j->num = N_DOT; else if (c == 'e' || c == 'E') j->num = N_E; else *end = 1; break;
    case N_INT: if (c >= '0' && c <= '9') break; if (c == '.') j->num = N_DOT; else if (c == 'e' || c == 'E') j->num = N_E; else *end = 1; break;
    case N_DOT: if (c >= '0' && c <= '9') j->num = N_FRAC; else *ok = 0; break;
    case N_FRAC: if (c >= '0' && c <= '9') break; if (c == 'e' || c == 'E') j->num = N_E; else *end = 1; break;
    case N_E: if (c == '+' || c == '-') j->num = N_ESIGN; else if (c >= '0' && c <= '9') j->num = N_EXP; else *ok = 0; break;
    case N_ESIGN: if (c >= '0' && c <= '9') j->num = N_EXP; else *ok = 0; break;
    case N_EXP: if (c >= '0' && c <= '9') break; *end = 1; break;
    }
}

/* The byte C after a backslash in a string, at AT: SCAN_MORE or SCAN_ERROR. */
static int str_escape(struct scan *sc, unsigned c, uint64_t at)
{
    struct jscan *j = sc->u;
    /* A switch, not strchr(): escapes are frequent in dense JSON. */
    int v = -1;
    switch (c) {
    case '"': case '\\': case '/': v = (int)c; break;
    case 'b': v = '\b'; break;
    case 'f': v = '\f'; break;
    case 'n': v = '\n'; break;
    case 'r': v = '\r'; break;
    case 't': v = '\t'; break;
    default: break;
    }
    if (c == 'u') {
        j->st = J_HEX, j->hex_left = 4, j->hex_val = 0;
    } else if (v >= 0) {
        if (j->collect_key && j->str_key)
            key_add(j, (uint32_t)v);
        j->st = J_STR;
    } else {
        return scan_fail(sc, at, "invalid escape '\\%c' in a JSON string",
                         c >= 0x20 && c < 0x7f ? c : '?');
    }
    return SCAN_MORE;
}

/* The byte C of a \\u escape, at AT: SCAN_MORE or SCAN_ERROR. */
static int str_hex(struct scan *sc, unsigned c, uint64_t at)
{
    struct jscan *j = sc->u;
    int v = c >= '0' && c <= '9' ? (int)c - '0'
            : c >= 'a' && c <= 'f' ? (int)c - 'a' + 10
            : c >= 'A' && c <= 'F' ? (int)c - 'A' + 10 : -1;
    if (v < 0) {
        return scan_fail(sc, at,
                         "invalid \\u escape in a JSON string (4 hex digits expected)");
    }
    j->hex_val = j->hex_val * 16 + (uint32_t)v;
    if (--j->hex_left == 0) {
        j->st = J_STR;
        if (j->collect_key && j->str_key) {
            uint32_t cp = j->hex_val;
            if (cp >= 0xD800 && cp < 0xDC00) {
                j->pending_hi = cp, j->pending_hi_used = 1;
            } else {
                if (cp >= 0xDC00 && cp < 0xE000 && j->pending_hi_used)
                    cp = 0x10000 + ((j->pending_hi - 0xD800) << 10) + (cp - 0xDC00);
                j->pending_hi_used = 0;
                key_add(j, cp);
            }
        }
    }
    return SCAN_MORE;
}

/*
 * What a state function below asks jscan_feed to do: read on in the state it set (GO_NEXT),
 * return W->ev (GO_OUT), take the same byte as whitespace (GO_BLANK), or go straight on with
 * the next byte in the state named (always the one just set), without the state switch.
 */
enum { GO_NEXT, GO_OUT, GO_BLANK, GO_STR, GO_NUM, GO_VALUE, GO_AFTER, GO_KEY };

/* A value ended at AT (exclusive): out at a record's end, else on after it. */
static inline int j_ended(struct scan_win *w, struct jscan *j, uint64_t at)
{
    if ((w->ev = value_end(w->sc, at)) != SCAN_MORE)
        return GO_OUT;
    return j->st == J_AFTER ? GO_AFTER : GO_NEXT;
}

/* The ']' or '}' C that closes the container at the current depth. */
static inline int j_close(struct scan_win *w, unsigned c)
{
    uint64_t at = w->base + w->i++;
    return (w->ev = pop(w->sc, c, at)) != SCAN_MORE ? GO_OUT : GO_NEXT;
}

/* A byte the state function RC took (SCAN_MORE) or failed on. */
static inline int j_took(struct scan_win *w, int rc)
{
    if ((w->ev = rc) != SCAN_MORE)
        return GO_OUT;
    w->i++;
    return GO_NEXT;
}

/* The '"' that ends a key: on to the ':' and the value (at once when they follow). */
static inline int j_key_end(struct scan_win *w, struct jscan *j)
{
    key_done(w->sc);
    j->st = J_COLON;
    /* The usual '": ' after a key, without a turn of the loop per byte. */
    if (w->i + 1 < w->n && w->b[w->i] == ':') {
        w->i += 1 + (w->b[w->i + 1] == ' ');
        j->st = J_VALUE, j->first = 0;
        return GO_VALUE;
    }
    return GO_NEXT;
}

/* Inside a string (J_STR), at the byte C. */
static inline int j_str(struct scan_win *w, struct jscan *j, unsigned c)
{
    /* The hot loop: most bytes of a JSON file are inside strings. */
    if (!j->collect_key || !j->str_key) {
        w->i = str_run(w->b, w->i, w->n);
        if (w->i == w->n)
            return GO_NEXT;
        c = w->b[w->i];
    }
    uint64_t at = w->base + w->i;
    if (c == '"') {
        w->i++;
        return j->str_key ? j_key_end(w, j) : j_ended(w, j, at + 1);
    }
    if (c == '\\') {
        j->st = J_ESC, w->i++;
        return GO_NEXT;
    }
    if (c < 0x20) {
        w->ev = scan_fail(w->sc, at,
                          "control character 0x%02x inside a JSON string (must be escaped)", c);
        return GO_OUT;
    }
    if (j->key_len < KEY_MAX)
        j->key[j->key_len++] = (char)c;
    else
        j->key_over = 1;
    w->i++;
    return GO_NEXT;
}

/* Inside a number (J_NUM), at the byte C. */
static inline int j_num(struct scan_win *w, struct jscan *j, unsigned c)
{
    int ok = 1, end = 0;
    /* Runs of digits are most of a number: skip them without the state switch. */
    if (j->num == N_INT || j->num == N_FRAC || j->num == N_EXP) {
        size_t i = w->i;
        while (i < w->n && w->b[i] >= '0' && w->b[i] <= '9')
            i++;
        w->i = i;
        if (i == w->n)
            return GO_NEXT;
        c = w->b[i];
    }
    uint64_t at = w->base + w->i;
    num_step(j, c, &ok, &end);
    if (!ok) {
        w->ev = scan_fail(w->sc, at, "malformed JSON number");
        return GO_OUT;
    }
    /* The byte after the number is not consumed: it is read again as structure. */
    if (end)
        return j_ended(w, j, at);
    w->i++;
    return GO_NEXT;
}

/* Inside true, false or null (J_LIT), at the byte C. */
static inline int j_lit(struct scan_win *w, struct jscan *j, unsigned c)
{
    uint64_t at = w->base + w->i;
    if (c != (unsigned char)j->lit[j->lit_i]) {
        w->ev = scan_fail(w->sc, at, "invalid literal (expected %s)", j->lit);
        return GO_OUT;
    }
    w->i++;
    return ++j->lit_i == j->lit_len ? j_ended(w, j, at + 1) : GO_NEXT;
}

/* The first byte C of a string, number or literal: its state; 0 when C starts no value. */
static inline int j_scalar(struct scan_win *w, struct jscan *j, unsigned c)
{
    if (c == '"') {
        j->st = J_STR, j->str_key = 0;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        j->st = J_NUM, j->num = c == '-' ? N_MINUS : c == '0' ? N_ZERO : N_INT;
    } else if (c == 't' || c == 'f' || c == 'n') {
        j->lit = c == 't' ? "true" : c == 'f' ? "false" : "null";
        j->lit_len = c == 'f' ? 5 : 4, j->lit_i = 1, j->st = J_LIT;
    } else {
        w->ev = scan_fail(w->sc, w->base + w->i,
                          "unexpected character '%c' where a JSON value was expected",
                          c >= 0x20 && c < 0x7f ? c : '?');
        return 0;
    }
    return 1;
}

/* After a value's first byte: straight on into what the value holds, without the switch. */
static inline int j_value_on(struct scan_win *w, struct jscan *j)
{
    if (j->st == J_STR)
        return GO_STR;
    if (j->st == J_NUM)
        return GO_NUM;
    if (j->st == J_KEY)
        return GO_KEY;
    if (j->st == J_VALUE)
        return GO_VALUE;
    if (j->st == J_LIT && w->i + j->lit_len - 1 <= w->n &&
        !memcmp(w->b + w->i, j->lit + 1, j->lit_len - 1u)) {
        w->i += j->lit_len - 1u; /* the whole literal is in the window */
        return j_ended(w, j, w->base + w->i);
    }
    return GO_NEXT;
}

/* Where a value is expected (J_VALUE), at the byte C. */
static inline int j_value(struct scan_win *w, struct jscan *j, unsigned c)
{
    uint64_t at = w->base + w->i;
    if (is_ws(c))
        return GO_BLANK;
    if (c == ']' && j->first && j->depth > 0)
        return j_close(w, c);
    int ev, area = value_start(w->sc, c, at, &ev);
    if (area == SCAN_ERROR) {
        w->ev = SCAN_ERROR;
        return GO_OUT;
    }
    if (c == '{' || c == '[') {
        if (push(w->sc, c == '[', at) == SCAN_ERROR) {
            w->ev = SCAN_ERROR;
            return GO_OUT;
        }
        if (area) {
            w->i++;
            w->sc->ev_dec = at + 1;
            w->ev = SCAN_AREA_START;
            return GO_OUT;
        }
    } else if (!j_scalar(w, j, c)) {
        return GO_OUT;
    }
    w->i++;
    if (ev == SCAN_REC_START) {
        w->ev = ev; /* the byte is consumed, but the event sits before it (ev_dec) */
        return GO_OUT;
    }
    return j_value_on(w, j);
}

/* After a value (J_AFTER), at the byte C: ',' or the container's end. */
static inline int j_after(struct scan_win *w, struct jscan *j, unsigned c)
{
    if (is_ws(c))
        return GO_BLANK;
    if (c == ',') {
        j->st = is_array(j, j->depth) ? J_VALUE : J_KEY;
        j->first = 0;
        w->i++;
        /* The usual ', ' between members, without a turn of the loop for the blank. */
        if (w->i < w->n && w->b[w->i] == ' ')
            w->i++;
        return j->st == J_KEY ? GO_KEY : GO_VALUE;
    }
    if (c == ']' || c == '}')
        return j_close(w, c);
    w->ev = scan_fail(w->sc, w->base + w->i, "expected ',' or '%c' after a value",
                      is_array(j, j->depth) ? ']' : '}');
    return GO_OUT;
}

/* Where an object's key is expected (J_KEY), at the byte C. */
static inline int j_key(struct scan_win *w, struct jscan *j, unsigned c)
{
    if (is_ws(c))
        return GO_BLANK;
    if (c == '}' && j->first)
        return j_close(w, c);
    if (c != '"') {
        w->ev = scan_fail(w->sc, w->base + w->i, "expected a string key in a JSON object");
        return GO_OUT;
    }
    j->st = J_STR, j->str_key = 1, j->key_len = 0, j->key_over = 0, j->pending_hi_used = 0;
    j->collect_key = !j->found && j->onpath == j->depth && j->depth <= w->sc->nsegs;
    w->i++;
    return GO_STR;
}

/* After a key (J_COLON) or the whole value (J_END), at the byte C: blanks and the ':'. */
static inline int j_colon_end(struct scan_win *w, struct jscan *j, unsigned c)
{
    if (is_ws(c))
        return GO_BLANK;
    if (j->st == J_END) {
        w->ev = scan_fail(w->sc, w->base + w->i,
                          j->ndjson ? "more than one JSON value on one line"
                                    : "unexpected data after the end of the JSON document");
        return GO_OUT;
    }
    if (c != ':') {
        w->ev = scan_fail(w->sc, w->base + w->i, "expected ':' after an object key");
        return GO_OUT;
    }
    j->st = J_VALUE, j->first = 0;
    w->i++;
    return GO_NEXT;
}

/* Whitespace C in a structural state: skipped everywhere, but a newline ends an NDJSON line. */
static inline int j_blank(struct scan_win *w, struct jscan *j, unsigned c)
{
    uint64_t at = w->base + w->i;
    if (c == '\n' && j->ndjson) {
        if (j->depth > 0 || j->st == J_COLON) {
            w->ev = scan_fail(w->sc, at, "a JSON value continues past the end of its line, which "
                                         "NDJSON does not allow (one value per line)");
            return GO_OUT;
        }
        w->i++;
        j->st = J_VALUE, j->in_line_value = 0;
        w->sc->ev_dec = at + 1;
        w->ev = SCAN_REC_END;
        return GO_OUT;
    }
    j->in_line_value = 1; /* a line of blanks without its newline is a record too */
    /* Indentation comes in runs: skip it here (newlines too, outside NDJSON). */
    size_t i = w->i + 1;
    while (i < w->n && (w->b[i] == ' ' || w->b[i] == '\t' || w->b[i] == '\r' ||
                        (w->b[i] == '\n' && !j->ndjson)))
        i++;
    w->i = i;
    return GO_NEXT;
}

/* Runs the state functions above over B[*POS..N) until an event or the window's end. */
static int jscan_feed(struct scan *sc, const unsigned char *b, size_t n, uint64_t base, size_t *pos)
{
    struct jscan *j = sc->u;
    struct scan_win w = {sc, b, n, *pos, base, SCAN_MORE};
    while (w.i < n) {
        unsigned c = b[w.i];
        int go;
        switch (j->st) {
        case J_STR:
        str:
            go = j_str(&w, j, c);
            break;
        case J_ESC:
            go = j_took(&w, str_escape(sc, c, base + w.i));
            break;
        case J_HEX:
            go = j_took(&w, str_hex(sc, c, base + w.i));
            break;
        case J_NUM:
        num:
            go = j_num(&w, j, c);
            break;
        case J_LIT:
            go = j_lit(&w, j, c);
            break;
        case J_VALUE:
        value:
            go = j_value(&w, j, c);
            break;
        case J_AFTER:
        after:
            go = j_after(&w, j, c);
            break;
        case J_KEY:
        key:
            go = j_key(&w, j, c);
            break;
        case J_COLON:
        case J_END:
            go = j_colon_end(&w, j, c);
            break;
        default:
            continue;
        }
        if (go == GO_BLANK)
            go = j_blank(&w, j, c);
        if (go == GO_OUT)
            break;
        if (go == GO_NEXT || w.i == n)
            continue;
        c = b[w.i];
        switch (go) {
        case GO_STR: goto str;
        case GO_NUM: goto num;
        case GO_VALUE: goto value;
        case GO_AFTER: goto after;
        default: goto key;
        }
    }
    *pos = w.i;
    return w.ev;
}

static int jscan_end(struct scan *sc, uint64_t eof_dec)
{
    struct jscan *j = sc->u;
    if (j->st == J_NUM && (j->num == N_ZERO || j->num == N_INT || j->num == N_FRAC || j->num == N_EXP)) {
        int ev = value_end(sc, eof_dec);
        if (ev != SCAN_MORE)
            return ev;
    }
    if (j->ndjson) {
        if (j->depth > 0 || (j->st != J_END && j->st != J_VALUE))
            return scan_fail(sc, eof_dec, "the file ends inside a JSON value");
        if (j->in_line_value || j->st == J_END) {
            /* Last line without a newline: still a record. */
            j->st = J_VALUE, j->in_line_value = 0;
            sc->ev_dec = eof_dec;
            return SCAN_REC_END;
        }
        return SCAN_DONE;
    }
    if (j->st != J_END)
        return scan_fail(sc, eof_dec, j->depth == 0 && j->st == J_VALUE && !j->found
                                     ? "the file holds no JSON value"
                                     : "the file ends inside the JSON document (truncated?)");
    if (!j->found) {
        sc->structural = 1;
        if (sc->shape_msg[0])
            return scan_fail(sc, sc->shape_dec, "%s", sc->shape_msg);
        return scan_fail(sc, eof_dec, "json_array %s: no such array in the file", sc->pointer);
    }
    return SCAN_DONE;
}

/* A chunk that starts after a record continues after that record's separator. */
static void jscan_resume(struct scan *sc, int after_record)
{
    struct jscan *j = sc->u;
    if (after_record) {
        j->st = J_AFTER;
        j->first = 0;
    }
}

const struct pd_scan_ops pd_scan_json = {
    .state_size = sizeof(struct jscan),
    .tiled = 0,
    .init = parse_pointer,
    .reset = jscan_reset,
    .area_at_start = scan_never,
    .feed = jscan_feed,
    .end = jscan_end,
    .resume = jscan_resume,
};

const struct pd_scan_ops pd_scan_ndjson = {
    .state_size = sizeof(struct jscan),
    .tiled = 1,
    .reset = ndscan_reset,
    .area_at_start = scan_always,
    .feed = jscan_feed,
    .end = jscan_end,
};
