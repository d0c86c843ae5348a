// `routescope compare BASE_DIR STEERED_DIR`: the paper's Table 2 from two eval directories (per-language
// accuracy, Δ with paired bootstrap CI and McNemar p, non-pivot and low-resource averages with a sign test).
#include <fmt/format.h>

#include "commands.h"
#include "routescope/eval_compare.h"

namespace rs::cli {

void add_compare(CLI::App & app) {
    auto * cmd =
        app.add_subcommand("compare", "Base vs steered accuracy per language with significance (Table 2)");
    struct Opts {
        std::string base, steered, task, out, low;
        CompareOptions c;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("base", o->base, "eval directory of the base run")->required();
    cmd->add_option("steered", o->steered, "eval directory of the steered run")->required();
    cmd->add_option("--task", o->task, "compare only this task (default: every task both runs have)");
    cmd->add_option("--pivot", o->c.pivot, "language left out of the averages and the sign test")
        ->capture_default_str();
    cmd->add_option("--low-resource", o->low,
                    "comma-separated low-resource set (default: ben_Beng,swh_Latn,tel_Telu)");
    cmd->add_option("--resamples", o->c.bootstrap.n_resamples, "bootstrap resamples")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    cmd->add_option("--seed", o->c.bootstrap.seed, "bootstrap seed")->capture_default_str();
    cmd->add_option("--out,-o", o->out,
                    "where compare.md and compare.csv go (default: the steered directory)");
    cmd->callback([o] {
        if (!o->low.empty()) o->c.low_resource = split_list(o->low);
        const std::string out = o->out.empty() ? o->steered : o->out;
        const auto tables = compare_result_dirs(o->base, o->steered, o->task, o->c, out);
        for (const auto & t : tables) fmt::print("{}\n", comparison_markdown(t));
        fmt::print("compare: {} table{} -> {}/compare.md, compare.csv\n", tables.size(),
                   tables.size() == 1 ? "" : "s", out);
    });
}

}  // namespace rs::cli
