// Engine: one llama.cpp model + context with the router tap (see routescope/engine.h).
#include "routescope/engine.h"

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "llama.h"
#include "router_tap.h"
#include "routescope/common.h"

namespace rs {

// llama.cpp/ggml log nothing unless RS_VERBOSE is set: routescope turns their failures into its own
// one-line errors, which point at RS_VERBOSE=1 for the details.
static void quiet_log(ggml_log_level, const char *, void *) {}

void engine_backend_init() {
    static std::once_flag once;
    std::call_once(once, [] {
        if (!std::getenv("RS_VERBOSE")) llama_log_set(quiet_log, nullptr);
        llama_backend_init();
    });
}

struct Engine::Impl {
    ModelInfo info;
    EngineParams params;
    llama_model * model = nullptr;
    llama_context * ctx = nullptr;
    const llama_vocab * vocab = nullptr;
    RouterTap tap;  // the callback state of this context
    int32_t filler_token = 0;
    SteerPlan steer;

    ~Impl() {
        if (ctx) llama_free(ctx);
        if (model) llama_model_free(model);
    }

    // Packs sequences [i, j) into one batch, decodes it and calls on_seq(index, batch offset, n).
    template <typename OnBatch>
    void decode_packed(std::span<const std::vector<int32_t>> seqs, OnBatch && on_batch);
};

Engine::Engine(const std::string & model_path, const EngineParams & params)
    : impl_(std::make_unique<Impl>()) {
    engine_backend_init();
    auto & m = *impl_;
    m.info = inspect_model(model_path);  // rejects missing/corrupt/dense files before llama.cpp sees them
    m.params = params;
    if (m.params.n_threads <= 0) m.params.n_threads = (int)std::max(1u, std::thread::hardware_concurrency());
    if (m.params.n_batch < 8) throw Error("--batch must be at least 8 tokens");
    m.params.n_seq_max = std::clamp(m.params.n_seq_max + 1, 2, 256);  // +1: the filler sequence

    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = params.n_gpu_layers;
    m.model = llama_model_load_from_file(model_path.c_str(), mp);
    if (!m.model)
        throw Error(fmt::format("llama.cpp could not load {} (arch {}); run with RS_VERBOSE=1 for its log",
                                model_path, m.info.arch));
    m.vocab = llama_model_get_vocab(m.model);
    m.filler_token = std::max(0, (int)llama_vocab_bos(m.vocab));

    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)m.params.n_batch;
    cp.n_batch = (uint32_t)m.params.n_batch;
    cp.n_ubatch = (uint32_t)m.params.n_batch;  // one ubatch per decode: columns in batch order (notes §D)
    cp.n_seq_max = (uint32_t)m.params.n_seq_max;
    cp.kv_unified = true;
    cp.n_threads = cp.n_threads_batch = m.params.n_threads;
    cp.no_perf = true;
    if (m.params.tap) {
        m.tap.configure(m.info.n_layer, m.info.n_expert, m.info.top_k, m.info.moe_layers, m.info.router_bias);
        cp.cb_eval = router_tap_eval;
        cp.cb_eval_user_data = &m.tap;
    }
    m.ctx = llama_init_from_model(m.model, cp);
    if (!m.ctx)
        throw Error(fmt::format("llama.cpp could not create a context for {} (--batch {} too large?)",
                                model_path, m.params.n_batch));
}

Engine::~Engine() = default;

const ModelInfo & Engine::info() const {
    return impl_->info;
}
const EngineParams & Engine::params() const {
    return impl_->params;
}
int Engine::n_vocab() const {
    return llama_vocab_n_tokens(impl_->vocab);
}

std::vector<int32_t> Engine::tokenize(const std::string & text, int max_tokens) const {
    std::vector<llama_token> out(text.size() + 8);
    int n = llama_tokenize(impl_->vocab, text.data(), (int32_t)text.size(), out.data(), (int32_t)out.size(),
                           /*add_special*/ true, /*parse_special*/ false);
    if (n < 0) {
        out.resize((size_t)-n);
        n = llama_tokenize(impl_->vocab, text.data(), (int32_t)text.size(), out.data(), (int32_t)out.size(),
                           true, false);
    }
    RS_ASSERT(n >= 0);
    out.resize((size_t)std::min(n, max_tokens));
    return out;
}

// llama.cpp's CPU kernels take a different path for ubatches under 64 tokens (measured: a sequence's
// router logits are bit-identical in any batch of >= 64 tokens, but differ by up to 1e-2 in p in a
// smaller one). Short batches are therefore padded with a filler sequence whose rows are dropped,
// which makes recordings independent of how sequences were packed.
constexpr int32_t kMinBatchTokens = 64;

template <typename OnBatch>
void Engine::Impl::decode_packed(std::span<const std::vector<int32_t>> seqs, OnBatch && on_batch) {
    llama_batch batch = llama_batch_init(params.n_batch, 0, 1);
    struct BatchFree {
        llama_batch & b;
        ~BatchFree() { llama_batch_free(b); }
    } batch_free{batch};

    std::vector<uint64_t> keys;
    size_t i = 0;
    while (i < seqs.size()) {
        // greedy packing: as many whole sequences as fit in n_batch tokens and n_seq_max slots
        size_t j = i;
        int32_t n_tok = 0;
        while (j < seqs.size() && j - i + 1 < (size_t)params.n_seq_max &&  // one slot kept for the filler
               n_tok + (int32_t)seqs[j].size() <= params.n_batch) {
            if (seqs[j].empty()) throw Error(fmt::format("sequence {} has no tokens", j));
            n_tok += (int32_t)seqs[j].size();
            ++j;
        }
        if (j == i)
            throw Error(
                fmt::format("a sequence of {} tokens exceeds --batch {}; lower --max-tokens or raise --batch",
                            seqs[i].size(), params.n_batch));
        batch.n_tokens = 0;
        keys.assign((size_t)params.n_batch, 0);
        for (size_t s = i; s < j; ++s)
            for (size_t p = 0; p < seqs[s].size(); ++p) {
                const int k = batch.n_tokens++;
                batch.token[k] = seqs[s][p];
                batch.pos[k] = (llama_pos)p;
                batch.n_seq_id[k] = 1;
                batch.seq_id[k][0] = (llama_seq_id)(s - i);
                batch.logits[k] = 1;  // every token an output: the last MoE layer then keeps every column
                keys[k] = ((uint64_t)p << 32) | (uint32_t)seqs[s][p];  // force jitter: batch-independent
            }
        for (int32_t p = 0; batch.n_tokens < std::min(kMinBatchTokens, params.n_batch); ++p) {
            const int k = batch.n_tokens++;
            batch.token[k] = filler_token;
            batch.pos[k] = p;
            batch.n_seq_id[k] = 1;
            batch.seq_id[k][0] = (llama_seq_id)(j - i);
            batch.logits[k] = 1;
        }
        llama_memory_clear(llama_get_memory(ctx), true);
        if (params.tap) {
            tap.begin_batch(batch.n_tokens);
            std::copy(keys.begin(), keys.begin() + batch.n_tokens, tap.col_key.begin());
        }
        const int rc = llama_decode(ctx, batch);
        if (rc != 0) {
            tap.armed = false;
            throw Error(
                fmt::format("llama_decode failed (status {}) on a batch of {} tokens", rc, batch.n_tokens));
        }
        if (params.tap) tap.end_batch();
        on_batch(i, j);
        i = j;
    }
}

std::vector<RouterRecord> Engine::record(std::span<const std::vector<int32_t>> seqs) {
    auto & m = *impl_;
    RS_ASSERT(m.params.tap);
    const int L = m.tap.n_moe, E = m.info.n_expert, K = m.info.top_k;
    std::vector<RouterRecord> out(seqs.size());
    m.decode_packed(seqs, [&](size_t i, size_t j) {
        int64_t off = 0;  // token offset of sequence s inside the batch
        for (size_t s = i; s < j; ++s) {
            const auto n = (int64_t)seqs[s].size();
            auto & r = out[s];
            r.tokens = seqs[s];
            r.logits.assign(m.tap.logits.begin() + off * L * E, m.tap.logits.begin() + (off + n) * L * E);
            r.topk.assign(m.tap.topk.begin() + off * L * K, m.tap.topk.begin() + (off + n) * L * K);
            off += n;
        }
    });
    return out;
}

void Engine::set_steering(SteerPlan plan) {
    auto & m = *impl_;
    if (!plan.empty() && !m.params.tap) throw Error("steering needs the router tap (EngineParams::tap)");
    if (!plan.empty() && (int)plan.ops.size() != m.info.n_layer)
        throw Error("steering plan was built for a model with another number of layers");
    m.steer = std::move(plan);
    m.tap.steer = m.steer.empty() ? nullptr : &m.steer;
}

void Engine::decode(std::span<const std::vector<int32_t>> seqs) {
    impl_->decode_packed(seqs, [](size_t, size_t) {});
}

std::vector<std::vector<float>> Engine::output_logits(std::span<const std::vector<int32_t>> seqs) {
    auto & m = *impl_;
    const int V = n_vocab();
    std::vector<std::vector<float>> out(seqs.size());
    m.decode_packed(seqs, [&](size_t i, size_t j) {
        int32_t k = 0;
        for (size_t s = i; s < j; ++s) {
            out[s].resize(seqs[s].size() * (size_t)V);
            for (size_t p = 0; p < seqs[s].size(); ++p, ++k) {
                const float * row = llama_get_logits_ith(m.ctx, k);
                RS_ASSERT(row != nullptr);
                std::copy(row, row + V, out[s].begin() + (ptrdiff_t)(p * V));
            }
        }
    });
    return out;
}

}  // namespace rs
