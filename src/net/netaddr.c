/* Loopback or not (see pd_netaddr.h). */
#include "pd_netaddr.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

static bool v4_is_loopback(const struct in_addr *a)
{
    return (ntohl(a->s_addr) >> 24) == 127;
}

static bool v6_is_loopback(const struct in6_addr *a)
{
    if (IN6_IS_ADDR_LOOPBACK(a))
        return true;
    if (IN6_IS_ADDR_V4MAPPED(a)) {
        struct in_addr v4;
        memcpy(&v4.s_addr, &a->s6_addr[12], 4);
        return v4_is_loopback(&v4);
    }
    return false;
}

bool pd_sockaddr_is_loopback(const struct sockaddr *sa)
{
    if (!sa)
        return false;
    if (sa->sa_family == AF_INET)
        return v4_is_loopback(&((const struct sockaddr_in *)(const void *)sa)->sin_addr);
    if (sa->sa_family == AF_INET6)
        return v6_is_loopback(&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr);
    return false;
}

/* NAME (LEN bytes, final dot removed) is "localhost" or ends in ".localhost". */
static bool is_localhost_name(const char *name, size_t len)
{
    static const char lh[] = "localhost";
    size_t n = sizeof(lh) - 1;

    if (len < n || strncasecmp(name + len - n, lh, n))
        return false;
    return len == n || name[len - n - 1] == '.';
}

bool pd_host_is_loopback(const char *host)
{
    char buf[INET6_ADDRSTRLEN + 64];
    size_t len;
    struct in_addr v4;
    struct in6_addr v6;

    if (!host || !*host)
        return false;
    len = strlen(host);
    if (host[0] == '[') {
        if (len < 2 || host[len - 1] != ']')
            return false;
        host++;
        len -= 2;
    }
    if (len >= sizeof(buf))
        return false;
    memcpy(buf, host, len);
    buf[len] = '\0';
    /* A zone ("fe80::1%eth0") is never loopback; inet_pton refuses it, which says the same. */
    if (inet_pton(AF_INET, buf, &v4) == 1)
        return v4_is_loopback(&v4);
    if (inet_pton(AF_INET6, buf, &v6) == 1)
        return v6_is_loopback(&v6);
    if (len && buf[len - 1] == '.')
        len--;
    return is_localhost_name(buf, len);
}

bool pd_url_is_cleartext_remote(const char *url, char *hostbuf, size_t len)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL;
    bool remote = false;

    if (!u || !url)
        goto out;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
        goto out;
    remote = !strcasecmp(scheme, "http") && !pd_host_is_loopback(host);
    if (remote && hostbuf && len)
        snprintf(hostbuf, len, "%s", host);
out:
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return remote;
}
