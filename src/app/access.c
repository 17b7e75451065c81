/*
 * The service user's view of the file system (see pd_access.h): every path the daemon will use,
 * checked with that user's credentials, each problem said with the command that fixes it.
 *
 * The kernel decides: faccessat(AT_EACCESS) with the user's own ids and groups answers exactly as
 * the daemon's open(), rename() and mkdir() will, ACLs and all, so nothing here re-implements
 * permission rules. What this file adds is the diagnosis: which folder on the way stops the user,
 * and which of chmod, chown, chgrp or setfacl grants what is missing without opening it to others.
 */
#include "pd_access.h"

#include "pd_config.h"
#include "pd_error.h"
#include "pd_zone.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PREFIX "patchdrop check-config: "
/* A drop folder holding more entries than this is not scanned further for unreadable files. */
#define SCAN_MAX 100000
/* The child's exit status carries the number of problems; above this it means "failed". */
#define MAX_COUNT 100

struct checker {
    const struct pd_access_user *u;
    FILE *out;
    int problems;
    char **reported; /* paths already reported: what lies beneath them is not reported again */
    size_t nreported;
};

static void say(struct checker *c, bool counts, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void say(struct checker *c, bool counts, const char *fmt, ...)
{
    va_list ap;
    fputs(PREFIX, c->out);
    if (!counts)
        fputs("WARNING: ", c->out);
    va_start(ap, fmt);
    vfprintf(c->out, fmt, ap);
    va_end(ap);
    fputc('\n', c->out);
    if (counts)
        c->problems++;
}

static void remember(struct checker *c, const char *path)
{
    char **grown = realloc(c->reported, (c->nreported + 1) * sizeof(*grown));
    if (!grown)
        return; /* only a repeated message is at stake */
    c->reported = grown;
    if ((grown[c->nreported] = strdup(path)))
        c->nreported++;
}

/* Whether PATH is, or lies beneath, a path already reported. */
static bool reported(const struct checker *c, const char *path)
{
    for (size_t i = 0; i < c->nreported; i++) {
        size_t n = strlen(c->reported[i]);
        if (!strncmp(path, c->reported[i], n) &&
            (path[n] == '\0' || path[n] == '/' || !strcmp(c->reported[i], "/")))
            return true;
    }
    return false;
}

static bool can(const char *path, int mode)
{
    return faccessat(AT_FDCWD, path, mode, AT_EACCESS) == 0;
}

/* PATH as one shell word: as it is when it is made of harmless characters, else quoted. */
static const char *shq(const char *path, char *buf, size_t len)
{
    size_t n = 0;
    if (path[strspn(path,
                    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._+-:@%,=")] ==
        '\0')
        return path;
    if (len < 3)
        return path;
    buf[n++] = '\'';
    for (const char *s = path; *s && n + 6 < len; s++) {
        if (*s == '\'') {
            memcpy(buf + n, "'\\''", 4);
            n += 4;
        } else {
            buf[n++] = *s;
        }
    }
    buf[n++] = '\'';
    buf[n] = '\0';
    return buf;
}

/* NAME into BUF, or the number ID when there is no name. */
static const char *name_or_id(const char *name, unsigned id, char *buf, size_t len)
{
    if (name)
        snprintf(buf, len, "%s", name);
    else
        snprintf(buf, len, "%u", id);
    return buf;
}

static const char *user_name(uid_t uid, char *buf, size_t len)
{
    struct passwd *pw = getpwuid(uid);
    return name_or_id(pw ? pw->pw_name : NULL, (unsigned)uid, buf, len);
}

static const char *group_name(gid_t gid, char *buf, size_t len)
{
    struct group *gr = getgrgid(gid);
    return name_or_id(gr ? gr->gr_name : NULL, (unsigned)gid, buf, len);
}

/* "owner root, group sftp, mode 0750": what a person needs to see why access is refused. */
static const char *describe(const struct stat *st, char *buf, size_t len)
{
    char o[64], g[64];
    snprintf(buf, len, "owner %s, group %s, mode %04o", user_name(st->st_uid, o, sizeof(o)),
             group_name(st->st_gid, g, sizeof(g)), (unsigned)(st->st_mode & 07777));
    return buf;
}

/* The mode bits PERMS ("rwx", "r", "x") stand for in the class whose read bit is READ_BIT. */
static mode_t bits(const char *perms, mode_t read_bit)
{
    mode_t m = 0;
    if (strchr(perms, 'r'))
        m |= read_bit;
    if (strchr(perms, 'w'))
        m |= read_bit >> 1;
    if (strchr(perms, 'x'))
        m |= read_bit >> 2;
    return m;
}

/*
 * The least widening command that grants the user PERMS on PATH: chmod of the owner's or the
 * group's bits when the user is the owner or the file's group is its group, else an ACL entry
 * for the user alone (with WITH_DEFAULT also for files and folders made there later). Never
 * chmod o+...: that would open the path to every local user.
 */
static void grant(const struct checker *c, const char *path, const struct stat *st,
                  const char *perms, bool with_default, char *buf, size_t len)
{
    const struct pd_access_user *u = c->u;
    char qb[4200];
    const char *p = shq(path, qb, sizeof(qb));

    if (st->st_uid == u->uid)
        snprintf(buf, len, "chmod u+%s %s", perms, p);
    else if (st->st_gid == u->gid && (st->st_mode & bits(perms, S_IRGRP)) != bits(perms, S_IRGRP) &&
             !with_default)
        snprintf(buf, len, "chmod g+%s %s", perms, p);
    else if (with_default)
        snprintf(buf, len, "setfacl -m u:%s:%s,d:u:%s:%s %s", u->name, perms, u->name, perms, p);
    else
        snprintf(buf, len, "setfacl -m u:%s:%s %s", u->name, perms, p);
}

/*
 * Whether a folder on the way to PATH stops the user (it may not enter it). Says which, once per
 * folder, and how to let the user through. Folders that do not exist end the walk: what to do
 * about a missing path is the caller's to say.
 */
static bool blocked_on_the_way(struct checker *c, const char *what, const char *path)
{
    size_t len = strlen(path);
    char *folder = malloc(len + 2);
    bool blocked = false;

    if (!folder || path[0] != '/') {
        free(folder);
        return false;
    }
    /* "/", then "/a", "/a/b"... up to the folder that holds PATH's last name. */
    for (size_t i = 0; i < len && !blocked; i++) {
        struct stat st;
        size_t n = i ? i : 1;
        if (path[i] != '/' || (i && path[i - 1] == '/'))
            continue;
        memcpy(folder, path, n);
        folder[n] = '\0';
        if (stat(folder, &st) || !S_ISDIR(st.st_mode))
            break;
        if (can(folder, X_OK))
            continue;
        blocked = true;
        if (!reported(c, folder)) {
            char fix[4400], d[256];
            grant(c, folder, &st, "x", false, fix, sizeof(fix));
            say(c, true,
                "%s %s cannot be reached by %s, the user patchdrop runs as: it may not enter %s "
                "(%s); run: %s",
                what, path, c->u->name, folder, describe(&st, d, sizeof(d)), fix);
            remember(c, folder);
        }
    }
    free(folder);
    return blocked;
}

/* A file the daemon reads at every start: the config, a secret file, ca_file. */
static void check_readable(struct checker *c, const char *what, const char *path)
{
    struct stat st;
    char fix[9000], d[256], qb[4200];

    if (!path || blocked_on_the_way(c, what, path) || stat(path, &st))
        return; /* a missing file is the config's to report */
    if (can(path, R_OK))
        return;
    if (st.st_uid == c->u->uid || st.st_gid == c->u->gid) {
        grant(c, path, &st, "r", false, fix, sizeof(fix));
    } else {
        const char *p = shq(path, qb, sizeof(qb));
        /* The /etc/ssl/private convention: root keeps writing it, the service's group reads. */
        snprintf(fix, sizeof(fix), "chgrp %s %s && chmod g+r,o-rwx %s (or: setfacl -m u:%s:r %s)",
                 c->u->group, p, p, c->u->name, p);
    }
    say(c, true, "%s %s cannot be read by %s, the user patchdrop runs as (%s); run: %s", what, path,
        c->u->name, describe(&st, d, sizeof(d)), fix);
}

/* Counts the files in the drop folder the user cannot read: they would stay there forever. */
static void scan_unreadable(struct checker *c, const char *watch, const char *path)
{
    DIR *dir = opendir(path);
    struct dirent *e;
    unsigned long unreadable = 0, seen = 0;

    if (!dir)
        return;
    while ((e = readdir(dir)) && seen++ < SCAN_MAX) {
        struct stat st;
        if (e->d_name[0] == '.' || fstatat(dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) ||
            !S_ISREG(st.st_mode))
            continue;
        if (faccessat(dirfd(dir), e->d_name, R_OK, AT_EACCESS))
            unreadable++;
    }
    closedir(dir);
    if (unreadable) {
        char qb[4200];
        const char *p = shq(path, qb, sizeof(qb));
        /* Names are the partners' and are not printed: they could forge terminal output. */
        say(c, false,
            "[watch:%s] %lu file(s) in %s cannot be read by %s: they cannot be sent and stay "
            "there; let it read them (setfacl -m u:%s:r FILE...) and the files to come "
            "(setfacl -d -m u:%s:rwx %s)",
            watch, unreadable, path, c->u->name, c->u->name, c->u->name, p);
    }
}

/*
 * A drop folder: the daemon lists it, enters it and renames files out of it (a claim), so it
 * needs read, search and write permission; a sticky bit would let it rename only its own files.
 */
static void check_drop_folder(struct checker *c, const struct pd_watch *w)
{
    char what[300], fix[9000], d[256], qb[4200];
    struct stat st;

    snprintf(what, sizeof(what), "[watch:%s] drop folder", w->name);
    if (!w->path || blocked_on_the_way(c, what, w->path) || stat(w->path, &st) ||
        !S_ISDIR(st.st_mode))
        return; /* a missing folder is the config's to report */
    if (!can(w->path, R_OK | W_OK | X_OK)) {
        char missing[64] = "";
        if (!can(w->path, R_OK))
            strcat(missing, "list");
        if (!can(w->path, X_OK))
            strcat(strcat(missing, *missing ? ", " : ""), "enter");
        if (!can(w->path, W_OK))
            strcat(strcat(missing, *missing ? ", " : ""), "take files out of");
        grant(c, w->path, &st, "rwx", st.st_uid != c->u->uid, fix, sizeof(fix));
        say(c, true,
            "%s %s: %s, the user patchdrop runs as, may not %s it (%s); it must read, enter and "
            "write it to claim files; run: %s",
            what, w->path, c->u->name, missing, describe(&st, d, sizeof(d)), fix);
        return;
    }
    if ((st.st_mode & S_ISVTX) && st.st_uid != c->u->uid && c->u->uid != 0) {
        say(c, true,
            "%s %s has the sticky bit (%s): %s may rename only its own files there, so it "
            "cannot claim the partners' files; run: chmod -t %s",
            what, w->path, describe(&st, d, sizeof(d)), c->u->name, shq(w->path, qb, sizeof(qb)));
        return;
    }
    scan_unreadable(c, w->name, w->path);
}

/*
 * One of patchdrop's own folders: it must exist or be creatable by the user, and when OWNED be
 * the user's and nobody else's (the trust boundary: pd_zone_check_dir). MODE is the mode the
 * daemon gives it, used in the command that creates it.
 */
static void check_own(struct checker *c, const char *what, const char *path, bool owned,
                      bool private_, mode_t mode)
{
    char fix[9000], d[256], qb[4200];
    const char *p;
    struct stat st;

    if (!path || reported(c, path) || blocked_on_the_way(c, what, path))
        return;
    p = shq(path, qb, sizeof(qb));
    if (lstat(path, &st)) {
        if (errno != ENOENT) {
            say(c, true, "%s %s: %s", what, path, strerror(errno));
            return;
        }
        /* Made at the first start, with its missing parents: the nearest existing folder
         * must let the user create entries. */
        char *up = strdup(path);
        while (up && strcmp(up, "/")) {
            char *slash = strrchr(up, '/');
            if (!slash)
                break;
            slash[slash == up] = '\0';
            if (lstat(up, &st) == 0)
                break;
        }
        if (up && lstat(up, &st) == 0 && !can(up, W_OK | X_OK)) {
            say(c, true,
                "%s %s does not exist, and %s, the user patchdrop runs as, may not create it in "
                "%s (%s); run: install -d -o %s -g %s -m %o %s",
                what, path, c->u->name, up, describe(&st, d, sizeof(d)), c->u->name, c->u->group,
                (unsigned)mode, p);
            remember(c, path);
        }
        free(up);
        return;
    }
    /* The state dir may be a symbolic link to a folder elsewhere; patchdrop's own folders of a
     * watch may not (pd_zone_check_dir says so). */
    if (!owned && S_ISLNK(st.st_mode) && stat(path, &st)) {
        say(c, true, "%s %s: %s", what, path, strerror(errno));
        return;
    }
    if (!owned && !S_ISDIR(st.st_mode)) {
        say(c, true, "%s %s is not a folder; remove it or choose another path", what, path);
        return;
    }
    if (S_ISDIR(st.st_mode) && st.st_uid != c->u->uid && (owned || !can(path, W_OK | X_OK))) {
        say(c, true,
            "%s %s belongs to %s, not to %s, the user patchdrop runs as, %s; run: chown %s:%s %s",
            what, path, user_name(st.st_uid, d, sizeof(d)), c->u->name,
            owned ? "and patchdrop keeps its files only in folders nobody else controls"
                  : "which must write there",
            c->u->name, c->u->group, p);
        return;
    }
    if (owned) {
        char *why = NULL;
        int rc = pd_zone_check_dir(path, private_, &why);
        if (rc) {
            say(c, true, "%s %s", what, why ? why : pd_strerror(rc));
            free(why);
            return;
        }
    }
    if (!can(path, W_OK | X_OK)) {
        grant(c, path, &st, "rwx", false, fix, sizeof(fix));
        say(c, true, "%s %s cannot be written by %s, the user patchdrop runs as (%s); run: %s",
            what, path, c->u->name, describe(&st, d, sizeof(d)), fix);
    }
}

int pd_access_check(const struct pd_config *cfg, const char *config_file,
                    const struct pd_access_user *u, FILE *out)
{
    struct checker c = {.u = u, .out = out};
    const struct pd_patchworks *pw = &cfg->pw;

    check_readable(&c, "the config", config_file);
    check_readable(&c, "password_file", pw->password_file);
    check_readable(&c, "api_key_file", pw->api_key_file);
    check_readable(&c, "ca_file", pw->ca_file);
    check_own(&c, "the state dir", cfg->state.dir, false, true, 0700);
    for (size_t i = 0; i < cfg->nwatches; i++) {
        const struct pd_watch *w = &cfg->watches[i];
        char what[5][300], *sub[2] = {NULL, NULL};

        check_drop_folder(&c, w);
        if (!w->work_dir)
            continue;
        if (asprintf(&sub[0], "%s/work", w->work_dir) < 0)
            sub[0] = NULL;
        if (asprintf(&sub[1], "%s/state", w->work_dir) < 0)
            sub[1] = NULL;
        snprintf(what[0], sizeof(what[0]), "[watch:%s] work_dir", w->name);
        snprintf(what[1], sizeof(what[1]), "[watch:%s] work folder", w->name);
        snprintf(what[2], sizeof(what[2]), "[watch:%s] state folder", w->name);
        snprintf(what[3], sizeof(what[3]), "[watch:%s] archive_dir", w->name);
        snprintf(what[4], sizeof(what[4]), "[watch:%s] failed_dir", w->name);
        check_own(&c, what[0], w->work_dir, true, true, 0700);
        check_own(&c, what[1], sub[0], true, true, 0700);
        check_own(&c, what[2], sub[1], true, true, 0700);
        check_own(&c, what[3], w->archive_dir, true, false, 0750);
        check_own(&c, what[4], w->failed_dir, true, false, 0750);
        free(sub[0]);
        free(sub[1]);
    }
    for (size_t i = 0; i < c.nreported; i++)
        free(c.reported[i]);
    free(c.reported);
    return c.problems;
}

static void fill_user(const struct passwd *pw, struct pd_access_user *u)
{
    u->uid = pw->pw_uid;
    u->gid = pw->pw_gid;
    snprintf(u->name, sizeof(u->name), "%s", pw->pw_name);
    group_name(pw->pw_gid, u->group, sizeof(u->group));
}

int pd_access_user_lookup(const char *name, struct pd_access_user *u)
{
    struct passwd *pw = getpwnam(name);
    char *end;

    if (!pw && isdigit((unsigned char)name[0])) {
        unsigned long id = strtoul(name, &end, 10);
        if (!*end)
            pw = getpwuid((uid_t)id);
    }
    if (!pw)
        return -ENOENT;
    fill_user(pw, u);
    return 0;
}

void pd_access_user_self(struct pd_access_user *u)
{
    struct passwd *pw = getpwuid(geteuid());
    if (pw) {
        fill_user(pw, u);
        u->gid = getegid();
        group_name(u->gid, u->group, sizeof(u->group));
        return;
    }
    u->uid = geteuid();
    u->gid = getegid();
    snprintf(u->name, sizeof(u->name), "%u", (unsigned)u->uid);
    group_name(u->gid, u->group, sizeof(u->group));
}

/* In the child: become U (groups first, then gid, then uid, which drops root for good). */
static int become(const struct pd_access_user *u)
{
    if (initgroups(u->name, u->gid) && setgroups(1, &u->gid))
        return -errno;
    if (setgid(u->gid) || setuid(u->uid))
        return -errno;
    /* Paranoia that costs nothing: root must really be gone before anything is checked. */
    if (u->uid != 0 && (setuid(0) == 0 || geteuid() != u->uid))
        return -EPERM;
    return 0;
}

int pd_access_check_as(const struct pd_config *cfg, const char *config_file,
                       const struct pd_access_user *u, FILE *out)
{
    int status, rc;
    pid_t pid;

    if (u->uid == geteuid())
        return pd_access_check(cfg, config_file, u, out);
    if (geteuid() != 0)
        return -EPERM;
    fflush(NULL); /* nothing buffered may be written twice */
    pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        int n;
        if ((rc = become(u))) {
            fprintf(out, PREFIX "cannot take the identity of %s (uid %u): %s\n", u->name,
                    (unsigned)u->uid, pd_strerror(rc));
            fflush(out);
            _exit(MAX_COUNT + 1);
        }
        n = pd_access_check(cfg, config_file, u, out);
        fflush(out);
        _exit(n > MAX_COUNT ? MAX_COUNT : n);
    }
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return -errno;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) > MAX_COUNT)
        return -ECHILD;
    return WEXITSTATUS(status);
}
