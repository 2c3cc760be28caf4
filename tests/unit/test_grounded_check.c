/* test_grounded_check.c — the hallucination check of grounded answers (runtime/assist/grounded_check.c) on
 * hand-made cases: sentence splitting, the numbers and capitalised names an answer sentence must share
 * with its context, the model's own declines, and the support of each sentence under the real encoder
 * (all-MiniLM-L6-v2): a supported answer, a paraphrase, an unsupported number, an unsupported entity,
 * an unrelated claim, a short answer scored with its question, and the clarify band. The passages are
 * lines of data/eval/wiki_passages.txt (Wikipedia, lower-cased, as the shipped data has them). */
#include "grounded.h"
#include "test.h"

#include <unistd.h>

#ifndef SESLM_MODEL_DIR
#define SESLM_MODEL_DIR SESLM_SOURCE_DIR "/models/all-MiniLM-L6-v2"
#endif

static void test_split(void) {
    size_t s[8], l[8];
    const char *t = "Ulster won the European Cup in 1999. It was their first title!  Was it?\n"
                    "The score was 3.5 points, said Mr. Smith and J. R. Jones. ... ";
    int n = seslm_ground_split(t, s, l, 8);
    CHECK_MSG(n == 4, "%d sentences", n);
    CHECK(n >= 1 && l[0] == strlen("Ulster won the European Cup in 1999.") && strncmp(t + s[0], "Ulster", 6) == 0);
    CHECK(n >= 3 && strncmp(t + s[2], "Was it?", l[2]) == 0 && l[2] == 7);
    CHECK(n >= 4 && strncmp(t + s[3], "The score was 3.5 points, said Mr. Smith and J. R. Jones.", l[3]) == 0);
    CHECK(seslm_ground_split("", s, l, 8) == 0);
    CHECK(seslm_ground_split(" ... !? \n", s, l, 8) == 0);
    CHECK(seslm_ground_split("no end mark", s, l, 8) == 1 && l[0] == 11);
    CHECK(seslm_ground_split("a. b. c. d.", s, l, 2) == 2); // cap respected
}

static void test_terms(void) {
    const char *ctx = "ulster won the european cup in 1999\nthe club has 1,200 members and a 3.5 km track\n";
    char miss[48];
#define T(s) seslm_ground_terms(s, strlen(s), ctx, miss, sizeof miss)
    CHECK(T("Ulster won the European Cup in 1999.") == 0);
    CHECK(T("The club has 1200 members.") == 0);    // 1,200 and 1200 are one number
    CHECK(T("The track is 3.5 km long.") == 0);
    CHECK(T("Ulster won the cup in 2001.") == SESLM_GROUND_BAD_NUMBER && strcmp(miss, "2001") == 0);
    CHECK(T("The track is 35 km long.") == SESLM_GROUND_BAD_NUMBER && strcmp(miss, "35") == 0);
    CHECK(T("Leinster won the European Cup.") == SESLM_GROUND_BAD_ENTITY && strcmp(miss, "Leinster") == 0);
    CHECK(T("The cup was won by Ulster and Munster.") == SESLM_GROUND_BAD_ENTITY && strcmp(miss, "Munster") == 0);
    CHECK(T("Ulster's win came in 1999.") == 0);  // possessive
    CHECK(T("I think they won the cup.") == 0);   // "I" and a common opener are not names
    CHECK(T("Euro won.") == SESLM_GROUND_BAD_ENTITY); // whole words only: "european" does not hold "Euro"
    CHECK(T("As [1] says, Ulster won in 1999.") == 0);    // a passage label cited back is no number
    CHECK(T("Ulster won 2 cups.") == SESLM_GROUND_BAD_NUMBER && strcmp(miss, "2") == 0);
#undef T
    // coverage: the question's terms (not its filler words) in the context, inflections by a 5-letter stem
    const char *c2 = "broidy died in 1991 in los angeles california\nthe brigade returned home in 1918\n";
    CHECK(seslm_ground_coverage("Where did Broidy die?", c2, miss, sizeof miss) == 1.0);
    CHECK(seslm_ground_coverage("When did the brigade return home?", c2, miss, sizeof miss) == 1.0);
    CHECK(seslm_ground_coverage("When did Broidy get married?", c2, miss, sizeof miss) == 0.5 && !strcmp(miss, "married"));
    CHECK(seslm_ground_coverage("Did the brigade return in 1919?", c2, miss, sizeof miss) == 2.0 / 3 && !strcmp(miss, "1919"));
    CHECK(seslm_ground_coverage("What year was it?", c2, miss, sizeof miss) == 1.0); // nothing but filler
    CHECK(seslm_ground_is_decline("I don't know."));
    CHECK(seslm_ground_is_decline("The context does not mention the year."));
    CHECK(seslm_ground_is_decline("I DO NOT KNOW"));
    CHECK(!seslm_ground_is_decline("Ulster won the European Cup in 1999."));
    // the claim of a framed sentence
    size_t off, n;
#define CLAIM(t, want) (seslm_ground_claim(t, strlen(t), &off, &n), n == strlen(want) && strncmp(t + off, want, n) == 0)
    CHECK(CLAIM("The answer to this question is: 1949.", "1949."));
    CHECK(CLAIM("The answer is \"The Vanir dwell.\"", "The Vanir dwell."));
    CHECK(CLAIM("According to the context, Broidy died in Los Angeles.", "Broidy died in Los Angeles."));
    CHECK(CLAIM("Answer: \xe2\x80\x9cVanaheim\xe2\x80\x9d", "Vanaheim"));   // curly quotes
    CHECK(CLAIM("Broidy died in Los Angeles.", "Broidy died in Los Angeles.")); // no frame
    CHECK(CLAIM("Answering machines were common.", "Answering machines were common.")); // "answer" must be a word
    CHECK(CLAIM("The answer is: \"\"", "The answer is: \"\""));  // nothing but the frame: the whole sentence
#undef CLAIM
    // terms the question does not hold
    const char *qv = "In which land do the Vanir dwell?";
    CHECK(seslm_ground_new_terms("The Vanir dwell.", 16, qv) == 0);
    CHECK(seslm_ground_new_terms("The Vanir dwell in Vanaheim.", 28, qv) == 1);
    CHECK(seslm_ground_new_terms("The answer to the question is the Vanir.", 40, qv) == 0); // frame words are not news
    CHECK(seslm_ground_new_terms("1949", 4, "In which year was Jerusalem proclaimed the capital?") == 1);
    CHECK(seslm_ground_new_terms("The main international airport of Mozambique is the main airport of Mozambique.", 79,
                                 "What is the main international airport of Mozambique?") == 0);
    CHECK(seslm_ground_new_terms("anything", 8, NULL) == 1);
    // inflections both ways: "moved" restates "move", "dwells" restates "dwell"; short words only match themselves
    const char *qb = "Where did the Barenboim family move in 1952?";
    CHECK(seslm_ground_new_terms("The Barenboim family moved in 1952.", 35, qb) == 0);
    CHECK(seslm_ground_new_terms("The Barenboim family moved to Israel in 1952.", 45, qb) == 1);
    CHECK(seslm_ground_new_terms("The Vanir dwells.", 17, qv) == 0);
    CHECK(seslm_ground_new_terms("The Vanir dwelt in the sky.", 27, qv) == 2); // "dwelt" (5 letters compared) and "sky"
    CHECK(seslm_ground_new_terms("It is a car.", 12, "Which carbon is it?") == 1); // "car" is not "carbon"
}

// ---- with the encoder ----------------------------------------------------------------------------

typedef struct {
    seslm_encoder *e;
    int max_batch;
} enc;

static int embed(void *user, const char *const *texts, int n, float *out) {
    enc *x = user;
    for (int i = 0; i < n; i += x->max_batch) {
        int c = n - i < x->max_batch ? n - i : x->max_batch;
        size_t lens[64];
        for (int j = 0; j < c; j++) lens[j] = strlen(texts[i + j]);
        if (seslm_encoder_embed_texts(x->e, texts + i, lens, c, out + (size_t)i * 384) != SESLM_OK) return -1;
    }
    return 0;
}

static const char *P[] = {
    "electric eels have been widely used as a model in the study of bioelectrogenesis",
    "the brigade returned home in the autumn of 1918",
    "spi confused hof gap with the fulda gap further north",
};

static seslm_ground_verdict check(enc *x, const seslm_ground_opts *o, const char *q, const char *answer,
                                  seslm_ground_check *r) {
    seslm_status st = seslm_ground_check_answer(q, answer, P, 3, 384, embed, x, o, r);
    CHECK_MSG(st == SESLM_OK, "%s", seslm_last_error());
    printf("  %-70.70s -> %-7s support %.3f  %s\n", answer, seslm_ground_verdict_name(r->verdict),
           (double)r->min_support, r->why);
    return r->verdict;
}

static void test_support(enc *x) {
    seslm_ground_opts o;
    seslm_ground_opts_default(&o);
    seslm_ground_check r;
    // supported: a near copy of passage 0; it is cited, the others are not
    CHECK(check(x, &o, NULL, "Electric eels are widely used as a model for studying bioelectrogenesis.", &r) ==
          SESLM_GROUND_ANSWER);
    CHECK(r.n_sentences == 1 && r.support[0] >= 0.8f && r.passage[0] == 0 && r.cited[0] && !r.cited[1] && !r.cited[2]);
    seslm_ground_check_free(&r);
    // two sentences, two passages: both cited
    CHECK(check(x, &o, NULL, "Electric eels are a model for bioelectrogenesis. The brigade came home in 1918.", &r) ==
          SESLM_GROUND_ANSWER);
    CHECK(r.n_sentences == 2 && r.cited[0] && r.cited[1] && !r.cited[2]);
    seslm_ground_check_free(&r);
    // a paraphrase with other words is still supported
    CHECK(check(x, &o, NULL, "The brigade came back home in the fall of 1918.", &r) == SESLM_GROUND_ANSWER);
    seslm_ground_check_free(&r);
    CHECK(check(x, &o, NULL, "Electric eels have often served scientists who study how animals generate electricity.",
                &r) == SESLM_GROUND_ANSWER);
    CHECK(r.passage[0] == 0);
    seslm_ground_check_free(&r);
    // the capital-letter proxy errs on the safe side: a sentence-initial common word the passages lack
    // reads as a name, and the node abstains
    CHECK(check(x, &o, NULL, "Researchers who study how animals generate electricity have relied on electric eels.",
                &r) == SESLM_GROUND_ABSTAIN);
    CHECK(r.flags[0] == SESLM_GROUND_BAD_ENTITY && r.support[0] >= (float)o.min_support);
    seslm_ground_check_free(&r);
    // an unsupported number: the embedding alone would accept it (support stays high); the terms check does not
    CHECK(check(x, &o, NULL, "The brigade returned home in the autumn of 1919.", &r) == SESLM_GROUND_ABSTAIN);
    CHECK(r.flags[0] == SESLM_GROUND_BAD_NUMBER && strcmp(r.missing[0], "1919") == 0 && r.support[0] >= 0.8f);
    CHECK(!r.cited[1] && strstr(r.why, "1919"));
    seslm_ground_check_free(&r);
    // an unsupported entity
    CHECK(check(x, &o, NULL, "The CIA confused the Hof Gap with the Fulda Gap.", &r) == SESLM_GROUND_ABSTAIN);
    CHECK(r.flags[0] == SESLM_GROUND_BAD_ENTITY && strcmp(r.missing[0], "CIA") == 0);
    seslm_ground_check_free(&r);
    // one good sentence does not carry an unsupported one
    // (an unrelated claim naming no number or name: caught by its support alone)
    CHECK(check(x, &o, NULL, "The brigade returned home in 1918. Many households keep frogs as pets.", &r) ==
          SESLM_GROUND_ABSTAIN);
    CHECK(r.n_sentences == 2 && r.flags[0] == 0 && r.flags[1] == 0);
    CHECK(r.support[1] < (float)o.clarify_support && r.support[0] >= (float)o.min_support);
    seslm_ground_check_free(&r);
    // grounded but not about the question: the passages never speak of marrying
    CHECK(check(x, &o, "When did the brigade marry?", "The brigade returned home in the autumn of 1918.", &r) ==
          SESLM_GROUND_ABSTAIN);
    CHECK(r.coverage == 0.5f && strstr(r.why, "marry") && r.n_sentences == 1 && !r.cited[1]);
    seslm_ground_check_free(&r);
    CHECK(check(x, &o, "When did the brigade return home?", "The brigade returned home in the autumn of 1918.", &r) ==
          SESLM_GROUND_ANSWER);
    CHECK(r.coverage == 1.0f && r.cited[1]);
    seslm_ground_check_free(&r);
    // the model's own decline
    CHECK(check(x, &o, NULL, "I don't know.", &r) == SESLM_GROUND_ABSTAIN && r.declined);
    seslm_ground_check_free(&r);
    CHECK(check(x, &o, NULL, "", &r) == SESLM_GROUND_ABSTAIN && r.declined && r.n_sentences == 0);
    // a short answer is scored with its question
    const char *q = "What have electric eels been used to study?";
    CHECK(check(x, &o, q, "Bioelectrogenesis.", &r) == SESLM_GROUND_ANSWER && r.passage[0] == 0);
    seslm_ground_check_free(&r);
    // a framed short answer is scored as its claim, with the question: "The answer to this question is: 1918."
    q = "When did the brigade return home?";
    CHECK(check(x, &o, q, "The answer to this question is: 1918.", &r) == SESLM_GROUND_ANSWER && r.passage[0] == 1);
    CHECK(!r.restates && strcmp(r.sentence[0], "The answer to this question is: 1918.") == 0);
    seslm_ground_check_free(&r);
    // an answer that only restates the question: abstain (embedded with the question it would score high)
    CHECK(check(x, &o, q, "The brigade returned home.", &r) == SESLM_GROUND_ABSTAIN && r.restates);
    CHECK(strstr(r.why, "restates") && r.n_sentences == 1 && !r.cited[1]);
    seslm_ground_check_free(&r);
    CHECK(check(x, &o, q, "The answer is: \"the brigade returned home.\"", &r) == SESLM_GROUND_ABSTAIN && r.restates);
    seslm_ground_check_free(&r);
    // ... unless the question holds its answer: a choice or a yes/no question
    CHECK(check(x, &o, "Did the brigade return home in 1918?", "Yes, the brigade returned home in 1918.", &r) ==
          SESLM_GROUND_ANSWER && !r.restates);
    seslm_ground_check_free(&r);
    CHECK(check(x, &o, "Who confused the hof gap with the fulda gap, spi or nato?", "spi confused the hof gap with the fulda gap.",
                &r) == SESLM_GROUND_ANSWER && !r.restates);
    seslm_ground_check_free(&r);
    // the clarify band: a supported sentence under a threshold above its support, no fabricated term
    seslm_ground_opts strict = o;
    strict.min_support = 0.999;
    strict.clarify_support = 0.3;
    CHECK(check(x, &strict, NULL, "The brigade came back home in the fall of 1918.", &r) == SESLM_GROUND_CLARIFY);
    seslm_ground_check_free(&r);
    strict.clarify_support = 0.999; // no band: abstain
    CHECK(check(x, &strict, NULL, "The brigade came back home in the fall of 1918.", &r) == SESLM_GROUND_ABSTAIN);
    seslm_ground_check_free(&r);
    // bad arguments
    CHECK(seslm_ground_check_answer(NULL, NULL, P, 3, 384, embed, x, &o, &r) == SESLM_ERR_ARG);
    CHECK(seslm_ground_check_answer(NULL, "x", P, SESLM_GROUND_MAX_PASSAGES + 1, 384, embed, x, &o, &r) == SESLM_ERR_ARG);
    // no passage: abstain
    CHECK(seslm_ground_check_answer(NULL, "Ulster won.", NULL, 0, 384, embed, x, &o, &r) == SESLM_OK &&
          r.verdict == SESLM_GROUND_ABSTAIN);
    seslm_ground_check_free(&r);
}

int main(void) {
    test_split();
    test_terms();
    char path[1024];
    snprintf(path, sizeof path, "%s/model.safetensors", SESLM_MODEL_DIR);
    if (access(path, R_OK) != 0) {
        int rc = test_report("test_grounded_check (text checks only)");
        if (rc) return rc;
        TEST_SKIP_UNLESS("SESLM_REQUIRE_MODEL", "no model at %s (data/fetch_model.sh)", SESLM_MODEL_DIR);
    }
    seslm_model *m = NULL;
    enc x = {NULL, 32};
    seslm_encoder_opts eo = {.backend = "cpu", .n_threads = 2, .max_batch = 32};
    if (seslm_model_load(&m, SESLM_MODEL_DIR) != SESLM_OK || seslm_encoder_new(&x.e, m, &eo) != SESLM_OK) {
        fprintf(stderr, "cannot load %s: %s\n", SESLM_MODEL_DIR, seslm_last_error());
        return 1;
    }
    CHECK(seslm_model_get_config(m)->hidden == 384);
    test_support(&x);
    seslm_encoder_free(x.e);
    seslm_model_free(m);
    return test_report("test_grounded_check");
}
