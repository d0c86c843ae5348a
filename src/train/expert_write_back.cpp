// write_expert_slices (expert_write_back.h): the input's metadata and tensors are written again in their
// order and alignment, so every untouched byte stays what it was; only the bytes of the trained slices are
// replaced, in place, in the loaded data blob.
//
// Layout: a stacked expert tensor has ggml ne = [n_in, n_out, n_expert] (gate/up: [D, F, E], down:
// [F, D, E]); expert e is the contiguous nb[2] bytes at e·nb[2], n_out rows of n_in values. ggml quantises
// row by row in blocks along ne0, so re-encoding one expert's rows never touches another expert's bytes.
#include "expert_write_back.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <memory>
#include <set>

#include <fmt/format.h>
#include <ggml.h>
#include <gguf.h>

#include "routescope/common.h"

namespace rs {
namespace {

using GgufPtr = std::unique_ptr<gguf_context, decltype(&gguf_free)>;
using GgmlPtr = std::unique_ptr<ggml_context, decltype(&ggml_free)>;

std::pair<GgufPtr, GgmlPtr> open_gguf(const std::string & path, bool with_data) {
    ggml_context * raw = nullptr;
    gguf_init_params ip{!with_data, &raw};
    GgufPtr g(gguf_init_from_file(path.c_str(), ip), gguf_free);
    if (!g) throw Error(fmt::format("{} is not a readable GGUF file", path));
    return {std::move(g), GgmlPtr(raw, ggml_free)};
}

// The types a slice can be re-encoded in without information the file does not hold (an importance
// matrix): plain floats and the row-wise quantisations llama-quantize writes without --imatrix.
bool writable_type(ggml_type t) {
    switch (t) {
        case GGML_TYPE_F32:
        case GGML_TYPE_F16:
        case GGML_TYPE_BF16:
        case GGML_TYPE_Q4_0:
        case GGML_TYPE_Q4_1:
        case GGML_TYPE_Q5_0:
        case GGML_TYPE_Q5_1:
        case GGML_TYPE_Q8_0:
        case GGML_TYPE_Q2_K:
        case GGML_TYPE_Q3_K:
        case GGML_TYPE_Q4_K:
        case GGML_TYPE_Q5_K:
        case GGML_TYPE_Q6_K:
        case GGML_TYPE_IQ4_NL:
        case GGML_TYPE_IQ4_XS:
            return !ggml_quantize_requires_imatrix(t);
        default:
            return false;
    }
}

ggml_tensor * stacked_expert_tensor(ggml_context * ctx, const std::string & path, const std::string & name) {
    ggml_tensor * t = ggml_get_tensor(ctx, name.c_str());
    if (!t) throw Error(fmt::format("{} has no tensor {} (not a stacked-expert MoE block)", path, name));
    if (ggml_n_dims(t) != 3 || !ggml_is_contiguous(t))
        throw Error(fmt::format("{}: {} is not a contiguous [in, out, experts] tensor", path, name));
    if (!writable_type(t->type))
        throw Error(
            fmt::format("{}: {} is {}, which routescope cannot re-encode without an importance matrix "
                        "or a quantiser ggml lacks; finetune a copy in f16 or Q8_0/Q4_K",
                        path, name, ggml_type_name(t->type)));
    return t;
}

// slice (f32, [n_out, n_in] contiguous) → bytes of `type`, exactly nb bytes
void encode_rows(ggml_type type, const float * src, int64_t n_out, int64_t n_in, void * dst, size_t nb) {
    const int64_t n = n_out * n_in;
    if (type == GGML_TYPE_F32)
        std::memcpy(dst, src, (size_t)n * sizeof(float));
    else if (type == GGML_TYPE_F16)
        ggml_fp32_to_fp16_row(src, (ggml_fp16_t *)dst, n);
    else if (type == GGML_TYPE_BF16)
        ggml_fp32_to_bf16_row(src, (ggml_bf16_t *)dst, n);
    else {
        const size_t wrote = ggml_quantize_chunk(type, src, dst, 0, n_out, n_in, nullptr);
        RS_ASSERT(wrote == nb);
        return;
    }
    RS_ASSERT((size_t)n * ggml_type_size(type) / (size_t)ggml_blck_size(type) == nb);
}

}  // namespace

std::array<std::string, 3> expert_tensor_names(int block) {
    return {fmt::format("blk.{}.ffn_gate_exps.weight", block),
            fmt::format("blk.{}.ffn_up_exps.weight", block),
            fmt::format("blk.{}.ffn_down_exps.weight", block)};
}

void check_expert_slices_writable(const std::string & gguf_path, const std::vector<int> & blocks) {
    auto [g, ctx] = open_gguf(gguf_path, false);
    for (int b : blocks)
        for (const auto & name : expert_tensor_names(b)) stacked_expert_tensor(ctx.get(), gguf_path, name);
}

WriteBackReport write_expert_slices(const std::string & base, const std::string & out,
                                    const ExpertSlices & slices,
                                    const std::vector<std::pair<std::string, std::string>> & meta) {
    auto [g, ctx] = open_gguf(base, true);
    WriteBackReport rep;
    std::set<std::string> types;
    std::vector<float> original;
    for (const auto & [key, mats] : slices) {
        const auto [block, expert] = key;
        const auto names = expert_tensor_names(block);
        for (size_t m = 0; m < 3; ++m) {
            ggml_tensor * t = stacked_expert_tensor(ctx.get(), base, names[m]);
            const int64_t n_in = t->ne[0], n_out = t->ne[1];
            if (expert < 0 || expert >= t->ne[2])
                throw Error(
                    fmt::format("{}: expert {} outside {} (it has {})", base, expert, names[m], t->ne[2]));
            const auto w = mats[m].detach().to(torch::kFloat32).contiguous();
            if (w.dim() != 2 || w.size(0) != n_out || w.size(1) != n_in)
                throw Error(fmt::format("{}: trained slice of {} expert {} has the wrong shape", base,
                                        names[m], expert));
            char * bytes = (char *)t->data + (size_t)expert * t->nb[2];
            original.resize((size_t)(n_in * n_out));
            if (t->type == GGML_TYPE_F32)
                std::memcpy(original.data(), bytes, original.size() * sizeof(float));
            else
                ggml_get_type_traits(t->type)->to_float(bytes, original.data(), (int64_t)original.size());
            // untrained (e.g. never routed to, so never updated): the original bytes, not a re-encoding
            if (std::memcmp(original.data(), w.data_ptr<float>(), original.size() * sizeof(float)) == 0)
                continue;
            encode_rows(t->type, w.data_ptr<float>(), n_out, n_in, bytes, t->nb[2]);
            ++rep.slices_written;
            types.insert(ggml_type_name(t->type));
        }
    }
    // A new context with the input's metadata and tensors in their order (the read context cannot be written
    // back: its tensor infos carry no valid backend buffer). gguf_set_kv copies general.alignment but the
    // writer pads to the context's own alignment, the default: refuse the rare file that uses another.
    if (gguf_get_alignment(g.get()) != GGUF_DEFAULT_ALIGNMENT)
        throw Error(
            fmt::format("{}: data alignment {} is not GGUF's default {}; finetune cannot write it back", base,
                        gguf_get_alignment(g.get()), GGUF_DEFAULT_ALIGNMENT));
    GgufPtr w(gguf_init_empty(), gguf_free);
    gguf_set_kv(w.get(), g.get());
    for (const auto & [k, v] : meta) gguf_set_val_str(w.get(), k.c_str(), v.c_str());
    for (int64_t i = 0; i < gguf_get_n_tensors(g.get()); ++i)
        gguf_add_tensor(w.get(), ggml_get_tensor(ctx.get(), gguf_get_tensor_name(g.get(), i)));
    const std::string tmp = out + ".tmp";
    if (!gguf_write_to_file(w.get(), tmp.c_str(), false))
        throw Error(fmt::format("could not write {} (does the directory exist?)", tmp));
    std::error_code ec;
    std::filesystem::rename(tmp, out, ec);
    if (ec) throw Error(fmt::format("could not rename {} to {}: {}", tmp, out, ec.message()));
    rep.types.assign(types.begin(), types.end());
    return rep;
}

}  // namespace rs
