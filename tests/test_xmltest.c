/*
 * James Clark's xmltest suite (the XML conformance suite's first part): every standalone
 * not-well-formed document (the .xml files of not-wf/sa, 186 of them) must be refused by the
 * splitter, as a file small enough to go whole. The suite is not packaged by Debian and nothing is
 * downloaded: point PD_XMLTEST_DIR at an unpacked xmltest folder (the one holding not-wf/),
 * or have it at one of the paths below; without it the test is skipped (exit 77).
 */
#include "pd_config.h"
#include "pd_split.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *find_suite(void)
{
    static const char *const paths[] = {
        "/usr/share/xml/xmlconf/xmltest", "/usr/share/xmlconf/xmltest",
        "/usr/local/share/xmlconf/xmltest", "/usr/share/doc/xmltest"};
    static char buf[4096];
    const char *env = getenv("PD_XMLTEST_DIR");
    struct stat st;
    if (env && *env) {
        snprintf(buf, sizeof(buf), "%s/not-wf/sa", env);
        return stat(buf, &st) == 0 ? buf : NULL;
    }
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        snprintf(buf, sizeof(buf), "%s/not-wf/sa", paths[i]);
        if (stat(buf, &st) == 0)
            return buf;
    }
    return NULL;
}

/* 1 when the splitter refuses the file at PATH. */
static int refused(const char *path, const char *name, char *why, size_t whysz)
{
    struct pd_split_opts o = {.format = PD_SPLIT_XML, .max_body = 1 << 24, .name = name};
    struct pd_splitter *sp = NULL;
    struct pd_chunk c;
    int rc = pd_split_create(-1, path, &o, &sp);
    while (rc == 0 && (rc = pd_split_next(sp, &c)) == 1)
        rc = 0;
    snprintf(why, whysz, "%s", pd_split_error(sp));
    pd_split_destroy(&sp);
    return rc < 0;
}

int main(void)
{
    const char *dir = find_suite();
    if (!dir) {
        printf("xmltest not found (set PD_XMLTEST_DIR to an unpacked xmltest folder): skipped\n");
        return 77;
    }
    DIR *d = opendir(dir);
    if (!d)
        return 1;
    struct dirent *e;
    unsigned total = 0, ok = 0;
    char path[8192], why[1024];
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".xml"))
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        total++;
        if (refused(path, e->d_name, why, sizeof(why)))
            ok++;
        else
            printf("not refused: not-wf/sa/%s\n", e->d_name);
    }
    closedir(d);
    printf("xmltest not-wf/sa: %u of %u documents refused\n", ok, total);
    return total > 0 && ok == total ? 0 : 1;
}
