/*
 * The tile emulator (see emu.h): per-thread tile registers and configuration, and the AMX-TILE /
 * AMX-INT8 instructions amxq uses, with the hardware's fault checks.
 *
 * Semantics modelled (Intel SDM vol. 2, LDTILECFG, TILELOADD, TILESTORED, TILEZERO, TDPB*D,
 * TILERELEASE):
 *   - LDTILECFG with palette 0 returns to the init state; with palette 1 it loads the shapes and
 *     zeroes every tile. STTILECFG stores 64 zero bytes when tiles are not configured.
 *   - Loads write `rows` rows of `colsb` bytes and zero the rest of the register; dot products
 *     accumulate into int32 with wrap-around (no saturation) and zero the rest of the register.
 *   - start_row is honoured by loads and stores and reset to 0 by every tile instruction.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tile/emu.h"

struct temu_state {
    int configured;
    struct amxq_tilecfg cfg;
    unsigned long ldtilecfg_count;
    uint8_t tile[AMXQ_TILE_COUNT][AMXQ_TILE_MAX_ROWS][AMXQ_TILE_MAX_COLSB];
};

/* Models per-thread hardware state: not scratch, it is the registers. */
static _Thread_local struct temu_state st;
static amxq_temu_fault_fn fault_handler;

void amxq_temu_set_fault_handler(amxq_temu_fault_fn fn)
{
    fault_handler = fn;
}

#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static void
fault(const char *fmt, ...)
{
    char msg[256];
    int n = snprintf(msg, sizeof msg, "amxq tile emulator: fault: ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    va_end(ap);
    if (fault_handler) {
        fault_handler(msg);
        return;
    }
    fprintf(stderr, "%s\n", msg);
    fflush(stderr);
    abort();
}

static void reset(void)
{
    memset(&st.cfg, 0, sizeof st.cfg);
    memset(st.tile, 0, sizeof st.tile);
    st.configured = 0;
}

void amxq_temu_ldtilecfg(const void *mem)
{
    struct amxq_tilecfg c;
    memcpy(&c, mem, sizeof c);
    st.ldtilecfg_count++;
    int field;
    unsigned value;
    const char *why = amxq_tilecfg_check(&c, &field, &value);
    if (why) {
        fault("ldtilecfg: %s (byte %d of the configuration, value %u)", why, field, value);
        return;
    }
    reset();
    if (c.palette == 0)
        return; /* palette 0: back to the init state */
    st.cfg = c;
    st.configured = 1;
}

void amxq_temu_sttilecfg(void *mem)
{
    if (!st.configured)
        memset(mem, 0, sizeof st.cfg);
    else
        memcpy(mem, &st.cfg, sizeof st.cfg);
}

void amxq_temu_tilerelease(void)
{
    reset();
}

/* Common checks: configured, tile number in the palette, tile configured. Returns 0 on fault. */
static int tile_ok(const char *insn, const char *role, int t)
{
    if (!st.configured) {
        fault("%s: tiles are not configured (no LDTILECFG, or released), tmm%d used", insn, t);
        return 0;
    }
    if (t < 0 || t >= AMXQ_TILE_COUNT) {
        fault("%s: %s tile tmm%d beyond the palette's %d tiles", insn, role, t, AMXQ_TILE_COUNT);
        return 0;
    }
    if (st.cfg.rows[t] == 0 || st.cfg.colsb[t] == 0) {
        fault("%s: %s tile tmm%d is not configured (rows %u, bytes per row %u)", insn, role, t,
              (unsigned)st.cfg.rows[t], (unsigned)st.cfg.colsb[t]);
        return 0;
    }
    return 1;
}

void amxq_temu_tilezero(int t)
{
    if (!tile_ok("tilezero", "destination", t))
        return;
    memset(st.tile[t], 0, sizeof st.tile[t]);
    st.cfg.start_row = 0;
}

void amxq_temu_tileloadd(int t, const void *base, size_t stride)
{
    if (!tile_ok("tileloadd", "destination", t))
        return;
    const unsigned rows = st.cfg.rows[t], colsb = st.cfg.colsb[t];
    const uint8_t *p = (const uint8_t *)base;
    for (unsigned r = 0; r < AMXQ_TILE_MAX_ROWS; r++) {
        if (r >= rows) {
            memset(st.tile[t][r], 0, AMXQ_TILE_MAX_COLSB);
            continue;
        }
        if (r >= st.cfg.start_row)
            memcpy(st.tile[t][r], p + (size_t)r * stride, colsb);
        memset(st.tile[t][r] + colsb, 0, AMXQ_TILE_MAX_COLSB - colsb);
    }
    st.cfg.start_row = 0;
}

void amxq_temu_tilestored(int t, void *base, size_t stride)
{
    if (!tile_ok("tilestored", "source", t))
        return;
    const unsigned rows = st.cfg.rows[t], colsb = st.cfg.colsb[t];
    uint8_t *p = (uint8_t *)base;
    for (unsigned r = st.cfg.start_row; r < rows; r++)
        memcpy(p + (size_t)r * stride, st.tile[t][r], colsb);
    st.cfg.start_row = 0;
}

static const char *dp_name(enum amxq_temu_dp kind)
{
    switch (kind) {
    case AMXQ_TEMU_SS:
        return "tdpbssd";
    case AMXQ_TEMU_SU:
        return "tdpbsud";
    case AMXQ_TEMU_US:
        return "tdpbusd";
    case AMXQ_TEMU_UU:
    default:
        return "tdpbuud";
    }
}

void amxq_temu_tdp(enum amxq_temu_dp kind, int c, int a, int b)
{
    const char *insn = dp_name(kind);
    if (!tile_ok(insn, "destination", c) || !tile_ok(insn, "A source", a) ||
        !tile_ok(insn, "B source", b))
        return;
    if (c == a || c == b || a == b) {
        fault("%s tmm%d, tmm%d, tmm%d: the three tiles must be distinct", insn, c, a, b);
        return;
    }
    const unsigned c_rows = st.cfg.rows[c], c_colsb = st.cfg.colsb[c];
    const unsigned a_rows = st.cfg.rows[a], a_colsb = st.cfg.colsb[a];
    const unsigned b_rows = st.cfg.rows[b], b_colsb = st.cfg.colsb[b];
    const char *why = NULL;
    unsigned v1 = 0, v2 = 0;
    if (c_colsb % 4 || a_colsb % 4 || b_colsb % 4) {
        why = "bytes per row not a multiple of 4 (C, A, B)";
        v1 = c_colsb % 4 ? c_colsb : a_colsb % 4 ? a_colsb : b_colsb;
    } else if (c_rows != a_rows) {
        why = "C rows != A rows";
        v1 = c_rows;
        v2 = a_rows;
    } else if (a_colsb / 4 != b_rows) {
        why = "A bytes per row / 4 != B rows";
        v1 = a_colsb / 4;
        v2 = b_rows;
    } else if (b_colsb != c_colsb) {
        why = "B bytes per row != C bytes per row";
        v1 = b_colsb;
        v2 = c_colsb;
    } else if (c_colsb > 4 * AMXQ_TMUL_MAXN) {
        why = "C columns beyond tmul_maxn";
        v1 = c_colsb / 4;
        v2 = AMXQ_TMUL_MAXN;
    } else if (b_rows > AMXQ_TMUL_MAXK) {
        why = "B rows beyond tmul_maxk";
        v1 = b_rows;
        v2 = AMXQ_TMUL_MAXK;
    }
    if (why) {
        fault("%s tmm%d, tmm%d, tmm%d: %s (%u vs %u)", insn, c, a, b, why, v1, v2);
        return;
    }

    const int a_signed = kind == AMXQ_TEMU_SS || kind == AMXQ_TEMU_SU;
    const int b_signed = kind == AMXQ_TEMU_SS || kind == AMXQ_TEMU_US;
    const unsigned kq = a_colsb / 4, nn = c_colsb / 4;
    /* B widened and transposed once, so the inner loop runs over contiguous columns. */
    int32_t bw[AMXQ_TMUL_MAXK][4][AMXQ_TMUL_MAXN];
    for (unsigned k = 0; k < kq; k++)
        for (unsigned i = 0; i < 4; i++)
            for (unsigned n = 0; n < nn; n++) {
                const uint8_t byte = st.tile[b][k][4 * n + i];
                bw[k][i][n] = b_signed ? (int32_t)(int8_t)byte : (int32_t)byte;
            }
    for (unsigned m = 0; m < c_rows; m++) {
        uint32_t acc[AMXQ_TMUL_MAXN];
        memcpy(acc, st.tile[c][m], sizeof acc);
        for (unsigned k = 0; k < kq; k++)
            for (unsigned i = 0; i < 4; i++) {
                const uint8_t byte = st.tile[a][m][4 * k + i];
                const int32_t av = a_signed ? (int32_t)(int8_t)byte : (int32_t)byte;
                for (unsigned n = 0; n < nn; n++) /* wraps, as the hardware does */
                    acc[n] += (uint32_t)(av * bw[k][i][n]);
            }
        memset(st.tile[c][m], 0, AMXQ_TILE_MAX_COLSB);
        memcpy(st.tile[c][m], acc, 4 * (size_t)nn);
    }
    for (unsigned m = c_rows; m < AMXQ_TILE_MAX_ROWS; m++)
        memset(st.tile[c][m], 0, AMXQ_TILE_MAX_COLSB);
    st.cfg.start_row = 0;
}

int amxq_temu_configured(struct amxq_tilecfg *cfg)
{
    if (st.configured && cfg)
        *cfg = st.cfg;
    return st.configured;
}

unsigned long amxq_temu_ldtilecfg_count(void)
{
    return st.ldtilecfg_count;
}

const uint8_t *amxq_temu_tile_data(int t)
{
    return &st.tile[t][0][0];
}
