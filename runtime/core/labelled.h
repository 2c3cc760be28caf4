/* labelled.h — labelled examples (a text and its intent) from a file, in the three forms users hand us:
 *   - JSON lines {"text": ..., "intent": ...} ("label" also accepted; other fields ignored): what a serving
 *     node's --feedback-log writes, and the bodies of POST /v1/feedback;
 *   - TSV with a header line naming a "text" and a "label" (or "intent") column, in any order, other columns
 *     ignored;
 *   - TSV without a header: exactly "text TAB label" on every line.
 * `seslm intent train --data`, `seslm adapt --feedback` and the validation sandbox's data.feedback all read
 * through here, so a file one of them takes, the others take too.
 *
 * Every example is checked before anything is embedded, and a refusal names the line: a NUL byte, a text
 * that is not UTF-8 (SESLM_ERR_UTF8), an empty text, or a label outside the intent head's rule
 * (labelled_label_check). A JSON line is held to the serving node's strictness (util_json_strict: no \u0000,
 * which would cut the text, no lone surrogate, no raw control byte). Blank lines and a CR before the LF are allowed. A JSON file's last line that has
 * no line end and does not parse is skipped and counted (a node that crashed mid-write leaves such a line,
 * never acknowledged); anywhere else a bad line is an error. */
#ifndef SESLM_LABELLED_H
#define SESLM_LABELLED_H

/* Exported for the other layers (cmake/seslm.map exports only seslm_* names). */
#define labelled_parse seslm_labelled_parse
#define labelled_read seslm_labelled_read
#define labelled_free seslm_labelled_free
#define labelled_add seslm_labelled_add
#define labelled_label_check seslm_labelled_label_check

#include "seslm.h"

#include <stddef.h>

#define LABELLED_MAX_LABEL 128      // bytes of a label, without the NUL (= SESLM_INTENT_MAX_LABEL)
#define LABELLED_MAX_FILE (1u << 30) // bytes of a file read whole (1 GiB: about 10 M feedback lines)

typedef enum { LABELLED_JSONL = 1, LABELLED_TSV_HEADER, LABELLED_TSV_PLAIN } labelled_form;

typedef struct {
    int n, cap;
    char **text, **label; // n each, malloc'd
    labelled_form form;   // what the file was read as
    int skipped_partial;  // 1 when an unterminated, unparsable last JSON line was skipped
} labelled_set;

/* Parses buf[0..len) (name: the file's name in messages) into *out (zeroed first; labelled_free after,
 * on failure too). No examples at all is SESLM_ERR_FORMAT. */
seslm_status labelled_parse(labelled_set *out, const char *buf, size_t len, const char *name);
/* The same, from a file (at most LABELLED_MAX_FILE bytes). */
seslm_status labelled_read(labelled_set *out, const char *path);
void labelled_free(labelled_set *l);
/* Appends one example (copies of t[0..tn), lab[0..ln)); 0 when out of memory. */
int labelled_add(labelled_set *l, const char *t, size_t tn, const char *lab, size_t ln);

/* SESLM_OK when s[0..n) is a valid intent name: 1..LABELLED_MAX_LABEL bytes of UTF-8, no control character
 * (C0, DEL, C1), no white space at either end ("greet" and "greet " must not become two intents). The
 * message says what is wrong, without a prefix. */
seslm_status labelled_label_check(const char *s, size_t n);

#endif
