/*
 * The config file's checks across keys, once every key is read and the defaults are in: the
 * credentials and the secret they name, each watch's folders and the trust boundary between
 * patchdrop's folders and the drop folders (docs/architecture.md), retention, the path
 * templates, following flow runs. Every problem is reported, at the line of the key it is about.
 */
#include "config_internal.h"
#include "pd_ready.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

static int key_line(const struct seen *seen, enum section sec, const char *name)
{
    const struct key *k = cfg_find_key(sec, name);
    return k ? seen->line[k - cfg_keys] : 0;
}

/* Whether NAME was set but did not parse: its own message said so, checks across keys skip it. */
static bool key_bad(const struct seen *seen, enum section sec, const char *name)
{
    const struct key *k = cfg_find_key(sec, name);
    return k && seen->bad[k - cfg_keys];
}

bool cfg_secret_private(struct parser *p, int line, const char *key, const char *file,
                        const struct stat *st)
{
    if (!(st->st_mode & S_IROTH))
        return true;
    cfg_add_error(p, line,
                  "%s %s can be read by every user (mode %04o); run chmod o-r %s (its group may "
                  "read it: root:patchdrop mode 640 is the usual way)",
                  key, file, (unsigned)(st->st_mode & 07777), file);
    return false;
}

/*
 * Reads a secret from FILE. The file must not be readable by others; its group may read it (the
 * /etc/ssl/private convention: root:patchdrop 0640 lets root write it and the service read it).
 * Its first line is the secret (a trailing newline is normal and removed).
 */
char *cfg_read_secret_file(struct parser *p, const char *file, const char *key, int line)
{
    char buf[4096];
    struct stat st;
    ssize_t n;
    int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    char *out = NULL;

    if (fd < 0) {
        if (errno == EACCES)
            cfg_add_error(p, line,
                          "%s %s cannot be opened: %s; the user patchdrop runs as must read it: "
                          "give the file that user's group and mode 640 (chgrp GROUP %s; chmod 640 "
                          "%s), or run patchdrop check-config as root to see the exact fix",
                          key, file, strerror(errno), file, file);
        else
            cfg_add_error(p, line, "%s %s cannot be opened: %s", key, file, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        cfg_add_error(p, line, "%s %s is not a regular file", key, file);
        goto done;
    }
    if (!cfg_secret_private(p, line, key, file, &st))
        goto done;
    n = read(fd, buf, sizeof(buf) - 1);
    if (n < 0) {
        cfg_add_error(p, line, "%s %s cannot be read: %s", key, file, strerror(errno));
        goto done;
    }
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    if (!buf[0])
        cfg_add_error(p, line, "%s %s is empty; its first line must hold the secret", key, file);
    else if (!(out = strdup(buf)))
        p->oom = true;
    explicit_bzero(buf, sizeof(buf));
done:
    close(fd);
    return out;
}

/*
 * Resolves one secret (password or API key) from its three possible sources: inline, a file, or
 * the environment. Exactly one may be used; *source says which, in words safe to print.
 */
static void resolve_secret(struct parser *p, char **inline_value, const char *file,
                           const char *name, const char *env, bool config_readable)
{
    struct pd_patchworks *pw = &p->cfg->pw;
    char file_key[64];
    int inline_line = key_line(&p->pw_seen, SEC_PATCHWORKS, name);
    int file_line;
    const char *envval;
    char where[LINE_MAX_INI + 32];

    snprintf(file_key, sizeof(file_key), "%s_file", name);
    file_line = key_line(&p->pw_seen, SEC_PATCHWORKS, file_key);
    if (*inline_value && file) {
        cfg_add_error(p, file_line, "both %s (%s) and %s are set; keep one", name,
                      cfg_where(p, inline_line, where, sizeof(where)), file_key);
        return;
    }
    if (*inline_value) {
        const char *in = cfg_pos_file(p, inline_line);
        const char *vars = cfg_origin_vars(p->cfg, SEC_PATCHWORKS, 0, name);
        struct stat st;
        /* A secret through ${VAR} is not written in the file. */
        if (!vars && (in == p->file ? config_readable : !stat(in, &st) && (st.st_mode & S_IROTH)))
            cfg_add_error(p, inline_line,
                          "%s is written in this file, which every user can read; run chmod o-r %s "
                          "(or move the secret to %s)",
                          name, in, file_key);
        if (asprintf(&pw->secret_source, "%s%s%s in %s line %d", name, vars ? " = " : "",
                     vars ? vars : "", in, cfg_pos_line(p, inline_line)) < 0)
            p->oom = true;
        return;
    }
    if (file) {
        *inline_value = cfg_read_secret_file(p, file, file_key, file_line);
        if (*inline_value && asprintf(&pw->secret_source, "%s %s", file_key, file) < 0)
            p->oom = true;
        return;
    }
    envval = getenv(env);
    if (envval && *envval) {
        if (!(*inline_value = strdup(envval)) ||
            asprintf(&pw->secret_source, "the environment variable %s", env) < 0)
            p->oom = true;
    }
}

static void validate_credentials(struct parser *p, bool config_readable)
{
    static const char *const cred_keys[] = {"email", "password", "password_file", "api_key",
                                            "api_key_file"};
    struct pd_patchworks *pw = &p->cfg->pw;
    const char *api_env = getenv("PATCHDROP_API_KEY");
    bool want_key = pw->api_key || pw->api_key_file;
    char where[LINE_MAX_INI + 32];

    /* Which way to sign in depends on all of them: one that did not parse was reported, and
     * guessing without it would only add a second message about the same line. */
    for (size_t i = 0; i < sizeof(cred_keys) / sizeof(cred_keys[0]); i++)
        if (key_bad(&p->pw_seen, SEC_PATCHWORKS, cred_keys[i]))
            return;

    if (pw->email && want_key) {
        cfg_add_error(p,
                      key_line(&p->pw_seen, SEC_PATCHWORKS, "api_key") +
                          key_line(&p->pw_seen, SEC_PATCHWORKS, "api_key_file"),
                      "both email (%s) and an API key are set; use one way to sign in: email "
                      "with password, or api_key",
                      cfg_where(p, key_line(&p->pw_seen, SEC_PATCHWORKS, "email"), where,
                                sizeof(where)));
        return;
    }
    if (pw->email) {
        pw->auth = PD_AUTH_PASSWORD;
        resolve_secret(p, &pw->password, pw->password_file, "password", "PATCHDROP_PASSWORD",
                       config_readable);
        if (!pw->password && !pw->password_file)
            cfg_add_error(p, key_line(&p->pw_seen, SEC_PATCHWORKS, "email"),
                          "email is set but no password: set password, password_file, or the "
                          "environment variable PATCHDROP_PASSWORD");
        return;
    }
    if (pw->password || pw->password_file) {
        cfg_add_error(
            p,
            key_line(&p->pw_seen, SEC_PATCHWORKS, "password") +
                key_line(&p->pw_seen, SEC_PATCHWORKS, "password_file"),
            "a password is set but no email; add email = (or login name) to [patchworks]");
        return;
    }
    pw->auth = PD_AUTH_API_KEY;
    if (want_key || (api_env && *api_env)) {
        resolve_secret(p, &pw->api_key, pw->api_key_file, "api_key", "PATCHDROP_API_KEY",
                       config_readable);
        return;
    }
    cfg_add_error(p, p->pw_line,
                  "no credentials: set email and password (or password_file) in [patchworks], or "
                  "api_key (or api_key_file), or the environment variable PATCHDROP_PASSWORD or "
                  "PATCHDROP_API_KEY");
}

/*
 * PATH made absolute and free of symlinks, "." and "..", also where its tail does not exist
 * yet (the existing head is resolved, the rest appended), so that two spellings of one folder
 * compare equal. NULL when out of memory.
 */
static char *canonical(const char *path)
{
    char *real = realpath(path, NULL), *head, *out = NULL;
    const char *slash;

    if (real || errno != ENOENT)
        return real;
    slash = strrchr(path, '/');
    if (!slash || slash == path)
        return strdup(path);
    if (!(head = strndup(path, (size_t)(slash - path))))
        return NULL;
    char *canon_head = canonical(head);
    free(head);
    if (!canon_head)
        return NULL;
    if (!strcmp(slash + 1, ".") || !slash[1])
        out = canon_head;
    else if (asprintf(&out, "%s%s", strcmp(canon_head, "/") ? canon_head : "", slash) < 0)
        out = NULL;
    if (out != canon_head)
        free(canon_head);
    return out;
}

/* Whether canonical path A is B or lies beneath it. */
static bool within(const char *a, const char *b)
{
    size_t n = strlen(b);
    if (!strcmp(b, "/"))
        return true;
    return !strncmp(a, b, n) && (a[n] == '\0' || a[n] == '/');
}

/* The device of PATH or of its nearest existing ancestor; (dev_t)-1 when none can be seen. */
static dev_t device_of(const char *path)
{
    char *copy = strdup(path);
    struct stat st;
    dev_t dev = (dev_t)-1;

    while (copy && copy[0]) {
        if (stat(copy, &st) == 0) {
            dev = st.st_dev;
            break;
        }
        char *slash = strrchr(copy, '/');
        if (!slash)
            break;
        slash[slash == copy] = '\0';
    }
    free(copy);
    return dev;
}

/*
 * A watch's own folder (work/ and state/, and by default archive/ and failed/) must be where
 * no partner can write or rename it, and on the drop folder's file system so that a claim is
 * one rename. The state dir is such a place when it is on that file system; otherwise the drop
 * folder's parent, when only root or patchdrop's user can write there (an SFTP chroot's
 * root-owned folder is).
 */
static void default_work_dir(struct parser *p, struct pd_watch *w, size_t i)
{
    const char *state = p->cfg->state.dir;
    struct stat st;

    if (state && device_of(state) == device_of(w->path)) {
        if (asprintf(&w->work_dir, "%s/watches/%s", state, w->name) < 0)
            p->oom = true;
        return;
    }
    char *canon = canonical(w->path);
    char *slash = canon ? strrchr(canon, '/') : NULL;
    if (!canon) {
        p->oom = true;
        return;
    }
    if (!slash || slash == canon) {
        cfg_add_error(p, key_line(&p->watch_seen[i], SEC_WATCH, "path"),
                      "[watch:%s]: the state dir %s is on another file system than %s; set "
                      "work_dir = a folder on that file system that partners cannot write",
                      w->name, state ? state : "", w->path);
        free(canon);
        return;
    }
    *slash = '\0';
    if (stat(canon, &st) == 0 && (st.st_uid == 0 || st.st_uid == geteuid()) &&
        !(st.st_mode & (S_IWGRP | S_IWOTH))) {
        if (asprintf(&w->work_dir, "%s/.patchdrop-%s", canon, slash + 1) < 0)
            p->oom = true;
    } else {
        cfg_add_error(p, key_line(&p->watch_seen[i], SEC_WATCH, "path"),
                      "[watch:%s]: the state dir %s is on another file system than %s, and %s may "
                      "be written by others, so patchdrop's folder cannot go beside the drop "
                      "folder; set work_dir = a folder on the drop folder's file system that "
                      "partners cannot write (owned by patchdrop's user, mode 700)",
                      w->name, state ? state : "", w->path, canon);
    }
    free(canon);
}

/* Reports that folder KEY of watch I (or the state dir) is, or holds, a drop folder. */
static void check_outside(struct parser *p, const char *what, int line, const char *dir)
{
    struct pd_config *cfg = p->cfg;
    char *c = dir ? canonical(dir) : NULL;

    if (!c)
        return;
    for (size_t j = 0; j < cfg->nwatches; j++) {
        const struct pd_watch *o = &cfg->watches[j];
        char *drop = o->path ? canonical(o->path) : NULL;
        if (!drop)
            continue;
        if (within(c, drop))
            cfg_add_error(p, line,
                          "%s %s is %sthe drop folder of [watch:%s]; partners could read, rename "
                          "or replace what patchdrop keeps there, and it would be sent as a new "
                          "file: move it outside every drop folder",
                          what, dir, strcmp(c, drop) ? "inside " : "", o->name);
        else if (within(drop, c))
            cfg_add_error(p, line,
                          "%s %s holds the drop folder %s of [watch:%s]; keep patchdrop's folders "
                          "and the drop folders apart",
                          what, dir, o->path, o->name);
        free(drop);
    }
    free(c);
}

/*
 * The trust boundary (docs/architecture.md): everything patchdrop keeps lives outside every
 * drop folder, and no folder is fed to two watches.
 */
static void check_boundaries(struct parser *p)
{
    struct pd_config *cfg = p->cfg;

    size_t before = p->nproblems;
    check_outside(p, "the state dir", key_line(&p->state_seen, SEC_STATE, "dir"), cfg->state.dir);
    /* Folders defaulted from a state dir already refused would only repeat its message. */
    bool state_ok = p->nproblems == before;
    for (size_t i = 0; i < cfg->nwatches; i++) {
        struct pd_watch *w = &cfg->watches[i];
        struct seen *s = &p->watch_seen[i];
        static const char *const own[] = {"work_dir", "archive_dir", "failed_dir"};
        const char *dirs[] = {w->work_dir, w->archive_dir, w->failed_dir};
        for (size_t k = 0; k < 3; k++) {
            int wl = key_line(s, SEC_WATCH, own[k]);
            if (wl || state_ok)
                check_outside(p, own[k], wl ? wl : w->line, dirs[k]);
        }
        char *mine = w->path ? canonical(w->path) : NULL;
        for (size_t j = 0; mine && j < cfg->nwatches; j++) {
            const struct pd_watch *o = &cfg->watches[j];
            char *theirs = j != i && o->path ? canonical(o->path) : NULL;
            if (!theirs)
                continue;
            if (j < i && !strcmp(mine, theirs))
                cfg_add_error(
                    p, key_line(s, SEC_WATCH, "path"),
                    "[watch:%s] uses the folder of [watch:%s] (%s); one folder, one watch", w->name,
                    o->name, mine);
            else if (o->recursive && strcmp(mine, theirs) && within(mine, theirs))
                cfg_add_error(p, key_line(s, SEC_WATCH, "path"),
                              "[watch:%s]'s folder %s is inside the recursive [watch:%s]'s %s: its "
                              "files would go to two flows; set recursive = no or move it",
                              w->name, w->path, o->name, o->path);
            if (j < i && w->work_dir && o->work_dir) {
                char *a = canonical(w->work_dir), *b = canonical(o->work_dir);
                if (a && b && !strcmp(a, b))
                    cfg_add_error(p, key_line(s, SEC_WATCH, "work_dir"),
                                  "[watch:%s] shares work_dir %s with [watch:%s]; each watch needs "
                                  "its own",
                                  w->name, w->work_dir, o->name);
                free(a);
                free(b);
            }
            free(theirs);
        }
        free(mine);
    }
}

/*
 * Receipts follow archive_keep unless receipt_keep says otherwise, and a receipt may outlive
 * its file, never the reverse: receipt_keep shorter than archive_keep is refused, not bent.
 */
static void validate_retention(struct parser *p, struct pd_watch *w, const struct seen *s)
{
    if (key_bad(s, SEC_WATCH, "archive_keep") || key_bad(s, SEC_WATCH, "receipt_keep"))
        return;
    if (!key_line(s, SEC_WATCH, "receipt_keep")) {
        w->receipt_keep_ms = w->archive_keep_ms;
        return;
    }
    if (w->receipt_keep_ms && w->archive_keep_ms && w->receipt_keep_ms < w->archive_keep_ms) {
        char rk[32], ak[32];
        cfg_format_duration(w->receipt_keep_ms, rk, sizeof(rk));
        cfg_format_duration(w->archive_keep_ms, ak, sizeof(ak));
        cfg_add_error(p, key_line(s, SEC_WATCH, "receipt_keep"),
                      "receipt_keep = %s is shorter than archive_keep = %s; a receipt is never "
                      "removed before its file: give at least %s, 0 (forever), or remove the line "
                      "(the same as archive_keep)",
                      rk, ak, ak);
    }
}

static void validate_watches(struct parser *p)
{
    struct pd_config *cfg = p->cfg;

    for (size_t i = 0; i < cfg->nwatches; i++) {
        struct pd_watch *w = &cfg->watches[i];
        const struct seen *s = &p->watch_seen[i];
        struct stat st;

        if (!w->path) {
            if (!key_bad(s, SEC_WATCH, "path"))
                cfg_add_error(p, w->line, "[watch:%s] has no path; add path = /the/drop/folder",
                              w->name);
        } else if (stat(w->path, &st)) {
            cfg_add_error(p, key_line(&p->watch_seen[i], SEC_WATCH, "path"),
                          "path %s: %s; create the folder or fix the path", w->path,
                          strerror(errno));
        } else if (!S_ISDIR(st.st_mode)) {
            cfg_add_error(p, key_line(&p->watch_seen[i], SEC_WATCH, "path"),
                          "path %s is not a folder; a watch needs the drop folder's path", w->path);
        }
        if (w->done_marker && (!strstr(w->done_marker, "{name}") || strchr(w->done_marker, '/')))
            cfg_add_error(p, key_line(&p->watch_seen[i], SEC_WATCH, "done_marker"),
                          "done_marker must hold {name} and no '/', like {name}.done or {name}.ok");
        if (!w->flow_id && !w->lookup_id && !key_bad(s, SEC_WATCH, "flow_id") &&
            !key_bad(s, SEC_WATCH, "lookup_id"))
            cfg_add_error(p, w->line,
                          "[watch:%s] has no flow_id; add flow_id = the id of the process flow to "
                          "start (or lookup_id = a cross-reference lookup to sync CSV files into)",
                          w->name);
        if (w->flow_id && w->lookup_id)
            cfg_add_error(p, key_line(&p->watch_seen[i], SEC_WATCH, "lookup_id"),
                          "[watch:%s] has both flow_id and lookup_id; a watch feeds either a flow "
                          "or a lookup: keep one",
                          w->name);
        if (w->lookup_id && w->version_id)
            cfg_add_error(p, key_line(&p->watch_seen[i], SEC_WATCH, "version_id"),
                          "[watch:%s]: version_id belongs to a flow; remove it from a lookup watch",
                          w->name);
        if (w->include && !w->include[strspn(w->include, PD_READY_GLOB_SEPARATORS)])
            cfg_add_error(p, key_line(s, SEC_WATCH, "include"),
                          "include = %s holds no glob, so no file would ever be sent; give globs "
                          "like *.xml, *.csv (or * for every file)",
                          w->include);
        /* A folder whose key did not parse gets no default: the default would be checked (and
         * complained about) in its place. */
        if (w->path && !w->work_dir && !key_bad(s, SEC_WATCH, "work_dir"))
            default_work_dir(p, w, i);
        if (w->work_dir && !w->archive_dir && !key_bad(s, SEC_WATCH, "archive_dir") &&
            asprintf(&w->archive_dir, "%s/archive", w->work_dir) < 0)
            p->oom = true;
        if (w->work_dir && !w->failed_dir && !key_bad(s, SEC_WATCH, "failed_dir") &&
            asprintf(&w->failed_dir, "%s/failed", w->work_dir) < 0)
            p->oom = true;
        validate_retention(p, w, s);
    }
    check_boundaries(p);
}

/* The path templates: a path under lookups_url or core_url, with the placeholders it needs. */
static void validate_paths(struct parser *p)
{
    const struct pd_patchworks *pw = &p->cfg->pw;
    const struct {
        const char *key, *value;
        bool id, value_id;
        const char *example;
    } t[] = {
        {"lookups_path", pw->lookups_path, false, false, "/cross-reference-lookups"},
        {"lookup_rows_path", pw->lookup_rows_path, true, false,
         "/cross-reference-lookups/{id}/values"},
        {"lookup_value_path", pw->lookup_value_path, true, true,
         "/cross-reference-lookups/{id}/values/{value_id}"},
        {"flow_run_path", pw->flow_run_path, true, false, "/flow-runs/{id}"},
        {"flow_run_logs_path", pw->flow_run_logs_path, true, false,
         "/flow-runs/{id}/flow-run-logs"},
        {"flow_run_retry_path", pw->flow_run_retry_path, true, false, "/flow-runs/{id}/retry"},
    };

    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        const char *v = t[i].value;
        if (!v)
            continue;
        if (v[0] != '/' || strpbrk(v, "?# \t") || (!t[i].id && strchr(v, '{')) ||
            (t[i].id && !strstr(v, "{id}")) || (t[i].value_id && !strstr(v, "{value_id}")))
            cfg_add_error(p, key_line(&p->pw_seen, SEC_PATCHWORKS, t[i].key),
                          "%s = %s: expected a path starting with / %s, e.g. %s", t[i].key, v,
                          t[i].value_id ? "holding {id} and {value_id}"
                          : t[i].id     ? "holding {id}"
                                        : "without placeholders",
                          t[i].example);
    }
    /* The scheme was checked with the key; the link names the run. */
    if (pw->dashboard_url &&
        (!strstr(pw->dashboard_url, "{id}") || strpbrk(pw->dashboard_url, " \t")))
        cfg_add_error(p, key_line(&p->pw_seen, SEC_PATCHWORKS, "dashboard_url"),
                      "dashboard_url = %s: expected an http(s) URL holding {id}, e.g. "
                      "https://app.wearepatchworks.com/flow-run-logs/{id}",
                      pw->dashboard_url);
}

/* Duration KEY of a section must be at least FIRST (both parsed): one message naming both. */
static void check_not_shorter(struct parser *p, const struct seen *s, enum section sec,
                              const char *key, uint64_t v, const char *first, uint64_t fv)
{
    if (key_bad(s, sec, key) || key_bad(s, sec, first) || v >= fv)
        return;
    char a[32], b[32];
    cfg_format_duration(v, a, sizeof(a));
    cfg_format_duration(fv, b, sizeof(b));
    cfg_add_error(p, key_line(s, sec, key) ? key_line(s, sec, key) : key_line(s, sec, first),
                  "%s = %s is shorter than %s = %s; make it at least as long", key, a, first, b);
}

/* Following flow runs: the backoff's bounds; lookup watches start no runs to follow. */
static void validate_follow(struct parser *p)
{
    for (size_t i = 0; i < p->cfg->nwatches; i++) {
        struct pd_watch *w = &p->cfg->watches[i];
        const struct seen *s = &p->watch_seen[i];
        if (w->lookup_id)
            w->follow = false;
        check_not_shorter(p, s, SEC_WATCH, "follow_cap", w->follow_cap_ms, "follow_first",
                          w->follow_first_ms);
        check_not_shorter(p, s, SEC_WATCH, "follow_timeout", w->follow_timeout_ms, "follow_first",
                          w->follow_first_ms);
    }
}

void cfg_check(struct parser *p, bool config_readable)
{
    validate_credentials(p, config_readable);
    validate_watches(p);
    validate_paths(p);
    validate_follow(p);
    cfg_check_cluster(p);
    /* A check between two keys runs only when both parsed: one mistake, one message. */
    if (!key_bad(&p->pw_seen, SEC_PATCHWORKS, "retry_cap") &&
        !key_bad(&p->pw_seen, SEC_PATCHWORKS, "retry_base") &&
        p->cfg->pw.retry_cap_ms < p->cfg->pw.retry_base_ms)
        cfg_add_error(p, key_line(&p->pw_seen, SEC_PATCHWORKS, "retry_cap"),
                      "retry_cap is shorter than retry_base; make it at least as long");
}
