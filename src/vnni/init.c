/*
 * The VNNI rung of the kernel-table ladder (src/dispatch/table.c): overwrite the quantize and gemm
 * slots of every type. Compiled twice, as amxq_kernels_init_vnni and amxq_kernels_init_vnni_emu.
 */
#include "vnni/vnni.h"

void AMXQ_VNNI(amxq_kernels_init)(struct amxq_kernels *t)
{
#define VN_X_SLOT(T, name, qk, bytes, act)                                                         \
    t->t[AMXQ_TI_##T].quantize = AMXQ_VNNI(amxq_quantize_##act);                                   \
    t->t[AMXQ_TI_##T].quantize_name = AMXQ_VNNI_NAME(amxq_quantize_##act);                         \
    t->t[AMXQ_TI_##T].gemm = AMXQ_VNNI(amxq_gemm_##name);                                          \
    t->t[AMXQ_TI_##T].gemm_name = AMXQ_VNNI_NAME(amxq_gemm_##name);
    AMXQ_FOREACH_TYPE(VN_X_SLOT)
#undef VN_X_SLOT
}
