// `routescope experts`: specialised experts by Δ of activation frequency (Eq. 3) between two selections of
// sequences, or multilingual experts of every language vs the pivot (the work is in rs_analysis).
#include <fmt/format.h>

#include "commands.h"
#include "routescope/analysis.h"

namespace rs::cli {

void add_experts(CLI::App & app) {
    auto * cmd =
        app.add_subcommand("experts", "Specialised experts: Δ of activation frequency > τ (JSON + CSV)");
    auto opt = std::make_shared<ExpertsOptions>();
    auto layers = std::make_shared<std::string>();
    cmd->add_option("traces", opt->traces, "trace directories (of one model)")->required();
    cmd->add_option("--target", opt->target,
                    "SPEC of the target sequences, e.g. lang=deu_Latn or domain=gsm8k");
    cmd->add_option("--baseline", opt->baseline, "SPEC of the baseline sequences, e.g. lang=eng_Latn");
    cmd->add_flag("--multilingual", opt->multilingual,
                  "Δ of every non-pivot language vs --pivot; the multilingual set is their union");
    cmd->add_option("--pivot", opt->pivot, "pivot language with --multilingual")->capture_default_str();
    cmd->add_option("--tau", opt->tau, "select experts with Δ > τ")->capture_default_str();
    cmd->add_option("--layers", *layers, "restrict to layers FIRST:LAST (block indices)");
    cmd->add_option("--threads,-t", opt->n_threads, "CPU threads (0: all cores)")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    cmd->add_option("--out,-o", opt->out, "output JSON (the input of steering)")->required();
    cmd->add_option("--csv", opt->out_csv, "output CSV (default: --out with .csv)");
    cmd->footer(
        "SPEC: comma-separated KEY=VALUE terms that must all hold. KEY: lang, domain, or trace (0-based "
        "position\n"
        "on the command line). VALUE: a name, names joined by '|', '*' (any), or '!' + names (none of "
        "them).\n"
        "Examples: lang=deu_Latn   domain=gsm8k   lang=eng_Latn,domain=flores   lang=!eng_Latn   * (all)");
    cmd->callback([opt, layers] {
        if (!layers->empty()) opt->layers = parse_layer_range(*layers);
        const auto r = run_experts(*opt);
        fmt::print(
            "experts: {} target / {} baseline sequences, {} experts selected over {} layers in {:.1f} s -> "
            "{}\n",
            r.n_seq_target, r.n_seq_baseline, r.n_selected, r.n_layers, r.seconds, opt->out);
    });
}

}  // namespace rs::cli
