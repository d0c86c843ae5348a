// Held-out perplexity per language, measured by llama.cpp (issue #5: the model card reports it on FLoRes
// devtest). Every sequence is scored alone, BOS + text as `trace` sees it: the mean of −log p(token_j |
// prefix) over the tokens after BOS, perplexity = exp(mean), per language (tokens pooled) and overall.
// Per-token figures are not comparable across languages (scripts split into very different numbers of
// tokens); bits per character are: Σ −log₂ p over a language's tokens / the Unicode code points of its
// texts, defined only when no sequence was cut at max_tokens (a cut text's predicted characters are unknown).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rs {

struct PerplexityJob {
    std::string model;
    std::string corpus;  // corpus spec (corpus.h)
    std::vector<std::string> langs;
    int64_t limit = -1;  // parallel groups (sentences per language)
    int max_tokens = 256;
    int n_threads = 0;
    int n_batch = 2048;
    bool progress = true;
};

struct LangPerplexity {
    std::string lang;
    int64_t n_seqs = 0, n_tokens = 0;
    double nll = 0;           // mean negative log-likelihood per token (nats)
    double ppl = 0;           // exp(nll)
    int64_t n_chars = 0;      // Unicode code points of the texts
    int64_t n_truncated = 0;  // sequences cut at max_tokens
    double bpc = 0;           // bits per character: n_tokens·nll / ln 2 / n_chars; NaN when n_truncated > 0
};

// Per language in corpus order, then "all" (every token pooled). rs::Error on bad input.
std::vector<LangPerplexity> run_perplexity(const PerplexityJob & job);

// CSV: lang,n_seqs,n_tokens,nll,ppl,n_chars,bpc (bpc empty where undefined)
std::string perplexity_csv(const std::vector<LangPerplexity> & rows);

}  // namespace rs
