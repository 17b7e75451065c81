/* Tests of the request body encoder: exact escapes, lengths, caps, and agreement with a naive
 * reference escaper and with cJSON over random inputs. */
#include "pd_encode.h"
#include "pd_error.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include "testlib.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* The obvious byte-at-a-time escaper, as the reference. */
static size_t naive_escape(char *d, const unsigned char *s, size_t n)
{
    char *p = d;
    for (size_t i = 0; i < n; i++) {
        unsigned c = s[i];
        switch (c) {
        case '"': p += sprintf(p, "\\\""); break;
        case '\\': p += sprintf(p, "\\\\"); break;
        case '\n': p += sprintf(p, "\\n"); break;
        case '\r': p += sprintf(p, "\\r"); break;
        case '\t': p += sprintf(p, "\\t"); break;
        case '\b': p += sprintf(p, "\\b"); break;
        case '\f': p += sprintf(p, "\\f"); break;
        default:
            if (c < 0x20)
                p += sprintf(p, "\\u%04x", c);
            else
                *p++ = (char)c;
        }
    }
    return (size_t)(p - d);
}

static void expect_escape(const char *in, size_t n, const char *want)
{
    char out[256];
    size_t len = pd_encode_escape(out, in, n);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(out, want, len);
    assert_int_equal(pd_encode_escaped_len(in, n), len);
}

static void test_escapes_each_special(void **state)
{
    (void)state;
    expect_escape("plain text", 10, "plain text");
    expect_escape("a\"b\\c", 5, "a\\\"b\\\\c");
    expect_escape("\n\r\t\b\f", 5, "\\n\\r\\t\\b\\f");
    expect_escape("\x01\x1f\x00", 3, "\\u0001\\u001f\\u0000");
    expect_escape("/\x7f", 2, "/\x7f"); /* '/' and DEL need no escape */
}

static void test_utf8_is_copied_raw(void **state)
{
    (void)state;
    /* é, €, G clef, and U+2028 LINE SEPARATOR: all stay as they are (documented choice). */
    const char *s = "\xc3\xa9\xe2\x82\xac\xf0\x9d\x84\x9e\xe2\x80\xa8";
    expect_escape(s, strlen(s), s);
}

static void test_body_and_cap(void **state)
{
    (void)state;
    char buf[64];
    size_t len;
    assert_int_equal(pd_encode_body("a\"b", 3, buf, sizeof(buf), &len), 0);
    assert_int_equal(len, 18);
    assert_memory_equal(buf, "{\"payload\":\"a\\\"b\"}", 18);
    /* Exactly at the cap fits; one byte less does not and reports the size it needs. */
    assert_int_equal(pd_encode_body("a\"b", 3, buf, 18, &len), 0);
    memset(buf, 'X', sizeof(buf));
    assert_int_equal(pd_encode_body("a\"b", 3, buf, 17, &len), PD_ETOOBIG);
    assert_int_equal(len, 18);
    assert_int_equal(buf[0], 'X');
    assert_int_equal(pd_encode_body("", 0, buf, 14, &len), 0);
    assert_memory_equal(buf, "{\"payload\":\"\"}", 14);
}

static void test_random_against_reference_and_cjson(void **state)
{
    (void)state;
    enum { N = 3000 };
    unsigned char in[N];
    char *out = malloc(6 * N + 32), *ref = malloc(6 * N + 32), *body = malloc(6 * N + 32);
    for (int round = 0; round < 400; round++) {
        size_t n = next_rand() % N;
        int mode = round % 4;
        for (size_t i = 0; i < n; i++) {
            uint64_t r = next_rand();
            if (mode == 0)
                in[i] = (unsigned char)r; /* every byte value */
            else if (mode == 1)
                in[i] = r % 100 == 0 ? (unsigned char)"\"\\\n\t\x01"[r % 5] : (unsigned char)('a' + r % 26);
            else
                in[i] = (unsigned char)(0x20 + r % 0x5f);
        }
        size_t a = pd_encode_escape(out, in, n);
        size_t b = naive_escape(ref, in, n);
        assert_int_equal(a, b);
        assert_memory_equal(out, ref, a);
        assert_int_equal(pd_encode_escaped_len(in, n), a);
        /* Split anywhere: lengths add up (the splitter relies on it). */
        size_t cut = n ? next_rand() % n : 0;
        assert_int_equal(pd_encode_escaped_len(in, cut) + pd_encode_escaped_len(in + cut, n - cut), a);
        if (mode != 0) {
            size_t len;
            assert_int_equal(pd_encode_body(in, n, body, 6 * N + 32, &len), 0);
            cJSON *j = cJSON_ParseWithLength(body, len);
            assert_non_null(j);
            cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "payload");
            assert_true(cJSON_IsString(p));
            assert_int_equal(strlen(p->valuestring), n);
            assert_memory_equal(p->valuestring, in, n);
            cJSON_Delete(j);
        }
    }
    free(out);
    free(ref);
    free(body);
}

/* Every length 0..300 at every source alignment, with the input and the output each in a
 * heap block of exactly its size: the escaper stores and loads whole blocks, and the
 * sanitizer build catches any that runs past either buffer. */
static void test_lengths_and_alignments_against_reference(void **state)
{
    (void)state;
    unsigned char in[300];
    char ref[6 * 300];
    for (int mode = 0; mode < 3; mode++) {
        for (size_t n = 0; n <= 300; n++) {
            for (size_t align = 0; align < 16; align++) {
                for (size_t i = 0; i < n; i++) {
                    uint64_t r = next_rand();
                    if (mode == 0)
                        in[i] = (unsigned char)r; /* every byte value */
                    else if (mode == 1) /* sparse specials, as in text */
                        in[i] = r % 40 == 0 ? (unsigned char)(r >> 8) % 0x20 : (unsigned char)('a' + r % 26);
                    else /* dense, as in JSON and worse */
                        in[i] = r % 2 ? (unsigned char)"\"\\\n\t\x01\x1f\x00\x7f"[(r >> 8) % 8] : 'x';
                }
                size_t want = naive_escape(ref, in, n);
                unsigned char *src = malloc(align + n);
                char *dst = malloc(want + align % 2);
                memcpy(src + align, in, n);
                assert_int_equal(pd_encode_escaped_len(src + align, n), want);
                /* Output at the very end of its block, at varying alignments too. */
                char *out = dst + align % 2;
                assert_int_equal(pd_encode_escape(out, src + align, n), want);
                assert_memory_equal(out, ref, want);
                free(src);
                free(dst);
            }
        }
    }
}

int main(void)
{
    return PD_RUN_TESTS(NULL, NULL, test_escapes_each_special, test_utf8_is_copied_raw,
                        test_body_and_cap, test_random_against_reference_and_cjson,
                        test_lengths_and_alignments_against_reference);
}
