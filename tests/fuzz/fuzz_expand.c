/*
 * libFuzzer target: hostile compressed files (pd_expand.h). The first byte picks the name the
 * file arrives under (.gz, .zst, .zip or none), its next bit where the check pass starts, the
 * rest is the file; the check pass runs, then every entry found is expanded into a memory file
 * under small limits. Nothing may crash, leak, read out of bounds or write past a limit.
 */
#include "pd_error.h"
#include "pd_expand.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[] = {"f.json.gz", "f.csv.zst", "f.zip", "f.txt"};
    static const struct pd_expand_limits lim = {.max_size = 4u << 20, .max_ratio = 100};
    struct pd_expand x;
    struct stat st;

    if (size < 1)
        return 0;
    int in = memfd_create("in", 0), out = memfd_create("out", 0);
    if (in < 0 || out < 0 || write(in, data + 1, size - 1) != (ssize_t)(size - 1))
        abort();
    if (pd_expand_open(&x, in, names[data[0] & 3]) == 0 && x.kind != PD_Z_NONE) {
        /* the check pass before a zip's first chunk: it writes nothing, so only its code */
        int rc = pd_expand_check(&x, data[0] >> 2 & 1, &lim);
        if (rc && rc != PD_EPARSE && rc != PD_ELIMIT)
            abort();
        for (size_t i = 0; i < x.n && i < 4; i++) {
            uint64_t got = 0;
            int erc = pd_expand_entry(&x, i, out, &lim, &got);
            if (got > lim.max_size || fstat(out, &st) || (erc && st.st_size != 0) ||
                (!erc && (uint64_t)st.st_size != got))
                abort(); /* past a limit, or a failed expansion left on disk */
        }
    }
    pd_expand_close(&x);
    close(in);
    close(out);
    return 0;
}
