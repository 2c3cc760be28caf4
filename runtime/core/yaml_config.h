/* yaml_config.h — a small, generic YAML configuration loader (libyaml) for the pipeline stages.
 *
 * A file is one YAML mapping. Nested mappings are addressed with dotted keys ("drift.mmd.alpha");
 * the items of a sequence of scalars are "key.0", "key.1", ... (seslm_yaml_count gives their number).
 * Anchors, aliases and multi-document streams are rejected. Every scalar remembers its line, so the
 * typed getters report errors as
 *
 *     configs/drift.yaml:12: mmd.alpha: expected a number in [0, 1], got '-0.5'
 *
 * (through seslm_last_error(), with SESLM_ERR_FORMAT). A key absent from the file yields the caller's
 * default. seslm_yaml_check_keys rejects keys the caller does not know (typos are errors, not silently
 * ignored settings). */
#ifndef SESLM_YAML_CONFIG_H
#define SESLM_YAML_CONFIG_H

#include "seslm.h"

#include <stddef.h>

typedef struct seslm_yaml seslm_yaml;

/* Parses path; malformed YAML fails with "path:line: <libyaml's problem>". A file that is empty or
 * holds only comments is an error (SESLM_ERR_FORMAT: a truncated or unfilled config must not run on
 * defaults); "{}" is the empty mapping. */
seslm_status seslm_yaml_load(seslm_yaml **out, const char *path);
/* Same, from a buffer; `name` is used in messages in place of the path. An empty buffer is an empty
 * mapping here (callers that embed YAML decide for themselves). */
seslm_status seslm_yaml_load_string(seslm_yaml **out, const char *name, const char *text, size_t len);
void seslm_yaml_free(seslm_yaml *y);

const char *seslm_yaml_path(const seslm_yaml *y);
/* 1 if key names a scalar, a mapping or a sequence. */
int seslm_yaml_has(const seslm_yaml *y, const char *key);
/* The scalar at key (NULL when absent or not a scalar); *line gets its line (1-based) when not NULL. */
const char *seslm_yaml_scalar(const seslm_yaml *y, const char *key, int *line);
/* Number of items of the sequence at key (0 when absent; -1 when key is not a sequence). */
int seslm_yaml_count(const seslm_yaml *y, const char *key);

/* Typed getters: absent key -> *out = def and SESLM_OK; present but not of the type or outside
 * [lo, hi] -> SESLM_ERR_FORMAT with a "file:line: key: expected ..." message. */
seslm_status seslm_yaml_get_double(const seslm_yaml *y, const char *key, double lo, double hi, double def,
                                   double *out);
seslm_status seslm_yaml_get_int(const seslm_yaml *y, const char *key, long long lo, long long hi, long long def,
                                long long *out);
/* true/false, yes/no, on/off (any case). */
seslm_status seslm_yaml_get_bool(const seslm_yaml *y, const char *key, int def, int *out);
/* The string is owned by y. */
seslm_status seslm_yaml_get_string(const seslm_yaml *y, const char *key, const char *def, const char **out);

/* Every key of the file must be one of `allowed` (n entries, dotted, scalars or containers; a "prefix.*"
 * entry allows anything under prefix). The first other key fails: "file:line: key: unknown key". */
seslm_status seslm_yaml_check_keys(const seslm_yaml *y, const char *const *allowed, int n);

#endif
