/*
 * Private to the EDI scanner: its state, shared by split_edi.c (the tokenizer and the checks of
 * X12 and EDIFACT) and split_edi_env.c (the envelope each chunk is given, and the registry's
 * content checks and batch cutter). Not a public interface.
 */
#ifndef PD_SPLIT_EDI_H
#define PD_SPLIT_EDI_H

#include "split_internal.h"

#include <stddef.h>
#include <stdint.h>

#define EDI_KEEP 512 /* bytes of a segment kept for its elements; envelope segments must fit */
#define EDI_CTL 36   /* a control number with its NUL (EDIFACT references are an..14) */
#define EDI_EOF_MARK 0x1A /* DOS's end-of-file mark (Ctrl-Z), which old systems still write */

enum { K_X12, K_EDIFACT };
/* Where the scanner is: outside interchanges, after a UNA, in an interchange, in a
 * functional group, in a transaction set or message. */
enum { W_OUT, W_UNA, W_IC, W_GRP, W_SET };

/* What closes the chunk's current group and interchange, kept when they open: by the time
 * the chunk closes, the scanner may have read the next envelope already. */
struct edi_close {
    char gctl[EDI_CTL], ictl[EDI_CTL];
    unsigned char el, term;
    char eol[3];
    uint8_t groups;   /* edifact: the interchange has UNG groups */
    uint8_t grp_open; /* a group is open in the chunk: its trailer closes it */
    uint64_t sets;    /* records of the group in this chunk */
    uint64_t ngroups, msgs; /* groups and records of the interchange in this chunk */
    uint64_t nrec;          /* records in this chunk */
    char first[3 * EDI_CTL]; /* the control numbers of its first record */
};

struct ediscan {
    uint8_t kind, where, in_seg, tag_done, rel_pending, after_rec, eol_take;
    uint8_t has_rel, groups, una_len, carry_len;
    /* X12: the record open is an interchange's TA1s and what follows them up to its first SE
     * (or its IEA); bare: the record that ended held no transaction set (TA1s only) */
    uint8_t ta1_rec, bare;
    uint8_t eof_mark; /* a Ctrl-Z after the last interchange: only blanks may follow */
    unsigned char el, comp, term, rel;
    char eol[3];
    unsigned char carry[8];
    size_t seg_len, tag_len, nsep;
    uint64_t seg_dec, seg_no;
    uint64_t mark_dec, mark_esc; /* where the Ctrl-Z is; the escaped bytes from it to the end */
    /* the envelope the scanner is in */
    size_t ic_len, grp_len;
    char ictl[EDI_CTL], gctl[EDI_CTL], sctl[EDI_CTL];
    uint64_t ic_dec, grp_dec, set_dec, set_no;
    uint64_t ic_count, ic_msgs, grp_count, set_segs, ic_serial, grp_serial;
    /* the chunk being cut (env_open, env_close); ch_ic 0: no interchange open in it */
    uint64_t ch_ic, ch_grp;
    struct edi_close cl;
    /* texts, copied as far as they are used (edi_copy) */
    char seg[EDI_KEEP];
    char una[9];
    char ic[EDI_KEEP], grp[EDI_KEEP];
};

static inline int edi_alnum(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* Bytes between segments: line breaks and blanks, as real files have them. */
static inline int edi_is_gap(unsigned char c)
{
    return c == '\n' || c == '\r' || c == ' ' || c == '\t';
}

/* The N strings of PARTS one after another in OUT (LEN bytes, cut short if need be). */
void edi_join(char *out, size_t len, const char *const *parts, size_t n);
/* "interchange/group/set" control numbers of the record that just ended. */
void edi_ids_of(const struct ediscan *e, char *out, size_t len);

/* The scanner's envelope operations (struct pd_scan_ops), in split_edi_env.c. */
size_t edi_env_open(struct scan *sc, int first, char *o);
size_t edi_env_close(const struct scan *sc, char *o);
void edi_env_label(const struct scan *sc, char *label, size_t len);

#endif
