/*
 * A claimed file's delivery record: which byte ranges were acknowledged with which flow-run
 * ids, how far the file got, and how often it was tried. It is saved durably after every
 * acknowledged chunk (pd_fs_write_atomic), so a restart resumes at the first unacknowledged
 * chunk instead of repeating the file. The same record becomes the receipt on success and the
 * error file on rejection.
 */
#ifndef PD_JOBSTATE_H
#define PD_JOBSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pd_chunk_rec {
    unsigned index;
    uint64_t start, end; /* byte range of the file's records in this chunk */
    uint64_t records;
    uint64_t body_bytes; /* encoded request body */
    long status;         /* HTTP status of the acknowledgement */
    char *run_id;        /* flow-run id, NULL when the answer named none */
    char *answer;        /* the answer's body when it named no run id, else NULL */
    uint64_t time_ms;    /* wall clock, when acknowledged */
    unsigned attempts;
    /* batch = N: the file went with others in one request; NULL/0 otherwise */
    char *batch_id;       /* random id of that request, the same in every file's receipt */
    unsigned batch_files; /* files in that request */
    unsigned batch_pos;   /* this file's place in it, 1-based */
    char control[128];    /* EDI: the control numbers it carried (pd_chunk's); "" otherwise */
    unsigned entry;       /* a compressed file: the entry (of pd_jobstate.entries) it is of */
};

/* A compressed file's inner file (pd_expand.h): as the receipt lists it. */
struct pd_entry_rec {
    char *name;    /* the entry's name as the archive says it (hostile text, never a path) */
    uint64_t size; /* its expanded bytes; 0 until it was expanded */
    char *format;  /* the format it was split as; NULL until it was */
};

/*
 * Why a file failed: one struct from the answer (or the step) that decided it, through the
 * delivery record (kept across a restart), to the error file.
 */
struct pd_failure {
    char *reason;   /* words, with what to do; NULL: no failure */
    long status;    /* 0: no HTTP answer involved */
    char *message;  /* the server's message, or NULL */
    char *errors;   /* the server's field errors, or NULL */
    int chunk;      /* chunk index, or -1 */
    int64_t offset; /* byte offset in the file, or -1 */
};

/* No failure: everything NULL or 0, chunk and offset -1. Frees what F held. */
void pd_failure_clear(struct pd_failure *f);

struct pd_jobstate {
    char *claim_id; /* random, tells this claim's receipt from an older one */
    char *watch;
    char *name;      /* the file's name in the drop folder (relative path) */
    char *work_name; /* its name inside work/ */
    char *flow_id;
    char *version_id;
    uint64_t size;
    int64_t mtime_ns;
    char *sha256; /* hex, NULL until computed */
    uint64_t claimed_ms;
    uint64_t max_body;    /* the budget in force (smaller after a 413) */
    uint64_t next_offset; /* where the first unacknowledged chunk starts */
    unsigned next_index;
    unsigned attempts;            /* requests made for this file, all chunks */
    unsigned possible_duplicates; /* attempts sent whole without an answer: each may have
                                     started a flow run */
    uint64_t first_failure_ms;    /* wall clock of the first retryable failure in a row; 0: none */
    bool finished;                /* every chunk acknowledged */
    char *duplicate_of;           /* dedupe: the earlier receipt, when not sent again */
    /* Set once the file was judged a failure, so a restart finishes the move to the failed
     * folder instead of sending the file again. */
    struct pd_failure fail;
    struct pd_chunk_rec *chunks;
    size_t nchunks;
    /* A compressed file: its kind ("gzip", "zstd", "zip"; NULL: not compressed), its inner
     * files in order, and the one the first unacknowledged chunk is of. */
    char *compression;
    struct pd_entry_rec *entries;
    size_t nentries;
    unsigned next_entry;
};

/* Saves durably to PATH (mode 0600). Returns 0 or -errno / PD_ENOMEM. */
int pd_jobstate_save(const struct pd_jobstate *js, const char *path);

/*
 * Saves a new claim's record (nothing acknowledged yet) without waiting for the disk: after a
 * power cut it may be missing or empty, which pd_jobstate_load takes for no record at all, and
 * the file is sent from its start, as it would be anyway. The first durable save (an
 * acknowledgement) makes it durable with everything else.
 */
int pd_jobstate_save_claim(const struct pd_jobstate *js, const char *path);

/* Loads PATH. Returns 0, -errno, or PD_ESTATE with *why saying what is wrong (free it). */
int pd_jobstate_load(const char *path, struct pd_jobstate *out, char **why);

/* Appends an acknowledged chunk (copies its strings) and moves next_offset/next_index (and
 * next_entry) on. */
int pd_jobstate_add_chunk(struct pd_jobstate *js, const struct pd_chunk_rec *c);

void pd_jobstate_cleanup(struct pd_jobstate *js);

/* The receipt as JSON text (malloc'd): file, size, SHA-256, watch, flow, version, chunks. */
char *pd_jobstate_receipt(const struct pd_jobstate *js, uint64_t finished_ms);

/*
 * The error file as JSON text: the receipt's facts plus F's reason in words (NULL: "rejected"),
 * the HTTP status and server message when there was one, and the chunk number and byte offset
 * when it applies.
 */
char *pd_jobstate_error_report(const struct pd_jobstate *js, const struct pd_failure *f,
                               uint64_t failed_ms);

/* A member pd_jobstate_annotate adds to a receipt or an error file. */
struct pd_jobstate_note {
    const char *key;
    const char *text; /* the value; NULL: TIME_MS, written as the files' times are */
    bool name;        /* TEXT is a file name: written as names are (exact bytes in <key>_hex) */
    uint64_t time_ms; /* wall clock */
};

/*
 * TEXT (a receipt or an error file) with NOTES added at its end, rendered as receipts and error
 * files are, so later readers see one format. A key TEXT holds already keeps its value. NULL
 * when TEXT is not a JSON object, or out of memory.
 */
char *pd_jobstate_annotate(const char *text, const struct pd_jobstate_note *notes, size_t n);

/* Random hex id of 16 bytes for claim_id. */
int pd_jobstate_new_claim_id(char out[33]);

#endif
