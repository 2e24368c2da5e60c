/*
 * amxq_bench.cpp — the Google Benchmark harness: the one place amxq's performance is measured.
 *
 * Families (names are what --benchmark_filter matches):
 *   matmul/<TYPE>/<isa>/M:<m>/N:<n>/K:<k>/T:<t>/<hot|cold>
 *                      amxq_matmul_ex() with params.isa forced (T = 1), or amxq_ctx_matmul() on a
 *                      pool of T threads (the calling thread included)
 *   pack/<TYPE>/N:<n>/K:<k>                            amxq_pack() of ggml rows
 *   quantize/<TYPE>/M:<rows>/K:<k>                     amxq_quantize_row() over `rows` rows
 *   matmul_id/<TYPE>/<isa>/<up|down>/N:<n>/K:<k>/tok:<t>/T:<t>/<hot|cold>
 *                      amxq_matmul_id() (T = 1) or amxq_ctx_matmul_id() on Qwen3-30B-A3B's
 *                      expert shapes, 128 experts, top-8; counters also dense_TOPS, ratio_dense
 *   amx_proxy/<TYPE>/M:<m>/N:<n>/K:<k>   (built with -Damx_proxy=true) the AMX kernels' vector
 *                      side (tile operations no-ops) against the VNNI gemm, same quantized X;
 *                      counters vec_ns_step, vnni_ns_step, ratio (bench/proxy.h)
 *
 * Every case reports its counters from its own wall-clock time around the timed loop (the same
 * span Google Benchmark times), as plain numbers so the console and JSON agree:
 *   TOPS         int8 tera-ops a second, 2*M*N*K / time (matmul)
 *   GBps         matmul: packed weight bytes / time; pack: ggml input bytes / time;
 *                quantize: f32 input bytes / time
 *   pct_compute  TOPS as a percent of T x the one-core compute probe of that ISA (absent without
 *                a probe)
 *   pct_mem      GBps as a percent of the streaming-read probe with the case's thread count
 *   pct_roof     max(pct_compute, pct_mem): the percent of the roofline bound min(peak compute,
 *                intensity * bandwidth) this case reaches (absent without a compute probe)
 * The probes run once at start-up (bench/probes.h) and are printed in the benchmark context. ISA
 * probes run only where amxq_cpu_info says the CPU and OS have the ISA; elsewhere they report
 * "n/a" and are never executed (they would raise SIGILL).
 *
 * Cold weights: a case marked "cold" rotates over enough copies of the packed weight to exceed
 * twice the last-level cache, so small-M products stream weights from memory as they do in token
 * generation. Options are read from --amxq_* flags (removed before Google Benchmark parses argv)
 * or AMXQ_BENCH_* environment variables; --amxq_help lists them.
 *
 * Buffers (ggml rows, packed copies, activations, outputs, workspace) are cached across cases and
 * grown as needed, so a case's set-up is not repeated each time Google Benchmark re-runs it.
 */
#include <benchmark/benchmark.h>

#include "amxq.h"
#include "probes.h"
#include "proxy.h"

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <unistd.h>

namespace
{

/* ---- options ----------------------------------------------------------------------------------
 */

enum class Cold { Auto, On, Off };

struct Shape {
    int64_t n, k;
};

struct Options {
    std::vector<Shape> shapes;
    std::vector<int64_t> m_list; /* empty: the per-ISA default */
    std::vector<amxq_isa> isas;  /* empty: every runnable non-emulated ISA */
    std::vector<int64_t> quant_rows{1, 256};
    std::vector<int> threads{1}; /* 1: amxq_matmul_ex(); more: amxq_ctx_matmul() */
    bool emu = false;
    bool keep_tiles = false;
    bool probes = true;
    Cold cold = Cold::Auto;
    int64_t cold_max_m = 8;
    double llc_mib = 0; /* 0: detect */
};

Options g_opt;

/* The model shapes the issue names (N x K): Llama-2/3 attention 4096x4096, Llama-3-8B / Mistral
 * FFN up/gate 14336x4096 and down 4096x14336, Llama-2-7B FFN up/gate 11008x4096 and down. */
const Shape kModelShapes[] = {
    {4096, 4096}, {14336, 4096}, {4096, 14336}, {11008, 4096}, {4096, 11008}};

const int64_t kFullM[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
/* The portable reference runs at about 1 GMAC/s, orders of magnitude below the vector kernels: by
 * default it stops at M = 128 so a default run where it is the only kernel takes a few minutes. */
const int64_t kScalarM[] = {1, 2, 4, 8, 16, 32, 64, 128};
/* The emulators are test vehicles, slower still. */
const int64_t kEmuM[] = {1, 8};

const amxq_type kTypes[] = {AMXQ_TYPE_Q4_0, AMXQ_TYPE_Q4_1,  AMXQ_TYPE_Q8_0,   AMXQ_TYPE_Q4_K,
                            AMXQ_TYPE_Q6_K, AMXQ_TYPE_Q5_K,  AMXQ_TYPE_IQ4_XS, AMXQ_TYPE_Q5_0,
                            AMXQ_TYPE_Q5_1, AMXQ_TYPE_IQ4_NL};

const char *type_label(amxq_type t)
{
    switch (t) {
    case AMXQ_TYPE_Q4_0:
        return "Q4_0";
    case AMXQ_TYPE_Q4_1:
        return "Q4_1";
    case AMXQ_TYPE_Q8_0:
        return "Q8_0";
    case AMXQ_TYPE_Q4_K:
        return "Q4_K";
    case AMXQ_TYPE_Q6_K:
        return "Q6_K";
    case AMXQ_TYPE_Q5_K:
        return "Q5_K";
    case AMXQ_TYPE_IQ4_XS:
        return "IQ4_XS";
    case AMXQ_TYPE_Q5_0:
        return "Q5_0";
    case AMXQ_TYPE_Q5_1:
        return "Q5_1";
    case AMXQ_TYPE_IQ4_NL:
        return "IQ4_NL";
    }
    return "?";
}

[[noreturn]] void usage_error(const std::string &msg)
{
    std::fprintf(stderr, "amxq_bench: %s (see --amxq_help)\n", msg.c_str());
    std::exit(2);
}

std::vector<std::string> split(const std::string &s, char sep)
{
    std::vector<std::string> out;
    size_t start = 0;
    while (start <= s.size()) {
        size_t end = s.find(sep, start);
        if (end == std::string::npos)
            end = s.size();
        if (end > start)
            out.push_back(s.substr(start, end - start));
        start = end + 1;
    }
    return out;
}

int64_t parse_int(const std::string &s, const char *what)
{
    char *end = nullptr;
    long long v = std::strtoll(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || v <= 0)
        usage_error(std::string("bad ") + what + " '" + s + "'");
    return (int64_t)v;
}

std::vector<Shape> parse_shapes(const std::string &s)
{
    std::vector<Shape> out;
    if (s == "all") {
        out.assign(std::begin(kModelShapes), std::end(kModelShapes));
        return out;
    }
    for (const std::string &item : split(s, ',')) {
        size_t x = item.find('x');
        if (x == std::string::npos)
            usage_error("shape '" + item + "' is not NxK");
        out.push_back({parse_int(item.substr(0, x), "N"), parse_int(item.substr(x + 1), "K")});
    }
    if (out.empty())
        usage_error("empty shape list");
    return out;
}

std::vector<int64_t> parse_ints(const std::string &s, const char *what)
{
    std::vector<int64_t> out;
    for (const std::string &item : split(s, ','))
        out.push_back(parse_int(item, what));
    if (out.empty())
        usage_error(std::string("empty ") + what + " list");
    return out;
}

bool parse_bool(const std::string &s)
{
    if (s.empty() || s == "1" || s == "on" || s == "true" || s == "yes")
        return true;
    if (s == "0" || s == "off" || s == "false" || s == "no")
        return false;
    usage_error("bad boolean '" + s + "'");
}

void print_help()
{
    std::printf(
        "amxq_bench options (flag, or environment variable; flags win). Google Benchmark's own\n"
        "flags (--benchmark_filter, --benchmark_out, --benchmark_min_time, ...) work as usual.\n"
        "  --amxq_shapes=NxK,...|all   AMXQ_BENCH_SHAPES  weight shapes (default 4096x4096; all =\n"
        "                                                 4096x4096,14336x4096,4096x14336,\n"
        "                                                 11008x4096,4096x11008)\n"
        "  --amxq_m=1,8,...            AMXQ_BENCH_M       rows of X (default amx/avx512: 1..1024\n"
        "                                                 in powers of 2; scalar: 1..128; "
        "emulators:\n"
        "                                                 1,8)\n"
        "  --amxq_isa=amx,avx512,...   AMXQ_BENCH_ISA     kernel families (default: every one "
        "this\n"
        "                                                 CPU runs, emulators excluded)\n"
        "  --amxq_emu[=1]              AMXQ_BENCH_EMU     also run amx-emu and avx512-emu (slow)\n"
        "  --amxq_cold=auto|on|off     AMXQ_BENCH_COLD    rotate weights beyond the LLC (auto: "
        "for\n"
        "                                                 M <= --amxq_cold_max_m, default 8)\n"
        "  --amxq_cold_max_m=8         AMXQ_BENCH_COLD_MAX_M\n"
        "  --amxq_llc_mib=N            AMXQ_BENCH_LLC_MIB last-level cache size (default: detect)\n"
        "  --amxq_quant_rows=1,256     AMXQ_BENCH_QUANT_ROWS rows for the quantize family\n"
        "  --amxq_threads=1,4,...|all  AMXQ_BENCH_THREADS threads per product (default 1: the\n"
        "                                                 calling thread, amxq_matmul_ex(); more:\n"
        "                                                 an amxq_ctx pool, amxq_ctx_matmul())\n"
        "  --amxq_keep_tiles[=1]       AMXQ_BENCH_KEEP_TILES pass AMXQ_KEEP_TILES (amx hot loops)\n"
        "  --amxq_probes=0             AMXQ_BENCH_PROBES  skip the start-up probes (no pct_*)\n");
}

/* Apply one option by name (without the --amxq_ / AMXQ_BENCH_ prefix, lower case). */
void apply_option(const std::string &name, const std::string &value, bool has_value)
{
    if (name == "shapes") {
        g_opt.shapes = parse_shapes(value);
    } else if (name == "m") {
        g_opt.m_list = parse_ints(value, "M");
    } else if (name == "isa") {
        g_opt.isas.clear();
        for (const std::string &item : split(value, ',')) {
            amxq_isa isa;
            if (amxq_isa_parse(item.c_str(), &isa) != AMXQ_OK || isa == AMXQ_ISA_AUTO)
                usage_error("unknown ISA '" + item + "'");
            g_opt.isas.push_back(isa);
        }
    } else if (name == "emu") {
        g_opt.emu = has_value ? parse_bool(value) : true;
    } else if (name == "keep_tiles") {
        g_opt.keep_tiles = has_value ? parse_bool(value) : true;
    } else if (name == "probes") {
        g_opt.probes = has_value ? parse_bool(value) : true;
    } else if (name == "cold") {
        if (value == "auto")
            g_opt.cold = Cold::Auto;
        else
            g_opt.cold = (!has_value || parse_bool(value)) ? Cold::On : Cold::Off;
    } else if (name == "cold_max_m") {
        g_opt.cold_max_m = parse_int(value, "cold_max_m");
    } else if (name == "llc_mib") {
        g_opt.llc_mib = (double)parse_int(value, "llc_mib");
    } else if (name == "quant_rows") {
        g_opt.quant_rows = parse_ints(value, "quant_rows");
    } else if (name == "threads") {
        g_opt.threads.clear();
        if (value == "all") {
            g_opt.threads.push_back((int)std::max(1u, std::thread::hardware_concurrency()));
        } else {
            for (int64_t t : parse_ints(value, "threads"))
                g_opt.threads.push_back((int)std::min<int64_t>(t, 4096));
        }
    } else {
        usage_error("unknown option '" + name + "'");
    }
}

/* Environment first, then flags (removed from argv so Google Benchmark does not see them). */
void parse_options(int *argc, char **argv)
{
    g_opt.shapes = {kModelShapes[0]};
    static const char *const env_names[] = {"shapes",     "m",          "isa",     "emu",
                                            "keep_tiles", "probes",     "cold",    "cold_max_m",
                                            "llc_mib",    "quant_rows", "threads", nullptr};
    for (int i = 0; env_names[i] != nullptr; i++) {
        std::string var = "AMXQ_BENCH_";
        for (const char *p = env_names[i]; *p; p++)
            var += (char)std::toupper((unsigned char)*p);
        const char *v = std::getenv(var.c_str());
        if (v != nullptr && *v != '\0')
            apply_option(env_names[i], v, true);
    }
    int out = 1;
    for (int i = 1; i < *argc; i++) {
        std::string arg = argv[i];
        if (arg == "--amxq_help") {
            print_help();
            std::exit(0);
        }
        if (arg.rfind("--amxq_", 0) != 0) {
            argv[out++] = argv[i];
            continue;
        }
        std::string body = arg.substr(7);
        size_t eq = body.find('=');
        if (eq == std::string::npos)
            apply_option(body, "", false);
        else
            apply_option(body.substr(0, eq), body.substr(eq + 1), true);
    }
    *argc = out;
    argv[out] = nullptr;
}

/* ---- machine facts ----------------------------------------------------------------------------
 */

/* Parse sysfs sizes such as "32768K" or "300M" into bytes. */
size_t parse_size(const std::string &s)
{
    char *end = nullptr;
    unsigned long long v = std::strtoull(s.c_str(), &end, 10);
    if (end == s.c_str())
        return 0;
    switch (*end) {
    case 'K':
        return (size_t)v << 10;
    case 'M':
        return (size_t)v << 20;
    case 'G':
        return (size_t)v << 30;
    default:
        return (size_t)v;
    }
}

std::string read_line(const std::string &path)
{
    std::ifstream f(path);
    std::string line;
    std::getline(f, line);
    return line;
}

/* The last-level cache: the highest-level data or unified cache sysfs lists for cpu0 (what Linux
 * reports; sysconf's answer is wrong in some VMs), else sysconf, else a guess. */
size_t detect_llc(std::string *source)
{
    if (g_opt.llc_mib > 0) {
        *source = "--amxq_llc_mib";
        return (size_t)(g_opt.llc_mib * 1048576.0);
    }
    int best_level = 0;
    size_t best = 0;
    for (int i = 0; i < 16; i++) {
        std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/";
        std::string level = read_line(dir + "level");
        if (level.empty())
            continue;
        if (read_line(dir + "type") == "Instruction")
            continue;
        int lv = std::atoi(level.c_str());
        size_t sz = parse_size(read_line(dir + "size"));
        if (sz > 0 && lv >= best_level) {
            best_level = lv;
            best = sz;
        }
    }
    if (best > 0) {
        *source = "sysfs cpu0 L" + std::to_string(best_level);
        return best;
    }
#ifdef _SC_LEVEL3_CACHE_SIZE
    long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
    if (l3 > 0) {
        *source = "sysconf L3";
        return (size_t)l3;
    }
#endif
    *source = "default guess";
    return (size_t)32 << 20;
}

size_t phys_mem()
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0)
        return (size_t)8 << 30;
    return (size_t)pages * (size_t)page;
}

struct Machine {
    amxq_cpu_info cpu{};
    size_t llc = 0;
    std::string llc_source;
    size_t phys = 0;
    double vnni_ops = 0;       /* 0: no probe */
    double amx_ops = 0;        /* K = 32 tiles, the kernels' shape */
    double amx64_ops = 0;      /* K = 64 tiles, for reference */
    std::map<int, double> mem; /* streaming-read bytes/s by thread count; absent: no probe */
};

Machine g_m;

std::string fmt(const char *f, double v)
{
    char buf[64];
    std::snprintf(buf, sizeof buf, f, v);
    return buf;
}

void run_probes()
{
    amxq_cpu_info_get(&g_m.cpu);
    g_m.llc = detect_llc(&g_m.llc_source);
    g_m.phys = phys_mem();
    benchmark::AddCustomContext("amxq_version", amxq_version_string());
    benchmark::AddCustomContext("amxq_cpu", std::string(g_m.cpu.vendor) + " " + g_m.cpu.brand);
    benchmark::AddCustomContext("amxq_llc_MiB", fmt("%.1f", (double)g_m.llc / 1048576.0) + " (" +
                                                    g_m.llc_source + ")");

    std::string vnni = "n/a", amx = "n/a", amx64 = "n/a";
    bool has_vnni = g_m.cpu.avx512f && g_m.cpu.avx512vnni && g_m.cpu.os_avx512;
    if (!g_opt.probes) {
        vnni = amx = amx64 = "n/a (probes off)";
    } else {
#ifdef AMXQ_BENCH_PROBE_VNNI
        if (has_vnni) {
            g_m.vnni_ops = amxq_bench_probe_vnni_ops(5);
            vnni = fmt("%.3f", g_m.vnni_ops / 1e12);
        } else {
            vnni = "n/a (no AVX-512 VNNI on this CPU/OS)";
        }
#else
        vnni = has_vnni ? "n/a (probe not built)" : "n/a (no AVX-512 VNNI on this CPU/OS)";
#endif
        /* Ask for the tile permission only when AMX cases may run: a run limited to other
         * families leaves the process as an embedding application without AMX would be (no
         * arch_prctl, no tile state, sigaltstack unconstrained). */
        bool want_amx = g_opt.isas.empty() || std::find(g_opt.isas.begin(), g_opt.isas.end(),
                                                        AMXQ_ISA_AMX) != g_opt.isas.end();
        bool cpu_amx = g_m.cpu.amx_tile && g_m.cpu.amx_int8;
        amxq_status amx_st = want_amx ? amxq_request_amx_permission() : AMXQ_OK;
        if (!want_amx && !cpu_amx) {
            amx = amx64 = "n/a (CPU has no AMX-TILE/AMX-INT8)";
        } else if (!want_amx) {
            amx = amx64 = "n/a (amx not in --amxq_isa)";
        } else {
#ifdef AMXQ_BENCH_PROBE_AMX
            if (amx_st == AMXQ_OK && cpu_amx) {
                g_m.amx_ops = amxq_bench_probe_amx_ops(5, 32);
                g_m.amx64_ops = amxq_bench_probe_amx_ops(5, 64);
                amx = fmt("%.3f", g_m.amx_ops / 1e12);
                amx64 = fmt("%.3f", g_m.amx64_ops / 1e12);
            } else {
                amx = amx64 = std::string("n/a (") + amxq_status_str(amx_st) + ")";
            }
#else
            amx = amx64 = amx_st == AMXQ_OK ? "n/a (probe not built)"
                                            : std::string("n/a (") + amxq_status_str(amx_st) + ")";
#endif
        }
    }
    benchmark::AddCustomContext("amxq_peak_vnni_TOPS_1core", vnni);
    /* K = 32 is what the kernels run and what pct_compute uses; K = 64 is the data-sheet shape. */
    benchmark::AddCustomContext("amxq_peak_amx_TOPS_1core", amx);
    benchmark::AddCustomContext("amxq_peak_amx_K64_TOPS_1core", amx64);

    if (g_opt.probes) {
        /* Four times the LLC (at least 256 MiB) so no level of cache holds a useful share. */
        size_t bytes = std::max((size_t)256 << 20, 4 * g_m.llc);
        bytes = std::min(bytes, g_m.phys / 8);
        /* One thread, every requested thread count, and all hardware threads. */
        std::vector<int> counts = g_opt.threads;
        counts.push_back(1);
        counts.push_back((int)std::max(1u, std::thread::hardware_concurrency()));
        for (int t : counts) {
            if (g_m.mem.count(t))
                continue;
            g_m.mem[t] = amxq_bench_probe_mem_read(bytes, t, 3);
            benchmark::AddCustomContext("amxq_peak_mem_GBps_" + std::to_string(t) +
                                            (t == 1 ? "thread" : "threads"),
                                        fmt("%.2f", g_m.mem[t] / 1e9));
        }
        benchmark::AddCustomContext("amxq_mem_probe_MiB", fmt("%.0f", (double)bytes / 1048576.0));
    } else {
        benchmark::AddCustomContext("amxq_peak_mem_GBps_1thread", "n/a (probes off)");
    }
}

/* ---- buffers ----------------------------------------------------------------------------------
 */

struct FreeDeleter {
    void operator()(void *p) const
    {
        std::free(p);
    }
};
using Buffer = std::unique_ptr<uint8_t, FreeDeleter>;

Buffer aligned_buffer(size_t bytes)
{
    bytes = (bytes + 63) / 64 * 64;
    void *p = std::aligned_alloc(64, bytes ? bytes : 64);
    if (p == nullptr) {
        std::fprintf(stderr, "amxq_bench: out of memory (%zu bytes)\n", bytes);
        std::exit(1);
    }
    return Buffer((uint8_t *)p);
}

/* Deterministic pseudo-random bits (splitmix64). */
struct Rng {
    uint64_t s;
    uint64_t next()
    {
        uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
};

/* A positive normal fp16 in [2^-7, 2^-3): the scale range real models use; no NaN or Inf. */
void put_half(uint8_t *p, Rng &r)
{
    uint16_t h = (uint16_t)(0x2000u | (r.next() & 0x0FFFu));
    p[0] = (uint8_t)(h & 0xFF);
    p[1] = (uint8_t)(h >> 8);
}

/* N ggml rows of K weights of `type`: random quants, plausible scales. */
std::vector<uint8_t> make_ggml(amxq_type type, int64_t n, int64_t k)
{
    size_t bytes = amxq_ggml_size(type, n, k);
    size_t bb = amxq_type_block_bytes(type);
    std::vector<uint8_t> g(bytes);
    Rng r{(uint64_t)type * 1000003u + (uint64_t)n * 7919u + (uint64_t)k};
    for (size_t off = 0; off + bb <= bytes; off += bb) {
        uint8_t *b = g.data() + off;
        size_t halves = (type == AMXQ_TYPE_Q4_0 || type == AMXQ_TYPE_Q8_0 ||
                         type == AMXQ_TYPE_Q5_0 || type == AMXQ_TYPE_IQ4_NL)
                            ? 1
                            : 2;
        for (size_t h = 0; h < halves; h++)
            put_half(b + 2 * h, r);
        for (size_t i = 2 * halves; i < bb; i += 8) {
            uint64_t v = r.next();
            std::memcpy(b + i, &v, std::min<size_t>(8, bb - i));
        }
        if (type == AMXQ_TYPE_Q6_K) /* its one scale, d, is the block's last field */
            put_half(b + 208, r);
    }
    return g;
}

/* The packed weights of the current (type, N, K): `copies` identical packed buffers back to back
 * (a packed buffer describes itself, so a byte copy is as valid as the original). */
struct WeightSet {
    amxq_type type{};
    int64_t n = 0, k = 0;
    std::vector<uint8_t> ggml;
    size_t packed_bytes = 0;
    size_t copies = 0;
    Buffer buf;
    const void *at(size_t i) const
    {
        return buf.get() + i * packed_bytes;
    }
};

std::unique_ptr<WeightSet> g_w;

/* Only one weight set lives at a time: cases are registered grouped by (type, N, K). */
WeightSet &weights(amxq_type type, int64_t n, int64_t k, size_t copies)
{
    if (!g_w || g_w->type != type || g_w->n != n || g_w->k != k) {
        g_w.reset(); /* free first: a cold set can be large */
        auto w = std::make_unique<WeightSet>();
        w->type = type;
        w->n = n;
        w->k = k;
        w->ggml = make_ggml(type, n, k);
        w->packed_bytes = amxq_packed_size(type, n, k);
        w->copies = 1;
        w->buf = aligned_buffer(w->packed_bytes);
        amxq_status st = amxq_pack(type, w->ggml.data(), n, k, w->buf.get(), w->packed_bytes);
        if (st != AMXQ_OK) {
            std::fprintf(stderr, "amxq_bench: amxq_pack: %s\n", amxq_status_str(st));
            std::exit(1);
        }
        g_w = std::move(w);
    }
    if (g_w->copies < copies) {
        Buffer nb = aligned_buffer(copies * g_w->packed_bytes);
        for (size_t i = 0; i < copies; i++)
            std::memcpy(nb.get() + i * g_w->packed_bytes, g_w->buf.get(), g_w->packed_bytes);
        g_w->buf = std::move(nb);
        g_w->copies = copies;
    }
    return *g_w;
}

/* How many copies make a rotation larger than twice the LLC, bounded by a quarter of memory. */
size_t cold_copies(size_t packed_bytes)
{
    size_t want = (2 * g_m.llc + packed_bytes - 1) / packed_bytes;
    size_t cap = std::max<size_t>(1, (g_m.phys / 4) / packed_bytes);
    return std::max<size_t>(1, std::min(want, cap));
}

/* Growable shared buffers: activations (random, filled once), outputs, workspace. */
struct Grow {
    Buffer buf;
    size_t bytes = 0;
    uint8_t *get(size_t want, bool random_floats)
    {
        if (want > bytes) {
            Buffer nb = aligned_buffer(want);
            if (random_floats) {
                Rng r{12345};
                float *f = (float *)nb.get();
                for (size_t i = 0; i < want / sizeof(float); i++)
                    f[i] = (float)((double)(r.next() >> 11) * 0x1p-52 - 1.0); /* [-1, 1) */
            } else {
                std::memset(nb.get(), 0, want);
            }
            buf = std::move(nb);
            bytes = want;
        }
        return buf.get();
    }
};

Grow g_x, g_c, g_ws, g_q;

/* ---- counters ---------------------------------------------------------------------------------
 */

double compute_peak(amxq_isa isa)
{
    switch (isa) {
    case AMXQ_ISA_AMX:
        return g_m.amx_ops;
    case AMXQ_ISA_AVX512:
        return g_m.vnni_ops;
    default:
        return 0; /* scalar and the emulators have no probe */
    }
}

void set_rate_counters(benchmark::State &st, double ops, double bytes, double seconds, amxq_isa isa,
                       int threads, bool matmul)
{
    if (seconds <= 0)
        return;
    double iters = (double)st.iterations();
    double ops_s = ops * iters / seconds, bytes_s = bytes * iters / seconds;
    if (matmul)
        st.counters["TOPS"] = ops_s / 1e12;
    st.counters["GBps"] = bytes_s / 1e9;
    if (!matmul)
        return;
    double pct_mem = -1, pct_compute = -1;
    auto mem = g_m.mem.find(threads);
    if (mem != g_m.mem.end() && mem->second > 0) {
        pct_mem = 100.0 * bytes_s / mem->second;
        st.counters["pct_mem"] = pct_mem;
    }
    /* The compute probes measure one core; a product on T threads (one a core) has T of them. */
    double peak = compute_peak(isa) * threads;
    if (peak > 0) {
        pct_compute = 100.0 * ops_s / peak;
        st.counters["pct_compute"] = pct_compute;
        if (pct_mem >= 0)
            st.counters["pct_roof"] = std::max(pct_mem, pct_compute);
    }
}

/* ---- families ---------------------------------------------------------------------------------
 */

/* One pool per thread count, created on first use and kept to the end of the run. */
std::map<int, amxq_ctx *> g_ctx;

amxq_ctx *pool(int threads, amxq_status *st)
{
    auto it = g_ctx.find(threads);
    if (it != g_ctx.end()) {
        *st = AMXQ_OK;
        return it->second;
    }
    amxq_ctx_params cp{};
    cp.n_threads = threads;
    amxq_ctx *ctx = nullptr;
    *st = amxq_ctx_create(&cp, &ctx);
    if (*st != AMXQ_OK)
        return nullptr;
    g_ctx[threads] = ctx;
    return ctx;
}

void free_pools()
{
    for (auto &kv : g_ctx)
        amxq_ctx_destroy(kv.second);
    g_ctx.clear();
}

/*
 * Touch every rotating copy once before the timed loop. The first pass over freshly copied
 * weights is far slower than later ones (about 6 ms against 0.45 ms a Q4_0 4096x4096 product on a
 * Zen VM, page and TLB first-use costs), and a short run (a few hundred iterations, or fewer when
 * Google Benchmark's estimate is thrown off by that first pass) would time mostly that pass: the
 * cold figure must be the steady state of rotating through evicted weights. In order 0..copies-1,
 * so that copy 0, where the timed loop starts, is the least recently used.
 * The product itself is the touch when the pass is cheap (`one` = seconds of one product); where
 * it would take long (the scalar kernels at M = 8), one load a cache line does the same for the
 * memory side.
 */
template <typename Run>
amxq_status touch_copies(const WeightSet &w, size_t copies, double one, Run &run)
{
    if (one * (double)copies <= 0.5) {
        for (size_t i = 0; i < copies; i++) {
            amxq_status s = run(w.at(i));
            if (s != AMXQ_OK)
                return s;
        }
        return AMXQ_OK;
    }
    uint64_t sum = 0;
    const uint8_t *p = w.buf.get();
    size_t total = copies * w.packed_bytes;
    for (size_t off = 0; off + sizeof(uint64_t) <= total; off += 64) {
        uint64_t v;
        std::memcpy(&v, p + off, sizeof v);
        sum += v;
    }
    benchmark::DoNotOptimize(sum);
    return AMXQ_OK;
}

void bm_matmul(benchmark::State &st, amxq_type type, amxq_isa isa, int64_t m, int64_t n, int64_t k,
               int threads, bool cold)
{
    size_t pbytes = amxq_packed_size(type, n, k);
    size_t copies = cold ? cold_copies(pbytes) : 1;
    WeightSet &w = weights(type, n, k, copies);
    float *x = (float *)g_x.get((size_t)(m * k) * sizeof(float), true);
    float *c = (float *)g_c.get((size_t)(m * n) * sizeof(float), false);
    size_t ws_bytes = amxq_workspace_size(type, m, k);
    amxq_matmul_params p{};
    p.isa = isa;
    p.flags = g_opt.keep_tiles ? AMXQ_KEEP_TILES : 0u;
    p.workspace = g_ws.get(ws_bytes, false);
    p.workspace_size = ws_bytes;

    amxq_ctx *ctx = nullptr;
    amxq_status s = AMXQ_OK;
    if (threads > 1)
        ctx = pool(threads, &s);
    auto run = [&](const void *wp) {
        return ctx ? amxq_ctx_matmul(ctx, wp, x, m, k, c, n, &p)
                   : amxq_matmul_ex(wp, x, m, k, c, n, &p);
    };
    double tv = amxq_bench_now();
    if (s == AMXQ_OK)
        s = run(w.at(0)); /* validates the case and warms code and pool */
    tv = amxq_bench_now() - tv;
    if (s == AMXQ_OK && copies > 1)
        s = touch_copies(w, copies, tv, run);
    if (s != AMXQ_OK) {
        st.SkipWithError(amxq_status_str(s));
        return;
    }
    size_t i = 0;
    double t0 = amxq_bench_now();
    for (auto _ : st) {
        s = run(w.at(i));
        if (s != AMXQ_OK) {
            st.SkipWithError(amxq_status_str(s));
            break;
        }
        if (++i == copies)
            i = 0;
    }
    double t = amxq_bench_now() - t0;
    if (g_opt.keep_tiles)
        amxq_tile_release();
    benchmark::DoNotOptimize(c[0]);
    if (s != AMXQ_OK)
        return;
    set_rate_counters(st, 2.0 * (double)m * (double)n * (double)k, (double)pbytes, t, isa, threads,
                      true);
    std::string label = amxq_bench_kernel_name(isa, type);
    if (cold) {
        /* The rotation's total size, as a number in the JSON too: it must exceed the LLC. */
        double mib = (double)(copies * pbytes) / 1048576.0;
        st.counters["cold_MiB"] = mib;
        label += " cold x" + std::to_string(copies) + " (" + fmt("%.0f", mib) + " MiB)";
    }
    st.SetLabel(label);
}

void bm_pack(benchmark::State &st, amxq_type type, int64_t n, int64_t k)
{
    WeightSet &w = weights(type, n, k, 1);
    Buffer dst = aligned_buffer(w.packed_bytes);
    amxq_status s = AMXQ_OK;
    double t0 = amxq_bench_now();
    for (auto _ : st) {
        s = amxq_pack(type, w.ggml.data(), n, k, dst.get(), w.packed_bytes);
        if (s != AMXQ_OK) {
            st.SkipWithError(amxq_status_str(s));
            break;
        }
        benchmark::ClobberMemory();
    }
    double t = amxq_bench_now() - t0;
    if (s == AMXQ_OK)
        set_rate_counters(st, 0, (double)w.ggml.size(), t, AMXQ_ISA_SCALAR, 1, false);
}

/* Bytes of ggml activation blocks for one row of K (Q8_0 34, Q8_1 36 a 32; Q8_K 292 a 256). */
size_t act_row_bytes(amxq_type type, int64_t k)
{
    switch (type) {
    case AMXQ_TYPE_Q4_1:
    case AMXQ_TYPE_Q5_1:
        return (size_t)(k / 32) * 36;
    case AMXQ_TYPE_Q4_K:
    case AMXQ_TYPE_Q6_K:
    case AMXQ_TYPE_Q5_K:
    case AMXQ_TYPE_IQ4_XS:
        return (size_t)(k / 256) * 292;
    default:
        return (size_t)(k / 32) * 34;
    }
}

void bm_quantize(benchmark::State &st, amxq_type type, int64_t rows, int64_t k)
{
    const float *x = (const float *)g_x.get((size_t)(rows * k) * sizeof(float), true);
    size_t rb = act_row_bytes(type, k);
    uint8_t *q = g_q.get(rb * (size_t)rows, false);
    amxq_status s = AMXQ_OK;
    double t0 = amxq_bench_now();
    for (auto _ : st) {
        for (int64_t r = 0; r < rows && s == AMXQ_OK; r++)
            s = amxq_quantize_row(type, x + r * k, k, q + (size_t)r * rb, rb);
        if (s != AMXQ_OK) {
            st.SkipWithError(amxq_status_str(s));
            break;
        }
        benchmark::ClobberMemory();
    }
    double t = amxq_bench_now() - t0;
    if (s == AMXQ_OK)
        set_rate_counters(st, 0, (double)rows * (double)k * sizeof(float), t, AMXQ_ISA_SCALAR, 1,
                          false);
}

/*
 * The AMX kernels' vector side against the VNNI kernel (docs/performance.md, "The AMX kernels'
 * vector side"). Each iteration runs both gemms once on the same quantized activations, in
 * alternating order, so that a busy machine slows both alike; the ratios are what to read. A step
 * is 32 rows x 32 columns x 32 k of work: M*N*K / 32^3 steps a product.
 */
[[maybe_unused]] void bm_amx_proxy(benchmark::State &st, amxq_type type, int64_t m, int64_t n,
                                   int64_t k)
{
    WeightSet &w = weights(type, n, k, 1);
    const float *x = (const float *)g_x.get((size_t)(m * k) * sizeof(float), true);
    float *c = (float *)g_c.get((size_t)(m * n) * sizeof(float), false);
    amxq_bench_proxy *p = nullptr;
    amxq_status s = amxq_bench_proxy_new(w.at(0), x, m, &p);
    if (s != AMXQ_OK) {
        st.SkipWithError(amxq_status_str(s));
        return;
    }
    amxq_bench_proxy_run(p, AMXQ_BENCH_PROXY_VECTOR, c); /* warm code, caches and pages */
    amxq_bench_proxy_run(p, AMXQ_BENCH_PROXY_VNNI, c);
    double sum[2] = {0, 0}, best[2] = {1e300, 1e300};
    int64_t it = 0;
    for (auto _ : st) {
        for (int j = 0; j < 2; j++) {
            int which = (int)((it + j) & 1);
            double t = amxq_bench_proxy_run(p, which, c);
            sum[which] += t;
            best[which] = std::min(best[which], t);
        }
        it++;
    }
    amxq_bench_proxy_free(p);
    benchmark::DoNotOptimize(c[0]);
    double steps = (double)m * (double)n * (double)k / 32768.0;
    double iters = (double)st.iterations();
    st.counters["vec_ns_step"] = 1e9 * sum[AMXQ_BENCH_PROXY_VECTOR] / iters / steps;
    st.counters["vnni_ns_step"] = 1e9 * sum[AMXQ_BENCH_PROXY_VNNI] / iters / steps;
    st.counters["ratio"] = sum[AMXQ_BENCH_PROXY_VECTOR] / sum[AMXQ_BENCH_PROXY_VNNI];
    st.counters["ratio_best"] = best[AMXQ_BENCH_PROXY_VECTOR] / best[AMXQ_BENCH_PROXY_VNNI];
    st.SetLabel(std::string(amxq_bench_kernel_name(AMXQ_ISA_AVX512, type)) + " vs vector side");
}

/* ---- registration -----------------------------------------------------------------------------
 */

std::vector<amxq_isa> runnable_isas()
{
    std::vector<amxq_isa> want = g_opt.isas;
    if (want.empty()) {
        want = {AMXQ_ISA_AMX, AMXQ_ISA_AVX512, AMXQ_ISA_SCALAR};
        if (g_opt.emu) {
            want.push_back(AMXQ_ISA_AMX_EMU);
            want.push_back(AMXQ_ISA_AVX512_EMU);
        }
    }
    std::vector<amxq_isa> out;
    std::string ran, skipped;
    for (amxq_isa isa : want) {
        amxq_status s = amxq_isa_check(isa);
        std::string name = amxq_isa_name(isa);
        if (s == AMXQ_OK) {
            out.push_back(isa);
            ran += (ran.empty() ? "" : ", ") + name;
        } else {
            skipped += (skipped.empty() ? "" : "; ") + name + ": " + amxq_status_str(s);
        }
    }
    benchmark::AddCustomContext("amxq_isas_run", ran.empty() ? "none" : ran);
    if (!skipped.empty())
        benchmark::AddCustomContext("amxq_isas_skipped", skipped);
    return out;
}

std::vector<int64_t> m_list(amxq_isa isa)
{
    if (!g_opt.m_list.empty())
        return g_opt.m_list;
    if (isa == AMXQ_ISA_SCALAR)
        return {std::begin(kScalarM), std::end(kScalarM)};
    if (isa == AMXQ_ISA_AMX_EMU || isa == AMXQ_ISA_AVX512_EMU)
        return {std::begin(kEmuM), std::end(kEmuM)};
    return {std::begin(kFullM), std::end(kFullM)};
}

bool is_cold(int64_t m)
{
    switch (g_opt.cold) {
    case Cold::On:
        return true;
    case Cold::Off:
        return false;
    default:
        return m <= g_opt.cold_max_m;
    }
}

/*
 * matmul_id (issue 15): amxq_matmul_id on Qwen3-30B-A3B's expert shapes, 128 experts, top-8 of
 * distinct experts per token, routings drawn from a fixed seed (the same in every run). `up`
 * stands for the up and gate projections (N = 768, K = 2048, one row of X per token, x_slots =
 * 1), `down` for the down projection (N = 2048, K = 768, a row per slot, x_slots = 8). Counters:
 * TOPS (2 * tokens * 8 * N * K / time), GBps (packed bytes of the experts the routing chose, each
 * read once a call), pct_* as for matmul, experts_read (distinct experts a call), and the same
 * rows through one dense product, timed in the same case right after: dense_TOPS and ratio_dense
 * (dense time / matmul_id time: 1 = as fast as one weight of tokens * 8 rows; ratio_dense_best
 * from the fastest call of each).
 * Cold (decode sizes, up to cold_max_m rows an expert): the set of 128 experts is copied into as
 * many "layers" as exceed twice the LLC, each layer with its own routing, used in turn, as a
 * model's layers are during a token.
 */
const int64_t kMoeExperts = 128, kMoeTop = 8;
const int64_t kMoeTokens[] = {1, 32, 512};

struct MoeShape {
    const char *name;
    int64_t n, k, x_slots;
};
const MoeShape kMoeShapes[] = {{"up", 768, 2048, 1}, {"down", 2048, 768, kMoeTop}};

/* `layers` copies of 128 packed experts of (type, N, K), each expert from its own ggml rows. */
struct ExpertSet {
    amxq_type type{};
    int64_t n = 0, k = 0;
    size_t packed_bytes = 0, layers = 0;
    Buffer buf;
    std::vector<std::vector<const void *>> ptrs; /* [layer][expert] */
};

std::unique_ptr<ExpertSet> g_experts;

ExpertSet &expert_set(amxq_type type, int64_t n, int64_t k, size_t layers)
{
    if (!g_experts || g_experts->type != type || g_experts->n != n || g_experts->k != k ||
        g_experts->layers < layers) {
        g_experts.reset(); /* free first: the sets are hundreds of MiB */
        g_w.reset();
        auto es = std::make_unique<ExpertSet>();
        es->type = type;
        es->n = n;
        es->k = k;
        es->layers = layers;
        es->packed_bytes = amxq_packed_size(type, n, k);
        const size_t one = es->packed_bytes * (size_t)kMoeExperts;
        es->buf = aligned_buffer(one * layers);
        std::vector<uint8_t> g = make_ggml(type, n * kMoeExperts, k);
        const size_t eg = amxq_ggml_size(type, n, k);
        for (int64_t e = 0; e < kMoeExperts; e++) {
            amxq_status st =
                amxq_pack(type, g.data() + (size_t)e * eg, n, k,
                          es->buf.get() + (size_t)e * es->packed_bytes, es->packed_bytes);
            if (st != AMXQ_OK) {
                std::fprintf(stderr, "amxq_bench: amxq_pack: %s\n", amxq_status_str(st));
                std::exit(1);
            }
        }
        for (size_t l = 1; l < layers; l++)
            std::memcpy(es->buf.get() + l * one, es->buf.get(), one);
        es->ptrs.resize(layers);
        for (size_t l = 0; l < layers; l++)
            for (int64_t e = 0; e < kMoeExperts; e++)
                es->ptrs[l].push_back(es->buf.get() + l * one + (size_t)e * es->packed_bytes);
        g_experts = std::move(es);
    }
    return *g_experts;
}

/* Top-8 distinct experts a token, uniform, from a seed fixed by (layer, tokens). */
std::vector<int32_t> moe_routing(size_t layer, int64_t tokens)
{
    Rng r{0x15150000u + (uint64_t)layer * 4099u + (uint64_t)tokens};
    std::vector<int32_t> ids((size_t)(tokens * kMoeTop));
    for (int64_t t = 0; t < tokens; t++)
        for (int64_t s = 0; s < kMoeTop; s++) {
            int32_t e;
            bool dup;
            do {
                e = (int32_t)(r.next() % (uint64_t)kMoeExperts);
                dup = false;
                for (int64_t j = 0; j < s; j++)
                    dup |= ids[(size_t)(t * kMoeTop + j)] == e;
            } while (dup);
            ids[(size_t)(t * kMoeTop + s)] = e;
        }
    return ids;
}

Grow g_ws_dense;

void bm_matmul_id(benchmark::State &st, amxq_type type, amxq_isa isa, MoeShape sh, int64_t tokens,
                  int threads, bool cold)
{
    const int64_t n = sh.n, k = sh.k, xs = sh.x_slots, pairs = tokens * kMoeTop;
    const size_t pbytes = amxq_packed_size(type, n, k);
    size_t layers = 1;
    if (cold) {
        const size_t set = pbytes * (size_t)kMoeExperts;
        layers = std::max<size_t>(1, std::min((2 * g_m.llc + set - 1) / set, g_m.phys / 4 / set));
    }
    ExpertSet &es = expert_set(type, n, k, layers);
    std::vector<std::vector<int32_t>> ids;
    double experts_read = 0;
    for (size_t l = 0; l < layers; l++) {
        ids.push_back(moe_routing(l, tokens));
        std::vector<char> seen((size_t)kMoeExperts, 0);
        for (int32_t e : ids.back())
            seen[(size_t)e] = 1;
        experts_read += (double)std::count(seen.begin(), seen.end(), 1) / (double)layers;
    }
    /* X holds tokens * x_slots rows for matmul_id and `pairs` rows for the dense product. */
    float *x = (float *)g_x.get((size_t)(std::max(tokens * xs, pairs) * k) * sizeof(float), true);
    float *c = (float *)g_c.get((size_t)(pairs * n) * sizeof(float), false);
    amxq_matmul_params p{};
    p.isa = isa;
    p.flags = g_opt.keep_tiles ? AMXQ_KEEP_TILES : 0u;
    p.workspace_size =
        amxq_matmul_id_workspace_size(type, n, k, kMoeExperts, xs, kMoeTop, tokens, threads);
    p.workspace = g_ws.get(p.workspace_size, false);
    amxq_matmul_params pd = p;
    pd.workspace_size = amxq_workspace_size(type, pairs, k);
    pd.workspace = g_ws_dense.get(pd.workspace_size, false);

    amxq_ctx *ctx = nullptr;
    amxq_status s = AMXQ_OK;
    if (threads > 1)
        ctx = pool(threads, &s);
    auto run = [&](size_t l) {
        const void *const *ex = es.ptrs[l].data();
        return ctx ? amxq_ctx_matmul_id(ctx, ex, kMoeExperts, x, xs, k, xs * k, ids[l].data(),
                                        kMoeTop, kMoeTop, tokens, c, n, kMoeTop * n, &p)
                   : amxq_matmul_id(ex, kMoeExperts, x, xs, k, xs * k, ids[l].data(), kMoeTop,
                                    kMoeTop, tokens, c, n, kMoeTop * n, &p);
    };
    auto dense = [&]() {
        const void *w = es.ptrs[0][0];
        return ctx ? amxq_ctx_matmul(ctx, w, x, pairs, k, c, n, &pd)
                   : amxq_matmul_ex(w, x, pairs, k, c, n, &pd);
    };
    for (size_t l = 0; l < layers && s == AMXQ_OK; l++) /* validate, warm, touch every layer */
        s = run(l);
    if (s == AMXQ_OK)
        s = dense();
    if (s != AMXQ_OK) {
        st.SkipWithError(amxq_status_str(s));
        return;
    }
    /* Each call timed too: the fastest call of each kind gives a ratio that a busy machine
     * (preemption) disturbs less than the means. */
    size_t l = 0;
    double best = 1e300;
    double t0 = amxq_bench_now();
    for (auto _ : st) {
        double tc = amxq_bench_now();
        s = run(l);
        best = std::min(best, amxq_bench_now() - tc);
        if (s != AMXQ_OK) {
            st.SkipWithError(amxq_status_str(s));
            break;
        }
        if (++l == layers)
            l = 0;
    }
    double t = amxq_bench_now() - t0;
    /* The dense product, as many times (at least once), right after. */
    int64_t reps = std::max<int64_t>(1, (int64_t)st.iterations());
    double td = 0, best_dense = 1e300;
    for (int64_t i = 0; i < reps && s == AMXQ_OK; i++) {
        double tc = amxq_bench_now();
        s = dense();
        tc = amxq_bench_now() - tc;
        td += tc;
        best_dense = std::min(best_dense, tc);
    }
    if (g_opt.keep_tiles)
        amxq_tile_release();
    benchmark::DoNotOptimize(c[0]);
    if (s != AMXQ_OK)
        return;
    const double ops = 2.0 * (double)pairs * (double)n * (double)k;
    set_rate_counters(st, ops, experts_read * (double)pbytes, t, isa, threads, true);
    const double per = t / (double)st.iterations(), per_dense = td / (double)reps;
    st.counters["dense_TOPS"] = ops / per_dense / 1e12;
    st.counters["ratio_dense"] = per_dense / per;
    st.counters["ratio_dense_best"] = best_dense / best;
    st.counters["experts_read"] = experts_read;
    std::string label =
        std::string(amxq_bench_kernel_name(isa, type)) + " E128 top8 x_slots=" + std::to_string(xs);
    if (cold) {
        double mib = (double)(layers * (size_t)kMoeExperts * pbytes) / 1048576.0;
        st.counters["cold_MiB"] = mib;
        label += " cold x" + std::to_string(layers) + " layers (" + fmt("%.0f", mib) + " MiB)";
    }
    st.SetLabel(label);
}

void register_matmul_id(const std::vector<amxq_isa> &isas)
{
    for (amxq_type type : kTypes)
        for (const MoeShape &sh : kMoeShapes)
            for (amxq_isa isa : isas)
                for (int64_t tokens : kMoeTokens) {
                    /* the reference and the emulators: decode only (a prompt takes minutes) */
                    if (isa != AMXQ_ISA_AMX && isa != AMXQ_ISA_AVX512 && tokens > 1)
                        continue;
                    for (int thr : g_opt.threads) {
                        /* cold while an expert has at most cold_max_m rows on average */
                        bool cold = is_cold(tokens * kMoeTop / kMoeExperts);
                        std::string name =
                            "matmul_id/" + std::string(type_label(type)) + "/" +
                            amxq_isa_name(isa) + "/" + sh.name + "/N:" + std::to_string(sh.n) +
                            "/K:" + std::to_string(sh.k) + "/tok:" + std::to_string(tokens) +
                            "/T:" + std::to_string(thr) + (cold ? "/cold" : "/hot");
                        benchmark::RegisterBenchmark(name.c_str(),
                                                     [=](benchmark::State &st) {
                                                         bm_matmul_id(st, type, isa, sh, tokens,
                                                                      thr, cold);
                                                     })
                            ->UseRealTime()
                            ->Unit(benchmark::kMillisecond);
                    }
                }
}

void register_all()
{
    std::vector<amxq_isa> isas = runnable_isas();
    std::string shapes, kernels;
    for (const Shape &s : g_opt.shapes)
        shapes += (shapes.empty() ? "" : ",") + std::to_string(s.n) + "x" + std::to_string(s.k);
    benchmark::AddCustomContext("amxq_shapes_NxK", shapes);
    benchmark::AddCustomContext("amxq_cold",
                                g_opt.cold == Cold::On ? "on"
                                : g_opt.cold == Cold::Off
                                    ? "off"
                                    : "auto (M <= " + std::to_string(g_opt.cold_max_m) + ")");
    std::string threads;
    for (int t : g_opt.threads)
        threads += (threads.empty() ? "" : ",") + std::to_string(t);
    benchmark::AddCustomContext("amxq_threads", threads);
    for (amxq_isa isa : isas)
        for (amxq_type type : kTypes)
            kernels += (kernels.empty() ? "" : ", ") + std::string(amxq_isa_name(isa)) + ":" +
                       amxq_bench_kernel_name(isa, type);
    benchmark::AddCustomContext("amxq_kernels", kernels);

    for (amxq_type type : kTypes) {
        int64_t blk = amxq_type_block(type);
        std::vector<int64_t> ks;
        for (const Shape &s : g_opt.shapes) {
            if (s.k % blk != 0) {
                std::fprintf(stderr,
                             "amxq_bench: skipping %s for K=%" PRId64 " (block %" PRId64 ")\n",
                             type_label(type), s.k, blk);
                continue;
            }
            if (std::find(ks.begin(), ks.end(), s.k) == ks.end())
                ks.push_back(s.k);
            std::string shape = "N:" + std::to_string(s.n) + "/K:" + std::to_string(s.k);
            benchmark::RegisterBenchmark(
                ("pack/" + std::string(type_label(type)) + "/" + shape).c_str(),
                [=](benchmark::State &st) { bm_pack(st, type, s.n, s.k); })
                ->UseRealTime()
                ->Unit(benchmark::kMillisecond);
            for (amxq_isa isa : isas) {
                for (int64_t m : m_list(isa)) {
                    for (int thr : g_opt.threads) {
                        bool cold = is_cold(m);
                        std::string name = "matmul/" + std::string(type_label(type)) + "/" +
                                           amxq_isa_name(isa) + "/M:" + std::to_string(m) + "/" +
                                           shape + "/T:" + std::to_string(thr) +
                                           (cold ? "/cold" : "/hot");
                        benchmark::RegisterBenchmark(name.c_str(),
                                                     [=](benchmark::State &st) {
                                                         bm_matmul(st, type, isa, m, s.n, s.k, thr,
                                                                   cold);
                                                     })
                            ->UseRealTime()
                            ->Unit(benchmark::kMillisecond);
                    }
                }
            }
        }
#if defined(AMXQ_BENCH_AMX_PROXY)
        /* M = 64 and 512 are the sizes the vector-side targets are set for (issue 13). */
        std::vector<int64_t> proxy_m = g_opt.m_list;
        if (proxy_m.empty())
            proxy_m = {16, 64, 512};
        for (const Shape &s : g_opt.shapes) {
            if (s.k % blk != 0 || !amxq_bench_proxy_has(type))
                continue;
            for (int64_t m : proxy_m)
                benchmark::RegisterBenchmark(
                    ("amx_proxy/" + std::string(type_label(type)) + "/M:" + std::to_string(m) +
                     "/N:" + std::to_string(s.n) + "/K:" + std::to_string(s.k))
                        .c_str(),
                    [=](benchmark::State &st) { bm_amx_proxy(st, type, m, s.n, s.k); })
                    ->UseRealTime()
                    ->Unit(benchmark::kMillisecond);
        }
#endif
        for (int64_t k : ks)
            for (int64_t rows : g_opt.quant_rows)
                benchmark::RegisterBenchmark(
                    ("quantize/" + std::string(type_label(type)) + "/M:" + std::to_string(rows) +
                     "/K:" + std::to_string(k))
                        .c_str(),
                    [=](benchmark::State &st) { bm_quantize(st, type, rows, k); })
                    ->UseRealTime()
                    ->Unit(benchmark::kMicrosecond);
    }
    register_matmul_id(isas);
}

} // namespace

int main(int argc, char **argv)
{
    parse_options(&argc, argv);
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv))
        return 1;
    run_probes();
    register_all();
    benchmark::RunSpecifiedBenchmarks();
    free_pools();
    benchmark::Shutdown();
    return 0;
}
