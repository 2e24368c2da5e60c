/*
 * Small helpers shared by the test programs: a seeded PRNG, aligned buffers with guard bytes,
 * and CHECK macros that count failures and print where they happened.
 */
#ifndef AMXQ_TESTUTIL_H
#define AMXQ_TESTUTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tu_failures;

#define TU_CHECK(cond, ...)                                                                        \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            tu_failures++;                                                                         \
            fprintf(stderr, "%s:%d: FAILED: %s: ", __FILE__, __LINE__, #cond);                     \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

/* xorshift64*: fast, seedable, good enough for test data. */
static inline uint64_t tu_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static inline void tu_fill_bytes(uint64_t *s, void *p, size_t n)
{
    uint8_t *b = (uint8_t *)p;
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(tu_rand(s) >> 56);
}

/* Uniform in [-1, 1). */
static inline float tu_randf(uint64_t *s)
{
    return (float)((double)(tu_rand(s) >> 11) * (2.0 / 9007199254740992.0) - 1.0);
}

/* A 64-byte aligned buffer of `size` bytes with `guard` guard bytes on each side, all filled
 * with the pattern 0xA5 first. tu_guard_ok() says whether both guards are intact. */
typedef struct {
    uint8_t *base;
    uint8_t *p;
    size_t size, guard;
} tu_buf;

static inline tu_buf tu_buf_new(size_t size, size_t guard)
{
    tu_buf b;
    b.guard = (guard + 63) / 64 * 64;
    b.size = size;
    size_t total = (size + 2 * b.guard + 63) / 64 * 64;
    b.base = (uint8_t *)aligned_alloc(64, total);
    if (!b.base) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    memset(b.base, 0xA5, total);
    b.p = b.base + b.guard;
    return b;
}

static inline int tu_guard_ok(const tu_buf *b)
{
    for (size_t i = 0; i < b->guard; i++)
        if (b->base[i] != 0xA5 || b->p[b->size + i] != 0xA5)
            return 0;
    return 1;
}

static inline int tu_all_bytes(const void *p, size_t n, uint8_t v)
{
    const uint8_t *b = (const uint8_t *)p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != v)
            return 0;
    return 1;
}

static inline void tu_buf_free(tu_buf *b)
{
    free(b->base);
    b->base = b->p = NULL;
}

static inline int tu_finish(const char *name)
{
    if (tu_failures) {
        fprintf(stderr, "%s: %d check(s) failed\n", name, tu_failures);
        return 1;
    }
    printf("%s: all checks passed\n", name);
    return 0;
}

#endif /* AMXQ_TESTUTIL_H */
