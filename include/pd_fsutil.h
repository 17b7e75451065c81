/*
 * File system steps the daemon's promises rest on: durable writes (temp file, fsync, rename,
 * fsync the folder), moves that never overwrite, and folders created with the right mode.
 * Every function returns 0 or -errno; none logs.
 */
#ifndef PD_FSUTIL_H
#define PD_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Creates PATH and its missing parents with MODE. An existing folder is fine. */
int pd_fs_mkdirs(const char *path, mode_t mode);

/* fsync()s the folder DIR so that a rename or unlink inside it survives a crash. */
int pd_fs_fsync_dir(const char *dir);

/*
 * Replaces PATH with DATA durably: writes a temp file beside it, fsyncs it, renames it over
 * PATH and fsyncs the folder. After a crash PATH holds either the old or the new content.
 */
int pd_fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode);

/*
 * Replaces PATH with DATA (temp file beside it, renamed over it) without waiting for the disk:
 * for what need not survive a power cut. After one PATH may hold the old content, the new, or
 * an empty file; a crash of the process alone (kill -9) leaves the old or the new.
 */
int pd_fs_write_replace(const char *path, const void *data, size_t len, mode_t mode);

/*
 * The same for a PATH in a folder people read (archive, failed): the temp file is written in
 * TMPDIR, one of patchdrop's own folders whose leftover temp files are swept, and renamed over
 * PATH, so a kill never leaves a temp name beside PATH. Where TMPDIR is NULL or on another file
 * system than PATH, it is pd_fs_write_atomic.
 */
int pd_fs_replace_from(const char *tmpdir, const char *path, const void *data, size_t len,
                       mode_t mode);

/*
 * Creates PATH with DATA durably, failing with -EEXIST when PATH exists (also when another
 * process creates it at the same moment).
 */
int pd_fs_create_durable(const char *path, const void *data, size_t len, mode_t mode);

/*
 * Renames FROM to TO, failing with -EEXIST instead of replacing TO. Uses renameat2
 * RENAME_NOREPLACE, and link + unlink on file systems without it (NFS), which is just as atomic.
 * Across file systems (-EXDEV) the file is copied, fsynced, linked in place and FROM removed.
 */
int pd_fs_rename_noreplace(const char *from, const char *to);

/* The same, from the name FROM in the folder FROMDIR (a descriptor, or AT_FDCWD). */
int pd_fs_renameat_noreplace(int fromdir, const char *from, const char *to);

/*
 * patchdrop's named temp files (durable replaces in its own state folders, and copies where the
 * file system has no O_TMPFILE) are PD_FS_TEMP_PREFIX and six random characters. Files in an
 * archive or failed folder are never taken for temp files: only the state folders are swept.
 */
#define PD_FS_TEMP_PREFIX ".pdtmp-"

/* Is NAME (a temp file's last component) being written by this process right now? A sweep of
 * temps left by a crash passes over these, however old they look. */
bool pd_fs_temp_live(const char *name);

/* The mode of every file patchdrop creates or copies: never setuid, setgid or sticky. */
#define PD_FS_FILE_MODE 0640

/*
 * Opens REL (a relative path) beneath the folder ROOTFD, never through a symlink (no
 * component, not the last) and never out of it (no "..", no absolute path): openat2 with
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, or an O_NOFOLLOW walk where the kernel lacks it.
 * Returns the descriptor or -errno (-ELOOP for a symlink, -EXDEV for an escape).
 */
int pd_fs_open_beneath(int rootfd, const char *rel, int flags);

/* The O_NOFOLLOW walk pd_fs_open_beneath falls back on (kernels before 5.6); for tests. */
int pd_fs_open_beneath_walk(int rootfd, const char *rel, int flags);

/*
 * Opens the folder holding REL beneath ROOTFD (as pd_fs_open_beneath; ROOTFD itself, as a new
 * descriptor, when REL has no '/') and points *BASE at REL's last component.
 */
int pd_fs_open_parent(int rootfd, const char *rel, const char **base);

/*
 * NAME itself when it has at most ROOM bytes, else a shortened NAME that does: as much of its
 * start as fits (never half a UTF-8 character), "~", eight hex digits of a hash of the whole
 * name, and its extension. Derived names (work/, receipts, error files, numbered copies) must
 * fit NAME_MAX; the original name is kept inside the receipt.
 */
int pd_fs_fit_name(const char *name, size_t room, char *out, size_t outlen);

/* NAME with number K before its last extension ("orders.xml", 2 -> "orders.2.xml"); K 0: NAME. */
int pd_fs_numbered_name(const char *name, unsigned k, char *out, size_t outlen);

/*
 * The first of NAME, NAME.1.EXT, NAME.2.EXT ... (the number goes before the last extension:
 * "orders.xml" -> "orders.1.xml") for which neither DIR/candidate nor DIR/candidate+SIDECAR
 * exists. Writes the candidate into OUT. Returns 0, or -ENAMETOOLONG.
 */
int pd_fs_unique_name(const char *dir, const char *name, const char *sidecar, unsigned start,
                      char *out, size_t outlen);

/*
 * Fault injection for the crash tests: when the environment variable PATCHDROP_CRASHPOINT is
 * NAME:N, the Nth call of pd_crashpoint(NAME) kills the process with SIGKILL, as a power cut
 * at that exact step would. Costs one comparison when unset.
 */
void pd_crashpoint(const char *name);

struct pd_commit;
/*
 * From now on every fsync of a file or folder is a shared round of C's group commit
 * (pd_commit.h); NULL goes back to fsync. The daemon sets it while it runs.
 */
void pd_fs_group_commit(struct pd_commit *c);

/* Reads at most MAX bytes of PATH into a malloc'd NUL-terminated buffer. */
int pd_fs_read_all(const char *path, size_t max, char **out, size_t *len);

#endif
