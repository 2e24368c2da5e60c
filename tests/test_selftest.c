/*
 * The start-up self-test (src/dispatch/selftest.c) accepts every table that runs here and
 * refuses tables with a wrong quantizer or a wrong gemm in any one slot, so an ISA whose kernels
 * misbehave on some CPU is switched off (AMXQ_ERR_SELFTEST) rather than used.
 */
#include "amxq.h"
#include "common/testutil.h"
#include "dispatch/selftest.h"
#include "internal.h"

static const struct amxq_kernels *scalar;
static int broken_slot;

/* The reference quantizer, then one quant byte of the first row off by one. */
static AMXQ_DECL_QUANTIZE_FN(quantize_off_by_one)
{
    scalar->t[broken_slot].quantize(x, ldx, m0, m1, qx);
    if (m0 == 0 && m1 > 0)
        qx->qs[5] = (int8_t)(qx->qs[5] ^ 1);
}

/* The reference gemm, then one output of the last row (ragged block) scaled by 1.001. */
static AMXQ_DECL_GEMM_FN(gemm_one_output_off)
{
    scalar->t[broken_slot].gemm(lo, packed, qx, m0, m1, p0, p1, c, ldc);
    if (m1 == qx->m && p1 == lo->n_panels)
        c[(m1 - 1) * ldc + lo->n - 1] *= 1.001f;
}

int main(void)
{
    scalar = amxq_kernels_get(AMXQ_ISA_SCALAR, NULL);
    TU_CHECK(scalar != NULL, "scalar table");
    if (!scalar)
        return tu_finish("selftest");

    for (int isa = AMXQ_ISA_SCALAR; isa < AMXQ_ISA_COUNT; isa++) {
        amxq_status why;
        const struct amxq_kernels *t = amxq_kernels_get((amxq_isa)isa, &why);
        TU_CHECK(why != AMXQ_ERR_SELFTEST, "%s failed its self-test", amxq_isa_name((amxq_isa)isa));
        if (t) {
            TU_CHECK(amxq_kernels_selftest(t) == AMXQ_OK, "%s", amxq_isa_name((amxq_isa)isa));
            printf("%-10s self-test passes\n", amxq_isa_name((amxq_isa)isa));
        } else {
            printf("%-10s not runnable here: %s\n", amxq_isa_name((amxq_isa)isa),
                   amxq_status_str(why));
        }
    }

    for (broken_slot = 0; broken_slot < AMXQ_NTYPES; broken_slot++) {
        struct amxq_kernels bad = *scalar;
        bad.t[broken_slot].quantize = quantize_off_by_one;
        TU_CHECK(amxq_kernels_selftest(&bad) == AMXQ_ERR_SELFTEST, "wrong quantizer %d accepted",
                 broken_slot);
        bad = *scalar;
        bad.t[broken_slot].gemm = gemm_one_output_off;
        TU_CHECK(amxq_kernels_selftest(&bad) == AMXQ_ERR_SELFTEST, "wrong gemm %d accepted",
                 broken_slot);
    }
    TU_CHECK(strcmp(amxq_status_str(AMXQ_ERR_SELFTEST), "unknown amxq status") != 0, "status name");
    return tu_finish("selftest");
}
