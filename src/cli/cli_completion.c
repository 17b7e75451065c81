/*
 * `patchdrop completion bash|zsh` (hidden): prints a shell completion script made from the
 * command table and each command's own --help, the same text the docs test checks
 * (tests/e2e/cli_docs.sh), so a new command or option completes without anyone editing a
 * script. The build runs it and the package installs both scripts.
 */
#include "pd_cli.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_LONGS 48

/* One command's long options, found in its --help: their short forms, which take a value and
 * which of those a file. */
struct cmd_opts {
    char *names[MAX_LONGS];
    char shorts[MAX_LONGS]; /* '\0': none */
    bool file[MAX_LONGS];
    bool value[MAX_LONGS];
    size_t n;
};

/* Runs CMD's --help in this process with stdout caught: its text (free it), or NULL. */
static char *help_of(const struct pd_cli_command *cmd)
{
    char name[64], help[] = "--help", *argv[] = {name, help, NULL}, *text = NULL;
    FILE *tmp = tmpfile();
    off_t len;
    int saved;

    snprintf(name, sizeof(name), "%s", cmd->name);
    if (!tmp)
        return NULL;
    fflush(stdout);
    saved = dup(STDOUT_FILENO);
    if (saved < 0 || dup2(fileno(tmp), STDOUT_FILENO) < 0) {
        if (saved >= 0)
            close(saved);
        fclose(tmp);
        return NULL;
    }
    cmd->run(2, argv);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    len = lseek(fileno(tmp), 0, SEEK_END);
    if (len >= 0 && (text = calloc(1, (size_t)len + 1)) &&
        pread(fileno(tmp), text, (size_t)len, 0) != len)
        text[0] = '\0';
    fclose(tmp);
    return text;
}

/* The argument written after an option ("--config FILE"): whether it takes one, and a file. */
static void argument_of(const char *after, bool *value, bool *file)
{
    size_t n = 0;

    *value = *file = false;
    if (after[0] != ' ' && after[0] != '=')
        return;
    after++;
    while (isupper((unsigned char)after[n]) || after[n] == '.' || after[n] == '_')
        n++;
    if (!n || isalnum((unsigned char)after[n]))
        return;
    *value = true;
    *file = (n >= 4 && !strncmp(after + n - 4, "FILE", 4)) || (n >= 3 && !strncmp(after, "DIR", 3));
}

/* The option at S, a "--long" token: its name, and its short form and argument wherever the
 * text shows them (the usage line names it too, the option's own line has them all). */
static void add_long(struct cmd_opts *o, const char *text, const char *s, size_t n)
{
    size_t i = 0;
    bool value, file;

    while (i < o->n && (strlen(o->names[i]) != n || strncmp(o->names[i], s, n)))
        i++;
    if (i == o->n) {
        if (o->n >= MAX_LONGS || !(o->names[i] = strndup(s, n)))
            return;
        o->shorts[i] = '\0';
        o->value[i] = o->file[i] = false;
        o->n++;
    }
    /* "  -c, --config FILE": the short form just before it. */
    if (s - text >= 4 && s[-4] == '-' && isalpha((unsigned char)s[-3]) && s[-2] == ',' &&
        s[-1] == ' ')
        o->shorts[i] = s[-3];
    argument_of(s + n, &value, &file);
    o->value[i] |= value;
    o->file[i] |= file;
}

/* Every "--long-name" in TEXT, as tests/e2e/cli_docs.sh finds them, and --help. */
static void find_longs(const char *text, struct cmd_opts *o)
{
    o->n = 0;
    if ((o->names[0] = strdup("--help"))) {
        o->shorts[0] = 'h';
        o->value[0] = o->file[0] = false;
        o->n = 1;
    }
    for (const char *s = text; (s = strstr(s, "--"));) {
        size_t n = 2;

        while (islower((unsigned char)s[n]) || s[n] == '-')
            n++;
        while (n > 2 && s[n - 1] == '-')
            n--;
        if (n >= 4 && !(s > text && (isalnum((unsigned char)s[-1]) || s[-1] == '-')))
            add_long(o, text, s, n);
        s += n;
    }
}

static void free_opts(struct cmd_opts *o)
{
    for (size_t i = 0; i < o->n; i++)
        free(o->names[i]);
    o->n = 0;
}

/* Writes S for inside single quotes; for zsh's specs also with ':', '[' and ']' escaped. */
static void quoted(FILE *out, const char *s, bool zsh)
{
    for (; *s; s++) {
        if (*s == '\'')
            fputs("'\\''", out);
        else if (zsh && (*s == ':' || *s == '[' || *s == ']' || *s == '\\'))
            fprintf(out, "\\%c", *s);
        else
            fputc(*s, out);
    }
}

/* "    --config|-c" for the options of O that take a value, a file when FILE; false: none. */
static bool bash_pattern(FILE *out, const struct cmd_opts *o, bool file)
{
    bool any = false;

    for (size_t i = 0; i < o->n; i++) {
        if (!o->value[i] || o->file[i] != file)
            continue;
        fprintf(out, "%s%s", any ? "|" : "        ", o->names[i]);
        if (o->shorts[i])
            fprintf(out, "|-%c", o->shorts[i]);
        any = true;
    }
    return any;
}

static void bash_command(FILE *out, const struct pd_cli_command *cmd, const struct cmd_opts *o)
{
    fprintf(out, "    %s)\n        opts='", cmd->name);
    for (size_t i = 0; i < o->n; i++)
        fprintf(out, "%s%s", i ? " " : "", o->names[i]);
    fprintf(out, "'\n        case $prev in\n");
    if (bash_pattern(out, o, true))
        fprintf(out, ") COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n");
    if (bash_pattern(out, o, false))
        fprintf(out, ") return ;; # a value only the user knows\n");
    fprintf(out, "        esac\n        ;;\n");
}

/* Calls EACH for every listed command with its options (hidden commands have no summary). */
static void for_each_command(FILE *out, const struct pd_cli_command *cmds, size_t n,
                             void (*each)(FILE *, const struct pd_cli_command *,
                                          const struct cmd_opts *))
{
    for (size_t i = 0; i < n; i++) {
        struct cmd_opts o = {.n = 0};
        char *help = cmds[i].summary ? help_of(&cmds[i]) : NULL;
        if (!help)
            continue;
        find_longs(help, &o);
        each(out, &cmds[i], &o);
        free_opts(&o);
        free(help);
    }
}

static void print_bash(FILE *out, const struct pd_cli_command *cmds, size_t n)
{
    fputs("# bash completion for patchdrop: made by `patchdrop completion bash` from its\n"
          "# commands and their --help.\n"
          "_patchdrop() {\n"
          "    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} cmd= opts i\n"
          "    COMPREPLY=()\n"
          "    for ((i = 1; i < COMP_CWORD; i++)); do\n"
          "        case ${COMP_WORDS[i]} in -*) ;; *) cmd=${COMP_WORDS[i]}; break ;; esac\n"
          "    done\n"
          "    if [[ -z $cmd ]]; then\n"
          "        COMPREPLY=($(compgen -W '--help --version",
          out);
    for (size_t i = 0; i < n; i++)
        if (cmds[i].summary)
            fprintf(out, " %s", cmds[i].name);
    fputs("' -- \"$cur\"))\n        return\n    fi\n    case $cmd in\n", out);
    for_each_command(out, cmds, n, bash_command);
    fputs("    *) return ;;\n    esac\n"
          "    if [[ $cur == -* ]]; then\n"
          "        COMPREPLY=($(compgen -W \"$opts\" -- \"$cur\"))\n"
          "    else\n"
          "        COMPREPLY=($(compgen -f -- \"$cur\"))\n"
          "    fi\n"
          "}\n"
          "complete -o filenames -F _patchdrop patchdrop\n",
          out);
}

static void zsh_command(FILE *out, const struct pd_cli_command *cmd, const struct cmd_opts *o)
{
    fprintf(out, "    %s)\n        _arguments -s", cmd->name);
    for (size_t i = 0; i < o->n; i++) {
        const char *arg = o->file[i] ? ":file:_files" : o->value[i] ? ":value: " : "";
        if (o->shorts[i])
            fprintf(out, " \\\n            '(-%c %s)'{-%c,%s}%s%s%s", o->shorts[i], o->names[i],
                    o->shorts[i], o->names[i], *arg ? "'" : "", arg, *arg ? "'" : "");
        else
            fprintf(out, " \\\n            '%s%s%s'", o->names[i], o->value[i] ? "=" : "", arg);
    }
    fprintf(out, " \\\n            '*:file:_files'\n        ;;\n");
}

static void print_zsh(FILE *out, const struct pd_cli_command *cmds, size_t n)
{
    fputs("#compdef patchdrop\n"
          "# zsh completion for patchdrop: made by `patchdrop completion zsh` from its\n"
          "# commands and their --help.\n"
          "_patchdrop() {\n"
          "    local -a commands\n"
          "    commands=(\n",
          out);
    for (size_t i = 0; i < n; i++) {
        if (!cmds[i].summary)
            continue;
        fprintf(out, "        '%s:", cmds[i].name);
        quoted(out, cmds[i].summary, false);
        fputs("'\n", out);
    }
    fputs("    )\n"
          "    if (( CURRENT == 2 )); then\n"
          "        _describe -t commands 'patchdrop command' commands\n"
          "        return\n"
          "    fi\n"
          "    shift words\n"
          "    (( CURRENT-- ))\n"
          "    case ${words[1]} in\n",
          out);
    for_each_command(out, cmds, n, zsh_command);
    fputs("    esac\n}\n_patchdrop \"$@\"\n", out);
}

static const struct pd_cli_spec spec = {
    .name = "completion",
    .synopsis = "bash|zsh",
    .help = "Prints a completion script for the shell; the package installs both.\n"
            "  bash: source it, or put it in /usr/share/bash-completion/completions/patchdrop\n"
            "  zsh:  put it as _patchdrop in a folder of $fpath\n",
    .common = 0,
    .opts = NULL,
    .shortopts = NULL,
    .max_args = 1,
};

int pd_cli_completion(const struct pd_cli_command *cmds, size_t n, int argc, char **argv)
{
    struct pd_cli_parser p;

    if (pd_cli_parse(&p, &spec, argc, argv))
        return p.status;
    if (p.nargs != 1)
        return pd_cli_usage_error(&spec, "name the shell: bash or zsh");
    if (!strcmp(p.args[0], "bash"))
        print_bash(stdout, cmds, n);
    else if (!strcmp(p.args[0], "zsh"))
        print_zsh(stdout, cmds, n);
    else
        return pd_cli_usage_error(&spec, "'%s' is not a shell it knows: bash or zsh", p.args[0]);
    return fflush(stdout) ? PD_EXIT_FAILED : PD_EXIT_OK;
}
