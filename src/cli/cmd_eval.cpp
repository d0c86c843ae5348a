// `routescope eval`: evaluate a model (optionally steered) on MGSM, Global-MMLU medicine or Belebele
// (the work is in rs_eval_runs, src/eval_runs, evaluate.h).
#include <fmt/format.h>

#include "commands.h"
#include "routescope/common.h"
#include "routescope/eval_tasks.h"
#include "routescope/evaluate.h"

namespace rs::cli {

void add_eval(CLI::App & app) {
    auto * cmd =
        app.add_subcommand("eval", "Evaluate on MGSM, Global-MMLU medicine or Belebele, optionally steered");
    auto job = std::make_shared<EvalJob>();
    auto langs = std::make_shared<std::string>();
    job->data.data_dir = default_data_dir();
    cmd->add_option("--model,-m", job->model, "GGUF model file")->required();
    cmd->add_option("--task", job->task,
                    "mgsm (k-shot) | mgsm-direct (lm-eval's 0-shot mgsm_direct) | mmlu-med | belebele")
        ->required();
    cmd->add_option("--langs,-l", *langs, "comma-separated languages (default: all the task's data has)");
    auto * shots = cmd->add_option("--shots", job->n_shot, "MGSM exemplars (from the same language file)")
                       ->capture_default_str();
    cmd->add_option("--limit", job->limit, "evaluate the first N items of each language")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--steer", job->steer, "steering spec (JSON)");
    cmd->add_option("--out,-o", job->out, "output directory (results.csv, summary.csv, details.jsonl)")
        ->required();
    cmd->add_option("--data", job->data.data_dir,
                    "the data directory (default: data/ shipped with routescope, or $ROUTESCOPE_DATA)")
        ->capture_default_str();
    cmd->add_option("--gmmlu", job->data.gmmlu_dir,
                    "directory of Global-MMLU CSV files <iso>.csv (other languages)");
    cmd->add_option("--belebele", job->data.belebele_dir,
                    "directory of Belebele jsonl files <flores code>.jsonl");
    cmd->add_option("--chat-template", job->chat_template,
                    "each prompt as the user message of a chat: none (default, as lm-eval) | auto | gguf | a "
                    "llama.cpp built-in name (chatml, llama3, gpt-oss ...)")
        ->capture_default_str();
    cmd->add_option("--max-new-tokens", job->max_new_tokens, "MGSM: generation limit")->capture_default_str();
    cmd->add_option("--batch", job->n_batch, "tokens per llama_decode (longest prompt)")
        ->capture_default_str();
    cmd->add_option("--ctx", job->n_ctx, "KV cache tokens (prompts + outputs of running generations)")
        ->capture_default_str();
    cmd->add_option("--batch-seqs", job->n_seq_max, "sequences per llama_decode")->capture_default_str();
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
    cmd->add_option("--stop-after", job->stop_after, "stop after N items (testing)")->group("");
    cmd->footer(
        "Resumable: re-running into the same --out skips the items already in results.csv.\n"
        "Compare two runs with `routescope compare BASE_DIR STEERED_DIR`.");
    cmd->callback([job, langs, shots] {
        if (shots->count() > 0 && parse_eval_task(job->task) == EvalTask::mgsm_direct)
            throw Error(
                "--shots applies to --task mgsm; mgsm-direct is lm-eval's 0-shot task (drop --shots, "
                "or use --task mgsm --shots N)");
        job->langs = split_list(*langs);
        const auto r = run_eval(*job);
        const auto & c = r.counts;
        fmt::print("eval: {} items ({} already done, {} evaluated{}), {} tokens in {:.1f} s -> {}\n",
                   c.n_items, c.n_skipped, c.n_done, c.stopped ? ", stopped early" : "", c.n_tokens,
                   c.seconds, job->out);
        for (const auto & s : r.summary)
            fmt::print("  {:<10} {:<9} n={:<4} acc {:6.2f}%  [{:.2f}, {:.2f}]\n", s.task, s.lang, s.n,
                       100 * s.accuracy, 100 * s.ci_lo, 100 * s.ci_hi);
    });
}

}  // namespace rs::cli
