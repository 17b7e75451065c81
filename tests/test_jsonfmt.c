/* The layout of JSON written for people: whole outputs compared. */
#include "testlib.h"

#include "pd_jsonfmt.h"

#include <stdlib.h>
#include <string.h>

static void expect(const char *json, const char *want)
{
    cJSON *o = cJSON_Parse(json);
    assert_non_null(o);
    char *text = pd_jsonfmt_print(o);
    assert_non_null(text);
    assert_string_equal(text, want);
    free(text);
    cJSON_Delete(o);
}

static void layout(void **state)
{
    (void)state;
    expect("{}", "{}\n");
    expect("[]", "[]\n");
    expect("\"x\"", "\"x\"\n");
    /* Keys keep their order; empty containers stay on their line; arrays one element a line. */
    expect("{\"z\":1,\"a\":[],\"m\":{},\"b\":[1,\"two\",true,null,{\"c\":-1.5}]}",
           "{\n"
           "  \"z\": 1,\n"
           "  \"a\": [],\n"
           "  \"m\": {},\n"
           "  \"b\": [\n"
           "    1,\n"
           "    \"two\",\n"
           "    true,\n"
           "    null,\n"
           "    {\n"
           "      \"c\": -1.5\n"
           "    }\n"
           "  ]\n"
           "}\n");
    /* Strings and keys escaped as cJSON escapes them; UTF-8 kept as it is. */
    expect("{\"k\\\"\\n\":\"caf\xc3\xa9 \\u0001 \\\\ \\\"q\\\"\\t\"}",
           "{\n  \"k\\\"\\n\": \"caf\xc3\xa9 \\u0001 \\\\ \\\"q\\\"\\t\"\n}\n");
}

int main(void)
{
    return PD_RUN_TESTS(NULL, NULL, layout);
}
