/* test_llm_distill.c — end-to-end distillation of a decoder student (pipeline/distill/llm_distill.c) on the tiny
 * generated Llama (tests/fuzz/corpus_gguf/tiny_llama.gguf, 2 layers; its student drops layer 1):
 *   - the gradient of the distillation loss w.r.t. every kind of parameter (norms, Q / K / V / O, gate / up /
 *     down, biases) against central differences, on the parent itself and on the 1-layer student;
 *   - the F32 training forward pass mirrors the runtime's: the parent distilled against itself starts from a
 *     held-out loss near zero (only the runtime's 8-bit activations differ), far below the student's;
 *   - training lowers the held-out loss, and the file is rewritten only when the stored (re-quantized) weights
 *     beat the student as given; the result loads, has its biases and gives finite logits;
 *   - a text share fills each batch with about that share of plain text beside the served prompts, and the
 *     selection weights the two kinds' held-out losses by it;
 *   - bad options and too little text are refused. */
#include "decoder.h"
#include "gguf.h"
#include "llm_distill.h"
#include "llm_prune.h"
#include "test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TINY SESLM_SOURCE_DIR "/tests/fuzz/corpus_gguf/tiny_llama.gguf"

static char docs_buf[64][80];
static const char *docs[64];

static void make_docs(void) {
    static const char *words[] = {"hello", "world", "said", "the", "ab", "ba", "12", "cat", "sat"};
    uint64_t s = 5;
    for (int i = 0; i < 64; i++) {
        docs_buf[i][0] = 0;
        for (int w = 0; w < 7; w++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            strcat(docs_buf[i], words[(s >> 33) % 9]);
            strcat(docs_buf[i], " ");
        }
        docs[i] = docs_buf[i];
    }
}

// the 1-layer student: layer 1 of the tiny model dropped (no healing, no compensation)
static int make_student(const char *out) {
    seslm_llm *m = NULL;
    if (seslm_llm_load(&m, TINY) != SESLM_OK) return -1;
    seslm_telemetry *t = NULL;
    seslm_llm_ctx *c = NULL;
    int rc = -1;
    if (seslm_llm_telemetry_new(&t, m, 64, NULL) == SESLM_OK && seslm_llm_ctx_new(&c, m, 64, 0) == SESLM_OK &&
        seslm_llm_ctx_set_telemetry(c, t) == SESLM_OK) {
        int32_t ids[4] = {1, 2, 3, 4};
        seslm_llm_decode(c, ids, 4, NULL);
        seslm_telemetry_view v;
        seslm_telemetry_snapshot(t, &v);
        seslm_llm_prune_opts o;
        seslm_llm_prune_opts_default(&o);
        const int drop[] = {1};
        o.drop_list = drop, o.n_drop_list = 1, o.compensate = 0, o.reconstruct = 0;
        seslm_llm_prune_summary sm;
        rc = seslm_llm_prune(TINY, &v, &o, out, NULL, &sm) == SESLM_OK && sm.n_layer_out == 1 ? 0 : -1;
    }
    seslm_llm_ctx_free(c);
    seslm_telemetry_free(t);
    seslm_llm_free(m);
    return rc;
}

int main(void) {
    make_docs();
    char student[256], out[256];
    snprintf(student, sizeof student, "/tmp/test_llm_distill_%d_s.gguf", (int)getpid());
    snprintf(out, sizeof out, "/tmp/test_llm_distill_%d_o.gguf", (int)getpid());
    unlink(out);
    CHECK(make_student(student) == 0);

    // gradients against central differences
    double worst = -1, loss = -1;
    for (int kl = 0; kl < 2; kl++) {
        const char *lname = kl ? "KL" : "hidden-state MSE";
        CHECK_MSG(seslm_llm_distill_gradcheck(TINY, TINY, docs, 64, kl, 60, &worst, &loss) == SESLM_OK, "%s", seslm_last_error());
        CHECK_MSG(worst >= 0 && worst < 5e-3 && loss > 0, "%s, parent: worst relative gradient error %.3g (loss %.3g)", lname, worst, loss);
        printf("gradient check (%s), parent as student: worst relative error %.3g, loss %.3g\n", lname, worst, loss);
        CHECK_MSG(seslm_llm_distill_gradcheck(TINY, student, docs, 64, kl, 60, &worst, &loss) == SESLM_OK, "%s", seslm_last_error());
        CHECK_MSG(worst >= 0 && worst < 5e-3 && loss > 0, "%s, student: worst relative gradient error %.3g (loss %.3g)", lname, worst, loss);
        printf("gradient check (%s), 1-layer student: worst relative error %.3g, loss %.3g\n", lname, worst, loss);
    }

    seslm_llm_distill_opts o;
    seslm_llm_distill_opts_default(&o);
    o.steps = 1, o.lr = 1e-9f, o.batch_tokens = 64, o.seq = 16, o.hidden_loss = 1;
    seslm_llm_distill_result self, r, sh;
    // the parent against itself: the training forward pass reproduces the runtime's to 8-bit activation error (the
    // final hidden states' error, far below the 1-layer student's)
    CHECK(seslm_llm_distill(TINY, TINY, docs, 64, &o, out, &self) == SESLM_OK);
    CHECK(seslm_llm_distill(TINY, student, docs, 64, &o, out, &sh) == SESLM_OK);
    CHECK_MSG(self.val_start >= 0 && sh.val_start > 0 && self.val_start < 0.05 * sh.val_start, "hidden-state error: parent %.3g, student %.3g",
              self.val_start, sh.val_start);
    unlink(out);
    o.steps = 80, o.lr = 3e-3f, o.hidden_loss = 0; // the default loss: KL + cross-entropy, selected on held-out cross-entropy
    CHECK_MSG(seslm_llm_distill(TINY, student, docs, 64, &o, out, &r) == SESLM_OK, "%s", seslm_last_error());
    printf("held-out hidden-state error: parent vs itself %.4g, student %.4g; held-out cross-entropy: student %.4g -> %.4g (best) -> "
           "%.4g (written), kept %d, %d steps, %lld + %lld tokens\n", self.val_start, sh.val_start, r.val_start, r.val_trained,
           r.val_stored, r.kept, r.steps, r.train_tokens, r.val_tokens);
    CHECK(r.steps == 80 && r.train_tokens > 0 && r.val_tokens > 0);
    CHECK(r.val_trained < 0.9 * r.val_start);
    CHECK(r.kept == (r.val_stored < r.val_start));
    CHECK(fabs(r.val_stored - r.val_trained) <= 1e-9 * fabs(r.val_trained)); // trained as stored (quantization-aware)
    if (r.kept) {
        gguf_file f;
        CHECK(gguf_open(&f, out) == SESLM_OK);
        CHECK(gguf_find_tensor(&f, "blk.0.attn_output.bias") != NULL && gguf_find_tensor(&f, "blk.0.ffn_down.bias") != NULL);
        gguf_close(&f);
        seslm_llm *m = NULL;
        seslm_llm_ctx *c = NULL;
        CHECK(seslm_llm_load(&m, out) == SESLM_OK);
        if (m) {
            CHECK(seslm_llm_cfg(m)->n_layer == 1);
            const int V = seslm_llm_cfg(m)->n_vocab;
            float *z = malloc((size_t)3 * V * sizeof *z);
            int32_t ids[3] = {1, 2, 3};
            CHECK(z && seslm_llm_ctx_new(&c, m, 16, 0) == SESLM_OK && seslm_llm_decode_all(c, ids, 3, z) == SESLM_OK);
            int finite = 1;
            for (int i = 0; z && i < 3 * V; i++) finite &= isfinite(z[i]) != 0;
            CHECK(finite);
            free(z);
            seslm_llm_ctx_free(c);
            seslm_llm_free(m);
        }
    } else {
        CHECK(access(out, F_OK) != 0); // not written
    }

    // served prompts: with special tokens, the documents that end by opening the assistant's turn (chat prompts) get
    // the parent's greedy answer (up to answer_tokens each) and stay one sequence with it (their last seq tokens);
    // other lines are scored as they are (and no start token goes before a special document)
    seslm_llm_distill_result ra, rb, rc, rd;
    o.steps = 1, o.lr = 1e-8f, o.special = 1, o.answer_tokens = 0;
    CHECK(seslm_llm_distill(TINY, student, docs, 64, &o, out, &ra) == SESLM_OK);
    o.answer_tokens = 4;
    CHECK(seslm_llm_distill(TINY, student, docs, 64, &o, out, &rb) == SESLM_OK);
    CHECK_MSG(rb.train_tokens == ra.train_tokens, "plain lines answered: tokens %lld -> %lld", ra.train_tokens, rb.train_tokens);
    CHECK(ra.train_tokens < r.train_tokens); // no start token before a special document
    o.answer_tokens = -1; // the default: answers only for served prompts (none here)
    CHECK(seslm_llm_distill(TINY, student, docs, 64, &o, out, &rb) == SESLM_OK);
    CHECK_MSG(rb.train_tokens == ra.train_tokens, "default answer length without prompts: tokens %lld -> %lld",
              ra.train_tokens, rb.train_tokens);
    static char chat_buf[64][160];
    const char *chat[64];
    for (int i = 0; i < 64; i++) {
        snprintf(chat_buf[i], sizeof chat_buf[i], "<|im_start|>user\\n%s<|im_end|>\\n<|im_start|>assistant\\n", docs[i]);
        chat[i] = chat_buf[i];
    }
    o.answer_tokens = 0;
    CHECK(seslm_llm_distill(TINY, student, chat, 64, &o, out, &rc) == SESLM_OK);
    o.answer_tokens = 4;
    CHECK(seslm_llm_distill(TINY, student, chat, 64, &o, out, &rd) == SESLM_OK);
    // unanswered, each prompt (> 16 tokens) is cut into 16-token windows; answered, each is one window of 16
    CHECK_MSG(rc.train_tokens > 56LL * 16 && rd.train_tokens <= 56LL * 16 && rd.train_tokens > 56LL * 8,
              "chat prompts: %lld tokens unanswered, %lld answered (56 training prompts, seq 16)", rc.train_tokens,
              rd.train_tokens);
    o.special = 0, o.answer_tokens = 0;
    unlink(out);

    // a text share: served prompts (with the parent's answers, several times longer than a text line) beside plain
    // text; each batch takes about the share of its tokens from the text, and the held-out selection weights the two
    // kinds' losses by it. Without a share the metric is the per-token mean over both kinds
    {
        seslm_llm_distill_opts p;
        seslm_llm_distill_opts_default(&p);
        p.steps = 30, p.lr = 1e-8f, p.batch_tokens = 160, p.seq = 48, p.answer_tokens = 4;
        p.prompts = chat, p.n_prompts = 32;
        seslm_llm_distill_result ru, rs;
        CHECK_MSG(seslm_llm_distill(TINY, student, docs, 64, &p, out, &ru) == SESLM_OK, "%s", seslm_last_error());
        CHECK_MSG(isfinite(ru.val_text) && isfinite(ru.val_prompts) && ru.val_text != ru.val_prompts, "parts %g / %g", ru.val_text, ru.val_prompts);
        CHECK_MSG(ru.val_start >= fmin(ru.val_text, ru.val_prompts) - 1e-9 && ru.val_start <= fmax(ru.val_text, ru.val_prompts) + 1e-9,
                  "as they come: %g is not between the parts %g / %g", ru.val_start, ru.val_text, ru.val_prompts);
        const double fu = (double)ru.seen_text / (double)(ru.seen_text + ru.seen_prompts);
        for (int k = 0; k < 2; k++) {
            const float share = k ? 0.2f : 0.6f;
            p.text_share = share;
            CHECK_MSG(seslm_llm_distill(TINY, student, docs, 64, &p, out, &rs) == SESLM_OK, "%s", seslm_last_error());
            const double f = (double)rs.seen_text / (double)(rs.seen_text + rs.seen_prompts);
            CHECK_MSG(fabs(f - share) < 0.12, "share %.2f: the batches held %.3f text (as they come: %.3f)", share, f, fu);
            const double w = share * rs.val_text + (1.0 - share) * rs.val_prompts;
            CHECK_MSG(fabs(rs.val_trained - w) <= 1e-9 * fabs(w), "share %.2f: selection %.9g, weighted parts %.9g", share, rs.val_trained, w);
            CHECK(rs.train_tokens == ru.train_tokens && rs.val_tokens == ru.val_tokens); // the same sequences
        }
        p.text_share = 0.5f, p.n_prompts = 0, p.prompts = NULL; // text alone: one pool, nothing of the prompts
        CHECK(seslm_llm_distill(TINY, student, docs, 64, &p, out, &rs) == SESLM_OK && rs.seen_prompts == 0 && rs.seen_text > 0);
        p.text_share = 1.0f;
        CHECK(seslm_llm_distill(TINY, student, docs, 64, &p, out, &rs) == SESLM_ERR_ARG);
        p.text_share = 0.0f;
        CHECK(seslm_llm_distill(TINY, student, docs, 64, &p, out, &rs) == SESLM_ERR_ARG);
        unlink(out);
    }

    // the parent's answers kept in a file: a second run takes every one from it and trains on exactly the same
    // sequences; a file that does not parse, or of another parent, is not used (answered again, rewritten), never fatal
    {
        char cache[512];
        snprintf(cache, sizeof cache, "%s.answers", out);
        unlink(cache);
        seslm_llm_distill_opts p;
        seslm_llm_distill_opts_default(&p);
        p.steps = 1, p.lr = 1e-8f, p.batch_tokens = 160, p.seq = 48, p.answer_tokens = 4;
        p.prompts = chat, p.n_prompts = 32, p.answers_cache = cache;
        seslm_llm_distill_result a1, a2, a3, a4;
        CHECK_MSG(seslm_llm_distill(TINY, student, docs, 64, &p, out, &a1) == SESLM_OK, "%s", seslm_last_error());
        CHECK_MSG(a1.answers_cached == 0 && a1.answers_computed == 32 && access(cache, F_OK) == 0, "first run: %lld cached, %lld computed",
                  a1.answers_cached, a1.answers_computed);
        CHECK_MSG(seslm_llm_distill(TINY, student, docs, 64, &p, out, &a2) == SESLM_OK, "%s", seslm_last_error());
        CHECK_MSG(a2.answers_cached == 32 && a2.answers_computed == 0, "second run: %lld cached, %lld computed", a2.answers_cached,
                  a2.answers_computed);
        CHECK(a2.train_tokens == a1.train_tokens && a2.val_tokens == a1.val_tokens && a2.val_start == a1.val_start);
        // other limits: greedy answers are prefixes of each other, so a smaller limit is served from the file and a
        // larger one for the answers that ended before 4 tokens; either way the very sequences of a run without it
        for (int lim = 3; lim <= 6; lim += 3) {
            seslm_llm_distill_result rc, rn;
            p.answer_tokens = lim;
            CHECK(seslm_llm_distill(TINY, student, docs, 64, &p, out, &rc) == SESLM_OK);
            p.answers_cache = NULL;
            CHECK(seslm_llm_distill(TINY, student, docs, 64, &p, out, &rn) == SESLM_OK && rn.answers_cached == 0);
            p.answers_cache = cache;
            CHECK_MSG(rc.answers_cached + rc.answers_computed == 32 && (lim < 4 ? rc.answers_cached == 32 : rc.answers_computed > 0),
                      "limit %d: %lld cached, %lld computed", lim, rc.answers_cached, rc.answers_computed);
            CHECK_MSG(rc.train_tokens == rn.train_tokens && rc.val_tokens == rn.val_tokens && rc.val_start == rn.val_start,
                      "limit %d: from the file %lld + %lld tokens, %.9g; asked %lld + %lld, %.9g", lim, rc.train_tokens,
                      rc.val_tokens, rc.val_start, rn.train_tokens, rn.val_tokens, rn.val_start);
        }
        p.answer_tokens = 4;
        FILE *f = fopen(cache, "r+b"); // cut the file short: not used, answered again and written whole
        CHECK(f != NULL);
        if (f) {
            CHECK(ftruncate(fileno(f), 100) == 0);
            fclose(f);
        }
        CHECK(seslm_llm_distill(TINY, student, docs, 64, &p, out, &a3) == SESLM_OK && a3.answers_cached == 0 && a3.answers_computed == 32);
        CHECK(a3.train_tokens == a1.train_tokens && a3.val_start == a1.val_start);
        CHECK(seslm_llm_distill(TINY, student, docs, 64, &p, out, &a4) == SESLM_OK && a4.answers_cached == 32);
        // the student as the parent: other weights, so none of the file's answers are its
        CHECK(seslm_llm_distill(student, student, docs, 64, &p, out, &a4) == SESLM_OK && a4.answers_cached == 0 && a4.answers_computed == 32);
        f = fopen(cache, "wb"); // garbage
        if (f) {
            fputs("not a cache", f);
            fclose(f);
        }
        CHECK(seslm_llm_distill(TINY, student, docs, 64, &p, out, &a4) == SESLM_OK && a4.answers_computed == 32);
        p.answers_cache = "/nonexistent-dir/answers"; // cannot be written: the run still succeeds
        CHECK(seslm_llm_distill(TINY, student, docs, 64, &p, out, &a4) == SESLM_OK && a4.answers_computed == 32);
        unlink(cache);
        unlink(out);
    }

    // a time budget: the schedule shrinks to the steps that fit at the measured pace (never below 3), the run says
    // it was cut; a budget it fits in changes nothing; a negative one is refused
    {
        seslm_llm_distill_opts p;
        seslm_llm_distill_opts_default(&p);
        p.steps = 1000, p.batch_tokens = 64, p.seq = 16, p.max_seconds = 1e-6;
        seslm_llm_distill_result rb;
        CHECK_MSG(seslm_llm_distill(TINY, student, docs, 64, &p, out, &rb) == SESLM_OK, "%s", seslm_last_error());
        CHECK_MSG(rb.steps == 3 && rb.budget_cut == 1, "a budget of 1 us: %d steps, cut %d", rb.steps, rb.budget_cut);
        CHECK(rb.train_seconds > 0.0 && isfinite(rb.val_trained) && rb.val_trained <= rb.val_start && isfinite(rb.val_stored));
        p.steps = 4, p.max_seconds = 1e6;
        CHECK(seslm_llm_distill(TINY, student, docs, 64, &p, out, &rb) == SESLM_OK && rb.steps == 4 && rb.budget_cut == 0);
        p.max_seconds = -1.0;
        CHECK(seslm_llm_distill(TINY, student, docs, 64, &p, out, &rb) == SESLM_ERR_ARG);
        p.max_seconds = NAN;
        CHECK(seslm_llm_distill(TINY, student, docs, 64, &p, out, &rb) == SESLM_ERR_ARG);
        unlink(out);
    }

    // bad input
    o.steps = -1;
    CHECK(seslm_llm_distill(TINY, student, docs, 64, &o, out, &r) == SESLM_ERR_ARG);
    o.steps = 5, o.seq = 1;
    CHECK(seslm_llm_distill(TINY, student, docs, 64, &o, out, &r) == SESLM_ERR_ARG);
    o.seq = 16;
    CHECK(seslm_llm_distill(TINY, student, docs, 3, &o, out, &r) == SESLM_ERR_ARG);
    CHECK(seslm_llm_distill(TINY, "/nonexistent.gguf", docs, 64, &o, out, &r) == SESLM_ERR_IO);
    o.steps = 0;
    CHECK(seslm_llm_distill(TINY, student, docs, 64, &o, out, &r) == SESLM_OK && r.steps == 0);
    unlink(student);
    unlink(out);
    return test_report("test_llm_distill");
}
