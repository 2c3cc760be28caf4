/* distill_loss.h — label-free distillation losses and their gradients (distill.h lists them).
 * Every gradient is written for the student only; the parent's quantities are constants. */
#ifndef SESLM_DISTILL_LOSS_H
#define SESLM_DISTILL_LOSS_H

/* The loss tests call these directly. The shared libraries export only seslm_* names
 * (cmake/seslm.map), so these are compiled under the prefixed names. */
#define dl_embedding seslm_dl_embedding
#define dl_relations seslm_dl_relations
#define dl_relation_heads seslm_dl_relation_heads

#include <stddef.h>

typedef struct {
    double cos, mse, sim, attn, hid; // each loss before its weight (means over the batch)
} dl_parts;

/* Final-embedding losses on a batch of B:
 *   cos = mean_b (1 - s_b . p_b)                 (s, p the L2-normalised embeddings)
 *   mse = mean_b ||q_b - r_b||^2 / ||r_b||^2     (q, r the pooled vectors before normalisation: relative)
 *   sim = mean_i sum_j (s_i . s_j - p_i . p_j)^2 (the in-batch similarity matrices; keeps rankings)
 * Writes d(weighted sum)/ds into demb (B, C) and d/dq into dpooled (B, C); returns the weighted sum. */
double dl_embedding(const float *s_emb, const float *s_pool, const float *p_emb, const float *p_pool, int B, int C,
                    float w_cos, float w_mse, float w_sim, float *demb, float *dpooled, dl_parts *parts);

/* MiniLM self-attention distribution + value-relation KL (Wang et al. 2020; with relation heads as in
 * MiniLMv2 so student and parent may have different head counts): the last student layer's qkv
 * (Ntok, 3 As) against the parent's last layer (Ntok, 3 Ap), both split into R relation heads
 * (R divides As and Ap). For each relation head, sequence and query token:
 *   KL(softmax(Qp_i Kp^T / sqrt dp) || softmax(Qs_i Ks^T / sqrt ds)) + the same with V for Q and K.
 * Mean over (2 relations, R, tokens), times w; dqkv_s (Ntok, 3 As) += its gradient. */
double dl_relations(const float *qkv_s, int As, const float *qkv_p, int Ap, const int *off, const int *len, int B,
                    int R, float w, float *dqkv_s);

/* The number of relation heads used for a student / parent inner width: the student's head count when
 * it divides the parent's width too (MiniLM's per-head attention then), else the largest of 12, 8, 4,
 * 2, 1 dividing both. */
int dl_relation_heads(int As, int Hs, int Ap);

#endif
