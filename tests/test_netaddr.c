/* Tests of the loopback decision behind the cleartext-URL and metrics-listener warnings. */
#include "pd_config.h"
#include "pd_netaddr.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "testlib.h"

static void hosts(void **state)
{
    static const char *const loop[] = {
        "127.0.0.1",          "127.1.2.3", "127.255.255.255", "::1",           "[::1]",
        "[::ffff:127.0.0.1]", "localhost", "LocalHost.",      "api.localhost", "[0:0:0:0:0:0:0:1]"};
    static const char *const remote[] = {"128.0.0.1",
                                         "10.0.0.1",
                                         "0.0.0.0",
                                         "::",
                                         "[::]",
                                         "[::ffff:10.0.0.1]",
                                         "example.com",
                                         "example.invalid",
                                         "notlocalhost",
                                         "localhost.com",
                                         "localhostx",
                                         "[fe80::1%eth0]",
                                         "",
                                         "[::1",
                                         "fe80::1"};
    for (size_t i = 0; i < sizeof(loop) / sizeof(loop[0]); i++)
        if (!pd_host_is_loopback(loop[i]))
            fail_msg("%s should be loopback", loop[i]);
    for (size_t i = 0; i < sizeof(remote) / sizeof(remote[0]); i++)
        if (pd_host_is_loopback(remote[i]))
            fail_msg("%s should not be loopback", remote[i]);
    assert_false(pd_host_is_loopback(NULL));
}

static void urls(void **state)
{
    static const char *const clear_remote[] = {
        "http://example.invalid/api/v1/login",
        "http://10.1.2.3:8080/x",
        "HTTP://Example.COM/",
        "http://[2001:db8::1]/login",
        "http://localhost.example.com/",
        "http://user:pw@example.com/",
    };
    static const char *const fine[] = {
        "https://example.invalid/api/v1/login",
        "http://127.0.0.1:9000/api/v1/login",
        "http://127.1/",
        "http://0x7f000001/",
        "http://[::1]:80/x",
        "http://localhost:8080/x",
        "http://LOCALHOST./x",
        "https://svc-fabric.pwks.co/api/v1/login",
        "not a url",
        "",
    };
    for (size_t i = 0; i < sizeof(clear_remote) / sizeof(clear_remote[0]); i++)
        if (!pd_url_is_cleartext_remote(clear_remote[i], NULL, 0))
            fail_msg("%s should be cleartext to a remote host", clear_remote[i]);
    for (size_t i = 0; i < sizeof(fine) / sizeof(fine[0]); i++)
        if (pd_url_is_cleartext_remote(fine[i], NULL, 0))
            fail_msg("%s should not be cleartext to a remote host", fine[i]);
    assert_false(pd_url_is_cleartext_remote(NULL, NULL, 0));

    /* The host alone is handed back: never the user and password a URL may hold. */
    char host[64];
    assert_true(
        pd_url_is_cleartext_remote("http://ops:s3cret@Example.COM:8080/x", host, sizeof(host)));
    assert_string_equal(host, "Example.COM");
    assert_true(pd_url_is_cleartext_remote("http://[2001:db8::1]/x", host, sizeof(host)));
    assert_string_equal(host, "[2001:db8::1]");
}

/* The metrics listener's address as the config reads it. */
static bool listen_loopback(const char *listen)
{
    struct sockaddr_storage ss;
    unsigned len;
    assert_int_equal(pd_parse_listen(listen, &ss, &len), 0);
    return pd_sockaddr_is_loopback((const struct sockaddr *)&ss);
}

static void listen_addresses(void **state)
{
    assert_true(listen_loopback("127.0.0.1:9465"));
    assert_true(listen_loopback("127.0.0.2:0"));
    assert_true(listen_loopback("[::1]:9465"));
    assert_true(listen_loopback("localhost:9465"));
    assert_false(listen_loopback("0.0.0.0:9465"));
    assert_false(listen_loopback("[::]:9465"));
    assert_false(listen_loopback("192.168.1.10:9465"));
    assert_false(pd_sockaddr_is_loopback(NULL));
}

int main(void)
{
    return PD_RUN_TESTS(NULL, NULL, hosts, urls, listen_addresses);
}
