/*
 * The effective configuration, as `patchdrop check-config` shows it: every key of the
 * table with its value or default, secrets masked, each value set in a file under a comment
 * saying which file and line.
 */
#include "config_internal.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Where a value set in the file came from, on the line above it: the file and line, and the
 * variables it was written with (their names only: a value may be a secret). */
static void print_origin(const struct pd_config *cfg, enum section sec, size_t watch, size_t key,
                         FILE *out)
{
    const struct cfg_origin *o = cfg_origin_of(cfg, sec, watch, key);

    if (!o || !o->where)
        return;
    if (o->vars)
        fprintf(out, "; from %s, through %s\n", o->where, o->vars);
    else
        fprintf(out, "; from %s\n", o->where);
}

static void print_section(const struct pd_config *cfg, enum section sec, size_t watch,
                          const void *base, FILE *out)
{
    for (size_t i = 0; i < cfg_nkeys; i++) {
        const struct key *k = &cfg_keys[i];
        const char *field = (const char *)base + k->offset;
        char buf[64];

        if (k->section != sec)
            continue;
        print_origin(cfg, sec, watch, i, out);
        switch (k->type) {
        case T_SECRET: {
            const char *v = *(char *const *)(const void *)field;
            if (v)
                fprintf(out, "%s = ********\n", k->name);
            else
                fprintf(out, "; %s is not set\n", k->name);
            break;
        }
        case T_STRING:
        case T_PATH:
        case T_URL:
        case T_LISTEN:
        case T_ID: {
            const char *v = *(char *const *)(const void *)field;
            if (v)
                fprintf(out, "%s = %s\n", k->name, v);
            else
                fprintf(out, "; %s is not set\n", k->name);
            break;
        }
        case T_UINT:
        case T_SIZE:
            fprintf(out, "%s = %" PRIu64 "\n", k->name, *(const uint64_t *)(const void *)field);
            break;
        case T_DURATION:
            cfg_format_duration(*(const uint64_t *)(const void *)field, buf, sizeof(buf));
            fprintf(out, "%s = %s\n", k->name, buf);
            break;
        case T_BOOL:
            fprintf(out, "%s = %s\n", k->name, *(const bool *)(const void *)field ? "yes" : "no");
            break;
        case T_ENUM:
            fprintf(out, "%s = %s\n", k->name, k->choices[*(const int *)(const void *)field]);
            break;
        case T_FORMAT:
            fprintf(out, "%s = %s\n", k->name, pd_format_name(*(const int *)(const void *)field));
            break;
        }
    }
}

void pd_config_print(const struct pd_config *cfg, FILE *out)
{
    fprintf(out, "; effective configuration of %s (defaults included, secrets masked)\n",
            cfg->file);
    fprintf(out, "[patchworks]\n");
    fprintf(out, "; signs in with %s",
            cfg->pw.auth == PD_AUTH_API_KEY ? "an API key" : "email and password");
    if (cfg->pw.secret_source)
        fprintf(out, " (secret from %s)", cfg->pw.secret_source);
    fprintf(out, "\n");
    print_section(cfg, SEC_PATCHWORKS, 0, &cfg->pw, out);
    fprintf(out, "\n[state]\n");
    print_section(cfg, SEC_STATE, 0, &cfg->state, out);
    fprintf(out, "\n[daemon]\n");
    print_section(cfg, SEC_DAEMON, 0, &cfg->daemon, out);
    fprintf(out, "\n[metrics]\n");
    print_section(cfg, SEC_METRICS, 0, &cfg->metrics, out);
    if (cfg->cluster.redis) {
        fprintf(out, "\n[cluster]\n");
        print_section(cfg, SEC_CLUSTER, 0, &cfg->cluster, out);
    }
    for (size_t i = 0; i < cfg->nwatches; i++) {
        fprintf(out, "\n[watch:%s]\n", cfg->watches[i].name);
        print_section(cfg, SEC_WATCH, i, &cfg->watches[i], out);
    }
}
