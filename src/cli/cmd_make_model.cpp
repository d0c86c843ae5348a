// `routescope make-model`: write a tiny random-weight MoE GGUF (tests, benchmarks, demo).
#include <algorithm>
#include <cstdio>
#include <filesystem>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "commands.h"
#include "routescope/common.h"
#include "routescope/make_model.h"

namespace rs::cli {

void add_make_model(CLI::App & app) {
    auto * cmd = app.add_subcommand("make-model", "Write a small random-weight MoE model (GGUF) for tests");
    auto p = std::make_shared<MakeModelParams>();
    auto out = std::make_shared<std::string>();
    auto quant = std::make_shared<std::string>();
    auto list = std::make_shared<bool>(false);
    cmd->add_option("--arch,-a", p->arch, "architecture (--list-archs lists them)")->capture_default_str();
    cmd->add_flag("--list-archs", *list,
                  "print every architecture make-model can write, one per line, and exit");
    cmd->add_option("--layers", p->n_layer, "blocks (MTP/nextn blocks included)")->capture_default_str();
    cmd->add_option("--experts", p->n_expert, "experts per MoE layer")->capture_default_str();
    cmd->add_option("--top-k", p->top_k, "experts selected per token")->capture_default_str();
    cmd->add_option("--embd", p->n_embd, "embedding size")->capture_default_str();
    cmd->add_option("--ff", p->n_ff, "expert FFN size")->capture_default_str();
    cmd->add_option("--heads", p->n_head, "attention heads")->capture_default_str();
    cmd->add_option("--seed", p->seed, "random seed")->capture_default_str();
    cmd->add_option("--stdev", p->stdev, "weights ~ N(0, stdev) (0.1 routes like a trained model)")
        ->capture_default_str();
    cmd->add_flag("--dense", p->dense, "write a dense (non-MoE) model instead (hand-written archs)");
    cmd->add_option("--dense-lead", p->dense_lead, "leading dense blocks (generic archs; default 1)");
    cmd->add_option("--moe-step", p->moe_step, "a MoE layer every N blocks (llama4-style interleaving)");
    cmd->add_option("--shared", p->n_shared, "shared experts (generic archs; default 1)");
    cmd->add_option("--nextn", p->nextn, "MTP / nextn blocks among --layers (glm4moe, qwen3next, ...)");
    cmd->add_option("--groups", p->n_group, "expert groups (DeepSeek-V3 group-limited routing)");
    cmd->add_option("--groups-used", p->n_group_used, "groups selected per token");
    cmd->add_flag("--selection-bias", p->selection_bias, "random exp_probs_b (selection-only bias)");
    cmd->add_option("--hash-layers", p->hash_layers, "deepseek4: leading hash-routed layers");
    cmd->add_option("--gating", p->gating,
                    "expert_gating_func: 1 softmax, 2 sigmoid, 3 softmax-weight, 4 sqrt-softplus");
    cmd->add_option("--router-type", p->router_type, "router weight storage: f32, f16, bf16");
    cmd->add_option("--quantize", *quant, "quantise the model: Q8_0 or Q4_K_M (router stays --router-type)");
    cmd->add_option("--out,-o", *out, "output .gguf file");
    cmd->callback([p, out, quant, list] {
        if (*list) {
            for (const auto & a : make_model_all_archs()) fmt::print("{}\n", a);
            return;
        }
        if (out->empty()) throw Error("make-model: --out is required (the .gguf file to write)");
        const auto qtypes = quantize_types();
        if (!quant->empty() && std::find(qtypes.begin(), qtypes.end(), *quant) == qtypes.end())
            throw Error(fmt::format("make-model: unknown quantisation '{}' (use {})", *quant,
                                    fmt::join(qtypes, " or ")));
        if (quant->empty()) {
            make_model(*p, *out);
        } else {
            const std::string tmp = *out + ".f32.tmp";
            make_model(*p, tmp);
            try {
                quantize_model(tmp, *out, *quant);
            } catch (...) {
                std::filesystem::remove(tmp);
                throw;
            }
            std::filesystem::remove(tmp);
        }
        fmt::print("make-model: {} ({} layers, {} experts, top-{}; random weights, seed {}{}) -> {}\n",
                   p->arch, p->n_layer, p->n_expert, p->top_k, p->seed, quant->empty() ? "" : ", " + *quant,
                   *out);
    });
}

}  // namespace rs::cli
