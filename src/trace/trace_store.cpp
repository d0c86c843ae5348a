// The trace store: manifest.json + safetensors shards (layout documented in routescope/trace.h).
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <unistd.h>

#include "routescope/common.h"
#include "routescope/file_io.h"
#include "routescope/trace.h"
#include "safetensors.h"

namespace fs = std::filesystem;

namespace rs {

nlohmann::json manifest_to_json(const TraceManifest & m) {
    nlohmann::json j = {
        {"format", "routescope-trace"},
        {"version", m.version},
        {"tool_version", m.tool_version},
        {"model",
         {{"path", m.model_path},
          {"sha256", m.model_sha256},
          {"arch", m.arch},
          {"name", m.model_name},
          {"n_layer", m.n_layer},
          {"moe_layers", m.moe_layers},
          {"n_expert", m.n_expert},
          {"top_k", m.top_k},
          {"gating", m.gating}}},
        {"corpus",
         {{"spec", m.corpus}, {"langs", m.langs}, {"domains", m.domains}, {"n_sequences", m.n_sequences}}},
        {"store",
         {{"seqs_per_shard", m.seqs_per_shard},
          {"probs_dtype", m.probs_dtype},
          {"has_logits", m.has_logits}}},
        {"options", m.options},
    };
    if (m.store != "full") j["store"]["content"] = m.store;  // absent: full (traces before --store)
    return j;
}

TraceManifest manifest_from_json(const nlohmann::json & j) {
    TraceManifest m;
    try {
        if (j.value("format", "") != "routescope-trace") throw Error("not a routescope trace manifest");
        m.version = j.at("version").get<int>();
        if (m.version > kTraceVersion)
            throw Error(fmt::format("trace version {} is newer than this routescope ({}); upgrade routescope",
                                    m.version, kTraceVersion));
        m.tool_version = j.value("tool_version", "");
        const auto & mo = j.at("model");
        m.model_path = mo.at("path").get<std::string>();
        m.model_sha256 = mo.at("sha256").get<std::string>();
        m.arch = mo.at("arch").get<std::string>();
        m.model_name = mo.value("name", "");
        m.n_layer = mo.at("n_layer").get<int>();
        m.moe_layers = mo.at("moe_layers").get<std::vector<int>>();
        m.n_expert = mo.at("n_expert").get<int>();
        m.top_k = mo.at("top_k").get<int>();
        m.gating = mo.value("gating", "");
        const auto & co = j.at("corpus");
        m.corpus = co.at("spec").get<std::string>();
        m.langs = co.at("langs").get<std::vector<std::string>>();
        m.domains = co.at("domains").get<std::vector<std::string>>();
        m.n_sequences = co.at("n_sequences").get<int64_t>();
        const auto & st = j.at("store");
        m.seqs_per_shard = st.at("seqs_per_shard").get<int>();
        m.probs_dtype = st.at("probs_dtype").get<std::string>();
        m.has_logits = st.at("has_logits").get<bool>();
        m.store = st.value("content", "full");
        m.options = j.value("options", nlohmann::json::object());
    } catch (const nlohmann::json::exception & e) {
        throw Error(fmt::format("malformed trace manifest ({})", e.what()));
    }
    if (m.n_expert < 2 || m.top_k < 1 || m.top_k > m.n_expert || m.moe_layers.empty() ||
        m.seqs_per_shard < 1 || (m.probs_dtype != "f16" && m.probs_dtype != "f32") ||
        (m.store != "full" && m.store != "topk"))
        throw Error("malformed trace manifest (inconsistent sizes)");
    return m;
}

std::string shard_file_name(int64_t shard) {
    return fmt::format("shard-{:05d}.safetensors", shard);
}

void write_manifest(const std::string & dir, const TraceManifest & m) {
    write_file_atomic((fs::path(dir) / "manifest.json").string(), manifest_to_json(m).dump(2) + "\n");
}

void write_shard(const std::string & dir, int64_t shard, const TraceManifest & m, const TraceShard & s) {
    const auto S = (int64_t)s.seqs.size(), T = s.n_tok();
    const int64_t L = s.n_moe, E = s.n_expert, K = s.top_k;
    const bool topk_store = m.store == "topk";
    RS_ASSERT((int64_t)s.topk.size() == T * L * K);
    RS_ASSERT((int64_t)s.probs.size() == T * L * E ||
              (topk_store && (int64_t)s.topk_probs.size() == T * L * K));
    std::vector<int64_t> index(S), group(S), offset(S + 1);
    std::vector<int32_t> lang(S), domain(S);
    nlohmann::json ids = nlohmann::json::array();
    for (int64_t i = 0; i < S; ++i) {
        const auto & q = s.seqs[i];
        index[i] = q.index, group[i] = q.group, lang[i] = q.lang, domain[i] = q.domain;
        offset[i] = q.tok_begin;
        RS_ASSERT(i == 0 || q.tok_begin == s.seqs[i - 1].tok_begin + s.seqs[i - 1].n_tok);
        ids.push_back(q.id);
    }
    offset[S] = T;

    std::vector<uint16_t> probs16;
    std::vector<float> kept;  // store topk: p_t of the selected experts, [T, L, K]
    if (topk_store && s.topk_probs.empty()) {
        kept.resize(s.topk.size());
        for (size_t r = 0; r < (size_t)(T * L); ++r)
            for (size_t j = 0; j < (size_t)K; ++j) {
                const int id = s.topk[r * (size_t)K + j];
                RS_ASSERT(id >= 0 && id < E);
                kept[r * (size_t)K + j] = s.probs[r * (size_t)E + (size_t)id];
            }
    }
    const std::vector<float> & pv = !topk_store ? s.probs : s.topk_probs.empty() ? kept : s.topk_probs;
    const char * pname = topk_store ? "topk_probs" : "probs";
    const int64_t pw = topk_store ? K : E;
    StTensorView probs{pname, "F32", {T, L, pw}, pv.data(), pv.size() * 4};
    if (m.probs_dtype == "f16") {
        probs16.resize(pv.size());
        std::transform(pv.begin(), pv.end(), probs16.begin(), f32_to_f16);
        probs = {pname, "F16", {T, L, pw}, probs16.data(), probs16.size() * 2};
    }
    std::vector<StTensorView> t = {
        {"seq_index", "I64", {S}, index.data(), index.size() * 8},
        {"seq_group", "I64", {S}, group.data(), group.size() * 8},
        {"seq_lang", "I32", {S}, lang.data(), lang.size() * 4},
        {"seq_domain", "I32", {S}, domain.data(), domain.size() * 4},
        {"seq_offset", "I64", {S + 1}, offset.data(), offset.size() * 8},
        {"tokens", "I32", {T}, s.tokens.data(), s.tokens.size() * 4},
        probs,
        {"topk", "I16", {T, L, K}, s.topk.data(), s.topk.size() * 2},
    };
    if (m.has_logits) {
        RS_ASSERT((int64_t)s.logits.size() == T * L * E);
        t.push_back({"logits", "F32", {T, L, E}, s.logits.data(), s.logits.size() * 4});
    }
    st_write((fs::path(dir) / shard_file_name(shard)).string(), t,
             {{"format", "routescope-trace"},
              {"version", std::to_string(kTraceVersion)},
              {"seq_ids", ids.dump()}});
}

std::vector<int64_t> list_shards(const std::string & dir) {
    std::vector<int64_t> out;
    if (!fs::is_directory(dir)) return out;
    for (const auto & e : fs::directory_iterator(dir)) {
        const std::string n = e.path().filename().string();
        if (n.size() == 23 && n.starts_with("shard-") && n.ends_with(".safetensors"))
            out.push_back(std::stoll(n.substr(6, 5)));
    }
    std::sort(out.begin(), out.end());
    return out;
}

// Two manifests describe the same run when model, corpus and recording options agree.
static std::string run_identity(const TraceManifest & m) {
    auto j = manifest_to_json(m);
    j.erase("tool_version");
    j["model"].erase("path");
    if (j["options"].is_object()) j["options"].erase("threads");
    return j.dump();
}

std::vector<int64_t> prepare_trace_dir(const std::string & dir, const TraceManifest & m, bool resume) {
    const fs::path mpath = fs::path(dir) / "manifest.json";
    if (!fs::exists(mpath)) {
        if (fs::exists(dir) && !fs::is_directory(dir))
            throw Error(fmt::format("output path {} exists and is not a directory", dir));
        if (!list_shards(dir).empty())
            throw Error(
                fmt::format("{} holds trace shards but no manifest.json; choose an empty directory", dir));
        fs::create_directories(dir);
        write_manifest(dir, m);
        return {};
    }
    const TraceManifest old = read_manifest(dir);
    if (old.model_sha256 != m.model_sha256)
        throw Error(fmt::format("{} holds a trace of a different model ({}, sha256 {}…); use another --out",
                                dir, old.model_path, old.model_sha256.substr(0, 12)));
    if (!resume)
        throw Error(fmt::format(
            "{} already holds a trace; pass --resume to continue it or choose another --out", dir));
    if (run_identity(old) != run_identity(m))
        throw Error(
            fmt::format("{} holds a trace of the same model with another corpus or options; "
                        "cannot resume it with these arguments",
                        dir));
    write_manifest(dir, m);
    return list_shards(dir);
}

TraceManifest read_manifest(const std::string & dir) {
    const fs::path p = fs::path(dir) / "manifest.json";
    std::ifstream f(p);
    if (!f)
        throw Error(fmt::format(
            "{} is not a trace directory (no manifest.json); record one with `routescope trace`", dir));
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(f);
    } catch (const nlohmann::json::exception & e) {
        throw Error(fmt::format("{}: corrupt manifest.json ({})", p.string(), e.what()));
    }
    return manifest_from_json(j);
}

int64_t trace_n_shards(const TraceManifest & m) {
    return (m.n_sequences + m.seqs_per_shard - 1) / m.seqs_per_shard;
}

TraceShard read_shard(const std::string & dir, const TraceManifest & m, int64_t shard) {
    const std::string path = (fs::path(dir) / shard_file_name(shard)).string();
    const StFile f = st_read(path);
    TraceShard s;
    s.n_moe = (int)m.moe_layers.size(), s.n_expert = m.n_expert, s.top_k = m.top_k;
    auto vec = [&](const char * name, const char * dtype, auto & out) {
        const auto v = f.get(name, dtype);
        out.resize(v.nbytes / sizeof(out[0]));
        std::memcpy(out.data(), v.data, v.nbytes);
        return v.shape;
    };
    std::vector<int64_t> index, group, offset;
    std::vector<int32_t> lang, domain;
    vec("seq_index", "I64", index);
    vec("seq_group", "I64", group);
    vec("seq_lang", "I32", lang);
    vec("seq_domain", "I32", domain);
    vec("seq_offset", "I64", offset);
    vec("tokens", "I32", s.tokens);
    const auto T = s.n_tok();
    const auto tk_shape = vec("topk", "I16", s.topk);
    const std::vector<int64_t> want_p = {T, s.n_moe, s.n_expert}, want_k = {T, s.n_moe, s.top_k};
    if (tk_shape != want_k || offset.size() != index.size() + 1 || offset.back() != T)
        throw Error(fmt::format("{}: shapes do not match manifest.json (n_moe {}, E {}, k {})", path, s.n_moe,
                                s.n_expert, s.top_k));
    const std::string pd = m.probs_dtype == "f16" ? "F16" : "F32";
    const bool topk_store = m.store == "topk";  // topk_probs [T, L, K] instead of probs
    const auto pv = f.get(topk_store ? "topk_probs" : "probs", pd);
    if (pv.shape != (topk_store ? want_k : want_p))
        throw Error(fmt::format("{}: probs shape does not match manifest.json", path));
    auto & pout = topk_store ? s.topk_probs : s.probs;
    pout.resize((size_t)(T * s.n_moe * (topk_store ? s.top_k : s.n_expert)));
    if (pd == "F16") {
        const auto * h = static_cast<const uint16_t *>(pv.data);
        for (size_t i = 0; i < pout.size(); ++i) pout[i] = f16_to_f32(h[i]);
    } else {
        std::memcpy(pout.data(), pv.data, pv.nbytes);
    }
    if (m.has_logits) vec("logits", "F32", s.logits);

    const auto ids = nlohmann::json::parse(f.metadata.count("seq_ids") ? f.metadata.at("seq_ids") : "[]");
    for (size_t i = 0; i < index.size(); ++i) {
        TraceSeq q;
        q.index = index[i], q.group = group[i], q.lang = lang[i], q.domain = domain[i];
        q.tok_begin = offset[i], q.n_tok = offset[i + 1] - offset[i];
        q.id = i < ids.size() ? ids[i].get<std::string>() : "";
        if (q.lang < 0 || q.lang >= (int32_t)m.langs.size() || q.n_tok < 0)
            throw Error(fmt::format("{}: sequence {} has an invalid language or length", path, i));
        s.seqs.push_back(std::move(q));
    }
    return s;
}

std::vector<float> TraceShard::seq_probs(size_t s, int l) const {
    const auto & q = seqs.at(s);
    std::vector<float> out((size_t)(q.n_tok * n_expert));
    for (int64_t t = 0; t < q.n_tok; ++t) {
        const auto row = p(q.tok_begin + t, l);
        std::copy(row.begin(), row.end(), out.begin() + t * n_expert);
    }
    return out;
}

std::vector<int16_t> TraceShard::seq_topk(size_t s, int l) const {
    const auto & q = seqs.at(s);
    std::vector<int16_t> out((size_t)(q.n_tok * top_k));
    for (int64_t t = 0; t < q.n_tok; ++t) {
        const auto row = ids(q.tok_begin + t, l);
        std::copy(row.begin(), row.end(), out.begin() + t * top_k);
    }
    return out;
}

}  // namespace rs
