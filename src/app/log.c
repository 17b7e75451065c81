/*
 * The log (see pd_log.h): formats one event into a line of text or JSON, suppresses copies of a
 * repeating warning or error, and writes each line with one call so that the lines of
 * concurrent processes never interleave. Under journald each line is sent natively with
 * fields of its own (EVENT=, WATCH=, FILE=) when stderr is the journal's stream. One mutex guards the settings and the repeat table,
 * since the metrics thread and libuv's thread pool may log too.
 */
#include "pd_log.h"

#include "pd_clock.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifdef PD_HAVE_SYSTEMD
/* CODE_FILE= and the like would always name this file: left out. */
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>
/* Where libsystemd sends native journal entries. */
#define JOURNAL_SOCKET "/run/systemd/journal/socket"
#endif

#define LINE_MAX_LOG 4096
#define REPEAT_SLOTS 32
#define DEFAULT_REPEAT_MS 60000

/* A warning or error seen recently: its copies are counted, not written. */
struct repeat {
    uint64_t key;      /* hash of the message with its digits left out; 0: free slot */
    uint64_t first_ms; /* when the written copy was written */
    uint64_t count;    /* copies suppressed since */
    enum pd_log_level level;
    char last[512]; /* the last suppressed copy */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static enum pd_log_level min_level = PD_LOG_INFO;
static enum pd_log_format format = PD_LOG_TEXT;
static FILE *output;
static const struct pd_clock *clock_src;
static uint64_t repeat_ms = DEFAULT_REPEAT_MS;
static struct repeat repeats[REPEAT_SLOTS];

static const char *const level_names[] = {"debug", "info", "warn", "error"};
static const int syslog_prio[] = {7, 6, 4, 3};

void pd_log_set_level(enum pd_log_level level)
{
    pthread_mutex_lock(&lock);
    min_level = level;
    pthread_mutex_unlock(&lock);
}

void pd_log_set_format(enum pd_log_format f)
{
    pthread_mutex_lock(&lock);
    format = f;
    pthread_mutex_unlock(&lock);
}

void pd_log_set_output(FILE *out)
{
    pthread_mutex_lock(&lock);
    output = out;
    pthread_mutex_unlock(&lock);
}

void pd_log_set_clock(const struct pd_clock *c)
{
    pthread_mutex_lock(&lock);
    clock_src = c;
    memset(repeats, 0, sizeof(repeats));
    pthread_mutex_unlock(&lock);
}

void pd_log_set_repeat_window(uint64_t ms)
{
    pthread_mutex_lock(&lock);
    repeat_ms = ms;
    memset(repeats, 0, sizeof(repeats));
    pthread_mutex_unlock(&lock);
}

static const struct pd_clock *clk(void)
{
    return clock_src ? clock_src : pd_clock_system();
}

/* ---- JSON rendering of a key=value message ------------------------------------------- */

size_t pd_utf8_len(const unsigned char *s, size_t n)
{
    size_t len;
    unsigned cp;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        len = 2, cp = s[0] & 0x1f;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        len = 3, cp = s[0] & 0x0f;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        len = 4, cp = s[0] & 0x07;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

/*
 * Length of the character at S (N bytes left) when it may reach a terminal as it is: printable
 * ASCII or valid UTF-8 that is not a C1 control (U+0080..U+009F, which some terminals obey as
 * ESC-sequences even in UTF-8). 0: its first byte must be escaped (C0 controls, DEL, bytes that
 * are not valid UTF-8, among them raw C1 controls 0x80..0x9f).
 */
static size_t shown_len(const unsigned char *s, size_t n)
{
    size_t l;

    if (s[0] < 0x20 || s[0] == 0x7f)
        return 0;
    l = pd_utf8_len(s, n);
    if (l == 2 && s[0] == 0xc2 && s[1] < 0xa0)
        return 0;
    return l;
}

/* A growing line with a hard cap: what does not fit is cut. */
struct out {
    char *buf;
    size_t len, cap;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->len + n >= o->cap)
        n = o->cap - 1 - o->len;
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    o->buf[o->len] = '\0';
}

static void puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

/* S (N bytes) as a JSON string with quotes; invalid UTF-8 becomes U+FFFD, controls \u00XX. */
static void put_json_string(struct out *o, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    put(o, "\"", 1);
    for (size_t i = 0; i < n;) {
        unsigned char c = u[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            put(o, e, 2);
            i++;
        } else if (c == '\n') {
            puts_(o, "\\n");
            i++;
        } else if (c == '\t') {
            puts_(o, "\\t");
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            char e[8];
            snprintf(e, sizeof(e), "\\u%04x", c);
            puts_(o, e);
            i++;
        } else {
            size_t l = pd_utf8_len(u + i, n - i);
            if (l == 0) {
                puts_(o, "\\ufffd");
                i++;
            } else if (!shown_len(u + i, n - i)) { /* U+0080..U+009F */
                char e[8];
                snprintf(e, sizeof(e), "\\u%04x", u[i + 1]);
                puts_(o, e);
                i += l;
            } else {
                put(o, s + i, l);
                i += l;
            }
        }
    }
    put(o, "\"", 1);
}

/*
 * Reads one value at *P: quoted (undoing pd_log_quote's escapes) or up to the next blank.
 * Writes it into VAL (cap VCAP) and returns its length; *QUOTED tells which it was.
 */
static size_t read_value(const char **p, char *val, size_t vcap, bool *quoted)
{
    const char *s = *p;
    size_t n = 0;

    *quoted = *s == '"';
    if (*s != '"') {
        while (*s && *s != ' ') {
            if (n + 1 < vcap)
                val[n++] = *s;
            s++;
        }
        *p = s;
        return n;
    }
    for (s++; *s && *s != '"'; s++) {
        char c = *s;
        if (c == '\\' && s[1]) {
            s++;
            if (*s == 'n') {
                c = '\n';
            } else if (*s == 'x' && isxdigit((unsigned char)s[1]) && isxdigit((unsigned char)s[2])) {
                char hex[3] = {s[1], s[2], 0};
                c = (char)strtol(hex, NULL, 16);
                s += 2;
            } else {
                c = *s;
            }
        }
        if (n + 1 < vcap)
            val[n++] = c;
    }
    if (*s == '"')
        s++;
    *p = s;
    return n;
}

/*
 * Whether V (N bytes) is written into JSON as a literal rather than a string: true, false, or
 * a number in JSON's grammar with at most JSON_DIGITS_MAX digits, which every JSON reader
 * holds exactly (a double keeps 15; nanosecond times and long ids stay strings).
 */
#define JSON_DIGITS_MAX 15

static bool json_literal(const char *v, size_t n)
{
    size_t i = 0, digits = 0;

    if ((n == 4 && !memcmp(v, "true", 4)) || (n == 5 && !memcmp(v, "false", 5)))
        return true;
    if (i < n && v[i] == '-')
        i++;
    if (i < n && v[i] == '0') {
        i++, digits++;
    } else if (i < n && v[i] >= '1' && v[i] <= '9') {
        while (i < n && isdigit((unsigned char)v[i]))
            i++, digits++;
    } else {
        return false;
    }
    if (i < n && v[i] == '.') {
        size_t start = ++i;
        while (i < n && isdigit((unsigned char)v[i]))
            i++, digits++;
        if (i == start)
            return false;
    }
    if (i < n && (v[i] == 'e' || v[i] == 'E')) {
        i++;
        if (i < n && (v[i] == '+' || v[i] == '-'))
            i++;
        size_t start = i;
        while (i < n && isdigit((unsigned char)v[i]))
            i++;
        if (i == start)
            return false;
    }
    return i == n && digits <= JSON_DIGITS_MAX;
}

/*
 * Words that are not key=value pairs are gathered into one "msg" field. A value written
 * without quotes that reads as a number or a boolean (json_literal) becomes one; a quoted
 * value is always a string, and pd_log_quote() quotes every value that would read as one.
 */
static void render_json(struct out *o, const char *time, enum pd_log_level level, const char *msg)
{
    char val[LINE_MAX_LOG], words[LINE_MAX_LOG];
    size_t nwords = 0;
    const char *p = msg;

    puts_(o, "{");
    if (time) {
        puts_(o, "\"time\":\"");
        puts_(o, time);
        puts_(o, "\",");
    }
    puts_(o, "\"level\":\"");
    puts_(o, level_names[level]);
    puts_(o, "\"");
    while (*p) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        const char *k = p;
        while (isalnum((unsigned char)*p) || *p == '_' || *p == '-' || *p == '.')
            p++;
        if (p > k && *p == '=') {
            size_t klen = (size_t)(p - k);
            bool quoted;
            p++;
            size_t vlen = read_value(&p, val, sizeof(val), &quoted);
            puts_(o, ",");
            put_json_string(o, k, klen);
            puts_(o, ":");
            if (!quoted && json_literal(val, vlen))
                put(o, val, vlen);
            else
                put_json_string(o, val, vlen);
            continue;
        }
        /* A plain word (or a quoted run of them). */
        p = k;
        bool quoted;
        size_t vlen = read_value(&p, val, sizeof(val), &quoted);
        if (nwords && nwords + 1 < sizeof(words))
            words[nwords++] = ' ';
        for (size_t i = 0; i < vlen && nwords + 1 < sizeof(words); i++)
            words[nwords++] = val[i];
    }
    if (nwords) {
        puts_(o, ",\"msg\":");
        put_json_string(o, words, nwords);
    }
    puts_(o, "}");
}

/* ---- journald's fields ---------------------------------------------------------------- */

size_t pd_log_journal_fields(const char *msg, char (*fields)[PD_LOG_FIELD_MAX], size_t max)
{
    static const struct {
        const char *key, *field;
    } wanted[] = {{"event", "EVENT"}, {"watch", "WATCH"}, {"file", "FILE"}};
    bool done[sizeof(wanted) / sizeof(wanted[0])] = {false};
    char val[LINE_MAX_LOG], safe[PD_LOG_FIELD_MAX - 8]; /* room for "WATCH=" */
    size_t n = 0;

    for (const char *p = msg; *p && n < max;) {
        const char *k = p;
        bool quoted;
        size_t klen, vlen;

        while (isalnum((unsigned char)*p) || *p == '_' || *p == '-' || *p == '.')
            p++;
        klen = (size_t)(p - k);
        if (!klen || *p != '=') {
            /* A word that is not key=value (a quoted run of them too): skipped whole. */
            p = k;
            read_value(&p, val, sizeof(val), &quoted);
            while (*p == ' ')
                p++;
            continue;
        }
        p++;
        vlen = read_value(&p, val, sizeof(val), &quoted);
        val[vlen] = '\0';
        while (*p == ' ')
            p++;
        for (size_t i = 0; i < sizeof(wanted) / sizeof(wanted[0]); i++) {
            if (done[i] || strlen(wanted[i].key) != klen || strncmp(k, wanted[i].key, klen))
                continue;
            /* As the line shows it: a name's control characters stay escaped. */
            snprintf(fields[n++], PD_LOG_FIELD_MAX, "%s=%s", wanted[i].field,
                     pd_log_escape(val, safe, sizeof(safe)));
            done[i] = true;
        }
    }
    return n;
}

/*
 * Whether stderr is journald's stream for this service: JOURNAL_STREAM names its device and
 * inode (a wrapper that sent stderr to a file keeps the variable, not the stream).
 */
static bool stderr_is_journal(void)
{
    const char *env = getenv("JOURNAL_STREAM");
    uintmax_t dev, ino;
    struct stat st;

    return env && sscanf(env, "%" SCNuMAX ":%" SCNuMAX, &dev, &ino) == 2 &&
           !fstat(STDERR_FILENO, &st) && (uintmax_t)st.st_dev == dev &&
           (uintmax_t)st.st_ino == ino;
}

/*
 * Sends LINE to journald natively with its priority and the fields of MSG, so that
 * `journalctl -u patchdrop WATCH=orders` finds a watch's lines. False when it cannot (no
 * libsystemd, no journal socket): the line then goes to stderr as before.
 */
static bool send_journal(enum pd_log_level level, const char *line, const char *msg)
{
#ifdef PD_HAVE_SYSTEMD
    char fields[3][PD_LOG_FIELD_MAX], message[LINE_MAX_LOG + 160], prio[16], ident[64];
    struct iovec iov[6];
    size_t n = pd_log_journal_fields(msg, fields, 3), k = 0;

    /* libsystemd drops the line without a word when the socket is missing. */
    if (access(JOURNAL_SOCKET, F_OK))
        return false;
    snprintf(message, sizeof(message), "MESSAGE=%s", line);
    snprintf(prio, sizeof(prio), "PRIORITY=%d", syslog_prio[level]);
    snprintf(ident, sizeof(ident), "SYSLOG_IDENTIFIER=%s", program_invocation_short_name);
    iov[k++] = (struct iovec){message, strlen(message)};
    iov[k++] = (struct iovec){prio, strlen(prio)};
    iov[k++] = (struct iovec){ident, strlen(ident)};
    for (size_t i = 0; i < n; i++)
        iov[k++] = (struct iovec){fields[i], strlen(fields[i])};
    return sd_journal_sendv(iov, (int)k) == 0;
#else
    (void)level, (void)line, (void)msg;
    return false;
#endif
}

/* ---- writing ------------------------------------------------------------------------- */

/* Writes one line for MSG (already formatted key=value text). Called with the lock held. */
static void emit(enum pd_log_level level, const char *msg)
{
    char line[LINE_MAX_LOG + 128], time[96];
    struct out o = {line, 0, sizeof(line)};
    bool journal = getenv("JOURNAL_STREAM") != NULL, native;
    FILE *f = output ? output : stderr;

    line[0] = '\0';
    /* Sent natively, the priority is a field of its own; through the stream, a prefix. */
    native = journal && !output && stderr_is_journal();
    if (journal && !native) {
        char prio[8];
        snprintf(prio, sizeof(prio), "<%d>", syslog_prio[level]);
        puts_(&o, prio);
    } else if (!journal) {
        pd_clock_iso(clk()->wall_ms(clk()->arg), time, sizeof(time));
    }
    if (format == PD_LOG_JSON) {
        render_json(&o, journal ? NULL : time, level, msg);
    } else {
        if (!journal) {
            puts_(&o, time);
            puts_(&o, " ");
        }
        puts_(&o, "level=");
        puts_(&o, level_names[level]);
        puts_(&o, " ");
        /* Values are quoted by the callers (pd_log_quote); whatever came unquoted, such as a
         * server's words in a client note, still never reaches a terminal or the journal as
         * control characters or a line of its own. */
        char safe[LINE_MAX_LOG];
        puts_(&o, pd_log_escape(msg, safe, sizeof(safe)));
    }
    if (native && send_journal(level, line, msg))
        return;
    if (native) /* through the stream after all, with the prefix it then needs */
        fprintf(f, "<%d>", syslog_prio[level]);
    fprintf(f, "%s\n", line);
    fflush(f);
}

static uint64_t repeat_key(const char *msg)
{
    uint64_t h = 1469598103934665603ULL;
    bool digits = false;
    for (const char *p = msg; *p; p++) {
        if (isdigit((unsigned char)*p)) {
            if (digits)
                continue;
            digits = true;
            h = (h ^ '#') * 1099511628211ULL;
            continue;
        }
        digits = false;
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    }
    return h ? h : 1;
}

/* The summary of a slot's suppressed copies; the slot is then free. Lock held. */
static void emit_summary(struct repeat *r, uint64_t now)
{
    char msg[LINE_MAX_LOG], q[1100];

    if (r->count) {
        int n = snprintf(msg, sizeof(msg), "event=repeated times=%llu seconds=%llu last=%s",
                         (unsigned long long)r->count,
                         (unsigned long long)((now - r->first_ms) / 1000),
                         pd_log_quote(r->last, q, sizeof(q)));
        if (n > 0)
            emit(r->level, msg);
    }
    memset(r, 0, sizeof(*r));
}

/* True when MSG is a copy to count rather than write. Lock held. */
static bool suppressed(enum pd_log_level level, const char *msg)
{
    uint64_t now = clk()->mono_ms(clk()->arg), key = repeat_key(msg);
    struct repeat *slot = NULL, *free_slot = NULL, *oldest = NULL;

    for (size_t i = 0; i < REPEAT_SLOTS; i++) {
        struct repeat *r = &repeats[i];
        if (r->key == key) {
            slot = r;
            break;
        }
        if (!r->key) {
            if (!free_slot)
                free_slot = r;
        } else if (!oldest || r->first_ms < oldest->first_ms) {
            oldest = r;
        }
    }
    if (slot && now - slot->first_ms < repeat_ms) {
        slot->count++;
        size_t n = strnlen(msg, sizeof(slot->last) - 1);
        memcpy(slot->last, msg, n);
        slot->last[n] = '\0';
        return true;
    }
    if (!slot)
        slot = free_slot ? free_slot : oldest;
    emit_summary(slot, now);
    slot->key = key;
    slot->first_ms = now;
    slot->level = level;
    return false;
}

bool pd_log_enabled(enum pd_log_level level)
{
    pthread_mutex_lock(&lock);
    bool on = level >= min_level;
    pthread_mutex_unlock(&lock);
    return on;
}

void pd_log(enum pd_log_level level, const char *fmt, ...)
{
    char msg[LINE_MAX_LOG];
    va_list ap;

    bool every = ((unsigned)level & PD_LOG_EVERY) != 0;
    level = (enum pd_log_level)((unsigned)level & ~(unsigned)PD_LOG_EVERY);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&lock);
    if (level >= min_level &&
        !(level >= PD_LOG_WARN && repeat_ms && !every && suppressed(level, msg)))
        emit(level, msg);
    pthread_mutex_unlock(&lock);
}

void pd_log_flush_repeats(int all)
{
    pthread_mutex_lock(&lock);
    uint64_t now = clk()->mono_ms(clk()->arg);
    for (size_t i = 0; i < REPEAT_SLOTS; i++)
        if (repeats[i].key && (all || now - repeats[i].first_ms >= repeat_ms))
            emit_summary(&repeats[i], now);
    pthread_mutex_unlock(&lock);
}

/*
 * The one escaper behind pd_log_quote() and pd_log_escape(): VALUE into BUF (LEN > 1), never
 * cutting a character or an escape, always terminated; returns the length written. A newline
 * becomes \n, any other byte shown_len() refuses \xNN. QUOTE: also escape '"' and '\' (inside
 * a quoted log value, which the JSON renderer reads back).
 */
static size_t escape_into(const char *value, char *buf, size_t len, bool quote)
{
    const unsigned char *u = (const unsigned char *)value;
    size_t o = 0, n = strlen(value);

    for (size_t i = 0; i < n;) {
        size_t l = shown_len(u + i, n - i);
        bool special = quote && (u[i] == '"' || u[i] == '\\');
        char e[8];
        size_t elen;

        if (l && !special) {
            if (o + l >= len)
                break;
            memcpy(buf + o, u + i, l);
            o += l;
            i += l;
            continue;
        }
        if (special || u[i] == '\n') {
            e[0] = '\\';
            e[1] = u[i] == '\n' ? 'n' : (char)u[i];
            elen = 2;
        } else {
            elen = (size_t)snprintf(e, sizeof(e), "\\x%02x", u[i]);
        }
        if (o + elen >= len)
            break;
        memcpy(buf + o, e, elen);
        o += elen;
        i++;
    }
    buf[o] = '\0';
    return o;
}

const char *pd_log_quote(const char *value, char *buf, size_t len)
{
    const unsigned char *u = (const unsigned char *)value;
    size_t n = strlen(value);
    bool plain = n > 0;

    for (size_t i = 0, l; i < n && plain; i += l) {
        l = shown_len(u + i, n - i);
        if (!l || u[i] == ' ' || u[i] == '"' || u[i] == '\\' || u[i] == '=')
            plain = false;
    }
    /* A name such as "2024" or "true" stays a string in JSON lines. */
    if (plain && json_literal(value, n))
        plain = false;
    if (plain) {
        if (len)
            escape_into(value, buf, len, false);
        return buf;
    }
    if (len < 3) {
        if (len)
            buf[0] = '\0';
        return buf;
    }
    /* The closing quote always fits: the value is cut to leave room for it. */
    size_t o = 1 + escape_into(value, buf + 1, len - 2, true);
    buf[0] = '"';
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

const char *pd_log_escape(const char *value, char *buf, size_t len)
{
    if (len)
        escape_into(value ? value : "", buf, len, false);
    return buf;
}
