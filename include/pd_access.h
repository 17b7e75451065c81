/*
 * What the user patchdrop runs as can reach, checked before it runs (`patchdrop check-config`).
 *
 * An admin configures as root, and root reads everything: a root-owned 0600 password file or a
 * drop folder owned by the SFTP partner passes every check root makes, and the service then
 * fails at its first start. So the checks here run with the service user's own credentials: in
 * a child process that takes that user's uid, gid and groups (when we are root), where the
 * kernel's access(2) answers exactly, ACLs included. Each problem is said with the command that
 * fixes it (chown, chmod, setfacl).
 */
#ifndef PD_ACCESS_H
#define PD_ACCESS_H

#include <stdio.h>
#include <sys/types.h>

struct pd_config;

/* Who the checks are for: a user and its primary group, by id and by name. */
struct pd_access_user {
    uid_t uid;
    gid_t gid;
    char name[64];  /* the user's name, or its uid in digits */
    char group[64]; /* its primary group's name, or the gid in digits */
};

/* Fills *U for the user NAME (a name, or a uid in digits). 0, or -ENOENT when there is none. */
int pd_access_user_lookup(const char *name, struct pd_access_user *u);

/* Fills *U for the user this process runs as (effective ids). */
void pd_access_user_self(struct pd_access_user *u);

/*
 * Checks, with this process's own credentials (which must be U's), that U can do what the
 * daemon will do with CFG: read CONFIG_FILE, the secret files and ca_file; list, enter and write
 * every drop folder (claims rename files out of it); create or write the state dir and every
 * watch's own folders (work_dir, work/, state/, archive, failed), which must be U's and nobody
 * else's (pd_zone_check_dir). Every folder on the way must be searchable. Writes one line per
 * problem to OUT, starting with "patchdrop check-config: ", naming the path and the command that
 * fixes it; returns the number of problems. Warnings (files in a drop folder U cannot read) are
 * written too but not counted.
 */
int pd_access_check(const struct pd_config *cfg, const char *config_file,
                    const struct pd_access_user *u, FILE *out);

/*
 * pd_access_check() as user U: in this process when it already runs as U, otherwise (root
 * only) in a child that takes U's uid, gid and supplementary groups. Returns the number of
 * problems, -EPERM when another user's view needs root, or another -errno when the child could
 * not be run.
 */
int pd_access_check_as(const struct pd_config *cfg, const char *config_file,
                       const struct pd_access_user *u, FILE *out);

#endif
