/*
 * The bottom rung of every kernel table: the scalar reference in every slot, so a table is
 * complete before any ISA rung overwrites what it implements (src/dispatch/table.c).
 */
#include "ref/ref.h"

void amxq_kernels_init_ref(struct amxq_kernels *t)
{
    t->isa = AMXQ_ISA_SCALAR;
#define AMXQ_X_REF(T, name, qk, bytes, act)                                                        \
    t->t[AMXQ_TI_##T].quantize = amxq_quantize_##act##_ref;                                        \
    t->t[AMXQ_TI_##T].quantize_name = "amxq_quantize_" #act "_ref";                                \
    t->t[AMXQ_TI_##T].gemm = amxq_gemm_##name##_ref;                                               \
    t->t[AMXQ_TI_##T].gemm_name = "amxq_gemm_" #name "_ref";
    AMXQ_FOREACH_TYPE(AMXQ_X_REF)
#undef AMXQ_X_REF
    t->tile_release = NULL;
}
