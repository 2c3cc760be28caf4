/* grounded_check.c — the hallucination check of a grounded answer (grounded.h): sentences, the numbers and
 * capitalised words they name, and their support by the passages under the embedding model. */
#include "grounded.h"

#include <ctype.h>
#include <stddef.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void seslm_ground_opts_default(seslm_ground_opts *o) {
    o->min_support = 0.60;
    o->clarify_support = 0.45;
    o->max_tokens = 48;
    o->min_coverage = 0.75;
}

const char *seslm_ground_verdict_name(seslm_ground_verdict v) {
    return v == SESLM_GROUND_ANSWER ? "answer" : v == SESLM_GROUND_CLARIFY ? "clarify" : "abstain";
}

const char *seslm_ground_abstain_text(void) { return "I don't know from the available information."; }
const char *seslm_ground_clarify_text(void) {
    return "I am not sure I understood: could you say more precisely what you want to know?";
}

void seslm_ground_check_free(seslm_ground_check *r) {
    for (int i = 0; i < r->n_sentences; i++) free(r->sentence[i]);
    r->n_sentences = 0;
}

// ---- sentences --------------------------------------------------------------------------------------

static int is_word_char(unsigned char c) { return isalnum(c) || c >= 0x80; }

/* A '.' at p ends a sentence unless it is a decimal point (3.5), an initial (J. R.) or one of a few
 * abbreviations: a split there would cut one claim in two and lose its context. */
static int period_ends(const char *text, size_t p) {
    if (p > 0 && isdigit((unsigned char)text[p - 1]) && isdigit((unsigned char)text[p + 1])) return 0;
    size_t w = p;
    while (w > 0 && (isalpha((unsigned char)text[w - 1]) || text[w - 1] == '.')) w--;
    size_t wl = p - w;
    if (wl == 1 && isupper((unsigned char)text[w])) return 0; // an initial
    static const char *abbr[] = {"mr", "mrs", "ms", "dr", "st", "vs", "etc", "e.g", "i.e", "jr", "sr", "no", "approx"};
    for (size_t i = 0; i < sizeof abbr / sizeof *abbr; i++)
        if (wl == strlen(abbr[i]) && strncasecmp(text + w, abbr[i], wl) == 0) return 0;
    return 1;
}

int seslm_ground_split(const char *text, size_t *starts, size_t *lens, int cap) {
    int n = 0;
    size_t s = 0, L = strlen(text);
    for (size_t p = 0; p <= L && n < cap; p++) {
        int end = p == L || text[p] == '\n';
        size_t cut = p; // the sentence is text[s, cut)
        if (!end && (text[p] == '.' || text[p] == '!' || text[p] == '?') &&
            (p + 1 == L || isspace((unsigned char)text[p + 1]) || text[p + 1] == '"' || text[p + 1] == ')')) {
            if (text[p] != '.' || period_ends(text, p)) end = 1, cut = p + 1;
        }
        if (!end) continue;
        size_t a = s, b = cut;
        while (a < b && isspace((unsigned char)text[a])) a++;
        while (b > a && isspace((unsigned char)text[b - 1])) b--;
        int has = 0;
        for (size_t i = a; i < b && !has; i++) has = is_word_char((unsigned char)text[i]);
        if (has) starts[n] = a, lens[n++] = b - a;
        s = p + 1;
    }
    return n;
}

// ---- numbers and capitalised words --------------------------------------------------------------------

/* The next number written in digits at or after *p in [*p, end): digits with single ',' or '.' between
 * digits; copied without the commas ("1,200" -> "1200"). 0 when there is none. */
static int next_number(const char **p, const char *end, char *out, size_t cap) {
    const char *s = *p;
    while (s < end && !isdigit((unsigned char)*s)) s++;
    if (s >= end) return 0;
    size_t k = 0;
    const char *q = s;
    while (q < end) {
        if (isdigit((unsigned char)*q)) {
            if (k + 1 < cap) out[k++] = *q;
            q++;
        } else if ((*q == ',' || *q == '.') && q + 1 < end && isdigit((unsigned char)q[1]) && q > s) {
            if (*q == '.' && k + 1 < cap) out[k++] = '.';
            q++;
        } else {
            break;
        }
    }
    out[k] = 0;
    *p = q;
    return 1;
}

static int context_has_number(const char *ctx, const char *num) {
    const char *p = ctx, *end = ctx + strlen(ctx);
    char buf[48];
    while (next_number(&p, end, buf, sizeof buf))
        if (strcmp(buf, num) == 0) return 1;
    return 0;
}

/* Whole-word, case-blind occurrence of w (len n) in ctx. */
static int context_has_word(const char *ctx, const char *w, size_t n) {
    for (const char *p = ctx; *p; p++) {
        if (strncasecmp(p, w, n) != 0) continue;
        int before = p == ctx || !is_word_char((unsigned char)p[-1]);
        int after = !is_word_char((unsigned char)p[n]);
        if (before && after) return 1;
    }
    return 0;
}

/* Words that open sentences with a capital without naming anything. */
static int is_opener(const char *w, size_t n) {
    static const char *op[] = {"the", "a", "an", "it", "its", "this", "that", "these", "those", "there", "he", "she",
                               "they", "we", "you", "his", "her", "their", "our", "my", "in", "on", "at", "of", "for",
                               "from", "to", "by", "with", "as", "after", "before", "during", "yes", "no", "not",
                               "according", "based", "so", "and", "but", "or", "if", "when", "where", "what", "who",
                               "which", "why", "how", "one", "some", "many", "most", "all", "each", "both", "also",
                               "however", "answer", "since", "because", "while", "then", "here", "only", "both"};
    for (size_t i = 0; i < sizeof op / sizeof *op; i++)
        if (n == strlen(op[i]) && strncasecmp(w, op[i], n) == 0) return 1;
    return 0;
}

int seslm_ground_terms(const char *sentence, size_t len, const char *context, char *missing, size_t cap) {
    const char *p = sentence, *end = sentence + len;
    char num[48];
    while (next_number(&p, end, num, sizeof num)) {
        // "[2]": the prompt's passage label, cited back, is not a claim
        const size_t nl = strlen(num);
        if (p < end && *p == ']' && (size_t)(p - sentence) > nl && p[-(ptrdiff_t)nl - 1] == '[') continue;
        if (!context_has_number(context, num)) {
            snprintf(missing, cap, "%s", num);
            return SESLM_GROUND_BAD_NUMBER;
        }
    }
    int first = 1;
    for (p = sentence; p < end;) {
        while (p < end && !is_word_char((unsigned char)*p)) p++;
        const char *w = p;
        while (p < end && (is_word_char((unsigned char)*p) || ((*p == '\'' || *p == '-') && p + 1 < end &&
                                                                is_word_char((unsigned char)p[1]))))
            p++;
        size_t n = (size_t)(p - w);
        if (!n) break;
        int was_first = first;
        first = 0;
        if (!isupper((unsigned char)w[0])) continue;
        if ((n == 1 && w[0] == 'I') || (n > 1 && w[0] == 'I' && w[1] == '\'')) continue;
        if (was_first && is_opener(w, n)) continue;
        // a possessive "Ulster's" is the word "Ulster"
        size_t m = n;
        if (m > 2 && w[m - 2] == '\'' && (w[m - 1] == 's' || w[m - 1] == 'S')) m -= 2;
        if (!context_has_word(context, w, m)) {
            snprintf(missing, cap, "%.*s", (int)(m < cap - 1 ? m : cap - 1), w);
            return SESLM_GROUND_BAD_ENTITY;
        }
    }
    return 0;
}

/* Words of a question that say what kind of answer it wants, not what it is about. */
static int is_question_filler(const char *w, size_t n) {
    static const char *fw[] = {
        "what", "which", "who", "whom", "whose", "when", "where", "why", "how", "the", "and", "for", "from", "with",
        "that", "this", "these", "those", "there", "was", "were", "are", "is", "been", "being", "did", "does", "do",
        "done", "has", "have", "had", "can", "could", "would", "should", "will", "shall", "may", "might", "must",
        "its", "his", "her", "their", "our", "your", "him", "them", "they", "she", "you", "into", "onto", "about",
        "year", "years", "date", "time", "many", "much", "long", "high", "tall", "old", "name", "named", "called",
        "kind", "type", "sort", "any", "some", "other", "tell", "know", "please", "give", "say", "says", "said",
        "between", "during", "after", "before", "since", "until", "than", "then", "very", "also", "not", "all",
        "one", "get", "got", "make", "made", "happen", "happened", "exactly", "approximately", "main", "first"};
    for (size_t i = 0; i < sizeof fw / sizeof *fw; i++)
        if (n == strlen(fw[i]) && strncasecmp(w, fw[i], n) == 0) return 1;
    return 0;
}

/* A context word that starts with the question word's first min(len, 5) letters ("married" and
 * "marriage", "return" and "returned"): a crude stem, enough for the inflections of one language. */
static int context_has_stem(const char *ctx, const char *w, size_t n) {
    size_t k = n < 5 ? n : 5;
    for (const char *p = ctx; *p; p++)
        if ((p == ctx || !is_word_char((unsigned char)p[-1])) && strncasecmp(p, w, k) == 0) return 1;
    return 0;
}

double seslm_ground_coverage(const char *question, const char *context, char *missing, size_t cap) {
    int total = 0, found = 0;
    if (missing && cap) missing[0] = 0;
    for (const char *p = question; *p;) {
        while (*p && !is_word_char((unsigned char)*p)) p++;
        const char *w = p;
        while (*p && is_word_char((unsigned char)*p)) p++;
        size_t n = (size_t)(p - w);
        if (!n) break;
        int digits = isdigit((unsigned char)w[0]);
        if (!digits && (n < 3 || is_question_filler(w, n))) continue;
        total++;
        int has;
        if (digits) {
            char num[48];
            const char *q = w;
            has = !next_number(&q, p, num, sizeof num) || context_has_number(context, num);
        } else {
            has = context_has_stem(context, w, n);
        }
        found += has;
        if (!has && missing && cap && !missing[0]) snprintf(missing, cap, "%.*s", (int)(n < cap - 1 ? n : cap - 1), w);
    }
    return total ? (double)found / total : 1.0;
}

/* Words that frame an answer or speak of the exchange itself rather than its subject. */
static int is_answer_filler(const char *w, size_t n) {
    static const char *fw[] = {"answer", "answers", "question", "questions", "context", "passage", "passages",
                               "according", "based", "given", "text", "information", "provided", "mentioned",
                               "states", "stated", "but", "nor", "only"};
    for (size_t i = 0; i < sizeof fw / sizeof *fw; i++)
        if (n == strlen(fw[i]) && strncasecmp(w, fw[i], n) == 0) return 1;
    return is_question_filler(w, n);
}

/* Bytes of the quote mark that starts at s[i] (i < len): 1 for " and ', 3 for the curly double quotes, else 0. */
static size_t quote_len(const char *s, size_t i, size_t len) {
    if (s[i] == '"' || s[i] == '\'') return 1;
    const unsigned char *u = (const unsigned char *)s + i;
    return i + 2 < len && u[0] == 0xE2 && u[1] == 0x80 && (u[2] == 0x9C || u[2] == 0x9D) ? 3 : 0;
}

void seslm_ground_claim(const char *sentence, size_t len, size_t *off, size_t *n) {
    static const char *pre[] = {"the answer to this question is", "the answer to the question is",
                                "the answer to your question is", "the answer is", "answer",
                                "according to the context", "according to the passages", "based on the context",
                                "based on the passages", "from the context", "the context says that",
                                "the context says", "the passage says that", "the passage says"};
    *off = 0, *n = len;
    for (size_t i = 0; i < sizeof pre / sizeof *pre; i++) {
        const size_t k = strlen(pre[i]);
        if (len <= k || strncasecmp(sentence, pre[i], k) != 0 || is_word_char((unsigned char)sentence[k])) continue;
        size_t a = k, q; // past the preamble: separators, spaces and opening quotes
        while (a < len && ((q = quote_len(sentence, a, len)) || strchr(" :,-", sentence[a]))) a += q ? q : 1;
        size_t b = len; // before the quotes closing the claim
        for (;;) {
            const size_t c = b > a && (sentence[b - 1] == '"' || sentence[b - 1] == '\'') ? 1
                           : b >= a + 3 && quote_len(sentence, b - 3, len) == 3     ? 3
                                                                                    : 0;
            if (!c) break;
            b -= c;
        }
        for (size_t j = a; j < b; j++)
            if (is_word_char((unsigned char)sentence[j])) { // a claim is left: score it alone
                *off = a, *n = b - a;
                break;
            }
        return;
    }
}

/* A word of text that is w or an inflection of it, case-blind: the two share their first k = min(5, both lengths)
 * letters, k >= 4 ("move" / "moved", "dwell" / "dwells", "Mozambique" / "Mozambican"); words shorter than 4 letters
 * match only themselves. */
static int text_has_stem(const char *text, size_t tn, const char *w, size_t n) {
    for (size_t i = 0; i < tn;) {
        while (i < tn && !is_word_char((unsigned char)text[i])) i++;
        const size_t a = i;
        while (i < tn && is_word_char((unsigned char)text[i])) i++;
        const size_t qn = i - a;
        if (!qn) break;
        size_t k = n < qn ? n : qn;
        if (k > 5) k = 5;
        if (k < 4 ? (qn == n && strncasecmp(text + a, w, n) == 0) : strncasecmp(text + a, w, k) == 0) return 1;
    }
    return 0;
}

int seslm_ground_new_terms(const char *claim, size_t len, const char *question) {
    if (!question) return 1;
    const size_t qn = strlen(question);
    int news = 0;
    for (const char *p = claim, *end = claim + len; p < end;) {
        while (p < end && !is_word_char((unsigned char)*p)) p++;
        const char *w = p;
        while (p < end && is_word_char((unsigned char)*p)) p++;
        size_t n = (size_t)(p - w);
        if (!n) break;
        int digits = isdigit((unsigned char)w[0]);
        if (!digits && (n < 3 || is_answer_filler(w, n))) continue;
        if (!text_has_stem(question, qn, w, n)) news++;
    }
    return news;
}

/* A question whose answer may repeat it: one that offers its answers ("Ulster or Munster?") or a yes/no
 * question ("Did Ulster win in 1999?" - "Yes, Ulster won in 1999."). */
static int question_holds_answer(const char *question) {
    static const char *aux[] = {"is", "was", "are", "were", "did", "does", "do", "can", "could", "has", "have",
                                "had", "will", "would", "should", "shall", "may", "might", "must"};
    while (*question && !is_word_char((unsigned char)*question)) question++;
    size_t n = 0;
    while (is_word_char((unsigned char)question[n])) n++;
    for (size_t i = 0; i < sizeof aux / sizeof *aux; i++)
        if (n == strlen(aux[i]) && strncasecmp(question, aux[i], n) == 0) return 1;
    for (const char *p = question; *p; p++)
        if (strncasecmp(p, " or ", 4) == 0) return 1;
    return 0;
}

int seslm_ground_is_decline(const char *answer) {
    static const char *ph[] = {"don't know", "do not know", "don’t know", "not mentioned", "no information",
                               "not enough information", "does not say", "doesn't say", "does not mention",
                               "doesn't mention", "does not provide", "doesn't provide", "not provided",
                               "cannot answer", "can't answer", "cannot be answered", "not specified",
                               "not stated", "no mention", "does not contain", "doesn't contain",
                               "is not given", "not in the context", "cannot determine", "can't determine",
                               "unable to answer", "unable to determine", "no answer"};
    for (size_t i = 0; i < sizeof ph / sizeof *ph; i++) {
        size_t n = strlen(ph[i]);
        for (const char *p = answer; *p; p++)
            if (strncasecmp(p, ph[i], n) == 0) return 1;
    }
    return 0;
}

// ---- the check ----------------------------------------------------------------------------------------

static float cosine(const float *a, const float *b, int d) {
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < d; i++) ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    return aa > 0 && bb > 0 ? (float)(ab / sqrt(aa * bb)) : 0.0f;
}

static int word_count(const char *s, size_t n) {
    int w = 0, in = 0;
    for (size_t i = 0; i < n; i++) {
        int c = is_word_char((unsigned char)s[i]);
        if (c && !in) w++;
        in = c;
    }
    return w;
}

#define CTX_MAX_SENT 256 // passage sentences embedded (the passages are a few retrieved ones)

seslm_status seslm_ground_check_answer(const char *question, const char *answer, const char *const *passages,
                                       int n, int dim, seslm_ground_embed_fn embed, void *user,
                                       const seslm_ground_opts *o, seslm_ground_check *r) {
    memset(r, 0, sizeof *r);
    if (!answer || n < 0 || n > SESLM_GROUND_MAX_PASSAGES || dim <= 0 || !embed || !o || (n && !passages))
        return seslm_fail(SESLM_ERR_ARG, "grounded check: bad arguments");
    for (int i = 0; i < n; i++) r->cited[i] = 0;
    size_t as[SESLM_GROUND_MAX_SENTENCES + 1], al[SESLM_GROUND_MAX_SENTENCES + 1];
    int na = seslm_ground_split(answer, as, al, SESLM_GROUND_MAX_SENTENCES + 1);
    const int overflow = na > SESLM_GROUND_MAX_SENTENCES;
    if (overflow) na = SESLM_GROUND_MAX_SENTENCES;
    r->verdict = SESLM_GROUND_ABSTAIN;
    if (na == 0 || seslm_ground_is_decline(answer)) {
        r->declined = 1;
        snprintf(r->why, sizeof r->why, "%s", na ? "the model found no answer in the context" : "the answer is empty");
        return SESLM_OK;
    }
    if (n == 0) {
        snprintf(r->why, sizeof r->why, "no passage to ground the answer in");
        return SESLM_OK;
    }
    r->coverage = 1.0f;
    // the context: every passage's sentences, and all passages joined for the terms check
    size_t ctx_len = 1;
    for (int i = 0; i < n; i++) ctx_len += strlen(passages[i]) + 1;
    char *ctx = malloc(ctx_len);
    const char **texts = malloc((size_t)(CTX_MAX_SENT + SESLM_GROUND_MAX_SENTENCES) * sizeof *texts);
    int *owner = malloc(CTX_MAX_SENT * sizeof *owner);
    char *store = NULL; // NUL-terminated copies of every sentence to embed
    float *emb = NULL;
    seslm_status st = SESLM_OK;
    if (!ctx || !texts || !owner) {
        st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        goto done;
    }
    ctx[0] = 0;
    for (int i = 0; i < n; i++) strcat(strcat(ctx, passages[i]), "\n");
    int uncovered = 0;
    if (question) {
        // the passages must speak of what was asked: an answer drawn from a passage about the question's
        // subject but not its point ("When did X marry?" over "X died in 1991") is grounded and still wrong
        char miss[48];
        r->coverage = (float)seslm_ground_coverage(question, ctx, miss, sizeof miss);
        if (r->coverage < o->min_coverage) {
            snprintf(r->why, sizeof r->why,
                     "the passages do not speak of the question's \"%s\" (%.0f%% of its terms found, %.0f%% needed)",
                     miss, 100.0 * r->coverage, 100.0 * o->min_coverage);
            uncovered = 1; // the answer's sentences are still recorded; the verdict stays abstain
        }
    }
    size_t qlen = question ? strlen(question) : 0;
    store = malloc(ctx_len + strlen(answer) + (size_t)na * (qlen + 2) + (size_t)(CTX_MAX_SENT + na) + 1);
    if (!store) {
        st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        goto done;
    }
    char *w = store;
    int nc = 0, news = 0;
    size_t cs[SESLM_GROUND_MAX_SENTENCES], cl[SESLM_GROUND_MAX_SENTENCES]; // each sentence's claim
    for (int i = 0; i < n && nc < CTX_MAX_SENT; i++) {
        size_t ps[64], pl[64];
        int k = seslm_ground_split(passages[i], ps, pl, 64);
        for (int j = 0; j < k && nc < CTX_MAX_SENT; j++) {
            memcpy(w, passages[i] + ps[j], pl[j]);
            w[pl[j]] = 0;
            texts[nc] = w;
            owner[nc++] = i;
            w += pl[j] + 1;
        }
    }
    for (int s = 0; s < na; s++) {
        r->sentence[s] = malloc(al[s] + 1);
        if (!r->sentence[s]) {
            st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
            goto done;
        }
        memcpy(r->sentence[s], answer + as[s], al[s]);
        r->sentence[s][al[s]] = 0;
        r->n_sentences = s + 1;
        // the claim: the sentence without a framing preamble ("The answer is: 1949." says "1949.")
        seslm_ground_claim(answer + as[s], al[s], &cs[s], &cl[s]);
        cs[s] += as[s];
        news += seslm_ground_new_terms(answer + cs[s], cl[s], question);
        texts[nc + s] = w;
        if (question && word_count(answer + cs[s], cl[s]) < SESLM_GROUND_SHORT_WORDS) {
            memcpy(w, question, qlen);
            w[qlen] = ' ';
            w += qlen + 1;
        }
        memcpy(w, answer + cs[s], cl[s]);
        w[cl[s]] = 0;
        w += cl[s] + 1;
    }
    if (uncovered) goto done; // the coverage check decided: abstain, the sentences recorded unscored
    if (question && news == 0 && !question_holds_answer(question)) {
        // "The vanir dwell." for "In which land do the Vanir dwell?": embedded with the question it scores
        // high, and it answers nothing
        r->restates = 1;
        snprintf(r->why, sizeof r->why, "the answer only restates the question (no term of its own)");
        goto done;
    }
    if (nc == 0) {
        snprintf(r->why, sizeof r->why, "the passages hold no sentence");
        goto done;
    }
    emb = malloc((size_t)(nc + na) * (size_t)dim * sizeof *emb);
    if (!emb) {
        st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (embed(user, texts, nc + na, emb) != 0) {
        st = seslm_fail(SESLM_ERR_INTERNAL, "grounded check: embedding failed: %s", seslm_last_error());
        goto done;
    }
    r->min_support = 1.0f;
    int bad_terms = 0;
    for (int s = 0; s < na; s++) {
        const float *e = emb + (size_t)(nc + s) * dim;
        float best = -1.0f;
        int bp = 0;
        for (int c = 0; c < nc; c++) {
            float v = cosine(e, emb + (size_t)c * dim, dim);
            if (v > best) best = v, bp = owner[c];
        }
        r->support[s] = best;
        r->passage[s] = bp;
        r->flags[s] = seslm_ground_terms(answer + cs[s], cl[s], ctx, r->missing[s], sizeof r->missing[s]);
        if (r->flags[s] && !bad_terms++)
            snprintf(r->why, sizeof r->why, "sentence %d names the %s \"%s\", which is not in the passages", s + 1,
                     r->flags[s] == SESLM_GROUND_BAD_NUMBER ? "number" : "name", r->missing[s]);
        if (best < r->min_support) r->min_support = best;
    }
    if (bad_terms) {
        r->verdict = SESLM_GROUND_ABSTAIN;
    } else if (overflow) {
        snprintf(r->why, sizeof r->why, "the answer has more than %d sentences", SESLM_GROUND_MAX_SENTENCES);
    } else if (r->min_support < o->min_support) {
        r->verdict = r->min_support >= o->clarify_support ? SESLM_GROUND_CLARIFY : SESLM_GROUND_ABSTAIN;
        snprintf(r->why, sizeof r->why, "the least supported sentence scores %.3f, below the threshold %.3f",
                 (double)r->min_support, o->min_support);
    } else {
        r->verdict = SESLM_GROUND_ANSWER;
        for (int s = 0; s < na; s++) r->cited[r->passage[s]] = 1;
        snprintf(r->why, sizeof r->why, "every sentence is supported (lowest %.3f, threshold %.3f)",
                 (double)r->min_support, o->min_support);
    }
done:
    free(ctx);
    free(texts);
    free(owner);
    free(store);
    free(emb);
    if (st != SESLM_OK) seslm_ground_check_free(r);
    return st;
}
