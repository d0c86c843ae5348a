// Recording overhead (issue #2): tokens/s of plain llama.cpp decoding vs decoding with the router
// tap vs the whole `trace` pipeline (tap + softmax + f16 + shard writes), same model, corpus, batch
// and threads, measured in one run, repetitions interleaved; reports medians and ratios, plus
// trace bytes per token per MoE layer. Not a test: prints numbers, asserts nothing about time.
// "tap, whole graph" is the tap before issue #11's early stop (EngineParams::record_stops_early = false:
// the last layer's experts and the full-vocabulary output are computed although nobody reads them).
//
// usage: bench_record_overhead [--layers 8] [--experts 32] [--top-k 4] [--embd 128] [--groups 40] [--reps 5]
//                              [--threads 2] [--gpu-layers 0] [--wide]   (--wide: issue #11's model, embd
//                              384, 64 experts, top-8) [--model PATH]   (an existing GGUF instead of a
//                              generated one, e.g. models/tiny-polyglot-moe.gguf: plain decoding of it is the
//                              ceiling of any recorder built on llama.cpp, see bench_eager_vs_trace.sh)
//                              [--langs eng_Latn,deu_Latn,zho_Hans,swh_Latn]   (FLoRes devtest languages)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "routescope/corpus.h"
#include "routescope/engine.h"
#include "routescope/make_model.h"
#include "routescope/record.h"
#include "routescope/trace.h"

namespace fs = std::filesystem;

static double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

int main(int argc, char ** argv) {
    int layers = 8, experts = 32, top_k = 4, embd = 128, groups = 40, reps = 5, threads = 2, gpu_layers = 0;
    std::string model;
    std::vector<std::string> langs = {"eng_Latn", "deu_Latn", "zho_Hans", "swh_Latn"};
    for (int i = 1; i < argc; ++i)
        if (std::string(argv[i]) == "--wide") embd = 384, experts = 64, top_k = 8, layers = 8;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        if (a == "--wide") {
            --i;
            continue;
        }
        if (a == "--model") {
            model = argv[i + 1];
            continue;
        }
        if (a == "--langs") {
            langs.clear();
            std::stringstream list(argv[i + 1]);
            for (std::string l; std::getline(list, l, ',');) langs.push_back(l);
            continue;
        }
        const int v = std::atoi(argv[i + 1]);
        if (a == "--layers")
            layers = v;
        else if (a == "--experts")
            experts = v;
        else if (a == "--top-k")
            top_k = v;
        else if (a == "--embd")
            embd = v;
        else if (a == "--groups")
            groups = v;
        else if (a == "--reps")
            reps = v;
        else if (a == "--threads")
            threads = v;
        else if (a == "--gpu-layers")
            gpu_layers = v;
    }
    const fs::path dir = fs::temp_directory_path() / "rs_bench_record";
    fs::create_directories(dir);
    const bool generated = model.empty();
    if (generated) {
        rs::MakeModelParams mp;
        mp.arch = "olmoe";
        mp.n_layer = layers, mp.n_expert = experts, mp.top_k = top_k, mp.n_embd = embd, mp.n_ff = embd;
        model = (dir / "bench.gguf").string();
        rs::make_model(mp, model);
    }

    const std::string corpus = "flores:" + std::string(RS_SOURCE_DIR) + "/data/flores200/devtest";
    rs::EngineParams ep;
    ep.n_threads = threads;
    ep.n_gpu_layers = gpu_layers;
    ep.n_batch = 1024;
    rs::Engine tapped(model, ep);
    ep.record_stops_early = false;
    rs::Engine tapped_whole(model, ep);
    ep.tap = false;
    rs::Engine plain(model, ep);
    const auto c = rs::load_corpus(corpus, {langs, groups});
    std::vector<std::vector<int32_t>> toks;
    int64_t n_tok = 0;
    for (const auto & s : c.seqs) {
        toks.push_back(plain.tokenize(s.text, 256));
        n_tok += (int64_t)toks.back().size();
    }

    auto timed = [](auto && f) {
        const auto t0 = std::chrono::steady_clock::now();
        f();
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    };
    rs::TraceJob job;
    job.model = model, job.corpus = corpus, job.langs = langs, job.limit = groups, job.n_threads = threads;
    job.n_gpu_layers = gpu_layers;
    job.progress = false;
    std::vector<double> t_plain, t_whole, t_tap, t_trace;
    plain.decode(toks);  // warm caches once
    for (int r = 0; r < reps; ++r) {
        t_plain.push_back(timed([&] { plain.decode(toks); }));
        t_whole.push_back(timed([&] { tapped_whole.record(toks); }));
        t_tap.push_back(timed([&] { tapped.record(toks); }));
        job.out = (dir / ("trace" + std::to_string(r))).string();
        fs::remove_all(job.out);
        t_trace.push_back(timed([&] { rs::run_trace(job); }));
    }
    const rs::ModelInfo & mi = tapped.info();
    const int moe_layers = (int)mi.moe_layers.size();
    const double p = median(t_plain), g = median(t_whole), t = median(t_tap), w = median(t_trace);
    int64_t bytes = 0;
    for (const auto & e : fs::directory_iterator(job.out))
        if (e.path().extension() == ".safetensors") bytes += (int64_t)fs::file_size(e.path());

    std::printf(
        "model: %s (%s), %d layers (%d MoE), %d experts, top-%d; corpus: %zu FLoRes sequences, %lld tokens; "
        "%d threads, %d layers offloaded; medians of %d interleaved runs\n",
        (generated ? "generated, embd " + std::to_string(embd) : fs::path(model).filename().string()).c_str(),
        mi.arch.c_str(), mi.n_layer, moe_layers, mi.n_expert, mi.top_k, toks.size(), (long long)n_tok,
        threads, gpu_layers, reps);
    std::printf("plain decoding       %9.0f tok/s\n", n_tok / p);
    std::printf("tap, whole graph     %9.0f tok/s   ratio %.3f (overhead %+.1f%%)\n", n_tok / g, p / g,
                (g / p - 1) * 100);
    std::printf(
        "decoding + tap       %9.0f tok/s   ratio %.3f (overhead %+.1f%%; stops after the last router)\n",
        n_tok / t, p / t, (t / p - 1) * 100);
    std::printf(
        "trace (tap + store)  %9.0f tok/s   ratio %.3f (overhead %+.1f%%; includes model hashing, "
        "tokenizing, writing)\n",
        n_tok / w, p / w, (w / p - 1) * 100);
    std::printf(
        "trace size           %.1f bytes per token per MoE layer (f16 p: %d B + i16 top-k: %d B + shard "
        "metadata)\n",
        (double)bytes / (double)n_tok / moe_layers, 2 * mi.n_expert, 2 * mi.top_k);
    fs::remove_all(dir);
    return 0;
}
