/*
 * A zip's entries (pd_expand.h) with libarchive: the list of its files, refusing links,
 * encrypted entries and archives inside it before anything is expanded, and one entry expanded
 * into a sink. libarchive reads through callbacks over pread(), so the caller's descriptor keeps
 * its offset and a fault can name the byte reached.
 */
#include "expand_internal.h"
#include "pd_error.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EOCD_SEARCH (65535 + 22) /* the end record and the longest comment after it */
#define ZIP_DIR_MAX (16 << 20)   /* the central directory libarchive holds in memory */

struct zsrc {
    struct pd_expand *x;
    int64_t pos;
    unsigned char buf[XBUF];
};

static la_ssize_t z_read(struct archive *a, void *cd, const void **out)
{
    struct zsrc *z = cd;
    ssize_t n;
    do
        n = pread(z->x->fd, z->buf, sizeof(z->buf), (off_t)z->pos);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        archive_set_error(a, errno, "read: %s", strerror(errno));
        return -1;
    }
    z->pos += n;
    *out = z->buf;
    return n;
}

static la_int64_t z_seek(struct archive *a, void *cd, la_int64_t off, int whence)
{
    struct zsrc *z = cd;
    int64_t to = whence == SEEK_SET   ? off
                 : whence == SEEK_CUR ? z->pos + off
                                      : (int64_t)z->x->size + off;
    (void)a;
    if (to < 0)
        return ARCHIVE_FATAL;
    z->pos = to;
    return to;
}

static la_int64_t z_skip(struct archive *a, void *cd, la_int64_t n)
{
    struct zsrc *z = cd;
    (void)a;
    z->pos += n;
    return n;
}

/* libarchive's words for its last error in BUF, without the line end some of them carry. */
static const char *z_words(struct archive *a, char *buf, size_t len)
{
    const char *w = a ? archive_error_string(a) : "out of memory";
    size_t n = (size_t)snprintf(buf, len, "%s", w ? w : "unknown");
    for (n = n < len ? n : len - 1; n && (buf[n - 1] == '\n' || buf[n - 1] == ' '); n--)
        buf[n - 1] = '\0';
    return buf;
}

/* A reader over the file at its start, or NULL with x->why. */
static struct archive *z_open(struct pd_expand *x, struct zsrc *z)
{
    struct archive *a = archive_read_new();
    char wb[512];

    z->x = x;
    z->pos = 0;
    if (!a || archive_read_support_format_zip(a) != ARCHIVE_OK ||
        archive_read_set_read_callback(a, z_read) != ARCHIVE_OK ||
        archive_read_set_seek_callback(a, z_seek) != ARCHIVE_OK ||
        archive_read_set_skip_callback(a, z_skip) != ARCHIVE_OK ||
        archive_read_set_callback_data(a, z) != ARCHIVE_OK || archive_read_open1(a)) {
        xfail(x, PD_EPARSE, z->pos,
              "the zip file cannot be read (libarchive: %s); nothing was sent; drop an intact "
              "zip again",
              z_words(a, wb, sizeof(wb)));
        if (a)
            archive_read_free(a);
        return NULL;
    }
    return a;
}

/* The next header (NULL at the end), or an error with x->why (*RC). */
static struct archive_entry *z_next(struct pd_expand *x, struct archive *a, struct zsrc *z, int *rc)
{
    struct archive_entry *e;
    char wb[512];
    int r = archive_read_next_header(a, &e);

    *rc = 0;
    if (r == ARCHIVE_EOF)
        return NULL;
    if (r == ARCHIVE_OK || r == ARCHIVE_WARN)
        return e;
    *rc = xfail(x, PD_EPARSE, z->pos,
                "the zip file is corrupt or truncated near byte %" PRId64 " (libarchive: %s); "
                "nothing was sent; drop an intact zip again",
                z->pos, z_words(a, wb, sizeof(wb)));
    return NULL;
}

/* Why entry E cannot be sent (NULL: it can), in BUF when the words are libarchive's. */
static const char *z_refusal(struct archive *a, struct archive_entry *e, char *buf, size_t len)
{
    unsigned char head[4];

    if (archive_entry_filetype(e) == AE_IFLNK || archive_entry_symlink(e))
        return "is a symbolic link: links are never followed";
    if (archive_entry_hardlink(e))
        return "is a link to another entry: links are never followed";
    if (archive_entry_filetype(e) != AE_IFREG)
        return "is not a regular file";
    if (archive_entry_is_encrypted(e))
        return "is encrypted: patchdrop has no password; zip it without encryption";
    if (pd_expand_by_name(archive_entry_pathname(e), NULL) != PD_Z_NONE)
        return "is itself compressed: archives inside archives are not expanded";
    /* Its first bytes, so an entry that cannot be read at all stops the zip before any of it
     * is sent, not after the entries before it went. */
    la_ssize_t n = archive_read_data(a, head, sizeof(head));
    if (n < 0) {
        char wb[512];
        snprintf(buf, len, "cannot be read (libarchive: %s)", z_words(a, wb, sizeof(wb)));
        return buf;
    }
    if (n == 0)
        return "is empty: Patchworks refuses a blank payload; leave it out of the zip";
    if (pd_expand_sniff(head, (size_t)n) != PD_Z_NONE)
        return "is itself compressed (by its first bytes): archives inside archives are not "
               "expanded";
    return NULL;
}

static uint64_t le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    while (n--)
        v = v << 8 | p[n];
    return v;
}

/*
 * The zip's directory, as its end record declares it, held against the limits before libarchive
 * reads it into memory (a hostile directory of a million entries would cost hundreds of MiB):
 * 0, or a refusal. An end record not found is left to libarchive to report.
 */
static int z_directory(struct pd_expand *x)
{
    unsigned char *t = malloc(EOCD_SEARCH);
    uint64_t n = x->size < EOCD_SEARCH ? x->size : EOCD_SEARCH, base = x->size - n;
    uint64_t entries = 0, dir = 0;
    int rc = 0;

    if (!t)
        return xfail(x, PD_ENOMEM, -1, "%s", pd_strerror(PD_ENOMEM));
    if (pread(x->fd, t, n, (off_t)base) != (ssize_t)n)
        n = 0;
    for (uint64_t p = n >= 22 ? n - 22 : 0; n >= 22; p--) {
        if (!memcmp(t + p, "PK\5\6", 4)) {
            entries = le(t + p + 10, 2);
            dir = le(t + p + 12, 4);
            unsigned char z64[56];
            if ((entries == 0xffff || dir == 0xffffffff) && p >= 20 &&
                !memcmp(t + p - 20, "PK\6\7", 4) &&
                pread(x->fd, z64, sizeof(z64), (off_t)le(t + p - 12, 8)) == sizeof(z64) &&
                !memcmp(z64, "PK\6\6", 4)) {
                entries = le(z64 + 32, 8);
                dir = le(z64 + 40, 8);
            }
            break;
        }
        if (p == 0)
            break;
    }
    free(t);
    if (entries > PD_EXPAND_MAX_ENTRIES || dir > ZIP_DIR_MAX)
        rc = xfail(x, PD_ELIMIT, -1,
                   "the zip file declares %" PRIu64 " entries in a directory of %" PRIu64
                   " bytes; patchdrop takes at most %d entries and a %d-byte directory in one "
                   "zip, so nothing was sent; send the files in several zips",
                   entries, dir, PD_EXPAND_MAX_ENTRIES, ZIP_DIR_MAX);
    return rc;
}

int xzip_list(struct pd_expand *x)
{
    int rc = z_directory(x);
    if (rc)
        return rc;
    struct zsrc *z = malloc(sizeof(*z));
    struct archive *a = z ? z_open(x, z) : NULL;
    struct archive_entry *e;
    size_t cap = 0;
    char nb[1024], lb[512];

    if (!a) {
        free(z);
        return z ? PD_EPARSE : xfail(x, PD_ENOMEM, -1, "%s", pd_strerror(PD_ENOMEM));
    }
    for (uint64_t pos = 0; (e = z_next(x, a, z, &rc)); pos++) {
        const char *name = archive_entry_pathname(e);
        if (archive_entry_filetype(e) == AE_IFDIR)
            continue;
        const char *no = z_refusal(a, e, lb, sizeof(lb));
        if (no || x->n >= PD_EXPAND_MAX_ENTRIES) {
            rc = xfail(x, no ? PD_EPARSE : PD_ELIMIT, -1,
                       "zip entry %" PRIu64 " (%s) %s; nothing of the zip was sent", pos + 1,
                       xname(name ? name : "(no name)", nb, sizeof(nb)),
                       no ? no : "is past the 10000 files one zip may hold");
            break;
        }
        if (x->n == cap) {
            cap = cap ? 2 * cap : 8;
            struct pd_expand_entry *g = realloc(x->entries, cap * sizeof(*g));
            if (!g) {
                rc = xfail(x, PD_ENOMEM, -1, "%s", pd_strerror(PD_ENOMEM));
                break;
            }
            x->entries = g;
        }
        struct pd_expand_entry *en = &x->entries[x->n];
        en->name = strdup(name ? name : "(no name)");
        en->pos = pos;
        en->declared = archive_entry_size_is_set(e) ? (uint64_t)archive_entry_size(e) : UINT64_MAX;
        if (!en->name) {
            rc = xfail(x, PD_ENOMEM, -1, "%s", pd_strerror(PD_ENOMEM));
            break;
        }
        x->n++;
    }
    if (!rc && x->n == 0)
        rc = xfail(x, PD_EPARSE, -1, "the zip file holds no files; nothing was sent");
    archive_read_free(a);
    free(z);
    return rc;
}

/* Copies the current entry's data (entry POS + 1 of the zip, folders counted) into S. */
static int z_copy(struct pd_expand *x, struct archive *a, struct zsrc *z, struct xsink *s,
                  uint64_t pos, unsigned char *buf)
{
    char nb[1024], wb[512];
    for (;;) {
        la_ssize_t n = archive_read_data(a, buf, XBUF);
        if (n == 0)
            return 0;
        if (n < 0)
            return xfail(x, PD_EPARSE, z->pos,
                         "zip entry %" PRIu64 " (%s) is corrupt or truncated near byte %" PRId64
                         " of the zip (libarchive: %s); drop an intact zip again",
                         pos + 1, xname(s->entry, nb, sizeof(nb)), z->pos,
                         z_words(a, wb, sizeof(wb)));
        int rc = xsink_write(s, buf, (size_t)n);
        if (rc)
            return rc;
    }
}

/* A reader over the zip and a buffer, or an error with x->why (*RC). */
static struct archive *z_start(struct pd_expand *x, struct zsrc **z, unsigned char **buf, int *rc)
{
    struct archive *a = NULL;

    *z = malloc(sizeof(**z));
    *buf = malloc(XBUF);
    if (*z && *buf && (a = z_open(x, *z)))
        return a;
    *rc = *z && *buf ? PD_EPARSE : xfail(x, PD_ENOMEM, -1, "%s", pd_strerror(PD_ENOMEM));
    free(*z);
    free(*buf);
    return NULL;
}

static void z_end(struct archive *a, struct zsrc *z, unsigned char *buf)
{
    archive_read_free(a);
    free(z);
    free(buf);
}

/* Header E (at POS) is entry I of the list: else the zip changed since it was listed. */
static int z_same(struct pd_expand *x, struct zsrc *z, struct archive_entry *e, uint64_t pos,
                  size_t i)
{
    const char *name = e ? archive_entry_pathname(e) : NULL;

    if (e && pos == x->entries[i].pos && !strcmp(name ? name : "(no name)", x->entries[i].name))
        return 0;
    return xfail(x, PD_EPARSE, z->pos, "the zip file changed while it was read");
}

int xzip_entry(struct pd_expand *x, size_t i, struct xsink *s)
{
    struct zsrc *z;
    unsigned char *buf;
    struct archive_entry *e = NULL;
    int rc = 0;
    uint64_t pos = 0;
    struct archive *a = z_start(x, &z, &buf, &rc);

    if (!a)
        return rc;
    for (; (e = z_next(x, a, z, &rc)) && pos < x->entries[i].pos; pos++)
        ;
    if (!rc)
        rc = z_same(x, z, e, pos, i);
    if (!rc)
        rc = z_copy(x, a, z, s, pos, buf);
    z_end(a, z, buf);
    return rc;
}

/*
 * Entries FROM on, each read through to its end into S (a check pass: nothing written), so
 * libarchive checks their data and CRCs and S the limits over all of them. Entries before FROM
 * are skipped unread: the seekable reader steps over their data.
 */
int xzip_check(struct pd_expand *x, size_t from, struct xsink *s)
{
    struct zsrc *z;
    unsigned char *buf;
    struct archive_entry *e;
    int rc = 0;
    size_t i = from;
    struct archive *a = z_start(x, &z, &buf, &rc);

    if (!a)
        return rc;
    for (uint64_t pos = 0; i < x->n && (e = z_next(x, a, z, &rc)); pos++) {
        if (pos < x->entries[i].pos)
            continue; /* an entry before FROM, or a folder */
        if ((rc = z_same(x, z, e, pos, i)))
            break;
        s->entry = x->entries[i].name;
        if ((rc = z_copy(x, a, z, s, pos, buf)))
            break;
        i++;
    }
    if (!rc && i < x->n)
        rc = z_same(x, z, NULL, 0, i);
    z_end(a, z, buf);
    return rc;
}
