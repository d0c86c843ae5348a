// Engine: one llama.cpp model + context with the router tap (see routescope/engine.h).
#include "routescope/engine.h"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "ggml-rpc.h"
#include "llama.h"
#include "router_tap.h"
#include "routescope/common.h"
#include "tokenize.h"

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

// ggml's RPC client aborts the process when a server cannot be reached (ggml-rpc.cpp,
// rpc_dispatcher::start): check "HOST:PORT" and connect once first, so a typo is a one-line error.
static void check_rpc_server(const std::string & endpoint) {
    const auto colon = endpoint.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == endpoint.size())
        throw Error(fmt::format("--rpc {}: expected HOST:PORT (e.g. 127.0.0.1:50052)", endpoint));
    const std::string host = endpoint.substr(0, colon), port = endpoint.substr(colon + 1);
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo * res = nullptr;
    if (getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0 || res == nullptr)
        throw Error(fmt::format("--rpc {}: cannot resolve host '{}'", endpoint, host));
    bool ok = false;
    for (addrinfo * a = res; a && !ok; a = a->ai_next) {
        const int fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd < 0) continue;
        ok = connect(fd, a->ai_addr, a->ai_addrlen) == 0;
        close(fd);
    }
    freeaddrinfo(res);
    if (!ok)
        throw Error(
            fmt::format("--rpc {}: no rpc-server answers there (start one with `rpc-server -H {} -p {}`)",
                        endpoint, host, port));
}

struct Engine::Impl {
    ModelInfo info;
    EngineParams params;
    llama_model * model = nullptr;
    llama_context * ctx = nullptr;
    const llama_vocab * vocab = nullptr;
    RouterTap tap;  // the callback state of this context
    int32_t filler_token = 0;
    bool one_seq_per_decode = false;          // recurrent / hybrid memory: batches are split per sequence
    std::vector<ggml_backend_dev_t> devices;  // RPC devices, null-terminated (empty: llama.cpp's default)
    SteerPlan steer;

    ~Impl() {
        if (ctx) llama_free(ctx);
        if (model) llama_model_free(model);
    }

    // Packs whole sequences into batches (n_batch tokens, n_seq_max − 1 sequences plus a filler),
    // decodes each and calls on_batch(i, j) for the sequences [i, j) it held. is_output(s, p) says
    // whether token p of sequence s needs its output logits; record asks the tap to record routing,
    // routing_only (with record) says that no output is read, so the graph stops after the last router.
    template <typename IsOutput, typename OnBatch>
    void decode_packed(std::span<const std::vector<int32_t>> seqs, bool record, IsOutput && is_output,
                       OnBatch && on_batch, bool routing_only = false);

    // Fills info.gating / info.hash_layers from the graph (ObservedGating).
    void observe_gating();

    // llama_decode with the tap armed for this batch (keys: (position, token) of each column).
    void decode_batch(const llama_batch & batch, bool record, bool routing_only = false);
};

Engine::Engine(const std::string & model_path, const EngineParams & params)
    : impl_(std::make_unique<Impl>()) {
    engine_backend_init();
    auto & m = *impl_;
    m.info = inspect_model(model_path);  // rejects missing/corrupt/dense files before llama.cpp sees them
    m.params = params;
    // before the weights are loaded: refusing a 100 GB file should not cost its load time
    if (m.params.tap && !m.params.allow_unverified_arch) check_verified_arch(m.info);
    if (m.params.n_threads <= 0) m.params.n_threads = (int)std::max(1u, std::thread::hardware_concurrency());
    if (m.params.n_batch < 8) throw Error("--batch must be at least 8 tokens");
    if (m.params.n_seq_max < 1 || m.params.n_seq_max > 255)
        throw Error(fmt::format("--batch-seqs must be between 1 and 255, not {}", m.params.n_seq_max));
    // +1: the filler sequence. llama.cpp reserves one output row per sequence within n_batch
    // (llama-context.cpp, output_reserve(n_seq_max) ≤ n_outputs_max = n_batch), and a batch cannot
    // hold more sequences than tokens anyway: at most n_batch − 1 sequences plus the filler.
    m.params.n_seq_max = std::min(m.params.n_seq_max, m.params.n_batch - 1) + 1;
    if (!std::getenv("RS_NO_MEMORY_CHECK")) {  // before loading: a run that cannot fit fails in a second
        MemoryEstimate est = estimate_memory(model_path, m.params);
        if (m.params.tap)  // tap.logits/topk of one batch and record()'s copy of them
            est.routing += 2 * (int64_t)m.params.n_batch * (int64_t)m.info.moe_layers.size() *
                           (4 * (int64_t)m.info.n_expert + 2 * (int64_t)m.info.top_k);
        check_memory(model_path, est, available_memory());
    }

    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = params.n_gpu_layers;
    for (const auto & ep : params.rpc_servers) {
        check_rpc_server(ep);
        ggml_backend_reg_t reg = ggml_backend_rpc_add_server(ep.c_str());
        if (reg == nullptr || ggml_backend_reg_dev_count(reg) == 0)
            throw Error(fmt::format("--rpc {}: the rpc-server offers no device", ep));
        for (size_t d = 0; d < ggml_backend_reg_dev_count(reg); ++d)
            m.devices.push_back(ggml_backend_reg_dev_get(reg, d));
    }
    if (!m.devices.empty()) {
        m.devices.push_back(nullptr);
        mp.devices = m.devices.data();
    }
    m.model = llama_model_load_from_file(model_path.c_str(), mp);
    if (!m.model)
        throw Error(fmt::format("llama.cpp could not load {} (arch {}); run with RS_VERBOSE=1 for its log",
                                model_path, m.info.arch));
    m.vocab = llama_model_get_vocab(m.model);
    m.filler_token = std::max(0, (int)llama_vocab_bos(m.vocab));
    m.one_seq_per_decode = llama_model_is_recurrent(m.model) || llama_model_is_hybrid(m.model);

    if (m.params.n_ctx <= 0) m.params.n_ctx = m.params.n_batch;
    if (m.params.n_ctx < m.params.n_batch) throw Error("the context (--ctx) must hold at least one batch");
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)m.params.n_ctx;
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
    if (m.params.tap) m.observe_gating();
}

// The gating label of one layer, in inspect_model's vocabulary (model.h).
static std::string gating_label(const ObservedGating & g) {
    static const char * const probs[] = {"unknown",      "softmax",       "sigmoid",
                                         "softmax_topk", "sqrt_softplus", "unknown"};
    std::string s = probs[g.probs];
    if (g.sigmoid_selection) s += "+sigmoid_selection";
    if (g.renorm && g.probs != ObservedGating::softmax_weight) s += "+renorm";
    if (g.sel_bias) s += "+bias";
    if (g.groups) s += "+groups";
    return s;
}

// One token through the graph with the tap observing node names (nothing is asked for): the gating
// each MoE layer actually applies replaces the label read from the GGUF keys.
void Engine::Impl::observe_gating() {
    llama_batch batch = llama_batch_init(1, 0, 1);
    batch.n_tokens = 1;
    batch.token[0] = filler_token;
    batch.pos[0] = 0;
    batch.n_seq_id[0] = 1;
    batch.seq_id[0][0] = 0;
    batch.logits[0] = 1;
    tap.observe = true;
    const int rc = llama_decode(ctx, batch);
    tap.observe = false;
    llama_batch_free(batch);
    llama_memory_clear(llama_get_memory(ctx), true);
    if (rc != 0)
        throw Error(fmt::format("llama_decode failed (status {}) on {}'s first token", rc, info.path));
    // A block can carry router tensors that its graph never uses (e.g. a file whose ffn_gate_inp
    // stands in layers that the architecture's interleaving makes dense): only routers that run
    // are recorded. None at all is a refusal by name.
    std::vector<int> ran;
    std::vector<ObservedGating> observed;
    for (size_t s = 0; s < tap.observed.size(); ++s)
        if (tap.observed[s].seen) {
            ran.push_back(info.moe_layers[s]);
            observed.push_back(tap.observed[s]);
        }
    if (ran.empty())
        throw Error(
            fmt::format("{} ({}): llama.cpp's {} graph runs none of the file's routers "
                        "(blk.N.ffn_gate_inp): not a Mixture-of-Experts forward pass, nothing to record",
                        info.path, info.arch, info.arch));
    if (ran != info.moe_layers) {
        info.moe_layers = ran;
        tap.configure(info.n_layer, info.n_expert, info.top_k, info.moe_layers, info.router_bias);
        tap.observed = observed;  // the slots of the routers that run
    }
    std::vector<std::string> labels;
    info.hash_layers.clear();
    for (size_t s = 0; s < observed.size(); ++s) {
        if (observed[s].hash) {
            info.hash_layers.push_back(info.moe_layers[s]);
            continue;
        }
        const auto l = gating_label(observed[s]);
        if (std::find(labels.begin(), labels.end(), l) == labels.end()) labels.push_back(l);
    }
    std::string g;
    for (const auto & l : labels) g += (g.empty() ? "" : "|") + l;  // "|": layers gate differently
    if (!g.empty()) info.gating = g;
}

Engine::~Engine() = default;

const ModelInfo & Engine::info() const {
    return impl_->info;
}
const EngineParams & Engine::params() const {
    return impl_->params;
}
int Engine::seqs_per_decode() const {
    return impl_->one_seq_per_decode ? 1 : impl_->params.n_seq_max - 1;
}
int Engine::n_vocab() const {
    return llama_vocab_n_tokens(impl_->vocab);
}

std::vector<int32_t> Engine::tokenize(const std::string & text, int max_tokens, bool add_special) const {
    auto out = tokenize_text(impl_->vocab, text, add_special);
    if ((int)out.size() > max_tokens) out.resize((size_t)std::max(max_tokens, 0));
    return out;
}

ChatFrame Engine::chat_frame(const std::string & choice) const {
    if (choice == "none") return {};
    const char * own = llama_model_chat_template(impl_->model, nullptr);
    std::string tmpl, name = choice;
    if (choice == "auto" || choice == "gguf") {
        if (!own) {
            if (choice == "auto") return {};
            throw Error(
                fmt::format("{} carries no chat template (tokenizer.chat_template); name one with "
                            "--chat-template (e.g. chatml) or use none",
                            impl_->info.path));
        }
        tmpl = own, name = "gguf";
    } else {
        // the count first: the call returns the total, which may exceed the room given
        std::vector<const char *> names((size_t)llama_chat_builtin_templates(nullptr, 0));
        llama_chat_builtin_templates(names.data(), names.size());
        std::string known;
        for (const char * n : names) known += (known.empty() ? "" : ", ") + std::string(n);
        if (std::find_if(names.begin(), names.end(), [&](const char * n) { return choice == n; }) ==
            names.end())
            throw Error(
                fmt::format("--chat-template {}: not one of auto, none, gguf or llama.cpp's built-in "
                            "templates ({})",
                            choice, known));
        tmpl = choice;
    }
    // A marker as the message: llama.cpp formats the chat, routescope splits it around the marker.
    const std::string marker = "\x1eroutescope-user-message\x1e";
    const llama_chat_message msg{"user", marker.c_str()};
    std::string buf(4096, '\0');
    int32_t n = llama_chat_apply_template(tmpl.c_str(), &msg, 1, true, buf.data(), (int32_t)buf.size());
    if (n > (int32_t)buf.size()) {
        buf.resize((size_t)n);
        n = llama_chat_apply_template(tmpl.c_str(), &msg, 1, true, buf.data(), (int32_t)buf.size());
    }
    if (n < 0)
        throw Error(
            fmt::format("llama.cpp cannot format the chat template {} of {} (it formats only its "
                        "built-in templates; name one with --chat-template, e.g. chatml, or use none)",
                        name, impl_->info.path));
    buf.resize((size_t)n);
    ChatFrame f = split_chat_frame(buf, marker, name);
    f.suffix += no_thinking_suffix(tmpl);  // the papers record and prompt without thinking
    return f;
}

ChatTokens Engine::tokenize_chat(const ChatFrame & frame, const std::string & text, int max_tokens) const {
    const llama_vocab * v = impl_->vocab;
    ChatTokens out;
    if (frame.none()) {
        out.tokens = tokenize(text, max_tokens);
        out.text_begin = llama_vocab_get_add_bos(v) && !out.tokens.empty() ? 1 : 0;
        out.text_end = (int64_t)out.tokens.size();
        return out;
    }
    auto head = tokenize_text(v, frame.prefix, false, true);
    if (llama_vocab_get_add_bos(v) && (head.empty() || head[0] != llama_vocab_bos(v)))
        head.insert(head.begin(), llama_vocab_bos(v));
    auto body = tokenize_text(v, text, false, false);
    const auto tail = tokenize_text(v, frame.suffix, false, true);
    const int64_t room = (int64_t)max_tokens - (int64_t)head.size() - (int64_t)tail.size();
    if (room < 1)
        throw Error(fmt::format("chat template {} takes {} tokens, more than --max-tokens {} allows",
                                frame.name, head.size() + tail.size(), max_tokens));
    if ((int64_t)body.size() > room) body.resize((size_t)room);
    out.tokens = std::move(head);
    out.text_begin = (int64_t)out.tokens.size();
    out.tokens.insert(out.tokens.end(), body.begin(), body.end());
    out.text_end = (int64_t)out.tokens.size();
    out.tokens.insert(out.tokens.end(), tail.begin(), tail.end());
    return out;
}

// llama.cpp's CPU kernels take a different path for ubatches under 64 tokens (flash attention's
// per-row path; router logits then differ by up to 1e-2 in p). Short batches are therefore padded
// with a filler sequence whose rows are dropped. This does not make recordings fully independent of
// packing: reductions over the unified KV cache still round differently with a sequence's cell
// offset, which flips near-ties, quantised models most (README, "Batch packing", measured bounds);
// the packing is recorded in the manifest, and --batch-seqs 1 decodes each sequence alone.
constexpr int32_t kMinBatchTokens = 64;

void Engine::Impl::decode_batch(const llama_batch & batch, bool record, bool routing_only) {
    if (params.tap) {
        tap.begin_batch(batch.n_tokens, record, routing_only);
        for (int32_t k = 0; k < batch.n_tokens; ++k) {
            // force jitter key: (position, token), independent of how sequences were packed
            tap.col_key[(size_t)k] = ((uint64_t)batch.pos[k] << 32) | (uint32_t)batch.token[k];
            if (batch.logits[k]) tap.out_cols.push_back(k);
        }
    }
    const int rc = llama_decode(ctx, batch);
    if (rc != 0) {
        tap.armed = false;
        throw Error(
            fmt::format("llama_decode failed (status {}) on a batch of {} tokens", rc, batch.n_tokens));
    }
    if (params.tap) tap.end_batch();
}

template <typename IsOutput, typename OnBatch>
void Engine::Impl::decode_packed(std::span<const std::vector<int32_t>> seqs, bool record,
                                 IsOutput && is_output, OnBatch && on_batch, bool routing_only) {
    llama_batch batch = llama_batch_init(params.n_batch, 0, 1);
    struct BatchFree {
        llama_batch & b;
        ~BatchFree() { llama_batch_free(b); }
    } batch_free{batch};

    size_t i = 0;
    while (i < seqs.size()) {
        // greedy packing: as many whole sequences as fit in n_batch tokens and n_seq_max slots (one
        // slot kept for the filler); one sequence alone where the memory splits batches per sequence
        const size_t max_seqs = one_seq_per_decode ? 1 : (size_t)params.n_seq_max - 1;
        size_t j = i;
        int32_t n_tok = 0;
        while (j < seqs.size() && j - i < max_seqs && n_tok + (int32_t)seqs[j].size() <= params.n_batch) {
            if (seqs[j].empty()) throw Error(fmt::format("sequence {} has no tokens", j));
            n_tok += (int32_t)seqs[j].size();
            ++j;
        }
        if (j == i)
            throw Error(
                fmt::format("a sequence of {} tokens exceeds --batch {}; lower --max-tokens or raise --batch",
                            seqs[i].size(), params.n_batch));
        batch.n_tokens = 0;
        for (size_t s = i; s < j; ++s)
            for (size_t p = 0; p < seqs[s].size(); ++p) {
                const int k = batch.n_tokens++;
                batch.token[k] = seqs[s][p];
                batch.pos[k] = (llama_pos)p;
                batch.n_seq_id[k] = 1;
                batch.seq_id[k][0] = (llama_seq_id)(s - i);
                // recording: every token an output, so the last MoE layer keeps every column
                batch.logits[k] = record || is_output(s, p);
            }
        // (no filler where sequences are decoded alone: it would be a second sequence)
        for (int32_t p = 0; !one_seq_per_decode && batch.n_tokens < std::min(kMinBatchTokens, params.n_batch);
             ++p) {
            const int k = batch.n_tokens++;
            batch.token[k] = filler_token;
            batch.pos[k] = p;
            batch.n_seq_id[k] = 1;
            batch.seq_id[k][0] = (llama_seq_id)(j - i);
            batch.logits[k] = record;
        }
        llama_memory_clear(llama_get_memory(ctx), true);
        decode_batch(batch, record, routing_only);
        on_batch(i, j);
        i = j;
    }
    // llama_decode returns before an asynchronous backend (RPC, CUDA) has finished the graph: without
    // this the last batch of one call ran into the next call, so a timed plain decode() looked faster
    // than the record() after it (bench_rpc_overhead: the RPC tap measured +13–27% over plain decoding
    // with repetitions interleaved, +4–7% with one engine alone; +2–6% interleaved once synchronised)
    llama_synchronize(ctx);
}

std::vector<RouterRecord> Engine::record(std::span<const std::vector<int32_t>> seqs) {
    auto & m = *impl_;
    RS_ASSERT(m.params.tap);
    const int L = m.tap.n_moe, E = m.info.n_expert, K = m.info.top_k;
    std::vector<RouterRecord> out(seqs.size());
    m.decode_packed(
        seqs, true, [](size_t, size_t) { return true; },
        [&](size_t i, size_t j) {
            int64_t off = 0;  // token offset of sequence s inside the batch
            for (size_t s = i; s < j; ++s) {
                const auto n = (int64_t)seqs[s].size();
                auto & r = out[s];
                r.tokens = seqs[s];
                r.logits.assign(m.tap.logits.begin() + off * L * E, m.tap.logits.begin() + (off + n) * L * E);
                r.topk.assign(m.tap.topk.begin() + off * L * K, m.tap.topk.begin() + (off + n) * L * K);
                off += n;
            }
        },
        m.params.record_stops_early);  // nothing reads the outputs: stop after the last router
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
    impl_->decode_packed(
        seqs, false, [](size_t, size_t) { return true; }, [](size_t, size_t) {});
}

std::vector<std::vector<float>> Engine::output_logits(std::span<const std::vector<int32_t>> seqs,
                                                      std::span<const std::vector<int32_t>> positions,
                                                      bool record_routing) {
    auto & m = *impl_;
    RS_ASSERT(positions.empty() || positions.size() == seqs.size());
    RS_ASSERT(!record_routing || m.params.tap);
    const size_t V = (size_t)n_vocab();
    // wanted[s][p]: token p of sequence s is an output
    std::vector<std::vector<uint8_t>> wanted(seqs.size());
    for (size_t s = 0; s < seqs.size(); ++s) {
        wanted[s].assign(seqs[s].size(), positions.empty() ? 1 : 0);
        if (!positions.empty())
            for (int32_t p : positions[s]) {
                if (p < 0 || (size_t)p >= seqs[s].size())
                    throw Error(fmt::format("output position {} outside sequence {} of {} tokens", p, s,
                                            seqs[s].size()));
                wanted[s][(size_t)p] = 1;
            }
    }
    std::vector<std::vector<float>> out(seqs.size());
    m.decode_packed(
        seqs, record_routing, [&](size_t s, size_t p) { return wanted[s][p] != 0; },
        [&](size_t i, size_t j) {
            int32_t k = 0;  // batch index of token p of sequence s
            for (size_t s = i; s < j; ++s)
                for (size_t p = 0; p < seqs[s].size(); ++p, ++k) {
                    if (!wanted[s][p]) continue;
                    const float * row = llama_get_logits_ith(m.ctx, k);
                    RS_ASSERT(row != nullptr);
                    out[s].insert(out[s].end(), row, row + V);
                }
        });
    return out;
}

// Continuous batching: every step decodes one token per running sequence plus the whole prompts of the
// sequences admitted in this step; a finished sequence frees its KV cells and its sequence id at once.
std::vector<Generation> Engine::generate(std::span<const std::vector<int32_t>> prompts,
                                         const GenerateParams & gp,
                                         const std::function<void(size_t, const Generation &)> & on_done) {
    auto & m = *impl_;
    if (gp.max_new_tokens < 1) throw Error("--max-new-tokens must be at least 1");
    const int64_t n_ctx = (int64_t)llama_n_ctx(m.ctx);
    for (size_t i = 0; i < prompts.size(); ++i) {
        if (prompts[i].empty()) throw Error(fmt::format("prompt {} has no tokens", i));
        if ((int64_t)prompts[i].size() > m.params.n_batch ||
            (int64_t)prompts[i].size() + gp.max_new_tokens > n_ctx)
            throw Error(
                fmt::format("a prompt of {} tokens + {} new tokens does not fit (--batch {}, --ctx {}); "
                            "raise --batch/--ctx or lower --max-new-tokens",
                            prompts[i].size(), gp.max_new_tokens, m.params.n_batch, n_ctx));
    }
    struct Running {
        size_t index;
        llama_seq_id seq;
        llama_pos pos;      // position of `last`
        int32_t last = -1;  // the newest token, not yet decoded (−1: the prompt is being decoded)
        int64_t reserved;   // KV cells reserved: prompt + max_new_tokens
        Generation gen;
    };
    std::vector<Generation> out(prompts.size());
    std::vector<Running> running;
    std::vector<llama_seq_id> free_ids;
    for (int s = (m.one_seq_per_decode ? 1 : m.params.n_seq_max) - 1; s >= 0; --s) free_ids.push_back(s);
    llama_memory_clear(llama_get_memory(m.ctx), true);
    llama_batch batch = llama_batch_init(m.params.n_batch, 0, 1);
    struct BatchFree {
        llama_batch & b;
        ~BatchFree() { llama_batch_free(b); }
    } batch_free{batch};
    auto add = [&](int32_t tok, llama_pos pos, llama_seq_id seq, bool output) {
        const int k = batch.n_tokens++;
        batch.token[k] = tok;
        batch.pos[k] = pos;
        batch.n_seq_id[k] = 1;
        batch.seq_id[k][0] = seq;
        batch.logits[k] = output;
    };
    const size_t V = (size_t)n_vocab();
    int64_t used = 0;
    size_t next = 0;
    std::string piece(64, '\0');
    while (next < prompts.size() || !running.empty()) {
        batch.n_tokens = 0;
        std::vector<size_t> row_of;  // running index of each output row, in batch order
        for (size_t r = 0; r < running.size(); ++r) {
            add(running[r].last, running[r].pos, running[r].seq, true);
            row_of.push_back(r);
        }
        while (next < prompts.size() && !free_ids.empty()) {  // admit what fits, in input order
            const auto & p = prompts[next];
            const int64_t need = (int64_t)p.size() + gp.max_new_tokens;
            if (used + need > n_ctx || batch.n_tokens + (int64_t)p.size() > m.params.n_batch) break;
            Running r{next++, free_ids.back(), (llama_pos)p.size(), -1, need, {}};
            free_ids.pop_back();
            for (size_t q = 0; q < p.size(); ++q) add(p[q], (llama_pos)q, r.seq, q + 1 == p.size());
            used += need;
            row_of.push_back(running.size());
            running.push_back(std::move(r));
        }
        RS_ASSERT(batch.n_tokens > 0);
        m.decode_batch(batch, false);
        // the argmax of each output row is the next token; ties go to the lowest id
        std::vector<uint8_t> done(running.size(), 0);
        int32_t k = 0;
        for (size_t o = 0; o < row_of.size(); ++o) {
            while (!batch.logits[k]) ++k;
            const float * row = llama_get_logits_ith(m.ctx, k++);
            RS_ASSERT(row != nullptr);
            const int32_t tok = (int32_t)(std::max_element(row, row + V) - row);
            Running & r = running[row_of[o]];
            if (r.last >= 0) ++r.pos;  // `last` has just been decoded at r.pos
            if (llama_vocab_is_eog(m.vocab, tok)) {
                r.gen.stop = Generation::Stop::eos;
                done[row_of[o]] = 1;
                continue;
            }
            int n = llama_token_to_piece(m.vocab, tok, piece.data(), (int32_t)piece.size(), 0, false);
            if (n < 0) {
                piece.resize((size_t)-n);
                n = llama_token_to_piece(m.vocab, tok, piece.data(), (int32_t)piece.size(), 0, false);
            }
            const size_t old = r.gen.text.size();
            r.gen.text.append(piece.data(), (size_t)std::max(n, 0));
            r.gen.tokens.push_back(tok);
            ++r.gen.n_tokens;
            r.last = tok;
            // a stop string can only end in the newest piece: search from its longest reach back
            for (const auto & st : gp.stops) {
                const size_t from = old >= st.size() ? old - st.size() + 1 : 0;
                if (!st.empty() && r.gen.text.find(st, from) != std::string::npos) {
                    r.gen.stop = Generation::Stop::stop_string;
                    done[row_of[o]] = 1;
                }
            }
            if (!done[row_of[o]] && r.gen.n_tokens >= gp.max_new_tokens) {
                r.gen.stop = Generation::Stop::length;
                done[row_of[o]] = 1;
            }
        }
        std::vector<Running> still;
        for (size_t r = 0; r < running.size(); ++r) {
            if (!done[r]) {
                still.push_back(std::move(running[r]));
                continue;
            }
            llama_memory_seq_rm(llama_get_memory(m.ctx), running[r].seq, -1, -1);
            free_ids.push_back(running[r].seq);
            used -= running[r].reserved;
            if (on_done) on_done(running[r].index, running[r].gen);
            out[running[r].index] = std::move(running[r].gen);
        }
        running = std::move(still);
    }
    return out;
}

}  // namespace rs
