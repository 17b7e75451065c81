/* A failed file back into its drop folder, its error file into history (see pd_requeue.h). */
#include "pd_requeue.h"

#include "pd_error.h"
#include "pd_fsutil.h"
#include "pd_jobstate.h"
#include "pd_retention.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ERROR_MAX (64u << 20)

static uint64_t ms_of(const struct timespec *t)
{
    return (uint64_t)t->tv_sec * 1000 + (uint64_t)t->tv_nsec / 1000000;
}

/* Reads the regular file NAME in DIRFD (never through a symlink) with its stat. */
static int read_at(int dirfd, const char *name, char **out, struct stat *st)
{
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    int rc = 0;

    *out = NULL;
    if (fd < 0)
        return -errno;
    if (fstat(fd, st))
        rc = -errno;
    else if (!S_ISREG(st->st_mode) || (uint64_t)st->st_size > ERROR_MAX)
        rc = -EINVAL;
    else if (!(*out = malloc((size_t)st->st_size + 1)))
        rc = PD_ENOMEM;
    else {
        size_t used = 0;
        while (used < (size_t)st->st_size) {
            ssize_t n = read(fd, *out + used, (size_t)st->st_size - used);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            used += (size_t)n;
        }
        (*out)[used] = '\0';
    }
    close(fd);
    return rc;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The original name from an error file: "file_hex" (exact bytes) or "file". */
static int origin_of(const char *text, char *rel, size_t len)
{
    cJSON *o = cJSON_Parse(text);
    const cJSON *file = cJSON_GetObjectItemCaseSensitive(o, "file");
    const cJSON *hex = cJSON_GetObjectItemCaseSensitive(o, "file_hex");
    int rc = PD_EPARSE;

    if (cJSON_IsString(hex) && strlen(hex->valuestring) / 2 < len &&
        strlen(hex->valuestring) % 2 == 0) {
        size_t n = strlen(hex->valuestring) / 2;
        rc = 0;
        for (size_t i = 0; i < n && !rc; i++) {
            int hi = hexval(hex->valuestring[2 * i]), lo = hexval(hex->valuestring[2 * i + 1]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                rc = PD_EPARSE;
            rel[i] = (char)(hi << 4 | lo);
        }
        rel[n] = '\0';
    } else if (cJSON_IsString(file) && strlen(file->valuestring) < len) {
        snprintf(rel, len, "%s", file->valuestring);
        rc = 0;
    }
    cJSON_Delete(o);
    /* A path beneath the drop folder: no leading '/', no empty, "." or ".." part. */
    for (const char *p = rel; !rc && p; p = strchr(p, '/') ? strchr(p, '/') + 1 : NULL) {
        size_t n = strcspn(p, "/");
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && !strncmp(p, "..", 2)))
            rc = PD_EPARSE;
    }
    return rc;
}

static bool is_error_name(const char *name)
{
    size_t n = strlen(name), k = strlen(PD_RETENTION_ERROR);
    return n > k && !strcmp(name + n - k, PD_RETENTION_ERROR);
}

int pd_requeue_plan(int failedfd, const char *name, struct pd_requeue_item *it, char *why,
                    size_t whylen)
{
    char side[NAME_MAX + 32], *text = NULL;
    struct stat st, est;

    memset(it, 0, sizeof(*it));
    why[0] = '\0';
    if (strchr(name, '/') || strlen(name) > NAME_MAX || is_error_name(name) ||
        fstatat(failedfd, name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISREG(st.st_mode)) {
        snprintf(why, whylen, "no failed file of that name in the failed folder");
        return -ENOENT;
    }
    snprintf(it->name, sizeof(it->name), "%s", name);
    it->size = (uint64_t)st.st_size;
    it->failed_ms = ms_of(&st.st_ctim);
    snprintf(side, sizeof(side), "%s%s", name, PD_RETENTION_ERROR);
    int rc = read_at(failedfd, side, &text, &est);
    if (rc == -ENOENT) {
        snprintf(it->rel, sizeof(it->rel), "%s", name);
        snprintf(why, whylen, "no error file: goes back under its own name, at the top");
        return 0;
    }
    it->has_error = true;
    it->failed_ms = ms_of(&est.st_mtim);
    rc = rc ? rc : origin_of(text, it->rel, sizeof(it->rel));
    free(text);
    if (rc)
        snprintf(why, whylen,
                 "its error file %s names no path inside the drop folder (\"file\"):"
                 " move it back by hand",
                 side);
    return rc;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct pd_requeue_item *)a)->name,
                  ((const struct pd_requeue_item *)b)->name);
}

int pd_requeue_list(int failedfd, uint64_t since_ms, struct pd_requeue_item **out, size_t *n)
{
    int fd = dup(failedfd);
    DIR *dir = fd < 0 ? NULL : fdopendir(fd);
    struct pd_requeue_item *items = NULL, it;
    struct dirent *de;
    size_t cap = 0;
    char why[256];

    *out = NULL;
    *n = 0;
    if (!dir) {
        if (fd >= 0)
            close(fd);
        return -errno;
    }
    rewinddir(dir);
    while ((de = readdir(dir))) {
        if (de->d_name[0] == '.' && (!de->d_name[1] || !strcmp(de->d_name, "..")))
            continue;
        /* A file whose error file names no path is listed too: the move says why it cannot. */
        int rc = pd_requeue_plan(failedfd, de->d_name, &it, why, sizeof(why));
        if ((rc && rc != PD_EPARSE) || it.failed_ms < since_ms)
            continue;
        if (*n == cap) {
            struct pd_requeue_item *g = realloc(items, (cap = cap ? 2 * cap : 16) * sizeof(*g));
            if (!g) {
                free(items);
                closedir(dir);
                return PD_ENOMEM;
            }
            items = g;
        }
        items[(*n)++] = it;
    }
    closedir(dir);
    if (*n)
        qsort(items, *n, sizeof(*items), by_name);
    *out = items;
    return 0;
}

int pd_requeue_check(int rootfd, const struct pd_requeue_item *it)
{
    struct stat st;
    const char *base;
    int pfd = pd_fs_open_parent(rootfd, it->rel, &base);

    if (pfd < 0)
        return pfd;
    int rc = fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 ? -EEXIST
             : errno == ENOENT                                 ? 0
                                                               : -errno;
    close(pfd);
    return rc;
}

/* FROM in FROMDIR to BASE in the folder TODIR, never replacing: renameat2, else through the
 * descriptor's /proc name so pd_fs_renameat_noreplace's link and cross-device ways apply. */
static int move_noreplace(int fromdir, const char *from, int todir, const char *base)
{
    char to[PATH_MAX];

    if (renameat2(fromdir, from, todir, base, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
        return -errno;
    if ((size_t)snprintf(to, sizeof(to), "/proc/self/fd/%d/%s", todir, base) >= sizeof(to))
        return -ENAMETOOLONG;
    return pd_fs_renameat_noreplace(fromdir, from, to);
}

/* Creates NAME in DIRFD with TEXT durably and the times of ST; -EEXIST when it exists. */
static int create_at(int dirfd, const char *name, const char *text, const struct stat *st)
{
    struct timespec times[2] = {st->st_atim, st->st_mtim};
    size_t len = strlen(text), done = 0;
    int fd =
        openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, PD_FS_FILE_MODE);
    int rc = 0;

    if (fd < 0)
        return -errno;
    while (!rc && done < len) {
        ssize_t w = write(fd, text + done, len - done);
        if (w < 0 && errno != EINTR)
            rc = -errno;
        done += w > 0 ? (size_t)w : 0;
    }
    if (!rc && futimens(fd, times))
        rc = -errno;
    if (!rc && fsync(fd))
        rc = -errno;
    close(fd);
    if (rc)
        unlinkat(dirfd, name, 0);
    return rc;
}

/* The error file SIDE, marked, into history/ under the first free numbered name of BASE. */
static int keep_error(int failedfd, const char *side, struct pd_requeue_item *it, uint64_t now_ms)
{
    const char *slash = strrchr(it->rel, '/');
    const char *base = slash ? slash + 1 : it->rel;
    struct pd_jobstate_note notes[] = {
        {.key = "retried_at", .time_ms = now_ms},
        {.key = "retried_as", .text = it->rel, .name = true},
    };
    char *text = NULL, *marked = NULL;
    struct stat st;
    int hfd = -1, rc = read_at(failedfd, side, &text, &st);

    if (!rc && !(marked = pd_jobstate_annotate(text, notes, 2)))
        rc = PD_EPARSE;
    if (!rc && mkdirat(failedfd, PD_REQUEUE_HISTORY, 0750) && errno != EEXIST)
        rc = -errno;
    if (!rc && (hfd = openat(failedfd, PD_REQUEUE_HISTORY,
                             O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
        rc = -errno;
    rc = rc ? rc : -EEXIST;
    for (unsigned k = 0; rc == -EEXIST && k < 100000; k++) {
        char cand[NAME_MAX + 1], hist[NAME_MAX + 32];
        if (pd_fs_numbered_name(base, k, cand, sizeof(cand) - strlen(PD_RETENTION_ERROR)) &&
            pd_fs_numbered_name(it->name, k, cand, sizeof(cand) - strlen(PD_RETENTION_ERROR))) {
            rc = -ENAMETOOLONG;
            break;
        }
        snprintf(hist, sizeof(hist), "%s%s", cand, PD_RETENTION_ERROR);
        if ((rc = create_at(hfd, hist, marked, &st)) == 0)
            snprintf(it->history, sizeof(it->history), "%s", hist);
    }
    if (!rc && (fsync(hfd) || unlinkat(failedfd, side, 0) || fsync(failedfd)))
        rc = -errno;
    if (hfd >= 0)
        close(hfd);
    free(text);
    free(marked);
    return rc;
}

/* The error file kept in history/ by keep_error back to SIDE in the failed folder. */
static int put_back(int failedfd, const char *side, const struct pd_requeue_item *it)
{
    int hfd = openat(failedfd, PD_REQUEUE_HISTORY, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (hfd < 0)
        return -errno;
    int rc = renameat2(hfd, it->history, failedfd, side, RENAME_NOREPLACE) ? -errno : 0;
    close(hfd);
    return rc;
}

int pd_requeue_move(int failedfd, int rootfd, struct pd_requeue_item *it, uint64_t now_ms,
                    char *why, size_t whylen)
{
    const char *base;
    char side[NAME_MAX + 32];
    struct stat st;
    int pfd, rc;

    why[0] = '\0';
    if (fstatat(failedfd, it->name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISREG(st.st_mode)) {
        snprintf(why, whylen, "no longer in the failed folder");
        return -ENOENT;
    }
    if ((pfd = pd_fs_open_parent(rootfd, it->rel, &base)) < 0) {
        snprintf(
            why, whylen, "%s",
            pfd == -ELOOP || pfd == -EXDEV || pfd == -ENOTDIR
                ? "a symbolic link (or a file) is on its way in the drop folder: never followed; "
                  "move it by hand"
            : pfd == -ENOENT ? "its folder in the drop folder is gone: make it again, "
                               "then retry"
                             : strerror(-pfd));
        return pfd;
    }
    /* The error file goes first: the daemon may take the file and fail it again within
     * milliseconds, and its new error file must find the name free, not numbered beside the
     * old one. */
    snprintf(side, sizeof(side), "%s%s", it->name, PD_RETENTION_ERROR);
    if (it->has_error && (rc = keep_error(failedfd, side, it, now_ms))) {
        close(pfd);
        snprintf(why, whylen, "its error file %s cannot be kept in history/ (%s): nothing moved",
                 side, pd_strerror(rc));
        return -EIO;
    }
    rc = move_noreplace(failedfd, it->name, pfd, base);
    if (!rc && fsync(pfd))
        rc = 0; /* the move stands; a folder that cannot sync is no reason to undo it */
    close(pfd);
    if (rc) {
        /* Not moved: its error file goes back beside it (marked retried, which it was not). */
        bool back = !it->has_error || put_back(failedfd, side, it) == 0;
        snprintf(why, whylen, "%s%s",
                 rc == -EEXIST ? "the drop folder already has a file of that name: both left "
                                 "as they are; rename one, then retry"
                               : strerror(-rc),
                 back ? "" : "; its error file stays in history/");
        return rc;
    }
    return 0;
}
