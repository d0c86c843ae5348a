// run_perplexity (routescope/perplexity.h): corpus → engine output logits → per-language perplexity.
#include "routescope/perplexity.h"

#include <cmath>
#include <limits>
#include <map>

#include <fmt/format.h>

#include "routescope/common.h"
#include "routescope/corpus.h"
#include "routescope/engine.h"
#include "routescope/eval_extract.h"
#include "routescope/progress.h"

namespace rs {

std::vector<LangPerplexity> run_perplexity(const PerplexityJob & job) {
    const Corpus corpus = load_corpus(job.corpus, {job.langs, job.limit});
    EngineParams ep;
    ep.n_threads = job.n_threads;
    ep.n_batch = job.n_batch;
    ep.tap = false;
    Engine engine(job.model, ep);
    if (job.max_tokens > job.n_batch)
        throw Error(fmt::format("--max-tokens {} exceeds --batch {}", job.max_tokens, job.n_batch));
    std::map<std::string, LangPerplexity> acc;
    const size_t V = (size_t)engine.n_vocab();
    Progress progress("ppl", (int64_t)corpus.seqs.size(), job.progress);
    int64_t done = 0, tokens = 0;
    constexpr size_t kChunk = 32;  // sequences per output_logits call (rows: tokens × vocabulary floats)
    for (size_t b = 0; b < corpus.seqs.size(); b += kChunk) {
        const size_t e = std::min(corpus.seqs.size(), b + kChunk);
        std::vector<std::vector<int32_t>> toks;
        for (size_t i = b; i < e; ++i) {
            auto t = engine.tokenize(corpus.seqs[i].text, std::numeric_limits<int>::max());
            auto & a = acc[corpus.seqs[i].lang];
            a.n_chars += utf8_code_points(corpus.seqs[i].text);
            if ((int64_t)t.size() > job.max_tokens) {
                ++a.n_truncated;
                t.resize((size_t)job.max_tokens);
            }
            toks.push_back(std::move(t));
        }
        const auto rows = engine.output_logits(toks);
        for (size_t i = b; i < e; ++i) {
            const auto & t = toks[i - b];
            auto & a = acc[corpus.seqs[i].lang];
            a.lang = corpus.seqs[i].lang;
            ++a.n_seqs;
            for (size_t j = 1; j < t.size(); ++j) {  // token j from the prefix [0, j): row j − 1
                a.nll -= log_softmax_at(std::span(rows[i - b]).subspan((j - 1) * V, V), t[j]);
                ++a.n_tokens;
            }
            tokens += (int64_t)t.size();
        }
        done += (int64_t)(e - b);
        progress.update(done, tokens);
    }
    progress.update(done, tokens, true);
    std::vector<LangPerplexity> out;
    LangPerplexity all{"all"};
    // a.nll holds the summed NLL (nats) until here
    auto finish = [](LangPerplexity & a) {
        a.bpc =
            a.n_truncated == 0 ? bits_per_char(a.nll, a.n_chars) : std::numeric_limits<double>::quiet_NaN();
        a.nll = a.n_tokens ? a.nll / (double)a.n_tokens : 0.0;
        a.ppl = std::exp(a.nll);
    };
    for (const auto & l : corpus.langs) {
        auto a = acc[l];
        all.n_seqs += a.n_seqs, all.n_tokens += a.n_tokens, all.nll += a.nll;
        all.n_chars += a.n_chars, all.n_truncated += a.n_truncated;
        finish(a);
        out.push_back(a);
    }
    finish(all);
    out.push_back(all);
    return out;
}

std::string perplexity_csv(const std::vector<LangPerplexity> & rows) {
    std::string s = "lang,n_seqs,n_tokens,nll,ppl,n_chars,bpc\n";
    for (const auto & r : rows)
        s += fmt::format("{},{},{},{:.6f},{:.4f},{},{}\n", r.lang, r.n_seqs, r.n_tokens, r.nll, r.ppl,
                         r.n_chars, std::isnan(r.bpc) ? "" : fmt::format("{:.6f}", r.bpc));
    return s;
}

}  // namespace rs
