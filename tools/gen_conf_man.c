/*
 * Build tool: writes the man page patchdrop.conf(5) from its template (docs/patchdrop.conf.5.in)
 * with every key of the config table (src/app/config.c) in place of the line @KEYS@, so the page can
 * never miss a key. `gen_conf_man --keys` lists "section key" lines instead, for tests.
 */
#include "pd_config.h"

#include <stdio.h>
#include <string.h>

/* Text for troff: backslashes doubled, a leading dot or quote neutralised. */
static void roff(FILE *out, const char *s)
{
    if (*s == '.' || *s == '\'')
        fputs("\\&", out);
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\e", out);
        else if (*s == '-')
            fputs("\\-", out);
        else
            fputc(*s, out);
    }
}

static void keys(FILE *out)
{
    static const char *const order[] = {"patchworks", "state",   "daemon",
                                        "metrics",    "cluster", "watch"};
    const char *section, *def;

    for (size_t o = 0; o < sizeof(order) / sizeof(order[0]); o++) {
        fprintf(out, ".SS [%s]\n", strcmp(order[o], "watch") ? order[o] : "watch:NAME");
        for (size_t i = 0; pd_config_key_name(i, &section); i++) {
            const char *name = pd_config_key_name(i, &section);
            const char *help = pd_config_key_help(i, &def);
            if (strcmp(section, order[o]))
                continue;
            fputs(".TP\n\\fB", out);
            roff(out, name);
            fputs("\\fR", out);
            if (def) {
                fputs(" = ", out);
                roff(out, def);
            }
            fputc('\n', out);
            roff(out, help);
            /* A key without a fixed default is unset, required, or defaults to something its
             * text tells (derived from other keys): the template says so once, instead of a
             * "(no default)" here that would contradict "default <work_dir>/archive". */
            fputs(".\n", out);
        }
    }
}

int main(int argc, char **argv)
{
    char line[1024];
    FILE *in, *out;
    const char *section;

    if (argc == 2 && !strcmp(argv[1], "--keys")) {
        for (size_t i = 0; pd_config_key_name(i, &section); i++)
            printf("%s %s\n", section, pd_config_key_name(i, &section));
        return 0;
    }
    if (argc != 3) {
        fprintf(stderr, "usage: gen_conf_man TEMPLATE OUTPUT | --keys\n");
        return 2;
    }
    if (!(in = fopen(argv[1], "r")) || !(out = fopen(argv[2], "w"))) {
        perror("gen_conf_man");
        return 1;
    }
    while (fgets(line, sizeof(line), in)) {
        if (!strcmp(line, "@KEYS@\n"))
            keys(out);
        else
            fputs(line, out);
    }
    fclose(in);
    return fclose(out) ? 1 : 0;
}
