/*
 * The tile emulator on its own (src/tile/emu.c): every operation against a naive formula on
 * random data and random shapes (all four dot-product signedness variants), the configuration
 * round trip and release, per-thread state, and every fault provoked on purpose — caught with a
 * longjmp handler, the message checked for the instruction's name, and the state checked to be
 * untouched. One case runs without a handler in a child process, which must abort with the
 * message on stderr.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/common/testutil.h"
#include "tile/emu.h"
#include "tile/tilecfg.h"

static uint64_t seed = 0x7e57711e5eedull;

/* ---- Fault catching ------------------------------------------------------------------------- */

static jmp_buf fault_jmp;
static char fault_msg[512];

static void on_fault(const char *message)
{
    snprintf(fault_msg, sizeof fault_msg, "%s", message);
    longjmp(fault_jmp, 1);
}

/* Run `stmt`, expecting a fault whose message contains `insn` and `what`. */
#define EXPECT_FAULT(insn, what, stmt)                                                             \
    do {                                                                                           \
        fault_msg[0] = 0;                                                                          \
        if (setjmp(fault_jmp) == 0) {                                                              \
            stmt;                                                                                  \
            TU_CHECK(0, "no fault from %s", #stmt);                                                \
        } else {                                                                                   \
            TU_CHECK(strstr(fault_msg, insn) != NULL && strstr(fault_msg, what) != NULL,           \
                     "fault message for %s: \"%s\" (want \"%s\", \"%s\")", #stmt, fault_msg, insn, \
                     what);                                                                        \
        }                                                                                          \
    } while (0)

/* ---- Naive model ---------------------------------------------------------------------------- */

static int32_t elem(const uint8_t *p, int is_signed)
{
    return is_signed ? (int32_t)(int8_t)*p : (int32_t)*p;
}

/* C[m][n] += sum_k A[m][k] * B[k/4][4n + k%4], int32 wrap-around. */
static void naive_dp(int kind, int rows, int kbytes, int ncols, const uint8_t *a, size_t lda,
                     const uint8_t *b, size_t ldb, int32_t *c, size_t ldc)
{
    const int as = kind == AMXQ_TEMU_SS || kind == AMXQ_TEMU_SU;
    const int bs = kind == AMXQ_TEMU_SS || kind == AMXQ_TEMU_US;
    for (int m = 0; m < rows; m++)
        for (int n = 0; n < ncols; n++) {
            uint32_t acc = (uint32_t)c[m * ldc + n];
            for (int k = 0; k < kbytes; k++)
                acc += (uint32_t)(elem(a + m * lda + k, as) *
                                  elem(b + (k / 4) * ldb + 4 * n + k % 4, bs));
            memcpy(&c[m * ldc + n], &acc, 4);
        }
}

static void cfg3(struct amxq_tilecfg *cfg, int rows, int kbytes, int ncols)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->palette = 1;
    amxq_tilecfg_set(cfg, 0, rows, 4 * ncols);       /* C */
    amxq_tilecfg_set(cfg, 1, rows, kbytes);          /* A */
    amxq_tilecfg_set(cfg, 2, kbytes / 4, 4 * ncols); /* B */
}

/* One random dot product through the emulator vs the naive model, with strided memory and
 * guard bytes around the stored result. */
static void check_dp(int kind, int rows, int kbytes, int ncols)
{
    enum { LD = 80 }; /* stride wider than any row */
    uint8_t a[16 * LD], b[16 * LD];
    int32_t c_in[16 * 20], want[16 * 20];
    uint8_t out[16 * LD + 64];
    tu_fill_bytes(&seed, a, sizeof a);
    tu_fill_bytes(&seed, b, sizeof b);
    tu_fill_bytes(&seed, c_in, sizeof c_in);
    memcpy(want, c_in, sizeof want);
    naive_dp(kind, rows, kbytes, ncols, a, LD, b, LD, want, 20);

    struct amxq_tilecfg cfg;
    cfg3(&cfg, rows, kbytes, ncols);
    amxq_temu_ldtilecfg(&cfg);
    amxq_temu_tileloadd(0, c_in, 20 * sizeof(int32_t));
    amxq_temu_tileloadd(1, a, LD);
    amxq_temu_tileloadd(2, b, LD);
    amxq_temu_tdp((enum amxq_temu_dp)kind, 0, 1, 2);
    memset(out, 0xA5, sizeof out);
    amxq_temu_tilestored(0, out, LD);

    int bad = 0;
    for (int m = 0; m < 16 && !bad; m++)
        for (int byte = 0; byte < LD; byte++) {
            const uint8_t got = out[m * LD + byte];
            if (m < rows && byte < 4 * ncols) {
                uint8_t w[4];
                memcpy(w, &want[m * 20 + byte / 4], 4);
                bad |= got != w[byte % 4];
            } else {
                bad |= got != 0xA5; /* nothing stored outside rows x colsb */
            }
        }
    TU_CHECK(!bad, "dp kind %d rows %d kbytes %d ncols %d", kind, rows, kbytes, ncols);

    /* The register beyond the shape is zero. */
    const uint8_t *reg = amxq_temu_tile_data(0);
    int dirty = 0;
    for (int m = 0; m < 16; m++)
        for (int byte = 0; byte < 64; byte++)
            if ((m >= rows || byte >= 4 * ncols) && reg[m * 64 + byte])
                dirty = 1;
    TU_CHECK(!dirty, "C register not zero beyond rows %d colsb %d", rows, 4 * ncols);
}

static void test_ops(void)
{
    /* every signedness, random shapes, including the extremes */
    for (int kind = 0; kind < 4; kind++) {
        check_dp(kind, 16, 64, 16);
        check_dp(kind, 1, 4, 1);
        check_dp(kind, 16, 32, 16); /* amxq's kernel shape */
        for (int i = 0; i < 40; i++) {
            const int rows = 1 + (int)(tu_rand(&seed) % 16);
            const int kbytes = 4 * (1 + (int)(tu_rand(&seed) % 16));
            const int ncols = 1 + (int)(tu_rand(&seed) % 16);
            check_dp(kind, rows, kbytes, ncols);
        }
    }

    /* tileloadd zeroes beyond rows / colsb; tilezero zeroes the register; loads honour stride */
    struct amxq_tilecfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    amxq_tilecfg_set(&cfg, 3, 5, 12);
    amxq_temu_ldtilecfg(&cfg);
    uint8_t src[16 * 100];
    tu_fill_bytes(&seed, src, sizeof src);
    amxq_temu_tileloadd(3, src, 100);
    const uint8_t *reg = amxq_temu_tile_data(3);
    int ok = 1;
    for (int r = 0; r < 16; r++)
        for (int c = 0; c < 64; c++)
            ok &= reg[r * 64 + c] == (r < 5 && c < 12 ? src[r * 100 + c] : 0);
    TU_CHECK(ok, "tileloadd contents");
    amxq_temu_tilezero(3);
    TU_CHECK(tu_all_bytes(reg, 1024, 0), "tilezero");

    /* configuration round trip, palette 0, release */
    struct amxq_tilecfg back, kern;
    amxq_tilecfg_make(&kern, 16, 7);
    TU_CHECK(amxq_tilecfg_check(&kern, NULL, NULL) == NULL, "kernel config valid");
    amxq_temu_ldtilecfg(&kern);
    amxq_temu_sttilecfg(&back);
    TU_CHECK(memcmp(&back, &kern, 64) == 0, "sttilecfg returns the loaded configuration");
    TU_CHECK(amxq_temu_configured(NULL) == 1, "configured");
    amxq_temu_tilerelease();
    TU_CHECK(amxq_temu_configured(NULL) == 0, "released");
    memset(&back, 0xff, sizeof back);
    amxq_temu_sttilecfg(&back);
    TU_CHECK(tu_all_bytes(&back, 64, 0), "sttilecfg after release stores zeros");
    amxq_temu_ldtilecfg(&kern);
    struct amxq_tilecfg zero;
    memset(&zero, 0, sizeof zero);
    const unsigned long n0 = amxq_temu_ldtilecfg_count();
    amxq_temu_ldtilecfg(&zero); /* palette 0: init state */
    TU_CHECK(amxq_temu_configured(NULL) == 0, "palette 0 releases");
    TU_CHECK(amxq_temu_ldtilecfg_count() == n0 + 1, "ldtilecfg counted");
}

/* ---- Faults --------------------------------------------------------------------------------- */

static void test_faults(void)
{
    amxq_temu_set_fault_handler(on_fault);
    struct amxq_tilecfg good, bad;
    amxq_tilecfg_make(&good, 16, 16);

    /* LDTILECFG checks; a faulting load leaves the previous configuration live */
    amxq_temu_ldtilecfg(&good);
    bad = good;
    bad.palette = 2;
    EXPECT_FAULT("ldtilecfg", "palette", amxq_temu_ldtilecfg(&bad));
    bad = good;
    bad.reserved[5] = 1;
    EXPECT_FAULT("ldtilecfg", "reserved", amxq_temu_ldtilecfg(&bad));
    bad = good;
    bad.rows[2] = 17;
    EXPECT_FAULT("ldtilecfg", "value 17", amxq_temu_ldtilecfg(&bad));
    bad = good;
    bad.colsb[4] = 65;
    EXPECT_FAULT("ldtilecfg", "value 65", amxq_temu_ldtilecfg(&bad));
    bad = good;
    bad.rows[8] = 1;
    bad.colsb[8] = 4;
    EXPECT_FAULT("ldtilecfg", "beyond the palette", amxq_temu_ldtilecfg(&bad));
    bad = good;
    bad.colsb[1] = 0;
    EXPECT_FAULT("ldtilecfg", "both zero", amxq_temu_ldtilecfg(&bad));
    bad = good;
    bad.start_row = 16;
    EXPECT_FAULT("ldtilecfg", "start_row", amxq_temu_ldtilecfg(&bad));
    struct amxq_tilecfg live;
    TU_CHECK(amxq_temu_configured(&live) && memcmp(&live, &good, 64) == 0,
             "a faulting ldtilecfg changed the configuration");

    uint8_t mem[16 * 64];
    memset(mem, 1, sizeof mem);

    /* use before configuration and after release */
    amxq_temu_tilerelease();
    EXPECT_FAULT("tileloadd", "not configured", amxq_temu_tileloadd(4, mem, 64));
    EXPECT_FAULT("tilezero", "not configured", amxq_temu_tilezero(0));
    EXPECT_FAULT("tilestored", "not configured", amxq_temu_tilestored(0, mem, 64));
    EXPECT_FAULT("tdpbssd", "not configured", amxq_temu_tdp(AMXQ_TEMU_SS, 0, 4, 6));

    /* tile numbers beyond the palette, unconfigured tiles (rows 0) */
    amxq_tilecfg_make(&good, 16, 0); /* A1, C1, C3 unconfigured */
    amxq_temu_ldtilecfg(&good);
    EXPECT_FAULT("tileloadd", "tmm8", amxq_temu_tileloadd(8, mem, 64));
    EXPECT_FAULT("tileloadd", "tmm5 is not configured", amxq_temu_tileloadd(5, mem, 64));
    EXPECT_FAULT("tdpbsud", "tmm1 is not configured", amxq_temu_tdp(AMXQ_TEMU_SU, 1, 5, 6));

    /* dot-product shapes */
    EXPECT_FAULT("tdpbssd", "distinct", amxq_temu_tdp(AMXQ_TEMU_SS, 0, 4, 4));
    EXPECT_FAULT("tdpbuud", "distinct", amxq_temu_tdp(AMXQ_TEMU_UU, 6, 4, 6));
    struct amxq_tilecfg s;
    memset(&s, 0, sizeof s);
    s.palette = 1;
    amxq_tilecfg_set(&s, 0, 16, 64); /* C 16 x 16 */
    amxq_tilecfg_set(&s, 1, 8, 32);  /* A with 8 rows: C rows != A rows */
    amxq_tilecfg_set(&s, 2, 8, 64);  /* B K=32 */
    amxq_tilecfg_set(&s, 3, 16, 64); /* A with K=64: A colsb/4 != B rows */
    amxq_tilecfg_set(&s, 4, 8, 32);  /* B with 8 columns: B colsb != C colsb */
    amxq_tilecfg_set(&s, 5, 16, 30); /* colsb not a multiple of 4 */
    amxq_tilecfg_set(&s, 6, 16, 32); /* A 16 x 32 */
    amxq_temu_ldtilecfg(&s);
    EXPECT_FAULT("tdpbssd", "C rows != A rows", amxq_temu_tdp(AMXQ_TEMU_SS, 0, 1, 2));
    EXPECT_FAULT("tdpbusd", "A bytes per row / 4 != B rows", amxq_temu_tdp(AMXQ_TEMU_US, 0, 3, 2));
    EXPECT_FAULT("tdpbsud", "B bytes per row != C bytes per row",
                 amxq_temu_tdp(AMXQ_TEMU_SU, 0, 6, 4));
    EXPECT_FAULT("tdpbuud", "multiple of 4", amxq_temu_tdp(AMXQ_TEMU_UU, 0, 5, 2));
    /* and the well-formed one does not fault */
    fault_msg[0] = 0;
    if (setjmp(fault_jmp) == 0)
        amxq_temu_tdp(AMXQ_TEMU_SS, 0, 6, 2);
    TU_CHECK(fault_msg[0] == 0, "valid tdpbssd faulted: %s", fault_msg);

    /* a faulting instruction has no effect when the handler returns */
    amxq_temu_tileloadd(0, mem, 64);
    amxq_temu_set_fault_handler(NULL);
    amxq_temu_tilerelease();
}

/* Default handler: message on stderr, then abort(). */
static void test_default_abort(void)
{
    int fds[2];
    if (pipe(fds) != 0) {
        TU_CHECK(0, "pipe");
        return;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        amxq_temu_set_fault_handler(NULL);
        amxq_temu_tilerelease();
        amxq_temu_tilezero(2); /* faults: not configured */
        _exit(0);
    }
    close(fds[1]);
    char buf[512] = {0};
    size_t got = 0;
    ssize_t r;
    while (got < sizeof buf - 1 && (r = read(fds[0], buf + got, sizeof buf - 1 - got)) > 0)
        got += (size_t)r;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    TU_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "child status %d", status);
    TU_CHECK(strstr(buf, "tilezero") && strstr(buf, "not configured"), "stderr: %s", buf);
}

/* ---- Per-thread state ----------------------------------------------------------------------- */

static void *other_thread(void *arg)
{
    int *seen = (int *)arg;
    seen[0] = amxq_temu_configured(NULL);
    struct amxq_tilecfg c;
    amxq_tilecfg_make(&c, 3, 0);
    amxq_temu_ldtilecfg(&c);
    seen[1] = amxq_temu_configured(NULL);
    return NULL;
}

static void test_threads(void)
{
    struct amxq_tilecfg c, live;
    amxq_tilecfg_make(&c, 16, 16);
    amxq_temu_ldtilecfg(&c);
    int seen[2] = {-1, -1};
    pthread_t th;
    if (pthread_create(&th, NULL, other_thread, seen) != 0) {
        TU_CHECK(0, "pthread_create");
        return;
    }
    pthread_join(th, NULL);
    TU_CHECK(seen[0] == 0 && seen[1] == 1, "a new thread starts unconfigured (%d, %d)", seen[0],
             seen[1]);
    TU_CHECK(amxq_temu_configured(&live) && memcmp(&live, &c, 64) == 0,
             "another thread's ldtilecfg changed this thread's configuration");
    amxq_temu_tilerelease();
}

int main(void)
{
    test_ops();
    test_faults();
    test_default_abort();
    test_threads();
    return tu_finish("tile_emu");
}
