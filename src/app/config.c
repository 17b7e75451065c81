/*
 * The configuration file: one table of keys drives parsing, defaults, validation and printing.
 *
 * The file is INI, read with inih through our own line reader so that we know the line number
 * of every key (the packaged inih does not report it), catch lines longer than inih's buffer,
 * and strip leading blanks (inih would otherwise glue an indented line to the previous value).
 * Every problem is collected, not just the first, as "FILE:LINE: what is wrong and what is
 * expected", so one run of `patchdrop check-config` shows them all.
 *
 * This file reads the file and owns the result; the other config*.c files hold the key table
 * (config_keys.c), the value syntaxes (config_parse.c), the checks across keys
 * (config_check.c) and the printing (config_print.c), sharing config_internal.h.
 */
#include "config_internal.h"
#include "pd_error.h"

#include <ini.h>

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void cfg_add_error(struct parser *p, int line, const char *fmt, ...)
{
    struct problem *grown;
    va_list ap;

    p->nerrors++;
    if (p->nproblems >= MAX_PROBLEMS)
        return;
    grown = realloc(p->problems, (p->nproblems + 1) * sizeof(*grown));
    if (!grown) {
        p->oom = true;
        return;
    }
    p->problems = grown;
    grown[p->nproblems].line = line;
    grown[p->nproblems].seq = p->nproblems;
    va_start(ap, fmt);
    vsnprintf(grown[p->nproblems].msg, sizeof(grown[p->nproblems].msg), fmt, ap);
    va_end(ap);
    p->nproblems++;
}

static int problem_cmp(const void *a, const void *b)
{
    const struct problem *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    return x->seq < y->seq ? -1 : (x->seq > y->seq);
}

/* All problems, in the order they were read, one "FILE:LINE: message" per line. */
static char *format_problems(struct parser *p)
{
    char *out = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&out, &len);

    if (!mem)
        return NULL;
    qsort(p->problems, p->nproblems, sizeof(*p->problems), problem_cmp);
    for (size_t i = 0; i < p->nproblems; i++) {
        int pos = p->problems[i].line;
        if (pos > 0)
            fprintf(mem, "%s:%d: %s\n", cfg_pos_file(p, pos), cfg_pos_line(p, pos),
                    p->problems[i].msg);
        else
            fprintf(mem, "%s: %s\n", p->file, p->problems[i].msg);
    }
    if (p->nerrors > (int)p->nproblems)
        fprintf(mem, "%s: ... and %d more problems\n", p->file, p->nerrors - (int)p->nproblems);
    fclose(mem);
    return out;
}

/* Says what is wrong with NAME, a key SEC does not have, and what was probably meant. */
static void unknown_key(struct parser *p, enum section sec, const char *section, const char *name)
{
    const struct key *k;
    char known[256];
    size_t used = 0, count = 0;

    for (size_t i = 0; i < cfg_nkeys; i++) {
        if (cfg_keys[i].section != sec && !strcmp(cfg_keys[i].name, name)) {
            cfg_add_error(p, p->lineno, "unknown key '%s' in [%s]; %s belongs in [%s%s]", name,
                          section, name, cfg_section_names[cfg_keys[i].section],
                          cfg_keys[i].section == SEC_WATCH ? ":NAME" : "");
            return;
        }
    }
    if ((k = cfg_closest_key(sec, name))) {
        cfg_add_error(p, p->lineno, "unknown key '%s' in [%s]; did you mean `%s`?", name, section,
                      k->name);
        return;
    }
    known[0] = '\0';
    for (size_t i = 0; i < cfg_nkeys; i++) {
        if (cfg_keys[i].section != sec)
            continue;
        if (++count <= 3 && used < sizeof(known))
            used += (size_t)snprintf(known + used, sizeof(known) - used, "%s%s", used ? ", " : "",
                                     cfg_keys[i].name);
    }
    if (count <= 3)
        cfg_add_error(p, p->lineno, "unknown key '%s' in [%s]; the keys there are %s", name,
                      section, known);
    else
        cfg_add_error(p, p->lineno,
                      "unknown key '%s' in [%s]; patchdrop.conf(5) and the sample patchdrop.conf "
                      "list the keys there",
                      name, section);
}

static int section_of(const char *name, const char **watch_name)
{
    if (!strcmp(name, "patchworks"))
        return SEC_PATCHWORKS;
    if (!strcmp(name, "state"))
        return SEC_STATE;
    if (!strcmp(name, "daemon"))
        return SEC_DAEMON;
    if (!strcmp(name, "metrics"))
        return SEC_METRICS;
    if (!strcmp(name, "cluster"))
        return SEC_CLUSTER;
    if (!strncmp(name, "watch:", 6)) {
        *watch_name = name + 6;
        return SEC_WATCH;
    }
    return -1;
}

static struct pd_watch *add_watch(struct parser *p, const char *name, int line)
{
    struct pd_config *cfg = p->cfg;
    struct pd_watch *w = realloc(cfg->watches, (cfg->nwatches + 1) * sizeof(*w));
    struct seen *s;

    if (!w)
        goto oom;
    cfg->watches = w;
    s = realloc(p->watch_seen, (cfg->nwatches + 1) * sizeof(*s));
    if (!s)
        goto oom;
    p->watch_seen = s;
    w = &cfg->watches[cfg->nwatches];
    memset(w, 0, sizeof(*w));
    memset(&s[cfg->nwatches], 0, sizeof(*s));
    w->line = line;
    w->name = strdup(name);
    if (!w->name)
        goto oom;
    cfg->nwatches++;
    return w;
oom:
    p->oom = true;
    return NULL;
}

/*
 * Our line reader for inih: counts lines, refuses lines longer than inih's buffer, strips
 * leading blanks, reads included files in turn (config_source.c), and records every section
 * header (inih reports only sections with keys).
 */
static char *read_line(char *buf, int size, void *stream)
{
    struct parser *p = stream;
    size_t cap = (size_t)size;
    char where[LINE_MAX_INI + 32];

    if (cap > LINE_MAX_INI)
        cap = LINE_MAX_INI;
    if (!cfg_read_line(p, buf, cap))
        return NULL;
    if (buf[0] == '[') {
        char *end = strchr(buf, ']');
        char name[LINE_MAX_INI];
        const char *wname = NULL;
        int sec;

        if (end) {
            size_t len = (size_t)(end - buf - 1);
            memcpy(name, buf + 1, len);
            name[len] = '\0';
            sec = section_of(name, &wname);
            p->in_watch = sec == SEC_WATCH;
            if (sec < 0) {
                cfg_add_error(p, p->lineno,
                              "unknown section [%s]; expected [patchworks], [state], [daemon], "
                              "[metrics], [cluster] or [watch:NAME]",
                              name);
            } else if (sec != SEC_WATCH) {
                int *first = sec == SEC_PATCHWORKS ? &p->pw_line
                             : sec == SEC_STATE    ? &p->state_line
                             : sec == SEC_METRICS  ? &p->metrics_line
                             : sec == SEC_CLUSTER  ? &p->cluster_line
                                                   : &p->daemon_line;
                if (*first)
                    cfg_add_error(p, p->lineno, "section [%s] appears again (first at %s); keep one",
                                  name, cfg_where(p, *first, where, sizeof(where)));
                else
                    *first = p->lineno;
            } else if (!*wname) {
                cfg_add_error(p, p->lineno, "[watch:] needs a name, like [watch:orders]");
            } else {
                const struct pd_watch *old = pd_config_watch(p->cfg, wname);
                if (old)
                    cfg_add_error(p, p->lineno,
                                  "section [watch:%s] appears again (first at %s); give each "
                                  "drop folder its own name",
                                  wname, cfg_where(p, old->line, where, sizeof(where)));
                else
                    add_watch(p, wname, p->lineno);
            }
        }
    }
    return buf;
}

/* Where the keys of SECTION are stored and which of them were set; NULL: reported already. */
static void *section_slot(struct parser *p, const char *section, int *secp, struct seen **seen)
{
    const char *wname = NULL;
    int sec = section_of(section, &wname);
    struct pd_watch *w;

    *secp = sec;
    switch (sec) {
    case SEC_PATCHWORKS:
        *seen = &p->pw_seen;
        return &p->cfg->pw;
    case SEC_STATE:
        *seen = &p->state_seen;
        return &p->cfg->state;
    case SEC_DAEMON:
        *seen = &p->daemon_seen;
        return &p->cfg->daemon;
    case SEC_METRICS:
        *seen = &p->metrics_seen;
        return &p->cfg->metrics;
    case SEC_CLUSTER:
        *seen = &p->cluster_seen;
        return &p->cfg->cluster;
    case SEC_WATCH:
        w = (struct pd_watch *)pd_config_watch(p->cfg, wname);
        if (!w)
            return NULL; /* a nameless or repeated section */
        *seen = &p->watch_seen[w - p->cfg->watches];
        return w;
    }
    return NULL; /* unknown sections were reported once, at their header */
}

/* Notes where key K of the section at BASE was set, and through which variables. */
static void add_origin(struct parser *p, int sec, const void *base, const struct key *k,
                       char *vars)
{
    struct pd_config *cfg = p->cfg;
    struct cfg_origin *grown = realloc(cfg->origins, (cfg->norigins + 1) * sizeof(*grown));
    struct cfg_origin *o;

    if (!grown) {
        free(vars);
        p->oom = true;
        return;
    }
    cfg->origins = grown;
    o = &grown[cfg->norigins++];
    o->sec = sec;
    o->watch = sec == SEC_WATCH ? (size_t)((const struct pd_watch *)base - cfg->watches) : 0;
    o->key = (size_t)(k - cfg_keys);
    o->vars = vars;
    if (asprintf(&o->where, "%s:%d", cfg_pos_file(p, p->lineno), cfg_pos_line(p, p->lineno)) < 0) {
        o->where = NULL;
        p->oom = true;
    }
}

static int on_ini_value(void *user, const char *section, const char *name, const char *value)
{
    struct parser *p = user;
    const struct key *k;
    struct seen *seen;
    char *expanded, *vars, where[LINE_MAX_INI + 32];
    int sec, rc;
    void *base = section_slot(p, section, &sec, &seen);

    if (!base)
        return 1;
    k = cfg_find_key((enum section)sec, name);
    if (!k) {
        unknown_key(p, (enum section)sec, section, name);
        return 1;
    }
    if (seen->line[k - cfg_keys]) {
        cfg_add_error(p, p->lineno, "%s is set again (first at %s); keep one", name,
                      cfg_where(p, seen->line[k - cfg_keys], where, sizeof(where)));
        return 1;
    }
    seen->line[k - cfg_keys] = p->lineno;
    p->secret_key = k->type == T_SECRET ? k->name : NULL;
    rc = cfg_expand(p, value, p->lineno, &expanded, &vars);
    p->secret_key = NULL;
    if (rc == PD_ENOMEM)
        p->oom = true;
    if (rc || cfg_set_value(p, k, base, expanded, p->lineno))
        seen->bad[k - cfg_keys] = true;
    cfg_free_value(expanded);
    if (!rc)
        add_origin(p, sec, base, k, vars);
    return 1;
}

/* Applies the table's defaults to every key of SEC that was not set. */
static void apply_defaults(struct parser *p, enum section sec, void *base, struct seen *seen)
{
    for (size_t i = 0; i < cfg_nkeys; i++) {
        if (cfg_keys[i].section != sec || seen->line[i] || !cfg_keys[i].def)
            continue;
        /* Defaults are absolute or plain values, so no relative-path resolution applies. */
        if (cfg_set_value(p, &cfg_keys[i], base, cfg_keys[i].def, 0))
            abort(); /* a default that does not parse is a bug in the table */
    }
}

/*
 * Opens FILE into P and gives P an empty config. Relative paths in the file are resolved
 * against its folder, made absolute so that they keep their meaning whatever the daemon's
 * working directory.
 */
static int open_file(struct parser *p, const char *file, struct stat *st)
{
    const char *slash = strrchr(file, '/');
    char *folder;
    FILE *fp;
    int rc;

    p->file = file;
    fp = fopen(file, "re");
    if (!fp) {
        rc = -errno;
        cfg_add_error(p, 0, "cannot open: %s", strerror(errno));
        return rc;
    }
    if (cfg_push_file(p, file, 0, fp)) {
        fclose(fp);
        return PD_ENOMEM;
    }
    if (fstat(fileno(fp), st) || !S_ISREG(st->st_mode)) {
        cfg_add_error(p, 0, "is not a regular file");
        return PD_ECONFIG;
    }
    p->cfg = calloc(1, sizeof(*p->cfg));
    if (!p->cfg || !(p->cfg->file = strdup(file)))
        return PD_ENOMEM;
    folder = slash ? strndup(file, (size_t)(slash - file) + (slash == file)) : strdup(".");
    p->dir = folder ? realpath(folder, NULL) : NULL;
    free(folder);
    if (!p->dir) {
        rc = -errno;
        cfg_add_error(p, 0, "cannot resolve the folder of the file: %s", strerror(errno));
        return rc;
    }
    return 0;
}

/* Once every line is read: the defaults of the keys not set, then the checks across keys. */
static void complete(struct parser *p, bool config_readable)
{
    struct pd_config *cfg = p->cfg;

    apply_defaults(p, SEC_PATCHWORKS, &cfg->pw, &p->pw_seen);
    apply_defaults(p, SEC_STATE, &cfg->state, &p->state_seen);
    apply_defaults(p, SEC_DAEMON, &cfg->daemon, &p->daemon_seen);
    apply_defaults(p, SEC_METRICS, &cfg->metrics, &p->metrics_seen);
    apply_defaults(p, SEC_CLUSTER, &cfg->cluster, &p->cluster_seen);
    for (size_t i = 0; i < cfg->nwatches; i++)
        apply_defaults(p, SEC_WATCH, &cfg->watches[i], &p->watch_seen[i]);
    cfg_check(p, config_readable);
}

int pd_config_load(const char *file, struct pd_config **out, char **errors)
{
    struct parser p;
    struct stat st;
    int rc;

    *out = NULL;
    *errors = NULL;
    memset(&p, 0, sizeof(p));
    rc = open_file(&p, file, &st);
    if (rc)
        goto fail;
    rc = ini_parse_stream(read_line, &p, on_ini_value, &p);
    if (rc > 0)
        cfg_add_error(&p, rc,
                      "cannot read this line; expected `key = value`, `[section]` or a comment "
                      "starting with ; or #");
    else if (rc < 0) {
        rc = PD_ENOMEM;
        goto fail;
    }
    complete(&p, (st.st_mode & S_IROTH) != 0);
    if (p.oom) {
        rc = PD_ENOMEM;
        goto fail;
    }
    if (p.nerrors) {
        rc = PD_ECONFIG;
        goto fail;
    }
    *out = p.cfg;
    p.cfg = NULL;
    rc = 0;
fail:
    if (rc) {
        *errors = p.oom ? strdup("out of memory while reading the config\n") : format_problems(&p);
    }
    free(p.problems);
    pd_config_destroy(&p.cfg);
    cfg_close_files(&p);
    free(p.watch_seen);
    free(p.dir);
    return rc;
}

static void free_fields(enum section sec, void *base)
{
    for (size_t i = 0; i < cfg_nkeys; i++) {
        if (cfg_keys[i].section != sec)
            continue;
        switch (cfg_keys[i].type) {
        case T_STRING:
        case T_SECRET:
        case T_PATH:
        case T_URL:
        case T_LISTEN:
        case T_ID: {
            char **slot = (char **)(void *)((char *)base + cfg_keys[i].offset);
            if (*slot && cfg_keys[i].type == T_SECRET)
                explicit_bzero(*slot, strlen(*slot));
            free(*slot);
            *slot = NULL;
            break;
        }
        default:
            break;
        }
    }
}

void pd_config_destroy(struct pd_config **cfgp)
{
    struct pd_config *cfg = cfgp ? *cfgp : NULL;

    if (!cfg)
        return;
    free_fields(SEC_PATCHWORKS, &cfg->pw);
    free(cfg->pw.secret_source);
    free_fields(SEC_STATE, &cfg->state);
    free_fields(SEC_DAEMON, &cfg->daemon);
    free_fields(SEC_METRICS, &cfg->metrics);
    free_fields(SEC_CLUSTER, &cfg->cluster);
    pd_cluster_cfg_wipe(&cfg->cluster);
    for (size_t i = 0; i < cfg->nwatches; i++) {
        free_fields(SEC_WATCH, &cfg->watches[i]);
        free(cfg->watches[i].name);
    }
    free(cfg->watches);
    for (size_t i = 0; i < cfg->norigins; i++) {
        free(cfg->origins[i].where);
        free(cfg->origins[i].vars);
    }
    free(cfg->origins);
    free(cfg->file);
    free(cfg);
    *cfgp = NULL;
}

const struct pd_watch *pd_config_watch(const struct pd_config *cfg, const char *name)
{
    for (size_t i = 0; cfg && i < cfg->nwatches; i++)
        if (!strcmp(cfg->watches[i].name, name))
            return &cfg->watches[i];
    return NULL;
}

const struct cfg_origin *cfg_origin_of(const struct pd_config *cfg, int sec, size_t watch,
                                       size_t key)
{
    for (size_t i = 0; i < cfg->norigins; i++) {
        const struct cfg_origin *o = &cfg->origins[i];
        if (o->sec == sec && o->watch == watch && o->key == key)
            return o;
    }
    return NULL;
}

const char *cfg_origin_vars(const struct pd_config *cfg, int sec, size_t watch, const char *name)
{
    const struct key *k = cfg_find_key((enum section)sec, name);
    const struct cfg_origin *o = k ? cfg_origin_of(cfg, sec, watch, (size_t)(k - cfg_keys)) : NULL;
    return o ? o->vars : NULL;
}
