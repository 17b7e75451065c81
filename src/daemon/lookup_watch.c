/*
 * Lookup watches: a dropped CSV file is synced into its lookup (pd_lookup.h) instead of being
 * sent to a flow; the sync's report goes into the file's receipt.
 */
#include "daemon_internal.h"

#include "pd_error.h"
#include "pd_lookup.h"

#include <stdlib.h>
#include <string.h>

/* ---- lookup watches: a dropped CSV file is synced into the lookup (pd_lookup.h) ---------- */

static void on_lookup_synced(void *arg, const struct pd_lookup_sync_report *r)
{
    struct job *j = arg;
    struct pd_daemon *d = j->d;
    char words[400];

    j->sync = NULL;
    j->busy = false;
    j->in_flight = false;
    enum pd_delivery_verdict v = pd_delivery_verdict(r->err);
    if (v == PD_DL_STOP || v == PD_DL_LATER) {
        /* Not this file's fault: it stays in work/ and is synced again later. */
        bool fatal = v == PD_DL_STOP;
        if (fatal && !d->fatal)
            d->fatal = strdup(r->message ? r->message : pd_strerror(r->err));
        job_end(j);
        if (fatal && !d->stopping)
            pd_daemon_stop(d, 0);
        return;
    }
    pd_lookup_sync_summary(r, words, sizeof(words));
    free(j->lookup_words);
    free(j->lookup_json);
    j->lookup_words = strdup(words);
    j->lookup_json = pd_lookup_sync_json(r, true);
    if (r->err) {
        job_fail(j, "%s", r->message ? r->message : pd_strerror(r->err));
        job_set(j, STEP_FINISH_FAIL);
    } else {
        job_set(j, STEP_FINISH_OK);
    }
    job_run(j, work_finish);
}

void job_lookup_start(struct job *j)
{
    const struct pd_watch *wc = j->w->cfg;
    struct pd_lookup_sync_opts o = {.delete_missing = wc->delete_missing, .name = j->js.name};
    int rc = pd_lookup_sync_start(j->d->client, &j->d->cfg->pw, wc->lookup_id, j->work_path, &o,
                                  on_lookup_synced, j, &j->sync);
    if (rc) {
        job_end(j); /* closing, or out of memory: the file stays in work/ for later */
        return;
    }
    job_sending(j);
}
