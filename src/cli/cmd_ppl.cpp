// `routescope ppl`: held-out perplexity per language with llama.cpp (perplexity.h).
#include <cmath>

#include <fmt/format.h>

#include "commands.h"
#include "routescope/file_io.h"
#include "routescope/perplexity.h"

namespace rs::cli {

void add_ppl(CLI::App & app) {
    auto * cmd = app.add_subcommand(
        "ppl", "Perplexity and bits per character per language of a model on a corpus (each sentence alone)");
    auto job = std::make_shared<PerplexityJob>();
    auto langs = std::make_shared<std::string>();
    auto out = std::make_shared<std::string>();
    cmd->add_option("--model,-m", job->model, "GGUF model file")->required();
    cmd->add_option("--corpus,-c", job->corpus, "flores:DIR | tsv:FILE | jsonl:FILE")->required();
    cmd->add_option("--langs,-l", *langs, "comma-separated languages (default: all)");
    cmd->add_option("--limit", job->limit, "first N sentences per language")->check(CLI::NonNegativeNumber);
    cmd->add_option("--max-tokens", job->max_tokens, "truncate sequences to N tokens")->capture_default_str();
    cmd->add_option("--threads,-t", job->n_threads, "CPU threads (0: all cores)")->capture_default_str();
    cmd->add_option("--out,-o", *out, "also write the table as CSV");
    cmd->add_flag("--no-progress{false}", job->progress, "do not print the progress line");
    cmd->callback([job, langs, out] {
        job->langs = split_list(*langs);
        const auto rows = run_perplexity(*job);
        fmt::print("{:<9} {:>6} {:>8} {:>8} {:>10} {:>8}\n", "lang", "seqs", "tokens", "nll", "ppl", "bpc");
        int64_t cut = 0;
        for (const auto & r : rows) {
            fmt::print("{:<9} {:>6} {:>8} {:>8.4f} {:>10.2f} {:>8}\n", r.lang, r.n_seqs, r.n_tokens, r.nll,
                       r.ppl, std::isnan(r.bpc) ? "-" : fmt::format("{:.4f}", r.bpc));
            if (r.lang != "all") cut += r.n_truncated;
        }
        if (cut > 0)
            fmt::print(
                stderr,
                "ppl: {} sequences were cut at --max-tokens {}: bits per character are undefined where "
                "they are (raise --max-tokens)\n",
                cut, job->max_tokens);
        if (!out->empty()) write_file_atomic(*out, perplexity_csv(rows));
    });
}

}  // namespace rs::cli
