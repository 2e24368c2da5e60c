/*
 * ggml-amxq — amxq as an extra buffer type of ggml's CPU backend ("AMXQ").
 *
 * Weights placed in an AMXQ buffer are packed by amxq when they are written (expert stacks expert
 * by expert), and ggml's MUL_MAT and MUL_MAT_ID on them run amxq's kernels on ggml's own threads.
 * See integrations/ggml/README.md.
 */
#ifndef GGML_AMXQ_H_2C7E91B4
#define GGML_AMXQ_H_2C7E91B4

#include "ggml-backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/** ggml_backend_amxq_buffer_type() : the "AMXQ" buffer type of the CPU device, or NULL when the
 *  amxq library linked in does not match the header this was built with. The patched
 *  ggml_backend_cpu_get_extra_buffer_types() calls it (ggml-amxq.patch). */
ggml_backend_buffer_type_t ggml_backend_amxq_buffer_type(void);

/** ggml_backend_buft_is_amxq() : whether `buft` is the AMXQ buffer type. */
bool ggml_backend_buft_is_amxq(ggml_backend_buffer_type_t buft);

#ifdef __cplusplus
}
#endif

#endif
