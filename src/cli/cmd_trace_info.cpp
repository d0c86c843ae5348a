// `routescope trace-info DIR`: the manifest and a shape summary of a trace directory.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "commands.h"
#include "routescope/trace.h"

namespace rs::cli {

void add_trace_info(CLI::App & app) {
    auto * cmd = app.add_subcommand("trace-info", "Print a trace's manifest and shape summary");
    auto dir = std::make_shared<std::string>();
    auto json = std::make_shared<bool>(false);
    cmd->add_option("dir", *dir, "trace directory")->required();
    cmd->add_flag("--json", *json, "print manifest.json as is");
    cmd->callback([dir, json] {
        const TraceManifest m = read_manifest(*dir);
        if (*json) {
            fmt::print("{}\n", manifest_to_json(m).dump(2));
            return;
        }
        const auto shards = list_shards(*dir);
        int64_t n_seq = 0, n_tok = 0;
        for (int64_t k : shards) {
            const auto s = read_shard(*dir, m, k);
            n_seq += (int64_t)s.seqs.size();
            n_tok += s.n_tok();
        }
        const int L = (int)m.moe_layers.size();
        const int p_width = m.store == "topk" ? m.top_k : m.n_expert;  // topk_probs instead of probs
        const double bytes_tok_layer = (m.probs_dtype == "f16" ? 2.0 : 4.0) * p_width + 2.0 * m.top_k +
                                       (m.has_logits ? 4.0 * m.n_expert : 0.0);
        fmt::print("trace      {}\n", *dir);
        fmt::print("model      {} ({}{}), sha256 {}\n", m.model_path, m.arch,
                   m.model_name.empty() ? "" : ", " + m.model_name, m.model_sha256.substr(0, 16));
        fmt::print("layers     {} blocks, {} MoE: {}\n", m.n_layer, L, m.moe_layers);
        fmt::print("experts    {} (top-{}), gating {}\n", m.n_expert, m.top_k, m.gating);
        fmt::print("corpus     {} | {} languages: {}\n", m.corpus, m.langs.size(), fmt::join(m.langs, ","));
        fmt::print("domains    {}\n", fmt::join(m.domains, ","));
        fmt::print("shards     {}/{} complete ({} sequences per shard){}\n", shards.size(), trace_n_shards(m),
                   m.seqs_per_shard,
                   (int64_t)shards.size() < trace_n_shards(m) ? "  [incomplete: --resume]" : "");
        fmt::print("recorded   {} of {} sequences, {} tokens\n", n_seq, m.n_sequences, n_tok);
        fmt::print("storage    {} {} [T,{},{}], topk i16 [T,{},{}]{} = {:.0f} bytes/token/layer\n",
                   m.store == "topk" ? "topk_probs" : "p", m.probs_dtype, L, p_width, L, m.top_k,
                   m.has_logits ? ", logits f32" : "", bytes_tok_layer);
        fmt::print("options    {}\n", m.options.dump());
    });
}

}  // namespace rs::cli
