// run_trace: corpus → engine (router tap) → trace store. The only place the three meet.
//
// Work is done one shard at a time (seqs_per_shard sequences in corpus order), each shard written
// atomically, so a killed run loses at most the shard in flight and `--resume` skips finished shards.
#include "routescope/record.h"

#include <cmath>
#include <filesystem>

#include <fmt/format.h>

#include "routescope/common.h"
#include "routescope/corpus.h"
#include "routescope/engine.h"
#include "routescope/file_io.h"
#include "routescope/progress.h"
#include "routescope/steer.h"
#include "routescope/trace.h"

namespace rs {

void routing_softmax(const float * z, float * p, int n_expert) {
    double zmax = z[0];
    for (int e = 1; e < n_expert; ++e) zmax = std::max(zmax, (double)z[e]);
    double sum = 0.0;
    for (int e = 0; e < n_expert; ++e) sum += std::exp((double)z[e] - zmax);
    for (int e = 0; e < n_expert; ++e) p[e] = (float)(std::exp((double)z[e] - zmax) / sum);
}

namespace {

// Keeps the rows of tokens [b, e) of a record (logits: row_logits values per token, topk: row_topk).
void keep_token_span(RouterRecord & r, int64_t b, int64_t e, int64_t row_logits, int64_t row_topk) {
    r.tokens = std::vector<int32_t>(r.tokens.begin() + b, r.tokens.begin() + e);
    r.logits = std::vector<float>(r.logits.begin() + b * row_logits, r.logits.begin() + e * row_logits);
    r.topk = std::vector<int16_t>(r.topk.begin() + b * row_topk, r.topk.begin() + e * row_topk);
}

}  // namespace

TraceSummary run_trace(const TraceJob & job) {
    const auto t0 = std::chrono::steady_clock::now();
    if (job.probs_dtype != "f16" && job.probs_dtype != "f32")
        throw Error(fmt::format("--dtype must be f16 or f32, not '{}'", job.probs_dtype));
    if (job.store != "full" && job.store != "topk")
        throw Error(fmt::format("--store must be full or topk, not '{}'", job.store));
    if (job.seqs_per_shard < 1) throw Error("--shard-seqs must be at least 1");
    if (job.max_tokens < 1) throw Error("--max-tokens must be at least 1");

    const Corpus corpus = load_corpus(job.corpus, {job.langs, job.limit});
    EngineParams ep;
    ep.n_threads = job.n_threads;
    ep.n_batch = job.n_batch;
    ep.n_seq_max = job.n_seq_max;
    ep.n_gpu_layers = job.n_gpu_layers;
    ep.rpc_servers = job.rpc_servers;
    ep.allow_unverified_arch = job.allow_unverified_arch;
    {  // one shard in memory: its router records, f32 p, the f16 copy written, ids (and logits); a
        // sequence has at most one token per byte (byte fallback) plus BOS
        int64_t tok = 0, most = 0;
        for (size_t i = 0; i < corpus.seqs.size(); ++i) {
            if (i % (size_t)job.seqs_per_shard == 0) tok = 0;
            tok += std::min<int64_t>(job.max_tokens, (int64_t)corpus.seqs[i].text.size() + 1);
            most = std::max(most, tok);
        }
        engine_backend_init();  // llama.cpp/ggml quiet before the GGUF is read (a corrupt file)
        const ModelInfo pre = inspect_model(job.model);
        const int64_t rows = most * (int64_t)pre.moe_layers.size();
        ep.host_extra_bytes = rows * (pre.n_expert * (4 + 4 + 2 + (job.logits ? 4 : 0)) + 2 * 2 * pre.top_k);
    }
    Engine engine(job.model, ep);
    const ModelInfo & mi = engine.info();
    nlohmann::json steer_json;
    if (!job.steer.empty()) {
        SteerPlan plan = load_steer_plan(job.steer, mi);
        steer_json = plan.to_json();
        engine.set_steering(std::move(plan));
    }
    if (job.max_tokens > job.n_batch)
        throw Error(fmt::format("--max-tokens {} exceeds --batch {}", job.max_tokens, job.n_batch));
    const ChatFrame chat = engine.chat_frame(job.chat_template);
    if (chat.none() && !job.template_tokens)
        throw Error(
            fmt::format("--template-tokens drop: {} is recorded without a chat template (--chat-template "
                        "{}); drop it or name a template",
                        job.model, job.chat_template));

    TraceManifest m;
    m.tool_version = ROUTESCOPE_VERSION;
    m.model_path = std::filesystem::absolute(job.model).string();
    m.model_sha256 = model_sha256(job.model);
    m.arch = mi.arch;
    m.model_name = mi.name;
    m.n_layer = mi.n_layer;
    m.moe_layers = mi.moe_layers;
    m.n_expert = mi.n_expert;
    m.top_k = mi.top_k;
    m.gating = mi.gating;
    m.hash_layers = mi.hash_layers;
    m.p_meaning = routing_p_meaning(mi.gating, !mi.hash_layers.empty());
    m.corpus = job.corpus;
    m.langs = corpus.langs;
    for (const auto & s : corpus.seqs)
        if (std::find(m.domains.begin(), m.domains.end(), s.domain) == m.domains.end())
            m.domains.push_back(s.domain);
    m.n_sequences = (int64_t)corpus.seqs.size();
    {  // content hash: a resumed run must see the same sequences, not only the same count
        Sha256 h;
        for (const auto & q : corpus.seqs) {
            const std::string row =
                fmt::format("{}\t{}\t{}\t{}\t{}\n", q.id, q.lang, q.domain, q.group, q.text.size());
            h.update(row.data(), row.size());
            h.update(q.text.data(), q.text.size());
        }
        m.corpus_sha256 = h.hex();
    }
    m.seqs_per_shard = job.seqs_per_shard;
    m.probs_dtype = job.probs_dtype;
    m.has_logits = job.logits;
    m.store = job.store;  // write_shard keeps only the selected experts' p with "topk"
    // The packing is part of the run's identity: llama.cpp's kernels round differently with the batch
    // shape (README, "Batch packing"), so a resume must not mix packings. Threads and placement are
    // not (they do not change CPU results; GPU offload is recorded for the reader).
    m.options = {{"max_tokens", job.max_tokens},
                 {"limit", job.limit},
                 {"threads", engine.params().n_threads},
                 {"batch", job.n_batch},
                 {"batch_seqs", engine.seqs_per_decode()}};
    if (job.n_gpu_layers > 0 || !job.rpc_servers.empty()) {
        m.options["gpu_layers"] = job.n_gpu_layers;
        m.options["rpc"] = job.rpc_servers;
    }
    if (!steer_json.is_null()) m.options["steer"] = steer_json;  // recorded logits are the steered ones
    if (!chat.none())  // what surrounds each sentence, and whether its tokens are in the shards
        m.options["chat_template"] = {{"name", chat.name},
                                      {"prefix", chat.prefix},
                                      {"suffix", chat.suffix},
                                      {"template_tokens", job.template_tokens ? "keep" : "drop"}};

    const int64_t n_shards = trace_n_shards(m);
    const TracePart part{job.part_index, job.part_count};
    if (part.count < 1 || part.index < 1 || part.index > part.count)
        throw Error(fmt::format("--part {}/{}: expected I/N with 1 <= I <= N", part.index, part.count));
    if (part.count > n_shards)
        throw Error(
            fmt::format("--part {}/{}: the corpus makes only {} shards of {} sequences (use at most "
                        "{} parts, or a smaller --shard-seqs)",
                        part.index, part.count, n_shards, m.seqs_per_shard, n_shards));
    if (part.count > 1) {
        // every boundary between parts, so that all machines agree the split is valid
        for (int q = 2; q <= part.count; ++q) {
            const int64_t b = trace_part_shards(n_shards, {q, part.count}).first * m.seqs_per_shard;
            const auto &before = corpus.seqs[(size_t)b - 1], &after = corpus.seqs[(size_t)b];
            if (after.group >= 0 && before.group == after.group)
                throw Error(fmt::format(
                    "--part {}/{}: parts {} and {} would split parallel group {} (shards of {} sequences do "
                    "not end on a group; use a --shard-seqs that is a multiple of the {} languages)",
                    part.index, part.count, q - 1, q, after.group, m.seqs_per_shard, m.langs.size()));
        }
        m.options["part"] = {{"index", part.index}, {"count", part.count}};
    }
    const auto [part_lo, part_hi] = trace_part_shards(n_shards, part);

    const auto done = prepare_trace_dir(job.out, m, job.resume);
    const int L = (int)mi.moe_layers.size(), E = mi.n_expert, K = mi.top_k;

    TraceSummary sum;
    auto shard_seqs = [&](int64_t k) {
        return std::min<int64_t>(m.seqs_per_shard, m.n_sequences - k * m.seqs_per_shard);
    };
    int64_t part_seqs = 0, seqs_done = 0;
    for (int64_t k = part_lo; k < part_hi; ++k) part_seqs += shard_seqs(k);
    sum.n_sequences = part_seqs;  // the whole corpus, or this part's sequences
    Progress progress("trace", part_seqs, job.progress);
    for (int64_t k : done)
        if (k >= part_lo && k < part_hi) seqs_done += shard_seqs(k);
    progress.set_first_done(seqs_done);

    for (int64_t shard = part_lo; shard < part_hi; ++shard) {
        if (std::binary_search(done.begin(), done.end(), shard)) {
            ++sum.shards_skipped;
            continue;
        }
        if (job.stop_after_shards >= 0 && sum.shards_written >= job.stop_after_shards) break;
        const int64_t b = shard * m.seqs_per_shard, e = std::min(m.n_sequences, b + m.seqs_per_shard);
        std::vector<std::vector<int32_t>> toks;
        std::vector<ChatTokens> framed;
        for (int64_t i = b; i < e; ++i) {
            framed.push_back(engine.tokenize_chat(chat, corpus.seqs[i].text, job.max_tokens));
            toks.push_back(framed.back().tokens);
        }
        auto recs = engine.record(toks);
        if (!chat.none() && !job.template_tokens)  // decoded in the template, recorded without it
            for (size_t i = 0; i < recs.size(); ++i)
                keep_token_span(recs[i], framed[i].text_begin, framed[i].text_end, L * E, L * K);

        TraceShard s;
        s.n_moe = L, s.n_expert = E, s.top_k = K;
        for (int64_t i = b; i < e; ++i) {
            const auto & q = corpus.seqs[i];
            const auto & r = recs[i - b];
            const auto lang = std::find(m.langs.begin(), m.langs.end(), q.lang) - m.langs.begin();
            const auto dom = std::find(m.domains.begin(), m.domains.end(), q.domain) - m.domains.begin();
            s.seqs.push_back(
                {i, q.group, (int32_t)lang, (int32_t)dom, q.id, s.n_tok(), (int64_t)r.tokens.size()});
            s.tokens.insert(s.tokens.end(), r.tokens.begin(), r.tokens.end());
            const size_t p0 = s.probs.size();
            s.probs.resize(p0 + r.logits.size());
            for (size_t row = 0; row < r.logits.size() / E; ++row)
                routing_softmax(&r.logits[row * E], &s.probs[p0 + row * E], E);
            s.topk.insert(s.topk.end(), r.topk.begin(), r.topk.end());
            if (job.logits) s.logits.insert(s.logits.end(), r.logits.begin(), r.logits.end());
        }
        for (const float p : s.probs)  // e.g. a steering λ that overflows the logits: never a result
            if (!std::isfinite(p))
                throw Error(
                    fmt::format("{}: the router probabilities of shard {} are not finite (a steering "
                                "rule drives the logits out of range; lower its lambda or margin)",
                                job.out, shard));
        set_shard_digests(m, shard, write_shard(job.out, shard, m, s));
        write_manifest(job.out, m);  // the checksum lets --resume trust this shard
        ++sum.shards_written;
        sum.n_tokens += s.n_tok();
        seqs_done += e - b;
        progress.update(seqs_done, sum.n_tokens);
    }
    progress.update(seqs_done, sum.n_tokens, true);
    sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return sum;
}

}  // namespace rs
