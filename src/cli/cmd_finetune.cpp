// `routescope finetune`: RISE's subnetwork finetuning (finetune.h) — train only the experts of an
// experts.json set on one language and write them back into the model's GGUF. Built into routescope-train
// (libtorch).
#include <fmt/format.h>

#include "commands.h"
#include "routescope/finetune.h"

namespace rs::cli {

void add_finetune(CLI::App & app) {
    auto * cmd = app.add_subcommand("finetune", kFinetuneHelp);
    cmd->footer(
        "Defaults are RISE's (github.com/init-neok/rise, HuggingFace Trainer): AdamW lr 2e-5, 5% linear "
        "warm-up "
        "then linear decay, 3 epochs, micro-batches of 2 × 8 accumulation, clip 1.0, 512 tokens. A small "
        "model needs a larger --lr (the bundled one: 1e-3). --subnetwork random and all are the controls: as "
        "many experts per block as the set, drawn from --seed; or every expert.");
    auto job = std::make_shared<FinetuneJob>();
    auto langs = std::make_shared<std::string>();
    auto sub = std::make_shared<std::string>("selected");
    cmd->add_option("--model,-m", job->model, "base GGUF model (qwen3moe)")->required();
    cmd->add_option("--experts,-e", job->experts,
                    "experts.json of `routescope experts` (e.g. --method rise)");
    cmd->add_option("--set", job->set, "set of experts.json to train (default: selected, or its only set)");
    cmd->add_option("--subnetwork", *sub, "selected | random (same count per block) | all")
        ->check(CLI::IsMember({"selected", "random", "all"}))
        ->capture_default_str();
    cmd->add_option("--corpus,-c", job->corpus, "training text (e.g. flores:data/flores200/dev)")->required();
    cmd->add_option("--langs,-l", *langs, "target language(s), comma-separated")->required();
    cmd->add_option("--limit", job->limit, "first N lines per language")->check(CLI::PositiveNumber);
    cmd->add_option("--out,-o", job->out, "tuned GGUF")->required();
    cmd->add_option("--checkpoint-dir", job->checkpoint_dir, "checkpoints (default: <out>.ckpt)");
    cmd->add_flag("--resume", job->resume, "continue from the latest checkpoint");
    cmd->add_option("--epochs", job->epochs, "passes over the corpus")->capture_default_str();
    cmd->add_option("--batch", job->batch, "sequences per micro-batch")->capture_default_str();
    cmd->add_option("--grad-accum", job->grad_accum, "micro-batches per optimizer step")
        ->capture_default_str();
    cmd->add_option("--lr", job->lr, "peak learning rate (AdamW)")->capture_default_str();
    cmd->add_option("--warmup-ratio", job->warmup_ratio, "share of the steps of linear warm-up")
        ->capture_default_str();
    cmd->add_option("--weight-decay", job->weight_decay, "AdamW weight decay")->capture_default_str();
    cmd->add_option("--grad-clip", job->grad_clip, "gradient-norm clip (0: none)")->capture_default_str();
    cmd->add_option("--max-length", job->max_length, "tokens per sequence, BOS included")
        ->capture_default_str();
    cmd->add_option("--checkpoint-every", job->checkpoint_every, "checkpoint every N steps")
        ->capture_default_str();
    cmd->add_option("--seed", job->seed, "seed (data order; the random subnetwork)")->capture_default_str();
    cmd->add_option("--threads,-t", job->n_threads, "CPU threads (0: libtorch's default)")
        ->capture_default_str();
    cmd->add_flag("--no-progress{false}", job->progress, "do not print the progress line");
    cmd->add_option("--stop-after", job->stop_after, "stop after step N (testing)")->group("");
    cmd->callback([job, langs, sub] {
        job->langs = split_list(*langs);
        job->subnetwork = *sub == "random" ? Subnetwork::random
                          : *sub == "all"  ? Subnetwork::all
                                           : Subnetwork::selected;
        const auto r = run_finetune(*job);
        if (r.stopped) {
            fmt::print("finetune: stopped after step {} (checkpoint in {})\n", r.steps,
                       job->checkpoint_dir.empty() ? job->out + ".ckpt" : job->checkpoint_dir);
            return;
        }
        fmt::print(
            "finetune: {} steps ({} epochs × {} sequences, {} predicted tokens per epoch) at {:.0f} tok/s\n",
            r.steps, r.epochs, r.n_sequences, r.n_train_tokens, r.tokens_per_s);
        fmt::print(
            "finetune: trained {} experts from block {}: {} of {} parameters ({:.2f}%); loss {:.3f} -> "
            "{:.3f}\n",
            r.n_experts, r.first_block, r.n_trainable, r.n_params,
            100.0 * (double)r.n_trainable / (double)r.n_params, r.first_loss, r.final_loss);
        fmt::print(
            "finetune: -> {} ({} expert slices rewritten{}{}; every other byte as in {}; loss curve {})\n",
            job->out, r.slices_written, r.written_types.empty() ? "" : " as ",
            fmt::join(r.written_types, ", "), job->model, r.log_csv);
    });
}

}  // namespace rs::cli
