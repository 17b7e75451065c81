/*
 * Is this address on this machine? The one answer behind the warnings about secrets or
 * unauthenticated endpoints reachable beyond loopback: plain http:// Patchworks URLs (the
 * password, token or API key would travel in clear) and a metrics listener on a network
 * address (/metrics and /healthz have no authentication). Pure: nothing is resolved or logged.
 *
 * Loopback means 127.0.0.0/8, ::1 and IPv4-mapped ::ffff:127.0.0.0/104; by name only
 * "localhost" and names under ".localhost" (RFC 6761), any case, with or without a final dot.
 * Any other name counts as remote, since what it resolves to is up to DNS.
 */
#ifndef PD_NETADDR_H
#define PD_NETADDR_H

#include <stdbool.h>
#include <stddef.h>

struct sockaddr;

bool pd_sockaddr_is_loopback(const struct sockaddr *sa);

/* HOST as written in a URL: an IPv4 literal, an IPv6 literal with or without brackets, or a
 * name. */
bool pd_host_is_loopback(const char *host);

/*
 * True when URL is plain http:// to a host that is not loopback: whatever it carries can be
 * read on the network. False for https://, for loopback hosts, and for what is not a URL
 * (the config refuses those on its own). The URL is read by libcurl's parser, the one the
 * requests use, so "http://127.1/" and "http://0x7f000001/" are loopback as they are there.
 * HOST (optional, LEN bytes) receives the host when true, for a message that must not repeat
 * the whole URL (it may hold a user and password).
 */
bool pd_url_is_cleartext_remote(const char *url, char *host, size_t len);

#endif
