/* generate.c — sampling, the ChatML chat template, and the generation loop with streaming and stop
 * strings (decoder.h). */
#include "decoder.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// ---------------------------------------------------------------------------------------------
// sampler

seslm_status seslm_sampler_init(seslm_sampler *s, const seslm_sampler_opts *o, int n_vocab) {
    memset(s, 0, sizeof *s);
    if (!(o->temperature >= 0.0f) || !(o->top_p > 0.0f && o->top_p <= 1.0f))
        return seslm_fail(SESLM_ERR_ARG, "temperature must be >= 0 and top-p in (0, 1]");
    s->o = *o;
    s->state = o->seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
    if (!s->state) s->state = 1;
    s->n = n_vocab;
    s->probs = malloc((size_t)n_vocab * sizeof *s->probs);
    s->idx = malloc((size_t)n_vocab * sizeof *s->idx);
    if (!s->probs || !s->idx) {
        seslm_sampler_free(s);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    return SESLM_OK;
}

void seslm_sampler_free(seslm_sampler *s) {
    free(s->probs);
    free(s->idx);
    s->probs = NULL;
    s->idx = NULL;
}

static uint64_t xorshift64s(uint64_t *x) {
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return *x * 0x2545F4914F6CDD1Dull;
}

static const float *sort_probs;
static int cmp_prob_desc(const void *a, const void *b) {
    float x = sort_probs[*(const int32_t *)a], y = sort_probs[*(const int32_t *)b];
    if (x != y) return x > y ? -1 : 1;
    return *(const int32_t *)a < *(const int32_t *)b ? -1 : 1;
}

int32_t seslm_sampler_pick(seslm_sampler *s, float *logits) {
    int n = s->n, best = 0;
    for (int i = 1; i < n; i++)
        if (logits[i] > logits[best]) best = i;
    if (s->o.temperature == 0.0f) return best;
    float mx = logits[best], sum = 0.0f;
    for (int i = 0; i < n; i++) {
        s->probs[i] = expf((logits[i] - mx) / s->o.temperature);
        sum += s->probs[i];
    }
    for (int i = 0; i < n; i++) s->probs[i] /= sum;
    int keep = n;
    if (s->o.top_p < 1.0f) { // the smallest set of most probable tokens whose mass reaches top_p
        // only tokens above (1 - top_p) / n can matter for the cut; sort those
        int k = 0;
        float floor_p = (1.0f - s->o.top_p) / (float)n;
        for (int i = 0; i < n; i++)
            if (s->probs[i] >= floor_p) s->idx[k++] = i;
        sort_probs = s->probs; // (the sampler is used by one thread at a time)
        qsort(s->idx, (size_t)k, sizeof *s->idx, cmp_prob_desc);
        float cum = 0.0f;
        keep = k;
        for (int i = 0; i < k; i++) {
            cum += s->probs[s->idx[i]];
            if (cum >= s->o.top_p) {
                keep = i + 1;
                break;
            }
        }
        float r = (float)((double)(xorshift64s(&s->state) >> 11) * (1.0 / 9007199254740992.0)) * cum;
        float acc = 0.0f;
        for (int i = 0; i < keep; i++) {
            acc += s->probs[s->idx[i]];
            if (r < acc) return s->idx[i];
        }
        return s->idx[keep - 1];
    }
    float r = (float)((double)(xorshift64s(&s->state) >> 11) * (1.0 / 9007199254740992.0));
    float acc = 0.0f;
    for (int i = 0; i < n; i++) {
        acc += s->probs[i];
        if (r < acc) return i;
    }
    return best;
}

// ---------------------------------------------------------------------------------------------
// chat template (ChatML: <|im_start|>role\ncontent<|im_end|>\n)

typedef struct {
    char *s;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t nc = (b->n + n + 1) * 2;
        char *p = realloc(b->s, nc);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->s = p;
        b->cap = nc;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}
static void sb_str(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

char *seslm_chat_format(const seslm_llm *m, const seslm_chat_msg *msgs, int n, int add_generation_prompt) {
    sbuf b = {0};
    const char *sys = seslm_llm_default_system(m);
    if (sys && (n == 0 || strcmp(msgs[0].role, "system") != 0)) {
        sb_str(&b, "<|im_start|>system\n");
        sb_str(&b, sys);
        sb_str(&b, "<|im_end|>\n");
    }
    for (int i = 0; i < n; i++) {
        sb_str(&b, "<|im_start|>");
        sb_str(&b, msgs[i].role);
        sb_str(&b, "\n");
        sb_str(&b, msgs[i].content);
        sb_str(&b, "<|im_end|>\n");
    }
    if (add_generation_prompt) sb_str(&b, "<|im_start|>assistant\n");
    sb_add(&b, "", 0);
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

// ---------------------------------------------------------------------------------------------
// generation

static double clock_ms(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}
static double now_ms(void) { return clock_ms(CLOCK_MONOTONIC); }
static double cpu_ms(void) { return clock_ms(CLOCK_PROCESS_CPUTIME_ID); }

/* Length of the longest suffix of s[0..n) that is a proper prefix of a stop string. */
static size_t stop_holdback(const char *s, size_t n, const char *const *stop, int n_stop) {
    size_t best = 0;
    for (int k = 0; k < n_stop; k++) {
        size_t L = strlen(stop[k]);
        for (size_t h = L > 1 ? L - 1 : 0; h > best; h--)
            if (h <= n && memcmp(s + n - h, stop[k], h) == 0) {
                best = h;
                break;
            }
    }
    return best;
}

/* Bytes at the end of s that start an unfinished UTF-8 sequence (0..3). */
static size_t utf8_incomplete_tail(const char *s, size_t n) {
    for (size_t back = 1; back <= 4 && back <= n; back++) {
        unsigned char c = (unsigned char)s[n - back];
        if ((c & 0xC0) == 0x80) continue; // continuation byte: look further back
        size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        return need > back ? back : 0;
    }
    return 0;
}

/* Hands n bytes of generated text to on_text as well-formed UTF-8 (util_utf8_repair: a model may emit byte
 * tokens that make no character). Returns on_text's value; -1 when out of memory. */
static int emit_text(const seslm_gen_opts *o, const char *s, size_t n) {
    char stack[1024], *buf = 3 * n + 1 <= sizeof stack ? stack : malloc(3 * n + 1);
    if (!buf) return -1;
    size_t m = util_utf8_repair(s, n, buf);
    int rc = o->on_text(o->user, buf, m);
    if (buf != stack) free(buf);
    return rc;
}

void seslm_gen_result_free(seslm_gen_result *r) {
    free(r->text);
    memset(r, 0, sizeof *r);
}

seslm_status seslm_generate(seslm_llm_ctx *c, const char *prompt, size_t len, const seslm_gen_opts *o,
                            seslm_gen_result *r) {
    memset(r, 0, sizeof *r);
    const seslm_llm *m = seslm_llm_ctx_model(c);
    const bpe_tokenizer *tok = seslm_llm_tokenizer(m);
    const int V = seslm_llm_cfg(m)->n_vocab;
    int32_t *ids = NULL;
    int n_ids = 0;
    seslm_status st = bpe_encode(tok, prompt, len, o->parse_special, &ids, &n_ids);
    if (st) return st;
    if (n_ids == 0) {
        free(ids);
        return seslm_fail(SESLM_ERR_ARG, "the prompt is empty");
    }
    int room = seslm_llm_ctx_n_ctx(c) - seslm_llm_ctx_pos(c);
    if (n_ids >= room) {
        free(ids);
        return seslm_fail(SESLM_ERR_LIMIT, "the prompt has %d tokens; the context has room for %d", n_ids, room - 1);
    }
    seslm_sampler smp;
    float *logits = malloc((size_t)V * sizeof *logits);
    if (!logits) {
        free(ids);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    if ((st = seslm_sampler_init(&smp, &o->sampling, V))) {
        free(ids);
        free(logits);
        return st;
    }
    sbuf text = {0};
    sb_add(&text, "", 0);
    size_t emitted = 0; // bytes of text already handed to on_text
    r->n_prompt = n_ids;
    r->finish = "length";
    double t0 = now_ms(), c0 = cpu_ms();
    st = seslm_llm_decode(c, ids, n_ids, logits);
    double t1 = now_ms(), c1 = cpu_ms();
    r->prompt_ms = t1 - t0;
    r->prompt_cpu_ms = c1 - c0;
    char piece[512];
    for (int i = 0; !st && i < o->max_tokens; i++) {
        int32_t id = seslm_sampler_pick(&smp, logits);
        const int end = id == bpe_eos(tok) || bpe_is_control(tok, id);
        if (end && !o->ignore_eos) {
            r->finish = "stop";
            break;
        }
        r->n_gen++;
        int pn = end ? 0 : bpe_token_bytes(tok, id, 0, piece, (int)sizeof piece); // (ignore_eos: decoded, not shown)
        if (pn > (int)sizeof piece) pn = (int)sizeof piece;
        size_t before = text.n;
        sb_add(&text, piece, (size_t)pn > 0 ? (size_t)pn : 0);
        if (text.oom) {
            st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
            break;
        }
        // a stop string may start up to (longest stop - 1) bytes before this piece
        int stopped = 0;
        for (int k = 0; k < o->n_stop; k++) {
            size_t L = strlen(o->stop[k]);
            if (!L) continue;
            size_t from = before >= L ? before - L + 1 : 0;
            for (size_t p = from; p + L <= text.n; p++)
                if (memcmp(text.s + p, o->stop[k], L) == 0) {
                    text.n = p;
                    text.s[p] = 0;
                    stopped = 1;
                    break;
                }
        }
        size_t safe = text.n;
        if (!stopped) safe -= stop_holdback(text.s, text.n, o->stop, o->n_stop);
        safe -= utf8_incomplete_tail(text.s, safe);
        if (o->on_text && safe > emitted) {
            int rc = emit_text(o, text.s + emitted, safe - emitted);
            if (rc < 0) {
                st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
                break;
            }
            if (rc) {
                emitted = safe;
                r->finish = "callback";
                break;
            }
            emitted = safe;
        }
        if (stopped) {
            r->finish = "stop";
            break;
        }
        if (i + 1 == o->max_tokens) break;
        if (seslm_llm_ctx_pos(c) >= seslm_llm_ctx_n_ctx(c)) break; // context full: "length"
        st = seslm_llm_decode(c, &id, 1, logits);
    }
    r->gen_ms = now_ms() - t1;
    r->gen_cpu_ms = cpu_ms() - c1;
    if (!st && o->on_text && text.n > emitted && strcmp(r->finish, "callback") != 0)
        emit_text(o, text.s + emitted, text.n - emitted); // the held-back tail, generation over
    seslm_sampler_free(&smp);
    free(logits);
    free(ids);
    if (st) {
        free(text.s);
        return st;
    }
    // the text as streamed: ill-formed UTF-8 (a character cut at the token limit, a stray byte) made U+FFFD
    if (!util_utf8_valid(text.s, text.n)) {
        char *clean = malloc(3 * text.n + 1);
        if (!clean) {
            free(text.s);
            return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        }
        r->len = util_utf8_repair(text.s, text.n, clean);
        free(text.s);
        r->text = clean;
        return SESLM_OK;
    }
    r->text = text.s;
    r->len = text.n;
    return SESLM_OK;
}

// ---------------------------------------------------------------------------------------------
// served prompts (decoder.h)

void seslm_prompt_unescape(char *t) {
    char *w = t;
    for (const char *r = t; *r; r++) {
        if (r[0] == '\\' && r[1] == 'n') *w++ = '\n', r++;
        else *w++ = *r;
    }
    *w = 0;
}

seslm_status seslm_llm_continue_greedy(const seslm_llm *m, int32_t **ids, int *n, int k) {
    const seslm_llm_config *cf = seslm_llm_cfg(m);
    const bpe_tokenizer *tok = seslm_llm_tokenizer(m);
    const int32_t im_end = bpe_lookup(tok, "<|im_end|>", 10), eot = bpe_lookup(tok, "<|endoftext|>", 13), eos = bpe_eos(tok);
    if (*n + k > cf->n_ctx_train) k = cf->n_ctx_train - *n;
    if (k <= 0) return SESLM_OK;
    int32_t *grown = realloc(*ids, (size_t)(*n + k) * sizeof *grown);
    float *logits = malloc((size_t)cf->n_vocab * sizeof *logits);
    seslm_llm_ctx *c = NULL;
    seslm_status st = grown && logits ? SESLM_OK : seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    if (grown) *ids = grown;
    if (!st) st = seslm_llm_ctx_new(&c, m, *n + k, 0);
    if (!st) st = seslm_llm_decode(c, *ids, *n, logits);
    for (int i = 0; i < k && !st; i++) {
        int best = 0;
        for (int v = 1; v < cf->n_vocab; v++)
            if (logits[v] > logits[best]) best = v;
        (*ids)[(*n)++] = best;
        if (best == im_end || best == eot || best == eos) break;
        if (i + 1 < k) st = seslm_llm_decode(c, &(*ids)[*n - 1], 1, logits);
    }
    seslm_llm_ctx_free(c);
    free(logits);
    return st;
}
