// Writing trained expert slices back into a GGUF (private to src/train; finetune.h describes the contract):
// every byte outside the given slices is the input's, each slice is re-encoded in its tensor's ggml type.
#pragma once

#include <array>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

namespace rs {

// (block, expert) -> the trained {gate [F, D], up [F, D], down [D, F]} (any float dtype, torch order).
using ExpertSlices = std::map<std::pair<int, int>, std::array<torch::Tensor, 3>>;

// The GGUF names of a block's stacked expert tensors, in ExpertSlices' order.
std::array<std::string, 3> expert_tensor_names(int block);

// rs::Error unless every stacked expert tensor of `blocks` in `gguf_path` is contiguous and of a type
// write_expert_slices can re-encode (f32, f16, bf16, or a quantisation that needs no importance matrix);
// checked before training so a long run does not fail at its end.
void check_expert_slices_writable(const std::string & gguf_path, const std::vector<int> & blocks);

struct WriteBackReport {
    int64_t slices_written = 0;      // (block, expert, matrix) slices whose bytes changed
    std::vector<std::string> types;  // their ggml types, sorted, unique
};

// Copies `base` to `out` (atomically: out.tmp then rename) with the slices replaced and the string
// metadata `meta` (key → value) added or replaced.
WriteBackReport write_expert_slices(const std::string & base, const std::string & out,
                                    const ExpertSlices & slices,
                                    const std::vector<std::pair<std::string, std::string>> & meta);

}  // namespace rs
