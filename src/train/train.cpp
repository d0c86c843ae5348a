// run_train (routescope/train.h): corpus → BPE vocabulary → llama.cpp tokenisation → libtorch training of a
// Qwen3-MoE → GGUF.
//
// Checkpoints (training_run.h) hold the parameters, AdamW state, sampler state and loss log, so a killed run
// resumes from the last complete one and continues exactly as an uninterrupted run would (same batches, same
// optimizer state).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include <fmt/format.h>
#include <gguf.h>
#include <nlohmann/json.hpp>

#include "qwen3moe_torch.h"
#include "routescope/common.h"
#include "routescope/corpus.h"
#include "routescope/file_io.h"
#include "routescope/stats.h"
#include "routescope/tokenizer.h"
#include "training_run.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace rs {
namespace {

constexpr int32_t kBos = 1;  // spm_base_vocab: <s>

struct LangData {
    std::string lang;
    double weight = 1.0;  // sampling weight per line
    std::vector<std::string> train_text, val_text;
    std::vector<std::vector<int32_t>> train, val;  // token ids, no BOS
};

// The language mix: TSV with a header, columns lang, lines, weight.
std::map<std::string, std::pair<int64_t, double>> read_mix(const std::string & path) {
    std::map<std::string, std::pair<int64_t, double>> mix;
    std::ifstream f(path);
    if (!f) throw Error(fmt::format("language mix {} not found", path));
    std::string line;
    std::getline(f, line);
    if (line.rfind("lang\tlines\tweight", 0) != 0)
        throw Error(fmt::format("{}: the header must be 'lang<TAB>lines<TAB>weight'", path));
    for (int n = 2; std::getline(f, line); ++n) {
        if (line.empty() || line[0] == '#') continue;
        char lang[64];
        long long lines = 0;
        double weight = 0;
        if (std::sscanf(line.c_str(), "%63[^\t]\t%lld\t%lf", lang, &lines, &weight) != 3 || lines < 1 ||
            !(weight > 0))
            throw Error(fmt::format("{}:{}: expected lang, lines ≥ 1, weight > 0", path, n));
        mix[lang] = {lines, weight};
    }
    return mix;
}

// Parameters of Qwen3Moe::init(c), without allocating them.
double count_params(const MoeModelConfig & c) {
    const double d = c.n_embd, hd = (double)c.n_head * c.head_dim, kvd = (double)c.n_head_kv * c.head_dim;
    const double block = 2 * d + hd * d + 2 * kvd * d + d * hd + 2.0 * c.head_dim + (double)c.n_expert * d +
                         3.0 * c.n_expert * c.n_ff_exp * d;
    return (double)c.n_vocab * d + d + c.n_layer * block;
}

// A batch of B sequences of seq_len + 1 tokens: BOS + consecutive lines of one language from a random line.
torch::Tensor sample_batch(const std::vector<LangData> & langs, const std::vector<double> & cum,
                           SplitMix64 & rng, int batch, int seq_len) {
    std::vector<int64_t> ids;
    ids.reserve((size_t)batch * (seq_len + 1));
    for (int b = 0; b < batch; ++b) {
        const double u = (double)(rng.next() >> 11) * 0x1p-53 * cum.back();
        const size_t li = (size_t)(std::upper_bound(cum.begin(), cum.end(), u) - cum.begin());
        const auto & L = langs[std::min(li, langs.size() - 1)];
        size_t line = (size_t)uniform_below(rng, L.train.size());
        ids.push_back(kBos);
        for (int n = 1; n <= seq_len;) {
            for (size_t t = 0; t < L.train[line].size() && n <= seq_len; ++t, ++n)
                ids.push_back(L.train[line][t]);
            line = (line + 1) % L.train.size();
        }
    }
    return torch::tensor(ids, torch::kInt64).view({batch, seq_len + 1});
}

// Mean next-token cross-entropy of each sentence alone (BOS + sentence, as at inference), per language.
std::vector<LangLoss> validation_loss(const Qwen3Moe & m, const std::vector<LangData> & langs, int max_len) {
    torch::NoGradGuard no_grad;
    std::vector<LangLoss> out;
    for (const auto & L : langs) {
        LangLoss ll{L.lang, 0.0, 0};
        double sum = 0;
        for (size_t b = 0; b < L.val.size(); b += 16) {
            const size_t e = std::min(L.val.size(), b + 16);
            int64_t T = 0;
            for (size_t i = b; i < e; ++i)
                T = std::max<int64_t>(T, std::min<int64_t>((int64_t)L.val[i].size() + 1, max_len));
            auto inp = torch::zeros({(int64_t)(e - b), T}, torch::kInt64);
            auto tgt = torch::full({(int64_t)(e - b), T}, -100, torch::kInt64);
            for (size_t i = b; i < e; ++i) {
                std::vector<int64_t> seq = {kBos};
                seq.insert(seq.end(), L.val[i].begin(), L.val[i].end());
                const int64_t n = std::min<int64_t>((int64_t)seq.size(), T + 1);
                for (int64_t t = 0; t + 1 < n; ++t) {
                    inp[(int64_t)(i - b)][t] = seq[(size_t)t];
                    tgt[(int64_t)(i - b)][t] = seq[(size_t)t + 1];
                }
            }
            const auto logits = m.forward(inp).logits;
            const auto nll = torch::nn::functional::cross_entropy(
                logits.view({-1, logits.size(2)}), tgt.view({-1}),
                torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100).reduction(torch::kSum));
            sum += nll.item<double>();
            ll.n_tokens += (tgt != -100).sum().item<int64_t>();
        }
        ll.loss = ll.n_tokens ? sum / (double)ll.n_tokens : 0.0;
        out.push_back(ll);
    }
    return out;
}

double overall(const std::vector<LangLoss> & v) {
    double s = 0;
    int64_t n = 0;
    for (const auto & l : v) {
        s += l.loss * (double)l.n_tokens;
        n += l.n_tokens;
    }
    return n ? s / (double)n : 0.0;
}

json config_json(const TrainJob & j) {
    const auto & c = j.model;
    return {{"corpus", j.corpus},
            {"langs", j.langs},
            {"mix", j.mix},
            {"arch", j.arch},
            {"n_vocab", c.n_vocab},
            {"n_layer", c.n_layer},
            {"n_embd", c.n_embd},
            {"n_head", c.n_head},
            {"n_head_kv", c.n_head_kv},
            {"head_dim", c.head_dim},
            {"n_expert", c.n_expert},
            {"top_k", c.top_k},
            {"n_ff_exp", c.n_ff_exp},
            {"n_ctx", c.n_ctx},
            {"rope_base", c.rope_base},
            {"rms_eps", c.rms_eps},
            {"seq_len", j.seq_len},
            {"batch", j.batch},
            {"steps", j.steps},
            {"lr", j.lr},
            {"min_lr", j.min_lr},
            {"warmup", j.warmup},
            {"weight_decay", j.weight_decay},
            {"aux_coef", j.aux_coef},
            {"grad_clip", j.grad_clip},
            {"char_coverage", j.char_coverage},
            {"val_lines", j.val_lines},
            {"seed", j.seed}};
}

void validate(const TrainJob & j) {
    MoeModelConfig c = j.model;
    if (c.n_head_kv == 0) c.n_head_kv = c.n_head;
    auto fail = [](const std::string & m) { throw Error("train: " + m); };
    if (j.arch != "qwen3moe")
        fail(fmt::format(
            "cannot export architecture '{}': the trainer writes qwen3moe (Qwen3-MoE) GGUF files", j.arch));
    if (j.out.empty()) fail("no output file (--out)");
    if (c.n_layer < 1 || c.n_embd < 8 || c.n_head < 1 || c.n_head_kv < 1 || c.n_head % c.n_head_kv != 0)
        fail("need n_layer ≥ 1, n_embd ≥ 8, and n_head a multiple of n_head_kv");
    if (c.head_dim < 2 || c.head_dim % 2 != 0)
        fail(fmt::format("head_dim {} must be even (RoPE rotates pairs)", c.head_dim));
    if (c.n_expert < 2 || c.top_k < 1 || c.top_k > c.n_expert)
        fail("need n_expert ≥ 2 and 1 ≤ top_k ≤ n_expert");
    if (c.n_ff_exp < 1 || c.n_vocab < 300) fail("need n_ff_exp ≥ 1 and a vocabulary of at least 300 tokens");
    if (j.seq_len < 2 || j.batch < 1 || j.steps < 1) fail("need seq_len ≥ 2, batch ≥ 1, steps ≥ 1");
    if (c.n_ctx < j.seq_len)
        fail(fmt::format("context length {} is shorter than seq_len {}", c.n_ctx, j.seq_len));
    if (!(j.lr > 0) || j.min_lr < 0 || j.min_lr > j.lr) fail("need lr > 0 and 0 ≤ min_lr ≤ lr");
    if (j.val_lines < 1) fail("need val_lines ≥ 1");
}

}  // namespace

TrainReport run_train(const TrainJob & job) {
    const auto t0 = std::chrono::steady_clock::now();
    validate(job);
    if (job.n_threads > 0) torch::set_num_threads(job.n_threads);
    torch::manual_seed(job.seed);
    const fs::path ckroot =
        job.checkpoint_dir.empty() ? fs::path(job.out + ".ckpt") : fs::path(job.checkpoint_dir);

    // ---- data: train and validation lines per language
    const Corpus corpus = load_corpus(job.corpus, {job.langs, -1});
    std::map<std::string, std::pair<int64_t, double>> mix;
    if (!job.mix.empty()) mix = read_mix(job.mix);
    std::vector<LangData> langs;
    for (const auto & l : corpus.langs) {
        LangData L;
        L.lang = l;
        std::vector<std::string> lines;
        for (const auto & s : corpus.seqs)
            if (s.lang == l) lines.push_back(s.text);
        if ((int64_t)lines.size() <= job.val_lines)
            throw Error(fmt::format(
                "train: corpus too small: {} has {} lines, fewer than the {} held out for validation", l,
                lines.size(), job.val_lines));
        L.val_text.assign(lines.end() - job.val_lines, lines.end());
        lines.resize(lines.size() - (size_t)job.val_lines);
        if (!mix.empty()) {
            const auto it = mix.find(l);
            if (it == mix.end()) continue;  // not in the mix: not trained on
            if ((int64_t)lines.size() > it->second.first) lines.resize((size_t)it->second.first);
            L.weight = it->second.second;
        }
        L.train_text = std::move(lines);
        langs.push_back(std::move(L));
    }
    if (langs.empty()) throw Error("train: the language mix selects no language of the corpus");

    // ---- tokenizer: BPE on the weighted training lines, then llama.cpp's own tokenisation
    fs::create_directories(ckroot);
    const fs::path vocab_path = ckroot / "vocab.gguf";
    SpmVocab vocab;
    {
        std::vector<WeightedText> texts;
        for (const auto & L : langs)
            for (const auto & t : L.train_text) texts.push_back({t, L.weight});
        vocab = train_spm_bpe(texts, {job.model.n_vocab, job.char_coverage, 2.0});
    }
    MoeModelConfig cfg = job.model;
    cfg.n_vocab = vocab.size();  // a small corpus may end the merges early
    if (cfg.n_head_kv == 0) cfg.n_head_kv = cfg.n_head;
    {
        Qwen3Moe shape;
        shape.cfg = cfg;
        std::unique_ptr<gguf_context, decltype(&gguf_free)> g(gguf_init_empty(), gguf_free);
        shape.write_hparams(g.get(), "vocab");
        write_spm_vocab(g.get(), vocab);
        if (!gguf_write_to_file(g.get(), vocab_path.c_str(), false))
            throw Error(fmt::format("train: cannot write {}", vocab_path.string()));
    }
    const Tokenizer tok(vocab_path.string());
    int64_t train_tokens = 0;
    for (auto & L : langs) {
        for (const auto & t : L.train_text) L.train.push_back(tok.tokenize(t, false));
        for (const auto & t : L.val_text) L.val.push_back(tok.tokenize(t, false));
        for (const auto & v : L.train) train_tokens += (int64_t)v.size();
    }
    if (train_tokens < (int64_t)job.batch * (job.seq_len + 1))
        throw Error(
            fmt::format("train: corpus too small: {} training tokens, fewer than one batch of {} × {}",
                        train_tokens, job.batch, job.seq_len + 1));
    std::vector<double> cum;  // sampling: a language ∝ lines × weight
    for (const auto & L : langs)
        cum.push_back((cum.empty() ? 0.0 : cum.back()) + (double)L.train.size() * L.weight);

    // ---- model, optimizer, sampler: fresh or from the latest checkpoint
    const double n_params = count_params(cfg);
    // parameters with gradients and two AdamW moments, and the activations
    const double need = 16.0 * n_params + activation_bytes(cfg, job.batch, job.seq_len),
                 have = available_memory_bytes();
    if (need > 0.8 * have)
        throw Error(fmt::format(
            "train: this configuration needs about {:.1f} GiB to train ({:.1f}M parameters, batch "
            "{} × {}), more than the {:.1f} GiB available; lower --batch, --seq-len or the model size",
            need / 0x1p30, n_params / 1e6, job.batch, job.seq_len, have / 0x1p30));
    Qwen3Moe model = Qwen3Moe::init(cfg);
    RS_ASSERT((double)model.n_params() == n_params);
    std::vector<torch::Tensor> decay, no_decay;
    for (const auto & [name, t] : model.w) (t.dim() >= 2 ? decay : no_decay).push_back(t);
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(
        decay, std::make_unique<torch::optim::AdamWOptions>(
                   torch::optim::AdamWOptions(job.lr).betas({0.9, 0.95}).weight_decay(job.weight_decay)));
    groups.emplace_back(no_decay,
                        std::make_unique<torch::optim::AdamWOptions>(
                            torch::optim::AdamWOptions(job.lr).betas({0.9, 0.95}).weight_decay(0.0)));
    torch::optim::AdamW opt(groups);
    SplitMix64 rng(derive_seed(job.seed, 0x7a11, 0));
    int64_t step = 0, tokens_seen = 0;
    std::string log = "step,lr,loss,aux,val_loss,tokens,seconds\n";
    // the weights with the lowest validation loss so far (exported unless export_best is off)
    std::vector<torch::Tensor> best;
    int64_t best_step = -1;
    double best_val = INFINITY;
    const json cfg_json = config_json(job);
    if (const fs::path d = latest_checkpoint(ckroot); job.resume && !d.empty()) {
        std::ifstream sf(d / "state.json");
        const json st = json::parse(sf);
        if (st.at("config") != cfg_json)
            throw Error(
                fmt::format("train: {} was written with other settings; use another checkpoint directory or "
                            "the same options",
                            d.string()));
        std::vector<torch::Tensor> params;
        torch::load(params, (d / "model.pt").string());
        auto ps = model.parameters();
        if (params.size() != ps.size()) throw Error(fmt::format("train: {} holds another model", d.string()));
        {
            torch::NoGradGuard ng;
            for (size_t i = 0; i < ps.size(); ++i) ps[i].copy_(params[i]);
        }
        torch::load(opt, (d / "optim.pt").string());
        step = st.at("step").get<int64_t>();
        tokens_seen = st.at("tokens_seen").get<int64_t>();
        rng.state = st.at("rng").get<uint64_t>();
        best_step = st.value("best_step", int64_t{-1});
        best_val = st.value("best_val", (double)INFINITY);
        if (best_step >= 0) torch::load(best, (d / "best.pt").string());
        std::ifstream logf(d / "log.csv");
        log.assign(std::istreambuf_iterator<char>(logf), {});
        std::fprintf(stderr, "train: resuming from %s (step %lld)\n", d.c_str(), (long long)step);
    }
    auto save_checkpoint = [&] {
        commit_checkpoint(ckroot, step, [&](const fs::path & tmp) {
            torch::save(model.parameters(), (tmp / "model.pt").string());
            torch::save(opt, (tmp / "optim.pt").string());
            if (best_step >= 0) torch::save(best, (tmp / "best.pt").string());
            json st = {{"step", step},
                       {"tokens_seen", tokens_seen},
                       {"rng", rng.state},
                       {"config", cfg_json},
                       {"best_step", best_step}};
            if (best_step >= 0) st["best_val"] = best_val;
            write_file_atomic((tmp / "state.json").string(), st.dump(2));
            write_file_atomic((tmp / "log.csv").string(), log);
        });
    };

    // ---- training
    ProgressLine progress(job.progress);
    const auto t_train = std::chrono::steady_clock::now();
    const int64_t step0 = step;
    double last_loss = 0, ema = 0;
    auto lr_at = [&](int64_t s) {  // linear warm-up, cosine decay to min_lr
        if (s < job.warmup) return job.lr * (double)(s + 1) / (double)job.warmup;
        const double prog = (double)(s - job.warmup) / (double)std::max<int64_t>(1, job.steps - job.warmup);
        return job.min_lr + 0.5 * (job.lr - job.min_lr) * (1.0 + std::cos(M_PI * std::min(1.0, prog)));
    };
    while (step < job.steps) {
        const double lr = lr_at(step);
        for (auto & g : opt.param_groups()) static_cast<torch::optim::AdamWOptions &>(g.options()).lr(lr);
        const auto batch = sample_batch(langs, cum, rng, job.batch, job.seq_len);
        const auto inp = batch.narrow(1, 0, job.seq_len), tgt = batch.narrow(1, 1, job.seq_len);
        const auto o = model.forward(inp);
        const auto ce =
            torch::nn::functional::cross_entropy(o.logits.reshape({-1, cfg.n_vocab}), tgt.reshape({-1}));
        const auto loss = ce + job.aux_coef * o.aux;
        opt.zero_grad();
        loss.backward();
        torch::nn::utils::clip_grad_norm_(model.parameters(), job.grad_clip);
        opt.step();
        ++step;
        tokens_seen += (int64_t)job.batch * job.seq_len;
        last_loss = ce.item<double>();
        ema = step == step0 + 1 ? last_loss : 0.95 * ema + 0.05 * last_loss;
        double val = -1;
        if (job.eval_every > 0 && (step % job.eval_every == 0 || step == job.steps)) {
            val = overall(validation_loss(model, langs, job.seq_len + 1));
            if (val < best_val) {
                best_val = val, best_step = step;
                best.clear();
                for (const auto & t : model.parameters()) best.push_back(t.detach().clone());
            }
        }
        const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_train).count();
        log += fmt::format("{},{:.6g},{:.6f},{:.6f},{},{},{:.1f}\n", step, lr, last_loss,
                           o.aux.item<double>(), val < 0 ? "" : fmt::format("{:.6f}", val), tokens_seen, el);
        {
            const double tps = (double)(step - step0) * job.batch * job.seq_len / std::max(el, 1e-9);
            const double eta = el / (double)(step - step0) * (double)(job.steps - step);
            progress.update(
                fmt::format("train: step {}/{} | loss {:.3f} (avg {:.3f}) | aux {:.3f} | lr {:.2e} | "
                            "{:.0f} tok/s | elapsed {:.0f} s | ETA {:.0f} s{}",
                            step, job.steps, last_loss, ema, o.aux.item<double>(), lr, tps, el, eta,
                            val < 0 ? "" : fmt::format(" | val {:.3f}", val)),
                val >= 0 || step == job.steps, el);
        }
        if ((job.checkpoint_every > 0 && step % job.checkpoint_every == 0) || step == job.steps)
            save_checkpoint();
        if (job.stop_after >= 0 && step >= job.stop_after) break;
    }

    // ---- export
    TrainReport rep;
    if (step < job.steps) {  // stopped early (testing): as if killed, the checkpoints are all there is
        rep.stopped = true;
        rep.steps = step;
        return rep;
    }
    rep.steps = step;
    rep.n_params = model.n_params();
    rep.tokens_seen = tokens_seen;
    rep.train_tokens = train_tokens;
    rep.final_train_loss = last_loss;
    rep.exported_step = step;
    if (job.export_best && best_step >= 0 && best_step != step) {  // early stopping on the validation lines
        torch::NoGradGuard ng;
        auto ps = model.parameters();
        for (size_t i = 0; i < ps.size(); ++i) ps[i].copy_(best[i]);
        rep.exported_step = best_step;
    }
    rep.val_langs = validation_loss(model, langs, job.seq_len + 1);
    rep.val_loss = overall(rep.val_langs);
    model.save_gguf(job.out, vocab, job.dtype, job.name);
    rep.log_csv = job.out + ".log.csv";
    write_file_atomic(rep.log_csv, log);
    rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return rep;
}

}  // namespace rs
