/*
 * The request body encoder: turns payload bytes into the JSON body that the Patchworks start
 * endpoint takes, {"payload":"<payload as one JSON string>"} (see docs/patchworks-api.md).
 *
 * Escaping follows RFC 8259: '"' and '\' get a backslash, control characters below 0x20 become
 * \n \r \t \b \f or \u00XX. Every other byte is copied unchanged: valid UTF-8 stays as it is
 * (non-ASCII is never turned into \u escapes, which would triple its size), and U+2028/U+2029
 * are left raw too, because JSON allows them in strings and the receiver is a JSON parser, not
 * a JavaScript eval. Checking that the bytes are UTF-8 is the caller's job (the splitter does).
 *
 * Bytes that need escaping are found 16 at a time (SSE2), else 8; clean runs are copied whole.
 * Escaping is byte-wise, so escaped_len(a + b) == escaped_len(a) + escaped_len(b): the splitter
 * relies on that to measure records one piece at a time. Nothing here allocates or logs.
 */
#ifndef PD_ENCODE_H
#define PD_ENCODE_H

#include <stddef.h>

/* The fixed text around the escaped payload, and its length (14 bytes). */
#define PD_ENCODE_BODY_HEAD "{\"payload\":\""
#define PD_ENCODE_BODY_TAIL "\"}"
#define PD_ENCODE_BODY_OVERHEAD (sizeof(PD_ENCODE_BODY_HEAD) - 1 + sizeof(PD_ENCODE_BODY_TAIL) - 1)

/* Length of SRC[0..len) once escaped, without writing it. */
size_t pd_encode_escaped_len(const void *src, size_t len);

/*
 * Writes SRC[0..len) escaped to DST, which must hold pd_encode_escaped_len(src, len) bytes
 * (at most 6 * len). Returns the number of bytes written. No terminating NUL.
 */
size_t pd_encode_escape(char *dst, const void *src, size_t len);

/*
 * Builds the whole body {"payload":"<escaped payload>"} into DST (capacity CAP, no NUL
 * written). Returns 0 and *out_len, or PD_ETOOBIG when the body would be longer than CAP
 * (then *out_len is the length it would have had and DST is untouched).
 */
int pd_encode_body(const void *payload, size_t len, char *dst, size_t cap, size_t *out_len);

#endif
