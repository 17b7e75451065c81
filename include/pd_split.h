/*
 * The record-aware streaming splitter: reads one file through fixed buffers and yields the
 * request bodies to send, each {"payload":"<escaped chunk>"} and at most max_body bytes, where
 * every chunk is a valid document of the file's kind holding whole records:
 *   json    a top-level array (or the array named by json_array inside a top-level object) is
 *           cut into arrays of whole elements; the text before the array ("[" or
 *           {"other":1,"orders":[) and after it ("]" or ],"more":2}) is repeated in each chunk.
 *   ndjson  whole lines, each checked to be one JSON value (blank lines are kept).
 *   xml     the text before the records (declaration, DOCTYPE, comments, the root start tag
 *           with its attributes and namespaces) opens every chunk, whole records follow, and the
 *           text after the last record (the root end tag and anything after it) closes it.
 *           Records are the element children of the root. With xml_record set, everything
 *           before the first root child of that name (by qualified or local name) is part of
 *           the repeated opening, and from there on every root child is a record (so a
 *           header element before the records is repeated and nothing after is ever dropped).
 *           Whitespace, comments and PIs between records travel with the record that follows.
 *           The file must be well-formed XML 1.0 by expat (split_xmlwf.c), whole or cut; a
 *           DOCTYPE with an internal subset is refused (entities are never expanded, nothing
 *           is fetched); one with an external id only is copied verbatim. Content between
 *           the last record and the root end tag (text, comment, CDATA, PI) goes once, with
 *           the last record (it counts in that record's size); the closing repeated by every
 *           chunk starts at the root end tag.
 *   csv     the first header_lines rows open every chunk; whole rows follow (quoted fields
 *           with commas, newlines and doubled quotes stay whole). TSV (.tsv) uses tabs.
 *   lines   whole lines, line endings kept exactly.
 *   x12     whole transaction sets (ST...SE). Every chunk is an interchange: the original ISA
 *           and GS segments around its sets, GE01 and IEA01 counting what the chunk holds,
 *           GS06 and ISA13 kept; a chunk that spans groups or interchanges closes one and
 *           opens the next. Delimiters come from each ISA (element separator, ISA16, the
 *           terminator after it with any CR/LF). SE01, GE01, IEA01 and the control number
 *           pairs ST02/SE02, GS06/GE02, ISA13/IEA02 are checked, also in a file that fits.
 *           TA1s between an ISA and its first GS go once, in their interchange's first
 *           chunk; an interchange of TA1s only is a record of its own, sent ISA to IEA; a
 *           TA1 elsewhere is an error.
 *   edifact the same for messages (UNH...UNT) in UNB...UNZ and optional UNG...UNE, with the UNA
 *           (or the default ":+.? '" delimiters) and release character honoured, UNE01 and
 *           UNZ01 rewritten per chunk, UNT01 and the references UNH01/UNT02, UNG05/UNE02,
 *           UNB05/UNZ02 checked. Blanks and line breaks between segments are allowed, and
 *           (both) a Ctrl-Z with blanks after the last interchange, which is never sent.
 *   none    never split.
 *   auto    by extension (.json, .ndjson/.jsonl, .xml, .csv/.tsv, .x12, .edifact, anything
 *           else lines), then confirmed by the first non-blank character: a .json file must
 *           start with [ or {, an .xml file with <. A .edi file, or one no extension claims,
 *           is x12 when it starts with ISA and edifact with UNA or UNB+ (pd_format_of_text). A mismatch is an error (the file is not what its name says;
 *           guessing another format could send something the flow does not expect).
 *
 * Files whose whole body fits max_body go as one chunk, byte for byte (a UTF-8 byte-order mark
 * dropped, transcoding applied, an XML declaration's encoding made UTF-8), and a file of a
 * structured kind only when it is well formed. Bigger files are checked
 * completely before the first chunk is produced (a first pass: encoding, syntax, every
 * record's size), so a file is never half sent because of a fault near its end.
 *
 * Text: everything sent is UTF-8. opts.encoding names the files' charset (any iconv name;
 * UTF-8 is checked strictly, another charset is transcoded to UTF-8 while reading), or is
 * NULL, "" or "auto": the file says. Auto reads only the file's first bytes (XML 1.0 appendix
 * F): a byte-order mark (UTF-8: dropped; UTF-16/32: transcoded), then for XML the width of the
 * first "<?" and the declaration's encoding="..."; else strict UTF-8. A charset the declaration
 * names that iconv does not know is a PD_EENCODING error with its byte offset. For XML (split
 * = xml, or a .xml file with split = none) a declaration whose encoding is not UTF-8 is
 * rewritten to say encoding="UTF-8" wherever it is sent: in the whole file and in the opening
 * repeated by every chunk. A configured encoding wins over the declaration. A NUL character
 * rejects the file as binary. Stateful charsets (ISO-2022-*, UTF-7) are not supported for
 * splitting: offsets are mapped back to the original file by restarting the decoder at a
 * known point, which needs a stateless charset.
 *
 * Offsets: every offset here is a byte offset in the ORIGINAL file, also for transcoded files.
 * Chunk ranges tile the record area: chunk i covers [start, end) and chunk i+1 starts at end.
 * The boundaries depend only on the file and max_body, so a daemon that stores each chunk's
 * start (and the max_body it used) can resume after a crash with pd_split_seek().
 *
 * Memory: two 64 KiB read buffers, the body (grown as needed up to max_body), the repeated
 * opening/closing texts (each at most max_body) and the nesting stack (EDI: the current
 * envelope segments, 512 bytes each at most); never the file.
 * Nothing here logs or uses the event loop; callers run it on a worker thread.
 */
#ifndef PD_SPLIT_H
#define PD_SPLIT_H

#include <stddef.h>
#include <stdint.h>

struct pd_split_opts {
    int format;             /* enum pd_split_format (pd_config.h) */
    uint64_t max_body;      /* bytes of one encoded request body; >= 64 */
    const char *json_array; /* JSON pointer ("/orders", "/data/0/items") or NULL */
    const char *xml_record; /* element name of the records or NULL */
    unsigned header_lines;  /* csv: rows repeated at the top of every chunk */
    const char *encoding;   /* iconv charset name; UTF-8: strict; NULL, "" or "auto": detected */
    const char *name;       /* file name for choosing the format; NULL: the path */
    /* The file's bytes when the caller has read them already (a small file that may join a
     * batch): read from here, never from FD or PATH. Must outlive the splitter. */
    const void *mem;
    size_t mem_len;
};

struct pd_chunk {
    unsigned index;        /* 0-based */
    uint64_t start, end;   /* range of the original file this chunk covers */
    uint64_t records;      /* records in it; 0 for a file sent whole */
    uint64_t first_record; /* 1-based number of its first record */
    int whole;             /* 1: the file went as one chunk, unparsed */
    int last;              /* 1: no chunk follows (until a resplit) */
    /* x12, edifact: the control numbers of its first and last set or message, for the
     * receipt ("ISA13/GS06/ST02 000000001/1/0001 to 000000002/5/0042"); "" otherwise. */
    char control[128];
    const char *body;      /* {"payload":"..."}; owned by the splitter (see pd_split_next) */
    size_t body_len;
};

struct pd_splitter;

/*
 * Opens a splitter over FD (which it does not close; it reads with pread and needs a regular
 * file) or over PATH (opened and closed by the splitter; pass fd = -1). Copies OPTS.
 * Returns 0 and *out, -errno, PD_ENOMEM or PD_ECONFIG (bad option; *out is still created so
 * pd_split_error() can say why: destroy it).
 */
int pd_split_create(int fd, const char *path, const struct pd_split_opts *opts,
                    struct pd_splitter **out);

/* Frees everything and NULLs *SP. NULL or *SP == NULL is a no-op. */
void pd_split_destroy(struct pd_splitter **sp);

/*
 * Produces the next chunk into *OUT. Returns 1 when a chunk was produced, 0 when the file is
 * done, or a negative code (PD_EPARSE, PD_ETOOBIG, PD_EENCODING, PD_EEMPTY, PD_ENOMEM,
 * -errno) with pd_split_error() saying what and where; after an error every call returns the
 * same error. out->body stays valid until the next call to pd_split_next, pd_split_seek,
 * pd_split_resplit or pd_split_destroy; pd_split_take_body() hands it over instead.
 */
int pd_split_next(struct pd_splitter *sp, struct pd_chunk *out);

/* Hands the last chunk's body to the caller (free() it); the splitter starts a new buffer. */
char *pd_split_take_body(struct pd_splitter *sp, size_t *len);

/*
 * Continues at START, the start of a chunk produced earlier from the same file (or 0: from
 * the beginning), numbering the next chunk NEXT_INDEX. Any boundary between two records is
 * accepted, so chunks cut with another max_body (after a resplit) resume too; the chunks that
 * follow depend only on START and the current max_body. The next pd_split_next() rereads the
 * file from its beginning (bounded memory) to recover the repeated opening and closing texts
 * and the record numbers, and fails with PD_ESTATE when START is not such a boundary (the
 * file changed). A file that goes whole has the boundaries 0 and its size only.
 */
int pd_split_seek(struct pd_splitter *sp, uint64_t start, unsigned next_index);

/*
 * After the server refused the last chunk as too large (HTTP 413): the next pd_split_next()
 * cuts again from the start of that chunk, with NEW_MAX_BODY for it and every later chunk.
 * NEW_MAX_BODY must be smaller than the refused body (else PD_ELIMIT). A file sent whole is
 * then split from its beginning.
 */
int pd_split_resplit(struct pd_splitter *sp, uint64_t new_max_body);

/*
 * pd_split_resplit() for a caller that cuts chunks ahead: REFUSED is the chunk the server
 * refused as it was produced (its body may be gone), possibly followed by chunks produced
 * since, which are dropped. The next pd_split_next() cuts again from REFUSED's start with
 * NEW_MAX_BODY. Same codes as pd_split_resplit().
 */
int pd_split_resplit_chunk(struct pd_splitter *sp, const struct pd_chunk *refused,
                           uint64_t new_max_body);

/*
 * The smallest request body that can carry the file's largest record (with the text repeated
 * in every chunk): below it the file cannot be split. Known once the first pd_split_next()
 * returned (the first pass has seen every record).
 */
uint64_t pd_split_min_body(const struct pd_splitter *sp);

/* The budget in force (store it with chunk ranges to resume deterministically). */
uint64_t pd_split_max_body(const struct pd_splitter *sp);

/* The format actually used (enum pd_split_format; auto resolved once known). */
int pd_split_format(const struct pd_splitter *sp);

/*
 * 1 when the text sent is the file's own bytes (after a UTF-8 byte-order mark): read as UTF-8,
 * nothing transcoded, rewritten or left out (an EDI file's end-of-file mark); 0 otherwise, or
 * before the first pd_split_next(). A caller that reuses the file's bytes (batching) needs
 * this.
 */
int pd_split_verbatim(const struct pd_splitter *sp);

/*
 * The message for the last error: what is wrong, where (byte, line, record) and what to do.
 * Never NULL. It does not name the file: the caller shows the name once, beside it.
 */
const char *pd_split_error(const struct pd_splitter *sp);

/* The byte offset in the file that the last error's message names, or -1 when it names none. */
int64_t pd_split_error_offset(const struct pd_splitter *sp);

#endif
