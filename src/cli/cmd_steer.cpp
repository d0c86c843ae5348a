// `routescope steer validate SPEC --model M`: check a steering spec against a model and show what
// it will do per block.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "commands.h"
#include "routescope/model.h"
#include "routescope/steer.h"

namespace rs::cli {

void add_steer(CLI::App & app) {
    auto * cmd = app.add_subcommand("steer", "Steering specs: validate against a model");
    cmd->require_subcommand(1);
    auto * val =
        cmd->add_subcommand("validate", "Check a steering spec (layers, experts, λ) against a model");
    auto spec = std::make_shared<std::string>();
    auto model = std::make_shared<std::string>();
    val->add_option("spec", *spec, "steering spec (JSON)")->required();
    val->add_option("--model,-m", *model, "GGUF model file")->required();
    val->callback([spec, model] {
        const ModelInfo mi = inspect_model(*model);
        const SteerPlan plan = load_steer_plan(*spec, mi);
        fmt::print("steer: {} is valid for {} ({} blocks, {} experts, top-{})\n", *spec, mi.arch, mi.n_layer,
                   mi.n_expert, mi.top_k);
        static const char * names[] = {"soft", "force", "suppress"};
        for (size_t il = 0; il < plan.ops.size(); ++il)
            for (const auto & op : plan.ops[il]) {
                std::string how = names[(int)op.method];
                if (op.method == SteerMethod::soft) how += fmt::format(" λ={}", op.lambda);
                if (op.method == SteerMethod::suppress) how += fmt::format(" margin={}", op.margin);
                fmt::print("  block {:3d}: {:<16} experts {}\n", il, how, op.experts);
            }
        if (plan.empty()) fmt::print("  (no rules: steering off)\n");
        for (const auto & w : plan.warnings) fmt::print("  warning: {}\n", w);
    });
}

}  // namespace rs::cli
