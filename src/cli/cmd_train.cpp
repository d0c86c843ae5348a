// `routescope train`: train a small Qwen3-MoE on a multilingual corpus with libtorch and export a GGUF
// (the work is in rs_train, train.h). Built into routescope-train only, with libtorch (train_main.cpp).
#include <cmath>

#include <fmt/format.h>

#include "commands.h"
#include "routescope/common.h"
#include "routescope/train.h"

namespace rs::cli {

void add_train(CLI::App & app) {
    auto * cmd = app.add_subcommand("train", kTrainHelp);
    auto job = std::make_shared<TrainJob>();
    auto langs = std::make_shared<std::string>();
    auto & c = job->model;
    cmd->add_option("--corpus,-c", job->corpus, "training corpus spec (e.g. flores:data/flores200/dev)")
        ->required();
    cmd->add_option("--langs,-l", *langs, "comma-separated languages (default: all)");
    cmd->add_option("--mix", job->mix, "language mix TSV: lang<TAB>lines<TAB>weight (header line)");
    cmd->add_option("--out,-o", job->out, "output GGUF file")->required();
    cmd->add_option("--checkpoint-dir", job->checkpoint_dir, "checkpoints (default: <out>.ckpt)");
    cmd->add_flag("--resume", job->resume, "continue from the latest checkpoint");
    cmd->add_option("--arch", job->arch, "export architecture")->capture_default_str();
    cmd->add_option("--dtype", job->dtype, "export type of the matrices: f16 | f32")->capture_default_str();
    cmd->add_option("--name", job->name, "general.name written to the GGUF")->capture_default_str();
    cmd->add_option("--vocab", c.n_vocab, "vocabulary size (BPE)")->capture_default_str();
    cmd->add_option("--layers", c.n_layer, "MoE blocks")->capture_default_str();
    cmd->add_option("--embd", c.n_embd, "embedding width")->capture_default_str();
    cmd->add_option("--heads", c.n_head, "attention heads")->capture_default_str();
    cmd->add_option("--kv-heads", c.n_head_kv, "key/value heads (0: as many as --heads)")
        ->capture_default_str();
    cmd->add_option("--head-dim", c.head_dim, "head width")->capture_default_str();
    cmd->add_option("--experts", c.n_expert, "experts per block")->capture_default_str();
    cmd->add_option("--top-k", c.top_k, "experts per token")->capture_default_str();
    cmd->add_option("--expert-ff", c.n_ff_exp, "expert FFN width")->capture_default_str();
    cmd->add_option("--ctx", c.n_ctx, "context length written to the GGUF")->capture_default_str();
    cmd->add_option("--seq-len", job->seq_len, "training sequence length")->capture_default_str();
    cmd->add_option("--batch", job->batch, "sequences per step")->capture_default_str();
    cmd->add_option("--steps", job->steps, "optimizer steps")->capture_default_str();
    cmd->add_option("--lr", job->lr, "peak learning rate (AdamW)")->capture_default_str();
    cmd->add_option("--min-lr", job->min_lr, "learning rate at the end of the cosine decay")
        ->capture_default_str();
    cmd->add_option("--warmup", job->warmup, "warm-up steps")->capture_default_str();
    cmd->add_option("--weight-decay", job->weight_decay, "AdamW weight decay (matrices)")
        ->capture_default_str();
    cmd->add_option("--aux", job->aux_coef, "load-balancing loss coefficient")->capture_default_str();
    cmd->add_option("--val-lines", job->val_lines, "last lines of each language held out for validation")
        ->capture_default_str();
    cmd->add_option("--eval-every", job->eval_every, "validation every N steps")->capture_default_str();
    cmd->add_flag("--export-last{false}", job->export_best,
                  "export the last step's weights, not the best validated ones");
    cmd->add_option("--checkpoint-every", job->checkpoint_every, "checkpoint every N steps")
        ->capture_default_str();
    cmd->add_option("--seed", job->seed, "seed (initialisation and data sampling)")->capture_default_str();
    cmd->add_option("--threads,-t", job->n_threads, "CPU threads (0: libtorch's default)")
        ->capture_default_str();
    cmd->add_flag("--no-progress{false}", job->progress, "do not print the progress line");
    cmd->add_option("--stop-after", job->stop_after, "stop after step N (testing)")->group("");
    cmd->callback([job, langs] {
        job->langs = split_list(*langs);
        const auto r = run_train(*job);
        if (r.stopped) {
            fmt::print("train: stopped after step {} (checkpoint in {})\n", r.steps,
                       job->checkpoint_dir.empty() ? job->out + ".ckpt" : job->checkpoint_dir);
            return;
        }
        fmt::print(
            "train: {} steps, {:.2f}M parameters, {} tokens seen ({} in the training set) in {:.0f} s\n",
            r.steps, r.n_params / 1e6, r.tokens_seen, r.train_tokens, r.seconds);
        fmt::print(
            "train: final training loss {:.3f}; exported the weights of step {}: validation loss {:.3f} "
            "(perplexity {:.1f})\n",
            r.final_train_loss, r.exported_step, r.val_loss, std::exp(r.val_loss));
        for (const auto & l : r.val_langs)
            fmt::print("  {:<9} val loss {:.3f} ({} tokens)\n", l.lang, l.loss, l.n_tokens);
        fmt::print("train: -> {} (loss curve {})\n", job->out, r.log_csv);
    });
}

}  // namespace rs::cli
