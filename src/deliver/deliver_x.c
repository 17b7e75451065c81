/*
 * A compressed file's delivery (pd_deliver.h, pd_expand.h): its entries one after the other,
 * each expanded into a file with no name in a folder patchdrop trusts and split there. Called
 * from deliver.c, so `run` and `send` both have it.
 */
#include "deliver_internal.h"
#include "expand_internal.h"

#include "pd_config.h"
#include "pd_error.h"
#include "pd_format.h"
#include "pd_jobstate.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_MAX_SIZE 10000000000ull /* max_expanded_size's default, 10GB */
#define DEFAULT_RATIO 100               /* max_expansion_ratio's */

/* Everything a compressed file's delivery holds. Safe on a delivery never opened (a zeroed
 * one): descriptors live only inside dl->cx, so none is closed that is not ours. */
static void x_free(struct pd_delivery *dl)
{
    struct pd_delivery_x *cx = dl->cx;

    if (!cx)
        return;
    if (cx->fd >= 0)
        close(cx->fd); /* the expansion has no name: it is gone */
    if (cx->own_fd >= 0)
        close(cx->own_fd);
    pd_expand_close(&cx->x);
    free(cx->size);
    free(cx->format);
    free(cx->first);
    free(cx);
    dl->cx = NULL;
}

void dlx_close(struct pd_delivery *dl)
{
    x_free(dl);
}

/* Words for the failure, with the byte it is about (or -1); RC as the value. */
static int x_why(struct pd_delivery *dl, int rc, int64_t offset, const char *words)
{
    snprintf(dl->why, sizeof(dl->why), "%s", words);
    dl->why_status = 0;
    dl->why_offset = offset;
    return rc;
}

int dlx_open_entry(struct pd_delivery *dl, unsigned k, uint64_t offset, unsigned index)
{
    struct pd_delivery_x *cx = dl->cx;
    uint64_t size;
    char nb[1024], why[sizeof(dl->why)];
    int rc;

    pd_split_destroy(&dl->sp);
    if (cx->fd < 0 && (cx->fd = pd_expand_tmpfile(cx->dir)) < 0) {
        rc = cx->fd;
        snprintf(why, sizeof(why), "cannot make a file to expand the compressed file in %s: %s",
                 cx->dir, pd_strerror(rc));
        return x_why(dl, rc, -1, why);
    }
    cx->lim.before = cx->before;
    for (unsigned e = cx->resume_entry; e < k; e++)
        cx->lim.before += cx->size[e];
    if ((rc = pd_expand_entry(&cx->x, k, cx->fd, &cx->lim, &size)))
        return x_why(dl, rc, cx->x.why_offset, cx->x.why);
    const char *name = xname(cx->x.entries[k].name, nb, sizeof(nb));
    if (size == 0) {
        snprintf(why, sizeof(why),
                 "%s (in the %s file) is empty; Patchworks refuses a blank "
                 "payload, so nothing of it was sent",
                 name, pd_expand_kind_name(cx->x.kind));
        return x_why(dl, PD_EEMPTY, -1, why);
    }
    cx->size[k] = size;
    struct pd_split_opts so = cx->so;
    so.name = cx->x.entries[k].name;
    so.max_body = dl->budget; /* smaller after a 413 */
    rc = pd_split_create(cx->fd, NULL, &so, &dl->sp);
    if (!rc && (offset || index))
        rc = pd_split_seek(dl->sp, offset, index);
    if (rc) {
        snprintf(why, sizeof(why), "%s (in the %s file): %s", name, pd_expand_kind_name(cx->x.kind),
                 dl->sp ? pd_split_error(dl->sp) : pd_strerror(rc));
        pd_split_destroy(&dl->sp);
        return x_why(dl, rc, -1, why);
    }
    cx->format[k] = pd_split_format(dl->sp);
    cx->first[k] = index;
    dl->entry = k;
    return 0;
}

/* The compressed file: from the caller's descriptor, else opened from its path into CX. -1:
 * not to be had (the splitter then says why, as for any file). */
static int x_fd(struct pd_delivery_x *cx, const struct pd_delivery_opts *o)
{
    if (o->fd >= 0)
        return o->fd;
    if (!o->path)
        return -1;
    cx->own_fd = open(o->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    return cx->own_fd;
}

/* The limits from the watch (`send --flow`: their defaults), and room for each entry. */
static int x_setup(struct pd_delivery_x *cx, const struct pd_delivery_opts *o,
                   const struct pd_split_opts *so)
{
    size_t n = cx->x.n;

    cx->so = *so;
    cx->so.mem = NULL;
    cx->so.mem_len = 0;
    cx->dir = o->expand_dir;
    cx->fd = -1;
    cx->lim.max_size = o->watch ? o->watch->max_expanded_size : DEFAULT_MAX_SIZE;
    cx->lim.max_ratio = o->watch ? o->watch->max_expansion_ratio : DEFAULT_RATIO;
    cx->lim.cancel = o->cancel;
    cx->resume_entry = o->resume_entry;
    cx->before = o->expanded_before;
    cx->size = calloc(n, sizeof(*cx->size));
    cx->format = calloc(n, sizeof(*cx->format));
    cx->first = calloc(n, sizeof(*cx->first));
    if (!cx->size || !cx->format || !cx->first)
        return PD_ENOMEM;
    for (size_t i = 0; i < n; i++)
        cx->format[i] = -1;
    return 0;
}

int dlx_open(struct pd_delivery *dl, const struct pd_delivery_opts *o,
             const struct pd_split_opts *so)
{
    char why[sizeof(dl->why)];
    int fd, rc;

    if (o->mem && pd_expand_sniff(o->mem, o->mem_len) == PD_Z_NONE &&
        pd_expand_by_name(o->name, NULL) == PD_Z_NONE)
        return 0; /* read already, and plain */
    if (!(dl->cx = calloc(1, sizeof(*dl->cx))))
        return x_why(dl, PD_ENOMEM, -1, pd_strerror(PD_ENOMEM));
    dl->cx->fd = dl->cx->own_fd = -1;
    if ((fd = x_fd(dl->cx, o)) < 0) {
        x_free(dl);
        return 0;
    }
    rc = pd_expand_open(&dl->cx->x, fd, o->name);
    if (!rc && dl->cx->x.kind == PD_Z_NONE) {
        x_free(dl);
        return 0;
    }
    if (rc)
        rc = x_why(dl, rc, dl->cx->x.why_offset, dl->cx->x.why);
    else if (!o->expand_dir)
        rc = x_why(dl, PD_ECONFIG, -1,
                   "the file is compressed, and there is no folder to "
                   "expand it in");
    else if (o->resume_entry >= dl->cx->x.n) {
        snprintf(why, sizeof(why),
                 "the delivery record continues in entry %u, but the %s file "
                 "has %zu; drop the file again",
                 o->resume_entry + 1, pd_expand_kind_name(dl->cx->x.kind), dl->cx->x.n);
        rc = x_why(dl, PD_ESTATE, -1, why);
    } else if ((rc = x_setup(dl->cx, o, so))) {
        rc = x_why(dl, rc, -1, pd_strerror(rc));
    }
    /* The entry is expanded by the first pd_delivery_next(), on a worker thread: `send` opens
     * deliveries on its loop. */
    dl->cx->offset = o->resume_offset;
    if (rc) {
        x_free(dl);
        return rc;
    }
    return 1;
}

void dlx_name_why(struct pd_delivery *dl)
{
    char nb[1024], why[sizeof(dl->why) + 1100];

    snprintf(why, sizeof(why), "%s (expanded from the %s file): %s",
             xname(dl->cx->x.entries[dl->entry].name, nb, sizeof(nb)),
             pd_expand_kind_name(dl->cx->x.kind), dl->why);
    snprintf(dl->why, sizeof(dl->why), "%.*s", (int)sizeof(dl->why) - 1, why);
}

/*
 * The entry the delivery starts (or resumes) in, expanded whole, and the zip's entries after it
 * read through once, writing nothing, before its first chunk goes: a corrupt or truncated
 * entry 2 (or a limit passed there) fails the zip with nothing of it sent, not after entry 1
 * went. A restart runs this again over the entries still to send: it is deterministic, and
 * costs CPU only, so the delivery record needs no mark that it passed.
 */
int dlx_first_entry(struct pd_delivery *dl)
{
    struct pd_delivery_x *cx = dl->cx;
    unsigned k = cx->resume_entry;
    int rc = dlx_open_entry(dl, k, cx->offset, dl->next_index);

    if (rc || k + 1 >= cx->x.n)
        return rc;
    struct pd_expand_limits l = cx->lim;
    l.before += cx->size[k];
    if (!(rc = pd_expand_check(&cx->x, k + 1, &l)))
        return 0;
    pd_split_destroy(&dl->sp);
    const char *pre = rc == PD_EPARSE && !dl->next_index ? "nothing of the zip was sent: " : "";
    (void)x_why(dl, rc, cx->x.why_offset, pre);
    snprintf(dl->why + strlen(pre), sizeof(dl->why) - strlen(pre), "%s", cx->x.why);
    return rc;
}

int dlx_recut_entry(struct pd_delivery *dl, const struct pd_chunk *refused)
{
    struct pd_delivery_x *cx = dl->cx;
    unsigned e = dl->entry;

    /* `send` cuts ahead: the refused chunk may be of the entry before the one open now. */
    while (e > cx->resume_entry && cx->first[e] > refused->index)
        e--;
    if (e == dl->entry)
        return 0;
    /* Opened as it was first cut, and cut once, so the splitter knows the entry (its first
     * pass) before it cuts the refused chunk again smaller. */
    uint64_t budget = dl->budget;
    struct pd_chunk c;
    dl->budget = cx->so.max_body;
    int rc = dlx_open_entry(dl, e, refused->start, refused->index);
    dl->budget = budget;
    if (rc || (rc = pd_split_next(dl->sp, &c)) >= 0)
        return rc < 0 ? rc : 0;
    return x_why(dl, rc, pd_split_error_offset(dl->sp), pd_split_error(dl->sp));
}

int pd_delivery_note_entries(const struct pd_delivery *dl, struct pd_jobstate *js)
{
    const struct pd_delivery_x *cx = dl->cx;

    if (!cx)
        return 0;
    if (!js->compression && !(js->compression = strdup(pd_expand_kind_name(cx->x.kind))))
        return PD_ENOMEM;
    if (js->nentries < cx->x.n) {
        struct pd_entry_rec *g = realloc(js->entries, cx->x.n * sizeof(*g));
        if (!g)
            return PD_ENOMEM;
        js->entries = g;
        for (size_t i = js->nentries; i < cx->x.n; i++)
            g[i] = (struct pd_entry_rec){.name = strdup(cx->x.entries[i].name)};
        js->nentries = cx->x.n;
    }
    for (size_t i = cx->resume_entry; i < cx->x.n; i++) {
        if (cx->format[i] < 0)
            continue;
        js->entries[i].size = cx->size[i];
        free(js->entries[i].format);
        js->entries[i].format = strdup(pd_format_name(cx->format[i]));
    }
    return 0;
}
