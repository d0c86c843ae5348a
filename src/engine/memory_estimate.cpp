// The memory a run needs, estimated from the GGUF before llama.cpp loads anything (issue #11, item 4),
// against the memory the machine has: a run that cannot fit is refused in a second, with the option that
// makes it fit, instead of swapping for an hour or being killed halfway through.
//
// Estimate (host memory only; what is offloaded with --gpu-layers lives on the device):
//   weights   the GGUF's tensor bytes, less the blocks offloaded (llama.cpp offloads the last
//             n_gpu_layers blocks, then the output layer)
//   KV cache  n_ctx × Σ_blocks (n_head_kv · key_length + n_head_kv · value_length) × 2 bytes (f16; an upper
//             bound for MLA, sliding-window and recurrent layers, which keep less)
//   outputs   llama.cpp's output buffer: n_vocab × n_batch floats (every token is an output while recording)
//   compute   one ubatch: the output logits n_vocab × n_batch floats, plus per token the widest
//             activations (n_embd, the k selected experts' FFN rows; flash attention, llama.cpp's default
//             where the backend has it, keeps no attention matrix)
//   routing   EngineParams::host_extra_bytes: the tap's batch buffers and the caller's (trace: a shard)
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "gguf.h"
#include "routescope/common.h"
#include "routescope/engine.h"

namespace rs {

namespace {

struct GgufCloser {
    void operator()(gguf_context * g) const { gguf_free(g); }
};

// Unsigned integer KV (or the largest element of an integer array); `fallback` when absent.
int64_t kv_max(const gguf_context * g, const std::string & key, int64_t fallback) {
    const int64_t id = gguf_find_key(g, key.c_str());
    if (id < 0) return fallback;
    auto scalar = [](gguf_type t, const void * p) -> int64_t {
        switch (t) {
            case GGUF_TYPE_UINT32:
                return *static_cast<const uint32_t *>(p);
            case GGUF_TYPE_INT32:
                return *static_cast<const int32_t *>(p);
            case GGUF_TYPE_UINT64:
                return (int64_t) * static_cast<const uint64_t *>(p);
            case GGUF_TYPE_INT64:
                return *static_cast<const int64_t *>(p);
            case GGUF_TYPE_UINT16:
                return *static_cast<const uint16_t *>(p);
            default:
                return -1;
        }
    };
    const gguf_type t = gguf_get_kv_type(g, id);
    if (t == GGUF_TYPE_ARRAY) {
        const gguf_type at = gguf_get_arr_type(g, id);
        const size_t w = at == GGUF_TYPE_UINT64 || at == GGUF_TYPE_INT64 ? 8 : at == GGUF_TYPE_UINT16 ? 2 : 4;
        const auto * d = static_cast<const char *>(gguf_get_arr_data(g, id));
        int64_t m = -1;
        for (size_t i = 0; d && i < gguf_get_arr_n(g, id); ++i) m = std::max(m, scalar(at, d + i * w));
        return m < 0 ? fallback : m;
    }
    const int64_t v = scalar(t, gguf_get_val_data(g, id));
    return v < 0 ? fallback : v;
}

std::string gib(int64_t b) {
    return fmt::format("{:.1f} GiB", (double)b / (1024.0 * 1024.0 * 1024.0));
}

}  // namespace

int64_t MemoryEstimate::total() const {
    const double t = (double)weights + (double)kv + (double)outputs + (double)compute + (double)routing;
    return t >= 9e18 ? int64_t{9000000000000000000} : weights + kv + outputs + compute + routing;
}

MemoryEstimate estimate_memory(const std::string & path, const EngineParams & p) {
    gguf_init_params gp = {/*no_alloc*/ true, /*ctx*/ nullptr};
    std::unique_ptr<gguf_context, GgufCloser> g(gguf_init_from_file(path.c_str(), gp));
    if (!g) throw Error(fmt::format("{}: not a readable GGUF file (check the path)", path));
    const int64_t arch_id = gguf_find_key(g.get(), "general.architecture");
    const std::string a = arch_id >= 0 ? gguf_get_val_str(g.get(), arch_id) : "";
    const int64_t n_layer = kv_max(g.get(), a + ".block_count", 1);
    const int64_t n_embd = kv_max(g.get(), a + ".embedding_length", 0);
    const int64_t n_head = std::max<int64_t>(1, kv_max(g.get(), a + ".attention.head_count", 1));
    const int64_t n_head_kv = kv_max(g.get(), a + ".attention.head_count_kv", n_head);
    const int64_t k_len = kv_max(g.get(), a + ".attention.key_length", n_embd / n_head);
    const int64_t v_len = kv_max(g.get(), a + ".attention.value_length", n_embd / n_head);
    const int64_t n_ff = std::max(kv_max(g.get(), a + ".expert_feed_forward_length", 0),
                                  kv_max(g.get(), a + ".feed_forward_length", 0));
    const int64_t top_k = std::max<int64_t>(1, kv_max(g.get(), a + ".expert_used_count", 1));
    int64_t n_vocab = kv_max(g.get(), a + ".vocab_size", -1);
    if (n_vocab < 0) {
        const int64_t tid = gguf_find_key(g.get(), "tokenizer.ggml.tokens");
        n_vocab = tid >= 0 ? (int64_t)gguf_get_arr_n(g.get(), tid) : 0;
    }

    // blocks [n_layer - n_gpu_layers, n_layer) and, beyond n_layer, the output layer go to the device
    // (llama-model.cpp, i_gpu_start); with RPC servers the same rule applies
    const int64_t n_gpu = std::max(0, p.n_gpu_layers);
    const int64_t first_offloaded = std::max<int64_t>(0, n_layer - n_gpu);
    MemoryEstimate m;
    for (int64_t i = 0; i < gguf_get_n_tensors(g.get()); ++i) {
        const char * name = gguf_get_tensor_name(g.get(), i);
        const auto bytes = (int64_t)gguf_get_tensor_size(g.get(), i);
        int il = -1;
        if (std::sscanf(name, "blk.%d.", &il) == 1) {
            if (il < first_offloaded) m.weights += bytes;
        } else if (!(n_gpu > n_layer && std::strncmp(name, "output", 6) == 0)) {
            m.weights += bytes;
        }
    }
    // in double, clamped: absurd options (--ctx 1e12) must give a refusal, not an int64 overflow
    auto bytes = [](double b) { return b >= 9e18 ? int64_t{9000000000000000000} : (int64_t)b; };
    const double n_ctx = p.n_ctx > 0 ? p.n_ctx : p.n_batch, n_batch = p.n_batch;
    const double host_layers = (double)first_offloaded;
    m.kv = bytes(n_ctx * host_layers * (double)n_head_kv * (double)(k_len + v_len) * 2);
    const bool output_on_host = n_gpu <= n_layer;
    m.outputs = bytes((double)n_vocab * std::max<double>(n_batch, p.n_seq_max) * 4);
    if (host_layers > 0 || output_on_host)
        m.compute = bytes(n_batch *
                          ((output_on_host ? (double)n_vocab : 0) +
                           (host_layers > 0 ? (double)(4 * n_embd + 3 * top_k * n_ff) : 0)) *
                          4);
    m.routing = p.host_extra_bytes;
    return m;
}

int64_t available_memory() {
    std::ifstream f("/proc/meminfo");
    std::string key;
    int64_t kb = 0;
    std::string unit;
    while (f >> key >> kb >> unit)
        if (key == "MemAvailable:") return kb * 1024;
    const long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? (int64_t)pages * page : -1;
}

void check_memory(const std::string & path, const MemoryEstimate & m, int64_t available) {
    if (available <= 0 || m.total() <= available) return;
    // the option that shrinks the largest part of the estimate
    struct Part {
        int64_t bytes;
        const char * fix;
    };
    const Part parts[] = {
        {m.weights, "offload layers with --gpu-layers (or --rpc), or use a smaller quantisation"},
        {m.kv, "lower --ctx (or --batch, which sizes the KV cache of `trace`)"},
        {m.outputs + m.compute, "lower --batch"},
        {m.routing, "lower --shard-seqs or --batch"},
    };
    const Part * big = &parts[0];
    for (const auto & q : parts)
        if (q.bytes > big->bytes) big = &q;
    throw Error(fmt::format(
        "{}: this run needs about {} of memory (weights {}, KV cache {}, outputs and compute {}, routing "
        "buffers {}) but the machine has {} available ({}; RS_NO_MEMORY_CHECK=1 skips this check)",
        path, gib(m.total()), gib(m.weights), gib(m.kv), gib(m.outputs + m.compute), gib(m.routing),
        gib(available), big->fix));
}

}  // namespace rs
