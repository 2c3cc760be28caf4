/* fuzz_labelled.c — libFuzzer target: labelled examples (runtime/core/labelled.h) from arbitrary bytes, the reader
 * behind `seslm intent train --data`, `seslm adapt --feedback` and the validation sandbox's data.feedback.
 * Invariants checked on every input (abort() on violation, which libFuzzer reports as a crash):
 *   - a failure is SESLM_ERR_FORMAT / UTF8 / LIMIT / NOMEM with a non-empty message;
 *   - a success holds at least one example, each a non-empty text of valid UTF-8 and a label that passes the
 *     intent head's rule, and says which form the file was in;
 *   - written back as JSON lines (cJSON escapes every text) the set parses again to the same examples, and, when no
 *     text holds a tab, CR or LF, so does a TSV with a header.
 * Seeds: tests/fuzz/corpus_labelled/. */
#include "labelled.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fuzz_die(const char *what) {
    fprintf(stderr, "fuzz_labelled: invariant violated: %s (%s)\n", what, seslm_last_error());
    abort();
}

static void same(const labelled_set *a, const labelled_set *b, const char *how) {
    if (a->n != b->n) fuzz_die(how);
    for (int i = 0; i < a->n; i++)
        if (strcmp(a->text[i], b->text[i]) || strcmp(a->label[i], b->label[i])) fuzz_die(how);
}

/* A growing buffer (abort on out of memory: the fuzzer's inputs are small). */
typedef struct {
    char *p;
    size_t n, cap;
} buf;

static void put(buf *b, const char *s) {
    const size_t k = strlen(s);
    if (b->n + k + 1 > b->cap) {
        b->cap = (b->n + k + 1) * 2;
        if (!(b->p = realloc(b->p, b->cap))) fuzz_die("out of memory");
    }
    memcpy(b->p + b->n, s, k + 1);
    b->n += k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    labelled_set l;
    seslm_status st = labelled_parse(&l, (const char *)data, size, "fuzz");
    if (st != SESLM_OK) {
        if (st != SESLM_ERR_FORMAT && st != SESLM_ERR_UTF8 && st != SESLM_ERR_LIMIT && st != SESLM_ERR_NOMEM)
            fuzz_die("unexpected status");
        if (!seslm_last_error()[0]) fuzz_die("a failure without a message");
        labelled_free(&l);
        return 0;
    }
    if (l.n < 1) fuzz_die("success with no examples");
    if (l.form != LABELLED_JSONL && l.form != LABELLED_TSV_HEADER && l.form != LABELLED_TSV_PLAIN) fuzz_die("no form");
    int tsv_safe = 1;
    for (int i = 0; i < l.n; i++) {
        const size_t tn = strlen(l.text[i]);
        if (!tn || !util_utf8_valid(l.text[i], tn)) fuzz_die("an empty or ill-formed text was accepted");
        if (labelled_label_check(l.label[i], strlen(l.label[i])) != SESLM_OK) fuzz_die("a label outside the rule");
        if (strpbrk(l.text[i], "\t\r\n")) tsv_safe = 0;
    }
    // ---- the set written back as JSON lines parses to the same examples
    buf b = {0};
    for (int i = 0; i < l.n; i++) {
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddStringToObject(o, "text", l.text[i]) || !cJSON_AddStringToObject(o, "intent", l.label[i]))
            fuzz_die("out of memory");
        char *s = cJSON_PrintUnformatted(o);
        if (!s) fuzz_die("out of memory");
        put(&b, s), put(&b, "\n");
        free(s);
        cJSON_Delete(o);
    }
    labelled_set again;
    if (labelled_parse(&again, b.p, b.n, "again") != SESLM_OK) fuzz_die("the set as JSON lines does not parse");
    same(&l, &again, "the set as JSON lines parses to other examples");
    labelled_free(&again);
    // ---- and as TSV with a header, when no text holds a field or line separator
    if (tsv_safe) {
        b.n = 0;
        put(&b, "label\ttext\n");
        for (int i = 0; i < l.n; i++) put(&b, l.label[i]), put(&b, "\t"), put(&b, l.text[i]), put(&b, "\n");
        if (labelled_parse(&again, b.p, b.n, "again") != SESLM_OK) fuzz_die("the set as TSV does not parse");
        same(&l, &again, "the set as TSV parses to other examples");
        labelled_free(&again);
    }
    free(b.p);
    labelled_free(&l);
    return 0;
}
