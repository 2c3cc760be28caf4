/* arch_report.h — the architecture diff of a student against its parent, for people and machines:
 * arch_diff.json, arch_diff.md and arch_diff.svg (heads and FFN neurons kept per layer, bytes per
 * component), with parameters, stored bytes and forward FLOPs before / after per component. FLOPs are
 * counted for one sequence of seq_len tokens: 2 per multiply-add of every product, attention's
 * scores and weighted sums included, elementwise work left out. */
#ifndef SESLM_ARCH_REPORT_H
#define SESLM_ARCH_REPORT_H

#include "seslm.h"

seslm_status seslm_arch_report_write(const seslm_model *parent, const seslm_model *student, const char *dir,
                                     int seq_len);

#endif
