/*
 * Error codes shared by every module.
 *
 * Functions return 0 on success or a negative code: -errno for system errors, or one of the
 * PD_E* domain codes below (all below -1000 so they never collide with errno values).
 * pd_strerror() turns either kind into words.
 */
#ifndef PD_ERROR_H
#define PD_ERROR_H

#define PD_ERRNO_MAP(XX)                                                                           \
    XX(CONFIG, -1001, "invalid configuration")                                                     \
    XX(USAGE, -1002, "invalid command line")                                                       \
    XX(PARSE, -1003, "malformed input")                                                            \
    XX(TOOBIG, -1004, "too large for one request")                                                 \
    XX(ENCODING, -1005, "invalid text encoding")                                                   \
    XX(AUTH, -1006, "credentials refused")                                                         \
    XX(REJECTED, -1007, "rejected by the server")                                                  \
    XX(PROTOCOL, -1008, "unexpected answer from the server")                                       \
    XX(NOMEM, -1009, "out of memory")                                                              \
    XX(LIMIT, -1010, "a limit was reached")                                                        \
    XX(STATE, -1011, "damaged state record")                                                       \
    XX(CANCELED, -1012, "canceled")                                                                \
    XX(EMPTY, -1013, "empty input")                                                                \
    XX(AMBIGUOUS, -1014, "sent several times without an answer")

enum pd_err {
#define XX(name, code, text) PD_E##name = (code),
    PD_ERRNO_MAP(XX)
#undef XX
};

/* Words for a code from any module; never NULL. */
const char *pd_strerror(int code);

#endif
