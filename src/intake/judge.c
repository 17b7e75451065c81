/* One look at a name in a drop folder: take it or skip it, and why (see pd_judge.h). */
#include "pd_judge.h"

#include "pd_zone.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

const char *pd_judge_word(enum pd_judgement j)
{
    static const char *const words[] = {
        [PD_JUDGE_TAKE] = "take",
        [PD_JUDGE_EXCLUDED] = "excluded",
        [PD_JUDGE_SETTLING] = "settling",
        [PD_JUDGE_MARKER_MISSING] = "no-marker",
        [PD_JUDGE_NOT_REGULAR] = "not-a-file",
        [PD_JUDGE_HARD_LINK] = "hard-link",
        [PD_JUDGE_GONE] = "gone",
        [PD_JUDGE_WRITING] = "writing",
    };
    return (unsigned)j < sizeof(words) / sizeof(words[0]) ? words[j] : "?";
}

const char *pd_judge_kind(mode_t m)
{
    if (S_ISLNK(m))
        return "a symbolic link";
    if (S_ISFIFO(m))
        return "a fifo";
    if (S_ISDIR(m))
        return "a folder";
    if (S_ISCHR(m) || S_ISBLK(m))
        return "a device";
    if (S_ISSOCK(m))
        return "a socket";
    return "not a regular file";
}

static bool matches(char **list, const char *name, const char **glob)
{
    for (size_t i = 0; list && list[i]; i++)
        if (fnmatch(list[i], name, FNM_PERIOD) == 0) {
            *glob = list[i];
            return true;
        }
    return false;
}

/* Why BASE is not wanted (pd_ready_name_wanted said no): the glob, or that it is a marker. */
static void excluded_why(const struct pd_ready_rules *r, const char *base, char *why, size_t len)
{
    const char *glob = NULL;

    if (matches(r->exclude, base, &glob))
        snprintf(why, len, "excluded by the glob %s", glob);
    else if (!matches(r->include, base, &glob))
        snprintf(why, len, "matches none of the include globs");
    else
        snprintf(why, len, "a done marker (%s)", r->done_marker ? r->done_marker : "");
}

/* The done marker of REL exists beside it (beneath ROOTFD)? 1 yes, 0 no, -1 none configured. */
static int marker_present(int rootfd, const struct pd_ready_rules *r, const char *rel, char *mrel,
                          size_t mlen)
{
    const char *slash = strrchr(rel, '/');
    const char *base = slash ? slash + 1 : rel;
    char marker[NAME_MAX + 1];
    struct stat mst;

    if (!r->done_marker || !pd_ready_marker_name(r, base, marker, sizeof(marker)))
        return -1;
    snprintf(mrel, mlen, "%.*s%s", slash ? (int)(slash - rel + 1) : 0, rel, marker);
    return pd_zone_stat(rootfd, mrel, &mst) == 0;
}

/* Still settling by the wall clock: changed less than settle (or min_age) ago. */
static bool settling(const struct pd_judge_opts *o, const struct stat *st, char *why, size_t len)
{
    int64_t mtime_ms = (int64_t)st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000;
    int64_t age = (int64_t)o->now_wall_ms - mtime_ms;
    uint64_t need = o->rules->settle_ms > o->rules->min_age_ms ? o->rules->settle_ms
                                                                 : o->rules->min_age_ms;
    if (age >= (int64_t)need)
        return false;
    snprintf(why, len, "changed %" PRId64 " ms ago; taken once unchanged for %" PRIu64 " ms (%s)",
             age < 0 ? 0 : age, need,
             o->rules->settle_ms >= o->rules->min_age_ms ? "settle" : "min_age");
    return true;
}

enum pd_judgement pd_judge(int rootfd, const char *rel, const struct pd_judge_opts *o,
                           struct stat *st, char *why, size_t whylen)
{
    const char *slash = strrchr(rel, '/');
    const char *base = slash ? slash + 1 : rel;
    char mrel[PATH_MAX];
    int rc;

    why[0] = '\0';
    memset(st, 0, sizeof(*st));
    if (!pd_ready_name_wanted(o->rules, base)) {
        excluded_why(o->rules, base, why, whylen);
        return PD_JUDGE_EXCLUDED;
    }
    if ((rc = pd_zone_stat(rootfd, rel, st))) {
        snprintf(why, whylen, "%s", rc == -ELOOP || rc == -EXDEV || rc == -ENOTDIR
                                        ? "reached only through a symbolic link (or a file "
                                          "where a folder should be): never followed"
                                        : strerror(-rc));
        return PD_JUDGE_GONE;
    }
    if (!S_ISREG(st->st_mode)) {
        snprintf(why, whylen, "%s: patchdrop only sends regular files and never follows links",
                 pd_judge_kind(st->st_mode));
        return PD_JUDGE_NOT_REGULAR;
    }
    if (settling(o, st, why, whylen))
        return PD_JUDGE_SETTLING;
    if (marker_present(rootfd, o->rules, rel, mrel, sizeof(mrel)) == 0) {
        snprintf(why, whylen, "waits for its done marker %s", mrel);
        return PD_JUDGE_MARKER_MISSING;
    }
    if (st->st_nlink > 1 && !o->allow_hard_links) {
        snprintf(why, whylen,
                 "it has %ju names (hard links): never sent unless allow_hard_links = yes",
                 (uintmax_t)st->st_nlink);
        return PD_JUDGE_HARD_LINK;
    }
    return PD_JUDGE_TAKE;
}

bool pd_judge_writing(int fd, const struct stat *st)
{
    if (st->st_uid != geteuid() && !pd_zone_lease_possible())
        return false;
    if (fcntl(fd, F_SETLEASE, F_RDLCK) == 0) {
        fcntl(fd, F_SETLEASE, F_UNLCK);
        return false;
    }
    return errno == EAGAIN;
}
