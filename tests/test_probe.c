/* Tests of doctor's probes that need no other host: URLs read, loopback resolved, a TCP
 * connection to a listening socket and one to a closed port. TLS is tested by tests/e2e/doctor.sh
 * against `openssl s_server`. A name that does not resolve is not tried: it would ask the
 * machine's DNS server, which tests never reach. */
#include "pd_error.h"
#include "pd_probe.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testlib.h"

static void urls(void **state)
{
    struct pd_probe_url u;
    char why[128];
    assert_int_equal(pd_probe_url_parse("https://api.example.com/api/v1/login", &u, why, 128), 0);
    assert_string_equal(u.scheme, "https");
    assert_string_equal(u.host, "api.example.com");
    assert_string_equal(u.port, "443");
    assert_int_equal(pd_probe_url_parse("HTTP://127.0.0.1:8080/x", &u, why, 128), 0);
    assert_string_equal(u.scheme, "http");
    assert_string_equal(u.port, "8080");
    assert_int_equal(pd_probe_url_parse("http://[::1]/x", &u, why, 128), 0);
    assert_string_equal(u.host, "::1");
    assert_string_equal(u.port, "80");
    assert_int_equal(pd_probe_url_parse("ftp://host/x", &u, why, 128), PD_ECONFIG);
    assert_non_null(strstr(why, "ftp"));
    assert_int_equal(pd_probe_url_parse("no url", &u, why, 128), PD_ECONFIG);
}

/* A socket listening on 127.0.0.1; *PORT its port. */
static int listener(char *port, size_t len)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 4), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    snprintf(port, len, "%u", (unsigned)ntohs(a.sin_port));
    return fd;
}

static void dns_and_tcp(void **state)
{
    struct addrinfo *res = NULL;
    char port[16], addrs[128], addr[64], why[256];
    int fd = listener(port, sizeof(port));

    assert_int_equal(pd_probe_dns("127.0.0.1", port, &res, addrs, sizeof(addrs), why, 256), 0);
    assert_string_equal(addrs, "127.0.0.1");
    assert_int_equal(pd_probe_tcp(res, 2000, addr, sizeof(addr), why, sizeof(why)), 0);
    assert_string_equal(addr, "127.0.0.1");
    freeaddrinfo(res);
    /* Closed now: refused, in words. */
    close(fd);
    assert_int_equal(pd_probe_dns("127.0.0.1", port, &res, addrs, sizeof(addrs), why, 256), 0);
    assert_int_equal(pd_probe_tcp(res, 2000, addr, sizeof(addr), why, sizeof(why)), -EIO);
    assert_string_equal(why, strerror(ECONNREFUSED));
    freeaddrinfo(res);
}

int main(void)
{
    return PD_RUN_TESTS(NULL, NULL, urls, dns_and_tcp);
}
