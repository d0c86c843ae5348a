// `routescope experts`: expert sets by one of four published methods (the work is in rs_analysis):
// delta (Bandarkar et al. 2025, Δ > τ; the default), chen (Chen et al. 2026, shared / exclusive),
// rise (Zheng et al. 2026, tripartite subnetwork), steermoe (Fayyaz et al. 2025, risk difference).
#include <fmt/format.h>

#include "commands.h"
#include "routescope/analysis.h"

namespace rs::cli {

void add_experts(CLI::App & app) {
    auto * cmd = app.add_subcommand(
        "experts",
        "Expert sets: delta (Δ > τ), chen (shared/exclusive), rise (subnetwork), steermoe (risk difference)");
    auto opt = std::make_shared<ExpertsOptions>();
    auto layers = std::make_shared<std::string>();
    auto langs = std::make_shared<std::string>();
    cmd->add_option("traces", opt->traces, "trace directories (of one model)")->required();
    cmd->add_option("--method", opt->method, "delta | chen | rise | steermoe")
        ->check(CLI::IsMember({"delta", "chen", "rise", "steermoe"}))
        ->capture_default_str();
    cmd->add_option("--target", opt->target,
                    "delta: SPEC of the target sequences, e.g. lang=deu_Latn or domain=gsm8k");
    cmd->add_option("--baseline", opt->baseline, "delta: SPEC of the baseline sequences, e.g. lang=eng_Latn");
    cmd->add_flag("--multilingual", opt->multilingual,
                  "delta: Δ of every non-pivot language vs --pivot; the multilingual set is their union");
    cmd->add_option("--pivot", opt->pivot, "delta: pivot language with --multilingual")
        ->capture_default_str();
    cmd->add_option("--tau", opt->tau, "delta: select experts with Δ > τ")->capture_default_str();
    cmd->add_option("--langs", *langs, "chen, rise: languages considered, comma-separated (default: all)");
    cmd->add_option("--top", opt->chen_top, "chen: experts kept per language and layer before the shares")
        ->capture_default_str();
    cmd->add_option("--threshold", opt->chen_threshold,
                    "chen: shared = some share > 0 and all < θ; exclusive = share > θ")
        ->capture_default_str();
    cmd->add_option("--target-lang", opt->target_lang, "rise: the language whose subnetwork is selected");
    cmd->add_option("--budget", opt->rise_budget, "rise: total experts K (default: experts per layer)");
    cmd->add_option("--alpha", opt->rise_alpha, "rise: magnitude weight α of the composite scores")
        ->capture_default_str();
    cmd->add_option("--shallow-ratio", opt->rise_shallow_ratio,
                    "rise: fraction of layers in the shallow zone")
        ->capture_default_str();
    cmd->add_option("--middle-ratio", opt->rise_middle_ratio, "rise: fraction of layers in the middle zone")
        ->capture_default_str();
    cmd->add_option("--shallow-budget", opt->rise_shallow_budget, "rise: fraction of K for the shallow zone")
        ->capture_default_str();
    cmd->add_option("--middle-budget", opt->rise_middle_budget, "rise: fraction of K for the middle zone")
        ->capture_default_str();
    cmd->add_option("--pair-a", opt->pair_a, "steermoe: SPEC of behaviour A (e.g. lang=deu_Latn)");
    cmd->add_option("--pair-b", opt->pair_b, "steermoe: SPEC of behaviour B, over the same parallel groups");
    cmd->add_option("--n-activate", opt->n_activate, "steermoe: experts with RD > 0 to activate")
        ->capture_default_str();
    cmd->add_option("--n-deactivate", opt->n_deactivate, "steermoe: experts with RD < 0 to deactivate")
        ->capture_default_str();
    cmd->add_flag("--reverse", opt->reverse, "steermoe: negate RD (steer towards behaviour B)");
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
        "Examples: lang=deu_Latn   domain=gsm8k   lang=eng_Latn,domain=flores   lang=!eng_Latn   * (all)\n"
        "Methods (sources and differences: README, docs/metrics.md):\n"
        "  delta     --target SPEC --baseline SPEC [--tau] | --multilingual [--pivot]    sets: target | "
        "multilingual, <lang>\n"
        "  chen      [--langs] [--top 15] [--threshold 0.4]  (their steering: --top 20 --threshold 0.7)   "
        "sets: shared, <lang>\n"
        "  rise      --target-lang L [--langs] [--budget K] [--alpha ...]   sets: selected, shallow, middle, "
        "deep\n"
        "  steermoe  --pair-a SPEC --pair-b SPEC --n-activate N --n-deactivate M [--reverse]   sets: "
        "activate, deactivate");
    cmd->callback([opt, layers, langs] {
        if (!layers->empty()) opt->layers = parse_layer_range(*layers);
        if (!langs->empty()) {
            size_t b = 0;
            while (true) {
                const size_t e = langs->find(',', b);
                opt->langs.push_back(langs->substr(b, e == std::string::npos ? std::string::npos : e - b));
                if (e == std::string::npos) break;
                b = e + 1;
            }
        }
        const auto r = run_experts(*opt);
        if (opt->method == "delta")
            fmt::print(
                "experts: {} target / {} baseline sequences, {} experts selected over {} layers in {:.1f} s "
                "-> "
                "{}\n",
                r.n_seq_target, r.n_seq_baseline, r.n_selected, r.n_layers, r.seconds, opt->out);
        else
            fmt::print("experts --method {}: {} experts selected over {} layers in {:.1f} s -> {}\n",
                       opt->method, r.n_selected, r.n_layers, r.seconds, opt->out);
    });
}

}  // namespace rs::cli
