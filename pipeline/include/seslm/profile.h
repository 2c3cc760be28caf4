/* profile.h — what a telemetry window says about the model's structure, as a JSON report:
 *   * dormant FFN neurons: activation rate (GELU output > 0) below dormant_rate, or mean |a| below
 *     dormant_abs;
 *   * low-contribution heads: mean output norm below low_head_norm x the layer's median head; near-uniform
 *     heads: mean entropy >= uniform_entropy x log(mean sequence length);
 *   * rare vocabulary: ids seen fewer than rare_count times (row-compression candidates only);
 *   * frequent token pairs (the dump's heavy hitters, top_pairs of them);
 *   * per-layer cost: exec_ns / exec_count. */
#ifndef SESLM_PROFILE_H
#define SESLM_PROFILE_H

#include "plan.h"
#include "seslm.h"
#include "telemetry_hdf5.h"

/* Mean tokens per sequence of the window (0 when empty). */
double seslm_profile_mean_seq_len(const seslm_telemetry_view *v);

/* Writes the profile of v (thresholds from the policy) to path. tok (may be NULL) names token ids. */
seslm_status seslm_profile_write_json(const seslm_telemetry_view *v, const seslm_policy *p, const seslm_tokenizer *tok,
                                      const char *path);

/* Reads a dump, or every dump of a directory summed: the counters, token counts, length histogram and
 * per-layer statistics are added; the sketch, heavy hitters, reservoir and batch records are those of
 * the newest dump (greatest final name). Dumps of another model (hash) or shape are refused. path_out
 * (may be NULL) receives the file read, or "DIR (N dumps summed)". */
seslm_status seslm_profile_read_telemetry(const char *file_or_dir, const char *expected_sha256,
                                          seslm_telemetry_dump **out, char *path_out, size_t cap);

#endif
