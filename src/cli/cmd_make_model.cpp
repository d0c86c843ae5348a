// `routescope make-model`: write a tiny random-weight MoE GGUF (tests, benchmarks, demo).
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "commands.h"
#include "routescope/make_model.h"

namespace rs::cli {

void add_make_model(CLI::App & app) {
    auto * cmd = app.add_subcommand("make-model", "Write a small random-weight MoE model (GGUF) for tests");
    auto p = std::make_shared<MakeModelParams>();
    auto out = std::make_shared<std::string>();
    cmd->add_option("--arch,-a", p->arch,
                    fmt::format("architecture: {}", fmt::join(make_model_archs(), ", ")))
        ->capture_default_str();
    cmd->add_option("--layers", p->n_layer, "blocks")->capture_default_str();
    cmd->add_option("--experts", p->n_expert, "experts per MoE layer")->capture_default_str();
    cmd->add_option("--top-k", p->top_k, "experts selected per token")->capture_default_str();
    cmd->add_option("--embd", p->n_embd, "embedding size")->capture_default_str();
    cmd->add_option("--ff", p->n_ff, "expert FFN size")->capture_default_str();
    cmd->add_option("--heads", p->n_head, "attention heads")->capture_default_str();
    cmd->add_option("--seed", p->seed, "random seed")->capture_default_str();
    cmd->add_flag("--dense", p->dense, "write a dense (non-MoE) model instead");
    cmd->add_option("--out,-o", *out, "output .gguf file")->required();
    cmd->callback([p, out] {
        make_model(*p, *out);
        fmt::print("make-model: {} ({} layers, {} experts, top-{}; random weights, seed {}) -> {}\n", p->arch,
                   p->n_layer, p->n_expert, p->top_k, p->seed, *out);
    });
}

}  // namespace rs::cli
