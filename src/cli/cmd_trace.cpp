// `routescope trace`: record routing of a model over a corpus into a trace directory.
#include <fmt/format.h>

#include "commands.h"
#include "routescope/record.h"
#include "routescope/trace.h"

namespace rs::cli {

void add_trace(CLI::App & app) {
    auto * cmd =
        app.add_subcommand("trace", "Record per-token routing (p and top-k ids per MoE layer) over a corpus");
    auto job = std::make_shared<TraceJob>();
    auto langs = std::make_shared<std::string>();
    auto part = std::make_shared<std::string>();
    // `trace merge DIR... --out DIR` is a subcommand, so --model/--corpus/--out are checked in the callback
    auto * merge = cmd->add_subcommand("merge", "Join the parts of a `trace --part I/N` run into one trace");
    auto parts = std::make_shared<std::vector<std::string>>();
    auto merge_out = std::make_shared<std::string>();
    merge->add_option("parts", *parts, "the part directories (all N of them)")->required();
    merge->add_option("--out,-o", *merge_out, "output trace directory (must not hold a trace)")->required();
    merge->callback([parts, merge_out] {
        const TraceManifest m = merge_traces(*parts, *merge_out);
        fmt::print("trace merge: {} parts, {} shards, {} sequences -> {}\n", parts->size(),
                   m.shard_sha256.size(), m.n_sequences, *merge_out);
    });
    cmd->add_option("--model,-m", job->model, "GGUF model file");
    cmd->add_option("--corpus,-c", job->corpus, "flores:DIR | tsv:FILE | jsonl:FILE");
    cmd->add_option("--langs,-l", *langs, "comma-separated language codes (default: all in the corpus)");
    cmd->add_option("--limit", job->limit, "keep the first N parallel groups (or sequences if unpaired)")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--out,-o", job->out, "output trace directory");
    cmd->add_option("--part", *part,
                    "I/N: record only the I-th of N disjoint slices of whole shards (one per machine); join "
                    "them with `trace merge`");
    cmd->add_flag("--resume", job->resume, "continue an interrupted trace in --out");
    cmd->add_option("--max-tokens", job->max_tokens, "truncate sequences to N tokens")->capture_default_str();
    cmd->add_option("--batch", job->n_batch, "tokens per llama_decode")->capture_default_str();
    cmd->add_option("--batch-seqs", job->n_seq_max, "sequences per llama_decode (1-255)")
        ->capture_default_str();
    cmd->add_option("--shard-seqs", job->seqs_per_shard, "sequences per shard file")->capture_default_str();
    cmd->add_option("--dtype", job->probs_dtype, "storage type of p: f16 | f32")->capture_default_str();
    cmd->add_flag("--logits", job->logits, "also store the raw pre-gating logits (f32)");
    cmd->add_option("--store", job->store,
                    "full: p over all experts; topk: only the selected ids and their p (~E/K times smaller; "
                    "enough for experts and analyze's consistency/isolation, not for divergence or entropy)")
        ->capture_default_str();
    cmd->add_option(
           "--chat-template", job->chat_template,
           "each sentence as the user message of a chat: auto (the GGUF's template, if any) | none | "
           "gguf | a llama.cpp built-in name (chatml, llama3, gpt-oss ...)")
        ->capture_default_str();
    cmd->add_option_function<std::string>(
           "--template-tokens",
           [job](const std::string & v) {
               if (v != "keep" && v != "drop")
                   throw CLI::ValidationError("--template-tokens", "must be keep or drop, not '" + v + "'");
               job->template_tokens = v == "keep";
           },
           "keep: record the chat template's tokens too (default, as Bandarkar et al.); drop: the sentence's "
           "only")
        ->default_str("keep");
    cmd->add_option("--steer", job->steer, "steering spec (JSON): record routing under steering");
    cmd->add_option("--threads,-t", job->n_threads, "CPU threads (0: all cores)")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    cmd->add_option("--gpu-layers,--ngl", job->n_gpu_layers, "layers to offload to a GPU or an --rpc server")
        ->capture_default_str();
    cmd->add_option("--rpc", job->rpc_servers,
                    "llama.cpp rpc-server HOST:PORT list (comma-separated) that takes the offloaded layers")
        ->delimiter(',');
    cmd->add_flag("--allow-unverified-arch", job->allow_unverified_arch,
                  "record an architecture the conformance test does not cover (README, \"Real models\")");
    cmd->add_flag("--no-progress{false}", job->progress, "do not print the progress line");
    cmd->add_option("--stop-after-shards", job->stop_after_shards, "stop after N shards (testing)")
        ->group("");
    cmd->callback([merge, job, langs, part] {
        if (merge->parsed()) return;
        for (const auto & [name, value] :
             {std::pair<const char *, const std::string *>{"--model", &job->model},
              {"--corpus", &job->corpus},
              {"--out", &job->out}})
            if (value->empty())
                throw CLI::RequiredError(
                    fmt::format("{} is required (or `trace merge DIR... --out DIR`)", name));
        if (!part->empty()) {
            const TracePart p = parse_trace_part(*part);
            job->part_index = p.index, job->part_count = p.count;
        }
        job->langs = split_list(*langs);
        const auto s = run_trace(*job);
        fmt::print(
            "trace: {} sequences, {} tokens recorded ({} shards written, {} already present) in {:.1f} s -> "
            "{}\n",
            s.n_sequences, s.n_tokens, s.shards_written, s.shards_skipped, s.seconds, job->out);
    });
}

}  // namespace rs::cli
