// `routescope sweep`: grid search of steering configurations on a dev split, reported on held-out items
// (the work is in rs_eval_runs, sweep.h).
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "routescope/common.h"
#include "routescope/sweep.h"

namespace rs::cli {
namespace {

std::vector<double> parse_doubles(const std::string & s, const char * what) {
    std::vector<double> out;
    for (const auto & v : split_list(s)) {
        try {
            size_t n = 0;
            out.push_back(std::stod(v, &n));
            if (n != v.size()) throw std::invalid_argument(v);
        } catch (const std::exception &) {
            throw Error(fmt::format("{}: '{}' is not a number", what, v));
        }
    }
    return out;
}

// "middle" → the middle-layer range of an `analyze` summary.json.
LayerRange middle_range(const std::string & analysis_dir) {
    if (analysis_dir.empty()) throw Error("--layers middle needs --analysis DIR (an `analyze` output)");
    const auto path = std::filesystem::path(analysis_dir) / "summary.json";
    std::ifstream f(path);
    if (!f) throw Error(fmt::format("{} not found (run `routescope analyze` first)", path.string()));
    const auto j = nlohmann::json::parse(f, nullptr, false);
    if (j.is_discarded() || !j.contains("middle_layers") || j["middle_layers"].is_null())
        throw Error(fmt::format("{} has no middle-layer range; give --layers a:b", path.string()));
    return {j["middle_layers"].value("first", 0), j["middle_layers"].value("last", 0)};
}

}  // namespace

void add_sweep(CLI::App & app) {
    auto * cmd = app.add_subcommand(
        "sweep", "Grid of steering configurations (layers × τ × method × λ) tuned on dev, reported on test");
    auto job = std::make_shared<SweepJob>();
    struct Raw {
        std::string langs, layers, taus = "0.3", methods = "soft", lambdas = "0.5", low, analysis;
    };
    auto raw = std::make_shared<Raw>();
    job->data.data_dir = default_data_dir();
    cmd->add_option("--model,-m", job->model, "GGUF model file")->required();
    cmd->add_option("--task", job->task, "mgsm | mmlu-med | belebele")->required();
    cmd->add_option("--experts", job->experts, "experts.json from `routescope experts` (its Δ)")->required();
    cmd->add_option("--layers", raw->layers,
                    "comma-separated block ranges a:b, or 'middle' (with --analysis)")
        ->required();
    cmd->add_option("--analysis", raw->analysis, "an `analyze` output directory (for --layers middle)");
    cmd->add_option("--tau", raw->taus, "comma-separated thresholds τ (Δ_e > τ)")->capture_default_str();
    cmd->add_option("--method", raw->methods, "comma-separated: soft, force, suppress")
        ->capture_default_str();
    cmd->add_option("--lambda", raw->lambdas, "comma-separated λ for soft")->capture_default_str();
    cmd->add_option("--delta-of", job->delta_of,
                    "use the Δ of this language (experts --multilingual output)");
    cmd->add_option("--langs,-l", raw->langs, "comma-separated languages (default: all the task's data has)");
    cmd->add_option("--shots", job->n_shot, "MGSM exemplars")->capture_default_str();
    cmd->add_option("--limit", job->limit, "items per language before the split")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--dev-fraction", job->dev_fraction, "share of items tuned on")->capture_default_str();
    cmd->add_option("--seed", job->seed, "split and force-jitter seed")->capture_default_str();
    cmd->add_option("--pivot", job->pivot, "language left out of the dev score")->capture_default_str();
    cmd->add_option("--low-resource", raw->low, "low-resource set of the test table");
    cmd->add_option("--out,-o", job->out, "output directory")->required();
    cmd->add_option("--data", job->data.data_dir,
                    "the data directory (default: data/ shipped with routescope, or $ROUTESCOPE_DATA)")
        ->capture_default_str();
    cmd->add_option("--gmmlu", job->data.gmmlu_dir, "directory of Global-MMLU CSV files");
    cmd->add_option("--belebele", job->data.belebele_dir, "directory of Belebele jsonl files");
    cmd->add_option("--max-new-tokens", job->max_new_tokens, "MGSM: generation limit")->capture_default_str();
    cmd->add_option("--batch", job->n_batch, "tokens per llama_decode")->capture_default_str();
    cmd->add_option("--ctx", job->n_ctx, "KV cache tokens")->capture_default_str();
    cmd->add_option("--threads,-t", job->n_threads, "CPU threads (0: all cores)")->capture_default_str();
    cmd->add_option("--gpu-layers,--ngl", job->n_gpu_layers, "layers to offload to a GPU")
        ->capture_default_str();
    cmd->add_flag("--no-progress{false}", job->progress, "do not print progress lines");
    cmd->footer("Resumable: re-run the same command to continue. See sweep.h for the files written.");
    cmd->callback([job, raw] {
        job->langs = split_list(raw->langs);
        for (const auto & r : split_list(raw->layers))
            job->layer_ranges.push_back(r == "middle" ? middle_range(raw->analysis) : parse_layer_range(r));
        job->taus = parse_doubles(raw->taus, "--tau");
        job->methods = split_list(raw->methods);
        job->lambdas = parse_doubles(raw->lambdas, "--lambda");
        if (!raw->low.empty()) job->low_resource = split_list(raw->low);
        const auto r = run_sweep(*job);
        fmt::print("sweep: {} configurations, {} dev / {} test items, {:.1f} s; dev score base {:.2f}%\n",
                   r.configs.size(), r.n_dev_items, r.n_test_items, r.seconds, 100 * r.base_dev_score);
        for (size_t i = 0; i < r.configs.size(); ++i) {
            const auto & c = r.configs[i];
            if (c.skipped)
                fmt::print("  {:<32} (no experts)\n", c.name);
            else
                fmt::print("  {:<32} {:3d} experts  dev {:6.2f}% ({:+.2f}){}\n", c.name, c.n_experts,
                           100 * c.dev_score, 100 * (c.dev_score - r.base_dev_score),
                           (int)i == r.best ? "  <- best" : "");
        }
        for (const auto & t : r.test)
            fmt::print("\nheld-out test, base vs {}:\n{}", r.configs[(size_t)r.best].name,
                       comparison_markdown(t));
        fmt::print("sweep: -> {}/sweep.csv, best_steer.json, compare.md\n", job->out);
    });
}

}  // namespace rs::cli
