/*
 * libFuzzer target for the config file reader: any bytes as a config file must give either a
 * config or a list of "FILE:LINE: ..." problems, never a crash, a leak or a hang.
 */
#include "pd_config.h"
#include "pd_error.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    char path[64];
    struct pd_config *cfg = NULL;
    char *errors = NULL;

    if (fd < 0 && (fd = memfd_create("pd-fuzz.conf", 0)) < 0)
        return 0;
    if (ftruncate(fd, 0) || pwrite(fd, data, size, 0) != (ssize_t)size)
        return 0;
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    int rc = pd_config_load(path, &cfg, &errors);
    if (rc == 0) {
        if (!cfg || errors)
            abort();
        FILE *null = fopen("/dev/null", "w");
        if (null) {
            pd_config_print(cfg, null);
            fclose(null);
        }
    } else if (rc == PD_ECONFIG && (!errors || !strstr(errors, path))) {
        abort(); /* every problem names the file */
    }
    pd_config_destroy(&cfg);
    free(errors);
    return 0;
}
