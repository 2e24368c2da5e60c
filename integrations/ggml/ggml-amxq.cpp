// ggml-amxq: the "AMXQ" extra buffer type of ggml's CPU backend, on amxq's public API only.
//
// Weights written into an AMXQ buffer are packed with amxq_pack() (docs/design.md §4); ggml's
// MUL_MAT on such a weight runs amxq's slice API on ggml's own threads (docs/design.md §8,
// docs/threads.md): every thread quantizes its share of the activations into ggml's work buffer,
// meets the others at ggml_barrier(), then computes its panels of the result. Expert stacks
// ([K, N, n_expert]) are packed expert by expert, and MUL_MAT_ID on them runs the expert slice
// API (amxq_matmul_id_plan / amxq_quantize_id_slice / barrier / amxq_matmul_id_slice) the same
// way. Only what amxq computes exactly as ggml asks is accepted (supports_op); everything else
// stays on ggml's own path.

#include "ggml-amxq.h"

#include <amxq.h>

#include "ggml-backend-impl.h"
#include "ggml-cpu.h"
#include "traits.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace
{

// amxq's type values are ggml's; amxq_type_name() knows which of them amxq packs (Q4_0, Q4_1,
// Q8_0, Q4_K in 0.1), so a type amxq adds is taken without a change here.
bool amxq_type_of(enum ggml_type t, amxq_type *out)
{
    if ((int)t < 0 || (int)t >= GGML_TYPE_COUNT || amxq_type_name((amxq_type)t) == nullptr)
        return false;
    *out = (amxq_type)t;
    return true;
}

// A tensor the buffer stores packed: a whole, contiguous 2-D weight of an amxq type, or a 3-D
// stack of them (experts, [K, N, n_expert]), each matrix packed on its own, one after the other
// (each amxq_packed_size() bytes, a multiple of AMXQ_ALIGNMENT, so every one stays aligned).
// 4-D tensors and views are stored as ggml's bytes, untouched.
bool is_packable(const struct ggml_tensor *t)
{
    amxq_type at;
    if (t->view_src != nullptr || !amxq_type_of(t->type, &at))
        return false;
    if (t->ne[2] < 1 || t->ne[2] >= ((int64_t)1 << 31) || t->ne[3] != 1 || !ggml_is_contiguous(t))
        return false;
    const size_t one = amxq_packed_size(at, t->ne[1], t->ne[0]);
    return one != 0 && one <= SIZE_MAX / (size_t)t->ne[2] &&
           amxq_ggml_size(at, t->ne[1], t->ne[0]) * (size_t)t->ne[2] == ggml_nbytes(t);
}

// Bytes of one packed matrix of a packable tensor, and of one matrix of ggml's bytes.
size_t packed_one(const struct ggml_tensor *t)
{
    return amxq_packed_size((amxq_type)t->type, t->ne[1], t->ne[0]);
}

size_t ggml_one(const struct ggml_tensor *t)
{
    return amxq_ggml_size((amxq_type)t->type, t->ne[1], t->ne[0]);
}

bool buft_is_amxq(ggml_backend_buffer_type_t buft);

bool in_amxq_buffer(const struct ggml_tensor *t)
{
    return t->buffer != nullptr && buft_is_amxq(t->buffer->buft);
}

// Exactly what compute_forward() can do: C = X * W^T with W packed (2-D), X f32 rows that are
// contiguous (any batch dimensions of X then are just more rows, as ggml broadcasts a 2-D weight
// over them), C f32 contiguous, in host memory.
bool mul_mat_ok(const struct ggml_tensor *op)
{
    const struct ggml_tensor *w = op->src[0];
    const struct ggml_tensor *x = op->src[1];
    if (op->op != GGML_OP_MUL_MAT || w == nullptr || x == nullptr)
        return false;
    if (!in_amxq_buffer(w) || !is_packable(w) || w->ne[2] != 1)
        return false;
    if (x->type != GGML_TYPE_F32 || !ggml_is_contiguous(x))
        return false;
    if (x->buffer != nullptr && !ggml_backend_buft_is_host(x->buffer->buft))
        return false;
    if (op->type != GGML_TYPE_F32 || !ggml_is_contiguous(op))
        return false;
    if (x->ne[0] != w->ne[0] || op->ne[0] != w->ne[1])
        return false;
    for (int d = 1; d < 4; d++)
        if (op->ne[d] != x->ne[d])
            return false;
    const int64_t m = ggml_nrows(x);
    return m >= 1 && m < ((int64_t)1 << 31);
}

// A stride of ggml's in floats, or -1 when it is not a whole number of them.
int64_t floats(size_t nb)
{
    return nb % sizeof(float) == 0 ? (int64_t)(nb / sizeof(float)) : -1;
}

bool host(const struct ggml_tensor *t)
{
    return t->buffer == nullptr || ggml_backend_buft_is_host(t->buffer->buft);
}

// Exactly what amxq_matmul_id() computes, in ggml's terms (ggml_mul_mat_id(): as = src[0]
// [K, N, n_expert], b = src[1] [K, ne11, n_tokens], ids = src[2] [n_used, n_tokens] i32, result
// [N, n_used, n_tokens], with result[:, s, t] = as[:, :, ids[s, t]] . b[:, s % ne11, t]): the
// experts packed in an AMXQ buffer; b f32 in host memory with floats contiguous along K and whole
// float strides, and ne11 either 1 (one row per token: up and gate) or n_used (a row per slot:
// down), the two cases amxq's x_slots covers (ggml also allows other divisors of n_used); ids
// i32 with contiguous rows; the result f32 and contiguous (as ggml allocates it). amxq's own
// checks (ids in range, no overlaps) run on every call.
bool mul_mat_id_ok(const struct ggml_tensor *op)
{
    const struct ggml_tensor *w = op->src[0];
    const struct ggml_tensor *x = op->src[1];
    const struct ggml_tensor *ids = op->src[2];
    if (op->op != GGML_OP_MUL_MAT_ID || w == nullptr || x == nullptr || ids == nullptr)
        return false;
    if (!in_amxq_buffer(w) || !is_packable(w))
        return false;
    const int64_t n_used = ids->ne[0], n_tokens = ids->ne[1];
    if (x->type != GGML_TYPE_F32 || !host(x) || x->nb[0] != sizeof(float) || x->ne[3] != 1 ||
        floats(x->nb[1]) < 0 || floats(x->nb[2]) < 0)
        return false;
    if (ids->type != GGML_TYPE_I32 || !host(ids) || ids->nb[0] != sizeof(int32_t) ||
        ids->nb[1] % sizeof(int32_t) != 0 || ids->ne[2] != 1 || ids->ne[3] != 1)
        return false;
    if (op->type != GGML_TYPE_F32 || !ggml_is_contiguous(op) || op->ne[3] != 1)
        return false;
    if (x->ne[0] != w->ne[0] || op->ne[0] != w->ne[1] || op->ne[1] != n_used ||
        op->ne[2] != n_tokens || x->ne[2] != n_tokens)
        return false;
    if (x->ne[1] != 1 && x->ne[1] != n_used)
        return false;
    if (n_used < 1 || n_tokens < 1 || n_tokens >= ((int64_t)1 << 31) / n_used)
        return false;
    // The strides amxq uses must hold whole rows (amxq_matmul_id() refuses shorter ones).
    const int64_t k = w->ne[0];
    return (x->ne[1] == 1 || floats(x->nb[1]) >= k) && (n_tokens == 1 || floats(x->nb[2]) >= k) &&
           (n_tokens == 1 || (int64_t)(ids->nb[1] / sizeof(int32_t)) >= n_used);
}

// ggml's work buffer is not promised to be 64-byte aligned: ask for the slack and align inside.
// MUL_MAT: thread 0's plan, then the quantized activations. MUL_MAT_ID: the experts' addresses,
// then the expert slice workspace.
constexpr size_t PLAN_BYTES =
    (sizeof(amxq_plan) + AMXQ_ALIGNMENT - 1) / AMXQ_ALIGNMENT * AMXQ_ALIGNMENT;

size_t round_up64(size_t v)
{
    return (v + AMXQ_ALIGNMENT - 1) / AMXQ_ALIGNMENT * AMXQ_ALIGNMENT;
}

size_t workspace_bytes(const struct ggml_tensor *op)
{
    const struct ggml_tensor *w = op->src[0];
    return amxq_workspace_size((amxq_type)w->type, ggml_nrows(op->src[1]), w->ne[0]) + PLAN_BYTES +
           AMXQ_ALIGNMENT;
}

amxq_status id_plan(const struct ggml_tensor *op, int n_threads, amxq_id_plan *plan)
{
    const struct ggml_tensor *w = op->src[0];
    const struct ggml_tensor *x = op->src[1];
    const struct ggml_tensor *ids = op->src[2];
    return amxq_matmul_id_plan((amxq_type)w->type, w->ne[1], w->ne[0], w->ne[2], x->ne[1],
                               ids->ne[0], ids->ne[1], n_threads, nullptr, plan);
}

size_t experts_bytes(const struct ggml_tensor *op)
{
    return round_up64((size_t)op->src[0]->ne[2] * sizeof(void *));
}

[[noreturn]] void fail(const char *what, const struct ggml_tensor *t, amxq_status st)
{
    GGML_ABORT("amxq: %s of %s: %s", what, t->name, amxq_status_str(st));
}

class tensor_traits : public ggml::cpu::tensor_traits
{
    bool work_size(int n_threads, const struct ggml_tensor *op, size_t &size) override
    {
        if (mul_mat_ok(op)) {
            size = workspace_bytes(op);
            return true;
        }
        amxq_id_plan plan;
        if (mul_mat_id_ok(op) && id_plan(op, n_threads, &plan) == AMXQ_OK) {
            size = AMXQ_ALIGNMENT + experts_bytes(op) + plan.workspace_size;
            return true;
        }
        return false;
    }

    bool compute_forward(struct ggml_compute_params *params, struct ggml_tensor *op) override
    {
        // get_tensor_traits() sends every op that reads a packed weight here, so that none of
        // them can read packed bytes as ggml blocks and compute garbage.
        if (mul_mat_id_ok(op)) {
            mul_mat_id(params, op);
            return true;
        }
        if (!mul_mat_ok(op))
            GGML_ABORT("amxq: %s (%s) reads the packed weight %s in a way amxq does not compute",
                       op->name, ggml_op_name(op->op), op->src[0] ? op->src[0]->name : "?");
        const struct ggml_tensor *w = op->src[0];
        const struct ggml_tensor *x = op->src[1];
        const int64_t m = ggml_nrows(x);

        // Every thread plans (a few header reads) and quantizes its rows. The plans agree except
        // for the ISA if amxq_set_isa() ran in between, and quantized bytes do not depend on the
        // ISA; so thread 0 publishes its plan and every thread computes with it: one set of
        // kernels per product, with no second barrier (docs/design.md §8).
        amxq_plan own;
        amxq_status st = amxq_matmul_plan(w->data, m, nullptr, &own);
        const uintptr_t base = (uintptr_t)params->wdata;
        char *wsp = (char *)((base + AMXQ_ALIGNMENT - 1) & ~(uintptr_t)(AMXQ_ALIGNMENT - 1));
        amxq_plan *shared = (amxq_plan *)wsp;
        void *ws = wsp + PLAN_BYTES;
        const size_t used = (size_t)((uintptr_t)ws - base);
        if (st == AMXQ_OK &&
            (params->wdata == nullptr || params->wsize < used + own.workspace_size))
            st = AMXQ_ERR_BUFFER_SIZE;
        if (st == AMXQ_OK)
            st = amxq_quantize_slice(&own, (const float *)x->data, x->ne[0], ws, own.workspace_size,
                                     params->ith, params->nth);
        if (st == AMXQ_OK && params->ith == 0)
            *shared = own;
        // Every thread passes the barrier, failed or not, or the others would wait forever.
        ggml_barrier(params->threadpool);
        if (st != AMXQ_OK)
            fail("MUL_MAT (plan, activations)", op, st);
        st = amxq_matmul_slice(shared, w->data, ws, shared->workspace_size, (float *)op->data,
                               op->ne[0], params->ith, params->nth);
        if (st != AMXQ_OK)
            fail("MUL_MAT", op, st);
        return true;
    }

    // MUL_MAT_ID: every thread plans (shapes only; the plans are equal) and quantizes its
    // tokens' rows, thread 0 also writes the experts' addresses into the work buffer; after
    // ggml_barrier() each thread groups the routing itself and computes its share of the
    // result (docs/design.md §8). Bitwise the same for any thread count.
    void mul_mat_id(struct ggml_compute_params *params, struct ggml_tensor *op)
    {
        const struct ggml_tensor *w = op->src[0];
        const struct ggml_tensor *x = op->src[1];
        const struct ggml_tensor *ids = op->src[2];
        amxq_id_plan plan;
        amxq_status st = id_plan(op, params->nth, &plan);
        const uintptr_t base = (uintptr_t)params->wdata;
        char *wsp = (char *)((base + AMXQ_ALIGNMENT - 1) & ~(uintptr_t)(AMXQ_ALIGNMENT - 1));
        const void **experts = (const void **)(void *)wsp;
        void *ws = wsp + experts_bytes(op);
        const size_t used = (size_t)((uintptr_t)ws - base);
        if (st == AMXQ_OK &&
            (params->wdata == nullptr || params->wsize < used + plan.workspace_size))
            st = AMXQ_ERR_BUFFER_SIZE;
        if (st == AMXQ_OK && params->ith == 0) {
            const size_t one = packed_one(w);
            for (int64_t e = 0; e < w->ne[2]; e++)
                experts[e] = (const char *)w->data + (size_t)e * one;
        }
        if (st == AMXQ_OK)
            st = amxq_quantize_id_slice(&plan, (const float *)x->data, floats(x->nb[1]),
                                        floats(x->nb[2]), ws, plan.workspace_size, params->ith,
                                        params->nth);
        // Every thread passes the barrier, failed or not, or the others would wait forever.
        ggml_barrier(params->threadpool);
        if (st != AMXQ_OK)
            fail("MUL_MAT_ID (plan, activations)", op, st);
        st = amxq_matmul_id_slice(&plan, experts, (const int32_t *)ids->data,
                                  (int64_t)(ids->nb[1] / sizeof(int32_t)), ws, plan.workspace_size,
                                  (float *)op->data, floats(op->nb[1]), floats(op->nb[2]),
                                  params->ith, params->nth);
        if (st != AMXQ_OK)
            fail("MUL_MAT_ID", op, st);
    }
};

tensor_traits g_traits;

bool is_packed(const struct ggml_tensor *t)
{
    if (t->view_src != nullptr)
        t = t->view_src;
    return t->extra == &g_traits && in_amxq_buffer(t);
}

class extra_buffer_type : public ggml::cpu::extra_buffer_type
{
    bool supports_op(ggml_backend_dev_t, const struct ggml_tensor *op) override
    {
        return mul_mat_ok(op) || mul_mat_id_ok(op);
    }

    ggml::cpu::tensor_traits *get_tensor_traits(const struct ggml_tensor *op) override
    {
        // Ops that only rename a tensor read no data; any other op that reads a packed weight
        // is ours (compute_forward() refuses what it cannot do).
        switch (op->op) {
        case GGML_OP_NONE:
        case GGML_OP_VIEW:
        case GGML_OP_RESHAPE:
        case GGML_OP_PERMUTE:
        case GGML_OP_TRANSPOSE:
            return nullptr;
        default:
            break;
        }
        for (int i = 0; i < GGML_MAX_SRC; i++)
            if (op->src[i] != nullptr && is_packed(op->src[i]))
                return &g_traits;
        return nullptr;
    }
};

// ---- buffer ----------------------------------------------------------------------------------

void buffer_free(ggml_backend_buffer_t buffer)
{
    std::free(buffer->context);
}

void *buffer_get_base(ggml_backend_buffer_t buffer)
{
    return buffer->context;
}

enum ggml_status buffer_init_tensor(ggml_backend_buffer_t, struct ggml_tensor *tensor)
{
    // The mark that this tensor's bytes are packed; the other tensors hold ggml's bytes.
    if (is_packable(tensor))
        tensor->extra = &g_traits;
    return GGML_STATUS_SUCCESS;
}

void buffer_memset_tensor(ggml_backend_buffer_t, struct ggml_tensor *tensor, uint8_t value,
                          size_t offset, size_t size)
{
    if (tensor->extra == &g_traits && size != 0)
        GGML_ABORT("amxq: memset of the packed tensor %s", tensor->name);
    std::memset((char *)tensor->data + offset, value, size);
}

void buffer_set_tensor(ggml_backend_buffer_t, struct ggml_tensor *tensor, const void *data,
                       size_t offset, size_t size)
{
    if (tensor->extra != &g_traits) {
        std::memcpy((char *)tensor->data + offset, data, size);
        return;
    }
    // Packing needs whole rows of every panel: a weight is written whole, an expert stack whole
    // or in whole experts (ggml's other repacking buffers also require whole tensors).
    const size_t g1 = ggml_one(tensor), p1 = packed_one(tensor);
    if (offset % g1 != 0 || size % g1 != 0 || offset + size > ggml_nbytes(tensor))
        GGML_ABORT("amxq: %s must be written in whole matrices of %zu bytes (offset %zu, %zu of "
                   "%zu bytes)",
                   tensor->name, g1, offset, size, ggml_nbytes(tensor));
    const amxq_type at = (amxq_type)tensor->type;
    const int64_t n = tensor->ne[1], k = tensor->ne[0];
    for (size_t e = offset / g1; e < (offset + size) / g1; e++) {
        const amxq_status st = amxq_pack(at, (const char *)data + (e * g1 - offset), n, k,
                                         (char *)tensor->data + e * p1, p1);
        if (st != AMXQ_OK)
            fail("packing", tensor, st);
    }
}

void buffer_get_tensor(ggml_backend_buffer_t, const struct ggml_tensor *tensor, void *data,
                       size_t offset, size_t size)
{
    if (tensor->extra != &g_traits) {
        std::memcpy(data, (const char *)tensor->data + offset, size);
        return;
    }
    // Matrix by matrix: whole ones straight into `data`, a part through a matrix-sized copy.
    const size_t g1 = ggml_one(tensor), p1 = packed_one(tensor);
    if (offset + size > ggml_nbytes(tensor))
        GGML_ABORT("amxq: reading %zu bytes at %zu of %s (%zu bytes)", size, offset, tensor->name,
                   ggml_nbytes(tensor));
    std::vector<uint8_t> tmp;
    for (size_t pos = offset; pos < offset + size;) {
        const size_t e = pos / g1, in = pos - e * g1;
        const size_t take = std::min(g1 - in, offset + size - pos);
        const void *src = (const char *)tensor->data + e * p1;
        char *dst = (char *)data + (pos - offset);
        amxq_status st;
        if (in == 0 && take == g1) {
            st = amxq_unpack(src, dst, g1);
        } else {
            tmp.resize(g1);
            st = amxq_unpack(src, tmp.data(), g1);
            if (st == AMXQ_OK)
                std::memcpy(dst, tmp.data() + in, take);
        }
        if (st != AMXQ_OK)
            fail("unpacking", tensor, st);
        pos += take;
    }
}

void buffer_clear(ggml_backend_buffer_t buffer, uint8_t value)
{
    std::memset(buffer->context, value, buffer->size);
}

const ggml_backend_buffer_i buffer_iface = {
    /* .free_buffer   = */ buffer_free,
    /* .get_base      = */ buffer_get_base,
    /* .init_tensor   = */ buffer_init_tensor,
    /* .memset_tensor = */ buffer_memset_tensor,
    /* .set_tensor    = */ buffer_set_tensor,
    /* .get_tensor    = */ buffer_get_tensor,
    /* .set_tensor_2d = */ nullptr,
    /* .get_tensor_2d = */ nullptr,
    /* .cpy_tensor    = */ nullptr,
    /* .clear         = */ buffer_clear,
    /* .reset         = */ nullptr,
};

// ---- buffer type -----------------------------------------------------------------------------

const char *buft_get_name(ggml_backend_buffer_type_t)
{
    return "AMXQ";
}

ggml_backend_buffer_t buft_alloc_buffer(ggml_backend_buffer_type_t buft, size_t size)
{
    const size_t bytes = (size + AMXQ_ALIGNMENT - 1) & ~(size_t)(AMXQ_ALIGNMENT - 1);
    void *data = std::aligned_alloc(AMXQ_ALIGNMENT, bytes);
    if (data == nullptr) {
        GGML_LOG_ERROR("amxq: cannot allocate a buffer of %zu bytes\n", size);
        return nullptr;
    }
    return ggml_backend_buffer_init(buft, buffer_iface, data, size);
}

size_t buft_get_alignment(ggml_backend_buffer_type_t)
{
    return AMXQ_ALIGNMENT; // packed weights must start on this boundary
}

size_t buft_get_alloc_size(ggml_backend_buffer_type_t, const struct ggml_tensor *tensor)
{
    if (is_packable(tensor))
        return packed_one(tensor) * (size_t)tensor->ne[2];
    return ggml_nbytes(tensor);
}

bool buft_is_amxq(ggml_backend_buffer_type_t buft)
{
    return buft != nullptr && buft->iface.get_name == buft_get_name;
}

} // namespace

extern "C" ggml_backend_buffer_type_t ggml_backend_amxq_buffer_type(void)
{
    // A library older than the header, or of another major version, may lack what this uses.
    const unsigned lib = amxq_version_number();
    if (lib / 10000 != AMXQ_VERSION_MAJOR || lib < AMXQ_VERSION_NUMBER)
        return nullptr;
    static struct ggml_backend_buffer_type buft = {
        /* .iface = */ {
            /* .get_name       = */ buft_get_name,
            /* .alloc_buffer   = */ buft_alloc_buffer,
            /* .get_alignment  = */ buft_get_alignment,
            /* .get_max_size   = */ nullptr,
            /* .get_alloc_size = */ buft_get_alloc_size,
            /* .is_host        = */ nullptr, // packed bytes are not ggml's layout
        },
        /* .device  = */ ggml_backend_reg_dev_get(ggml_backend_cpu_reg(), 0),
        /* .context = */ new extra_buffer_type(),
    };
    return &buft;
}

extern "C" bool ggml_backend_buft_is_amxq(ggml_backend_buffer_type_t buft)
{
    return buft_is_amxq(buft);
}
