/*
 * Benchmark of the splitter and the escaper. Prints, for each format, the throughput of a
 * full split (pass 1 + every chunk, max_body 8 MB) of a generated 20 MB file, the escaper's
 * speed next to memcpy and a naive byte-at-a-time escaper as baselines, and the peak RSS of
 * each run (every measurement runs in its own child process, so ru_maxrss is its own).
 *
 *   bench_split [--big] [--dir DIR] [--size MB]
 *
 * --big also splits 2 GiB JSON, XML and CSV files, to show that memory does not grow with the
 * file. Files are generated in a temporary folder (DIR or $TMPDIR) and deleted.
 */
#include "pd_config.h"
#include "pd_encode.h"
#include "pd_split.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct result {
    double seconds;
    uint64_t bytes, chunks;
    long maxrss_kb;
    int rc;
    char err[200];
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *const fmt_names[] = {"auto", "json", "ndjson", "xml", "csv", "lines", "none"};

/* Writes records of FMT until the file holds SIZE bytes (plus the closing text). */
static int generate(const char *path, int fmt, uint64_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -errno;
    static char buf[1 << 16];

    setvbuf(f, buf, _IOFBF, sizeof(buf));
    uint64_t n = 0, written = 0;
    if (fmt == PD_SPLIT_JSON)
        written += (uint64_t)fprintf(f, "[\n");
    else if (fmt == PD_SPLIT_XML)
        written += (uint64_t)fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<orders xmlns=\"urn:shop\">\n");
    else if (fmt == PD_SPLIT_CSV)
        written += (uint64_t)fprintf(f, "id,customer,note,total\r\n");
    while (written < size) {
        n++;
        int w;
        switch (fmt) {
        case PD_SPLIT_JSON:
            w = fprintf(f, "%s  {\"id\": %llu, \"customer\": \"Zo\\u00eb \\\"Z\\\" M\xc3\xbcller\", \"note\": "
                        "\"deliver after 5pm\\nring twice\", \"lines\": [{\"sku\": \"A-%llu\", \"qty\": 2, "
                        "\"price\": 12.5}, {\"sku\": \"B\", \"qty\": 1, \"price\": 3}], \"paid\": true}",
                        n > 1 ? ",\n" : "", (unsigned long long)n, (unsigned long long)n % 977);
            break;
        case PD_SPLIT_NDJSON:
            w = fprintf(f, "{\"id\": %llu, \"customer\": \"Zo\\u00eb \\\"Z\\\" M\xc3\xbcller\", \"note\": "
                        "\"deliver after 5pm\\nring twice\", \"lines\": [{\"sku\": \"A-%llu\", \"qty\": 2}], "
                        "\"paid\": true}\n", (unsigned long long)n, (unsigned long long)n % 977);
            break;
        case PD_SPLIT_XML:
            w = fprintf(f, "  <order id=\"%llu\" status=\"a&gt;b\">\n    <customer>Zo\xc3\xab &quot;Z&quot; "
                        "M\xc3\xbcller</customer>\n    <note><![CDATA[deliver <after> 5pm]]></note>\n"
                        "    <line sku=\"A-%llu\" qty=\"2\" price=\"12.5\"/>\n  </order>\n",
                        (unsigned long long)n, (unsigned long long)n % 977);
            break;
        case PD_SPLIT_CSV:
            w = fprintf(f, "%llu,\"M\xc3\xbcller, Zo\xc3\xab\",\"deliver after 5pm\r\nring \"\"twice\"\"\",%llu.50\r\n",
                        (unsigned long long)n, (unsigned long long)n % 977);
            break;
        default:
            w = fprintf(f, "2024-05-01T12:00:%02llu.123Z INFO order=%llu customer=\"M\xc3\xbcller\" "
                        "path=C:\\data\\in total=%llu.50\n",
                        (unsigned long long)n % 60, (unsigned long long)n, (unsigned long long)n % 977);
            break;
        }
        if (w < 0)
            break;
        written += (uint64_t)w;
    }
    if (fmt == PD_SPLIT_JSON)
        fprintf(f, "\n]\n");
    else if (fmt == PD_SPLIT_XML)
        fprintf(f, "</orders>\n");
    return fclose(f) == 0 ? 0 : -errno;
}

static void split_file(const char *path, int fmt, struct result *r)
{
    struct pd_split_opts o = {.format = fmt, .max_body = 8000000, .header_lines = 1, .name = path};
    struct pd_splitter *sp = NULL;
    struct pd_chunk c;
    double t0 = now();
    r->rc = pd_split_create(-1, path, &o, &sp);
    while (r->rc == 0 && (r->rc = pd_split_next(sp, &c)) == 1) {
        r->chunks++;
        r->bytes = c.end;
        r->rc = 0;
    }
    r->seconds = now() - t0;
    if (r->rc < 0)
        snprintf(r->err, sizeof(r->err), "%s", pd_split_error(sp));
    pd_split_destroy(&sp);
}

/* Escaper and baselines over the same 64 MB of JSON-like text. */
static size_t naive_escape(char *d, const unsigned char *s, size_t n)
{
    char *p = d;
    for (size_t i = 0; i < n; i++) {
        unsigned c = s[i];
        if (c == '"' || c == '\\') {
            *p++ = '\\';
            *p++ = (char)c;
        } else if (c == '\n') {
            *p++ = '\\';
            *p++ = 'n';
        } else if (c < 0x20) {
            p += sprintf(p, "\\u%04x", c);
        } else {
            *p++ = (char)c;
        }
    }
    return (size_t)(p - d);
}

static void escaper_bench(double out[3], const char *sample)
{
    size_t n = 64u << 20;
    unsigned char *src = malloc(n);
    char *dst = malloc(n * 2);
    size_t sl = strlen(sample);
    for (size_t i = 0; i < n; i++)
        src[i] = (unsigned char)sample[i % sl];
    volatile size_t sink = 0;
    for (int k = 0; k < 3; k++) {
        double best = 1e9;
        for (int rep = 0; rep < 3; rep++) {
            double t0 = now();
            if (k == 0)
                memcpy(dst, src, n), sink += (size_t)dst[n / 2];
            else if (k == 1)
                sink += pd_encode_escape(dst, src, n);
            else
                sink += naive_escape(dst, src, n);
            double t = now() - t0;
            if (t < best)
                best = t;
        }
        out[k] = (double)n / 1e6 / best;
    }
    free(src);
    free(dst);
}

/* Runs FN in a child so its peak RSS is its own; the result comes back through a pipe. */
static int in_child(int fmt, uint64_t size, const char *dir, struct result *r)
{
    int p[2];
    if (pipe(p) < 0)
        return -errno;
    pid_t pid = fork();
    if (pid == 0) {
        struct result res = {0};
        char path[700];
        snprintf(path, sizeof(path), "%s/bench-%d.%s", dir, (int)getpid(),
                 fmt == PD_SPLIT_LINES ? "log" : fmt_names[fmt]);
        res.rc = generate(path, fmt, size);
        if (res.rc == 0) {
            split_file(path, fmt, &res);
        } else {
            snprintf(res.err, sizeof(res.err), "cannot write %.120s: %.60s", path, strerror(-res.rc));
        }
        unlink(path);
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        res.maxrss_kb = ru.ru_maxrss;
        if (write(p[1], &res, sizeof(res)) != (ssize_t)sizeof(res))
            _exit(1);
        _exit(0);
    }
    close(p[1]);
    ssize_t got = read(p[0], r, sizeof(*r));
    close(p[0]);
    waitpid(pid, NULL, 0);
    return got == (ssize_t)sizeof(*r) ? 0 : -EIO;
}

int main(int argc, char **argv)
{
    int big = 0;
    uint64_t mb = 20;
    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--big"))
            big = 1;
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--size") && i + 1 < argc)
            mb = strtoull(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: bench_split [--big] [--dir DIR] [--size MB]\n");
            return 2;
        }
    }
    char tmp[160];
    snprintf(tmp, sizeof(tmp), "%s/pd-bench-XXXXXX", dir);
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 1;
    }

    static const char *const samples[][2] = {
        {"JSON (a quote every ~6 bytes)",
         "{\"id\": 123, \"customer\": \"Zo\xc3\xab M\xc3\xbcller\", \"note\": \"deliver after 5pm\","
         " \"lines\": [{\"sku\": \"A-1\", \"qty\": 2}]}\n"},
        {"XML/CSV/text (a newline every ~90 bytes)",
         "<order id=1><customer>Zo\xc3\xab M\xc3\xbcller, Hauptstra\xc3\x9f" "e 5</customer><total>12.50</total>\n"},
    };
    printf("escaper over 64 MB, MB/s:   %10s %10s %10s\n", "memcpy", "escape", "naive");
    for (int k = 0; k < 2; k++) {
        double esc[3];
        escaper_bench(esc, samples[k][1]);
        printf("  %-42s %6.0f %10.0f %10.0f\n", samples[k][0], esc[0], esc[1], esc[2]);
    }

    printf("\nsplit, max_body 8000000, full run (check pass + every chunk):\n");
    printf("  %-7s %10s %9s %7s %12s\n", "format", "size", "MB/s", "chunks", "peak RSS");
    int formats[] = {PD_SPLIT_JSON, PD_SPLIT_NDJSON, PD_SPLIT_XML, PD_SPLIT_CSV, PD_SPLIT_LINES};
    int status = 0;
    for (int pass = 0; pass < (big ? 2 : 1); pass++) {
        uint64_t size = pass ? (2ull << 30) : mb * 1000000;
        for (size_t k = 0; k < sizeof(formats) / sizeof(formats[0]); k++) {
            int fmt = formats[k];
            if (pass && fmt != PD_SPLIT_JSON && fmt != PD_SPLIT_XML && fmt != PD_SPLIT_CSV)
                continue;
            struct result r;
            memset(&r, 0, sizeof(r));
            if (in_child(fmt, size, tmp, &r) < 0 || r.rc < 0) {
                printf("  %-7s failed: %s\n", fmt_names[fmt], r.err);
                status = 1;
                continue;
            }
            printf("  %-7s %7.0f MB %9.0f %7llu %9ld MB\n", fmt_names[fmt], (double)r.bytes / 1e6,
                   (double)r.bytes / 1e6 / r.seconds, (unsigned long long)r.chunks, r.maxrss_kb / 1024);
            fflush(stdout);
        }
    }
    rmdir(tmp);
    return status;
}
