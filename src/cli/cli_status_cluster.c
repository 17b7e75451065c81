/*
 * `patchdrop status --cluster`: every host of the [cluster], read from Redis (their heartbeats,
 * pd_cluster_hosts): per host whether it is alive, on Redis's shared rate or its own share, and
 * per watch its backlog and last delivery. A host silent longer than the heartbeat's life shows
 * as gone with when it was last seen.
 */
#include "pd_cli.h"
#include "pd_cluster.h"
#include "pd_config.h"
#include "pd_log.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

/* A name from Redis, as any name from elsewhere: escaped for the terminal. */
static void put_name(const char *name)
{
    char buf[1024];
    fputs(pd_log_escape(name ? name : "?", buf, sizeof(buf)), stdout);
}

static void print_host(const cJSON *h)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(h, "summary"), *w;
    const cJSON *cl = cJSON_GetObjectItemCaseSensitive(s, "cluster");
    const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(h, "name"));
    double seen = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(h, "last_seen_seconds"));

    put_name(name);
    if (!cJSON_IsObject(s)) {
        printf(": gone (last heartbeat %.0f s ago)\n", seen);
        return;
    }
    printf(": %s, %s, %.0f requests in flight, heartbeat %.0f s ago\n",
           cJSON_IsString(cJSON_GetObjectItem(s, "state"))
               ? cJSON_GetObjectItem(s, "state")->valuestring
               : "running",
           cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cl, "fallback"))
               ? "on its own share (Redis away)"
               : "on the shared rate",
           cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(s, "requests_in_flight")), seen);
    cJSON_ArrayForEach(w, cJSON_GetObjectItemCaseSensitive(s, "watches"))
    {
        const char *last =
            cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(w, "last_delivery"));
        printf("  [watch:");
        put_name(cJSON_GetStringValue(cJSON_GetObjectItem(w, "name")));
        printf("] backlog %.0f, failed lately %.0f, last delivery %s\n",
               cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(w, "backlog")),
               cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(w, "failed_lately")),
               last ? last : "none yet");
    }
}

int pd_cli_status_cluster(const struct pd_config *cfg, bool json)
{
    char why[600], *doc = NULL;
    cJSON *root;
    const cJSON *h;

    if (!cfg->cluster.redis) {
        fprintf(stderr,
                "patchdrop status --cluster: %s has no [cluster] redis: this host works alone\n",
                cfg->file);
        return PD_EXIT_USAGE;
    }
    if (pd_cluster_hosts(cfg, &doc, why, sizeof(why))) {
        fprintf(stderr, "patchdrop status --cluster: %s\n", why);
        return PD_EXIT_FAILED;
    }
    if (json) {
        printf("%s\n", doc);
        free(doc);
        return PD_EXIT_OK;
    }
    root = cJSON_Parse(doc);
    free(doc);
    h = cJSON_GetObjectItemCaseSensitive(root, "hosts");
    if (!cJSON_GetArraySize(h))
        printf("no host of this cluster has sent a heartbeat yet (key prefix %s)\n",
               cfg->cluster.key_prefix);
    cJSON_ArrayForEach(h, cJSON_GetObjectItemCaseSensitive(root, "hosts")) print_host(h);
    cJSON_Delete(root);
    return PD_EXIT_OK;
}
