/* governance.h — the change policy of the registry (configs/governance.yaml): which promotions need
 * an approval recorded with `seslm approve` before `seslm promote` accepts them. */
#ifndef SESLM_GOVERNANCE_H
#define SESLM_GOVERNANCE_H

#include "seslm.h"

#include <stddef.h>

#define SESLM_GOV_MAX_ALIASES 16

struct seslm_governance {
    char approval_aliases[SESLM_GOV_MAX_ALIASES][32]; // promoting to these always needs an approval
    int n_approval_aliases;
    double ratio_below;           // bytes(new) / bytes(alias's current) below this needs an approval (0: off)
    double metric_drop;           // any shared metric falling by more than this needs an approval (0: off)
    int rollback_needs_approval;  // rollback is normally instant and needs none
};
typedef struct seslm_governance seslm_governance;

/* Built-in policy when no file is given: promoting to "live" needs an approval. */
void seslm_governance_default(seslm_governance *g);
/* Loads the YAML policy; unknown keys and out-of-range values are errors naming file:line. */
seslm_status seslm_governance_load(seslm_governance *g, const char *path);
/* 1 when the change needs an approval, with the rule that says so in why. ratio < 0 / drop < 0: unknown. */
int seslm_governance_needs_approval(const seslm_governance *g, const char *alias, double ratio, double worst_drop,
                                    char *why, size_t cap);

#endif
