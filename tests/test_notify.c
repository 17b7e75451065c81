/*
 * `patchdrop run` under systemd: the notifications it sends to NOTIFY_SOCKET (READY, WATCHDOG,
 * RELOADING on SIGHUP, READY again, STOPPING on SIGTERM). The command runs in-process on an
 * empty drop folder, so no request is ever made; a helper thread plays systemd.
 */
#include "testlib.h"

#include "pd_cli.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static char dir[128];
static int sock = -1;
static char log_text[4096];
static size_t log_len;

/* Receives notifications until one contains WANT (or 10 s pass); keeps them all in log_text. */
static int wait_for(const char *want)
{
    for (int waited = 0; waited < 10000; waited += 50) {
        struct pollfd p = {.fd = sock, .events = POLLIN};
        if (poll(&p, 1, 50) > 0) {
            char buf[512];
            ssize_t n = recv(sock, buf, sizeof(buf) - 1, 0);
            if (n > 0) {
                buf[n] = '\0';
                log_len += (size_t)snprintf(log_text + log_len, sizeof(log_text) - log_len,
                                            "%s|", buf);
                if (strstr(buf, want))
                    return 1;
            }
        }
    }
    return 0;
}

static int reload_seen, stopping_seen, ready_seen;

static void *play_systemd(void *arg)
{
    ready_seen = wait_for("READY=1");
    kill(getpid(), SIGHUP);
    reload_seen = wait_for("RELOADING=1") && wait_for("READY=1");
    kill(getpid(), SIGTERM);
    stopping_seen = wait_for("STOPPING=1");
    return NULL;
}

static void notifications_follow_the_life_cycle(void **state)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char conf[256], drop[200], cmd[300];
    pthread_t t;

    snprintf(dir, sizeof(dir), "/tmp/pd-test-notify-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(drop, sizeof(drop), "%s/drop", dir);
    assert_int_equal(mkdir(drop, 0700), 0);
    snprintf(conf, sizeof(conf), "%s/c.conf", dir);
    FILE *f = fopen(conf, "w");
    assert_non_null(f);
    fprintf(f, "[patchworks]\nemail = a@example.com\npassword = not-used-here\n"
               "login_url = http://127.0.0.1:9/login\nstart_url = http://127.0.0.1:9\n"
               "[state]\ndir = %s/state\n[daemon]\nshutdown_grace = 1s\n"
               "[watch:w]\npath = %s\nflow_id = 1\n",
            dir, drop);
    fclose(f);
    chmod(conf, 0600);

    assert_true(snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/notify", dir) < (int)sizeof(sa.sun_path));
    sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(sock >= 0);
    assert_int_equal(bind(sock, (struct sockaddr *)&sa, sizeof(sa)), 0);
    setenv("NOTIFY_SOCKET", sa.sun_path, 1);
    char pid[32];
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    setenv("WATCHDOG_PID", pid, 1);
    setenv("WATCHDOG_USEC", "2000000", 1);

    assert_int_equal(pthread_create(&t, NULL, play_systemd, NULL), 0);
    char *argv[] = {"run", "-c", conf, NULL};
    int rc = pd_cli_run(3, argv);
    pthread_join(t, NULL);

    print_message("notifications: %s\n", log_text);
    assert_int_equal(rc, 0);
    assert_true(ready_seen);
    assert_true(reload_seen);
    assert_true(stopping_seen);
    /* The watchdog is pinged from the loop's heartbeat. */
    assert_non_null(strstr(log_text, "WATCHDOG=1"));
    /* READY comes before RELOADING, which comes before STOPPING. */
    const char *ready = strstr(log_text, "READY=1"), *reloading = strstr(log_text, "RELOADING=1");
    assert_true(ready && reloading && ready < reloading);
    assert_true(reloading < strstr(log_text, "STOPPING=1"));

    close(sock);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
#ifndef PD_HAVE_SYSTEMD
    printf("skipped: built without libsystemd\n");
    return 77; /* ctest reports it skipped, never passed */
#endif
    return PD_RUN_TESTS(NULL, NULL, notifications_follow_the_life_cycle);
}
