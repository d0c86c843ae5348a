// `routescope finetune`: RISE's stage 3 (Zheng et al. 2026, arXiv:2604.03592; github.com/init-neok/rise
// @ 9d7cb274, rise/trainer.py and rise/model_freezer.py): train only a selected expert subnetwork of an
// existing MoE on target-language text with the causal-LM loss, every other parameter (attention, norms,
// embeddings, routers, the other experts) frozen, and write the result back into the model's own GGUF.
//
// Model: the GGUF's weights in libtorch (qwen3moe_torch.h; quantised tensors dequantised for the frozen
// forward). The trainable parameters are copies of the gate/up/down slices of the selected (block, expert)
// pairs; nothing else has a gradient, so blocks before the first selected expert need no backward pass.
//
// Training follows RISE's defaults, which are HuggingFace Trainer's (transformers TrainingArguments): AdamW
// (β 0.9/0.999, ε 1e-8, weight decay 0), lr 2e-5 with linear warm-up over 5% of the steps then linear
// decay to 0 (get_linear_schedule_with_warmup), 3 epochs, micro-batches of 2 sequences × 8 accumulation
// steps, gradient-norm clip 1.0, sequences cut at 512 tokens. Each sequence is BOS + one corpus line (as
// `ppl` and `trace` see it), the epoch order a seeded shuffle; an optimizer step's loss is the summed
// next-token NLL over its micro-batches divided by their number of predicted tokens (transformers ≥ 4.46).
// The aux load-balancing loss is not used: the routers are frozen.
//
// Write-back: the output GGUF is the input's bytes except the trained slices, each re-encoded in its
// tensor's own ggml type (f32, f16, bf16, or re-quantised by ggml_quantize_chunk: a quantised block holds
// rows of one expert only, so the other experts' bytes are untouched); a slice whose trained values equal
// the dequantised originals keeps its original bytes. Metadata keys routescope.finetune.* record the base
// model's SHA-256, the selection and the settings.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rs {

enum class Subnetwork {
    selected,  // the experts of the chosen set in experts.json (RISE)
    random,    // as many experts per block as the set has there, drawn uniformly from the seed (control)
    all,       // every expert of every MoE block (control: full expert finetuning, attention/routers frozen)
};

struct FinetuneJob {
    std::string model;    // base GGUF (qwen3moe)
    std::string experts;  // experts.json (routescope experts); not needed for Subnetwork::all
    std::string set;      // set name; default: "selected" when present, else the only set
    Subnetwork subnetwork = Subnetwork::selected;
    std::string corpus;              // training text (corpus.h spec)
    std::vector<std::string> langs;  // the target language(s)
    int64_t limit = -1;              // first N lines per language
    std::string out;                 // tuned GGUF
    std::string checkpoint_dir;      // default: <out>.ckpt
    bool resume = false;
    int epochs = 3;
    int batch = 2;       // sequences per micro-batch
    int grad_accum = 8;  // micro-batches per optimizer step
    double lr = 2e-5;    // RISE's (a 30B model); a small model needs more
    double warmup_ratio = 0.05;
    double weight_decay = 0.0;
    double grad_clip = 1.0;
    int max_length = 512;  // tokens per sequence, BOS included
    int64_t checkpoint_every = 50;
    uint64_t seed = 42;  // RISE's
    int n_threads = 0;
    bool progress = true;
    int64_t stop_after = -1;  // testing aid: stop (as if killed) after this optimizer step
};

struct FinetuneReport {
    int64_t steps = 0, epochs = 0;
    int64_t n_sequences = 0, n_train_tokens = 0;  // of the training set (predicted tokens per epoch)
    int64_t n_experts = 0;                        // trained (block, expert) pairs
    int64_t n_trainable = 0, n_params = 0;        // parameters
    int first_block = 0;                          // the lowest block with a trained expert
    double first_loss = 0, final_loss = 0;        // mean NLL (nats/token) of the first and last step
    double tokens_per_s = 0;                      // predicted tokens per second of training
    int64_t slices_written = 0;                   // expert slices (gate, up, down) whose bytes changed
    std::vector<std::string> written_types;       // the ggml types they were written in
    double seconds = 0;
    std::string log_csv;
    bool stopped = false;  // stop_after was reached: nothing written
};

// rs::Error with a one-line message on bad input: an experts.json of another model, an architecture the
// libtorch block does not implement, an empty selection, a corpus smaller than one optimizer step, a
// tensor type that cannot be re-encoded without an importance matrix, a run too large for this machine.
FinetuneReport run_finetune(const FinetuneJob & job);

}  // namespace rs
