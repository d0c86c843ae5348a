// arch_survey: what llama.cpp's graph looks like for every architecture make-model writes.
//
// Not a test and not a benchmark: a one-off survey (issue #10) the router tap's refusal rules and
// the README's architecture table are written from. For each architecture (and a few variants:
// MTP/nextn blocks, deepseek4 hash layers) it writes a tiny model (make_model, stdev 0.1), loads
// it with llama.cpp (CPU, 1 thread), decodes 2 sequences in one batch with a cb_eval that asks for
// every node named ffn_moe* and every MUL_MAT whose src[0] is blk.N.ffn_gate_inp.weight, and
// reports per architecture: load, memory kind, layers, router layers, nextn, gating, and per MoE
// layer the router-logits node, how many `ffn_moe_topk-N` nodes there are, where MUL_MAT_ID takes
// its ids from, ubatch splits and columns. Each model runs in a child process, so an abort
// (GGML_ASSERT) is recorded, not fatal.
//
//   arch_survey [--md FILE] [--json FILE] [ARCH ...]
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <ggml.h>
#include <gguf.h>
#include <llama.h>
#include <nlohmann/json.hpp>

#include "routescope/make_model.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct Variant {
    std::string arch, name;  // name: "default", "nextn1", "hash1"
    rs::MakeModelParams p;
};

int layer_of(const std::string & name) {
    // "ffn_moe_logits-3" -> 3; "blk.3.ffn_gate_inp.weight" -> 3
    const auto dash = name.rfind('-');
    if (name.rfind("blk.", 0) == 0) return std::atoi(name.c_str() + 4);
    if (dash == std::string::npos) return -1;
    return std::atoi(name.c_str() + dash + 1);
}

std::string shape(const ggml_tensor * t) {
    return fmt::format("[{},{},{},{}]", t->ne[0], t->ne[1], t->ne[2], t->ne[3]);
}

std::string op_name(const ggml_tensor * t) {
    if (t->op == GGML_OP_UNARY) return fmt::format("UNARY:{}", ggml_unary_op_name(ggml_get_unary_op(t)));
    return ggml_op_name(t->op);
}

// The op behind a chain of views/reshapes (ids of MUL_MAT_ID are a view of argsort/top-k output).
const ggml_tensor * through_views(const ggml_tensor * t) {
    while (t &&
           (t->op == GGML_OP_VIEW || t->op == GGML_OP_RESHAPE || t->op == GGML_OP_CONT ||
            t->op == GGML_OP_PERMUTE || t->op == GGML_OP_TRANSPOSE) &&
           t->src[0])
        t = t->src[0];
    return t;
}

struct Layer {
    std::set<std::string> router_nodes;  // "op name shape" of MUL_MAT with src0 = ffn_gate_inp
    std::set<std::string> logits_nodes;  // ffn_moe_logits-N
    std::set<std::string> probs_ops;     // op of ffn_moe_probs-N
    std::set<std::string> topk_names;    // distinct ffn_moe_topk* node names
    int topk_nodes_per_eval = 0;
    std::set<std::string> ids_src;  // op(name) of MUL_MAT_ID src[2] after views
    std::vector<int64_t> cols;      // ne[1] of the logits node per graph evaluation
};

struct Probe {
    std::map<int, Layer> layers;
    std::set<std::string> prefixed;   // names with a backend prefix ('#')
    std::set<std::string> moe_names;  // distinct ffn_moe* name stems
    int evals = 0;
    std::map<int, int> topk_this_eval;
};

bool cb_eval(ggml_tensor * t, bool ask, void * ud) {
    auto & pr = *static_cast<Probe *>(ud);
    if (!ask) return true;
    const std::string name = t->name;
    if (name.find('#') != std::string::npos) pr.prefixed.insert(name);
    const bool router_mm = t->op == GGML_OP_MUL_MAT && t->src[0] &&
                           std::string(t->src[0]->name).find("ffn_gate_inp.weight") != std::string::npos &&
                           std::string(t->src[0]->name).find("shexp") == std::string::npos;
    const bool moe = name.rfind("ffn_moe", 0) == 0;
    if (!router_mm && !moe && t->op != GGML_OP_MUL_MAT_ID) return false;
    if (router_mm) {
        const int il = layer_of(t->src[0]->name);
        pr.layers[il].router_nodes.insert(fmt::format("{} '{}' {}", op_name(t), name, shape(t)));
    }
    if (t->op == GGML_OP_MUL_MAT_ID && t->src[2]) {
        const int il = layer_of(name);
        const ggml_tensor * ids = through_views(t->src[2]);
        pr.layers[il].ids_src.insert(fmt::format("{}('{}')", op_name(ids), ids->name));
    }
    if (moe) {
        const int il = layer_of(name);
        const auto dash = name.rfind('-');
        pr.moe_names.insert(dash == std::string::npos ? name : name.substr(0, dash));
        Layer & L = pr.layers[il];
        if (name.rfind("ffn_moe_logits", 0) == 0) {
            L.logits_nodes.insert(fmt::format("{} {}", op_name(t), shape(t)));
            L.cols.push_back(t->ne[1]);
            if (il == 0 || pr.layers.begin()->first == il) ++pr.evals;
        }
        if (name.rfind("ffn_moe_probs", 0) == 0) L.probs_ops.insert(op_name(t));
        if (name.rfind("ffn_moe_topk", 0) == 0) {
            L.topk_names.insert(name);
            ++L.topk_nodes_per_eval;
        }
    }
    return router_mm || moe;
}

std::string meta(const llama_model * m, const std::string & key) {
    char buf[512];
    const int n = llama_model_meta_val_str(m, key.c_str(), buf, sizeof buf);
    return n < 0 ? std::string() : std::string(buf);
}

json survey_one(const Variant & v, const std::string & path) {
    json r;
    r["arch"] = v.arch;
    r["variant"] = v.name;
    try {
        rs::make_model(v.p, path);
    } catch (const std::exception & e) {
        r["generated"] = false;
        r["error"] = e.what();
        return r;
    }
    r["generated"] = true;
    r["file_bytes"] = fs::file_size(path);
    // Router layers straight from the file.
    {
        gguf_init_params gp{/*no_alloc=*/true, /*ctx=*/nullptr};
        gguf_context * g = gguf_init_from_file(path.c_str(), gp);
        std::vector<int> gate_layers;
        std::set<std::string> extra;
        for (int64_t i = 0; g && i < gguf_get_n_tensors(g); ++i) {
            const std::string n = gguf_get_tensor_name(g, i);
            if (n.ends_with(".ffn_gate_inp.weight")) gate_layers.push_back(layer_of(n));
            for (const char * k : {"exp_probs_b", "ffn_gate_inp.bias", "ffn_gate_inp_shexp", "ffn_up_shexp",
                                   "ffn_gate_tid2eid", "nextn.", "ffn_gate_chexps", "ffn_up_chexps"})
                if (n.find(k) != std::string::npos) extra.insert(k);
        }
        if (g) gguf_free(g);
        r["gate_inp_layers"] = gate_layers;
        r["router_tensors"] = std::vector<std::string>(extra.begin(), extra.end());
    }
    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    llama_model * model = llama_model_load_from_file(path.c_str(), mp);
    r["loads"] = model != nullptr;
    if (!model) return r;
    r["recurrent"] = llama_model_is_recurrent(model);
    r["hybrid"] = llama_model_is_hybrid(model);
    r["memory"] = llama_model_is_hybrid(model)      ? "hybrid"
                  : llama_model_is_recurrent(model) ? "recurrent"
                                                    : "kv";
    r["n_layer"] = llama_model_n_layer(model);
    r["n_layer_nextn"] = llama_model_n_layer_nextn(model);
    r["gating_func_key"] = meta(model, v.arch + ".expert_gating_func");
    r["weights_norm_key"] = meta(model, v.arch + ".expert_weights_norm");
    r["n_expert"] = meta(model, v.arch + ".expert_count");
    r["top_k"] = meta(model, v.arch + ".expert_used_count");

    Probe pr;
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 256;
    cp.n_batch = 64;
    cp.n_ubatch = 64;
    cp.n_seq_max = 2;
    cp.kv_unified = true;  // as the engine (engine.cpp): one KV stream, batches split in order (split_simple)
    cp.n_threads = 1;
    cp.n_threads_batch = 1;
    cp.cb_eval = cb_eval;
    cp.cb_eval_user_data = &pr;
    llama_context * ctx = llama_init_from_model(model, cp);
    r["context"] = ctx != nullptr;
    if (!ctx) {
        llama_model_free(model);
        return r;
    }
    const llama_vocab * vocab = llama_model_get_vocab(model);
    const std::vector<std::string> texts = {"The experts route tokens of the world.",
                                            "Die Katze ist nicht hier."};
    llama_batch batch = llama_batch_init(128, 0, 1);
    int n_tok = 0;
    for (int s = 0; s < 2; ++s) {
        std::vector<llama_token> toks(128);
        const int n =
            llama_tokenize(vocab, texts[s].c_str(), (int32_t)texts[s].size(), toks.data(), 128, true, false);
        for (int i = 0; i < n; ++i) {
            batch.token[n_tok] = toks[i];
            batch.pos[n_tok] = i;
            batch.n_seq_id[n_tok] = 1;
            batch.seq_id[n_tok][0] = s;
            batch.logits[n_tok] = i == n - 1;
            ++n_tok;
        }
    }
    batch.n_tokens = n_tok;
    r["n_tokens"] = n_tok;
    const int rc = llama_decode(ctx, batch);
    r["decode_rc"] = rc;
    if (rc == 0) {
        bool finite = true;
        const int nv = llama_vocab_n_tokens(vocab);
        for (int s = 0; s < 2; ++s) {
            const float * lg = llama_get_logits_ith(ctx, s == 0 ? -1 : -1);
            (void)s;
            for (int i = 0; lg && i < nv; ++i) finite = finite && std::isfinite(lg[i]);
        }
        r["logits_finite"] = finite;
    }
    llama_batch_free(batch);
    json layers = json::object();
    for (const auto & [il, L] : pr.layers) {
        json j;
        j["router_matmul"] = std::vector<std::string>(L.router_nodes.begin(), L.router_nodes.end());
        j["logits_node"] = std::vector<std::string>(L.logits_nodes.begin(), L.logits_nodes.end());
        j["probs_op"] = std::vector<std::string>(L.probs_ops.begin(), L.probs_ops.end());
        j["topk_names"] = std::vector<std::string>(L.topk_names.begin(), L.topk_names.end());
        j["topk_nodes"] = L.topk_nodes_per_eval;
        j["ids_src"] = std::vector<std::string>(L.ids_src.begin(), L.ids_src.end());
        j["cols"] = L.cols;
        layers[std::to_string(il)] = j;
    }
    r["layers"] = layers;
    r["graph_evals"] = pr.evals;
    r["prefixed_names"] = std::vector<std::string>(pr.prefixed.begin(), pr.prefixed.end());
    r["moe_node_stems"] = std::vector<std::string>(pr.moe_names.begin(), pr.moe_names.end());
    llama_free(ctx);
    llama_model_free(model);
    return r;
}

json run_isolated(const Variant & v, const fs::path & dir) {
    const fs::path out = dir / (v.arch + "-" + v.name + ".json");
    const fs::path model = dir / (v.arch + "-" + v.name + ".gguf");
    fflush(stdout);
    const pid_t pid = fork();
    if (pid == 0) {
        llama_backend_init();
        if (!std::getenv("RS_VERBOSE")) llama_log_set([](ggml_log_level, const char *, void *) {}, nullptr);
        json r = survey_one(v, model.string());
        std::ofstream(out) << r.dump();
        std::_Exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    std::error_code ec;
    fs::remove(model, ec);
    if (WIFEXITED(status) && fs::exists(out)) {
        std::ifstream in(out);
        return json::parse(in);
    }
    json r;
    r["arch"] = v.arch;
    r["variant"] = v.name;
    r["crashed"] = WIFSIGNALED(status) ? fmt::format("signal {}", WTERMSIG(status)) : "no result";
    return r;
}

std::string join(const json & a, const char * sep = ", ") {
    std::string s;
    for (const auto & x : a) {
        if (!s.empty()) s.append(sep);
        s.append(x.is_string() ? x.get<std::string>() : x.dump());
    }
    return s;
}

// One markdown row per (arch, variant).
std::string md_row(const json & r) {
    auto get = [&](const char * k) {
        return r.contains(k) ? (r[k].is_string() ? r[k].get<std::string>() : r[k].dump()) : std::string();
    };
    std::string status;
    if (r.contains("crashed"))
        status = "CRASH " + get("crashed");
    else if (!r.value("generated", false))
        status = "refused: " + r.value("error", std::string());
    else if (!r.value("loads", false))
        status = "load error";
    else if (!r.value("context", false))
        status = "ctx error";
    else if (r.value("decode_rc", -1) != 0)
        status = "decode rc " + get("decode_rc");
    else
        status = r.value("logits_finite", false) ? "ok" : "non-finite";
    std::string moe_layers, topk, ids, logits, probs, evals, pruned = "-";
    std::set<std::string> ids_set, logits_set, probs_set;
    std::set<int> topk_counts, eval_counts;
    const int n_tokens = r.value("n_tokens", 0);
    if (r.contains("layers")) {
        std::string last;
        for (const auto & [k, L] : r["layers"].items()) {
            if (L["logits_node"].empty() && L["router_matmul"].empty()) continue;
            if (!moe_layers.empty()) moe_layers.push_back(',');
            moe_layers.append(k);
            const int n_eval = static_cast<int>(L["cols"].size());
            eval_counts.insert(n_eval);
            topk_counts.insert(n_eval > 0 ? L["topk_nodes"].get<int>() / n_eval : 0);
            for (const auto & x : L["ids_src"]) {
                const std::string v = x.get<std::string>();
                ids_set.insert(v.substr(0, v.find('(')));
            }
            for (const auto & x : L["logits_node"])
                logits_set.insert(x.get<std::string>().substr(0, x.get<std::string>().find(' ')));
            for (const auto & x : L["probs_op"]) probs_set.insert(x.get<std::string>());
            last = k;
        }
        if (!last.empty()) {
            int64_t cols = 0;
            for (const auto & c : r["layers"][last]["cols"]) cols += c.get<int64_t>();
            pruned = cols < n_tokens ? fmt::format("yes ({} of {} cols)", cols, n_tokens) : "no";
        }
    }
    auto cat = [](const auto & set, const char * sep) {
        std::string out;
        for (const auto & x : set) {
            if (!out.empty()) out.append(sep);
            out.append(fmt::format("{}", x));
        }
        return out;
    };
    topk = cat(topk_counts, "/");
    ids = cat(ids_set, ",");
    logits = cat(logits_set, ",");
    probs_set.erase("RESHAPE");
    probs = cat(probs_set, ",");
    evals = cat(eval_counts, "/");
    bool norm = false;
    if (r.contains("moe_node_stems"))
        for (const auto & x : r["moe_node_stems"])
            norm = norm || x.get<std::string>() == "ffn_moe_weights_norm";
    const std::string prefixed = r.contains("prefixed_names") && !r["prefixed_names"].empty() ? "yes" : "";
    return fmt::format(
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |{}\n", get("arch"),
        get("variant"), status, get("memory"), get("n_layer"), get("n_layer_nextn"),
        r.contains("gate_inp_layers") ? join(r["gate_inp_layers"], ",") : "", moe_layers,
        get("gating_func_key"), probs, r.contains("layers") ? (norm ? "yes" : "no") : "", logits, topk, ids,
        evals + " / " + pruned, prefixed.empty() ? "" : " backend-prefixed names |");
}

}  // namespace

int main(int argc, char ** argv) {
    std::string md_path, json_path;
    std::vector<std::string> only;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--md" && i + 1 < argc)
            md_path = argv[++i];
        else if (a == "--json" && i + 1 < argc)
            json_path = argv[++i];
        else
            only.push_back(a);
    }
    const fs::path dir = fs::temp_directory_path() / fmt::format("rs_arch_survey_{}", getpid());
    fs::create_directories(dir);
    std::vector<Variant> variants;
    for (const auto & arch : rs::make_model_all_archs()) {
        if (!only.empty() && std::find(only.begin(), only.end(), arch) == only.end()) continue;
        Variant v{arch, "default", {}};
        v.p.arch = arch;
        v.p.stdev = 0.1f;
        variants.push_back(v);
        const auto seven = rs::make_model_archs();
        if (std::find(seven.begin(), seven.end(), arch) != seven.end()) continue;
        // The gating key set to softmax: an arch whose probs op stays sigmoid hard-codes it.
        Variant g = v;
        g.name = "softmax-key";
        g.p.gating = 1;
        variants.push_back(g);
        // MTP blocks only where llama.cpp has them (make_model refuses the others, by name).
        static const std::set<std::string> mtp = {
            "bailingmoe3", "cohere2moe", "deepseek32",  "deepseek4",  "glm-dsa",     "glm4moe",
            "hy_v3",       "kimi-k3",    "kimi-linear", "mimo2",      "nemotron_h",  "nemotron_h_moe",
            "qwen35moe",   "qwen3next",  "step35",      "exaone-moe", "bailingmoe2", "dots3note"};
        if (mtp.count(arch)) {
            Variant n = v;
            n.name = "nextn1";
            n.p.nextn = 1;
            variants.push_back(n);
        }
        if (arch == "deepseek4") {
            Variant h = v;
            h.name = "hash1";
            h.p.hash_layers = 1;
            variants.push_back(h);
        }
    }
    json all = json::array();
    std::string md =
        "| arch | variant | status | memory | n_layer (trunk) | nextn | ffn_gate_inp in file | MoE layers in "
        "graph | "
        "gating key | probs op | renorm node | logits op | topk views/layer | ids from | ubatches / last "
        "layer pruned "
        "|\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
    for (const auto & v : variants) {
        json r = run_isolated(v, dir);
        all.push_back(r);
        const std::string row = md_row(r);
        md += row;
        fmt::print("{}", row);
    }
    std::error_code ec;
    fs::remove_all(dir, ec);
    if (!json_path.empty()) std::ofstream(json_path) << all.dump(1) << "\n";
    if (!md_path.empty()) std::ofstream(md_path) << md;
    return 0;
}
