/*
 * The landing zone's trust boundary (docs/architecture.md, "Trust boundary").
 *
 * A drop folder is written by partners patchdrop does not trust: every name, every folder in
 * it and the timing of every change are theirs. So everything patchdrop keeps (a watch's work/
 * and state/, and by default its archive and failed folders) lives outside every drop folder,
 * in folders owned by patchdrop's user that nobody else may write, checked at every start; and
 * every step inside a drop folder resolves names beneath the folder, never through a symlink.
 * None of these functions logs: each returns 0 or -errno and, where a person must act, says
 * what to do in *WHY (malloc'd).
 */
#ifndef PD_ZONE_H
#define PD_ZONE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

/*
 * Makes sure PATH is a folder patchdrop may trust: created (with missing parents) with MODE
 * if absent, not a symlink, owned by this process's user, and writable by nobody else; when
 * PRIVATE also not readable by group or others (a private folder of ours with a looser mode is
 * tightened to 0700). Otherwise returns PD_ECONFIG and says in *WHY what is wrong and the
 * command that fixes it.
 */
int pd_zone_own_dir(const char *path, mode_t mode, bool private_, char **why);

/* The same checks without creating anything: a missing folder is fine (made at start). */
int pd_zone_check_dir(const char *path, bool private_, char **why);

/*
 * Opens the drop folder ROOT (the admin's path: it may hold symlinks) as a descriptor.
 */
int pd_zone_open_root(const char *root);

/* lstat() of REL beneath ROOTFD, never through a symlink: -ELOOP when a folder on the way is one.
 */
int pd_zone_stat(int rootfd, const char *rel, struct stat *st);

#define PD_ZONE_ALLOW_LINKS 1u /* claim files that have other names too */
#define PD_ZONE_LEASE 2u       /* refuse files some process holds open for writing */

/*
 * Claims REL beneath ROOTFD into TO (a path in the watch's work/): opens it without following
 * links, checks that it is still the regular file EXPECT describes (inode, size, mtime), and
 * renames it without ever replacing TO; then takes setuid, setgid and sticky bits off (mode
 * PD_FS_FILE_MODE) where it may. With PD_ZONE_LEASE it first takes a read lease
 * (fcntl F_SETLEASE), which the kernel refuses while a writer has the file open. On success
 * *FD (when not NULL) is the claimed file, opened read-only. Returns 0, -EAGAIN when the file
 * changed (not ready after all), -EBUSY when it is open for writing, -ENOLCK when no lease can
 * be taken here (NFS, no CAP_LEASE: claim again without PD_ZONE_LEASE), -EACCES when it cannot
 * be read, -EMLINK when it has other names without PD_ZONE_ALLOW_LINKS, or another -errno.
 */
int pd_zone_claim(int rootfd, const char *rel, const struct stat *expect, unsigned flags,
                  const char *to, int *fd);

/* Whether this process may take leases on files it does not own (root or CAP_LEASE). */
bool pd_zone_lease_possible(void);

/* Removes REL beneath ROOTFD (a done marker), never through a symlink. */
int pd_zone_unlink(int rootfd, const char *rel);

/*
 * Whether a file looks sparse: far fewer blocks on disk than its size says (a 20 GB file that
 * occupies 16 kB). Compressing file systems store text in fewer blocks too, so the bar is low:
 * at least 1 MiB, and under 1/64 of it on disk.
 */
bool pd_zone_sparse(const struct stat *st);

/*
 * Before the trust boundary existed, a watch kept its files in <drop>/.patchdrop/{work,state}.
 * Moves files left in such a work/ (and their delivery records) into WORK_DIR and STATE_DIR so
 * they are resumed once, but only when .patchdrop and its work/ and state/ are real folders
 * owned by this process's user that nobody else can write: a partner can replace them with its
 * own (or with symlinks) and must not make patchdrop read, send or move anything. *MOVED counts
 * the files moved. *WHY says why nothing was touched, when that is the case and worth saying.
 */
int pd_zone_migrate(int rootfd, const char *work_dir, const char *state_dir, unsigned *moved,
                    char **why);

#endif
