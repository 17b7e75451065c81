/*
 * The record index: pass 1 keeps a record end about every idx_grain escaped bytes (with the
 * escaped length of all the text before it), so pass 2 escapes the records that surely fit
 * straight from the file instead of scanning them a second time; it scans only from the last
 * such record end on, to find the exact cut. Pass 1 has checked those bytes; they are used
 * only while the file is the one pass 1 read (size, mtime and ctime unchanged after each
 * read, and the escaped length as counted), else pass 2 scans everything as before.
 *
 * UTF-8 files only: there decoded offsets are file offsets. Memory is bounded: when the index
 * is full, every second entry goes and the grain doubles.
 */
#include "pd_encode.h"
#include "pd_error.h"
#include "split_internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define IDX_MAX 16384          /* entries: 384 KiB at most */
#define IDX_MIN_GRAIN 16384    /* escaped bytes between entries, at least */
#define IDX_BULK (256 * 1024)  /* read size of a copy */

#ifdef PD_SPLIT_IDX_TUNABLE
/* The fuzz targets set these so that small inputs use the index (and thin it), and compare
 * the chunks with those cut without it. */
uint64_t pd_split_idx_min_grain = IDX_MIN_GRAIN;
size_t pd_split_idx_max = IDX_MAX;
#define MIN_GRAIN pd_split_idx_min_grain
#define MAX_ENTRIES \
    (pd_split_idx_max < 2 ? 2 : pd_split_idx_max < IDX_MAX ? pd_split_idx_max : IDX_MAX)
#else
#define MIN_GRAIN IDX_MIN_GRAIN
#define MAX_ENTRIES IDX_MAX
#endif

/* The file as pass 1 read it; 0 when fstat fails. */
static int file_id(const struct pd_splitter *sp, int64_t id[5])
{
    struct stat st;
    if (fstat(sp->dec.fd, &st) != 0)
        return 0;
    id[0] = (int64_t)st.st_size;
    id[1] = (int64_t)st.st_mtim.tv_sec, id[2] = st.st_mtim.tv_nsec;
    id[3] = (int64_t)st.st_ctim.tv_sec, id[4] = st.st_ctim.tv_nsec;
    return 1;
}

static int same_file(const struct pd_splitter *sp)
{
    int64_t id[5];
    if (sp->dec.mem)
        return 1;
    return file_id(sp, id) && id[0] == sp->id_size && id[1] == sp->id_mtime_s &&
           id[2] == sp->id_mtime_ns && id[3] == sp->id_ctime_s && id[4] == sp->id_ctime_ns;
}

void idx_start(struct pd_splitter *sp)
{
    int64_t id[5] = {0};
    sp->nidx = 0;
    sp->idx_last = 0;
    sp->idx_grain = sp->max_body / 32 > MIN_GRAIN ? sp->max_body / 32 : MIN_GRAIN;
    sp->area_cum = sp->seek_cum = sp->next_cum = 0;
    sp->next_cum_known = 0;
    /* An enveloped format's records are not copied as the file has them. */
    sp->idx_on = sp->dec.cd == (iconv_t)-1 && !sp->sc.ops->env_open;
    if (sp->idx_on && !sp->dec.mem) {
        sp->idx_on = file_id(sp, id);
        sp->id_size = id[0], sp->id_mtime_s = id[1], sp->id_mtime_ns = id[2];
        sp->id_ctime_s = id[3], sp->id_ctime_ns = id[4];
    }
}

int idx_note(struct pd_splitter *sp, uint64_t off, uint64_t cum, uint64_t rec)
{
    if (!sp->idx_on || cum - sp->idx_last < sp->idx_grain)
        return 0;
    if (sp->nidx >= MAX_ENTRIES) {
        for (size_t k = 0; k < sp->nidx / 2; k++)
            sp->idx[k] = sp->idx[2 * k + 1];
        sp->nidx /= 2;
        sp->idx_last = sp->idx[sp->nidx - 1].cum;
        sp->idx_grain *= 2;
        if (cum - sp->idx_last < sp->idx_grain)
            return 0;
    }
    /* At its largest from the start: pages that are never written cost nothing. */
    if (!sp->idx && !(sp->idx = malloc(IDX_MAX * sizeof(*sp->idx))))
        return PD_ENOMEM;
    sp->idx[sp->nidx++] = (struct split_idx){off, cum, rec};
    sp->idx_last = cum;
    return 0;
}

/* The first entry whose offset (BY_CUM: escaped length before it) is at least V, or nidx. */
static size_t lower(const struct pd_splitter *sp, int by_cum, uint64_t v)
{
    size_t lo = 0, hi = sp->nidx;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if ((by_cum ? sp->idx[mid].cum : sp->idx[mid].off) < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

const struct split_idx *idx_at(const struct pd_splitter *sp, uint64_t off)
{
    size_t k = lower(sp, 0, off);
    return k < sp->nidx && sp->idx[k].off == off ? &sp->idx[k] : NULL;
}

const struct split_idx *idx_reach(const struct pd_splitter *sp, uint64_t off, uint64_t cum,
                                  uint64_t room)
{
    size_t k = lower(sp, 1, cum + room + 1); /* the first that does not fit */
    return k > 0 && sp->idx[k - 1].off > off ? &sp->idx[k - 1] : NULL;
}

/* The file changed since pass 1 read it: back to scanning, the body as it was. */
static int drop_index(struct pd_splitter *sp, size_t len0)
{
    sp->body_len = len0;
    sp->idx_on = 0;
    return 1;
}

int idx_copy(struct pd_splitter *sp, uint64_t from, uint64_t cum, const struct split_idx *e)
{
    const struct split_dec *d = &sp->dec;
    size_t len0 = sp->body_len;
    uint64_t want = e->cum - cum;
    if (e->cum < cum || want > SIZE_MAX - len0)
        return drop_index(sp, len0);
    if (split_body_reserve(sp, len0 + (size_t)want) < 0)
        return PD_ENOMEM;
    if (!d->mem && !sp->bulk && !(sp->bulk = malloc(IDX_BULK)))
        return PD_ENOMEM;
    for (uint64_t off = from; off < e->off;) {
        size_t n = e->off - off < IDX_BULK ? (size_t)(e->off - off) : IDX_BULK;
        const unsigned char *src = sp->bulk;
        if (d->mem) {
            if (off + n > d->mem_len)
                return drop_index(sp, len0);
            src = d->mem + off;
        } else {
            long r = dec_read(d, sp->bulk, n, off);
            if (r < 0)
                return (int)r;
            if ((size_t)r < n)
                return drop_index(sp, len0);
        }
        /* Room for the worst case, or the exact length: a changed file never overruns. */
        size_t room = sp->body_cap - sp->body_len;
        if (n > room / 6 && pd_encode_escaped_len(src, n) > room)
            return drop_index(sp, len0);
        sp->body_len += pd_encode_escape(sp->body + sp->body_len, src, n);
        off += n;
    }
    if (sp->body_len - len0 != want || !same_file(sp))
        return drop_index(sp, len0);
    return 0;
}

void idx_free(struct pd_splitter *sp)
{
    free(sp->idx);
    free(sp->bulk);
    sp->idx = NULL;
    sp->bulk = NULL;
    sp->nidx = 0;
}
