/*
 * The HTTP engine never speaks TLS below 1.2, even when the system's OpenSSL configuration
 * allows older versions. The server is `openssl s_server` on 127.0.0.1 (a certificate made for
 * the test, checked as ca_file), offering only TLS 1.1 or only TLS 1.2; OPENSSL_CONF points both
 * it and this process (libcurl's OpenSSL reads it at its first use, after main() set it) at a
 * configuration that allows TLS 1.0 and security level 0, as a careless or legacy system might.
 * Without the engine's own minimum the TLS 1.1 handshake succeeds there. Exits 77 (skipped) when
 * the openssl tool is missing or cannot make a certificate or start a server.
 */
#include "testlib.h"

#include "pd_http.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SKIP 77

static char dir[64];
static char cert[128], key[128];

struct server {
    pid_t pid;
    int port;
};

/* Starts `openssl s_server` offering only VERSION ("-tls1_1", "-tls1_2") on a free port. */
static int server_start(const char *version, struct server *s)
{
    static int started;
    char out[160], line[256];
    memset(s, 0, sizeof(*s));
    /* A file of its own: an earlier server's port must never be read for this one's. */
    snprintf(out, sizeof(out), "%s/server%d%s.out", dir, ++started, version);
    s->pid = fork();
    if (s->pid < 0)
        return -1;
    if (s->pid == 0) {
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0)
            _exit(127);
        dup2(fd, 1);
        dup2(fd, 2);
        execlp("openssl", "openssl", "s_server", "-accept", "127.0.0.1:0", version, "-cert", cert,
               "-key", key, "-www", (char *)NULL);
        _exit(127);
    }
    /* It says "ACCEPT 127.0.0.1:PORT" once it listens; give it up to ten seconds. */
    for (int i = 0; i < 200 && !s->port; i++) {
        FILE *f = fopen(out, "r");
        while (f && fgets(line, sizeof(line), f))
            if (!strncmp(line, "ACCEPT ", 7) && strrchr(line, ':'))
                s->port = atoi(strrchr(line, ':') + 1);
        if (f)
            fclose(f);
        if (!s->port)
            usleep(50000);
    }
    if (!s->port) {
        kill(s->pid, SIGTERM);
        waitpid(s->pid, NULL, 0);
        return -1;
    }
    return 0;
}

static void server_stop(struct server *s)
{
    kill(s->pid, SIGTERM);
    waitpid(s->pid, NULL, 0);
}

struct outcome {
    int calls;
    long status;
    int curl_code;
    char error[CURL_ERROR_SIZE];
};

static void on_done(void *arg, const struct pd_http_response *r)
{
    struct outcome *o = arg;
    o->calls++;
    o->status = r->status;
    o->curl_code = r->curl_code;
    snprintf(o->error, sizeof(o->error), "%s", r->error ? r->error : "");
}

static void on_closed(void *arg)
{
    (*(int *)arg)++;
}

/* One GET over TLS to the server, the certificate checked; returns what happened. */
static struct outcome get(const struct server *s)
{
    uv_loop_t loop;
    struct pd_http *http = NULL;
    struct pd_http_opts o = {.timeout_ms = 10000, .tls_verify = true, .ca_file = cert};
    struct outcome out = {0};
    char url[64];
    int closed = 0;

    snprintf(url, sizeof(url), "https://127.0.0.1:%d/", s->port);
    struct pd_http_request req = {.method = "GET", .url = url};
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(pd_http_create(&loop, &o, &http), 0);
    assert_int_equal(pd_http_send(http, &req, on_done, &out, NULL), 0);
    while (out.calls == 0)
        uv_run(&loop, UV_RUN_ONCE);
    pd_http_close(&http, on_closed, &closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
    return out;
}

/* The control: the same server, certificate and configuration work over TLS 1.2. */
static void tls_1_2_is_spoken(void **state)
{
    struct server s;
    assert_int_equal(server_start("-tls1_2", &s), 0);
    struct outcome o = get(&s);
    server_stop(&s);
    if (o.status != 200)
        fail_msg("TLS 1.2: status %ld, curl code %d: %s", o.status, o.curl_code, o.error);
}

static void tls_1_1_is_refused(void **state)
{
    struct server s;
    assert_int_equal(server_start("-tls1_1", &s), 0);
    struct outcome o = get(&s);
    server_stop(&s);
    if (o.status != 0 || o.curl_code != CURLE_SSL_CONNECT_ERROR)
        fail_msg("TLS 1.1 was not refused: status %ld, curl code %d: %s", o.status, o.curl_code,
                 o.error);
}

/* The certificate, and an OpenSSL configuration that allows TLS 1.0 and up. */
static int prepare(void)
{
    char cmd[512], cnf[128];
    FILE *f;

    snprintf(dir, sizeof(dir), "/tmp/pd-tls.XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
    snprintf(key, sizeof(key), "%s/key.pem", dir);
    snprintf(cnf, sizeof(cnf), "%s/openssl.cnf", dir);
    if (!(f = fopen(cnf, "w")))
        return -1;
    fputs("openssl_conf = default_conf\n"
          "[default_conf]\nssl_conf = ssl_sect\n"
          "[ssl_sect]\nsystem_default = system_default_sect\n"
          "[system_default_sect]\nMinProtocol = TLSv1\nCipherString = DEFAULT:@SECLEVEL=0\n",
          f);
    if (fclose(f))
        return -1;
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
             "-addext subjectAltName=IP:127.0.0.1 -keyout %s -out %s >%s/req.out 2>&1",
             key, cert, dir);
    if (system(cmd) != 0)
        return -1;
    return setenv("OPENSSL_CONF", cnf, 1);
}

static void remove_dir(void)
{
    char cmd[128];
    if (dir[0] && snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir) < (int)sizeof(cmd))
        (void)!system(cmd);
}

int main(void)
{
    struct server probe;
    int rc;

    if (system("openssl version >/dev/null 2>&1") != 0) {
        printf("skipped: the openssl tool is not installed\n");
        return SKIP;
    }
    if (prepare() != 0) {
        printf("skipped: openssl could not make a test certificate in %s\n", dir);
        remove_dir();
        return SKIP;
    }
    if (server_start("-tls1_1", &probe) != 0) {
        printf("skipped: openssl s_server -tls1_1 could not be started\n");
        remove_dir();
        return SKIP;
    }
    server_stop(&probe);
    rc = PD_RUN_TESTS(NULL, NULL, tls_1_2_is_spoken, tls_1_1_is_refused);
    remove_dir();
    return rc;
}
