// run_finetune (routescope/finetune.h): base GGUF → libtorch (frozen) + trainable expert slices → RISE's
// causal-LM finetuning on the target language → the slices written back into the base GGUF's bytes.
//
// Checkpoints (training_run.h) hold the trainable slices, the AdamW state, the step and the loss log; the
// data order is a function of (seed, epoch) and the step, so a killed run resumed from its checkpoint
// continues exactly as an uninterrupted one (same micro-batches, same optimizer state).
#include "routescope/finetune.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <set>

#include <fmt/format.h>
#include <ggml.h>
#include <gguf.h>
#include <nlohmann/json.hpp>

#include "expert_write_back.h"
#include "qwen3moe_torch.h"
#include "routescope/common.h"
#include "routescope/corpus.h"
#include "routescope/file_io.h"
#include "routescope/model.h"
#include "routescope/stats.h"
#include "routescope/tokenizer.h"
#include "training_run.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace rs {
namespace {

using Blocks = std::map<int, std::vector<int>>;  // block → experts (sorted, unique)

struct GgufSummary {
    std::string arch;
    double n_elements = 0;  // of every tensor: the f32 model holds 4 bytes each
};

GgufSummary gguf_summary(const std::string & path) {
    ggml_context * raw = nullptr;
    gguf_init_params ip{true, &raw};
    std::unique_ptr<gguf_context, decltype(&gguf_free)> g(gguf_init_from_file(path.c_str(), ip), gguf_free);
    std::unique_ptr<ggml_context, decltype(&ggml_free)> ctx(raw, ggml_free);
    if (!g) throw Error(fmt::format("finetune: {} is not a readable GGUF file", path));
    GgufSummary s;
    const int64_t id = gguf_find_key(g.get(), "general.architecture");
    s.arch = id < 0 ? "" : gguf_get_val_str(g.get(), id);
    for (ggml_tensor * t = ggml_get_first_tensor(ctx.get()); t; t = ggml_get_next_tensor(ctx.get(), t))
        s.n_elements += (double)ggml_nelements(t);
    return s;
}

// rs::Error when `need` bytes exceed 80% of the memory available now.
void check_memory(double need, const std::string & what, const std::string & fix) {
    const double have = available_memory_bytes();
    if (need > 0.8 * have)
        throw Error(fmt::format("finetune: {} needs about {:.1f} GiB, more than the {:.1f} GiB available; {}",
                                what, need / 0x1p30, have / 0x1p30, fix));
}

// The chosen set of experts.json (routescope experts' schema: "sets": {name: {"<block>": [ids]}}), checked
// against the model it will train.
Blocks read_selection(const FinetuneJob & job, const MoeModelConfig & c, const std::string & base_sha,
                      std::string & set_name) {
    json j;
    try {
        j = json::parse(read_file(job.experts));
    } catch (const json::exception & e) {
        throw Error(fmt::format("finetune: {} is not valid JSON ({}); write it with `routescope experts`",
                                job.experts, json_error_text(e.what())));
    }
    if (j.contains("model") && j["model"].is_object() && j["model"].contains("sha256")) {
        const std::string sha =
            j["model"]["sha256"].is_string() ? j["model"]["sha256"].get<std::string>() : "";
        if (sha != base_sha)
            throw Error(
                fmt::format("finetune: {} was selected on another model (sha256 {}…; {} is {}…): select "
                            "the experts on a trace of this model",
                            job.experts, sha.substr(0, 12), job.model, base_sha.substr(0, 12)));
    }
    if (!j.contains("sets") || !j["sets"].is_object() || j["sets"].empty())
        throw Error(fmt::format("finetune: {} has no \"sets\" object (write it with `routescope experts`)",
                                job.experts));
    const json & sets = j["sets"];
    std::string names;
    for (auto it = sets.begin(); it != sets.end(); ++it) names += (names.empty() ? "" : ", ") + it.key();
    set_name = job.set;
    if (set_name.empty()) {
        if (sets.contains("selected"))
            set_name = "selected";  // experts --method rise: the union of its three zones
        else if (sets.size() == 1)
            set_name = sets.begin().key();
        else
            throw Error(
                fmt::format("finetune: {} has several sets ({}); name one with --set", job.experts, names));
    }
    if (!sets.contains(set_name) || !sets[set_name].is_object())
        throw Error(fmt::format("finetune: {} has no set '{}' (it has: {})", job.experts, set_name, names));
    Blocks out;
    for (auto it = sets[set_name].begin(); it != sets[set_name].end(); ++it) {
        int block = -1;
        const std::string & k = it.key();
        if (k.empty() || k.size() > 6 || k.find_first_not_of("0123456789") != std::string::npos ||
            (block = std::stoi(k)) >= c.n_layer)
            throw Error(fmt::format("finetune: {}: set '{}' names block '{}', not one of the model's 0..{}",
                                    job.experts, set_name, k, c.n_layer - 1));
        if (!it->is_array())
            throw Error(fmt::format("finetune: {}: set '{}' block {} is not a list of experts", job.experts,
                                    set_name, block));
        std::set<int> ids;
        for (const auto & v : *it) {
            if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= c.n_expert)
                throw Error(fmt::format("finetune: {}: set '{}' block {} names an expert outside 0..{}",
                                        job.experts, set_name, block, c.n_expert - 1));
            ids.insert(v.get<int>());
        }
        if (!ids.empty()) out[block].assign(ids.begin(), ids.end());
    }
    if (out.empty())
        throw Error(fmt::format("finetune: set '{}' of {} is empty: there is nothing to train", set_name,
                                job.experts));
    return out;
}

// The control of the same size: in every block as many experts as `sel` has there, uniformly at random.
Blocks random_like(const Blocks & sel, int n_expert, uint64_t seed) {
    Blocks out;
    for (const auto & [block, ids] : sel) {
        SplitMix64 rng(derive_seed(seed, 0x5e1ec7, (uint64_t)block));
        std::vector<int> all(n_expert);
        std::iota(all.begin(), all.end(), 0);
        for (size_t i = 0; i < ids.size(); ++i)  // partial Fisher–Yates
            std::swap(all[i], all[i + uniform_below(rng, all.size() - i)]);
        std::vector<int> pick(all.begin(), all.begin() + (std::ptrdiff_t)ids.size());
        std::sort(pick.begin(), pick.end());
        out[block] = pick;
    }
    return out;
}

std::string blocks_text(const Blocks & b) {  // "0:1,5;3:2"
    std::string s;
    for (const auto & [block, ids] : b)
        s += fmt::format("{}{}:{}", s.empty() ? "" : ";", block, fmt::join(ids, ","));
    return s;
}

const char * subnetwork_name(Subnetwork s) {
    return s == Subnetwork::selected ? "selected" : s == Subnetwork::random ? "random" : "all";
}

void validate(const FinetuneJob & j) {
    auto fail = [](const std::string & m) { throw Error("finetune: " + m); };
    if (j.out.empty()) fail("no output file (--out)");
    if (j.langs.empty()) fail("name the target language(s) with --langs (RISE trains on one language)");
    if (j.subnetwork != Subnetwork::all && j.experts.empty())
        fail("--experts is needed for --subnetwork selected and random (write it with `routescope experts`)");
    if (j.epochs < 1 || j.batch < 1 || j.grad_accum < 1) fail("need epochs, batch and grad-accum ≥ 1");
    if (j.max_length < 2) fail("need max-length ≥ 2 (BOS and one token to predict)");
    if (!(j.lr > 0) || !(j.warmup_ratio >= 0 && j.warmup_ratio < 1) || j.weight_decay < 0 || j.grad_clip < 0)
        fail("need lr > 0, 0 ≤ warmup-ratio < 1, weight-decay ≥ 0, grad-clip ≥ 0");
    if (fs::absolute(j.out).lexically_normal() == fs::absolute(j.model).lexically_normal())
        fail("--out is the base model: write the tuned model to another file");
}

}  // namespace

FinetuneReport run_finetune(const FinetuneJob & job) {
    const auto t0 = std::chrono::steady_clock::now();
    validate(job);
    if (job.n_threads > 0) torch::set_num_threads(job.n_threads);
    const GgufSummary summary = gguf_summary(job.model);
    if (summary.arch != "qwen3moe")
        throw Error(
            fmt::format("finetune: {} is a '{}' model; the libtorch block implements qwen3moe only "
                        "(olmoe, qwen2moe and the others are not supported)",
                        job.model, summary.arch));
    // ---- model: every GGUF tensor frozen (f32; quantised ones dequantised); the file's bytes are read
    // again when the result is written
    const auto file_bytes = (double)fs::file_size(job.model);
    check_memory(file_bytes + 4.0 * summary.n_elements,
                 fmt::format("holding {} in f32 ({:.1f}M parameters)", job.model, summary.n_elements / 1e6),
                 "finetune on a machine with more memory (the trainer holds the whole model)");
    const std::string base_sha = model_sha256(job.model);
    Qwen3Moe model = Qwen3Moe::load_gguf(job.model);
    const MoeModelConfig & c = model.cfg;

    // ---- subnetwork
    std::string set_name;
    Blocks sel;
    if (!job.experts.empty()) sel = read_selection(job, c, base_sha, set_name);
    if (job.subnetwork == Subnetwork::random) sel = random_like(sel, c.n_expert, job.seed);
    if (job.subnetwork == Subnetwork::all) {
        sel.clear();
        for (int b = 0; b < c.n_layer; ++b) {
            sel[b].resize((size_t)c.n_expert);
            std::iota(sel[b].begin(), sel[b].end(), 0);
        }
    }
    std::vector<int> blocks;
    for (const auto & [b, ids] : sel) blocks.push_back(b);
    check_expert_slices_writable(job.model, blocks);  // before training, not after it
    std::vector<torch::Tensor> trainable;
    int64_t n_experts = 0;
    for (const auto & [b, ids] : sel)
        for (int e : ids) {
            const auto names = expert_tensor_names(b);
            std::array<torch::Tensor, 3> s;
            for (size_t m = 0; m < 3; ++m) {
                s[m] = model.w.at(names[m])[e].clone().set_requires_grad(true);
                trainable.push_back(s[m]);
            }
            model.expert_override[{b, e}] = s;
            ++n_experts;
        }
    int64_t n_trainable = 0;
    for (const auto & t : trainable) n_trainable += t.numel();

    // ---- data: BOS + one line of the target language(s), cut at max_length tokens
    const Corpus corpus = load_corpus(job.corpus, {job.langs, job.limit});
    const Tokenizer tok(job.model);
    std::vector<std::vector<int64_t>> seqs;
    int64_t n_pred = 0, longest = 0;
    for (const auto & s : corpus.seqs) {
        auto ids = tok.tokenize(s.text, true);
        if ((int)ids.size() > job.max_length) ids.resize((size_t)job.max_length);
        if (ids.size() < 2) continue;
        n_pred += (int64_t)ids.size() - 1;
        longest = std::max<int64_t>(longest, (int64_t)ids.size());
        seqs.emplace_back(ids.begin(), ids.end());
    }
    const int64_t per_step = (int64_t)job.batch * job.grad_accum;
    if ((int64_t)seqs.size() < per_step)
        throw Error(
            fmt::format("finetune: corpus too small: {} sequences of {}, fewer than one optimizer step "
                        "of {} × {}; lower --batch or --grad-accum",
                        seqs.size(), fmt::join(job.langs, ","), job.batch, job.grad_accum));
    const auto n_seq = (int64_t)seqs.size();
    const int64_t micro_per_epoch = (n_seq + job.batch - 1) / job.batch;
    const int64_t steps_per_epoch = (micro_per_epoch + job.grad_accum - 1) / job.grad_accum;
    const int64_t total = steps_per_epoch * job.epochs;
    const auto warmup =
        (int64_t)std::ceil(job.warmup_ratio * (double)total);  // transformers get_warmup_steps

    // ---- memory: the file's bytes, the f32 model, AdamW on the slices, activations of one micro-batch
    check_memory(file_bytes + 4.0 * (double)model.n_params() + 16.0 * (double)n_trainable +
                     activation_bytes(c, job.batch, (int)longest),
                 fmt::format("training (micro-batch {} × {} tokens)", job.batch, longest),
                 "lower --batch or --max-length");

    torch::optim::AdamW opt(
        trainable,
        torch::optim::AdamWOptions(job.lr).betas({0.9, 0.999}).eps(1e-8).weight_decay(job.weight_decay));
    // transformers get_linear_schedule_with_warmup: the lr of optimizer step s (0-based)
    auto lr_at = [&](int64_t s) {
        if (s < warmup) return job.lr * (double)s / (double)std::max<int64_t>(1, warmup);
        return job.lr * std::max(0.0, (double)(total - s) / (double)std::max<int64_t>(1, total - warmup));
    };
    const json cfg = {{"model_sha256", base_sha},
                      {"subnetwork", subnetwork_name(job.subnetwork)},
                      {"set", set_name},
                      {"experts", blocks_text(sel)},
                      {"corpus", job.corpus},
                      {"langs", job.langs},
                      {"limit", job.limit},
                      {"epochs", job.epochs},
                      {"batch", job.batch},
                      {"grad_accum", job.grad_accum},
                      {"lr", job.lr},
                      {"warmup_ratio", job.warmup_ratio},
                      {"weight_decay", job.weight_decay},
                      {"grad_clip", job.grad_clip},
                      {"max_length", job.max_length},
                      {"seed", job.seed}};
    const fs::path ckroot =
        job.checkpoint_dir.empty() ? fs::path(job.out + ".ckpt") : fs::path(job.checkpoint_dir);
    fs::create_directories(ckroot);
    int64_t step = 0;
    std::string log = "step,epoch,lr,loss,tokens,seconds\n";
    double first_loss = -1;
    if (const fs::path d = latest_checkpoint(ckroot); job.resume && !d.empty()) {
        const json st = json::parse(read_file((d / "state.json").string()));
        if (st.at("config") != cfg)
            throw Error(
                fmt::format("finetune: {} was written with other settings; use another checkpoint "
                            "directory or the same options",
                            d.string()));
        std::vector<torch::Tensor> saved;
        torch::load(saved, (d / "slices.pt").string());
        if (saved.size() != trainable.size())
            throw Error(fmt::format("finetune: {} holds another run", d.string()));
        {
            torch::NoGradGuard ng;
            for (size_t i = 0; i < saved.size(); ++i) trainable[i].copy_(saved[i]);
        }
        torch::load(opt, (d / "optim.pt").string());
        step = st.at("step").get<int64_t>();
        first_loss = st.at("first_loss").get<double>();
        log = read_file((d / "log.csv").string());
        std::fprintf(stderr, "finetune: resuming from %s (step %lld)\n", d.c_str(), (long long)step);
    }
    auto save_checkpoint = [&] {
        commit_checkpoint(ckroot, step, [&](const fs::path & tmp) {
            torch::save(trainable, (tmp / "slices.pt").string());
            torch::save(opt, (tmp / "optim.pt").string());
            write_file_atomic((tmp / "state.json").string(),
                              json{{"step", step}, {"first_loss", first_loss}, {"config", cfg}}.dump(2));
            write_file_atomic((tmp / "log.csv").string(), log);
        });
    };
    if (job.progress)
        std::fprintf(
            stderr,
            "finetune: %lld sequences (%lld predicted tokens) of %s; %s subnetwork: %lld experts in %zu "
            "blocks from block %d, %lld of %lld parameters trainable (%.2f%%); %lld steps\n",
            (long long)n_seq, (long long)n_pred, fmt::format("{}", fmt::join(job.langs, ",")).c_str(),
            subnetwork_name(job.subnetwork), (long long)n_experts, sel.size(), blocks.front(),
            (long long)n_trainable, (long long)model.n_params(),
            100.0 * (double)n_trainable / (double)model.n_params(), (long long)total);

    // ---- training
    ProgressLine progress(job.progress);
    const auto t_train = std::chrono::steady_clock::now();
    const int64_t step0 = step;
    int64_t tokens_now = 0;  // predicted tokens trained in this process
    double last_loss = 0, ema = 0;
    std::vector<int64_t> order;
    int64_t order_epoch = -1;
    while (step < total) {
        const int64_t epoch = step / steps_per_epoch, in_epoch = step % steps_per_epoch;
        if (epoch != order_epoch) {  // the epoch's order: a shuffle seeded by (seed, epoch)
            order.resize((size_t)n_seq);
            std::iota(order.begin(), order.end(), 0);
            SplitMix64 rng(derive_seed(job.seed, 0xf1e7, (uint64_t)epoch));
            for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[uniform_below(rng, i)]);
            order_epoch = epoch;
        }
        const double lr = lr_at(step);
        for (auto & g : opt.param_groups()) static_cast<torch::optim::AdamWOptions &>(g.options()).lr(lr);
        const int64_t mb0 = in_epoch * job.grad_accum, mb1 = std::min(micro_per_epoch, mb0 + job.grad_accum);
        // micro-batches of this step: inputs and targets (−100: padding, not predicted)
        std::vector<std::pair<torch::Tensor, torch::Tensor>> mbs;
        int64_t n_tok = 0;
        for (int64_t mb = mb0; mb < mb1; ++mb) {
            const int64_t b0 = mb * job.batch, b1 = std::min(n_seq, b0 + job.batch);
            int64_t T = 0;
            for (int64_t i = b0; i < b1; ++i)
                T = std::max<int64_t>(T, (int64_t)seqs[(size_t)order[(size_t)i]].size() - 1);
            auto inp = torch::zeros({b1 - b0, T}, torch::kInt64),
                 tgt = torch::full({b1 - b0, T}, -100, torch::kInt64);
            auto ia = inp.accessor<int64_t, 2>(), ta = tgt.accessor<int64_t, 2>();
            for (int64_t i = b0; i < b1; ++i) {
                const auto & s = seqs[(size_t)order[(size_t)i]];
                for (size_t t = 0; t + 1 < s.size(); ++t)
                    ia[i - b0][(int64_t)t] = s[t], ta[i - b0][(int64_t)t] = s[t + 1];
                n_tok += (int64_t)s.size() - 1;
            }
            mbs.emplace_back(inp, tgt);
        }
        opt.zero_grad();
        double nll = 0;
        for (const auto & [inp, tgt] : mbs) {
            const auto logits = model.forward(inp).logits;
            const auto sum = torch::nn::functional::cross_entropy(
                logits.reshape({-1, logits.size(2)}), tgt.reshape({-1}),
                torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100).reduction(torch::kSum));
            (sum / (double)n_tok).backward();
            nll += sum.item<double>();
        }
        if (job.grad_clip > 0) torch::nn::utils::clip_grad_norm_(trainable, job.grad_clip);
        opt.step();
        ++step;
        tokens_now += n_tok;
        last_loss = nll / (double)n_tok;
        if (first_loss < 0) first_loss = last_loss;
        ema = step == step0 + 1 ? last_loss : 0.9 * ema + 0.1 * last_loss;
        const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_train).count();
        log += fmt::format("{},{},{:.6g},{:.6f},{},{:.2f}\n", step, epoch + 1, lr, last_loss, n_tok, el);
        const double tps = (double)tokens_now / std::max(el, 1e-9);
        progress.update(
            fmt::format("finetune: step {}/{} | epoch {}/{} | loss {:.3f} (avg {:.3f}) | lr {:.2e} | "
                        "{:.0f} tok/s | elapsed {:.0f} s | ETA {:.0f} s",
                        step, total, epoch + 1, job.epochs, last_loss, ema, lr, tps, el,
                        el / (double)(step - step0) * (double)(total - step)),
            step == total || (step % steps_per_epoch == 0), el);
        if ((job.checkpoint_every > 0 && step % job.checkpoint_every == 0) || step == total ||
            step == job.stop_after)
            save_checkpoint();
        if (job.stop_after >= 0 && step >= job.stop_after) break;
    }
    const double train_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_train).count();

    FinetuneReport rep;
    rep.steps = step;
    rep.epochs = job.epochs;
    rep.n_sequences = n_seq;
    rep.n_train_tokens = n_pred;
    rep.n_experts = n_experts;
    rep.n_trainable = n_trainable;
    rep.n_params = model.n_params();
    rep.first_block = blocks.front();
    rep.first_loss = first_loss;
    rep.final_loss = last_loss;
    rep.tokens_per_s = tokens_now > 0 ? (double)tokens_now / train_s : 0.0;
    if (step < total) {  // stopped early (testing): as if killed, the checkpoints are all there is
        rep.stopped = true;
        return rep;
    }

    // ---- write-back
    const auto wb =
        write_expert_slices(job.model, job.out, model.expert_override,
                            {{"routescope.finetune.base_sha256", base_sha},
                             {"routescope.finetune.subnetwork", subnetwork_name(job.subnetwork)},
                             {"routescope.finetune.set", set_name},
                             {"routescope.finetune.experts", blocks_text(sel)},
                             {"routescope.finetune.corpus", job.corpus},
                             {"routescope.finetune.langs", fmt::format("{}", fmt::join(job.langs, ","))},
                             {"routescope.finetune.settings", cfg.dump()}});
    rep.slices_written = wb.slices_written;
    rep.written_types = wb.types;
    rep.log_csv = job.out + ".log.csv";
    write_file_atomic(rep.log_csv, log);
    rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return rep;
}

}  // namespace rs
