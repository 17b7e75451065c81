/*
 * pd_expand: compressed files made here with zlib, libzstd and libarchive, expanded into a file
 * with no name, and the hostile ones refused (names, links, encryption, nesting, truncation,
 * bombs) with words that say which entry and which byte.
 */
#include "testlib.h"

#include "pd_deliver.h"
#include "pd_error.h"
#include "pd_expand.h"
#include "pd_jobstate.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

static const struct pd_expand_limits roomy = {.max_size = 1ull << 40, .max_ratio = 100};

/* One gzip member of TEXT (LEN bytes) appended to PATH. */
static void gz_member(const char *path, const char *mode, const void *text, size_t len)
{
    gzFile g = gzopen(path, mode);
    assert_non_null(g);
    assert_int_equal(gzwrite(g, text, (unsigned)len), (int)len);
    assert_int_equal(gzclose(g), Z_OK);
}

static void write_bytes(const char *path, const void *b, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, b, n), (ssize_t)n);
    close(fd);
}

/* Expands entry I of PATH (named NAME) with L: the code, the text in *OUT (free it), x->why. */
static int expand(const char *path, const char *name, size_t i, const struct pd_expand_limits *l,
                  struct pd_expand *x, char **out, uint64_t *size)
{
    int fd = open(path, O_RDONLY), tfd = pd_expand_tmpfile(pd_test_dir);
    assert_true(fd >= 0 && tfd >= 0);
    int rc = pd_expand_open(x, fd, name);
    *size = 0;
    if (!rc && x->kind != PD_Z_NONE)
        rc = pd_expand_entry(x, i, tfd, l, size);
    if (out) {
        struct stat st;
        assert_int_equal(fstat(tfd, &st), 0);
        *out = calloc(1, (size_t)st.st_size + 1);
        assert_int_equal(pread(tfd, *out, (size_t)st.st_size, 0), st.st_size);
    }
    close(tfd);
    close(fd);
    return rc;
}

static void gz_several_members(void **state)
{
    (void)state;
    const char *p = pd_test_path(pd_test_dir, "orders.json.gz");
    gz_member(p, "wb", "[{\"a\":1},", 9);
    gz_member(p, "ab", "{\"a\":2}]\n", 9);
    struct pd_expand x;
    char *out;
    uint64_t size;
    assert_int_equal(expand(p, "in/orders.json.gz", 0, &roomy, &x, &out, &size), 0);
    assert_int_equal(x.kind, PD_Z_GZIP);
    assert_int_equal(x.n, 1);
    assert_string_equal(x.entries[0].name, "orders.json");
    assert_string_equal(out, "[{\"a\":1},{\"a\":2}]\n");
    assert_int_equal(size, 18);
    free(out);
    pd_expand_close(&x);
}

static void zst_several_frames(void **state)
{
    (void)state;
    char a[256], b[256];
    size_t na = ZSTD_compress(a, sizeof(a), "id,v\n1,a\n", 9, 3);
    size_t nb = ZSTD_compress(b, sizeof(b), "2,b\n", 4, 19);
    assert_false(ZSTD_isError(na) || ZSTD_isError(nb));
    char both[512];
    memcpy(both, a, na);
    memcpy(both + na, b, nb);
    const char *p = pd_test_path(pd_test_dir, "rows.csv.zst");
    write_bytes(p, both, na + nb);
    struct pd_expand x;
    char *out;
    uint64_t size;
    assert_int_equal(expand(p, "rows.csv.zst", 0, &roomy, &x, &out, &size), 0);
    assert_int_equal(x.kind, PD_Z_ZSTD);
    assert_string_equal(x.entries[0].name, "rows.csv");
    assert_string_equal(out, "id,v\n1,a\n2,b\n");
    free(out);
    pd_expand_close(&x);
    /* cut short inside the second frame: the byte and zstd's words */
    write_bytes(p, both, na + nb - 3);
    assert_int_equal(expand(p, "rows.csv.zst", 0, &roomy, &x, NULL, &size), PD_EPARSE);
    assert_non_null(strstr(x.why, "truncated"));
    assert_int_equal(x.why_offset, (int64_t)(na + nb - 3));
    pd_expand_close(&x);
}

/* A zip at PATH: entries NAMES[i] with TEXTS[i]; a text NULL makes a folder, "->x" a symlink
 * to x. PASS: encrypted with it. */
static void make_zip(const char *path, const char *const *names, const char *const *texts, size_t n,
                     const char *pass)
{
    struct archive *a = archive_write_new();
    assert_int_equal(archive_write_set_format_zip(a), ARCHIVE_OK);
    if (pass) {
        assert_int_equal(archive_write_set_options(a, "zip:encryption=zipcrypt"), ARCHIVE_OK);
        assert_int_equal(archive_write_set_passphrase(a, pass), ARCHIVE_OK);
    }
    assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, names[i]);
        archive_entry_set_perm(e, 0644);
        if (!texts[i]) {
            archive_entry_set_filetype(e, AE_IFDIR);
        } else if (texts[i][0] == '-' && texts[i][1] == '>') {
            archive_entry_set_filetype(e, AE_IFLNK);
            archive_entry_set_symlink(e, texts[i] + 2);
        } else {
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_size(e, (la_int64_t)strlen(texts[i]));
        }
        assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
        if (texts[i] && texts[i][0] != '-')
            assert_int_equal(archive_write_data(a, texts[i], strlen(texts[i])),
                             (la_ssize_t)strlen(texts[i]));
        archive_entry_free(e);
    }
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
}

static void zip_entries_in_order(void **state)
{
    (void)state;
    const char *names[] = {"dir/", "a.csv", "../../etc/b.csv", "/abs/c\033[31m.csv"};
    const char *texts[] = {NULL, "x\n1\n", "x\n2\n", "x\n3\n"};
    const char *p = pd_test_path(pd_test_dir, "three.zip");
    make_zip(p, names, texts, 4, NULL);
    struct pd_expand x;
    char *out;
    uint64_t size;
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(expand(p, "three.zip", i, &roomy, &x, &out, &size), 0);
        assert_int_equal(x.n, 3); /* the folder is skipped */
        assert_string_equal(x.entries[i].name, names[i + 1]);
        assert_string_equal(out, texts[i + 1]);
        free(out);
        pd_expand_close(&x);
    }
    /* entry names are never paths: nothing was made beside the test folder's own files */
    DIR *d = opendir(pd_test_dir);
    struct dirent *de;
    int files = 0;
    while ((de = readdir(d)))
        files += de->d_name[0] != '.';
    closedir(d);
    assert_int_equal(files, 1);
}

/* The zip NAMES/TEXTS is refused before anything is expanded, with WORDS in the reason. */
static void zip_refused(const char *const *names, const char *const *texts, size_t n,
                        const char *pass, const char *words)
{
    const char *p = pd_test_path(pd_test_dir, "bad.zip");
    make_zip(p, names, texts, n, pass);
    struct pd_expand x;
    uint64_t size;
    assert_int_equal(expand(p, "bad.zip", 0, &roomy, &x, NULL, &size), PD_EPARSE);
    assert_non_null(strstr(x.why, words));
    pd_expand_close(&x);
}

static void zip_links_encryption_nesting_refused(void **state)
{
    (void)state;
    const char *n1[] = {"ok.csv", "evil\n.csv"}, *t1[] = {"x\n", "->/etc/passwd"};
    zip_refused(n1, t1, 2, NULL, "zip entry 2 (evil\\n.csv) is a symbolic link");
    const char *n2[] = {"secret.csv"}, *t2[] = {"x\n1\n"};
    zip_refused(n2, t2, 1, "pw", "(secret.csv) is encrypted");
    const char *n3[] = {"inner.csv.gz"}, *t3[] = {"x\n"};
    zip_refused(n3, t3, 1, NULL, "itself compressed");
    const char *n4[] = {"inner.csv"}, *t4[] = {"\x1f\x8b\x08\x00 not really"};
    zip_refused(n4, t4, 1, NULL, "by its first bytes");
    const char *n5[] = {"empty/"}, *t5[] = {NULL};
    zip_refused(n5, t5, 1, NULL, "holds no files");
    const char *n6[] = {"a.csv", "none.csv"}, *t6[] = {"x\n", ""};
    zip_refused(n6, t6, 2, NULL, "zip entry 2 (none.csv) is empty");
}

/* A zip declaring more entries than one may hold is refused from its end record, before its
 * directory is read into memory. */
static void zip_too_many_entries(void **state)
{
    (void)state;
    const char *p = pd_test_path(pd_test_dir, "many.zip");
    struct archive *a = archive_write_new();
    assert_int_equal(archive_write_set_format_zip(a), ARCHIVE_OK);
    assert_int_equal(archive_write_open_filename(a, p), ARCHIVE_OK);
    for (int i = 0; i <= PD_EXPAND_MAX_ENTRIES; i++) {
        char name[32];
        struct archive_entry *e = archive_entry_new();
        snprintf(name, sizeof(name), "f%05d.csv", i);
        archive_entry_set_pathname(e, name);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_size(e, 0);
        assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
        archive_entry_free(e);
    }
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
    struct pd_expand x;
    uint64_t size;
    assert_int_equal(expand(p, "many.zip", 0, &roomy, &x, NULL, &size), PD_ELIMIT);
    assert_non_null(strstr(x.why, "declares 10001 entries"));
    pd_expand_close(&x);
}

static void names_that_lie(void **state)
{
    (void)state;
    const char *p = pd_test_path(pd_test_dir, "orders.json.gz");
    pd_test_write(p, "[{\"a\":1}]\n");
    struct pd_expand x;
    uint64_t size;
    assert_int_equal(expand(p, "orders.json.gz", 0, &roomy, &x, NULL, &size), PD_EPARSE);
    assert_non_null(strstr(x.why, "says gzip, but the file is not compressed"));
    pd_expand_close(&x);
    /* a plain file is no compressed file, and gzip bytes under another name are gzip */
    assert_int_equal(expand(p, "orders.json", 0, &roomy, &x, NULL, &size), 0);
    assert_int_equal(x.kind, PD_Z_NONE);
    pd_expand_close(&x);
    gz_member(p, "wb", "a\n", 2);
    assert_int_equal(expand(p, "orders.json", 0, &roomy, &x, NULL, &size), 0);
    assert_int_equal(x.kind, PD_Z_GZIP);
    assert_int_equal(size, 2);
    pd_expand_close(&x);
    /* a zip not named .zip (an .xlsx is one) is no zip to expand */
    const char *names[] = {"xl/workbook.xml"}, *texts[] = {"<a/>"};
    make_zip(p, names, texts, 1, NULL);
    assert_int_equal(expand(p, "book.xlsx", 0, &roomy, &x, NULL, &size), 0);
    assert_int_equal(x.kind, PD_Z_NONE);
    pd_expand_close(&x);
}

static void gz_truncated_and_corrupt(void **state)
{
    (void)state;
    const char *p = pd_test_path(pd_test_dir, "t.csv.gz");
    char text[4000];
    for (size_t i = 0; i < sizeof(text); i++)
        text[i] = (char)('a' + (i * 7919) % 26);
    gz_member(p, "wb", text, sizeof(text));
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    int fd = open(p, O_RDWR);
    assert_int_equal(ftruncate(fd, st.st_size - 10), 0);
    struct pd_expand x;
    uint64_t size;
    assert_int_equal(expand(p, "t.csv.gz", 0, &roomy, &x, NULL, &size), PD_EPARSE);
    assert_non_null(strstr(x.why, "truncated"));
    assert_int_equal(x.why_offset, st.st_size - 10);
    pd_expand_close(&x);
    assert_int_equal(pwrite(fd, "\xff\xff\xff\xff", 4, 12), 4); /* inside the deflate data */
    close(fd);
    assert_int_equal(expand(p, "t.csv.gz", 0, &roomy, &x, NULL, &size), PD_EPARSE);
    assert_non_null(strstr(x.why, "corrupt at byte"));
    assert_non_null(strstr(x.why, "zlib: "));
    pd_expand_close(&x);
    /* bytes after the last member that are not gzip */
    gz_member(p, "wb", "a\n", 2);
    fd = open(p, O_WRONLY | O_APPEND);
    assert_int_equal(write(fd, "junk", 4), 4);
    close(fd);
    assert_int_equal(expand(p, "t.csv.gz", 0, &roomy, &x, NULL, &size), PD_EPARSE);
    assert_non_null(strstr(x.why, "4 bytes after its last member"));
    pd_expand_close(&x);
}

/* A gzip of N zeros at PATH. */
static void zeros_gz(const char *path, size_t n)
{
    char *z = calloc(1, n);
    gz_member(path, "wb", z, n);
    free(z);
}

static void limits_stop_a_bomb_early(void **state)
{
    (void)state;
    const char *p = pd_test_path(pd_test_dir, "bomb.csv.gz");
    zeros_gz(p, 64u << 20); /* 64 MiB in about 64 KB */
    struct pd_expand x;
    uint64_t size;
    char *out;
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    /* the ratio: stopped at 100 times the file's size, nothing kept */
    assert_int_equal(expand(p, "bomb.csv.gz", 0, &roomy, &x, &out, &size), PD_ELIMIT);
    assert_non_null(strstr(x.why, "max_expansion_ratio (100)"));
    assert_true(size <= 100 * (uint64_t)st.st_size && size > 100 * (uint64_t)st.st_size - 65536);
    assert_string_equal(out, "");
    free(out);
    pd_expand_close(&x);
    /* the size, with entries before it counted */
    struct pd_expand_limits l = {.max_size = 8u << 20, .max_ratio = 0, .before = 3u << 20};
    assert_int_equal(expand(p, "bomb.csv.gz", 0, &l, &x, NULL, &size), PD_ELIMIT);
    assert_non_null(strstr(x.why, "max_expanded_size (8388608 bytes)"));
    assert_true(size <= (5u << 20) && size > (5u << 20) - (64u << 10));
    pd_expand_close(&x);
    /* a stopping daemon's flag ends an expansion at once */
    atomic_bool stop = true;
    struct pd_expand_limits lc = {.max_size = 1ull << 40, .cancel = &stop};
    assert_int_equal(expand(p, "bomb.csv.gz", 0, &lc, &x, NULL, &size), PD_ECANCELED);
    assert_int_equal(size, 0);
    pd_expand_close(&x);
    /* a small file well over the ratio passes: the ratio counts past 1 MiB only */
    zeros_gz(p, 500000);
    assert_int_equal(expand(p, "bomb.csv.gz", 0, &roomy, &x, NULL, &size), 0);
    assert_int_equal(size, 500000);
    pd_expand_close(&x);
}

/* The delivery engine over the zip at PATH, cutting to BUDGET, continuing at ENTRY, OFFSET,
 * INDEX. */
static void open_dl(struct pd_delivery *dl, const char *path, uint64_t budget, unsigned entry,
                    uint64_t offset, unsigned index)
{
    struct pd_delivery_opts o = {.fd = -1,
                                 .path = path,
                                 .name = "in/rows.zip",
                                 .max_body = budget,
                                 .budget = budget,
                                 .expand_dir = pd_test_dir,
                                 .resume_entry = entry,
                                 .resume_offset = offset,
                                 .resume_index = index};
    assert_int_equal(pd_delivery_open(dl, &o), 0);
    assert_non_null(dl->cx);
}

/* The delivery engine over a zip of three CSV files of 40 rows each, cutting to BUDGET,
 * continuing at ENTRY, OFFSET, INDEX. */
static void open_zip_dl(struct pd_delivery *dl, uint64_t budget, unsigned entry, uint64_t offset,
                        unsigned index)
{
    const char *p = pd_test_path(pd_test_dir, "rows.zip");
    static const char *const names[] = {"x.csv", "y.csv", "z.csv"};
    static char texts[3][2048];
    const char *t[3];
    for (int e = 0; e < 3; e++) {
        size_t at = (size_t)snprintf(texts[e], sizeof(texts[e]), "id,v\n");
        for (int i = 0; i < 40; i++)
            at +=
                (size_t)snprintf(texts[e] + at, sizeof(texts[e]) - at, "%c%02d,row\n", 'x' + e, i);
        t[e] = texts[e];
    }
    make_zip(p, names, t, 3, NULL);
    open_dl(dl, p, budget, entry, offset, index);
}

/* The next chunk: its entry and index, and its first row's first letter. */
static int next_of(struct pd_delivery *dl, struct pd_chunk *c, char *first)
{
    char *body;
    size_t len;
    int rc = pd_delivery_next(dl, c, &body, &len);
    if (rc == 1) {
        char *row = strstr(body, "\\n"); /* after the escaped header */
        *first = row ? row[2] : '?';
        free(body);
    }
    return rc;
}

static void delivery_walks_entries(void **state)
{
    (void)state;
    struct pd_delivery dl;
    struct pd_chunk c, chunks[3];
    char first;
    open_zip_dl(&dl, 1u << 20, 0, 0, 0);
    for (unsigned e = 0; e < 3; e++) {
        assert_int_equal(next_of(&dl, &c, &first), 1);
        assert_int_equal(dl.entry, e);
        assert_int_equal(c.index, e);
        assert_int_equal(first, 'x' + (int)e);
        assert_int_equal(c.last, e == 2); /* only the last entry's last chunk */
        chunks[e] = c;
    }
    assert_int_equal(next_of(&dl, &c, &first), 0);
    /* the receipt's entries */
    struct pd_jobstate js = {0};
    assert_int_equal(pd_delivery_note_entries(&dl, &js), 0);
    assert_string_equal(js.compression, "zip");
    assert_int_equal(js.nentries, 3);
    assert_string_equal(js.entries[1].name, "y.csv");
    assert_string_equal(js.entries[1].format, "csv");
    assert_int_equal(js.entries[1].size, chunks[1].end);
    pd_jobstate_cleanup(&js);
    pd_delivery_close(&dl);
    /* a restart after entry 1's last chunk goes on with entry 2, numbered on */
    open_zip_dl(&dl, 1u << 20, 1, chunks[1].end, 2);
    assert_int_equal(next_of(&dl, &c, &first), 1);
    assert_int_equal(dl.entry, 2);
    assert_int_equal(c.index, 2);
    assert_int_equal(first, 'z');
    pd_delivery_close(&dl);
}

/* `send` cuts ahead: a 413 on entry 0's last chunk, while entry 1 is open, cuts entry 0's
 * chunk again, then goes on to entry 1. */
static void recut_goes_back_an_entry(void **state)
{
    (void)state;
    struct pd_delivery dl;
    struct pd_chunk c, refused;
    char first, *body;
    size_t len;
    open_zip_dl(&dl, 1u << 20, 0, 0, 0);
    assert_int_equal(pd_delivery_next(&dl, &refused, &body, &len), 1);
    assert_int_equal(next_of(&dl, &c, &first), 1);
    assert_int_equal(dl.entry, 1);
    assert_int_equal(pd_delivery_refused(&dl, &refused, len, 0), 0);
    free(body);
    unsigned n = 0;
    while (next_of(&dl, &c, &first) == 1 && dl.entry == 0) {
        assert_int_equal(first, 'x');
        assert_int_equal(c.index, n++);
    }
    assert_true(n >= 2); /* cut smaller */
    assert_int_equal(dl.entry, 1);
    assert_int_equal(first, 'y');
    assert_int_equal(c.index, n);
    pd_delivery_close(&dl);
}

static unsigned char *le_put(unsigned char *p, uint32_t v, int n)
{
    for (int i = 0; i < n; i++)
        *p++ = (unsigned char)(v >> (8 * i));
    return p;
}

enum spoil { SPOIL_NONE, SPOIL_FLIP_STORED, SPOIL_FLIP_DEFLATED, SPOIL_CUT };

/* About 600 KB an entry: past what listing the zip reads of it (its first 256 KiB expanded,
 * when it looks at the first bytes). */
#define HAND_ROWS 60000

struct zip_head {
    int method; /* 0 stored, 8 deflated */
    uint32_t crc, clen, len;
    const char *name;
    uint32_t off; /* where its local header is */
};

/* H's local header (CENTRAL false) or its central directory record at P; past it. */
static unsigned char *zip_head(unsigned char *p, const struct zip_head *h, bool central)
{
    p = le_put(p, central ? 0x02014b50 : 0x04034b50, 4);
    if (central)
        p = le_put(p, 20, 2); /* made by */
    p = le_put(p, 20, 2);
    p = le_put(p, 0, 2);
    p = le_put(p, (uint32_t)h->method, 2);
    p = le_put(p, 0x00210000, 4); /* 1980-01-01 00:00 */
    p = le_put(p, h->crc, 4);
    p = le_put(p, h->clen, 4);
    p = le_put(p, h->len, 4);
    p = le_put(p, (uint32_t)strlen(h->name), 2);
    p = le_put(p, 0, 2); /* extra */
    if (central) {
        p = le_put(p, 0, 4); /* comment, disk */
        p = le_put(p, 0, 2); /* internal attributes */
        p = le_put(p, 0, 4); /* external */
        p = le_put(p, h->off, 4);
    }
    memcpy(p, h->name, strlen(h->name));
    return p + strlen(h->name);
}

/*
 * A zip at PATH made by hand, so its second entry can be spoiled behind a whole directory:
 * three CSV files a, b, c, deflated (b stored for SPOIL_FLIP_STORED); b's data gets bytes
 * flipped three quarters in, or is cut there with its headers saying so (truncated). The place
 * of b's data in *AT.
 */
static void hand_zip(const char *path, enum spoil how, size_t *at)
{
    size_t cap = (size_t)HAND_ROWS * 16;
    unsigned char *zip = malloc(4 * cap), dir[1024], *p = zip, *d = dir;
    char *text = malloc(cap);
    unsigned char *data = malloc(compressBound((uLong)cap));
    assert_true(zip && text && data);
    for (int e = 0; e < 3; e++) {
        size_t len = (size_t)snprintf(text, cap, "id,v\n");
        for (int i = 0; i < HAND_ROWS; i++)
            len +=
                (size_t)snprintf(text + len, cap - len, "%c%05d,%d\n", 'a' + e, i, i * 7919 % 1000);
        uLong crc = crc32(0, (const Bytef *)text, (uInt)len);
        size_t clen = len;
        int method = e == 1 && how == SPOIL_FLIP_STORED ? 0 : 8;
        if (method) {
            z_stream z = {0};
            assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
            z.next_in = (Bytef *)text;
            z.avail_in = (uInt)len;
            z.next_out = data;
            z.avail_out = (uInt)compressBound((uLong)cap);
            assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
            clen = z.total_out;
            deflateEnd(&z);
        } else {
            memcpy(data, text, len);
        }
        if (e == 1 && (how == SPOIL_FLIP_STORED || how == SPOIL_FLIP_DEFLATED))
            for (size_t i = clen / 4 * 3; i < clen / 4 * 3 + 4; i++)
                data[i] ^= 0x5a;
        if (e == 1 && how == SPOIL_CUT)
            clen = clen / 4 * 3;
        char name[] = {(char)('a' + e), '.', 'c', 's', 'v', '\0'};
        struct zip_head h = {method,        (uint32_t)crc, (uint32_t)clen,
                             (uint32_t)len, name,          (uint32_t)(p - zip)};
        p = zip_head(p, &h, false);
        if (e == 1)
            *at = (size_t)(p - zip);
        memcpy(p, data, clen);
        p += clen;
        d = zip_head(d, &h, true);
    }
    uint32_t dir_at = (uint32_t)(p - zip);
    memcpy(p, dir, (size_t)(d - dir));
    p += d - dir;
    p = le_put(p, 0x06054b50, 4);
    p = le_put(p, 0, 4);
    p = le_put(p, 3, 2);
    p = le_put(p, 3, 2);
    p = le_put(p, (uint32_t)(d - dir), 4);
    p = le_put(p, dir_at, 4);
    p = le_put(p, 0, 2);
    write_bytes(path, zip, (size_t)(p - zip));
    free(zip);
    free(text);
    free(data);
}

/* A zip whose second entry is corrupt or truncated lists well and expands its first entry, but
 * the check pass over the rest fails, naming the entry, the byte and libarchive's words. */
static void zip_check_finds_later_faults(void **state)
{
    (void)state;
    const char *p = pd_test_path(pd_test_dir, "abc.zip");
    struct pd_expand x;
    uint64_t size, total = 0;
    size_t at;
    for (enum spoil how = SPOIL_NONE; how <= SPOIL_CUT; how++) {
        hand_zip(p, how, &at);
        int fd = open(p, O_RDONLY);
        assert_int_equal(expand(p, "abc.zip", 0, &roomy, &x, NULL, &size), 0);
        assert_int_equal(x.n, 3);
        pd_expand_close(&x);
        assert_int_equal(pd_expand_open(&x, fd, "abc.zip"), 0);
        struct pd_expand_limits l = roomy;
        l.before = size;
        int rc = pd_expand_check(&x, 1, &l);
        if (how == SPOIL_NONE) {
            assert_int_equal(rc, 0);
            assert_int_equal(pd_expand_check(&x, 0, &roomy), 0);
            for (size_t i = 0; i < 3; i++) {
                struct pd_expand y;
                assert_int_equal(expand(p, "abc.zip", i, &roomy, &y, NULL, &size), 0);
                total += size;
                pd_expand_close(&y);
            }
        } else {
            assert_int_equal(rc, PD_EPARSE);
            assert_non_null(strstr(x.why, "zip entry 2 (b.csv) is corrupt or truncated near byte"));
            assert_non_null(strstr(x.why, "(libarchive: "));
            assert_true(x.why_offset > (int64_t)at);
            if (how == SPOIL_FLIP_STORED)
                assert_non_null(strstr(x.why, "CRC"));
        }
        pd_expand_close(&x);
        close(fd);
    }
    /* the limits hold over all the entries, the free space aside (nothing is written) */
    hand_zip(p, SPOIL_NONE, &at);
    int fd = open(p, O_RDONLY);
    assert_int_equal(pd_expand_open(&x, fd, "abc.zip"), 0);
    struct pd_expand_limits l = {.max_size = total - 1};
    assert_int_equal(pd_expand_check(&x, 0, &l), PD_ELIMIT);
    assert_non_null(strstr(x.why, "max_expanded_size"));
    assert_non_null(strstr(x.why, "stopped in c.csv"));
    l.max_size = total;
    assert_int_equal(pd_expand_check(&x, 0, &l), 0);
    atomic_bool stop = true;
    l.cancel = &stop;
    assert_int_equal(pd_expand_check(&x, 1, &l), PD_ECANCELED);
    pd_expand_close(&x);
    close(fd);
}

/* The delivery of such a zip fails at its first chunk, nothing cut: no half a zip is sent. A
 * restart in entry 1 checks again what it has still to send. */
static void delivery_sends_nothing_of_a_bad_zip(void **state)
{
    (void)state;
    const char *p = pd_test_path(pd_test_dir, "abc.zip");
    struct pd_delivery dl;
    struct pd_chunk c;
    char first;
    size_t at;
    for (enum spoil how = SPOIL_FLIP_STORED; how <= SPOIL_CUT; how++) {
        hand_zip(p, how, &at);
        open_dl(&dl, p, 1u << 20, 0, 0, 0);
        assert_int_equal(next_of(&dl, &c, &first), PD_EPARSE);
        assert_null(dl.sp);
        const char *want = "nothing of the zip was sent: zip entry 2 (b.csv) is corrupt";
        assert_memory_equal(dl.why, want, strlen(want));
        assert_true(dl.why_offset > (int64_t)at);
        assert_int_equal(next_of(&dl, &c, &first), PD_EPARSE); /* and stays failed */
        pd_delivery_close(&dl);
        /* resumed in entry 0 after a chunk went: failed again, without claiming nothing went */
        open_dl(&dl, p, 1u << 20, 0, 5, 1);
        assert_int_equal(next_of(&dl, &c, &first), PD_EPARSE);
        assert_memory_equal(dl.why, "zip entry 2 (b.csv)", 19);
        pd_delivery_close(&dl);
    }
    /* a good one goes whole, entry after entry */
    hand_zip(p, SPOIL_NONE, &at);
    open_dl(&dl, p, 1u << 20, 0, 0, 0);
    for (unsigned e = 0; e < 3; e++) {
        assert_int_equal(next_of(&dl, &c, &first), 1);
        assert_int_equal(dl.entry, e);
        assert_int_equal(first, 'a' + (int)e);
    }
    assert_int_equal(next_of(&dl, &c, &first), 0);
    pd_delivery_close(&dl);
}

/* The fuzz target's seeds and the inputs it found (tests/data/expand/: a first byte picking the
 * name, then the file), expanded again: each ends cleanly, within the limits. */
static void fuzz_inputs_replayed(void **state)
{
    (void)state;
    static const char *const names[] = {"f.json.gz", "f.csv.zst", "f.zip", "f.txt"};
    char dir[512], path[1024], buf[1 << 16];
    snprintf(dir, sizeof(dir), "%s/expand", PD_TEST_DATA);
    DIR *d = opendir(dir);
    struct dirent *de;
    int files = 0;
    assert_non_null(d);
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        int fd = open(path, O_RDONLY);
        ssize_t n = read(fd, buf, sizeof(buf));
        close(fd);
        assert_true(n >= 1);
        const char *p = pd_test_path(pd_test_dir, "input");
        write_bytes(p, buf + 1, (size_t)n - 1);
        struct pd_expand x;
        uint64_t size;
        struct pd_expand_limits l = {.max_size = 4u << 20, .max_ratio = 100};
        int rc = expand(p, names[buf[0] & 3], 0, &l, &x, NULL, &size);
        assert_true(rc == 0 || rc == PD_EPARSE || rc == PD_ELIMIT);
        assert_true(size <= l.max_size);
        pd_expand_close(&x);
        files++;
    }
    closedir(d);
    assert_true(files >= 3);
}

/* A delivery never opened (a job's zeroed one, freed after a lock was refused) closes no
 * descriptor: once it closed fd 0, dropping another job's flock on its file. */
static void zeroed_delivery_closes_nothing(void **state)
{
    (void)state;
    int fd = fcntl(0, F_GETFD) < 0 ? open("/dev/null", O_RDONLY) : -1;
    struct pd_delivery dl;
    memset(&dl, 0, sizeof(dl));
    pd_delivery_close(&dl);
    pd_delivery_close(&dl);
    assert_true(fcntl(0, F_GETFD) >= 0);
    if (fd == 0)
        close(fd);
}

static void tmpfile_has_no_name(void **state)
{
    (void)state;
    int fd = pd_expand_tmpfile(pd_test_dir);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "x", 1), 1);
    DIR *d = opendir(pd_test_dir);
    struct dirent *de;
    while ((de = readdir(d)))
        assert_true(de->d_name[0] == '.');
    closedir(d);
    close(fd);
}

int main(void)
{
    return PD_RUN_IN_DIR(gz_several_members, zst_several_frames, zip_entries_in_order,
                         zip_links_encryption_nesting_refused, zip_too_many_entries, names_that_lie,
                         gz_truncated_and_corrupt, limits_stop_a_bomb_early, delivery_walks_entries,
                         recut_goes_back_an_entry, zip_check_finds_later_faults,
                         delivery_sends_nothing_of_a_bad_zip, fuzz_inputs_replayed,
                         zeroed_delivery_closes_nothing, tmpfile_has_no_name);
}
