/*
 * NUMA placement of packed weights: node-bound, interleaved and mirrored memory, and the queries
 * (node count, node of a page, node of a CPU).
 *
 * With libnuma (AMXQ_HAVE_NUMA) and a kernel that supports NUMA, memory comes from mmap and is
 * placed with mbind(); a buffer's node is read back with move_pages(). From libnuma proper only
 * numa_available() and numa_max_node() are used: its allocation and bitmask helpers print to
 * stderr or exit() on failure, which a library must not do. CPU-to-node maps are read from sysfs
 * once. Without libnuma, without kernel support, or on a one-node machine, every call works on
 * plain aligned memory (amxq_alloc_aligned) and says so (`placed` = 0).
 *
 * Every allocation starts with a 64-byte header just before the pointer handed out, recording how
 * to free it, so amxq_packed_free() needs no size and the pointer stays 64-byte aligned.
 */
#define _GNU_SOURCE /* sched_getcpu, MAP_ANONYMOUS */

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "amxq_config.h"
#include "internal.h"
#include "parallel/parallel.h"

#if AMXQ_HAVE_NUMA
#include <numa.h>
#include <numaif.h>
#include <sys/mman.h>
#endif

#define MAX_NODES  1024
#define MAX_CPUS   4096
#define MASK_LONGS (MAX_NODES / (8 * sizeof(unsigned long)))

/* ---- What the system offers, read once ---------------------------------------------------- */

static pthread_once_t numa_once = PTHREAD_ONCE_INIT;
static int sys_numa;             /* libnuma works and the kernel has NUMA */
static int sys_nodes;            /* node ids 0 .. sys_nodes-1 (1 without libnuma) */
static short cpu_node[MAX_CPUS]; /* node of each CPU, -1 unknown */
static atomic_int force_numa;

#if AMXQ_HAVE_NUMA
/* Parse a sysfs CPU list ("0-3,8,10-11") into cpu_node[]: its CPUs are on `node`. */
static void parse_cpulist(const char *s, int node)
{
    while (*s) {
        char *end;
        long a = strtol(s, &end, 10), b = a;
        if (end == s)
            break;
        s = end;
        if (*s == '-') {
            b = strtol(s + 1, &end, 10);
            s = end;
        }
        for (long c = a; c <= b && c < MAX_CPUS; c++)
            if (c >= 0)
                cpu_node[c] = (short)node;
        if (*s == ',')
            s++;
        else
            break;
    }
}

#endif

static void numa_init(void)
{
    for (int c = 0; c < MAX_CPUS; c++)
        cpu_node[c] = -1;
    sys_nodes = 1;
#if AMXQ_HAVE_NUMA
    if (numa_available() < 0)
        return;
    int max = numa_max_node();
    if (max < 0 || max >= MAX_NODES)
        return;
    sys_numa = 1;
    sys_nodes = max + 1;
    for (int node = 0; node < sys_nodes; node++) {
        char path[64], buf[4096];
        snprintf(path, sizeof path, "/sys/devices/system/node/node%d/cpulist", node);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        if (fgets(buf, sizeof buf, f) != NULL)
            parse_cpulist(buf, node);
        fclose(f);
    }
#endif
}

/* Whether calls take the libnuma path: a NUMA system with more than one node (or forced). */
static int use_numa(void)
{
    pthread_once(&numa_once, numa_init);
    return sys_numa && (sys_nodes > 1 || force_numa);
}

void amxq_numa_force_libnuma(int on)
{
    force_numa = on;
}

int amxq_numa_node_count(void)
{
    pthread_once(&numa_once, numa_init);
    return sys_nodes;
}

int amxq_numa_node_of_cpu(int cpu)
{
    pthread_once(&numa_once, numa_init);
    if (!sys_numa || cpu < 0 || cpu >= MAX_CPUS)
        return -1;
    return cpu_node[cpu];
}

int amxq_numa_current_node(void)
{
    if (!use_numa())
        return 0;
    const int node = amxq_numa_node_of_cpu(sched_getcpu());
    return node >= 0 ? node : 0;
}

int amxq_numa_node_cpus(int node, int *cpus, int max)
{
    int n = 0;
    if (!use_numa())
        return 0;
    for (int c = 0; c < MAX_CPUS && n < max; c++)
        if (cpu_node[c] == node)
            cpus[n++] = c;
    return n;
}

/* ---- Allocation --------------------------------------------------------------------------- */

#define HDR_BYTES 64
#define HDR_MAGIC 0x616d78716e756d61ull /* "amxqnuma" */

typedef struct alloc_hdr {
    uint64_t magic;
    uint64_t mapped; /* 1: mmap'd, map_bytes at base; 0: amxq_alloc_aligned at base */
    size_t map_bytes;
    void *base;
} alloc_hdr;

static void *finish(void *base, int mapped, size_t map_bytes)
{
    alloc_hdr h = {HDR_MAGIC, (uint64_t)mapped, map_bytes, base};
    memcpy(base, &h, sizeof h);
    return (uint8_t *)base + HDR_BYTES;
}

static amxq_status alloc_plain(size_t size, void **out)
{
    void *base = amxq_alloc_aligned(size + HDR_BYTES, AMXQ_ALIGNMENT);
    AMXQ_CHECK(base != NULL, AMXQ_ERR_NOMEM);
    *out = finish(base, 0, 0);
    return AMXQ_OK;
}

#if AMXQ_HAVE_NUMA
/* mmap `size` + header bytes and apply `mode` over `mask`. */
static amxq_status alloc_mapped(size_t size, int mode, const unsigned long *mask, void **out)
{
    /* Every allocation passes the library's fault-injection point (src/alloc.h), mmap'd ones
     * too, so the tests can fail each in turn: take a token allocation first. */
    void *token = amxq_alloc_aligned(1, AMXQ_ALIGNMENT);
    AMXQ_CHECK(token != NULL, AMXQ_ERR_NOMEM);
    amxq_free_aligned(token);

    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    AMXQ_CHECK(size <= SIZE_MAX - HDR_BYTES - page, AMXQ_ERR_NOMEM);
    const size_t bytes = AMXQ_ROUND_UP(size + HDR_BYTES, page);
    void *base = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    AMXQ_CHECK(base != MAP_FAILED, AMXQ_ERR_NOMEM);
    if (mbind(base, bytes, mode, mask, MAX_NODES + 1, 0) != 0) {
        munmap(base, bytes);
        AMXQ_PAR_FAIL(AMXQ_ERR_NUMA, "mbind");
    }
    *out = finish(base, 1, bytes);
    return AMXQ_OK;
}
#endif

amxq_status amxq_packed_alloc(size_t size, amxq_placement placement, int node, void **out,
                              int *placed)
{
    AMXQ_CHECK(out != NULL, AMXQ_ERR_NULL);
    *out = NULL;
    if (placed)
        *placed = 0;
    AMXQ_CHECK(size > 0, AMXQ_ERR_ARG);
    AMXQ_CHECK(placement == AMXQ_PLACE_DEFAULT || placement == AMXQ_PLACE_NODE ||
                   placement == AMXQ_PLACE_INTERLEAVE,
               AMXQ_ERR_ARG);
    if (placement == AMXQ_PLACE_NODE) {
        AMXQ_CHECK(node >= 0, AMXQ_ERR_ARG);
        AMXQ_CHECK(node < amxq_numa_node_count(), AMXQ_ERR_NUMA);
    }
    AMXQ_CHECK(size <= SIZE_MAX - 2 * HDR_BYTES, AMXQ_ERR_NOMEM);
    if (placement == AMXQ_PLACE_DEFAULT || !use_numa())
        return alloc_plain(size, out);
#if AMXQ_HAVE_NUMA
    unsigned long mask[MASK_LONGS];
    memset(mask, 0, sizeof mask);
    int mode;
    if (placement == AMXQ_PLACE_NODE) {
        mask[(unsigned)node / (8 * sizeof(unsigned long))] |=
            1ul << ((unsigned)node % (8 * sizeof(unsigned long)));
        mode = MPOL_BIND;
    } else {
        AMXQ_CHECK(get_mempolicy(NULL, mask, MAX_NODES + 1, NULL, MPOL_F_MEMS_ALLOWED) == 0,
                   AMXQ_ERR_NUMA);
        mode = MPOL_INTERLEAVE;
    }
    AMXQ_TRY(alloc_mapped(size, mode, mask, out));
    if (placed)
        *placed = 1;
    return AMXQ_OK;
#else
    return alloc_plain(size, out); /* not reached: use_numa() is 0 without libnuma */
#endif
}

void amxq_packed_free(void *p)
{
    if (p == NULL)
        return;
    alloc_hdr h;
    memcpy(&h, (uint8_t *)p - HDR_BYTES, sizeof h);
#if AMXQ_HAVE_NUMA
    if (h.mapped) {
        munmap(h.base, h.map_bytes);
        return;
    }
#endif
    amxq_free_aligned(h.base);
}

amxq_status amxq_numa_node_of(const void *p, int *node)
{
    AMXQ_CHECK(p != NULL && node != NULL, AMXQ_ERR_NULL);
    if (!use_numa()) {
        *node = 0;
        return AMXQ_OK;
    }
#if AMXQ_HAVE_NUMA
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    void *pages[1] = {(void *)((uintptr_t)p & ~(page - 1))};
    int status[1] = {-1};
    AMXQ_CHECK(move_pages(0, 1, pages, NULL, status, 0) == 0, AMXQ_ERR_NUMA);
    AMXQ_CHECK(status[0] >= 0, AMXQ_ERR_NUMA);
    *node = status[0];
    return AMXQ_OK;
#else
    *node = 0;
    return AMXQ_OK;
#endif
}

/* ---- Mirrors -------------------------------------------------------------------------------- */

struct amxq_mirror {
    int n_nodes; /* entries in copy[] */
    int first;   /* index of the first copy that exists */
    void **copy; /* copy[node]: that node's copy, or NULL (node not usable by this process) */
};

void amxq_mirror_destroy(amxq_mirror *mirror)
{
    if (mirror == NULL)
        return;
    for (int i = 0; i < mirror->n_nodes; i++)
        amxq_packed_free(mirror->copy[i]);
    amxq_free_aligned(mirror->copy);
    amxq_free_aligned(mirror);
}

amxq_status amxq_mirror_create(const void *packed, amxq_mirror **out, int *placed)
{
    AMXQ_CHECK(packed != NULL && out != NULL, AMXQ_ERR_NULL);
    *out = NULL;
    if (placed)
        *placed = 0;
    amxq_layout lo;
    AMXQ_TRY(amxq_layout_read(&lo, packed, SIZE_MAX));

    const int numa = use_numa();
    const int nodes = numa ? amxq_numa_node_count() : 1;
    /* Nodes this process may allocate on; without NUMA just "node 0". */
    unsigned long allowed[MASK_LONGS];
    memset(allowed, 0, sizeof allowed);
    allowed[0] = 1;
#if AMXQ_HAVE_NUMA
    if (numa)
        AMXQ_CHECK(get_mempolicy(NULL, allowed, MAX_NODES + 1, NULL, MPOL_F_MEMS_ALLOWED) == 0,
                   AMXQ_ERR_NUMA);
#endif

    amxq_mirror *mi = amxq_alloc_aligned(sizeof *mi, AMXQ_ALIGNMENT);
    AMXQ_CHECK(mi != NULL, AMXQ_ERR_NOMEM);
    mi->n_nodes = nodes;
    mi->first = -1;
    mi->copy = amxq_alloc_aligned(sizeof(void *) * (size_t)nodes, AMXQ_ALIGNMENT);
    if (mi->copy == NULL) {
        amxq_free_aligned(mi);
        AMXQ_PAR_FAIL(AMXQ_ERR_NOMEM, "mirror copies");
    }
    for (int i = 0; i < nodes; i++)
        mi->copy[i] = NULL;

    const size_t bits = 8 * sizeof(unsigned long);
    for (int node = 0; node < nodes; node++) {
        if (!(allowed[(size_t)node / bits] & (1ul << ((size_t)node % bits))))
            continue;
        amxq_status st =
            numa ? amxq_packed_alloc(lo.total_bytes, AMXQ_PLACE_NODE, node, &mi->copy[node], NULL)
                 : amxq_packed_alloc(lo.total_bytes, AMXQ_PLACE_DEFAULT, 0, &mi->copy[node], NULL);
        if (st != AMXQ_OK) {
            amxq_mirror_destroy(mi);
            return st;
        }
        memcpy(mi->copy[node], packed, lo.total_bytes); /* first touch: on the bound node */
        if (mi->first < 0)
            mi->first = node;
    }
    if (mi->first < 0) {
        amxq_mirror_destroy(mi);
        AMXQ_PAR_FAIL(AMXQ_ERR_NUMA, "no usable node");
    }
    if (placed)
        *placed = numa;
    *out = mi;
    return AMXQ_OK;
}

const void *amxq_mirror_get(const amxq_mirror *mirror, int node)
{
    if (mirror == NULL)
        return NULL;
    if (node >= 0 && node < mirror->n_nodes && mirror->copy[node] != NULL)
        return mirror->copy[node];
    return mirror->copy[mirror->first];
}

const void *amxq_mirror_local(const amxq_mirror *mirror)
{
    return amxq_mirror_get(mirror, amxq_numa_current_node());
}
