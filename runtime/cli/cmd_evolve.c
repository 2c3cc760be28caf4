/* cmd_evolve.c — `seslm evolve`: the whole evolution cycle as one nightly batch command.
 *
 *   ingest -> [drift] -> plan -> recompile (each candidate) -> validate (each candidate) -> select
 *
 * Each stage runs this same binary's subcommand as a child process (the commands users run by hand, with
 * their own checks and crash-safe outputs) and writes into its own folder of the run directory. A stage is
 * done when its marker RUN/stages/<stage>.json exists (written atomically after the stage succeeded); a
 * rerun skips done stages, so a run killed halfway resumes from the last finished stage, and a finished run
 * (RUN/verdict.json present) does nothing but report its outcome again. A stage without a marker is started
 * over: its partial outputs are removed first. One process per run directory (flock on RUN/.lock). */
#include "adapt_config.h"
#include "cli.h"
#include "evolve_config.h"
#include "intent.h"
#include "labelled.h"
#include "model_verify.h"
#include "recompile.h"
#include "s3_client.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *HELP =
    "usage: seslm evolve --config FILE [--model DIR] [--telemetry DIR] [--out DIR] [--calibration FILE]\n"
    "                    [--gates FILE] [--threads N]\n"
    "\n"
    "Runs the evolution cycle as a nightly batch job (docs/evolve.md), every intermediate file in the run\n"
    "directory OUT:\n"
    "  01-ingest     merge the telemetry dumps of DIR (seslm ingest)\n"
    "  00-split      the calibration sample split deterministically: evolve.heldout_fraction of it (served\n"
    "                traffic) is held out: never calibrated or distilled on, only measured on by validate\n"
    "  02-drift      when evolve.drift.reference is set: compare it with the merged window (seslm drift);\n"
    "                drift turns the cycle into a micro-evolution (evolve.drift.micro_candidates, calibrated\n"
    "                on evolve.drift.micro_calibration: the drifted domain's text)\n"
    "  03-plan       profile, score, candidate pruning plans (seslm plan), deeper ones (whole layers dropped)\n"
    "  04-recompile  each candidate (evolve.candidates, evolve.layer_candidates): slice, reconstruct on the\n"
    "                calibration part, [distill: evolve.distill], INT8, compressed embeddings; F32 master kept\n"
    "  05-validate   each candidate against the parent under the gates (seslm validate), with the held-out\n"
    "                traffic, the node's KB and labelled feedback (evolve.kb, evolve.feedback)\n"
    "  06-validate-root  from the second generation on: each candidate against the original model too\n"
    "  07-adapt      when evolve.adapt.enabled: seslm adapt --config evolve.adapt.config on the selected\n"
    "                student (or the parent when none passed) with the labelled feedback; a rejected adapter\n"
    "                leaves the cycle's model as it is (verdict.json \"adapt\": status, gates, deploy_model_dir)\n"
    "  08-intent     when evolve.intent.data is set: seslm intent train on the deployed model (the selected\n"
    "                student, else the parent) from those examples and evolve.feedback; a student's head is\n"
    "                written into its directory, where a serving node looks for it at the promotion\n"
    "                (verdict.json \"intent_head\"); not run when an adapter was accepted (it carries its head)\n"
    "  08-intent-check  when evolve.intent.data is empty, a student was selected and the node has a head\n"
    "                (evolve.intent.head, default the parent directory's intent_head.safetensors): that head\n"
    "                run on the held-out traffic through the parent and the student; verdict.json\n"
    "                \"intent_head\": the share of answers that change, and of those the parent gives with\n"
    "                confidence >= 0.7; past 0.5 % of the latter a refit (evolve.intent.data) is advised.\n"
    "                Measured, not a gate\n"
    "  verdict.json, report.md: the candidate that passed every gate of both with the smallest\n"
    "                evolve.select metric (default weight_bytes: the smallest student), or none, and why\n"
    "The parent may be a student of an earlier cycle (its F32 master is planned and recompiled).\n"
    "A decoder (--model FILE.gguf, docs/decoder.md): 00-split, then per evolve.decoder.drop_layers count\n"
    "  04-recompile-dN  seslm recompile-decoder --drop-layers N (measured layer choice, healing of the\n"
    "                   dropped spans' neighbours, evolve.decoder.embd_type table, then evolve.decoder.\n"
    "                   distill_steps of end-to-end distillation) on the calibration part\n"
    "  05-validate-dN   seslm validate-decoder against the parent: held-out perplexity on the held-out part,\n"
    "                   bytes, decode latency, the grounded QA set (evolve.decoder.* bars)\n"
    "  and the smallest passing student (04-recompile/dN/model.gguf: register it with seslm registry).\n"
    "A rerun of a finished run does nothing but report it; a run killed halfway resumes from the last\n"
    "finished stage. The flags override the config's evolve: section.\n"
    "\n"
    "  --config FILE      configs/evolve.yaml (the policy and the evolve: section)\n"
    "  --model DIR        the parent model (evolve.model)\n"
    "  --telemetry DIR    directory of telemetry dumps, or s3://BUCKET/PREFIX of a fleet's (evolve.telemetry;\n"
    "                     docs/fleet.md)\n"
    "  --out DIR          the run directory (evolve.out)\n"
    "  --calibration FILE calibration text, one input per line (evolve.calibration)\n"
    "  --gates FILE       validation gates (evolve.gates)\n"
    "  --threads N        worker threads of every stage, 0 = all cores (evolve.threads)\n"
    "\n"
    "Exit status: 0 a candidate passed every gate and was selected; 1 no candidate passed (see report.md);\n"
    "2 usage error or bad configuration; 3 a stage failed (rerun to resume) or another evolve holds OUT.\n";

static const char *CMD = "evolve";

#define MAX_CANDS (2 * SESLM_EVOLVE_MAX_CANDIDATES)

typedef struct {
    seslm_evolve_config c;
    char config_path[1024];
    char run[1024];
    int micro; // drift detected
    char root[1024]; // the original model the lineage descends from ("" = the parent is the root)
    char cand[MAX_CANDS][32]; // candidate names: plan-NN (heads + neurons), plan-lN (N layers kept)
    int n_cand;
    char adapt_feedback[1024]; // the adapt stage's feedback (evolve.adapt.feedback, evolve.feedback or the adapt config's)
} evolve_run;

static void path_of(char *out, size_t cap, const evolve_run *r, const char *fmt, ...) {
    char rel[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rel, sizeof rel, fmt, ap);
    va_end(ap);
    snprintf(out, cap, "%s/%s", r->run, rel);
}

static int exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

static int stage_done(const evolve_run *r, const char *stage) {
    char p[2200];
    path_of(p, sizeof p, r, "stages/%s.json", stage);
    return exists(p);
}

static int stage_mark(const evolve_run *r, const char *stage, double seconds, int rc, const char *outcome) {
    char p[2200], txt[1024];
    path_of(p, sizeof p, r, "stages/%s.json", stage);
    snprintf(txt, sizeof txt, "{\"stage\": \"%s\", \"seconds\": %.2f, \"exit\": %d, \"outcome\": \"%s\"}\n", stage, seconds,
             rc, outcome);
    if (util_write_file_atomic(p, txt, strlen(txt)) != SESLM_OK) {
        cli_error(CMD, "%s", seslm_last_error());
        return 0;
    }
    return 1;
}

/* Runs `seslm ARGS...` with stdout into out_file (NULL: inherited); returns the exit status, or -1.
 * The child dies with us (PR_SET_PDEATHSIG): a killed evolve leaves no stage running behind it, so a
 * resumed run never races an orphan writing the same outputs. */
static int run_child(const char *out_file, char *const *args) {
    char *argv[64];
    int n = 0;
    argv[n++] = (char *)"seslm";
    for (int i = 0; args[i] && n < 63; i++) argv[n++] = args[i];
    argv[n] = NULL;
    const pid_t parent = getpid();
    fflush(NULL);
    const pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "seslm evolve: cannot start a stage: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(127); // the parent died before prctl
        if (out_file) {
            const int fd = open(out_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            if (fd < 0 || dup2(fd, 1) < 0) _exit(127);
        }
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int mkdirs(const char *p) {
    char b[2200];
    snprintf(b, sizeof b, "%s", p);
    for (char *s = b + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            if (mkdir(b, 0755) != 0 && errno != EEXIST) return 0;
            *s = '/';
        }
    return mkdir(b, 0755) == 0 || errno == EEXIST;
}

/* One stage: skipped when done; else outputs removed, child run, marker written when rc is accepted
 * (rc 0; rc 1 and 3 where ok1 & 1; rc 2 where ok1 & 2). Returns the child's rc (the stored one when skipped), or -1 on failure. */
static int stage(const evolve_run *r, const char *name, const char *out_dir_rel, const char *stdout_rel, int ok1,
                 char *const *args) {
    char marker[2200];
    path_of(marker, sizeof marker, r, "stages/%s.json", name);
    if (stage_done(r, name)) {
        char *txt = NULL;
        size_t n = 0;
        int rc = 0;
        if (util_read_file(marker, &txt, &n, 1 << 16, NULL) == SESLM_OK) {
            cJSON *j = cJSON_Parse(txt);
            const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "exit");
            rc = cJSON_IsNumber(e) ? e->valueint : 0;
            cJSON_Delete(j);
        }
        free(txt);
        fprintf(stderr, "seslm evolve: %-24s done (exit %d), skipped\n", name, rc);
        return rc;
    }
    char p[2200], so[2200];
    if (out_dir_rel) {
        path_of(p, sizeof p, r, "%s", out_dir_rel);
        util_rmtree(p); // a partial output of an interrupted attempt
    }
    if (stdout_rel) path_of(so, sizeof so, r, "%s", stdout_rel);
    fprintf(stderr, "seslm evolve: %-24s running\n", name);
    const double t0 = util_now_s();
    const int rc = run_child(stdout_rel ? so : NULL, args);
    const double dt = util_now_s() - t0;
    // ok1: exit 1 (a gate failed) and 3 (a timing gate inconclusive: not selected) are verdicts, not errors
    // ok1 & 2: exit 2 (bad input) is a verdict too (the adapt stage: too little feedback must not fail a cycle)
    if (rc == 0 || ((ok1 & 1) && (rc == 1 || rc == 3)) || ((ok1 & 2) && rc == 2)) {
        if (!stage_mark(r, name, dt, rc,
                        rc == 0 ? "ok" : rc == 1 ? "checked: exit 1" : rc == 2 ? "checked: bad input" : "checked: inconclusive"))
            return -1;
        fprintf(stderr, "seslm evolve: %-24s finished in %.1f s (exit %d)\n", name, dt, rc);
        return rc;
    }
    cli_error(CMD, "stage %s failed (exit %d); its messages are above. Rerun to resume from it.", name, rc);
    return -1;
}

// ---- selection --------------------------------------------------------------------------------------

static cJSON *read_json(const char *path) {
    char *txt = NULL;
    size_t n = 0;
    if (util_read_file(path, &txt, &n, 64 << 20, NULL) != SESLM_OK) return NULL;
    cJSON *j = cJSON_ParseWithLength(txt, n);
    free(txt);
    return j;
}

static double metric(const cJSON *verdict, const char *name, const char *field) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(verdict, "metrics"), name);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, field);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static int plan_pct(double t) { return (int)(t * 100 + 0.5); }

/* Gate failures of a verdict into arr; returns whether it passed (0 when there is no verdict). */
static int verdict_pass(const cJSON *v, cJSON *failed, const char *prefix) {
    if (!v) return 0;
    const cJSON *g;
    cJSON_ArrayForEach(g, cJSON_GetObjectItemCaseSensitive(v, "gates")) {
        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(g, "pass"))) {
            const cJSON *msg = cJSON_GetObjectItemCaseSensitive(g, "message");
            char b[600];
            snprintf(b, sizeof b, "%s%s", prefix, cJSON_IsString(msg) ? msg->valuestring : "?");
            cJSON_AddItemToArray(failed, cJSON_CreateString(b));
        }
    }
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "pass"));
}

/* 07-adapt (evolve.adapt.enabled): seslm adapt with evolve.adapt.config on base (the selected student, or the
 * parent when none passed), into RUN/07-adapt, a resumable stage like the others. Its verdict (accepted or
 * rejected, the gate figures, the adapted model) goes into the run's verdict (root) and report (md). A
 * rejected adapter (exit 1), or feedback it cannot use (exit 2: too few examples, a single intent), leaves
 * the cycle's outcome as it is: the cycle's model stands. Returns 0 only when the stage itself failed. */
static int adapt_stage(const evolve_run *r, const char *base, cJSON *root, FILE *md) {
    char out[2200], thr[16], vpath[2300];
    path_of(out, sizeof out, r, "07-adapt");
    snprintf(thr, sizeof thr, "%d", r->c.threads);
    char *a[16] = {"adapt", "--config", (char *)r->c.adapt_config, "--model", (char *)base, "--feedback",
                   (char *)r->adapt_feedback, "--out", out, "--quiet", NULL};
    if (r->c.threads > 0) a[10] = "--threads", a[11] = thr, a[12] = NULL; // else the adapt config's
    const int rc = stage(r, "07-adapt", "07-adapt", "07-adapt.json", 3, a);
    if (rc < 0) return 0;
    snprintf(vpath, sizeof vpath, "%s/verdict.json", out);
    cJSON *v = rc <= 1 ? read_json(vpath) : NULL;
    const int accepted = rc == 0 && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "accepted"));
    cJSON *ad = cJSON_AddObjectToObject(root, "adapt");
    cJSON_AddStringToObject(ad, "status", accepted ? "accepted" : rc == 1 ? "rejected" : "not run: unusable feedback (exit 2)");
    cJSON_AddStringToObject(ad, "base", base);
    cJSON_AddStringToObject(ad, "feedback", r->adapt_feedback);
    cJSON_AddNumberToObject(ad, "exit", rc);
    char mdir[2300];
    snprintf(mdir, sizeof mdir, "%s/model", out);
    if (accepted) cJSON_AddStringToObject(ad, "model_dir", mdir);
    cJSON_AddStringToObject(ad, "deploy_model_dir", accepted ? mdir : base); // a rejected adapter: the cycle's model stands
    const cJSON *gates = cJSON_GetObjectItemCaseSensitive(v, "gates");
    if (gates) cJSON_AddItemToObject(ad, "gates", cJSON_Duplicate(gates, 1));
    // how the gate held feedback out (cross-fitted or one split) and its McNemar test
    const cJSON *ho = cJSON_GetObjectItemCaseSensitive(v, "heldout"), *mt = cJSON_GetObjectItemCaseSensitive(v, "heldout_gain_test");
    if (ho) cJSON_AddItemToObject(ad, "heldout", cJSON_Duplicate(ho, 1));
    if (mt) cJSON_AddItemToObject(ad, "heldout_gain_test", cJSON_Duplicate(mt, 1));
    fprintf(md, "\n## Adapter (07-adapt)\n\nLoRA adapters on `%s` with the feedback `%s`: **%s**", base, r->adapt_feedback,
            accepted ? "accepted" : rc == 1 ? "rejected" : "not run (the feedback is unusable: see the log)");
    fprintf(md, accepted ? "; deploy `%s`.\n" : "; the cycle's model stands (`%s`).\n", accepted ? mdir : base);
    const cJSON *hm = cJSON_GetObjectItemCaseSensitive(ho, "method"), *he = cJSON_GetObjectItemCaseSensitive(ho, "examples");
    const cJSON *tw = cJSON_GetObjectItemCaseSensitive(mt, "wins"), *tl = cJSON_GetObjectItemCaseSensitive(mt, "losses"),
                *tp = cJSON_GetObjectItemCaseSensitive(mt, "p_value");
    if (cJSON_IsString(hm) && cJSON_IsNumber(he) && cJSON_IsNumber(tw) && cJSON_IsNumber(tl) && cJSON_IsNumber(tp))
        fprintf(md, "\nHeld-out feedback: %s, %d examples; the adapted model right where the base was wrong on %d, the reverse "
                    "on %d (McNemar p %.3g).\n",
                strcmp(hm->valuestring, "crossfit") == 0 ? "cross-fitted (each example predicted by an adapter trained without it)"
                                                         : "one split",
                he->valueint, tw->valueint, tl->valueint, tp->valuedouble);
    if (gates) {
        fprintf(md, "\n| gate | base | adapted | value | threshold | pass |\n|---|---|---|---|---|---|\n");
        const cJSON *g;
        cJSON_ArrayForEach(g, gates) {
            const cJSON *n = cJSON_GetObjectItemCaseSensitive(g, "gate");
#define NUM(k) (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(g, k)) ? cJSON_GetObjectItemCaseSensitive(g, k)->valuedouble : NAN)
            fprintf(md, "| %s | %.3f | %.3f | %.3f | %.3f | %s |\n", cJSON_IsString(n) ? n->valuestring : "?", NUM("base"),
                    NUM("adapted"), NUM("value"), NUM("threshold"),
                    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(g, "pass")) ? "pass" : "**fail**");
#undef NUM
        }
    }
    cJSON_Delete(v);
    return 1;
}

/* 08-intent (evolve.intent.data): the intent head for the model this cycle deploys (model: the selected student,
 * or the parent when none passed), fitted by `seslm intent train` on evolve.intent.data (the node's head's training
 * examples) and evolve.feedback (the node's --feedback-log) together, into RUN/08-intent/intent_head.safetensors. A
 * head is bound to the features of the model it was fitted on: a student's intermediate layers are not its parent's,
 * and a node promoted to the student swaps to the student directory's intent_head.safetensors ("The head follows the
 * model", docs/intent.md). So for a student the head is also written into its directory (crash-safe; its SHA256SUMS
 * written again to list it) -- after every run of this function, so that a run killed between the two resumes
 * right. The parent's own directory is never written to. An adapted model (07-adapt accepted) carries the head
 * seslm adapt fitted: the stage does not run. Returns 0 only when the stage itself failed. */
static int intent_stage(const evolve_run *r, const char *model, int student, cJSON *root, FILE *md) {
    char out[2200], head[2300], js[2300], thr[16];
    path_of(out, sizeof out, r, "08-intent");
    snprintf(head, sizeof head, "%s/intent_head.safetensors", out);
    snprintf(thr, sizeof thr, "%d", r->c.threads);
    if (!stage_done(r, "08-intent") && !mkdirs(out)) {
        cli_error(CMD, "cannot create %s: %s", out, strerror(errno));
        return 0;
    }
    char *a[20] = {"intent", "train", "--model", (char *)model, "--data", (char *)r->c.intent_data, "--out", head, NULL};
    int n = 8;
    if (r->c.feedback[0]) a[n++] = "--data", a[n++] = (char *)r->c.feedback;
    if (r->c.threads > 0) a[n++] = "--threads", a[n++] = thr;
    a[n] = NULL;
    // not out_dir_rel: the stage writes its head into the folder made above (its stdout, the training summary, beside it)
    const int rc = stage(r, "08-intent", NULL, "08-intent/train.json", 2, a);
    if (rc < 0) return 0;
    cJSON *ih = cJSON_AddObjectToObject(root, "intent_head");
    cJSON_AddStringToObject(ih, "model_dir", model);
    cJSON_AddStringToObject(ih, "data", r->c.intent_data);
    if (r->c.feedback[0]) cJSON_AddStringToObject(ih, "feedback", r->c.feedback);
    cJSON_AddNumberToObject(ih, "exit", rc);
    if (rc != 0) { // exit 2: examples a head cannot be fitted on (one intent): the cycle's outcome stands
        cJSON_AddStringToObject(ih, "status", "not fitted: unusable examples (exit 2; 08-intent in the log)");
        fprintf(md, "\n## Intent head (08-intent)\n\nNot fitted: `seslm intent train` refused the examples (`%s`%s%s): see the "
                    "log. A node promoted to `%s` keeps its current head.\n", r->c.intent_data, r->c.feedback[0] ? " and " : "",
                r->c.feedback, model);
        return 1;
    }
    char dst[2300];
    snprintf(dst, sizeof dst, "%s/intent_head.safetensors", model);
    if (student) { // the head goes with the student: a node's reload looks for it there
        char *buf = NULL, sums[2300];
        size_t len = 0;
        snprintf(sums, sizeof sums, "%s/%s", model, SESLM_MANIFEST_NAME);
        if (util_read_file(head, &buf, &len, (size_t)1 << 30, NULL) != SESLM_OK ||
            util_write_file_atomic(dst, buf, len) != SESLM_OK || (exists(sums) && model_manifest_write(model) != SESLM_OK)) {
            cli_error(CMD, "08-intent: cannot place the head in %s: %s", model, seslm_last_error());
            free(buf);
            return 0;
        }
        free(buf);
    }
    cJSON_AddStringToObject(ih, "status", "fitted");
    cJSON_AddStringToObject(ih, "head", student ? dst : head);
    snprintf(js, sizeof js, "%s/train.json", out);
    cJSON *t = read_json(js); // the training summary: examples, intents, the selection made
    if (t) cJSON_AddItemToObject(ih, "train", t);
    const cJSON *ex = cJSON_GetObjectItemCaseSensitive(t, "examples"), *ni = cJSON_GetObjectItemCaseSensitive(t, "intents");
    fprintf(md, "\n## Intent head (08-intent)\n\nFitted on `%s`'s features from `%s`%s%s%s (%d examples, %d intents): `%s`. %s\n",
            model, r->c.intent_data, r->c.feedback[0] ? " and the feedback `" : "", r->c.feedback, r->c.feedback[0] ? "`" : "",
            cJSON_IsNumber(ex) ? ex->valueint : 0, cJSON_IsNumber(ni) ? ni->valueint : 0, student ? dst : head,
            student ? "A node promoted to the student swaps to it with the model."
                    : "No student was selected: the head is for the parent; copy it to the node's --intent-head to use it.");
    return 1;
}

/* The JSON lines of `seslm intent predict` (one object per input); returns the count, -1 on a malformed file. *out: n
 * parsed objects (cJSON_Delete each, then free). */
static int read_predictions(const char *path, cJSON ***out) {
    *out = NULL;
    char *txt = NULL;
    size_t len = 0;
    if (util_read_file(path, &txt, &len, (size_t)1 << 30, NULL) != SESLM_OK) return -1;
    int n = 0, cap = 0, bad = 0;
    cJSON **a = NULL;
    for (char *p = txt, *nl; !bad && p < txt + len; p = nl + 1) {
        if (!(nl = memchr(p, '\n', (size_t)(txt + len - p)))) nl = txt + len;
        *nl = 0;
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            cJSON **na = realloc(a, (size_t)cap * sizeof *na);
            if (na) a = na;
            else bad = 1;
        }
        if (!bad && !(a[n++] = cJSON_Parse(p))) bad = 1;
    }
    free(txt);
    if (bad) {
        for (int i = 0; i < n; i++) cJSON_Delete(a[i]);
        free(a);
        return -1;
    }
    *out = a;
    return n;
}

/* Field k of a prediction line as a string ("" for null or missing) and as a number (NAN when missing). */
static const char *pred_str(const cJSON *j, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}
static double pred_num(const cJSON *j, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* 08-intent-check (evolve.intent.data empty, a student selected, the node has an intent head: evolve.intent.head, by
 * default the parent directory's): a node promoted to the student keeps serving that head (it finds none in the
 * student's directory) on the student's features, which it was not fitted on. Whether that costs accuracy depends on
 * the student: on CLINC150's 10 domains (4,500 labelled rows, RESULTS 13) a distilled 4-layer student kept the
 * parent's accuracy with the parent's head (+0.33 points), the same student without distillation lost 6.24. Without
 * labels the cost cannot be measured, so the head is run on the held-out traffic (the calibration sample when nothing
 * is held out) through the parent and through the student, and the answers compared:
 *   - answers_changed: the share of lines whose answer differs (out of scope included). Many of these are near-ties
 *     where the parent was as likely wrong as right (2.5-7.8 % of answers changed where accuracy did not move);
 *   - confident_answers_changed: the share of the answers the parent gives with confidence >= INTENT_SURE that differ.
 *     Its head's probabilities are calibrated (temperature fitted out of fold), so such an answer is right at least
 *     that often and a change there is most likely a loss.
 * More than INTENT_SURE_CHANGED of the confident answers changed (and at least 3 of them) makes the report and the log
 * advise a refit (evolve.intent.data). The 0.5 %: three heads (10 domains, SNIPS, CLINC150's 150 intents; RESULTS 13)
 * through the same students. The head- and neuron-pruned ones changed 0-0.23 % and moved accuracy -0.86..+0.40; the
 * distilled 4-layer one changed 0.58 / 0.63 / 1.75 % and moved it +0.33 / -2.00 / -1.67; undistilled 2.5-5.1 %,
 * -3.3..-6.2. The same change can cost 2 points on one label set and nothing on another, so the rule advises on every
 * student whose confident answers move like the 4-layer one's: a needless refit costs a few seconds, a missed one 2
 * points. A second cycle (a SNIPS node, RESULTS 13) showed the rule's limit: its selected plan-30 cost the parent's
 * heads 1.0-1.8 points with 0.16-0.49 % of the confident answers changed on labelled rows and 0 on its 240 held-out
 * lines, so the report recommends the refit whenever the examples are at hand, flagged or not.
 * Measured, never a gate: the cycle's outcome stands. Returns 0 only when the stage itself failed. */
#define INTENT_SURE 0.7
#define INTENT_SURE_CHANGED 0.005
static int head_check_stage(const evolve_run *r, const char *student, cJSON *root, FILE *md) {
    char head[1200], texts[2200], out[2200], thr[16];
    if (r->c.intent_head[0]) snprintf(head, sizeof head, "%s", r->c.intent_head);
    else snprintf(head, sizeof head, "%s/intent_head.safetensors", r->c.model);
    if (!exists(head)) return 1; // no head (evolve.intent.head naming a file that is not one exits 2 at the start)
    path_of(texts, sizeof texts, r, "00-split/heldout.txt");
    struct stat sb;
    if (stat(texts, &sb) != 0 || sb.st_size == 0) path_of(texts, sizeof texts, r, "00-split/calibration.txt");
    path_of(out, sizeof out, r, "08-intent");
    if (!mkdirs(out)) {
        cli_error(CMD, "cannot create %s: %s", out, strerror(errno));
        return 0;
    }
    snprintf(thr, sizeof thr, "%d", r->c.threads);
    char *ap[16] = {"intent", "predict", "--model", (char *)r->c.model, "--head", head, "--input", texts, "--threads", thr, NULL};
    char *as[16] = {"intent", "predict", "--model", (char *)student, "--head", head, "--input", texts, "--threads", thr, NULL};
    // exit 2 (a line the model cannot take): not measured, the cycle's outcome stands
    const int rp = stage(r, "08-intent-check-parent", NULL, "08-intent/parent.jsonl", 2, ap);
    const int rs = rp == 0 ? stage(r, "08-intent-check-student", NULL, "08-intent/student.jsonl", 2, as) : rp;
    if (rp < 0 || rs < 0) return 0;
    cJSON *ih = cJSON_AddObjectToObject(root, "intent_head");
    cJSON_AddStringToObject(ih, "status", "not refitted: evolve.intent.data is empty");
    cJSON_AddStringToObject(ih, "parent_head", head);
    cJSON_AddStringToObject(ih, "traffic", texts);
    cJSON **pa = NULL, **sa = NULL;
    char pj[2300], sj[2300];
    path_of(pj, sizeof pj, r, "08-intent/parent.jsonl");
    path_of(sj, sizeof sj, r, "08-intent/student.jsonl");
    const int np = rp == 0 ? read_predictions(pj, &pa) : -1, ns = rs == 0 ? read_predictions(sj, &sa) : -1;
    int changed = 0, sure = 0, sure_changed = 0, valid = np > 0 && np == ns;
    for (int i = 0; valid && i < np; i++) {
        const double conf = pred_num(pa[i], "confidence");
        const int diff = strcmp(pred_str(pa[i], "intent"), pred_str(sa[i], "intent")) != 0;
        if (!isfinite(conf) || !pred_str(pa[i], "top")[0] || !pred_str(sa[i], "top")[0]) valid = 0;
        changed += diff;
        if (conf >= INTENT_SURE) sure++, sure_changed += diff;
    }
    fprintf(md, "\n## Intent head (08-intent)\n\n");
    if (!valid) {
        cJSON_AddNullToObject(ih, "answers_changed");
        fprintf(md, "The node's head `%s` was not refitted (`evolve.intent.data` is empty), and its answers on the student "
                    "could not be compared (%s): see the log.\n", head, rp || rs ? "`seslm intent predict` refused the traffic"
                                                                                : "unreadable or mismatched answers");
    } else {
        const double f = (double)changed / np, fs = sure ? (double)sure_changed / sure : 0;
        const int advise = sure_changed >= 3 && fs > INTENT_SURE_CHANGED;
        cJSON_AddNumberToObject(ih, "lines", np);
        cJSON_AddNumberToObject(ih, "answers_changed", f);
        cJSON_AddNumberToObject(ih, "confident_lines", sure);
        cJSON_AddNumberToObject(ih, "confident_answers_changed", fs);
        cJSON_AddBoolToObject(ih, "refit_advised", advise);
        fprintf(md, "The node's head `%s` was fitted on the parent and was not refitted (`evolve.intent.data` is empty); a "
                    "node promoted to `%s` keeps it. On the %d lines of `%s`, through the student instead of the parent, "
                    "%.1f %% of its answers change, and **%.1f %%** of the %d it gives with confidence >= %.1f%s\n", head,
                student, np, texts, 100 * f, 100 * fs, sure, INTENT_SURE,
                advise ? ". **A refit is advised**: set `evolve.intent.data` to the head's training examples, and the cycle "
                         "fits the student its own head (08-intent)."
                       : ". Few confident answers changed, which does not rule out a loss: on a SNIPS node's cycle a "
                         "student changing as few cost the parent's head 1.0-1.8 points on labelled rows, and a refit "
                         "recovered 0.4-1.2 (bench/RESULTS.md 13). Where the head's training examples are at hand, set "
                         "`evolve.intent.data` to them: the refit takes seconds.");
        if (advise)
            fprintf(stderr, "seslm evolve: warning: the node's intent head, kept on %s, changes %.1f %% of the answers it gives "
                            "with confidence >= %.1f on the held-out traffic; set evolve.intent.data to refit it\n",
                    student, 100 * fs, INTENT_SURE);
    }
    for (int i = 0; i < np; i++) cJSON_Delete(pa[i]);
    for (int i = 0; i < ns; i++) cJSON_Delete(sa[i]);
    free(pa), free(sa);
    return 1;
}

/* Closes the report f (an open_memstream on *mdp: the text is there only after fclose), writes RUN/report.md and then RUN/verdict.json (root; its presence means the run
 * is complete), prints the report; frees root and md. 0 when a candidate was selected (best >= 0), 1 when none,
 * -1 when the files cannot be written. */
static int write_verdict(const evolve_run *r, cJSON *root, FILE *f, char **mdp, int best) {
    fclose(f);
    char *md = *mdp;
    char *txt = cJSON_Print(root);
    cJSON_Delete(root);
    char p[2200];
    int ok = txt && md;
    path_of(p, sizeof p, r, "report.md");
    if (ok && util_write_file_atomic(p, md, strlen(md)) != SESLM_OK) ok = 0;
    path_of(p, sizeof p, r, "verdict.json"); // last: its presence means the run is complete
    if (ok && util_write_file_atomic(p, txt, strlen(txt)) != SESLM_OK) ok = 0;
    if (ok) {
        fputs(md, stdout);
        fprintf(stderr, "seslm evolve: %s\n", best >= 0 ? "a candidate passed every gate: see verdict.json"
                                                        : "no candidate passed every gate: see report.md");
    } else cli_error(CMD, "cannot write the run's verdict: %s", seslm_last_error());
    free(txt), free(md);
    return ok ? (best >= 0 ? 0 : 1) : -1;
}

/* Reads every candidate's verdict (against the parent and, from the second generation on, against the root),
 * writes RUN/verdict.json and RUN/report.md, prints the report. The selected candidate is the one with the
 * smallest evolve.select value (default weight_bytes: the smallest student) among those that passed every
 * gate of both verdicts. Returns 0 when a candidate was selected, 1 when none passed, -1 on failure. */
static int select_best(const evolve_run *r) {
    cJSON *root = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(root, "candidates");
    cJSON_AddStringToObject(root, "schema", "seslm-evolve-verdict/2");
    cJSON_AddStringToObject(root, "mode", r->micro ? "micro-evolution (drift detected)" : "full cycle");
    cJSON_AddStringToObject(root, "select_metric", r->c.select);
    cJSON_AddStringToObject(root, "parent", r->c.model);
    cJSON_AddStringToObject(root, "root", r->root[0] ? r->root : r->c.model);
    char split[2200];
    path_of(split, sizeof split, r, "00-split/heldout.txt");
    cJSON_AddStringToObject(root, "heldout_traffic", split);
    char *md = NULL;
    size_t mdlen = 0;
    FILE *f = open_memstream(&md, &mdlen);
    if (!f || !root) return -1;
    fprintf(f, "# Evolution run %s\n\n- parent: `%s`\n- root (original model): `%s`%s\n- mode: %s\n"
               "- held-out served traffic (never calibrated or distilled on): `%s`\n"
               "- selection: the passing candidate with the smallest %s\n\n",
            r->run, r->c.model, r->root[0] ? r->root : r->c.model, r->root[0] ? " (every candidate is validated against it too)" : " (= the parent)",
            r->micro ? "micro-evolution (drift detected)" : "full cycle", split, r->c.select);
    fprintf(f, "| candidate | gates | vs root | bytes vs parent | latency b1 | latency b32 | traffic cos | traffic recall@10 | STS-B Δ | CLINC150 Δ | recall@10 |\n");
    fprintf(f, "|---|---|---|---|---|---|---|---|---|---|---|\n");
    int best = -1;
    double best_v = INFINITY;
    for (int i = 0; i < r->n_cand; i++) {
        const char *name = r->cand[i];
        char vp[2200], rp[2200];
        path_of(vp, sizeof vp, r, "05-validate/%s/verdict.json", name);
        path_of(rp, sizeof rp, r, "06-validate-root/%s/verdict.json", name);
        cJSON *v = read_json(vp), *rv = r->root[0] ? read_json(rp) : NULL;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "candidate", name);
        if (!v || (r->root[0] && !rv)) {
            cJSON_AddBoolToObject(o, "pass", 0);
            cJSON_AddStringToObject(o, "why", "no verdict");
            cJSON_AddItemToArray(arr, o);
            fprintf(f, "| %s | no verdict | | | | | | | | | |\n", name);
            cJSON_Delete(v), cJSON_Delete(rv);
            continue;
        }
        cJSON *failed = cJSON_CreateArray();
        const int okp = verdict_pass(v, failed, "");
        const int okr = r->root[0] ? verdict_pass(rv, failed, "vs root: ") : 1;
        const int ok = okp && okr;
        cJSON_AddBoolToObject(o, "pass", ok);
        cJSON_AddBoolToObject(o, "pass_vs_parent", okp);
        if (r->root[0]) {
            cJSON_AddBoolToObject(o, "pass_vs_root", okr);
            cJSON_AddStringToObject(o, "verdict_vs_root", rp);
        }
        char mdir[2200];
        path_of(mdir, sizeof mdir, r, "04-recompile/%s", name);
        cJSON_AddStringToObject(o, "model_dir", mdir);
        cJSON_AddStringToObject(o, "verdict", vp);
        const char *keys[] = {"weight_bytes", "latency_b1_p50", "latency_b32_p50", "cosine_mean", "traffic_cosine_mean",
                              "traffic_recall_agreement", "feedback_intent_accuracy", "stsb_spearman", "clinc150_accuracy",
                              "domain_intent_accuracy", "recall_agreement"};
        for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
            cJSON *m = cJSON_AddObjectToObject(o, keys[k]);
            double pv = metric(v, keys[k], "parent"), cv = metric(v, keys[k], "candidate");
            if (isfinite(pv)) cJSON_AddNumberToObject(m, "parent", pv);
            if (isfinite(cv)) cJSON_AddNumberToObject(m, "candidate", cv);
            if (rv) {
                double rootv = metric(rv, keys[k], "parent");
                if (isfinite(rootv)) cJSON_AddNumberToObject(m, "root", rootv);
            }
        }
        cJSON_AddItemToObject(o, "gates_failed", failed);
        const cJSON *gf = cJSON_GetObjectItemCaseSensitive(v, "gates_failed"), *gt = cJSON_GetObjectItemCaseSensitive(v, "gates_total");
        fprintf(f, "| %s | %s (%d/%d) | %s | %.3f | %.3f | %.3f | %.4f | %.3f | %+.2f | %+.2f | %.3f |\n", name,
                ok ? "**pass**" : "fail", cJSON_IsNumber(gt) && cJSON_IsNumber(gf) ? gt->valueint - gf->valueint : 0,
                cJSON_IsNumber(gt) ? gt->valueint : 0, r->root[0] ? (okr ? "pass" : "fail") : "(= parent)",
                metric(v, "weight_bytes", "candidate") / metric(v, "weight_bytes", "parent"),
                metric(v, "latency_b1_p50", "candidate") / metric(v, "latency_b1_p50", "parent"),
                metric(v, "latency_b32_p50", "candidate") / metric(v, "latency_b32_p50", "parent"),
                metric(v, "traffic_cosine_mean", "candidate"), metric(v, "traffic_recall_agreement", "candidate"),
                100 * metric(v, "stsb_spearman", "delta"), 100 * metric(v, "clinc150_accuracy", "delta"),
                metric(v, "recall_agreement", "candidate"));
        const double sv = metric(v, r->c.select, "candidate");
        if (ok && isfinite(sv) && sv < best_v) best = i, best_v = sv;
        else if (ok && best < 0) best = i;
        cJSON_AddItemToArray(arr, o);
        cJSON_Delete(v), cJSON_Delete(rv);
    }
    if (best >= 0) {
        char mdir[2200];
        path_of(mdir, sizeof mdir, r, "04-recompile/%s", r->cand[best]);
        cJSON_AddStringToObject(root, "selected", r->cand[best]);
        cJSON_AddStringToObject(root, "selected_model_dir", mdir);
        fprintf(f, "\n**Selected: %s** (`%s`): the passing candidate with the smallest %s; ratios are candidate / parent "
                   "measured in the same run.\n", r->cand[best], mdir, r->c.select);
    } else {
        cJSON_AddNullToObject(root, "selected");
        fprintf(f, "\n**No candidate passed every gate**; nothing to deploy. The failed gates of each candidate are in "
                   "verdict.json and in 05-validate/*/report.md (06-validate-root/*/report.md against the root).\n");
    }
    char base[2200]; // what this cycle deploys
    if (best >= 0) path_of(base, sizeof base, r, "04-recompile/%s", r->cand[best]);
    else snprintf(base, sizeof base, "%s", r->c.model);
    int ok = !r->c.adapt_enabled || adapt_stage(r, base, root, f); // after selection: the adapter stage on it
    const cJSON *ad = cJSON_GetObjectItemCaseSensitive(root, "adapt"), *ads = cJSON_GetObjectItemCaseSensitive(ad, "status");
    const int adapted = cJSON_IsString(ads) && strcmp(ads->valuestring, "accepted") == 0;
    if (ok && r->c.intent_data[0] && adapted) { // the adapted model carries seslm adapt's head
        cJSON *ih = cJSON_AddObjectToObject(root, "intent_head");
        cJSON_AddStringToObject(ih, "status", "not run: the adapted model carries the head seslm adapt fitted (07-adapt)");
        fprintf(f, "\n## Intent head (08-intent)\n\nNot run: the adapted model carries the head `seslm adapt` fitted.\n");
    } else if (ok && r->c.intent_data[0]) {
        ok = intent_stage(r, base, best >= 0, root, f);
    } else if (ok && best >= 0 && !adapted) { // the parent's head, kept by a node promoted to the student: how it changes
        ok = head_check_stage(r, base, root, f);
    }
    if (!ok) {
        fclose(f);
        free(md);
        cJSON_Delete(root);
        return -1;
    }
    return write_verdict(r, root, f, &md, best);
}

// ---- the cycle ---------------------------------------------------------------------------------------


static int split_traffic(const char *src, double f, const char *calib, const char *held, int *nc, int *nh);
/* 00-split: src split once, deterministically, into RUN/00-split/calibration.txt (what the cycle fits on) and
 * heldout.txt (what it only measures on); calib / heldout (2200 bytes) get the paths. need_heldout: nothing held out is
 * an error. Skipped when done. 0 ok, -1 failed (message printed). */
static int split_stage(const evolve_run *r, const char *src, int need_heldout, char *calib, char *heldout) {
    char dsplit[2200];
    path_of(dsplit, sizeof dsplit, r, "00-split");
    path_of(calib, 2200, r, "00-split/calibration.txt");
    path_of(heldout, 2200, r, "00-split/heldout.txt");
    if (stage_done(r, "00-split")) {
        fprintf(stderr, "seslm evolve: %-24s done, skipped\n", "00-split");
        return 0;
    }
    util_rmtree(dsplit);
    if (!mkdirs(dsplit)) return -1;
    int nc = 0, nh = 0;
    if (!split_traffic(src, r->c.heldout_fraction, calib, heldout, &nc, &nh)) return -1;
    if (need_heldout && nh == 0) {
        cli_error(CMD, "%s: nothing held out (evolve.heldout_fraction %g)", src, r->c.heldout_fraction);
        return -1;
    }
    char what[128];
    snprintf(what, sizeof what, "%d calibration + %d held-out lines", nc, nh);
    if (!stage_mark(r, "00-split", 0, 0, what)) return -1;
    fprintf(stderr, "seslm evolve: %-24s %s of %s\n", "00-split", what, src);
    return 0;
}

static int decoder_cycle(evolve_run *r);

static int is_gguf_file(const char *p) {
    struct stat sb;
    const size_t n = strlen(p);
    return n > 5 && strcmp(p + n - 5, ".gguf") == 0 && stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

static int cycle(evolve_run *r) {
    if (is_gguf_file(r->c.model)) return decoder_cycle(r);
    seslm_evolve_config *c = &r->c;
    char merged[2200], thr[16], d1[2200];
    snprintf(thr, sizeof thr, "%d", c->threads);
    path_of(d1, sizeof d1, r, "01-ingest");
    path_of(merged, sizeof merged, r, "01-ingest/telemetry.h5");
    if (!stage_done(r, "01-ingest") && (util_rmtree(d1), !mkdirs(d1))) return -1;
    {
        char *a[] = {"ingest", "--telemetry", c->telemetry, "--out", merged, "--model", c->model, NULL};
        if (!stage_done(r, "01-ingest")) {
            char so[2200];
            path_of(so, sizeof so, r, "01-ingest.json");
            fprintf(stderr, "seslm evolve: %-24s running\n", "01-ingest");
            const double t0 = util_now_s();
            const int rc = run_child(so, a);
            if (rc != 0) {
                cli_error(CMD, "stage 01-ingest failed (exit %d). Rerun to resume from it.", rc);
                return -1;
            }
            if (!stage_mark(r, "01-ingest", util_now_s() - t0, 0, "ok")) return -1;
            fprintf(stderr, "seslm evolve: %-24s finished in %.1f s (exit 0)\n", "01-ingest", util_now_s() - t0);
        } else {
            fprintf(stderr, "seslm evolve: %-24s done, skipped\n", "01-ingest");
        }
    }
    r->micro = 0;
    if (c->drift_reference[0]) {
        char dj[2200];
        path_of(dj, sizeof dj, r, "02-drift");
        if (!stage_done(r, "02-drift") && !mkdirs(dj)) return -1;
        char *a[] = {"drift", "--reference", c->drift_reference, "--current", merged, "--config", c->drift_config,
                     "--model", c->model, NULL};
        const int rc = stage(r, "02-drift", NULL, "02-drift/drift.json", 1, a);
        if (rc < 0) return -1;
        r->micro = rc == 1;
        if (r->micro) fprintf(stderr, "seslm evolve: drift detected: micro-evolution on the drifted domain\n");
    }
    const double *cands = r->micro ? c->micro_candidates : c->candidates;
    const int n = r->micro ? c->n_micro : c->n_candidates;
    const char *calib_src = r->micro && c->micro_calibration[0] ? c->micro_calibration : c->calibration;
    // 00-split: the served-traffic sample split once, deterministically, into what the cycle fits on
    // (plan, reconstruction, distillation) and what it only measures on (validation's traffic gates)
    char calib[2200], heldout[2200];
    if (split_stage(r, calib_src, 0, calib, heldout) < 0) return -1;
    char plans[2200];
    path_of(plans, sizeof plans, r, "03-plan");
    {
        char *a[] = {"plan", "--model", c->model, "--telemetry", merged, "--config", r->config_path, "--calib", calib,
                     "--out", plans, "--threads", thr, "--quiet", NULL};
        if (stage(r, "03-plan", "03-plan", "03-plan.txt", 0, a) < 0) return -1;
    }
    // the candidates: the policy's targets, then the deeper students the plan stage could make within the cap
    r->n_cand = 0;
    for (int i = 0; i < n && r->n_cand < MAX_CANDS; i++) snprintf(r->cand[r->n_cand++], 32, "plan-%02d", plan_pct(cands[i]));
    for (int i = 0; !r->micro && i < c->n_layer_candidates && r->n_cand < MAX_CANDS; i++) {
        char pf[2300];
        snprintf(pf, sizeof pf, "%s/plan-l%d.json", plans, c->layer_candidates[i]);
        if (exists(pf)) snprintf(r->cand[r->n_cand++], 32, "plan-l%d", c->layer_candidates[i]);
        else fprintf(stderr, "seslm evolve: plan-l%d: no such plan (more layers than the model has to drop within the cap)\n",
                     c->layer_candidates[i]);
    }
    char lines[16], exact[16], dsteps[16], dbatch[16], dtime[32], dint8[32];
    snprintf(lines, sizeof lines, "%d", c->calibration_lines);
    snprintf(exact, sizeof exact, "%d", c->exact_rows);
    snprintf(dsteps, sizeof dsteps, "%d", c->distill_steps);
    snprintf(dbatch, sizeof dbatch, "%d", c->distill_batch);
    snprintf(dtime, sizeof dtime, "%g", c->distill_time_s);
    snprintf(dint8, sizeof dint8, "%g", c->distill_int8_aware);
    char d4[2200], d5[2200], d6[2200];
    path_of(d4, sizeof d4, r, "04-recompile");
    path_of(d5, sizeof d5, r, "05-validate");
    path_of(d6, sizeof d6, r, "06-validate-root");
    if (!mkdirs(d4) || !mkdirs(d5) || (r->root[0] && !mkdirs(d6))) return -1;
    const char *emb = seslm_embeddings_name(c->embeddings_int8);
    for (int i = 0; i < r->n_cand; i++) {
        const char *name = r->cand[i];
        char st[64], planf[2400], out[2400], rel[64], so[64];
        snprintf(st, sizeof st, "04-recompile-%s", name);
        snprintf(rel, sizeof rel, "04-recompile/%s", name);
        snprintf(so, sizeof so, "04-recompile/%s.json", name);
        snprintf(planf, sizeof planf, "%s/%s.json", plans, name);
        path_of(out, sizeof out, r, "%s", rel);
        char *a[48] = {"recompile", "--model", c->model, "--plan", planf, "--out", out, "--config", r->config_path,
                       "--calibration", calib, "--calibration-lines", lines, "--telemetry", merged,
                       "--quantize", c->quantize ? "int8" : "none", "--embeddings", (char *)emb,
                       "--exact-rows", exact, "--threads", thr, NULL};
        int na = 0;
        while (a[na]) na++;
        if (c->distill_steps > 0) { // distillation between reconstruction and quantization (resumes from its checkpoint)
            a[na++] = "--distill-steps", a[na++] = dsteps, a[na++] = "--distill-batch", a[na++] = dbatch;
            if (c->distill_time_s > 0) a[na++] = "--distill-time", a[na++] = dtime;
            a[na++] = "--distill-int8-aware", a[na++] = dint8;
            if (c->distill_general[0]) a[na++] = "--distill-general", a[na++] = c->distill_general;
            a[na] = NULL;
        }
        if (stage(r, st, rel, so, 0, a) < 0) return -1;
    }
    for (int pass = 0; pass < (r->root[0] ? 2 : 1); pass++)
        for (int i = 0; i < r->n_cand; i++) { // against the parent, then (later generations) against the root
            const char *name = r->cand[i];
            char st[64], cand[2400], out[2400], rel[64], so[64];
            snprintf(st, sizeof st, "%s-%s", pass ? "06-validate-root" : "05-validate", name);
            snprintf(rel, sizeof rel, "%s/%s", pass ? "06-validate-root" : "05-validate", name);
            snprintf(so, sizeof so, "%s/%s.md", pass ? "06-validate-root" : "05-validate", name);
            path_of(cand, sizeof cand, r, "04-recompile/%s", name);
            path_of(out, sizeof out, r, "%s", rel);
            const char *gates = pass && c->root_gates[0] ? c->root_gates : c->gates;
            char *a[24] = {"validate", "--parent", pass ? r->root : c->model, "--candidate", cand, "--config", (char *)gates,
                           "--out", out, "--threads", thr, "--traffic", heldout, NULL};
            int na = 13;
            if (c->kb[0]) a[na++] = "--kb", a[na++] = c->kb;
            if (c->feedback[0]) a[na++] = "--feedback", a[na++] = c->feedback;
            a[na] = NULL;
            if (stage(r, st, rel, so, 1, a) < 0) return -1; // exit 1 = a gate failed: a verdict, not an error
        }
    return select_best(r);
}

/* Splits the non-empty lines of src: line i is held out when floor((i+1) f) > floor(i f) (an even spread,
 * the same every run), the rest is the calibration text. */
static int split_traffic(const char *src, double f, const char *calib, const char *held, int *nc, int *nh) {
    char *txt = NULL;
    size_t len = 0;
    if (util_read_file(src, &txt, &len, (size_t)1 << 30, NULL) != SESLM_OK) {
        cli_error(CMD, "%s", seslm_last_error());
        return 0;
    }
    char *a = malloc(len + 2), *b = malloc(len + 2);
    size_t la = 0, lb = 0;
    long i = 0;
    *nc = *nh = 0;
    for (char *p = txt; a && b && p < txt + len;) {
        char *e = memchr(p, '\n', (size_t)(txt + len - p));
        size_t n = e ? (size_t)(e - p) : (size_t)(txt + len - p);
        if (n > 0 && p[n - 1] == '\r') n--;
        if (n > 0) {
            const int out = floor((double)(i + 1) * f) > floor((double)i * f);
            char *d = out ? b : a;
            size_t *dl = out ? &lb : &la;
            memcpy(d + *dl, p, n), *dl += n, d[(*dl)++] = '\n';
            (out ? (*nh)++ : (*nc)++), i++;
        }
        p = e ? e + 1 : txt + len;
    }
    int ok = a && b;
    if (!ok) cli_error(CMD, "out of memory splitting %s", src);
    else if (*nc == 0) ok = 0, cli_error(CMD, "%s: no calibration line left after holding out %.0f%%", src, 100 * f);
    if (ok && (util_write_file_atomic(calib, a, la) != SESLM_OK || util_write_file_atomic(held, b, lb) != SESLM_OK))
        ok = 0, cli_error(CMD, "%s", seslm_last_error());
    free(a), free(b), free(txt);
    return ok;
}

// ---- the decoder cycle -------------------------------------------------------------------------------

/* A GGUF decoder as the parent: 00-split of the served text, then per candidate (evolve.decoder.drop_layers)
 * 04-recompile-dN (seslm recompile-decoder) and 05-validate-dN (seslm validate-decoder on the held-out part),
 * then verdict.json / report.md with the passing candidate of the fewest bytes. The decoder's telemetry is read by
 * recompile-decoder itself (it sums the dumps of this parent's weights), so there is no ingest stage. */
static int decoder_cycle(evolve_run *r) {
    seslm_evolve_config *c = &r->c;
    char calib[2200], heldout[2200];
    if (split_stage(r, c->calibration, 1, calib, heldout) < 0) return -1; // the perplexity gate needs held-out text
    char thr[16], lines[16], heal[16], hl[16], rounds[16], mp[32], mb[32], ml[32], dsteps[16], dlr[32], dans[16], dseq[16], dcp[16], dts[32], dmin[32];
    snprintf(dmin, sizeof dmin, "%g", c->dec_distill_minutes);
    snprintf(dseq, sizeof dseq, "%d", c->dec_distill_seq);
    snprintf(dts, sizeof dts, "%g", c->dec_distill_text_share);
    snprintf(dcp, sizeof dcp, "%d", c->dec_choice_prompts);
    snprintf(dans, sizeof dans, "%d", c->dec_distill_answer);
    snprintf(dsteps, sizeof dsteps, "%d", c->dec_distill_steps);
    snprintf(dlr, sizeof dlr, "%g", c->dec_distill_lr);
    snprintf(thr, sizeof thr, "%d", c->threads);
    snprintf(lines, sizeof lines, "%d", c->calibration_lines);
    snprintf(heal, sizeof heal, "%d", c->dec_heal_steps);
    snprintf(hl, sizeof hl, "%d", c->dec_heldout_lines);
    snprintf(rounds, sizeof rounds, "%d", c->dec_rounds);
    snprintf(mp, sizeof mp, "%g", c->dec_max_ppl_increase);
    snprintf(mb, sizeof mb, "%g", c->dec_max_bytes_ratio);
    snprintf(ml, sizeof ml, "%g", c->dec_max_latency_ratio);
    r->n_cand = 0;
    for (int i = 0; i < c->n_dec_drop && r->n_cand < MAX_CANDS; i++) snprintf(r->cand[r->n_cand++], 32, "d%d", c->dec_drop[i]);
    // the parent's answers to the served prompts, asked once for the run: the layer choice, then each candidate's
    // distillation (recompile-decoder --answers-cache; keyed by the parent's weights, so a changed parent asks again)
    char cache[2400];
    path_of(cache, sizeof cache, r, "answers.cache");
    /* The layer choice is measured once, by the candidate that drops the most: the greedy choice is made in order, so
     * its first N layers (the plan's drop_order) are the choice for N, and the other candidates get them as --drop. */
    int big = 0;
    for (int i = 1; i < r->n_cand; i++)
        if (c->dec_drop[i] > c->dec_drop[big]) big = i;
    for (int k = 0; k < r->n_cand; k++) {
        const int i = k == 0 ? big : k <= big ? k - 1 : k; // the largest first, then the others in order
        const char *name = r->cand[i];
        char st[64], dir[2400], file[2500], so[64], nd[16], list[256] = "";
        snprintf(st, sizeof st, "04-recompile-%s", name);
        snprintf(so, sizeof so, "04-recompile/%s.json", name);
        snprintf(nd, sizeof nd, "%d", c->dec_drop[i]);
        path_of(dir, sizeof dir, r, "04-recompile/%s", name);
        snprintf(file, sizeof file, "%s/model.gguf", dir);
        if (k > 0) { // the largest candidate's order
            char pp[2400];
            path_of(pp, sizeof pp, r, "04-recompile/%s/model.gguf.plan.json", r->cand[big]);
            cJSON *pj = read_json(pp);
            const cJSON *ord = cJSON_GetObjectItemCaseSensitive(pj, "drop_order");
            if (cJSON_IsArray(ord) && cJSON_GetArraySize(ord) >= c->dec_drop[i])
                for (int j = 0; j < c->dec_drop[i]; j++) {
                    const cJSON *e = cJSON_GetArrayItem(ord, j);
                    if (!cJSON_IsNumber(e)) {
                        list[0] = 0;
                        break;
                    }
                    const size_t n = strlen(list);
                    snprintf(list + n, sizeof list - n, "%s%d", j ? "," : "", e->valueint);
                }
            cJSON_Delete(pj);
        }
        if (!stage_done(r, st) && (util_rmtree(dir), !mkdirs(dir))) return -1; // a partial attempt's files go
        char *a[40] = {"recompile-decoder", "--model", c->model, "--telemetry", c->telemetry, "--out", file,
                       list[0] ? "--drop" : "--drop-layers", list[0] ? list : nd, "--calibration", calib,
                       "--calibration-lines", lines, "--embd-type", c->dec_embd_type, "--layer-type", c->dec_layer_type, "--heal-steps", heal,
                       "--distill-steps", dsteps, "--distill-lr", dlr, NULL};
        int na = 0;
        while (a[na]) na++;
        if (c->dec_distill_answer >= 0) a[na++] = "--distill-answer-tokens", a[na++] = dans;
        if (c->dec_distill_seq > 0) a[na++] = "--distill-seq", a[na++] = dseq;
        if (c->dec_distill_prompts[0]) // the served prompts: the layer choice scores the parent's answers, distillation trains on them
            a[na++] = "--prompts", a[na++] = c->dec_distill_prompts, a[na++] = "--choice-prompts", a[na++] = dcp;
        if (c->dec_distill_prompts[0] && c->dec_distill_text_share > 0.0) a[na++] = "--distill-text-share", a[na++] = dts;
        if (c->dec_distill_special) a[na++] = "--distill-special";
        if (c->dec_distill_minutes > 0.0) a[na++] = "--distill-max-minutes", a[na++] = dmin;
        if (c->dec_distill_prompts[0]) a[na++] = "--answers-cache", a[na++] = cache; // every candidate asks the same
        a[na] = NULL;
        if (stage(r, st, NULL, so, 0, a) < 0) return -1;
    }
    char d5[2200];
    path_of(d5, sizeof d5, r, "05-validate");
    if (!mkdirs(d5)) return -1;
    for (int i = 0; i < r->n_cand; i++) {
        const char *name = r->cand[i];
        char st[64], file[2400], out[2400], so[64];
        snprintf(st, sizeof st, "05-validate-%s", name);
        snprintf(so, sizeof so, "05-validate/%s.out.json", name);
        path_of(file, sizeof file, r, "04-recompile/%s/model.gguf", name);
        path_of(out, sizeof out, r, "05-validate/%s.json", name);
        char *a[32] = {"validate-decoder", "--parent", c->model, "--candidate", file, "--heldout", heldout,
                       "--lines", hl, "--rounds", rounds, "--max-ppl-increase", mp, "--max-bytes-ratio", mb,
                       "--max-latency-ratio", ml, "--threads", thr, "--out", out, NULL};
        int na = 0;
        while (a[na]) na++;
        char glog[2400]; // each model's grounded answers, per question: which one the student answers worse
        path_of(glog, sizeof glog, r, "05-validate/%s.grounded", name);
        if (!c->dec_grounded) a[na++] = "--no-grounded", a[na] = NULL;
        else a[na++] = "--grounded-log", a[na++] = glog, a[na] = NULL;
        if (stage(r, st, NULL, so, 1, a) < 0) return -1; // exit 1: a gate failed, a verdict
    }
    // selection: the passing candidate with the fewest bytes
    cJSON *root = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(root, "candidates");
    cJSON_AddStringToObject(root, "schema", "seslm-evolve-decoder-verdict/1");
    cJSON_AddStringToObject(root, "kind", "decoder");
    cJSON_AddStringToObject(root, "mode", "full cycle");
    cJSON_AddStringToObject(root, "select_metric", "bytes_ratio");
    cJSON_AddStringToObject(root, "parent", c->model);
    cJSON_AddStringToObject(root, "heldout_traffic", heldout);
    char *md = NULL;
    size_t mdlen = 0;
    FILE *f = open_memstream(&md, &mdlen);
    if (!f || !root) {
        if (f) fclose(f);
        free(md);
        cJSON_Delete(root);
        return -1;
    }
    fprintf(f, "# Evolution run %s (decoder)\n\n- parent: `%s`\n- held-out text (never calibrated on): `%s`\n"
               "- selection: the passing candidate with the fewest bytes\n\n",
            r->run, c->model, heldout);
    fprintf(f, "| candidate | gates | bytes vs parent | held-out ppl increase | decode latency | failed |\n|---|---|---|---|---|---|\n");
    int best = -1;
    double best_b = INFINITY;
    for (int i = 0; i < r->n_cand; i++) {
        char vp[2200], mp2[2400];
        path_of(vp, sizeof vp, r, "05-validate/%s.json", r->cand[i]);
        path_of(mp2, sizeof mp2, r, "04-recompile/%s/model.gguf", r->cand[i]);
        cJSON *v = read_json(vp), *o = cJSON_CreateObject(), *failed = cJSON_CreateArray();
        const cJSON *vd = cJSON_GetObjectItemCaseSensitive(v, "verdict");
        const int pass = cJSON_IsString(vd) && strcmp(vd->valuestring, "pass") == 0;
        double g[3] = {NAN, NAN, NAN};
        static const char *const gn[3] = {"bytes_ratio", "heldout_ppl_increase", "decode_latency_ratio"};
        const cJSON *gates = cJSON_GetObjectItemCaseSensitive(v, "gates"), *e;
        cJSON_ArrayForEach(e, gates) {
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(e, "name"), *val = cJSON_GetObjectItemCaseSensitive(e, "value");
            const cJSON *ps = cJSON_GetObjectItemCaseSensitive(e, "pass");
            if (!cJSON_IsString(nm)) continue;
            for (int k = 0; k < 3; k++)
                if (strcmp(nm->valuestring, gn[k]) == 0 && cJSON_IsNumber(val)) g[k] = val->valuedouble;
            if (cJSON_IsFalse(ps)) cJSON_AddItemToArray(failed, cJSON_CreateString(nm->valuestring));
        }
        cJSON_AddStringToObject(o, "candidate", r->cand[i]);
        cJSON_AddNumberToObject(o, "drop_layers", c->dec_drop[i]);
        cJSON_AddBoolToObject(o, "pass", pass);
        cJSON_AddStringToObject(o, "model", mp2);
        cJSON_AddStringToObject(o, "validation", vp);
        for (int k = 0; k < 3; k++)
            if (isfinite(g[k])) cJSON_AddNumberToObject(o, gn[k], g[k]);
        char *fl = cJSON_PrintUnformatted(failed);
        cJSON_AddItemToObject(o, "failed", failed);
        cJSON_AddItemToArray(arr, o);
        fprintf(f, "| %s | %s | %.3f | %+.2f%% | %.3f | %s |\n", r->cand[i], !v ? "no verdict" : pass ? "**pass**" : "fail", g[0],
                100.0 * g[1], g[2], fl ? fl : "");
        free(fl);
        if (pass && isfinite(g[0]) && g[0] < best_b) best_b = g[0], best = i;
        cJSON_Delete(v);
    }
    char dep[2400];
    if (best >= 0) {
        path_of(dep, sizeof dep, r, "04-recompile/%s", r->cand[best]);
        cJSON_AddStringToObject(root, "selected", r->cand[best]);
        cJSON_AddStringToObject(root, "deploy_model_dir", dep);
        fprintf(f, "\n**Selected: %s** (`%s/model.gguf`): `seslm registry register %s`, then approve and promote.\n",
                r->cand[best], dep, dep);
    } else {
        cJSON_AddNullToObject(root, "selected");
        fprintf(f, "\nNo candidate passed every gate: the parent stays.\n");
    }
    return write_verdict(r, root, f, &md, best);
}

/* The root of the parent's lineage: evolve.root, else config.json's seslm_lineage.root_dir; "" when the
 * parent is itself the root (an original model). */
static void find_root(evolve_run *r) {
    r->root[0] = 0;
    char rp[PATH_MAX], mp[PATH_MAX];
    if (r->c.root[0]) snprintf(r->root, sizeof r->root, "%s", r->c.root);
    else {
        char p[1100];
        snprintf(p, sizeof p, "%s/config.json", r->c.model);
        cJSON *j = read_json(p);
        const cJSON *rd = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "seslm_lineage"), "root_dir");
        if (cJSON_IsString(rd)) snprintf(r->root, sizeof r->root, "%s", rd->valuestring);
        cJSON_Delete(j);
    }
    if (r->root[0] && realpath(r->root, rp) && realpath(r->c.model, mp) && strcmp(rp, mp) == 0) r->root[0] = 0;
}

int cmd_evolve(int argc, char **argv) {
    const char *cfg = NULL, *model = NULL, *tel = NULL, *out = NULL, *calib = NULL, *gates = NULL;
    int threads = -1;
    const cli_arg args[] = {
        {"--config", CLI_ARG_STR, &cfg, 0, 0},
        {"--model", CLI_ARG_STR, &model, 0, 0},
        {"--telemetry", CLI_ARG_STR, &tel, 0, 0},
        {"--out", CLI_ARG_STR, &out, 0, 0},
        {"--calibration", CLI_ARG_STR, &calib, 0, 0},
        {"--gates", CLI_ARG_STR, &gates, 0, 0},
        {"--threads", CLI_ARG_INT, &threads, 0, 1024},
        {NULL, 0, NULL, 0, 0},
    };
    int prc = cli_parse_args(CMD, HELP, args, argc, argv, NULL);
    if (prc >= 0) return prc;
    if (!cfg) {
        cli_error(CMD, "--config is required (see seslm evolve --help)");
        return 2;
    }
    // the passive wait policy main() chose for this batch command is not the stages' business: plan and
    // recompile choose it again themselves, and validate must time the models as they would serve
    if (getenv("SESLM_OMP_PASSIVE_AUTO")) {
        unsetenv("OMP_WAIT_POLICY");
        unsetenv("SESLM_OMP_PASSIVE_AUTO");
    }
    static evolve_run r;
    memset(&r, 0, sizeof r);
    if (seslm_evolve_config_load(&r.c, cfg) != SESLM_OK) {
        cli_error(CMD, "%s", seslm_last_error());
        return 2;
    }
    snprintf(r.config_path, sizeof r.config_path, "%s", cfg);
#define OVERRIDE(field, v) \
    if (v) snprintf(r.c.field, sizeof r.c.field, "%s", v)
    OVERRIDE(model, model);
    OVERRIDE(telemetry, tel);
    OVERRIDE(out, out);
    OVERRIDE(calibration, calib);
    OVERRIDE(gates, gates);
#undef OVERRIDE
    if (threads >= 0) r.c.threads = threads;
    if (!r.c.calibration[0]) {
        cli_error(CMD, "no calibration text: set evolve.calibration in %s or pass --calibration FILE", cfg);
        return 2;
    }
    const char *need[] = {r.c.model, r.c.telemetry, r.c.calibration, r.c.gates};
    const char *what[] = {"model directory", "telemetry directory", "calibration file", "gates file"};
    for (int i = 0; i < 4; i++)
        if (!(i == 1 && seslm_s3_is_url(need[i])) && !(i == 3 && is_gguf_file(r.c.model)) && !exists(need[i])) {
            // s3://: listed by 01-ingest; a decoder's gates are evolve.decoder's bars
            cli_error(CMD, "%s %s does not exist", what[i], need[i]);
            return 2;
        }
    if (r.c.adapt_enabled) { // the adapt stage's config is checked now, not after hours of recompiling
        adapt_config ac;
        adapt_config_defaults(&ac);
        if (adapt_config_load(&ac, r.c.adapt_config) != SESLM_OK) {
            cli_error(CMD, "evolve.adapt.config: %s", seslm_last_error());
            return 2;
        }
        snprintf(r.adapt_feedback, sizeof r.adapt_feedback, "%s",
                 r.c.adapt_feedback[0] ? r.c.adapt_feedback : r.c.feedback[0] ? r.c.feedback : ac.feedback);
        if (!r.adapt_feedback[0] || !exists(r.adapt_feedback)) {
            cli_error(CMD, "evolve.adapt is enabled but its feedback %s does not exist (evolve.adapt.feedback, "
                           "evolve.feedback or the feedback of %s)", r.adapt_feedback[0] ? r.adapt_feedback : "(none set)",
                      r.c.adapt_config);
            return 2;
        }
    }
    if (r.c.intent_data[0] && !is_gguf_file(r.c.model)) { // 08-intent's examples are read now, not after hours of recompiling
        const char *files[2] = {r.c.intent_data, r.c.feedback};
        for (int i = 0; i < 2; i++) {
            labelled_set ls;
            if (files[i][0] && labelled_read(&ls, files[i]) != SESLM_OK) {
                cli_error(CMD, "%s: %s", i ? "evolve.feedback" : "evolve.intent.data", seslm_last_error());
                labelled_free(&ls);
                return 2;
            }
            labelled_free(&ls);
        }
    }
    if (r.c.intent_head[0]) { // the node's head, named: it must be one (a typo would silently skip 08-intent-check)
        seslm_intent_head *h = NULL;
        if (seslm_intent_load(&h, r.c.intent_head, NULL) != SESLM_OK) {
            cli_error(CMD, "evolve.intent.head: %s", seslm_last_error());
            return 2;
        }
        seslm_intent_free(h);
    }
    snprintf(r.run, sizeof r.run, "%s", r.c.out);
    find_root(&r);
    if (r.root[0] && !exists(r.root)) {
        cli_error(CMD, "root model %s (the parent's lineage root, or evolve.root) does not exist: set evolve.root", r.root);
        return 2;
    }
    if (r.root[0]) fprintf(stderr, "seslm evolve: the parent descends from %s: candidates are validated against both\n", r.root);
    char p[2200];
    path_of(p, sizeof p, &r, "stages");
    if (!mkdirs(p)) {
        cli_error(CMD, "cannot create %s: %s", p, strerror(errno));
        return 3;
    }
    path_of(p, sizeof p, &r, ".lock");
    int lock = open(p, O_RDWR | O_CREAT, 0644);
    // The stage children inherit the lock (a killed evolve's child still writing keeps a resumed run out);
    // such a child gets SIGKILL when we die (run_child), but its exit takes a moment: wait up to 3 s
    // for the lock before calling the run busy.
    int locked = lock >= 0 && flock(lock, LOCK_EX | LOCK_NB) == 0;
    for (int i = 0; lock >= 0 && !locked && i < 30; i++) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
        locked = flock(lock, LOCK_EX | LOCK_NB) == 0;
    }
    if (!locked) {
        cli_error(CMD, "another seslm evolve is running on %s", r.run);
        if (lock >= 0) close(lock);
        return 3;
    }
    path_of(p, sizeof p, &r, "verdict.json");
    int rc;
    if (exists(p)) { // a finished run: report it again, do nothing
        cJSON *v = read_json(p);
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(v, "selected");
        fprintf(stderr, "seslm evolve: %s is a finished run; nothing to do\n", r.run);
        path_of(p, sizeof p, &r, "report.md");
        char *md = NULL;
        size_t n = 0;
        if (util_read_file(p, &md, &n, 16 << 20, NULL) == SESLM_OK) fputs(md, stdout);
        free(md);
        rc = v ? (cJSON_IsString(s) ? 0 : 1) : 3;
        cJSON_Delete(v);
    } else {
        const int c = cycle(&r);
        rc = c < 0 ? 3 : c;
    }
    close(lock);
    return rc;
}
