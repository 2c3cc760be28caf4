/* parent.h — the model an evolution cycle starts from, whatever the previous cycle made of it.
 *
 * A deployed student is INT8 (linear weights, compressed word table), maybe 2:4 sparse: plan's scores and
 * recompile's slicing read F32 weights. Two ways to start from it, in order of preference:
 *   1. its F32 master: recompile writes DIR/master/ (the pruned, reconstructed, distilled student before
 *      quantization; config.json "seslm_master" names it with its sha256). The next cycle prunes, refits
 *      and quantizes the master, so rounding errors never compound over generations.
 *   2. no master (an INT8 model made elsewhere, or the master was removed): the served weights widened to
 *      F32 (seslm_model_widen: row x scale), so the next cycle quantizes what was quantized once already.
 * Telemetry and plans name the SERVED model (its weights' sha256): that is what the nodes ran. */
#ifndef SESLM_PARENT_H
#define SESLM_PARENT_H

#include "seslm.h"

#include <stddef.h>

typedef enum { SESLM_PARENT_F32 = 0, SESLM_PARENT_MASTER = 1, SESLM_PARENT_WIDENED = 2 } seslm_parent_kind;

typedef struct {
    seslm_model *m;           // F32 weights to prune (owned)
    seslm_parent_kind kind;
    char served_sha256[65];   // sha256 of DIR/model.safetensors (telemetry and plans refer to it)
    char weights_dir[4300];   // where m was loaded from: DIR or DIR/master
} seslm_parent;

/* Loads dir as a parent (see above). A master whose sha256 differs from the one the student recorded, or
 * whose layer shapes differ from the student's, is refused (SESLM_ERR_FORMAT): it is not this student's. */
seslm_status seslm_parent_load(seslm_parent *p, const char *dir);
void seslm_parent_free(seslm_parent *p);
const char *seslm_parent_kind_name(seslm_parent_kind k);

#endif
