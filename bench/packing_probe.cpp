// packing_probe: does a sequence's router output depend on what else is in its batch? (issue #10)
//
// Not a test: a probe for the cause of the packing dependence the issue reports on quantised files.
// Decodes sequence A alone, then A after B in one batch (kv_unified, 1 thread, one ubatch), and
// compares A's rows of every ffn_moe_logits-N (max |Δ| and top-k id flips). Run per model file and
// with weight repacking on/off (llama_model_params::use_extra_bufts), so the kernel that depends on
// the batch shape can be named.
//
//   packing_probe MODEL.gguf...
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <ggml-backend.h>
#include <ggml.h>
#include <llama.h>

namespace {

struct Capture {
    std::map<int, std::vector<float>> logits;  // layer -> [n_cols * n_expert]
    std::map<int, int64_t> n_expert;
};

bool cb(ggml_tensor * t, bool ask, void * ud) {
    const std::string name = t->name;
    if (name.rfind("ffn_moe_logits-", 0) != 0 || name.find("biased") != std::string::npos) return false;
    if (ask) return true;
    auto & c = *static_cast<Capture *>(ud);
    const int il = std::atoi(name.c_str() + 15);
    std::vector<float> v(static_cast<size_t>(ggml_nelements(t)));
    ggml_backend_tensor_get(t, v.data(), 0, ggml_nbytes(t));
    c.logits[il] = v;
    c.n_expert[il] = t->ne[0];
    return true;
}

std::vector<llama_token> tok(const llama_vocab * vocab, const std::string & s) {
    std::vector<llama_token> out(256);
    out.resize(static_cast<size_t>(
        llama_tokenize(vocab, s.c_str(), (int32_t)s.size(), out.data(), 256, true, false)));
    return out;
}

// Decodes the sequences in one batch; returns the capture. All tokens request logits so no layer is pruned.
Capture run(llama_model * model, const std::vector<std::vector<llama_token>> & seqs) {
    Capture c;
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 512;
    cp.n_batch = cp.n_ubatch = 256;
    cp.n_seq_max = 8;
    cp.kv_unified = true;
    cp.n_threads = cp.n_threads_batch = 1;
    if (std::getenv("PROBE_NO_FA")) cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    if (std::getenv("PROBE_KV_F32")) cp.type_k = cp.type_v = GGML_TYPE_F32;
    cp.cb_eval = cb;
    cp.cb_eval_user_data = &c;
    llama_context * ctx = llama_init_from_model(model, cp);
    llama_batch b = llama_batch_init(256, 0, 1);
    int n = 0;
    for (size_t s = 0; s < seqs.size(); ++s)
        for (size_t i = 0; i < seqs[s].size(); ++i, ++n) {
            b.token[n] = seqs[s][i];
            b.pos[n] = (llama_pos)i;
            b.n_seq_id[n] = 1;
            b.seq_id[n][0] = (llama_seq_id)s;
            b.logits[n] = true;
        }
    b.n_tokens = n;
    if (llama_decode(ctx, b) != 0) fmt::print(stderr, "decode failed\n");
    llama_batch_free(b);
    llama_free(ctx);
    return c;
}

std::vector<int> topk(const float * row, int64_t n, int k) {
    std::vector<int> idx((size_t)n);
    for (int i = 0; i < n; ++i) idx[(size_t)i] = i;
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int a, int b) { return row[a] > row[b]; });
    idx.resize((size_t)k);
    std::sort(idx.begin(), idx.end());
    return idx;
}

}  // namespace

int main(int argc, char ** argv) {
    llama_backend_init();
    llama_log_set([](ggml_log_level, const char *, void *) {}, nullptr);
    const std::string a = "The experts route tokens of the world, and the model is not the same.";
    const std::string b = "Die Katze ist nicht hier, und der Hund ist im Garten bei den Kindern.";
    for (int i = 1; i < argc; ++i) {
        for (bool extra : {true, false}) {
            llama_model_params mp = llama_model_default_params();
            mp.n_gpu_layers = 0;
            mp.use_extra_bufts = extra;
            llama_model * model = llama_model_load_from_file(argv[i], mp);
            if (!model) {
                fmt::print("{}: load failed\n", argv[i]);
                continue;
            }
            const llama_vocab * vocab = llama_model_get_vocab(model);
            const auto ta = tok(vocab, a), tb = tok(vocab, b);
            const Capture alone = run(model, {ta});
            // A after one neighbour, and after six (B and its prefixes: 13..~100 columns before A).
            std::vector<std::vector<llama_token>> many = {tb};
            for (size_t cut = tb.size() - 2; many.size() < 6; cut -= 2)
                many.emplace_back(tb.begin(), tb.begin() + (long)cut);
            many.push_back(ta);
            const bool six = std::getenv("PROBE_SIX") != nullptr;
            const Capture packed = six ? run(model, many) : run(model, {tb, ta});
            const size_t offset = six ? [&] { size_t o = 0; for (size_t k = 0; k + 1 < many.size(); ++k) o += many[k].size(); return o; }() : tb.size();
            double max_d = 0;
            int flips = 0, rows = 0;
            std::string per_layer;
            for (const auto & [il, la] : alone.logits) {
                const int64_t ne = alone.n_expert.at(il);
                const auto & lp = packed.logits.at(il);
                double layer_d = 0;
                for (size_t t = 0; t < ta.size(); ++t)
                    for (int64_t e = 0; e < ne; ++e)
                        layer_d =
                            std::max(layer_d, (double)std::fabs(la[t * ne + e] - lp[(offset + t) * ne + e]));
                per_layer += fmt::format(" L{}:{:.2g}", il, layer_d);
                for (size_t t = 0; t < ta.size(); ++t) {
                    const float * ra = la.data() + t * ne;
                    const float * rp = lp.data() + (offset + t) * ne;
                    for (int64_t e = 0; e < ne; ++e)
                        max_d = std::max(max_d, (double)std::fabs(ra[e] - rp[e]));
                    flips += topk(ra, ne, 2) != topk(rp, ne, 2);
                    ++rows;
                }
            }
            char desc[128];
            llama_model_desc(model, desc, sizeof desc);
            fmt::print(
                "{} [{}] repack={}: max |d logit| = {:.3g}, top-2 sets changed in {}/{} (token, layer) "
                "rows;{}\n",
                argv[i], desc, extra ? "on" : "off", max_d, flips, rows, per_layer);
            llama_model_free(model);
        }
    }
    return 0;
}
