// Internals shared by the two model writers: make_model.cpp (seven hand-written architectures,
// their files kept byte-for-byte) and make_model_archs.cpp (every other MoE architecture of
// llama.cpp v0.5.0, from one generic hyperparameter superset). Not part of the public API.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ggml.h>
#include <gguf.h>
#include <llama.h>

#include "routescope/make_model.h"
#include "routescope/spm_vocab.h"

namespace rs::detail {

// The SentencePiece-style byte-fallback vocabulary every generated model carries.
SpmVocab make_vocab();

// Tensor fill state for llama_model_init_from_user's callback (set_tensor_data).
struct FillState {
    uint64_t seed;
    float stdev;
    bool random_probs_b;                    // exp_probs_b random (selection-bias variant) instead of 0
    std::vector<ggml_tensor *> tensors;     // in creation order, for writing the file
    ggml_type router_type = GGML_TYPE_F32;  // written type of blk.N.ffn_gate_inp.weight
    int n_expert = 0;                       // for integer expert-id tables (deepseek4 hash layers)
};

// "" / "f32" / "f16" / "bf16" -> the ggml type; throws rs::Error otherwise.
ggml_type parse_router_type(const std::string & name, const std::string & arch);
void set_tensor_data(ggml_tensor * t, void * userdata);

// Silences llama.cpp's (chatty) log for the scope unless RS_VERBOSE is set; restores the previous
// logger afterwards so the caller's logging setup is untouched.
class QuietLlamaLog {
  public:
    QuietLlamaLog();
    ~QuietLlamaLog();
    QuietLlamaLog(const QuietLlamaLog &) = delete;
    QuietLlamaLog & operator=(const QuietLlamaLog &) = delete;

  private:
    ggml_log_callback prev_cb_ = nullptr;
    void * prev_ud_ = nullptr;
};

void init_backend_once();

// Lets llama.cpp create the architecture's tensors from `meta` (KV only), fills them through
// `fill`, adds them to `meta` and writes it to `path`. Throws rs::Error on failure. `init_meta`,
// when given, is what llama.cpp builds from instead of `meta`: the same KV plus placeholder tensor
// infos that fix a tensor's type (init_from_user creates every tensor it finds no info for as F32).
void build_and_write(gguf_context * meta, const std::string & arch, FillState & fill,
                     const std::string & path, gguf_context * init_meta = nullptr);

// The generic writer: false when `p.arch` is not one of its architectures.
bool make_model_generic(const MakeModelParams & p, const std::string & path);
std::vector<std::string> generic_archs();

}  // namespace rs::detail
