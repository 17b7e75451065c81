/*
 * Where the config's lines come from: the config file and the files its `include = PATTERN`
 * lines name, read in turn as one stream for inih, each line counted as a position that maps
 * back to its file and line for messages; and ${VAR} / ${VAR:-default} in values.
 *
 * An include line goes before the first [section] of a file (inside [watch:NAME], `include`
 * is the watch's name filter). A pattern with a wildcard may match nothing; a plain name must
 * exist. A file that includes itself, directly or not, is refused: that is a loop.
 */
#include "config_internal.h"
#include "pd_error.h"

#include <ctype.h>
#include <errno.h>
#include <glob.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Nested includes deeper than this are surely a mistake. */
#define MAX_INCLUDE_DEPTH 8

const char *cfg_pos_file(const struct parser *p, int pos)
{
    if (pos <= 0 || (size_t)pos > p->npos)
        return p->file;
    return p->srcs[p->pos[pos - 1].src];
}

int cfg_pos_line(const struct parser *p, int pos)
{
    if (pos <= 0 || (size_t)pos > p->npos)
        return pos;
    return p->pos[pos - 1].line;
}

const char *cfg_where(const struct parser *p, int pos, char *buf, size_t len)
{
    if (pos > 0 && (size_t)pos <= p->npos && p->pos[pos - 1].src != 0)
        snprintf(buf, len, "%s line %d", cfg_pos_file(p, pos), cfg_pos_line(p, pos));
    else
        snprintf(buf, len, "line %d", pos);
    return buf;
}

/* Remembers PATH as a file read, for messages: its index. */
static int add_src(struct parser *p, const char *path)
{
    char **grown = realloc(p->srcs, (p->nsrcs + 1) * sizeof(*grown));

    if (!grown)
        goto oom;
    p->srcs = grown;
    if (!(grown[p->nsrcs] = strdup(path)))
        goto oom;
    return (int)p->nsrcs++;
oom:
    p->oom = true;
    return -1;
}

int cfg_push_file(struct parser *p, const char *path, int from, FILE *fp)
{
    struct frame *grown = realloc(p->stack, (p->depth + 1) * sizeof(*grown));

    if (!grown)
        goto oom;
    p->stack = grown;
    memset(&grown[p->depth], 0, sizeof(*grown));
    if (!(grown[p->depth].path = strdup(path)))
        goto oom;
    grown[p->depth].from = from;
    p->depth++;
    if (fp) {
        if ((grown[p->depth - 1].src = add_src(p, path)) < 0)
            return PD_ENOMEM;
        grown[p->depth - 1].fp = fp;
    }
    return 0;
oom:
    p->oom = true;
    return PD_ENOMEM;
}

static void pop_file(struct parser *p)
{
    struct frame *f = &p->stack[--p->depth];
    if (f->fp)
        fclose(f->fp);
    free(f->path);
}

void cfg_close_files(struct parser *p)
{
    while (p->depth)
        pop_file(p);
    free(p->stack);
    p->stack = NULL;
    for (size_t i = 0; i < p->nsrcs; i++)
        free(p->srcs[i]);
    free(p->srcs);
    free(p->pos);
}

/* How many files being read include F, the top of the stack: they are the frames below it
 * that are open. Whether F is one of them: a loop. */
static bool opened_within(struct parser *p, const struct stat *st, size_t *nesting)
{
    *nesting = 0;
    for (size_t i = 0; i + 1 < p->depth; i++) {
        struct stat o;
        if (!p->stack[i].fp)
            continue;
        ++*nesting;
        if (!fstat(fileno(p->stack[i].fp), &o) && o.st_dev == st->st_dev &&
            o.st_ino == st->st_ino)
            return true;
    }
    return false;
}

/* Opens the file on top of the stack; on failure says why at its include line and drops it. */
static bool open_top(struct parser *p)
{
    struct frame *f = &p->stack[p->depth - 1];
    struct stat st;
    size_t nesting;

    f->fp = fopen(f->path, "re");
    if (!f->fp) {
        cfg_add_error(p, f->from, "include: cannot open %s: %s", f->path, strerror(errno));
        return false;
    }
    if (fstat(fileno(f->fp), &st) || !S_ISREG(st.st_mode)) {
        cfg_add_error(p, f->from, "include: %s is not a regular file", f->path);
        return false;
    }
    if (opened_within(p, &st, &nesting)) {
        cfg_add_error(p, f->from, "include: %s is already being read: an include loop; remove "
                      "this line", f->path);
        return false;
    }
    if (nesting >= MAX_INCLUDE_DEPTH) {
        cfg_add_error(p, f->from, "include: %s is nested more than %d files deep", f->path,
                      MAX_INCLUDE_DEPTH);
        return false;
    }
    f->src = add_src(p, f->path);
    return f->src >= 0;
}

/* PATTERN's files, sorted, on the stack so that the first is read first. */
static void include(struct parser *p, const char *pattern, const char *dir)
{
    char *full = NULL;
    glob_t g;
    int rc;

    if (!*pattern) {
        cfg_add_error(p, p->lineno, "include needs a file or a pattern, like "
                      "/etc/patchdrop/conf.d/*.conf");
        return;
    }
    if (pattern[0] != '/' && asprintf(&full, "%s/%s", dir, pattern) < 0) {
        p->oom = true;
        return;
    }
    if (!strpbrk(pattern, "*?[")) {
        /* Named without a wildcard: it must be there (open_top says so when it is not). */
        cfg_push_file(p, full ? full : pattern, p->lineno, NULL);
        free(full);
        return;
    }
    rc = glob(full ? full : pattern, GLOB_ERR, NULL, &g);
    if (rc == 0)
        for (size_t i = g.gl_pathc; i-- > 0;)
            cfg_push_file(p, g.gl_pathv[i], p->lineno, NULL);
    else if (rc != GLOB_NOMATCH)
        cfg_add_error(p, p->lineno, "include: cannot list %s: %s", full ? full : pattern,
                      rc == GLOB_NOSPACE ? "out of memory" : "a folder cannot be read");
    if (rc != GLOB_NOMATCH)
        globfree(&g);
    free(full);
}

/* The folder of the file at position POS's file, for its relative include patterns. */
static char *folder_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : strdup(".");
}

/* "include = X" (blanks around '=' allowed): X in *REST. */
static bool is_include(char *line, char **rest)
{
    if (strncmp(line, "include", 7))
        return false;
    line += 7;
    while (*line == ' ' || *line == '\t')
        line++;
    if (*line != '=')
        return false;
    line++;
    while (*line == ' ' || *line == '\t')
        line++;
    *rest = line;
    return true;
}

/* A `key = value` line (not a comment, header or blank): its key in BUF. */
static bool key_of(const char *line, char *buf, size_t len)
{
    size_t n = strcspn(line, "=:");

    if (!line[n] || !*line || *line == ';' || *line == '#' || *line == '[')
        return false;
    while (n && isspace((unsigned char)line[n - 1]))
        n--;
    snprintf(buf, len, "%.*s", (int)n, line);
    return true;
}

/* An include line, or a key line outside any section of its file: dealt with here, blanked. */
static void own_lines(struct parser *p, struct frame *f, char *line)
{
    char *rest, *pattern = NULL, *dir, key[LINE_MAX_INI];

    if (line[0] == '[') {
        f->in_section = true;
        return;
    }
    if (is_include(line, &rest)) {
        if (f->in_section && p->in_watch)
            return; /* the watch's name filter */
        if (f->in_section) {
            cfg_add_error(p, p->lineno, "include = goes before the file's first [section]; move "
                          "it to the top");
        } else {
            size_t n = strlen(rest);
            while (n && isspace((unsigned char)rest[n - 1]))
                rest[--n] = '\0';
            dir = folder_of(f->path);
            if (!dir || cfg_expand(p, rest, p->lineno, &pattern, NULL) == PD_ENOMEM)
                p->oom = true;
            else if (pattern)
                include(p, pattern, dir);
            cfg_free_value(pattern);
            free(dir);
        }
        line[0] = '\0';
    } else if (!f->in_section && key_of(line, key, sizeof(key))) {
        cfg_add_error(p, p->lineno,
                      "'%s' is outside any section; put it under [patchworks], [state] or "
                      "[watch:NAME]",
                      key);
        line[0] = '\0';
    }
}

static bool note_pos(struct parser *p, int src, int line)
{
    struct pos *grown = realloc(p->pos, (p->npos + 1) * sizeof(*grown));
    if (!grown) {
        p->oom = true;
        return false;
    }
    p->pos = grown;
    grown[p->npos].src = src;
    grown[p->npos].line = line;
    p->npos++;
    p->lineno = (int)p->npos;
    return true;
}

/* One line of the top file into BUF; *TOO_LONG when it did not fit. False at its end. */
static bool get_line(FILE *fp, char *buf, size_t cap, bool *too_long)
{
    int c;
    size_t n = 0;
    bool leading = true, any = false;

    *too_long = false;
    while ((c = fgetc(fp)) != EOF) {
        any = true;
        if (c == '\n')
            break;
        if (leading && (c == ' ' || c == '\t'))
            continue;
        leading = false;
        if (n + 2 < cap)
            buf[n++] = (char)c;
        else
            *too_long = true;
    }
    if (n && buf[n - 1] == '\r')
        n--;
    buf[n] = '\0';
    return any;
}

char *cfg_read_line(struct parser *p, char *buf, size_t cap)
{
    bool too_long;

    while (p->depth) {
        struct frame *f = &p->stack[p->depth - 1];

        if (!f->fp && !open_top(p)) {
            pop_file(p);
            continue;
        }
        if (!get_line(f->fp, buf, cap, &too_long)) {
            pop_file(p);
            continue;
        }
        if (!note_pos(p, f->src, ++f->line))
            return NULL;
        /* A UTF-8 byte order mark at the start of an included file (inih skips the first). */
        if (f->line == 1 && f->src && !strncmp(buf, "\xEF\xBB\xBF", 3))
            memmove(buf, buf + 3, strlen(buf + 3) + 1);
        if (too_long) {
            cfg_add_error(p, p->lineno,
                          "line is longer than %d characters; shorten it (a long secret can go "
                          "in password_file or api_key_file)",
                          LINE_MAX_INI - 2);
            buf[0] = '\0'; /* skip it */
        }
        own_lines(p, f, buf);
        return buf;
    }
    return NULL;
}

void cfg_free_value(char *value)
{
    if (value) {
        explicit_bzero(value, strlen(value)); /* it may be a secret */
        free(value);
    }
}

/* Appends "${NAME}" to the list of names in *VARS. */
static int add_var(char **vars, const char *name, size_t n)
{
    char *more;
    if (!vars)
        return 0;
    if (asprintf(&more, "%s%s${%.*s}", *vars ? *vars : "", *vars ? ", " : "", (int)n, name) < 0)
        return PD_ENOMEM;
    free(*vars);
    *vars = more;
    return 0;
}

/*
 * The reference at S, just past "${": its value written to OUT, its name to VARS; *END past its
 * '}'. Says what is wrong (never a value: it may be a secret).
 */
static int expand_one(struct parser *p, const char *s, int pos, FILE *out, char **vars,
                      const char **end)
{
    size_t n = 0;
    const char *def = NULL, *close, *val;
    char name[LINE_MAX_INI];

    while (isalnum((unsigned char)s[n]) || s[n] == '_')
        n++;
    close = strchr(s + n, '}');
    if (!n || isdigit((unsigned char)s[0]) || !close ||
        (s[n] != '}' && strncmp(s + n, ":-", 2))) {
        cfg_add_error(p, pos, "${ must be followed by a variable name and }, as in ${NAME} or "
                      "${NAME:-default}; write $${ for a literal ${");
        return PD_ECONFIG;
    }
    if (s[n] == ':')
        def = s + n + 2;
    snprintf(name, sizeof(name), "%.*s", (int)n, s);
    val = getenv(name);
    if (!val && !def && p->secret_key) {
        /* A literal secret may hold "${...}": its words are not shown. */
        cfg_add_error(p, pos, "%s names a variable that is not set in patchdrop's environment "
                      "(not shown: it could be part of the secret); set it (for the service: "
                      "Environment= or EnvironmentFile= in a drop-in of the unit), or write $${ "
                      "for a literal ${", p->secret_key);
        return PD_ECONFIG;
    }
    if (!val && !def) {
        cfg_add_error(p, pos, "${%s} is not set in patchdrop's environment; set it (for the "
                      "service: Environment= or EnvironmentFile= in a drop-in of the unit) or "
                      "give a default, as in ${%s:-value}", name, name);
        return PD_ECONFIG;
    }
    if (def && (!val || !*val)) /* as the shell: unset or empty */
        fwrite(def, 1, (size_t)(close - def), out);
    else
        fputs(val, out);
    *end = close + 1;
    return add_var(vars, s, n);
}

int cfg_expand(struct parser *p, const char *value, int pos, char **out, char **vars)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    int rc = 0;

    *out = NULL;
    if (vars)
        *vars = NULL;
    if (!mem)
        return PD_ENOMEM;
    for (const char *s = value; *s && !rc;) {
        if (!strncmp(s, "$${", 3)) {
            fputc('$', mem); /* $${ is a literal ${ */
            s += 2;
        } else if (!strncmp(s, "${", 2)) {
            rc = expand_one(p, s + 2, pos, mem, vars, &s);
        } else {
            fputc(*s++, mem);
        }
    }
    if (fclose(mem) && !rc)
        rc = PD_ENOMEM;
    if (rc) {
        cfg_free_value(buf);
        if (vars) {
            free(*vars);
            *vars = NULL;
        }
        return rc;
    }
    *out = buf;
    return 0;
}
