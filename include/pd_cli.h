/*
 * The subcommands of `patchdrop`. main.c only finds the command and calls it; each command
 * parses its own options and returns the process exit status:
 *   0 everything done, 1 something was rejected or failed, 2 usage or configuration error.
 */
#ifndef PD_CLI_H
#define PD_CLI_H

#define PD_EXIT_OK 0
#define PD_EXIT_FAILED 1
#define PD_EXIT_USAGE 2

int pd_cli_check_config(int argc, char **argv);
int pd_cli_run(int argc, char **argv);
int pd_cli_send(int argc, char **argv);
int pd_cli_login(int argc, char **argv);
int pd_cli_status(int argc, char **argv);
int pd_cli_lookup(int argc, char **argv);

/*
 * Loads the config named by -c/--config (or $PATCHDROP_CONFIG, or /etc/patchdrop/patchdrop.conf),
 * printing every error to stderr. Returns 0 and *out, or PD_EXIT_USAGE. Every command that
 * holds a secret calls it first: it makes the process non-dumpable (no core file, /proc/PID
 * closed to the user) before the password is read, and warns on stderr about settings that
 * weaken security (tls_verify = no, plain http:// to another machine, world-writable folders).
 */
struct pd_config;
int pd_cli_load_config(const char *file, struct pd_config **out);

/* Why [metrics] listen is a risk (words for a warning), or NULL when it is off or loopback. */
const char *pd_cli_metrics_exposed(const struct pd_config *cfg);

/* The config file the user meant: the argument, $PATCHDROP_CONFIG or the system default. */
const char *pd_cli_config_path(const char *arg);

#endif
