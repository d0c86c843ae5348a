// Steering overhead (issue #4): evaluation tokens/s of the same model on the same items without steering
// (no eval callback) and with an active spec (soft λ·std(z) shift, or hard force, on the middle half of the
// MoE blocks), through the real eval loop (evaluate_prompts: tokenisation, decoding, scoring, results.csv),
// for multiple choice (Belebele, one decode per context) and generation (MGSM, greedy). Repetitions are
// interleaved; medians and ratios are printed. Not a test: asserts nothing about time.
//
// usage: bench_steer_overhead [--model M.gguf] [--items 48] [--gen-items 16] [--reps 3] [--threads 2]
//   without --model a generated OLMoE-style model (8 layers, 32 experts, top-4, embd 128) is used.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "routescope/engine.h"
#include "routescope/evaluate.h"
#include "routescope/make_model.h"
#include "routescope/steer.h"

namespace fs = std::filesystem;

static double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

int main(int argc, char ** argv) {
    std::string model;
    int items = 48, gen_items = 16, reps = 3, threads = 2;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i], v = argv[i + 1];
        if (a == "--model")
            model = v;
        else if (a == "--items")
            items = std::atoi(v.c_str());
        else if (a == "--gen-items")
            gen_items = std::atoi(v.c_str());
        else if (a == "--reps")
            reps = std::atoi(v.c_str());
        else if (a == "--threads")
            threads = std::atoi(v.c_str());
    }
    const fs::path dir = fs::temp_directory_path() / "rs_bench_steer";
    fs::remove_all(dir);
    fs::create_directories(dir);
    if (model.empty()) {
        rs::MakeModelParams mp;
        mp.arch = "olmoe";
        mp.n_layer = 8, mp.n_expert = 32, mp.top_k = 4, mp.n_embd = 128, mp.n_ff = 128, mp.stdev = 0.1f;
        model = (dir / "bench.gguf").string();
        rs::make_model(mp, model);
    }
    rs::EngineParams ep;
    ep.n_threads = threads;
    ep.n_batch = 2048;
    ep.n_ctx = 8192;
    ep.n_seq_max = 32;
    ep.tap = false;
    rs::Engine plain(model, ep);
    ep.tap = true;
    rs::Engine steered(model, ep);
    const rs::ModelInfo & mi = plain.info();

    // the middle half of the MoE blocks, four experts (soft) or one (force)
    const auto & ml = mi.moe_layers;
    const int a = ml[ml.size() / 4], b = ml[std::max<size_t>(ml.size() / 4, 3 * ml.size() / 4 - 1)];
    const auto spec = [&](const char * method) {
        return rs::steer_plan_from_json(
            nlohmann::json::parse(fmt::format(
                R"({{"rules": [{{"layers": "{}:{}", "experts": {}, "method": "{}", "lambda": 0.5}}]}})", a, b,
                std::string(method) == "soft" ? "[0, 1, 2, 3]" : "[1]", method)),
            mi, ".");
    };

    const rs::EvalData data{std::string(RS_SOURCE_DIR) + "/data", "", ""};
    auto mc = rs::eval_task_prompts(rs::EvalTask::belebele, "eng_Latn", data, 0);
    mc.resize((size_t)items);
    auto gen = rs::eval_task_prompts(rs::EvalTask::mgsm, "eng_Latn", data, 2);
    gen.resize((size_t)gen_items);

    struct Run {
        const char * name;
        rs::Engine * engine;
        const char * method;  // nullptr: no plan
    };
    const Run runs[] = {{"no steering (no callback)", &plain, nullptr},
                        {"tap installed, empty spec", &steered, nullptr},
                        {"soft λ=0.5, 4 experts", &steered, "soft"},
                        {"force, 1 expert", &steered, "force"}};
    std::printf(
        "model: %s (%s, %zu MoE blocks, %d experts, top-%d); steered blocks %d:%d; %d threads; medians of %d "
        "interleaved runs\n",
        fs::path(model).filename().c_str(), mi.arch.c_str(), ml.size(), mi.n_expert, mi.top_k, a, b, threads,
        reps);
    for (const bool generation : {false, true}) {
        const auto & prompts = generation ? gen : mc;
        const rs::EvalTask task = generation ? rs::EvalTask::mgsm : rs::EvalTask::belebele;
        std::vector<std::vector<double>> tps(std::size(runs));
        int run_id = 0;
        for (int r = 0; r < reps; ++r)
            for (size_t k = 0; k < std::size(runs); ++k) {
                runs[k].engine->set_steering(runs[k].method ? spec(runs[k].method) : rs::SteerPlan{});
                const std::string out = (dir / fmt::format("run{}", run_id++)).string();
                rs::EvalLoopOptions lo;
                lo.max_new_tokens = 32;
                lo.steered = runs[k].method != nullptr;
                lo.progress = false;
                const auto c = rs::evaluate_prompts(*runs[k].engine, task, prompts, out, lo);
                tps[k].push_back((double)c.n_tokens / c.seconds);
                fs::remove_all(out);
            }
        std::printf("%s (%zu items):\n",
                    generation ? "MGSM generation, greedy, ≤32 new tokens" : "Belebele multiple choice",
                    prompts.size());
        const double base = median(tps[0]);
        for (size_t k = 0; k < std::size(runs); ++k) {
            const double m = median(tps[k]);
            std::printf("  %-28s %9.0f tok/s   ratio %.3f (overhead %+.1f%%)\n", runs[k].name, m, m / base,
                        (base / m - 1) * 100);
        }
    }
    fs::remove_all(dir);
    return 0;
}
