// inspect_model: read a GGUF's metadata and tensor names (no weights) to find the MoE layout.
//
// MoE layers are found by structure: a block is routed iff it has `blk.<il>.ffn_gate_inp.weight`
// (qwen2moe's shared-expert gate `ffn_gate_inp_shexp` does not count). This covers every MoE
// architecture llama.cpp implements and rejects dense models with a clear message.
#include <openssl/evp.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>

#include <fmt/format.h>

#include "ggml.h"
#include "gguf.h"
#include "routescope/common.h"
#include "routescope/make_model.h"
#include "routescope/model.h"

namespace fs = std::filesystem;

namespace rs {

namespace {

// Unsigned integer KV of any width; -1 when absent.
int64_t kv_int(const gguf_context * g, const std::string & key) {
    const int64_t id = gguf_find_key(g, key.c_str());
    if (id < 0) return -1;
    switch (gguf_get_kv_type(g, id)) {
        case GGUF_TYPE_UINT8:
            return gguf_get_val_u8(g, id);
        case GGUF_TYPE_INT8:
            return gguf_get_val_i8(g, id);
        case GGUF_TYPE_UINT16:
            return gguf_get_val_u16(g, id);
        case GGUF_TYPE_INT16:
            return gguf_get_val_i16(g, id);
        case GGUF_TYPE_UINT32:
            return gguf_get_val_u32(g, id);
        case GGUF_TYPE_INT32:
            return gguf_get_val_i32(g, id);
        case GGUF_TYPE_UINT64:
            return (int64_t)gguf_get_val_u64(g, id);
        case GGUF_TYPE_INT64:
            return gguf_get_val_i64(g, id);
        case GGUF_TYPE_BOOL:
            return gguf_get_val_bool(g, id) ? 1 : 0;
        default:
            return -1;
    }
}

std::string kv_str(const gguf_context * g, const std::string & key) {
    const int64_t id = gguf_find_key(g, key.c_str());
    if (id < 0 || gguf_get_kv_type(g, id) != GGUF_TYPE_STRING) return "";
    return gguf_get_val_str(g, id);
}

// Whether the top-k weights are renormalised when the GGUF has no expert_weights_norm key: llama.cpp
// hard-codes it per architecture (src/models/<arch>.cpp, the norm_w argument of build_moe_ffn).
bool default_renorm(const std::string & arch) {
    static const char * const renorm[] = {"qwen3moe",   "llama",   "phimoe",
                                          "granitemoe", "mixtral", "qwen3vlmoe"};
    return std::find(std::begin(renorm), std::end(renorm), arch) != std::end(renorm);
}

// How selection works, as a short label for the manifest and reports (notes §B, build_moe_ffn).
// expert_gating_func: 1 softmax, 2 sigmoid, 3 softmax over the top-k weights only, 4 sqrt(softplus).
std::string gating_label(const std::string & arch, int64_t func, int64_t norm_key, bool sel_bias,
                         int n_group) {
    std::string g;
    if (func == 2)
        g = "sigmoid";
    else if (func == 3 || arch == "gpt-oss")
        g = "softmax_topk";
    else if (func == 4)
        g = "sqrt_softplus";
    else
        g = "softmax";
    const bool renorm = norm_key >= 0 ? norm_key == 1 : default_renorm(arch);
    if (renorm && g != "softmax_topk") g += "+renorm";
    if (sel_bias) g += "+bias";
    if (n_group > 1) g += "+groups";
    return g;
}

struct GgufCloser {
    void operator()(gguf_context * g) const { gguf_free(g); }
};

}  // namespace

ModelInfo inspect_model(const std::string & path) {
    if (!fs::exists(path)) throw Error(fmt::format("model file {} not found", path));
    if (fs::is_directory(path))
        throw Error(fmt::format("model path {} is a directory, expected a .gguf file", path));
    gguf_init_params gp = {/*no_alloc*/ true, /*ctx*/ nullptr};
    std::unique_ptr<gguf_context, GgufCloser> g(gguf_init_from_file(path.c_str(), gp));
    if (!g) throw Error(fmt::format("{} is not a readable GGUF file (corrupt or truncated?)", path));

    ModelInfo mi;
    mi.path = path;
    mi.file_size = (int64_t)fs::file_size(path);
    mi.arch = kv_str(g.get(), "general.architecture");
    if (mi.arch.empty()) throw Error(fmt::format("{}: GGUF has no general.architecture", path));
    mi.name = kv_str(g.get(), "general.name");
    const std::string a = mi.arch + ".";
    mi.n_layer = (int)kv_int(g.get(), a + "block_count");
    if (mi.n_layer <= 0) throw Error(fmt::format("{}: GGUF has no {}block_count", path, a));
    mi.n_expert = (int)kv_int(g.get(), a + "expert_count");
    mi.top_k = (int)kv_int(g.get(), a + "expert_used_count");
    mi.n_expert_shared = std::max<int>(0, (int)kv_int(g.get(), a + "expert_shared_count"));
    mi.n_group = std::max<int>(0, (int)kv_int(g.get(), a + "expert_group_count"));
    mi.n_group_used = std::max<int>(0, (int)kv_int(g.get(), a + "expert_group_used_count"));
    // MTP / NextN blocks (GLM-4.5, DeepSeek-V3, Qwen3-Next …) are the last nextn_predict_layers blocks;
    // llama.cpp loads them but never runs them in a normal context (llama-model.cpp, the KV filter
    // `il < n_layer()`), so their routers are not part of the model's forward pass.
    mi.n_nextn = std::max<int>(0, (int)kv_int(g.get(), a + "nextn_predict_layers"));
    if (mi.n_nextn > mi.n_layer)
        throw Error(fmt::format("{}: {}nextn_predict_layers {} exceeds block_count {}", path, a, mi.n_nextn,
                                mi.n_layer));

    mi.router_bias.assign(mi.n_layer, false);
    mi.selection_bias.assign(mi.n_layer, false);
    std::vector<bool> routed(mi.n_layer, false);
    const int64_t n_tensors = gguf_get_n_tensors(g.get());
    for (int64_t i = 0; i < n_tensors; ++i) {
        const char * name = gguf_get_tensor_name(g.get(), i);
        int il = -1, n = 0;
        if (std::sscanf(name, "blk.%d.%n", &il, &n) != 1 || il < 0 || il >= mi.n_layer) continue;
        const std::string rest = name + n;
        if (rest == "ffn_gate_inp.weight")
            routed[il] = true;
        else if (rest == "ffn_gate_inp.bias")
            mi.router_bias[il] = true;
        else if (rest == "exp_probs_b.bias")
            mi.selection_bias[il] = true;
    }
    for (int il = 0; il < mi.n_layer - mi.n_nextn; ++il)
        if (routed[il]) mi.moe_layers.push_back(il);

    if (mi.moe_layers.empty() && mi.n_nextn > 0 && mi.n_expert >= 2)
        throw Error(
            fmt::format("{} ({}) has routers only in its {} MTP/NextN block(s), which llama.cpp does not "
                        "run in a normal forward pass: nothing to record",
                        path, mi.arch, mi.n_nextn));
    if (mi.moe_layers.empty() || mi.n_expert < 2)
        throw Error(
            fmt::format("{} ({}) is not a Mixture-of-Experts model: no layer has a router "
                        "(blk.N.ffn_gate_inp.weight)",
                        path, mi.arch));
    if (mi.top_k < 1 || mi.top_k > mi.n_expert)
        throw Error(fmt::format("{}: invalid {}expert_used_count {}", path, a, mi.top_k));
    if (mi.n_expert > 32767)
        throw Error(fmt::format("{}: {} experts exceed the trace format", path, mi.n_expert));

    const bool sel_bias =
        std::find(mi.selection_bias.begin(), mi.selection_bias.end(), true) != mi.selection_bias.end();
    mi.gating = gating_label(mi.arch, kv_int(g.get(), a + "expert_gating_func"),
                             kv_int(g.get(), a + "expert_weights_norm"), sel_bias, mi.n_group);
    return mi;
}

void check_verified_arch(const ModelInfo & mi) {
    const auto verified = make_model_all_archs();
    if (std::find(verified.begin(), verified.end(), mi.arch) == verified.end())
        throw Error(
            fmt::format("{}: architecture {} is not covered by routescope's conformance test, so its "
                        "recording cannot be vouched for (pass --allow-unverified-arch to record it "
                        "anyway, and check the results)",
                        mi.path, mi.arch));
}

std::string routing_p_meaning(const std::string & gating, bool hash_layers) {
    const bool own = gating.rfind("softmax", 0) == 0 && gating.rfind("softmax_topk", 0) != 0 &&
                     gating.find('|') == std::string::npos && gating.find("+bias") == std::string::npos &&
                     gating.find("+groups") == std::string::npos &&
                     gating.find("sigmoid") == std::string::npos && !hash_layers;
    if (own)
        return "gate: p is the model's own gate (softmax over all experts, before top-k renormalisation)";
    return fmt::format(
        "proxy: p is the softmax over all experts' router logits (the paper's definition), not this "
        "model's gate ({}{}); the selected ids are the model's own",
        gating, hash_layers ? ", hash-routed layers" : "");
}

static std::string sha256_file(const std::string & path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw Error(fmt::format("cannot read {}", path));
    std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX *)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    RS_ASSERT(ctx && EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) == 1);
    std::vector<char> buf(1 << 20);
    while (f) {
        f.read(buf.data(), (std::streamsize)buf.size());
        if (f.gcount() > 0) EVP_DigestUpdate(ctx.get(), buf.data(), (size_t)f.gcount());
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx.get(), md, &n);
    std::string hex;
    for (unsigned int i = 0; i < n; ++i) hex += fmt::format("{:02x}", md[i]);
    return hex;
}

std::string model_sha256(const std::string & path) {
    const auto abs = fs::absolute(path).lexically_normal().string();
    const auto size = fs::file_size(path);
    const auto mtime = fs::last_write_time(path).time_since_epoch().count();
    const char * home = std::getenv("HOME");
    const char * cache_env = std::getenv("ROUTESCOPE_CACHE");
    const fs::path cache_dir = cache_env ? fs::path(cache_env) / "sha256"
                               : home    ? fs::path(home) / ".cache/routescope/sha256"
                                         : fs::path();
    const fs::path entry =
        cache_dir.empty()
            ? fs::path()
            : cache_dir / fmt::format("{:016x}-{}-{}", std::hash<std::string>{}(abs), size, mtime);
    if (!entry.empty()) {
        std::ifstream f(entry);
        std::string hex;
        if (f >> hex && hex.size() == 64) return hex;
    }
    const std::string hex = sha256_file(path);
    if (!entry.empty()) {
        std::error_code ec;
        fs::create_directories(cache_dir, ec);
        std::ofstream(entry) << hex << "\n";  // best effort: a cache miss only costs time
    }
    return hex;
}

}  // namespace rs
