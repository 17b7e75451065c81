/*
 * One file's way to Patchworks, chunk by chunk: the delivery engine that `run` (src/daemon/) and
 * `send` (src/cli/cli_send.c) share, so both cut, judge answers and re-cut after a 413 the same
 * way. It opens the record-aware splitter (pd_split.h) with a watch's settings, cuts the next
 * chunk, says what the client's final answer means for the file (pd_delivery_verdict: the one
 * place that switches on it), and applies the one 413 rule (pd_bodylimit.h): learn the server's
 * limit, cut the refused chunk again between what it took and what it refused, refuse the file
 * only when its largest record cannot pass. Callers keep their own bookkeeping: the daemon its
 * durable record and folders, `send` its lines on stdout.
 *
 * pd_delivery_next() reads the file: run it on a worker thread, never while another call on the
 * same delivery runs. The others are quick and run on the loop thread.
 *
 * A compressed file (.gz, .zst, .zip: pd_expand.h) is expanded, one inner file (entry) at a
 * time, into a file with no name in opts.expand_dir, and the entry is split like a file of its
 * own, its name choosing the format under `split = auto`. Chunks are numbered on across the
 * entries (dl->entry says which one the last chunk cut is of); only the last entry's last chunk
 * is `last`. Before the first chunk, a zip's entries after the first are read through once
 * (pd_expand_check), so a corrupt one fails the zip with nothing of it sent. Expanding is
 * deterministic, so a restart expands its entry again, checks those after it, and resumes at
 * the chunk its record says.
 */
#ifndef PD_DELIVER_H
#define PD_DELIVER_H

#include "pd_expand.h"
#include "pd_split.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pd_bodylimit;
struct pd_client_result;
struct pd_watch;

struct pd_delivery_opts {
    int fd;                       /* the file, or -1: open PATH */
    const char *path;             /* with fd -1 */
    const char *name;             /* the file's name in messages */
    const struct pd_watch *watch; /* its settings (split, json_array...); NULL: auto */
    uint64_t max_body;            /* max_body as configured */
    uint64_t budget;              /* the body size to cut to now (<= max_body) */
    struct pd_bodylimit *limit;   /* what the server was seen to take; shared, thread-safe */
    uint64_t resume_offset;       /* continue at this chunk start (0: the beginning) */
    unsigned resume_index;        /* numbering the next chunk so */
    const void *mem;              /* the file's bytes, read already: split from memory (must
                                   * outlive the delivery); NULL: read the file */
    size_t mem_len;
    /* A compressed file: where its expansion goes (a folder patchdrop trusts, never a drop
     * folder; NULL: compressed files are refused), the entry to continue in, and what the
     * entries before it expanded to (the limits count all entries). */
    const char *expand_dir;
    unsigned resume_entry;
    uint64_t expanded_before;
    const atomic_bool *cancel; /* set: a long expansion stops (PD_ECANCELED), e.g. at shutdown */
};

/* A compressed file's delivery: its entries, and the expansion of the one being split. */
struct pd_delivery_x {
    struct pd_expand x;
    struct pd_split_opts so; /* the splitter's settings but the file and name */
    struct pd_expand_limits lim;
    const char *dir;
    int fd;          /* the expansion, with no name (or -1) */
    int own_fd;      /* the compressed file, opened here from its path (or -1) */
    uint64_t *size;  /* each entry's expanded bytes, once expanded here */
    int *format;     /* the format each was split as, or -1 */
    unsigned *first; /* the index of each entry's first chunk */
    unsigned resume_entry;
    uint64_t offset; /* where in it to go on */
    uint64_t before; /* expanded by the entries before resume_entry */
};

struct pd_delivery {
    struct pd_splitter *sp;
    struct pd_bodylimit *limit;
    uint64_t max_body, budget;
    bool checked; /* the largest record was held against the learned limit */
    bool recut;   /* the next cut starts again at `refused`, with `budget` */
    struct pd_chunk refused;
    /* The last failure: words with what to do, the HTTP status it is about (413) or 0, the
     * byte it names or -1. */
    char why[2048];
    long why_status;
    int64_t why_offset;
    struct pd_delivery_x *cx; /* a compressed file's entries; NULL: split as it is */
    unsigned entry;           /* the entry the last chunk cut is of */
    unsigned next_index;      /* the next chunk's index */
};

/* 0, or a negative code with dl->why (nothing to close then). */
int pd_delivery_open(struct pd_delivery *dl, const struct pd_delivery_opts *o);
void pd_delivery_close(struct pd_delivery *dl);

struct pd_jobstate;
/* A compressed file's kind and entries (those expanded: size and format) into JS's receipt
 * fields; nothing for another file. 0 or PD_ENOMEM. */
int pd_delivery_note_entries(const struct pd_delivery *dl, struct pd_jobstate *js);

/*
 * Cuts the next chunk (the refused one again after pd_delivery_refused): 1 with *C and the
 * caller's *BODY (free() it), 0 after the last chunk, or a negative code with dl->why. Before a
 * file's first chunk goes, its largest record is held against what the server was seen to refuse:
 * never half a file for want of one record. pd_delivery_transient() tells a read error worth
 * trying later from a file that can never go.
 */
int pd_delivery_next(struct pd_delivery *dl, struct pd_chunk *c, char **body, size_t *body_len);
bool pd_delivery_transient(int rc);

/* What the client's final answer (its err, pd_client.h) means for the file. */
enum pd_delivery_verdict {
    PD_DL_ACKED,  /* 2xx: the chunk arrived; record it, go on */
    PD_DL_RECUT,  /* 413: pd_delivery_refused() */
    PD_DL_FAILED, /* refused, sent without an answer too often, or out of retry time (or a
                   * caller's own error): the file fails, with pd_delivery_failure()'s words */
    PD_DL_STOP,   /* the credentials or the configuration are refused: not the file's fault,
                   * nothing else can succeed either */
    PD_DL_LATER,  /* canceled (shutting down) or out of memory: the file goes again later */
};
enum pd_delivery_verdict pd_delivery_verdict(int err);

/*
 * The one 413 rule, after chunk C's BODY_LEN-byte body was refused with DELIVERED chunks of the
 * file delivered before it: the server's limit is learned, and 0 means the next
 * pd_delivery_next() cuts C again to dl->budget; -1 means the file's largest record cannot pass
 * (dl->why, why_status 413). No pd_delivery_next() may be under way.
 */
int pd_delivery_refused(struct pd_delivery *dl, const struct pd_chunk *c, size_t body_len,
                        unsigned delivered);

/* A body of BODY_LEN bytes was accepted: the server's limit is at least that. */
void pd_delivery_accepted(struct pd_delivery *dl, size_t body_len);

/*
 * The words for a PD_DL_FAILED answer to chunk C of a dropped file (DELIVERED chunks went before
 * it), ending with what to do.
 */
void pd_delivery_failure(const struct pd_client_result *r, const struct pd_chunk *c,
                         unsigned delivered, char *buf, size_t len);

#endif
