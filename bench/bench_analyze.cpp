// Benchmark of `analyze` (and `experts`) on a synthetic trace shaped like Qwen3-30B-A3B: 48 MoE layers,
// 128 experts, top-8; 4 languages × G parallel groups × 60 tokens (G = 200 by default, argv[1] overrides).
// p is a random peaked distribution per token and layer, the top-k ids the k largest p. Prints throughput
// in tokens·layers per second for 1 and 2 threads and the peak resident memory of each run (each run is
// a forked child so its ru_maxrss is its own). No asserts.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <string>

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
    rs::SplitMix64 rng(1);
    std::vector<float> w(kExpert);
    std::vector<int16_t> ids(kExpert);
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
            for (int t = 0; t < kTok; ++t) {
                s.tokens.push_back(t);
                for (int l = 0; l < kMoe; ++l) {
                    float sum = 0.0f;
                    for (auto & v : w) {  // peaked ("Dirichlet-ish"): u^6, u uniform
                        const float u = (float)(rng.next() >> 40) / (float)(1 << 24);
                        sum += v = u * u * u * u * u * u + 1e-4f;
                    }
                    for (auto & v : w) v /= sum;
                    s.probs.insert(s.probs.end(), w.begin(), w.end());
                    std::iota(ids.begin(), ids.end(), 0);
                    std::partial_sort(ids.begin(), ids.begin() + kTopK, ids.end(),
                                      [&](int16_t a, int16_t b) { return w[(size_t)a] > w[(size_t)b]; });
                    s.topk.insert(s.topk.end(), ids.begin(), ids.begin() + kTopK);
                }
            }
        }
        rs::write_shard(dir, sh, m, s);
    }
}

// Runs f in a forked child; returns {seconds, peak RSS in MiB} of the child.
template <class F>
std::pair<double, double> measure(F && f) {
    int fd[2];
    if (pipe(fd) != 0) return {-1, -1};
    const pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        const double t0 = now_s();
        f();
        double r[2] = {now_s() - t0, 0.0};
        rusage ru{};
        getrusage(RUSAGE_SELF, &ru);
        r[1] = (double)ru.ru_maxrss / 1024.0;
        if (write(fd[1], r, sizeof r) != (ssize_t)sizeof r) _exit(1);
        _exit(0);
    }
    close(fd[1]);
    double r[2] = {-1, -1};
    if (read(fd[0], r, sizeof r) != (ssize_t)sizeof r) r[0] = r[1] = -1;
    close(fd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    return {r[0], r[1]};
}

}  // namespace

int main(int argc, char ** argv) {
    const int n_group = argc > 1 ? std::atoi(argv[1]) : 200;
    const std::string root = (fs::temp_directory_path() / "rs_bench_analyze").string();
    const std::string trace = root + "/trace";
    const double t0 = now_s();
    write_trace(trace, n_group);
    const int64_t n_tok = (int64_t)n_group * kLangs * kTok;
    std::printf(
        "synthetic trace: %d groups x %d langs x %d tokens = %lld tokens, %d layers, E=%d, k=%d "
        "(written in %.1f s)\n",
        n_group, kLangs, kTok, (long long)n_tok, kMoe, kExpert, kTopK, now_s() - t0);
    for (const int threads : {1, 2}) {
        rs::AnalyzeOptions opt;
        opt.traces = {trace};
        opt.n_threads = threads;
        opt.out_dir = root + "/analysis" + std::to_string(threads);
        const auto [sec, rss] = measure([&] { rs::run_analyze(opt); });
        std::printf("analyze  threads=%d: %6.2f s  %.3g tokens*layers/s  peak RSS %.0f MiB\n", threads, sec,
                    (double)n_tok * kMoe / sec, rss);
    }
    for (const int threads : {1, 2}) {
        rs::ExpertsOptions opt;
        opt.traces = {trace};
        opt.target = "lang=deu_Latn";
        opt.baseline = "lang=eng_Latn";
        opt.n_threads = threads;
        opt.out = root + "/experts.json";
        const auto [sec, rss] = measure([&] { rs::run_experts(opt); });
        std::printf("experts  threads=%d: %6.2f s  %.3g tokens*layers/s  peak RSS %.0f MiB\n", threads, sec,
                    (double)n_tok * kMoe / sec, rss);
    }
    fs::remove_all(root);
    return 0;
}
