/*
 * Compressed files expanded into a file of patchdrop's own (pd_expand.h): the kind, the limits
 * held as bytes come, gzip with zlib and zstd with libzstd. The zip side is expand_zip.c.
 *
 * zlib and libzstd are used directly rather than through libarchive: zstd's window is bounded
 * here (libarchive would let a frame ask for 128 MiB), and both say the byte a fault is at.
 */
#include "pd_expand.h"

#include "expand_internal.h"
#include "pd_error.h"
#include "pd_log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#define SPACE_EVERY (16u << 20)   /* the free space is looked at every 16 MiB written */
#define SPACE_RESERVE (64u << 20) /* and at least this (or 1% of the file system) stays free */

enum pd_zkind pd_expand_sniff(const void *head, size_t n)
{
    const unsigned char *h = head;
    if (n >= 2 && h[0] == 0x1f && h[1] == 0x8b)
        return PD_Z_GZIP;
    if (n >= 4 && h[0] == 0x28 && h[1] == 0xb5 && h[2] == 0x2f && h[3] == 0xfd)
        return PD_Z_ZSTD;
    if (n >= 4 && h[0] == 'P' && h[1] == 'K' && h[2] == 3 && h[3] == 4)
        return PD_Z_ZIP;
    return PD_Z_NONE;
}

enum pd_zkind pd_expand_by_name(const char *name, size_t *stem)
{
    static const struct {
        const char *ext;
        enum pd_zkind kind;
    } exts[] = {{".gz", PD_Z_GZIP}, {".zst", PD_Z_ZSTD}, {".zip", PD_Z_ZIP}};
    size_t n = name ? strlen(name) : 0;

    if (stem)
        *stem = n;
    for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
        size_t e = strlen(exts[i].ext);
        if (n > e && strcasecmp(name + n - e, exts[i].ext) == 0) {
            if (stem)
                *stem = n - e;
            return exts[i].kind;
        }
    }
    return PD_Z_NONE;
}

const char *pd_expand_kind_name(enum pd_zkind k)
{
    static const char *const names[] = {"none", "gzip", "zstd", "zip"};
    return (unsigned)k < 4 ? names[k] : "?";
}

int xfail(struct pd_expand *x, int rc, int64_t offset, const char *fmt, ...)
{
    va_list ap;

    x->why_offset = offset;
    va_start(ap, fmt);
    vsnprintf(x->why, sizeof(x->why), fmt, ap);
    va_end(ap);
    return rc;
}

const char *xname(const char *name, char *buf, size_t len)
{
    return pd_log_escape(name ? name : "", buf, len);
}

/* ---- the sink: limits and free space ------------------------------------------------------ */

/* Refuses N more bytes when the folder's file system would keep less than its reserve. */
static int space_check(struct xsink *s, size_t n)
{
    struct statvfs sv;

    if (s->written < s->space_at)
        return 0;
    s->space_at = s->written + SPACE_EVERY;
    if (fstatvfs(s->fd, &sv))
        return 0; /* unknown: the write itself says ENOSPC if it comes to that */
    uint64_t avail = (uint64_t)sv.f_bavail * sv.f_frsize;
    uint64_t reserve = (uint64_t)sv.f_blocks * sv.f_frsize / 100;
    if (reserve < SPACE_RESERVE)
        reserve = SPACE_RESERVE;
    if (avail >= reserve + n + SPACE_EVERY)
        return 0;
    char nb[1024];
    return xfail(s->x, PD_ELIMIT, -1,
                 "expanding %s stopped after %" PRIu64 " bytes: the state folder's file system "
                 "has only %" PRIu64 " bytes free, and patchdrop keeps at least %" PRIu64
                 " free rather than fill it; free some space and drop the file again",
                 xname(s->entry, nb, sizeof(nb)), s->lim->before + s->written, avail, reserve);
}

int xsink_write(struct xsink *s, const void *buf, size_t n)
{
    const struct pd_expand_limits *l = s->lim;
    uint64_t total = l->before + s->written + n;
    char nb[1024];

    if (l->cancel && atomic_load(l->cancel))
        return xfail(s->x, PD_ECANCELED, -1, "expanding %s was stopped: shutting down",
                     xname(s->entry, nb, sizeof(nb)));
    if (total > l->max_size)
        return xfail(s->x, PD_ELIMIT, -1,
                     "the compressed file expands to more than max_expanded_size (%" PRIu64
                     " bytes): stopped in %s after %" PRIu64 " bytes, and nothing was sent of "
                     "it; if the file is genuine, raise max_expanded_size for this watch",
                     l->max_size, xname(s->entry, nb, sizeof(nb)), l->before + s->written);
    if (l->max_ratio && total > PD_EXPAND_RATIO_MIN && total / l->max_ratio > s->x->size)
        return xfail(s->x, PD_ELIMIT, -1,
                     "the compressed file (%" PRIu64 " bytes) expands to more than "
                     "max_expansion_ratio (%" PRIu64 ") times its size, as a zip bomb does: "
                     "stopped in %s after %" PRIu64 " bytes; if the file is genuine, raise "
                     "max_expansion_ratio (or max_expanded_size) for this watch",
                     s->x->size, l->max_ratio, xname(s->entry, nb, sizeof(nb)),
                     l->before + s->written);
    if (s->fd < 0) { /* a check pass writes nothing, so needs no room */
        s->written += n;
        return 0;
    }
    int rc = space_check(s, n);
    if (rc)
        return rc;
    const char *p = buf;
    while (n) {
        ssize_t w = write(s->fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return xfail(s->x, -errno, -1, "writing the expansion of %s: %s",
                         xname(s->entry, nb, sizeof(nb)), strerror(errno));
        p += w;
        n -= (size_t)w;
        s->written += (uint64_t)w;
    }
    return 0;
}

/* ---- gzip --------------------------------------------------------------------------------- */

/* Reads the next stretch at *OFF into BUF: bytes read, or a negative code with x->why. */
static ssize_t xread(struct pd_expand *x, void *buf, size_t len, uint64_t *off)
{
    ssize_t n;
    do
        n = pread(x->fd, buf, len, (off_t)*off);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return xfail(x, -errno, (int64_t)*off,
                     "reading the compressed file at byte %" PRIu64 ": %s", *off, strerror(errno));
    *off += (uint64_t)n;
    return n;
}

/* One inflate step's outcome: 1 go on, 0 a member ended, or a negative code with x->why. */
static int gz_step(struct pd_expand *x, z_stream *z, struct xsink *s, unsigned char *out,
                   uint64_t at)
{
    z->next_out = out;
    z->avail_out = XBUF;
    int zr = inflate(z, Z_NO_FLUSH);
    int rc = xsink_write(s, out, XBUF - z->avail_out);
    if (rc)
        return rc;
    if (zr == Z_STREAM_END)
        return 0;
    if (zr == Z_OK || (zr == Z_BUF_ERROR && z->avail_in == 0))
        return 1;
    return xfail(x, PD_EPARSE, (int64_t)at,
                 "the gzip data is corrupt at byte %" PRIu64 " of the compressed file (zlib: "
                 "%s); nothing of it was sent; drop an intact file again",
                 at, z->msg ? z->msg : zError(zr));
}

static int gz_expand(struct pd_expand *x, struct xsink *s, unsigned char *in, unsigned char *out)
{
    z_stream z = {0};
    uint64_t off = 0;
    bool member = true; /* inside a member (or before the first) */
    int rc = 0;

    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
        return xfail(x, PD_ENOMEM, -1, "%s", pd_strerror(PD_ENOMEM));
    for (;;) {
        if (z.avail_in == 0) {
            ssize_t n = xread(x, in, XBUF, &off);
            if (n < 0 || (n == 0 && !member)) {
                rc = n < 0 ? (int)n : 0;
                break;
            }
            if (n == 0) {
                rc = xfail(x, PD_EPARSE, (int64_t)off,
                           "the gzip file is truncated: it ends at byte %" PRIu64 " inside a "
                           "member; nothing of it was sent; drop the whole file again",
                           off);
                break;
            }
            z.next_in = in;
            z.avail_in = (uInt)n;
        }
        uint64_t at = off - z.avail_in;
        if (!member) { /* another member follows, or bytes that are not gzip */
            if (z.next_in[0] != 0x1f) {
                rc = xfail(x, PD_EPARSE, (int64_t)at,
                           "the gzip file has %" PRIu64 " bytes after its last member, from "
                           "byte %" PRIu64 ", that are not gzip; nothing of it was sent",
                           x->size - at, at);
                break;
            }
            inflateReset(&z);
            member = true;
        }
        rc = gz_step(x, &z, s, out, at);
        if (rc < 0)
            break;
        member = rc == 1;
    }
    inflateEnd(&z);
    return rc < 0 ? rc : 0;
}

/* ---- zstd --------------------------------------------------------------------------------- */

static int zst_fail(struct pd_expand *x, size_t zr, uint64_t at)
{
    const char *hint = ZSTD_getErrorCode(zr) == ZSTD_error_frameParameter_windowTooLarge
                           ? "; it was compressed with a window over 16 MiB (zstd --long or "
                             "--ultra): compress it without those"
                           : "";
    return xfail(x, PD_EPARSE, (int64_t)at,
                 "the zstd data is corrupt at byte %" PRIu64 " of the compressed file (zstd: "
                 "%s)%s; nothing of it was sent",
                 at, ZSTD_getErrorName(zr), hint);
}

static int zst_expand(struct pd_expand *x, struct xsink *s, unsigned char *in, unsigned char *out)
{
    ZSTD_DCtx *dc = ZSTD_createDCtx();
    uint64_t off = 0;
    size_t left = 0; /* not 0: a frame is unfinished */
    int rc = 0;

    if (!dc)
        return xfail(x, PD_ENOMEM, -1, "%s", pd_strerror(PD_ENOMEM));
    ZSTD_DCtx_setParameter(dc, ZSTD_d_windowLogMax, PD_EXPAND_ZSTD_WINDOW_LOG);
    for (;;) {
        ssize_t n = xread(x, in, XBUF, &off);
        if (n <= 0) {
            rc = (int)n;
            if (n == 0 && left)
                rc = xfail(x, PD_EPARSE, (int64_t)off,
                           "the zstd file is truncated: it ends at byte %" PRIu64 " inside a "
                           "frame; nothing of it was sent; drop the whole file again",
                           off);
            break;
        }
        ZSTD_inBuffer ib = {in, (size_t)n, 0};
        bool full = false;
        while (!rc && (ib.pos < ib.size || full)) {
            ZSTD_outBuffer ob = {out, XBUF, 0};
            left = ZSTD_decompressStream(dc, &ob, &ib);
            if (ZSTD_isError(left))
                rc = zst_fail(x, left, off - (uint64_t)(ib.size - ib.pos));
            else
                rc = xsink_write(s, out, ob.pos);
            full = ob.pos == ob.size;
        }
        if (rc)
            break;
    }
    ZSTD_freeDCtx(dc);
    return rc;
}

/* ---- the file ----------------------------------------------------------------------------- */

/* The single entry of a gzip or zstd file: NAME without its suffix. */
static int one_entry(struct pd_expand *x, const char *name)
{
    size_t stem;
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    pd_expand_by_name(base, &stem);
    x->entries = calloc(1, sizeof(*x->entries));
    if (!x->entries || !(x->entries[0].name = strndup(base, stem)))
        return xfail(x, PD_ENOMEM, -1, "%s", pd_strerror(PD_ENOMEM));
    x->entries[0].declared = UINT64_MAX;
    x->n = 1;
    return 0;
}

int pd_expand_open(struct pd_expand *x, int fd, const char *name)
{
    unsigned char head[4];
    struct stat st;
    char nb[1024];
    uint64_t off = 0;

    memset(x, 0, sizeof(*x));
    x->fd = fd;
    x->why_offset = -1;
    if (fstat(fd, &st))
        return xfail(x, -errno, -1, "%s", strerror(errno));
    x->size = (uint64_t)st.st_size;
    ssize_t n = xread(x, head, sizeof(head), &off);
    if (n < 0)
        return (int)n;
    x->kind = pd_expand_sniff(head, (size_t)n);
    enum pd_zkind said = pd_expand_by_name(name, NULL);
    if (said != PD_Z_NONE && said != x->kind)
        return xfail(x, PD_EPARSE, 0,
                     "the name %s says %s, but the file is %s%s (its first bytes); nothing was "
                     "sent; drop the real %s file, or rename it",
                     xname(name, nb, sizeof(nb)), pd_expand_kind_name(said),
                     x->kind == PD_Z_NONE ? "not compressed" : pd_expand_kind_name(x->kind),
                     x->kind == PD_Z_NONE ? "" : " data", pd_expand_kind_name(said));
    /* Only a .zip is a zip to expand: .xlsx, .docx, .jar and .odt files are zips too, and are
     * no folder of records; they stay what they were (refused as binary by the splitter). */
    if (x->kind == PD_Z_ZIP && said != PD_Z_ZIP)
        x->kind = PD_Z_NONE;
    if (x->kind == PD_Z_NONE)
        return 0;
    return x->kind == PD_Z_ZIP ? xzip_list(x) : one_entry(x, name);
}

int pd_expand_entry(struct pd_expand *x, size_t i, int outfd, const struct pd_expand_limits *l,
                    uint64_t *size)
{
    struct xsink s = {.x = x, .fd = outfd, .lim = l, .entry = x->entries[i].name};
    unsigned char *in = malloc(XBUF), *out = malloc(XBUF);
    int rc;

    x->why[0] = '\0';
    x->why_offset = -1;
    if (!in || !out)
        rc = xfail(x, PD_ENOMEM, -1, "%s", pd_strerror(PD_ENOMEM));
    else if (ftruncate(outfd, 0) || lseek(outfd, 0, SEEK_SET) < 0)
        rc = xfail(x, -errno, -1, "emptying the expansion: %s", strerror(errno));
    else if (x->kind == PD_Z_GZIP)
        rc = gz_expand(x, &s, in, out);
    else if (x->kind == PD_Z_ZSTD)
        rc = zst_expand(x, &s, in, out);
    else
        rc = xzip_entry(x, i, &s);
    free(in);
    free(out);
    if (rc) /* nothing past a limit stays on disk */
        (void)!ftruncate(outfd, 0);
    *size = s.written;
    return rc;
}

int pd_expand_check(struct pd_expand *x, size_t from, const struct pd_expand_limits *l)
{
    struct xsink s = {.x = x, .fd = -1, .lim = l};

    x->why[0] = '\0';
    x->why_offset = -1;
    return x->kind == PD_Z_ZIP && from < x->n ? xzip_check(x, from, &s) : 0;
}

void pd_expand_close(struct pd_expand *x)
{
    for (size_t i = 0; i < x->n; i++)
        free(x->entries[i].name);
    free(x->entries);
    x->entries = NULL;
    x->n = 0;
}

int pd_expand_tmpfile(const char *dir)
{
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
        return fd >= 0 ? fd : -errno;
    char *path;
    if (asprintf(&path, "%s/.pd-expand-XXXXXX", dir) < 0)
        return -ENOMEM;
    fd = mkostemp(path, O_CLOEXEC);
    int err = errno;
    if (fd >= 0)
        unlink(path);
    free(path);
    return fd >= 0 ? fd : -err;
}
