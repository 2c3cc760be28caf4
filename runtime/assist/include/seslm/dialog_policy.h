/* dialog_policy.h — loads the decision policy of runtime/assist/dialog.h from YAML (configs/dialog.yaml). */
#ifndef SESLM_DIALOG_POLICY_H
#define SESLM_DIALOG_POLICY_H

#include "dialog.h"

/* Fills *p (p->goals malloc'd: free with seslm_dialog_policy_free). Unknown keys, missing goal fields
 * and out-of-range values fail with "file:line: key: ..." (SESLM_ERR_FORMAT). */
seslm_status seslm_dialog_policy_load(seslm_dialog_policy *p, const char *path);
seslm_status seslm_dialog_policy_load_string(seslm_dialog_policy *p, const char *name, const char *text, size_t len);
void seslm_dialog_policy_free(seslm_dialog_policy *p);

#endif
