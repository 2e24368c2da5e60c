/*
 * The tile layer the AMX kernels are written against (docs/design.md §7). Each operation compiles
 * to the real instruction (AMX-TILE / AMX-INT8 intrinsics; tile numbers must be integer constants,
 * hence macros) or, with AMXQ_TILE_EMU defined, to a call into the tile emulator (emu.h).
 *
 * GCC 12 implements _tile_loadd as an asm statement that does not tell the compiler it reads
 * memory, and _tile_loadconfig / _tile_storeconfig as asm whose memory operand covers only 8 of
 * the 64 bytes. So the real build puts a compiler barrier that names the buffer on the side where
 * memory is touched: stores into a buffer are emitted before a tile load or LDTILECFG reads it,
 * and loads from a buffer are not hoisted above a tile store or STTILECFG into it.
 *
 * That barrier (TILE_LOAD, TILE_STORE) clobbers all memory, so around it the compiler reloads
 * every value it held (pointers, scales, loop state). The kernels' hot loop uses exact forms
 * instead: TILE_LOAD_RO for memory nobody writes while the kernel runs (X, packed weights: no
 * ordering needed), and TILE_LOAD_BUF / TILE_STORE_BUF for the kernel's own buffers of 64-byte
 * rows, whose asm names the `bytes` bytes it reads or writes as a memory operand (GCC's
 * _tile_stored carries a "memory" clobber, so the real build issues TILESTORED itself). `bytes`
 * must be an integer constant. Measured with the proxy build: 0.03-0.09 of a VNNI step
 * (docs/performance.md).
 *
 * Also: the per-build name suffix (AMXQ_TSFX) so the builds link into one library. A third build,
 * AMXQ_TILE_PROXY, turns every tile operation into a no-op (below).
 */
#ifndef AMXQ_TILE_TILEOPS_H
#define AMXQ_TILE_TILEOPS_H

#include <string.h>

#include "tile/tilecfg.h"

#if defined(AMXQ_TILE_EMU)

#include "tile/emu.h"

#define AMXQ_TSFX(name)     name##_amx_emu
#define AMXQ_TSFX_STR(name) #name "_amx_emu"

#define TILE_LOADCONFIG(cfg)           amxq_temu_ldtilecfg(cfg)
#define TILE_STORECONFIG(cfg)          amxq_temu_sttilecfg(cfg)
#define TILE_RELEASE()                 amxq_temu_tilerelease()
#define TILE_ZERO(t)                   amxq_temu_tilezero(t)
#define TILE_LOAD(t, base, stride)     amxq_temu_tileloadd((t), (base), (size_t)(stride))
#define TILE_STORE(t, base, stride)    amxq_temu_tilestored((t), (base), (size_t)(stride))
#define TILE_DPBSSD(c, a, b)           amxq_temu_tdp(AMXQ_TEMU_SS, (c), (a), (b))
#define TILE_DPBSUD(c, a, b)           amxq_temu_tdp(AMXQ_TEMU_SU, (c), (a), (b))
#define TILE_DPBUSD(c, a, b)           amxq_temu_tdp(AMXQ_TEMU_US, (c), (a), (b))
#define TILE_DPBUUD(c, a, b)           amxq_temu_tdp(AMXQ_TEMU_UU, (c), (a), (b))
#define TILE_LOAD_RO(t, base, stride)  TILE_LOAD(t, base, stride)
#define TILE_LOAD_BUF(t, base, bytes)  TILE_LOAD(t, base, AMXQ_TILE_MAX_COLSB)
#define TILE_STORE_BUF(t, base, bytes) TILE_STORE(t, base, AMXQ_TILE_MAX_COLSB)

#elif defined(AMXQ_TILE_PROXY)

/*
 * The vector-side proxy (meson option amx_proxy; names end in _amx_proxy): every tile operation
 * is a no-op, so only the kernels' AVX-512 work runs, on any AVX-512 CPU (docs/performance.md).
 * Its results are meaningless; only the benchmark calls it. Tile loads and stores keep the real
 * build's compiler barrier, so the unpacked B operands are still stored and the C buffers are
 * re-read from memory as if a tile store had written them: the same vector code as the real build.
 */
#include <immintrin.h>

#define AMXQ_TSFX(name)     name##_amx_proxy
#define AMXQ_TSFX_STR(name) #name "_amx_proxy"

#define AMXQ_TILE_BARRIER(p) __asm__ __volatile__("" : : "r"(p) : "memory")

#define TILE_LOADCONFIG(cfg)          AMXQ_TILE_BARRIER(cfg)
#define TILE_STORECONFIG(cfg)         memset((cfg), 0, sizeof(struct amxq_tilecfg))
#define TILE_RELEASE()                ((void)0)
#define TILE_ZERO(t)                  ((void)0)
#define TILE_LOAD(t, base, stride)    AMXQ_TILE_BARRIER(base)
#define TILE_STORE(t, base, stride)   AMXQ_TILE_BARRIER(base)
#define TILE_DPBSSD(c, a, b)          ((void)0)
#define TILE_DPBSUD(c, a, b)          ((void)0)
#define TILE_DPBUSD(c, a, b)          ((void)0)
#define TILE_DPBUUD(c, a, b)          ((void)0)
#define TILE_LOAD_RO(t, base, stride) ((void)(base))
#define TILE_LOAD_BUF(t, base, bytes)                                                              \
    __asm__ __volatile__("" : : "m"(*(const struct { unsigned char b[bytes]; } *)(base)))
#define TILE_STORE_BUF(t, base, bytes)                                                             \
    __asm__ __volatile__("" : "=m"(*(struct { unsigned char b[bytes]; } *)(base)))

#else

#include <immintrin.h>

#define AMXQ_TSFX(name)     name##_amx
#define AMXQ_TSFX_STR(name) #name "_amx"

#define AMXQ_TILE_BARRIER(p) __asm__ __volatile__("" : : "r"(p) : "memory")

#define TILE_LOADCONFIG(cfg)                                                                       \
    do {                                                                                           \
        AMXQ_TILE_BARRIER(cfg);                                                                    \
        _tile_loadconfig(cfg);                                                                     \
    } while (0)
#define TILE_STORECONFIG(cfg)                                                                      \
    do {                                                                                           \
        _tile_storeconfig(cfg);                                                                    \
        AMXQ_TILE_BARRIER(cfg);                                                                    \
    } while (0)
#define TILE_RELEASE() _tile_release()
#define TILE_ZERO(t)   _tile_zero(t)
#define TILE_LOAD(t, base, stride)                                                                 \
    do {                                                                                           \
        AMXQ_TILE_BARRIER(base);                                                                   \
        _tile_loadd(t, (base), (stride));                                                          \
    } while (0)
#define TILE_STORE(t, base, stride)                                                                \
    do {                                                                                           \
        _tile_stored(t, (base), (stride));                                                         \
        AMXQ_TILE_BARRIER(base);                                                                   \
    } while (0)
#define TILE_DPBSSD(c, a, b)          _tile_dpbssd(c, a, b)
#define TILE_DPBSUD(c, a, b)          _tile_dpbsud(c, a, b)
#define TILE_DPBUSD(c, a, b)          _tile_dpbusd(c, a, b)
#define TILE_DPBUUD(c, a, b)          _tile_dpbuud(c, a, b)
#define TILE_LOAD_RO(t, base, stride) _tile_loadd(t, (base), (stride))
#define TILE_LOAD_BUF(t, base, bytes)                                                              \
    __asm__ __volatile__("{tileloadd\t(%1,%2,1), %%tmm" #t "|tileloadd\t%%tmm" #t ", [%1+%2*1]}"   \
                         :                                                                         \
                         : "m"(*(const struct { unsigned char b[bytes]; } *)(base)), "r"(base),    \
                           "r"((long)AMXQ_TILE_MAX_COLSB))
#define TILE_STORE_BUF(t, base, bytes)                                                             \
    __asm__ __volatile__("{tilestored\t%%tmm" #t ", (%1,%2,1)|tilestored\t[%1+%2*1], %%tmm" #t "}" \
                         : "=m"(*(struct { unsigned char b[bytes]; } *)(base))                     \
                         : "r"(base), "r"((long)AMXQ_TILE_MAX_COLSB))

#endif

/*
 * Make `want` the calling thread's live configuration: read the live one back (STTILECFG) and
 * load `want` only if it differs. Never trusts a remembered flag: the host or another library may
 * have loaded its own configuration on this thread since amxq last ran.
 */
static inline void amxq_tile_ensure_config(const struct amxq_tilecfg *want)
{
    struct amxq_tilecfg live;
    TILE_STORECONFIG(&live);
    if (memcmp(&live, want, sizeof live) != 0)
        TILE_LOADCONFIG(want);
}

#endif /* AMXQ_TILE_TILEOPS_H */
