/* test_labelled.c — labelled examples from a file (runtime/core/labelled.h): the three forms (a serving node's
 * JSON-lines feedback log, TSV with a header in any column order, headerless text TAB label), and a refusal
 * naming the line for every kind of bad line, before anything would be embedded. */
#include "labelled.h"
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Parses s; returns its status and leaves the set in *l (freed by the caller). */
static seslm_status parse(labelled_set *l, const char *s) { return labelled_parse(l, s, strlen(s), "fb"); }

/* The parse fails with status want and a message containing each of the given pieces. */
static void refuses(const char *s, seslm_status want, const char *piece, const char *piece2) {
    labelled_set l;
    seslm_status st = parse(&l, s);
    const char *msg = seslm_last_error();
    CHECK_MSG(st == want && strstr(msg, piece) && (!piece2 || strstr(msg, piece2)), "input [%s]: status %d, message: %s", s,
              (int)st, msg);
    labelled_free(&l);
}

static void check_pair(const labelled_set *l, int i, const char *text, const char *label) {
    CHECK_MSG(i < l->n && !strcmp(l->text[i], text) && !strcmp(l->label[i], label), "row %d: [%s] [%s]", i,
              i < l->n ? l->text[i] : "", i < l->n ? l->label[i] : "");
}

int main(void) {
    labelled_set l;

    // ---- the three forms ----
    // a node's --feedback-log: other fields ignored, "label" accepted, CRLF and blank lines allowed
    CHECK(parse(&l, "{\"text\": \"book a table\", \"intent\": \"book\", \"time\": \"2026-12-07T10:00:00Z\", \"model\": \"ab\"}\n"
                    "\r\n"
                    "{\"text\":\"caf\\u00e9 hours?\",\"label\":\"hours\"}\r\n") == SESLM_OK);
    CHECK(l.form == LABELLED_JSONL && l.n == 2 && !l.skipped_partial);
    check_pair(&l, 0, "book a table", "book");
    check_pair(&l, 1, "caf\xc3\xa9 hours?", "hours");
    labelled_free(&l);
    // "intent" wins over "label" in a JSON line (the body of POST /v1/feedback names "intent")
    CHECK(parse(&l, "{\"label\": \"x\", \"text\": \"t\", \"intent\": \"y\"}") == SESLM_OK);
    check_pair(&l, 0, "t", "y");
    labelled_free(&l);

    // TSV with a header: columns in any order, others ignored; "intent" when there is no "label"
    CHECK(parse(&l, "id\tlabel\ttext\n1\tgreet\thello there\n2\tbye\tsee you\n") == SESLM_OK);
    CHECK(l.form == LABELLED_TSV_HEADER && l.n == 2);
    check_pair(&l, 0, "hello there", "greet");
    check_pair(&l, 1, "see you", "bye");
    labelled_free(&l);
    CHECK(parse(&l, "text\tintent\nhi\tgreet") == SESLM_OK); // no line end at the end of a TSV: the row counts
    check_pair(&l, 0, "hi", "greet");
    labelled_free(&l);

    // headerless text TAB label (seslm validate's old form)
    CHECK(parse(&l, "what time is it\ttime\nplay jazz\tmusic\n") == SESLM_OK);
    CHECK(l.form == LABELLED_TSV_PLAIN && l.n == 2);
    check_pair(&l, 0, "what time is it", "time");
    labelled_free(&l);

    // ---- a crash mid-write of the node's log: the unterminated, unparsable last line is skipped ----
    CHECK(parse(&l, "{\"text\": \"a\", \"intent\": \"x\"}\n{\"text\": \"b\", \"int") == SESLM_OK);
    CHECK(l.n == 1 && l.skipped_partial == 1);
    labelled_free(&l);
    // ... but the same line with its line end is an error, and so is a bad line in the middle
    refuses("{\"text\": \"a\", \"intent\": \"x\"}\n{\"text\": \"b\", \"int\n", SESLM_ERR_FORMAT, "fb:2:", "not a JSON object");
    refuses("{\"text\": \"a\", \"intent\": \"x\"}\nplain\tline\n{\"text\": \"c\", \"intent\": \"x\"}\n", SESLM_ERR_FORMAT,
            "fb:2:", NULL);
    refuses("{\"text\": \"b\", \"int", SESLM_ERR_FORMAT, "no labelled examples", "no line end");

    // ---- every kind of bad line names its line ----
    refuses("", SESLM_ERR_FORMAT, "no labelled examples", "empty");
    refuses("\n\n", SESLM_ERR_FORMAT, "no labelled examples", NULL);
    refuses("text\tlabel\n", SESLM_ERR_FORMAT, "no labelled examples", "a header but no rows");
    refuses("just one column\n", SESLM_ERR_FORMAT, "fb:1:", "header");
    refuses("sentence\tintent\nhello\tgreet\n", SESLM_ERR_FORMAT, "fb:1:", "must name a \"text\" and a \"label\"");
    refuses("text\tcategory\nhello\tgreet\n", SESLM_ERR_FORMAT, "fb:1:", "must name a \"text\" and a \"label\"");
    refuses("a\tb\tc\n", SESLM_ERR_FORMAT, "fb:1:", "header");
    refuses("hi\tgreet\nbye\n", SESLM_ERR_FORMAT, "fb:2:", "exactly");
    refuses("hi\tgreet\nbye\tx\ty\n", SESLM_ERR_FORMAT, "fb:2: 3 tab-separated fields", NULL);
    refuses("label\ttext\nonly-one-field\n", SESLM_ERR_FORMAT, "fb:2: 1 tab-separated field,", NULL);
    refuses("text\tlabel\n\tgreet\n", SESLM_ERR_FORMAT, "fb:2:", "text is empty");
    refuses("text\tlabel\nhi\t\n", SESLM_ERR_FORMAT, "fb:2:", "1..128 bytes");
    refuses("text\tlabel\nhi\tgreet \n", SESLM_ERR_FORMAT, "fb:2:", "white space");
    refuses("text\tlabel\nhi\tgr\x01" "eet\n", SESLM_ERR_FORMAT, "fb:2:", "control character");
    refuses("text\tlabel\nhi\tgr\xc2\x85" "eet\n", SESLM_ERR_FORMAT, "fb:2:", "control character"); // C1 (NEL)
    refuses("text\tlabel\nhi\t\xff\n", SESLM_ERR_FORMAT, "fb:2:", "not valid UTF-8");
    refuses("text\tlabel\nok\tgreet\nbad \xc3\x28 text\tgreet\n", SESLM_ERR_UTF8, "fb:3:", "text is not valid UTF-8");
    refuses("{\"text\": \"a\", \"intent\": 3}\n", SESLM_ERR_FORMAT, "fb:1:", "\"intent\"");
    refuses("{\"text\": \"a\"}\n", SESLM_ERR_FORMAT, "fb:1:", NULL);
    refuses("[\"a\", \"b\"]\n", SESLM_ERR_FORMAT, "fb:1:", NULL); // not an object (and not TSV)
    refuses("{\"text\": \"a\", \"intent\": \"x\"} trailing\n", SESLM_ERR_FORMAT, "fb:1:", "not a JSON object");
    // what cJSON lets through and the serving node refuses: a NUL escape would cut the text at it
    refuses("{\"text\": \"a\", \"intent\": \"x\"}\n{\"text\": \"ab\\u0000cd\", \"intent\": \"x\"}\n", SESLM_ERR_FORMAT, "fb:2:",
            "\\u0000");
    refuses("{\"text\": \"a\\udc00\", \"intent\": \"x\"}\n", SESLM_ERR_FORMAT, "fb:1:", "surrogate");
    refuses("{\"text\": \"a\tb\", \"intent\": \"x\"}\n", SESLM_ERR_FORMAT, "fb:1:", "raw control byte");
    refuses("{\"text\": \"caf\xe9\", \"intent\": \"x\"}\n", SESLM_ERR_FORMAT, "fb:1:", "UTF-8");
    {
        char label[200];
        memset(label, 'a', 129);
        label[129] = 0;
        char buf[300];
        snprintf(buf, sizeof buf, "hi\t%s\n", label);
        refuses(buf, SESLM_ERR_FORMAT, "fb:1:", "(got 129)");
        label[128] = 0; // 128 bytes is allowed
        snprintf(buf, sizeof buf, "hi\t%s\n", label);
        CHECK(parse(&l, buf) == SESLM_OK && l.n == 1 && strlen(l.label[0]) == 128);
        labelled_free(&l);
    }
    { // a NUL byte inside a line (strlen would silently cut the line there)
        static const char nul[] = "text\tlabel\nhi\0there\tgreet\n";
        seslm_status st = labelled_parse(&l, nul, sizeof nul - 1, "fb");
        CHECK_MSG(st == SESLM_ERR_FORMAT && strstr(seslm_last_error(), "fb:2: contains a NUL byte"), "%s", seslm_last_error());
        labelled_free(&l);
    }

    // ---- the label rule is the intent head's (the same messages) ----
    CHECK(labelled_label_check("book_table", 10) == SESLM_OK);
    CHECK(labelled_label_check("r\xc3\xa9server", 9) == SESLM_OK);
    CHECK(labelled_label_check(" x", 2) == SESLM_ERR_ARG && strstr(seslm_last_error(), "white space"));
    CHECK(labelled_label_check("  ", 2) == SESLM_ERR_ARG && strstr(seslm_last_error(), "only white space"));

    // ---- from a file; a missing file is an I/O error naming it ----
    char path[] = "/tmp/test_labelled_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (f) {
        fputs("text\tlabel\nhello\tgreet\n", f);
        fclose(f);
        CHECK(labelled_read(&l, path) == SESLM_OK && l.n == 1);
        labelled_free(&l);
        unlink(path);
        CHECK(labelled_read(&l, path) == SESLM_ERR_IO && strstr(seslm_last_error(), path));
        labelled_free(&l);
    }
    return test_report("test_labelled");
}
