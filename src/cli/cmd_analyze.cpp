// `routescope analyze`: divergence, entropy, consistency, pairwise/cluster, isolation, domain and summary
// tables from one or more traces (the work is in rs_analysis, analysis.h).
#include <fmt/format.h>

#include "commands.h"
#include "routescope/analysis.h"

namespace rs::cli {

void add_analyze(CLI::App & app) {
    auto * cmd = app.add_subcommand(
        "analyze",
        "Routing divergence from a pivot, entropy, consistency, language clusters and more (CSV/JSON)");
    auto opt = std::make_shared<AnalyzeOptions>();
    auto middle = std::make_shared<std::string>();
    cmd->add_option("traces", opt->traces, "trace directories (of one model)")->required();
    cmd->add_option("--pivot", opt->pivot, "pivot language of the divergence")->capture_default_str();
    cmd->add_option("--scores", opt->scores, "TSV lang<TAB>score with a header: correlate with divergence");
    cmd->add_option("--middle", *middle, "middle layers FIRST:LAST (block indices; default: automatic)");
    cmd->add_option("--seed", opt->seed, "seed of the consistency pairs and the bootstrap")
        ->capture_default_str();
    cmd->add_option("--bootstrap", opt->bootstrap_resamples, "bootstrap resamples")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    cmd->add_option("--threads,-t", opt->n_threads, "CPU threads (0: all cores)")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    cmd->add_option("--pooling", opt->pooling,
                    "per-sequence q: softmax (mean p_t, the paper; default) or gate (top-k weights "
                    "renormalised, the authors' code)")
        ->check(CLI::IsMember({"softmax", "gate"}));
    cmd->add_option("--entropy", opt->entropy,
                    "token (mean H over tokens, the paper) or pooled (mean H(q) over sequences, the "
                    "authors' code)")
        ->check(CLI::IsMember({"token", "pooled"}))
        ->capture_default_str();
    cmd->add_option("--normaliser", opt->normaliser,
                    "D_H-JS when log E - (H(a)+H(b))/2 vanishes: undefined (below 1e-6 log E, skipped) or "
                    "clamp (max(.., 1e-6), the authors' code)")
        ->check(CLI::IsMember({"undefined", "clamp"}))
        ->capture_default_str();
    cmd->add_option("--out,-o", opt->out_dir, "output directory")->required();
    cmd->footer(
        "Writes divergence.csv, entropy.csv, consistency.csv, pairwise.csv, isolation.csv, "
        "experts_rise.csv,\n"
        "domains.csv, clusters.json, summary.json (and correlation.csv with --scores); see analysis.h.\n"
        "A trace recorded with --store topk gives consistency.csv, isolation.csv, experts_rise.csv and "
        "summary.json only,\nunless --pooling gate (which needs only the top-k ids and their p).");
    cmd->callback([opt, middle] {
        if (!middle->empty()) opt->middle = parse_layer_range(*middle);
        const auto r = run_analyze(*opt);
        fmt::print(
            "analyze: {} sequences, {} tokens, {} layers, {} languages in {:.1f} s; middle layers {} -> {}\n",
            r.n_sequences, r.n_tokens, r.n_layers, r.n_langs, r.seconds,
            r.middle_first < 0
                ? std::string("none")
                : fmt::format("{}:{}{}", r.middle_first, r.middle_last, r.middle_auto ? " (auto)" : ""),
            opt->out_dir);
        if (r.topk_only)
            fmt::print(
                "analyze: a trace was recorded with --store topk (no full p_t): wrote consistency, "
                "isolation, "
                "experts_rise and summary only; divergence, entropy, pairwise, clusters and domains need "
                "--store full\n");
    });
}

}  // namespace rs::cli
