/* arch_report.c — architecture diff report (arch_report.h). */
#include "arch_report.h"

#include "model_internal.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char name[48];
    int64_t params[2], bytes[2];
    double flops[2];
    int heads[2], ffn[2]; // layers only (-1 for embeddings)
} component;

static double attn_flops(const seslm_model_config *c, int l, int T) {
    const double A = (double)c->layers[l].n_heads * c->head_dim, C = c->hidden;
    return 2.0 * T * (3 * A * C) + 2.0 * T * (C * A) + 2.0 * 2.0 * T * T * A;
}
static double ffn_flops(const seslm_model_config *c, int l, int T) {
    return 2.0 * 2.0 * T * (double)c->layers[l].ffn_dim * c->hidden;
}

static const char *weights_kind(const seslm_model *m) {
    if (m->lw && m->cfg.n_layers > 0 && (m->lw[0].q_q || m->lw[0].ff1_q)) return "INT8 (per-channel) + F32 norms/biases";
    return "F32";
}

static void svg_bar(FILE *f, double x, double y, double w, double h, const char *fill) {
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>\n", x, y, w, h, fill);
}

static char *svg_text(const component *cs, int n) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    const int L = n - 1, W = 760, rowh = 26, top = 60, H = top + rowh * (L + 1) + 70;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" "
               "font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n", W, H);
    fprintf(f, "<text x=\"10\" y=\"20\" font-size=\"15\">Kept per layer: attention heads (left), FFN neurons (middle), "
               "stored bytes (right)</text>\n");
    fprintf(f, "<text x=\"10\" y=\"40\" fill=\"#555\">grey: parent; colour: student</text>\n");
    int64_t bmax = 1;
    for (int i = 0; i < n; i++) bmax = cs[i].bytes[0] > bmax ? cs[i].bytes[0] : bmax;
    for (int i = 0; i < n; i++) {
        const double y = top + rowh * i;
        fprintf(f, "<text x=\"10\" y=\"%.1f\">%s</text>\n", y + 15, cs[i].name);
        if (cs[i].heads[0] > 0) {
            const double s = 200.0 / cs[i].heads[0];
            svg_bar(f, 110, y + 4, s * cs[i].heads[0], 16, "#ddd");
            svg_bar(f, 110, y + 4, s * cs[i].heads[1], 16, "#3b7dd8");
            fprintf(f, "<text x=\"%d\" y=\"%.1f\">%d/%d</text>\n", 115, y + 16, cs[i].heads[1], cs[i].heads[0]);
        }
        if (cs[i].ffn[0] > 0) {
            const double s = 200.0 / cs[i].ffn[0];
            svg_bar(f, 330, y + 4, s * cs[i].ffn[0], 16, "#ddd");
            svg_bar(f, 330, y + 4, s * cs[i].ffn[1], 16, "#e07b39");
            fprintf(f, "<text x=\"%d\" y=\"%.1f\">%d/%d</text>\n", 335, y + 16, cs[i].ffn[1], cs[i].ffn[0]);
        }
        const double s = 180.0 / (double)bmax;
        svg_bar(f, 550, y + 4, s * (double)cs[i].bytes[0], 16, "#ddd");
        svg_bar(f, 550, y + 4, s * (double)cs[i].bytes[1], 16, "#4caf50");
        fprintf(f, "<text x=\"%d\" y=\"%.1f\">%.2f MB</text>\n", 555, y + 16, cs[i].bytes[1] / 1e6);
    }
    fprintf(f, "</svg>\n");
    fclose(f);
    return buf;
}

seslm_status seslm_arch_report_write(const seslm_model *p, const seslm_model *s, const char *dir, int T) {
    return seslm_arch_report_write_drop(p, s, NULL, dir, T);
}

seslm_status seslm_arch_report_write_drop(const seslm_model *p, const seslm_model *s, const int *drop, const char *dir, int T) {
    const seslm_model_config *pc = &p->cfg, *sc = &s->cfg;
    int kept = 0;
    for (int l = 0; l < pc->n_layers; l++) kept += !(drop && drop[l]);
    if (kept != sc->n_layers || pc->hidden != sc->hidden)
        return seslm_fail(SESLM_ERR_ARG, "architecture report: the student has another layer count or width");
    const int L = pc->n_layers, n = 1 + L;
    component *cs = calloc((size_t)n, sizeof *cs);
    int ng = seslm_model_param_groups(p, NULL, 0);
    seslm_param_group *g[2] = {calloc((size_t)ng + 1, sizeof(seslm_param_group)), calloc((size_t)ng + 1, sizeof(seslm_param_group))};
    if (!cs || !g[0] || !g[1]) {
        free(cs), free(g[0]), free(g[1]);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    seslm_model_param_groups(p, g[0], ng);
    seslm_model_param_groups(s, g[1], ng);
    const seslm_model_config *cfg[2] = {pc, sc};
    snprintf(cs[0].name, sizeof cs[0].name, "embeddings");
    cs[0].heads[0] = cs[0].heads[1] = cs[0].ffn[0] = cs[0].ffn[1] = -1;
    for (int k = 0; k < 2; k++) {
        cs[0].params[k] = g[k][0].params, cs[0].bytes[k] = g[k][0].bytes;
        for (int l = 0, sl = 0; l < L; l++) {
            component *c = &cs[1 + l];
            snprintf(c->name, sizeof c->name, "layer %d%s", l, drop && drop[l] ? " (dropped)" : "");
            if (k == 1 && drop && drop[l]) continue; // a dropped layer: nothing left of it
            const int j = k == 0 ? l : sl++;        // the student's layers are renumbered
            c->params[k] = g[k][1 + 2 * j].params + g[k][2 + 2 * j].params;
            c->bytes[k] = g[k][1 + 2 * j].bytes + g[k][2 + 2 * j].bytes;
            c->flops[k] = attn_flops(cfg[k], j, T) + ffn_flops(cfg[k], j, T);
            c->heads[k] = cfg[k]->layers[j].n_heads, c->ffn[k] = cfg[k]->layers[j].ffn_dim;
        }
    }
    double tot[2][3] = {{0}};
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 2; k++) tot[k][0] += (double)cs[i].params[k], tot[k][1] += (double)cs[i].bytes[k], tot[k][2] += cs[i].flops[k];
    // JSON
    cJSON *r = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(r, "components");
    cJSON_AddStringToObject(r, "format", "seslm-arch-diff");
    cJSON_AddNumberToObject(r, "version", 1);
    cJSON_AddStringToObject(r, "parent", p->dir);
    cJSON_AddStringToObject(r, "student", s->dir);
    cJSON_AddStringToObject(r, "parent_weights", weights_kind(p));
    cJSON_AddStringToObject(r, "student_weights", weights_kind(s));
    cJSON_AddNumberToObject(r, "flops_seq_len", T);
    for (int i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "component", cs[i].name);
        if (i > 0) {
            cJSON_AddNumberToObject(o, "heads_parent", cs[i].heads[0]);
            cJSON_AddNumberToObject(o, "heads", cs[i].heads[1]);
            cJSON_AddNumberToObject(o, "ffn_parent", cs[i].ffn[0]);
            cJSON_AddNumberToObject(o, "ffn", cs[i].ffn[1]);
        }
        cJSON_AddNumberToObject(o, "params_parent", (double)cs[i].params[0]);
        cJSON_AddNumberToObject(o, "params", (double)cs[i].params[1]);
        cJSON_AddNumberToObject(o, "bytes_parent", (double)cs[i].bytes[0]);
        cJSON_AddNumberToObject(o, "bytes", (double)cs[i].bytes[1]);
        cJSON_AddNumberToObject(o, "flops_parent", cs[i].flops[0]);
        cJSON_AddNumberToObject(o, "flops", cs[i].flops[1]);
        cJSON_AddItemToArray(arr, o);
    }
    cJSON *t = cJSON_AddObjectToObject(r, "total");
    const char *keys[3] = {"params", "bytes", "flops"};
    for (int j = 0; j < 3; j++) {
        char kp[32], kr[32];
        snprintf(kp, sizeof kp, "%s_parent", keys[j]);
        snprintf(kr, sizeof kr, "%s_ratio", keys[j]);
        cJSON_AddNumberToObject(t, kp, tot[0][j]);
        cJSON_AddNumberToObject(t, keys[j], tot[1][j]);
        cJSON_AddNumberToObject(t, kr, tot[0][j] > 0 ? tot[1][j] / tot[0][j] : 0);
    }
    char *json = cJSON_Print(r);
    cJSON_Delete(r);
    // Markdown
    char *md = NULL;
    size_t mdlen = 0;
    FILE *f = open_memstream(&md, &mdlen);
    if (f) {
        fprintf(f, "# Architecture diff\n\n- parent: `%s` (%s)\n- student: `%s` (%s)\n- FLOPs: one sequence of %d tokens\n\n",
                p->dir, weights_kind(p), s->dir, weights_kind(s), T);
        fprintf(f, "![heads and neurons kept per layer](arch_diff.svg)\n\n");
        fprintf(f, "| component | heads | FFN neurons | params | bytes | MFLOPs |\n|---|---|---|---|---|---|\n");
        for (int i = 0; i < n; i++) {
            if (i == 0) fprintf(f, "| embeddings | | | ");
            else fprintf(f, "| %s | %d → %d | %d → %d | ", cs[i].name, cs[i].heads[0], cs[i].heads[1], cs[i].ffn[0], cs[i].ffn[1]);
            fprintf(f, "%lld → %lld | %lld → %lld | %.1f → %.1f |\n", (long long)cs[i].params[0], (long long)cs[i].params[1],
                    (long long)cs[i].bytes[0], (long long)cs[i].bytes[1], cs[i].flops[0] / 1e6, cs[i].flops[1] / 1e6);
        }
        fprintf(f, "| **total** | | | %.0f → %.0f (%.1f%%) | %.0f → %.0f (%.1f%%) | %.1f → %.1f (%.1f%%) |\n", tot[0][0],
                tot[1][0], 100 * tot[1][0] / tot[0][0], tot[0][1], tot[1][1], 100 * tot[1][1] / tot[0][1], tot[0][2] / 1e6,
                tot[1][2] / 1e6, tot[0][2] > 0 ? 100 * tot[1][2] / tot[0][2] : 0);
        fclose(f);
    }
    char *svg = svg_text(cs, n);
    seslm_status st = json && md && svg ? SESLM_OK : seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    char path[4200];
    if (st == SESLM_OK) {
        snprintf(path, sizeof path, "%s/arch_diff.json", dir);
        st = util_write_file_atomic(path, json, strlen(json));
    }
    if (st == SESLM_OK) {
        snprintf(path, sizeof path, "%s/arch_diff.md", dir);
        st = util_write_file_atomic(path, md, strlen(md));
    }
    if (st == SESLM_OK) {
        snprintf(path, sizeof path, "%s/arch_diff.svg", dir);
        st = util_write_file_atomic(path, svg, strlen(svg));
    }
    free(json), free(md), free(svg), free(cs), free(g[0]), free(g[1]);
    return st;
}
