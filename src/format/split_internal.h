/*
 * Private parts of the splitter shared by src/format/split*.c: the interface of the per-format record
 * scanners (each format's state and functions are private to its file: split_json.c,
 * split_xml.c, split_csv.c), the decoder that turns the file into UTF-8 windows, and the
 * driver's state shared by split.c (create, pass 2, resplit) and split_pass1.c (the first
 * pass). Not a public interface.
 *
 * Scanners are push tokenizers without recursion: the driver feeds them windows of decoded
 * bytes, and they stop at every event (area start, record start/end, error) so that the
 * driver can account for the bytes between two events as one segment. All positions are
 * "decoded offsets" (see struct split_dec); the driver maps them to file offsets.
 */
#ifndef PD_SPLIT_INTERNAL_H
#define PD_SPLIT_INTERNAL_H

#include "pd_split.h"

#include <iconv.h>
#include <stddef.h>
#include <stdint.h>

enum scan_ev {
    SCAN_MORE,       /* window used up; feed more (or call scan_end at end of input) */
    SCAN_MARK,       /* a place the area may start at (xml_record): remember it */
    SCAN_AREA_START, /* the record area starts here (or at the mark when at_mark) */
    SCAN_REC_START,  /* a record's own text starts here (json: after the separator) */
    SCAN_REC_END,    /* a record ends here (exclusive) */
    SCAN_DONE,       /* end of input reached cleanly (scan_end only) */
    SCAN_ERROR,      /* msg says what; ev_dec where */
};

struct scan;

/*
 * One format's record scanner, as the format registry (pd_format.h) names it. Its state is a
 * block of STATE_SIZE bytes the driver allocates three times (the live state sc->u, the
 * snapshot where the record area starts sc->snap, and a mark sc->mark) and that only the
 * format's own functions look into.
 */
struct pd_scan_ops {
    size_t state_size;
    int tiled; /* the text between records belongs to the next record (all but json) */
    /* Checks the options and sets up what the whole scan needs (may be NULL). Returns 0,
     * PD_ECONFIG with sc->msg, or PD_ENOMEM. Undone by scan_cleanup(). */
    int (*init)(struct scan *sc);
    void (*reset)(struct scan *sc);
    /* 1 when the record area starts at the first byte (no opening to repeat). */
    int (*area_at_start)(const struct scan *sc);
    int (*feed)(struct scan *sc, const unsigned char *b, size_t n, uint64_t base, size_t *pos);
    int (*end)(struct scan *sc, uint64_t eof_dec);
    /* Copies a state (NULL: all STATE_SIZE bytes). */
    void (*copy)(void *dst, const void *src);
    /* Adjusts the state restored from the snapshot for resuming at a chunk's start (may be
     * NULL); AFTER_RECORD: a record precedes that start. */
    void (*resume)(struct scan *sc, int after_record);
    /* Enveloped formats (EDI), whose chunks are not the text before the records, records and
     * the text after them, but records inside an envelope rendered per chunk; NULL for the
     * others. env_open: at SCAN_REC_START, the text to put before the record starting now
     * (FIRST: the chunk's first record). env_close: after SCAN_REC_END, the text that closes
     * a chunk ending there. Both write at most SCAN_ENV_MAX bytes into BUF. The driver then
     * snapshots the state at every record end a chunk may start after (scan_snapshot), never
     * copies the text between records, and never uses the record index. */
    size_t (*env_open)(struct scan *sc, int first, char *buf);
    size_t (*env_close)(const struct scan *sc, char *buf);
    /* The control numbers a chunk ending after the record that ended now carries (for the
     * receipt), into LABEL (LEN bytes). */
    void (*env_label)(const struct scan *sc, char *label, size_t len);
};

#define SCAN_ENV_MAX 2048

struct scan {
    int fmt;   /* enum pd_split_format, resolved */
    const struct pd_scan_ops *ops;
    int tiled; /* ops->tiled, for the driver */
    int at_mark;
    uint64_t ev_dec;
    char msg[400];
    /* 1 when the error is about the file's shape (not splittable as configured), 0 when the
     * text itself is malformed. A well-formed file that fits goes whole either way. */
    int structural;
    char shape_msg[400]; /* a shape problem found early, reported at the end if no worse one */
    uint64_t shape_dec;
    /* Escaped bytes at the end of the file a whole body leaves out, as the scanner says at the
     * end (EDI: a Ctrl-Z end-of-file mark after the last interchange); 0 for the others. */
    uint64_t drop_esc;
    /* json_array pointer, split into unescaped segments (by json's init; freed by
     * scan_cleanup) */
    char **segs;
    size_t nsegs;
    const char *pointer;
    const char *xml_record;
    unsigned header_lines;
    char delim;
    int started;
    void *u, *snap, *mark; /* the scanner's states (ops->state_size bytes each) */
    int have_snap;
};

/* FMT must be a format with a scanner (pd_format_get(fmt)->scan). */
int scan_init(struct scan *sc, int fmt, const char *json_array, const char *xml_record,
              unsigned header_lines, char delim);
void scan_cleanup(struct scan *sc);
void scan_reset(struct scan *sc);
int scan_feed(struct scan *sc, const unsigned char *b, size_t n, uint64_t base, size_t *pos);
int scan_end(struct scan *sc, uint64_t eof_dec);
void scan_resume(struct scan *sc, int after_record);
/* Makes the live state the one scan_resume() restores (enveloped formats: the state where the
 * next chunk starts). */
void scan_snapshot(struct scan *sc);

/* area_at_start for a scanner whose records never (always) begin at the first byte. */
int scan_never(const struct scan *sc);
int scan_always(const struct scan *sc);

/*
 * One call of a scanner's feed, shared by the functions its states are cut into (they are
 * inlined, so it stays in registers): the window B[0..N), how far it is read (I), the decoded
 * offset of B[0] (BASE) and the event that ends the call (EV).
 */
struct scan_win {
    struct scan *sc;
    const unsigned char *b;
    size_t n, i;
    uint64_t base;
    int ev;
};

/* The scanners, by format (the registry in src/format/format.c points at them). */
extern const struct pd_scan_ops pd_scan_json, pd_scan_ndjson, pd_scan_xml, pd_scan_csv,
    pd_scan_lines, pd_scan_x12, pd_scan_edifact;

/* Content checks of the EDI formats (struct pd_format's sniff), in split_edi.c. */
int pd_sniff_x12(const unsigned char *head, size_t n);
int pd_sniff_edifact(const unsigned char *head, size_t n);

/*
 * The decoder. In UTF-8 mode windows are the file's bytes (validated, never ending inside a
 * sequence) and decoded offsets equal file offsets. In iconv mode input is converted in
 * slices of at most DEC_SLICE bytes and the file offset where each slice began is kept, so
 * a decoded offset is mapped back exactly by reconverting at most one slice.
 */
#define DEC_BUF 65536
#define DEC_SLICE 64

struct dec_anchor {
    uint64_t orig, dec;
};

struct split_dec {
    int fd;
    const unsigned char *mem; /* the file's bytes already in memory (then fd is not read) */
    size_t mem_len;
    iconv_t cd, cd2; /* (iconv_t)-1 in UTF-8 mode */
    uint64_t data_start; /* file offset after any byte-order mark */
    const char *charset; /* for messages */
    char charset_buf[160]; /* a charset found in the file, and where it was found */
    char fix[160];         /* what to do about invalid UTF-8 ("" : the general advice) */
    unsigned char *raw;
    size_t raw_len, raw_pos;
    uint64_t raw_base; /* file offset of raw[0] */
    int raw_eof;
    unsigned char *win;
    size_t win_len;
    uint64_t win_dec;  /* decoded offset of win[0] */
    uint64_t next_dec; /* decoded offset of the byte after the window */
    size_t carry;      /* utf-8 mode: bytes of an incomplete sequence kept for the next read */
    uint64_t *ck_orig;
    uint32_t *ck_win;
    size_t nck;
    /* error details */
    uint64_t err_off;
    char err[300];
};

/*
 * Chooses how to read the file. ENCODING is the configured charset; NULL, "" or "auto" read
 * the file's first bytes: a byte-order mark (UTF-8 dropped, UTF-16/32 transcoded), then for an
 * XML file (XML set) the declaration's encoding (XML 1.0 appendix F), else strict UTF-8.
 * Returns 0; PD_ECONFIG for a configured charset iconv does not know; PD_EENCODING when the
 * file names one it does not know or contradicts itself (MSG says where and what to set);
 * PD_ENOMEM or -errno.
 */
int dec_open(struct split_dec *d, int fd, const void *mem, size_t mem_len, const char *encoding,
             int xml, char *msg, size_t msgsz);
void dec_close(struct split_dec *d);
/* Restarts decoding at file offset ORIG (a character boundary). */
void dec_seek(struct split_dec *d, uint64_t orig);
/* Reads the file's raw bytes at ORIG, as many as there are up to LEN: the count or -errno. */
long dec_read(const struct split_dec *d, void *buf, size_t len, uint64_t orig);
/* Next window: 1 when there is one, 0 at end of file, negative on error (d->err). */
int dec_fill(struct split_dec *d);
/* A cheap anchor for a decoded offset inside the current window. */
struct dec_anchor dec_anchor_of(const struct split_dec *d, uint64_t dec);
/* The exact file offset of DEC, which lies at or after anchor A (rereads < 1 slice). */
int dec_exact(struct split_dec *d, struct dec_anchor a, uint64_t dec, uint64_t *orig);

/*
 * The XML declaration (XML 1.0 section 2.8) at the very start of a text: "<?xml", whitespace,
 * name='value' pairs, "?>". Only ASCII is looked at, so the text may be the raw bytes of any
 * ASCII-compatible charset as well as decoded UTF-8. Offsets are from the text's start.
 */
#define XML_DECL_MAX 4096 /* a declaration longer than this is not looked for */

struct xml_decl {
    size_t end;              /* just after "?>" */
    size_t enc_off, enc_len; /* the encoding value between its quotes; enc_len 0: none */
};

/* 1 and *D when S[0..n) starts with a complete declaration; 0 when it does not (none,
 * malformed, or not complete within N bytes). */
int xml_decl_parse(const unsigned char *s, size_t n, struct xml_decl *d);

/* 1 when NAME (LEN bytes) names UTF-8 however it is spelled ("utf8", "UTF-8"). */
int dec_is_utf8_name(const char *name, size_t len);

/* Records a scan error (words and position) in SC; returns SCAN_ERROR. */
int scan_fail(struct scan *sc, uint64_t at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/*
 * Well-formedness by expat (split_xmlwf.c), over the decoded UTF-8 text in the order it is
 * read. Never expands or fetches anything: a DOCTYPE with an internal subset is refused.
 */
struct xmlwf;

struct xmlwf_err {
    int code;              /* PD_EPARSE, or PD_ETOOBIG for a token over max_token */
    uint64_t dec;          /* decoded offset of the fault */
    uint64_t line, column; /* 1-based, as expat counts them */
    char msg[200]; /* what is wrong */
    char fix[300]; /* what to do */
};

/* Creates *W, or resets it for a new document, in which expat may hold at most MEM_CAP
 * bytes. Returns 0 or PD_ENOMEM. */
int xmlwf_start(struct xmlwf **w, uint64_t mem_cap);
void xmlwf_free(struct xmlwf **w);
/* The next N bytes of text, at decoded offset DEC (FINAL: the last of them). Returns 0, or
 * 1 when the document is not well formed, or refused (an internal subset, an unfinished
 * token over MAX_TOKEN bytes, which expat would hold in memory), with *E saying why and where. */
int xmlwf_feed(struct xmlwf *w, const unsigned char *b, size_t n, uint64_t dec, int final,
               uint64_t max_token, struct xmlwf_err *e);

/* ---- the driver (split.c, split_pass1.c) ------------------------------------------------ */

#define HEAD_LEN (sizeof(PD_ENCODE_BODY_HEAD) - 1)
#define TAIL_LEN (sizeof(PD_ENCODE_BODY_TAIL) - 1)

struct pd_splitter {
    int fd, own_fd;
    char *name, *json_array, *xml_record, *encoding;
    int fmt_cfg, fmt;
    int is_xml; /* XML by format, or by name with split = none: its declaration matters */
    uint64_t max_body;
    struct split_dec dec;
    int dec_ok;
    /* The XML declaration's encoding value (decoded offsets), rewritten to UTF-8 in what is
     * sent when it names another charset: the text sent is UTF-8 whatever the file was. */
    int decl_rewrite;
    uint64_t decl_dec, decl_len;
    struct scan sc;
    size_t pos; /* read position in dec.win */
    struct xmlwf *wf; /* split = xml: expat's check in pass 1 */

    int err; /* sticky error */
    char msg[1024];
    int64_t err_offset; /* the byte msg names, or -1 */

    /* pass 1 results */
    int prepared, whole, whole_sent;
    int split_err;        /* problem found by the first pass */
    int split_structural; /* ...that only matters when the file must be split */
    char split_msg[1024];
    char split_tail[400];
    uint64_t split_err_dec;
    int split_err_line_wanted;
    uint64_t area_orig, file_end, whole_len, total_records;
    char *pre, *suf;
    size_t pre_len, suf_len, pre_cap, suf_cap, pre_esc, suf_esc;
    int pre_over, suf_over;
    /* XML: content between the last record and the root's end tag (text, a comment...):
     * the first TAIL_LEN bytes of suf. It goes once, after the last record, and the closing
     * text repeated in every chunk is the rest of suf. Where it ends, and its escaped size. */
    size_t tail_len;
    uint64_t tail_esc, tail_end_dec, tail_end_orig;
    uint64_t big_num, big_off, big_size, over_count;

    /* iteration */
    uint64_t seek_target;
    uint64_t next_start, next_record;
    unsigned next_index;
    int positioned;

    char *body;
    size_t body_len, body_cap;
    struct pd_chunk last;
    int have_last;

    /* The record index (split_index.c): record ends pass 1 saw about every idx_grain escaped
     * bytes, so that pass 2 copies the records that fit without scanning them again. */
    struct split_idx *idx;
    size_t nidx;
    uint64_t idx_grain, idx_last;
    int idx_on;              /* UTF-8 text read from an unchanged file: the index can be used */
    uint64_t area_cum;       /* escaped length of the text before the record area */
    uint64_t seek_cum;       /* ... before the chunk asked for by pd_split_seek */
    uint64_t next_cum;       /* ... before next_start, when next_cum_known */
    int next_cum_known;
    int64_t id_size, id_mtime_s, id_mtime_ns, id_ctime_s, id_ctime_ns; /* the file pass 1 read */
    unsigned char *bulk;     /* read buffer of index copies */
};

/* One index entry: the end of record REC at decoded offset OFF, where CUM bytes of escaped
 * text precede it (the whole file's text from its start, as pass 1 counts it). */
struct split_idx {
    uint64_t off, cum, rec;
};

/* Pass 1 starts: forgets the index and notes which file it reads. */
void idx_start(struct pd_splitter *sp);
/* Pass 1 saw record REC end at OFF with CUM escaped bytes before it. Returns 0 or PD_ENOMEM. */
int idx_note(struct pd_splitter *sp, uint64_t off, uint64_t cum, uint64_t rec);
/* The entry for a record end at OFF, or NULL. */
const struct split_idx *idx_at(const struct pd_splitter *sp, uint64_t off);
/* The furthest entry past OFF whose records fit in ROOM more escaped bytes after CUM, or NULL. */
const struct split_idx *idx_reach(const struct pd_splitter *sp, uint64_t off, uint64_t cum,
                                  uint64_t room);
/* Escapes the file's bytes [FROM, E->off) onto the body (CUM: escaped length before FROM).
 * Returns 0, 1 when the file changed since pass 1 (nothing added; the index is off from
 * now on), or a negative code. */
int idx_copy(struct pd_splitter *sp, uint64_t from, uint64_t cum, const struct split_idx *e);
void idx_free(struct pd_splitter *sp);

/* Sets the splitter's sticky error (and the byte its words name); returns CODE. */
int split_set_err(struct pd_splitter *sp, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "9123456 bytes (9.1 MB)": exact for the record, readable for the person. */
const char *split_size_words(uint64_t n, char *buf, size_t sz);
/* Appends SRC escaped unless the body would pass LIMIT: 0 done, 1 no room, <0 error. */
int split_body_escape(struct pd_splitter *sp, const void *src, size_t n, size_t limit);
int split_body_raw(struct pd_splitter *sp, const char *s, size_t n);
/* Makes room for NEED bytes of body. Returns 0 or PD_ENOMEM. */
int split_body_reserve(struct pd_splitter *sp, size_t need);
/* The file offset of decoded offset DEC, at or after anchor A. */
uint64_t split_exact(struct pd_splitter *sp, struct dec_anchor a, uint64_t dec);

/* Pass 1 (split_pass1.c): reads the whole file once; then the file goes whole (sp->whole) or
 * is ready to be cut from sp->next_start. Returns 0 or the sticky error. */
int split_pass1(struct pd_splitter *sp);
/* Everything pass 1 found that stops splitting; 0 when the file can be split. */
int split_ready(struct pd_splitter *sp);
/* Can the file be split with the current budget? Sets the sticky error when not. */
int split_check_budget(struct pd_splitter *sp);

#endif
