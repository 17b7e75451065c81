/*
 * Compressed files: a .gz (zlib; several members follow one another), a .zst (libzstd; several
 * frames) or a .zip (libarchive; each file entry a file of its own) is expanded, one inner file
 * at a time, into a file patchdrop names itself in a folder it trusts (pd_expand_tmpfile: no
 * name at all where the file system allows it), and that file is split like any other
 * (pd_deliver.h does it for `run` and `send`).
 *
 * The compressed file is hostile. Its kind comes from its first bytes (gzip 1f 8b, zstd 28 b5 2f
 * fd, zip PK\3\4); a name saying .gz, .zst or .zip on other bytes is refused, and a zip is
 * expanded only when named .zip (an .xlsx or a .jar is a zip too, not records). Entry names are
 * text for receipts and for choosing a format, never paths. A zip's symbolic links, links,
 * devices, encrypted entries and archives inside it are refused before anything is expanded;
 * folders are skipped. Expanding stops as soon as it passes max_expanded_size (all entries
 * together), max_expansion_ratio times the compressed size (beyond 1 MiB), or the free space of
 * the folder it writes to (keeping 1% or 64 MiB free): nothing is ever written past a limit.
 * pd_expand_check() reads a zip's other entries through before the first is sent, so a corrupt
 * later entry stops the zip before any of it goes.
 * Memory: 64 KiB buffers, zlib's 32 KiB window, zstd frames up to a 16 MiB window.
 */
#ifndef PD_EXPAND_H
#define PD_EXPAND_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum pd_zkind { PD_Z_NONE, PD_Z_GZIP, PD_Z_ZSTD, PD_Z_ZIP };

#define PD_EXPAND_RATIO_MIN (1u << 20) /* the ratio is checked past this many expanded bytes */
#define PD_EXPAND_MAX_ENTRIES 10000    /* files in one zip */
#define PD_EXPAND_ZSTD_WINDOW_LOG 24   /* zstd frames needing a bigger window are refused */

struct pd_expand_limits {
    uint64_t max_size;         /* expanded bytes of all entries together */
    uint64_t max_ratio;        /* expanded bytes per compressed byte, past PD_EXPAND_RATIO_MIN */
    uint64_t before;           /* expanded already by the entries before this one */
    const atomic_bool *cancel; /* set by another thread: stop at once (PD_ECANCELED); or NULL */
};

struct pd_expand_entry {
    char *name;        /* gzip, zstd: the file's name without its suffix; zip: the entry's name
                        * as the archive says it (hostile text, never a path) */
    uint64_t pos;      /* zip: its header's place in the archive, counting folders */
    uint64_t declared; /* zip: the size the archive declares, or UINT64_MAX */
};

struct pd_expand {
    int fd; /* the compressed file (the caller's) */
    enum pd_zkind kind;
    uint64_t size; /* its size */
    struct pd_expand_entry *entries;
    size_t n;
    char why[2048];     /* the last failure, naming the file or entry and what to do */
    int64_t why_offset; /* the compressed file's byte it is about, or -1 */
};

/* The kind HEAD's first N bytes say; PD_Z_NONE for anything else. */
enum pd_zkind pd_expand_sniff(const void *head, size_t n);

/* The kind NAME's suffix (.gz, .zst, .zip, any case) says, and the length of NAME without it. */
enum pd_zkind pd_expand_by_name(const char *name, size_t *stem);

/* "gzip", "zstd", "zip" (or "none"). */
const char *pd_expand_kind_name(enum pd_zkind k);

/*
 * Looks at FD (the file NAME): its kind, and for a zip the list of its files, refusing what
 * cannot be sent. 0 (x->kind PD_Z_NONE for a file that is not compressed), or a negative code
 * with x->why. pd_expand_close() in both cases.
 */
int pd_expand_open(struct pd_expand *x, int fd, const char *name);

/*
 * Expands entry I into OUTFD (emptied first), within L: 0 with *SIZE, or a negative code with
 * x->why (PD_ELIMIT: a limit or the free space; PD_EPARSE: corrupt or truncated, with the byte;
 * PD_ECANCELED: L->cancel was set; -errno: reading or writing failed).
 */
int pd_expand_entry(struct pd_expand *x, size_t i, int outfd, const struct pd_expand_limits *l,
                    uint64_t *size);

/*
 * A zip's entries FROM on read through to their ends, writing nothing: libarchive checks each
 * one's data and CRC, and L (L->before: what the entries before FROM expanded to) holds over
 * all of them, but for the free space, which nothing written needs. Deterministic, CPU only.
 * 0 (a gzip or zstd file: at once, its one entry is checked as it is expanded), or a negative
 * code with x->why as pd_expand_entry()'s, naming the entry and the byte.
 */
int pd_expand_check(struct pd_expand *x, size_t from, const struct pd_expand_limits *l);

void pd_expand_close(struct pd_expand *x);

/* A new file for an expansion in DIR, read-write, with no name where the file system allows
 * (O_TMPFILE), else named and removed at once: a crash leaves nothing behind. fd or -errno. */
int pd_expand_tmpfile(const char *dir);

#endif
