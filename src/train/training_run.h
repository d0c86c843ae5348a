// What the two libtorch runs (train.cpp, finetune.cpp) share: checkpoint directories that a killed run
// resumes from, the memory check before a run starts, and the progress line (private to src/train).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include "routescope/train.h"

namespace rs {

// Checkpoints are whole directories (ckpt-<step>/) made visible by atomically rewriting `root/latest`, so
// a killed run resumes from the last complete one. latest_checkpoint: that directory, or empty if none.
std::filesystem::path latest_checkpoint(const std::filesystem::path & root);
// fill(dir) writes a checkpoint's files into a temporary directory, which then becomes ckpt-<step> and
// the latest; the previous latest is removed.
void commit_checkpoint(const std::filesystem::path & root, int64_t step,
                       const std::function<void(const std::filesystem::path &)> & fill);

// Bytes autograd keeps for one forward/backward of `batch` sequences of `seq` tokens, roughly: per token and
// block the attention and MoE intermediates, per token the logits, their softmax and gradient; twice for
// headroom.
double activation_bytes(const MoeModelConfig & c, int batch, int seq);

// MemAvailable of /proc/meminfo (physical memory where it is missing), bytes.
double available_memory_bytes();

// "<what>: step s/n | … | tok/s | elapsed | ETA": rewritten in place on a terminal; in a log, one line on
// the first step, on every `important` step and at least every 30 s.
class ProgressLine {
  public:
    ProgressLine(bool enabled);
    void update(const std::string & line, bool important, double elapsed_s);

  private:
    bool enabled_, tty_;
    bool first_ = true;
    double last_line_at_ = 0;
};

}  // namespace rs
