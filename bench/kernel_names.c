/*
 * kernel_names.c — the names of the kernels a family would run, for the benchmark's labels and
 * context. C, because it reads the library's internal kernel table (src/internal.h), which is not
 * meant to be compiled as C++.
 */
#include "probes.h"

#include "internal.h"

const char *amxq_bench_kernel_name(amxq_isa isa, amxq_type type)
{
    const struct amxq_kernels *t = amxq_kernels_get(isa, NULL);
    int ti = amxq_type_index(type);
    if (t == NULL || ti < 0 || t->t[ti].gemm_name == NULL)
        return "?";
    return t->t[ti].gemm_name;
}
