/*
 * A context job other than the dense product: how src/moe.c (amxq_ctx_matmul_id) runs on the pool
 * of an amxq_ctx without knowing its insides. The pool keeps its life cycle (call lock, workspace,
 * the start and end barriers, kept tiles); the job brings its own work and its own middle barrier.
 */
#ifndef AMXQ_CTX_JOB_H
#define AMXQ_CTX_JOB_H

#include "internal.h"

/*
 * One thread's part (ith of nth) of a job; every thread of the product calls it once. `ws` is the
 * job's workspace. Returns a bit mask (bit i: amxq_isa i) of the tables whose tile state this
 * thread left configured on purpose (AMXQ_KEEP_TILES), so the pool releases it when the context
 * is destroyed; 0 when nothing was kept.
 */
typedef unsigned amxq_ctx_job_fn(void *arg, void *ws, amxq_ctx *ctx, int ith, int nth);

/*
 * Run `fn` on every thread of `ctx` (the caller is thread 0), or on the caller alone when `alone`
 * is nonzero (nth = 1, no barrier). The workspace is `caller_ws` if not NULL, else the context's
 * own, grown to `ws_bytes` (AMXQ_ERR_NOMEM if it cannot grow; nothing ran then). Calls on one
 * context are serialised with its dense products. All argument checks must be done before: fn
 * cannot fail.
 */
amxq_status amxq_ctx_job_run(amxq_ctx *ctx, size_t ws_bytes, void *caller_ws, int alone,
                             amxq_ctx_job_fn *fn, void *arg);

/* The pool's barrier, for a job's own meeting points (a no-op when nth == 1). */
void amxq_ctx_job_sync(amxq_ctx *ctx, int nth);

#endif /* AMXQ_CTX_JOB_H */
