// Benchmark of `analyze` and `experts` on a synthetic trace shaped like Qwen3-30B-A3B: 48 MoE layers,
// 128 experts, top-8, f16 probs; 4 languages × G parallel groups × 60 tokens (G = 200 by default: 48,000
// tokens; argv[1] overrides, e.g. 2000 for 480,000 tokens). p is a random peaked distribution per token and
// layer, the top-k ids the k largest p; the rows of one shard are reused for every shard (timing only).
// Measures in one run, each in a forked child (its own ru_maxrss): the floor — reading every shard's bytes
// and converting its probs f16→f32 (F16C when the CPU has it, else the trace store's conversion) — then
// analyze and experts on 1 and 2 threads, each twice: as `trace` writes traces now (analyze verifies whole
// shards by XXH3-128, experts reads and verifies each shard's index part) and as for traces that hold only
// SHA-256 digests (whole shards hashed with SHA-256), and prints throughput (tokens·layers/s), peak
// resident memory and the ratios to the floor measured in the same run. No asserts.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "../src/trace/safetensors.h"
#include "routescope/analysis.h"
#include "routescope/stats.h"
#include "routescope/trace.h"

namespace {

namespace fs = std::filesystem;
constexpr int kMoe = 48, kExpert = 128, kTopK = 8, kLangs = 4, kTok = 60, kPerShard = 64;

double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void write_trace(const std::string & dir, int n_group) {
    fs::remove_all(dir);
    fs::create_directories(dir);
    rs::TraceManifest m;
    m.model_sha256 = "bench", m.arch = "qwen3moe", m.model_name = "synthetic-qwen3-30b-a3b", m.n_layer = kMoe;
    for (int l = 0; l < kMoe; ++l) m.moe_layers.push_back(l);
    m.n_expert = kExpert, m.top_k = kTopK, m.gating = "softmax";
    m.langs = {"eng_Latn", "deu_Latn", "fra_Latn", "swh_Latn"};
    m.domains = {"flores"};
    m.corpus = "synthetic";
    m.n_sequences = (int64_t)n_group * kLangs;
    m.seqs_per_shard = kPerShard;
    rs::write_manifest(dir, m);
    // one shard's worth of rows (kPerShard sequences × kTok tokens), reused by every shard
    rs::SplitMix64 rng(1);
    std::vector<float> w(kExpert), probs;
    std::vector<int16_t> ids(kExpert), topk;
    for (int t = 0; t < kPerShard * kTok; ++t)
        for (int l = 0; l < kMoe; ++l) {
            float sum = 0.0f;
            for (auto & v : w) {  // peaked ("Dirichlet-ish"): u^6, u uniform
                const float u = (float)(rng.next() >> 40) / (float)(1 << 24);
                sum += v = u * u * u * u * u * u + 1e-4f;
            }
            for (auto & v : w) v /= sum;
            probs.insert(probs.end(), w.begin(), w.end());
            std::iota(ids.begin(), ids.end(), 0);
            std::partial_sort(ids.begin(), ids.begin() + kTopK, ids.end(),
                              [&](int16_t a, int16_t b) { return w[(size_t)a] > w[(size_t)b]; });
            topk.insert(topk.end(), ids.begin(), ids.begin() + kTopK);
        }
    for (int64_t sh = 0; sh * kPerShard < m.n_sequences; ++sh) {
        rs::TraceShard s;
        s.n_moe = kMoe, s.n_expert = kExpert, s.top_k = kTopK;
        for (int64_t i = sh * kPerShard; i < std::min<int64_t>((sh + 1) * kPerShard, m.n_sequences); ++i) {
            s.seqs.push_back({.index = i,
                              .group = i / kLangs,
                              .lang = (int32_t)(i % kLangs),
                              .domain = 0,
                              .id = std::to_string(i),
                              .tok_begin = s.n_tok(),
                              .n_tok = kTok});
            for (int t = 0; t < kTok; ++t) s.tokens.push_back(t);
        }
        const size_t rows = (size_t)s.n_tok() * kMoe;
        s.probs.assign(probs.begin(), probs.begin() + (ptrdiff_t)(rows * kExpert));
        s.topk.assign(topk.begin(), topk.begin() + (ptrdiff_t)(rows * kTopK));
        rs::set_shard_digests(m, sh, rs::write_shard(dir, sh, m, s));
    }
    rs::write_manifest(dir, m);  // with the shard checksums, as `trace` records them: readers verify them
}

// f16 → f32 of n values: F16C (8 per instruction) when the CPU has it, else the trace store's conversion.
#if defined(__x86_64__)
__attribute__((target("avx,f16c"))) void cvt_f16c(const uint16_t * in, float * out, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i,
                         _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(in + i))));
    for (; i < n; ++i) out[i] = rs::f16_to_f32(in[i]);
}
#endif
void cvt_f16(const uint16_t * in, float * out, size_t n) {
#if defined(__x86_64__)
    if (__builtin_cpu_supports("f16c")) return cvt_f16c(in, out, n);
#endif
    for (size_t i = 0; i < n; ++i) out[i] = rs::f16_to_f32(in[i]);
}

// The floor: every shard file read into memory (one pread of the whole file into a buffer reused from shard
// to shard) and its probs converted f16→f32 (into a reused buffer), shards spread over n_threads threads.
// Returns a checksum so nothing is optimised away.
double read_floor(const std::string & dir, int n_threads) {
    const auto shards = rs::list_shards(dir);
    std::atomic<size_t> next{0};
    std::vector<double> sums((size_t)n_threads, 0.0);
    auto work = [&](int t) {
        std::vector<uint64_t> buf;
        std::vector<float> f32;
        for (size_t i = next++; i < shards.size(); i = next++) {
            const std::string path = (fs::path(dir) / rs::shard_file_name(shards[i])).string();
            const auto header = rs::st_read_header(path);
            const size_t size = (size_t)fs::file_size(path);
            if (buf.size() * 8 < size) buf.resize((size + 7) / 8);
            const int fd = open(path.c_str(), O_RDONLY);
            for (size_t done = 0; done < size;) {
                const ssize_t r =
                    pread(fd, reinterpret_cast<char *>(buf.data()) + done, size - done, (off_t)done);
                if (r <= 0) break;
                done += (size_t)r;
            }
            close(fd);
            uint64_t n_header = 0;
            std::memcpy(&n_header, buf.data(), 8);
            const auto off = header.at("probs").at("data_offsets").get<std::vector<size_t>>();
            const auto * h = reinterpret_cast<const uint16_t *>(reinterpret_cast<const char *>(buf.data()) +
                                                                8 + n_header + off[0]);
            const size_t n = (off[1] - off[0]) / 2;
            if (f32.size() < n) f32.resize(n);
            cvt_f16(h, f32.data(), n);
            sums[(size_t)t] += f32[i % n] + f32[n - 1];
        }
    };
    std::vector<std::thread> th;
    for (int t = 0; t < n_threads; ++t) th.emplace_back(work, t);
    for (auto & x : th) x.join();
    return std::accumulate(sums.begin(), sums.end(), 0.0);
}

struct Measured {
    double sec = -1, rss = -1, cpu = -1;  // wall seconds, peak RSS (MiB), user + system CPU seconds
};

// Runs f in a forked child; returns its wall time, peak RSS and CPU time. The CPU time (all threads) is
// printed too because on a shared machine the wall time also measures the other processes.
template <class F>
Measured measure(F && f) {
    int fd[2];
    if (pipe(fd) != 0) return {};
    const pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        const double t0 = now_s();
        f();
        Measured r{now_s() - t0, 0.0, 0.0};
        rusage ru{};
        getrusage(RUSAGE_SELF, &ru);
        r.rss = (double)ru.ru_maxrss / 1024.0;
        r.cpu = (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
                1e-6 * (double)ru.ru_stime.tv_usec;
        if (write(fd[1], &r, sizeof r) != (ssize_t)sizeof r) _exit(1);
        _exit(0);
    }
    close(fd[1]);
    Measured r;
    if (read(fd[0], &r, sizeof r) != (ssize_t)sizeof r) r = {};
    close(fd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    return r;
}

}  // namespace

int main(int argc, char ** argv) {
    const int n_group = argc > 1 ? std::atoi(argv[1]) : 200;
    // argv[2] = "analyze": write the trace and run only analyze on 2 threads, argv[3] times, in this process
    // (profiling)
    const bool only_analyze = argc > 2 && std::string(argv[2]) == "analyze";
    const std::string root = (fs::temp_directory_path() / "rs_bench_analyze").string();
    const std::string trace = root + "/trace";
    const double t0 = now_s();
    write_trace(trace, n_group);
    const int64_t n_tok = (int64_t)n_group * kLangs * kTok;
    std::printf(
        "synthetic trace: %d groups x %d langs x %d tokens = %lld tokens, %d layers, E=%d, k=%d "
        "(written in %.1f s)\n",
        n_group, kLangs, kTok, (long long)n_tok, kMoe, kExpert, kTopK, now_s() - t0);
    const double tl = (double)n_tok * kMoe;  // token·layers
    if (only_analyze) {
        rs::AnalyzeOptions opt;
        opt.traces = {trace};
        opt.n_threads = 2;
        opt.out_dir = root + "/analysis";
        for (int rep = 0; rep < (argc > 3 ? std::atoi(argv[3]) : 1); ++rep) {  // argv[3]: repetitions
            const double t1 = now_s();
            rs::run_analyze(opt);
            std::printf("analyze threads=2: %.3f s\n", now_s() - t1);
        }
        fs::remove_all(root);
        return 0;
    }
    double floor_s[3] = {0, 0, 0};
    for (int rep = 0; rep < 2; ++rep)  // the first pass also warms the page cache
        for (const int threads : {1, 2}) {
            const auto [sec, rss, cpu] = measure([&] {
                volatile double sink = read_floor(trace, threads);
                (void)sink;
            });
            floor_s[threads] = sec;
            if (rep == 1)
                std::printf(
                    "floor    threads=%d: %6.3f s (cpu %6.3f s)  %.3g tokens*layers/s  peak RSS %.0f MiB  "
                    "(read "
                    "shards + f16->f32)\n",
                    threads, sec, cpu, tl / sec, rss);
        }
    // The same shards under a manifest with SHA-256 digests only, as traces written before the index-part
    // and XXH3-128 digests: readers verify whole shards by their SHA-256 (before issue #14's changes).
    const std::string whole = root + "/trace-sha256";
    fs::create_directories(whole);
    for (const int64_t k : rs::list_shards(trace))
        fs::create_symlink(fs::path(trace) / rs::shard_file_name(k),
                           fs::path(whole) / rs::shard_file_name(k));
    rs::TraceManifest mw = rs::read_manifest(trace);
    mw.shard_index_sha256.clear();
    mw.shard_xxh3_128.clear();
    mw.shard_index_xxh3_128.clear();
    rs::write_manifest(whole, mw);
    double an_s[3] = {0, 0, 0}, ex_s[3] = {0, 0, 0};
    for (const int threads : {1, 2})
        for (const bool xxh3 : {true, false}) {
            rs::AnalyzeOptions opt;
            opt.traces = {xxh3 ? trace : whole};
            opt.n_threads = threads;
            opt.out_dir = root + "/analysis" + std::to_string(threads);
            const auto [sec, rss, cpu] = measure([&] { rs::run_analyze(opt); });
            if (xxh3) an_s[threads] = sec;
            std::printf(
                "analyze  threads=%d: %6.3f s (cpu %6.3f s)  %.3g tokens*layers/s  peak RSS %.0f MiB  %.2fx "
                "floor  (shards verified by %s)\n",
                threads, sec, cpu, tl / sec, rss, sec / floor_s[threads], xxh3 ? "XXH3-128" : "SHA-256");
            if (!xxh3)
                std::printf("analyze  threads=%d: XXH3-128 verification is %.2fx faster\n", threads,
                            sec / an_s[threads]);
        }
    // experts reads and verifies each shard's index part only (SHA-256 of that part); the SHA-256-only
    // manifest makes it read and hash whole shards
    for (const int threads : {1, 2})
        for (const bool index_part : {true, false}) {
            rs::ExpertsOptions opt;
            opt.traces = {index_part ? trace : whole};
            opt.target = "lang=deu_Latn";
            opt.baseline = "lang=eng_Latn";
            opt.n_threads = threads;
            opt.out = root + "/experts.json";
            const auto [sec, rss, cpu] = measure([&] { rs::run_experts(opt); });
            if (index_part) ex_s[threads] = sec;
            std::printf(
                "experts  threads=%d: %6.3f s (cpu %6.3f s)  %.3g tokens*layers/s  peak RSS %.0f MiB  %.2fx "
                "floor  (%s)\n",
                threads, sec, cpu, tl / sec, rss, sec / floor_s[threads],
                index_part ? "index part read and verified"
                           : "whole shards read and verified by SHA-256, as without index digests");
            if (!index_part)
                std::printf("experts  threads=%d: index part only is %.1fx faster\n", threads,
                            sec / ex_s[threads]);
        }
    for (const int threads : {1, 2})
        std::printf("analyze+experts threads=%d: %.3f s = %.2fx the floor (%.3f s) on %d thread%s\n", threads,
                    an_s[threads] + ex_s[threads], (an_s[threads] + ex_s[threads]) / floor_s[threads],
                    floor_s[threads], threads, threads > 1 ? "s" : "");
    fs::remove_all(root);
    return 0;
}
