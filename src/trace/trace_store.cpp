// The trace store: manifest.json + safetensors shards (layout documented in routescope/trace.h).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include "routescope/common.h"
#include "routescope/file_io.h"
#include "routescope/trace.h"
#include "safetensors.h"
#include "shard_check.h"

namespace fs = std::filesystem;

namespace rs {

namespace {

// The manifest's per-shard digest maps: their key under "store", and the digest each holds.
struct ShardDigestMap {
    const char * key;
    std::map<int64_t, std::string> TraceManifest::*map;
    const char * what;
    size_t n_hex;
};
constexpr ShardDigestMap kShardDigestMaps[] = {
    {"shard_sha256", &TraceManifest::shard_sha256, "SHA-256", 64},
    {"shard_index_sha256", &TraceManifest::shard_index_sha256, "SHA-256", 64},
    {"shard_xxh3_128", &TraceManifest::shard_xxh3_128, "XXH3-128", 32},
    {"shard_index_xxh3_128", &TraceManifest::shard_index_xxh3_128, "XXH3-128", 32},
};

}  // namespace

void clear_shard_digests(TraceManifest & m) {
    for (const auto & d : kShardDigestMaps) (m.*d.map).clear();
}

void copy_shard_digests(const TraceManifest & from, TraceManifest & to, int64_t shard) {
    for (const auto & d : kShardDigestMaps)
        if (const auto it = (from.*d.map).find(shard); it != (from.*d.map).end())
            (to.*d.map)[shard] = it->second;
}

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
          {"gating", m.gating},
          {"hash_layers", m.hash_layers},
          {"p_meaning", m.p_meaning}}},
        {"corpus",
         {{"spec", m.corpus}, {"langs", m.langs}, {"domains", m.domains}, {"n_sequences", m.n_sequences}}},
        {"store",
         {{"seqs_per_shard", m.seqs_per_shard},
          {"probs_dtype", m.probs_dtype},
          {"has_logits", m.has_logits}}},
        {"options", m.options},
    };
    if (!m.corpus_sha256.empty()) j["corpus"]["sha256"] = m.corpus_sha256;
    for (const auto & d : kShardDigestMaps) {
        if ((m.*d.map).empty()) continue;
        nlohmann::json sh = nlohmann::json::object();
        for (const auto & [k, h] : m.*d.map) sh[std::to_string(k)] = h;
        j["store"][d.key] = sh;
    }
    if (m.store != "full") j["store"]["content"] = m.store;  // absent: full (traces before --store)
    return j;
}

namespace {

// Typed field access for the manifest: a missing key, a wrong type (3.5 for an integer, a string for
// a list) or a value out of range is an rs::Error naming the key, never a raw nlohmann exception.
const nlohmann::json & field(const nlohmann::json & o, const char * sect, const char * key) {
    if (!o.is_object() || !o.contains(key))
        throw Error(fmt::format("\"{}{}{}\" is missing", sect, *sect ? "." : "", key));
    return o[key];
}

int64_t int_field(const nlohmann::json & o, const char * sect, const char * key, int64_t lo, int64_t hi) {
    const auto & v = field(o, sect, key);
    if (!v.is_number_integer())
        throw Error(fmt::format("\"{}.{}\" must be an integer, not {}", sect, key, v.dump()));
    // an unsigned JSON number above INT64_MAX would wrap in get<int64_t>: compare it unsigned first
    if (v.is_number_unsigned() ? (v.get<uint64_t>() > (uint64_t)hi || (int64_t)v.get<uint64_t>() < lo)
                               : (v.get<int64_t>() < lo || v.get<int64_t>() > hi))
        throw Error(fmt::format("\"{}.{}\" = {} is outside [{}, {}]", sect, key, v.dump(), lo, hi));
    return v.get<int64_t>();
}

std::string str_field(const nlohmann::json & o, const char * sect, const char * key, bool required = true) {
    if (!required && (!o.is_object() || !o.contains(key))) return "";
    const auto & v = field(o, sect, key);
    if (!v.is_string()) throw Error(fmt::format("\"{}{}{}\" must be a string", sect, *sect ? "." : "", key));
    return v.get<std::string>();
}

std::vector<std::string> names_field(const nlohmann::json & o, const char * sect, const char * key) {
    const auto & v = field(o, sect, key);
    if (!v.is_array() || v.empty()) throw Error(fmt::format("\"{}.{}\" must be a non-empty list", sect, key));
    std::vector<std::string> out;
    for (const auto & x : v) {
        if (!x.is_string() || x.get<std::string>().empty())
            throw Error(fmt::format("\"{}.{}\" must hold non-empty strings", sect, key));
        const auto n = x.get<std::string>();
        if (std::find(out.begin(), out.end(), n) != out.end())
            throw Error(fmt::format("\"{}.{}\" names '{}' twice", sect, key, printable(n)));
        out.push_back(n);
    }
    return out;
}

bool is_hex(const std::string & h, size_t n) {
    return h.size() == n && h.find_first_not_of("0123456789abcdef") == std::string::npos;
}
bool is_hex64(const std::string & h) {  // a SHA-256
    return is_hex(h, 64);
}

}  // namespace

TraceManifest manifest_from_json(const nlohmann::json & j) {
    TraceManifest m;
    if (!j.is_object() || !j.contains("format") || j["format"] != "routescope-trace")
        throw Error("not a routescope trace manifest (\"format\" is not \"routescope-trace\")");
    m.version = (int)int_field(j, "", "version", 1, 1 << 20);
    if (m.version > kTraceVersion)
        throw Error(fmt::format("trace version {} is newer than this routescope ({}); upgrade routescope",
                                m.version, kTraceVersion));
    m.tool_version = str_field(j, "", "tool_version", false);
    const auto & mo = field(j, "", "model");
    m.model_path = str_field(mo, "model", "path");
    m.model_sha256 = str_field(mo, "model", "sha256");
    m.arch = str_field(mo, "model", "arch");
    m.model_name = str_field(mo, "model", "name", false);
    m.n_layer = (int)int_field(mo, "model", "n_layer", 1, 1 << 16);
    const auto & ml = field(mo, "model", "moe_layers");
    if (!ml.is_array() || ml.empty())
        throw Error("\"model.moe_layers\" must be a non-empty list of block indices");
    for (const auto & v : ml) {
        if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= m.n_layer)
            throw Error(fmt::format("\"model.moe_layers\" holds {}, not a block index in [0, {})", v.dump(),
                                    m.n_layer));
        const int il = (int)v.get<int64_t>();
        if (!m.moe_layers.empty() && il <= m.moe_layers.back())
            throw Error("\"model.moe_layers\" must be strictly ascending (no repeats)");
        m.moe_layers.push_back(il);
    }
    m.n_expert = (int)int_field(mo, "model", "n_expert", 2, 32767);  // ids are stored as I16
    m.top_k = (int)int_field(mo, "model", "top_k", 1, m.n_expert);
    m.gating = str_field(mo, "model", "gating", false);
    if (mo.contains("hash_layers")) {  // blocks routed by a token table; a subset of moe_layers
        const auto & hl = mo["hash_layers"];
        if (!hl.is_array()) throw Error("\"model.hash_layers\" must be a list of block indices");
        for (const auto & v : hl) {
            if (!v.is_number_integer() ||
                std::find(m.moe_layers.begin(), m.moe_layers.end(), v.get<int64_t>()) == m.moe_layers.end())
                throw Error(
                    fmt::format("\"model.hash_layers\" holds {}, not one of model.moe_layers", v.dump()));
            m.hash_layers.push_back((int)v.get<int64_t>());
        }
    }
    m.p_meaning = str_field(mo, "model", "p_meaning", false);
    const auto & co = field(j, "", "corpus");
    m.corpus = str_field(co, "corpus", "spec");
    m.langs = names_field(co, "corpus", "langs");
    m.domains = names_field(co, "corpus", "domains");
    m.n_sequences = int_field(co, "corpus", "n_sequences", 1, int64_t{1} << 40);
    m.corpus_sha256 = str_field(co, "corpus", "sha256", false);
    if (!m.corpus_sha256.empty() && !is_hex64(m.corpus_sha256))
        throw Error("\"corpus.sha256\" is not a SHA-256 hex digest");
    const auto & st = field(j, "", "store");
    m.seqs_per_shard = (int)int_field(st, "store", "seqs_per_shard", 1, 1 << 30);
    m.probs_dtype = str_field(st, "store", "probs_dtype");
    if (m.probs_dtype != "f16" && m.probs_dtype != "f32")
        throw Error(fmt::format("\"store.probs_dtype\" is '{}', not f16 or f32", m.probs_dtype));
    if (!field(st, "store", "has_logits").is_boolean())
        throw Error("\"store.has_logits\" must be true or false");
    m.has_logits = st["has_logits"].get<bool>();
    m.store = str_field(st, "store", "content", false);  // absent: full (traces before --store)
    if (m.store.empty()) m.store = "full";
    if (m.store != "full" && m.store != "topk")
        throw Error(fmt::format("\"store.content\" is '{}', not full or topk", m.store));
    for (const auto & [key, map, what, n_hex] : kShardDigestMaps) {
        if (!st.contains(key)) continue;
        const auto & sh = st[key];
        if (!sh.is_object())
            throw Error(fmt::format("\"store.{}\" must be an object {{shard: digest}}", key));
        const int64_t n_shards = trace_n_shards(m);
        for (auto it = sh.begin(); it != sh.end(); ++it) {
            size_t used = 0;
            int64_t k = -1;
            try {
                k = std::stoll(it.key(), &used);
            } catch (const std::exception &) {
                used = 0;
            }
            if (used == 0 || used != it.key().size() || k < 0 || k >= n_shards || !it->is_string() ||
                !is_hex(it->get<std::string>(), n_hex))
                throw Error(
                    fmt::format("\"store.{}\" entry '{}' is not a shard index in [0, {}) "
                                "with a {} hex digest",
                                key, it.key(), n_shards, what));
            (m.*map)[k] = it->get<std::string>();
        }
    }
    m.options = j.value("options", nlohmann::json::object());
    if (!m.options.is_object()) throw Error("\"options\" must be an object");
    return m;
}

std::string shard_file_name(int64_t shard) {
    return fmt::format("shard-{:05d}.safetensors", shard);
}

void write_manifest(const std::string & dir, const TraceManifest & m) {
    write_file_atomic((fs::path(dir) / "manifest.json").string(), manifest_to_json(m).dump(2) + "\n");
}

ShardDigests write_shard(const std::string & dir, int64_t shard, const TraceManifest & m,
                         const TraceShard & s) {
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
    // The index part first (everything `experts` reads: sequences, tokens, ids, and a topk store's
    // probabilities), then the full distributions: its digest covers a prefix of the file.
    std::vector<StTensorView> t = {
        {"seq_index", "I64", {S}, index.data(), index.size() * 8},
        {"seq_group", "I64", {S}, group.data(), group.size() * 8},
        {"seq_lang", "I32", {S}, lang.data(), lang.size() * 4},
        {"seq_domain", "I32", {S}, domain.data(), domain.size() * 4},
        {"seq_offset", "I64", {S + 1}, offset.data(), offset.size() * 8},
        {"tokens", "I32", {T}, s.tokens.data(), s.tokens.size() * 4},
        {"topk", "I16", {T, L, K}, s.topk.data(), s.topk.size() * 2},
        probs,
    };
    const size_t n_index = topk_store ? t.size() : t.size() - 1;
    if (m.has_logits) {
        RS_ASSERT((int64_t)s.logits.size() == T * L * E);
        t.push_back({"logits", "F32", {T, L, E}, s.logits.data(), s.logits.size() * 4});
    }
    const StDigests d = st_write(
        (fs::path(dir) / shard_file_name(shard)).string(), t,
        {{"format", "routescope-trace"}, {"version", std::to_string(kTraceVersion)}, {"seq_ids", ids.dump()}},
        n_index);
    return {d.file, d.prefix, d.file_xxh3, d.prefix_xxh3};
}

void set_shard_digests(TraceManifest & m, int64_t shard, const ShardDigests & d) {
    m.shard_sha256[shard] = d.file;
    m.shard_index_sha256[shard] = d.index;
    m.shard_xxh3_128[shard] = d.file_xxh3;
    m.shard_index_xxh3_128[shard] = d.index_xxh3;
}

std::vector<int64_t> list_shards(const std::string & dir) {
    std::vector<int64_t> out;
    if (!fs::is_directory(dir)) return out;
    for (const auto & e : fs::directory_iterator(dir)) {
        const std::string n = e.path().filename().string();
        if (n.size() == 23 && n.starts_with("shard-") && n.ends_with(".safetensors") &&
            n.find_first_not_of("0123456789", 6) == 11)
            out.push_back(std::stoll(n.substr(6, 5)));
    }
    std::sort(out.begin(), out.end());
    return out;
}

// Two manifests describe the same run when model, corpus and recording options agree.
static std::string run_identity(const TraceManifest & m, bool with_corpus_hash) {
    auto j = manifest_to_json(m);
    j.erase("tool_version");
    j["model"].erase("path");
    for (const auto & d : kShardDigestMaps) j["store"].erase(d.key);
    if (!with_corpus_hash) j["corpus"].erase("sha256");
    if (j["options"].is_object()) {  // neither changes what is recorded on the CPU
        j["options"].erase("threads");
        j["options"].erase("rpc");  // where the offloaded layers ran (ports change between runs)
    }
    return j.dump();
}

std::string shard_sha256(const std::string & dir, int64_t shard) {
    const std::string bytes = read_file((fs::path(dir) / shard_file_name(shard)).string());
    return sha256_hex(bytes.data(), bytes.size());
}

std::vector<int64_t> prepare_trace_dir(const std::string & dir, TraceManifest & m, bool resume) {
    const fs::path mpath = fs::path(dir) / "manifest.json";
    if (!fs::exists(mpath)) {
        if (fs::exists(dir) && !fs::is_directory(dir))
            throw Error(fmt::format("{}: exists and is not a directory (choose another --out)", dir));
        if (!list_shards(dir).empty())
            throw Error(
                fmt::format("{}: holds trace shards but no manifest.json (choose an empty directory)", dir));
        fs::create_directories(dir);
        remove_stale_temporaries(dir);
        clear_shard_digests(m);
        write_manifest(dir, m);
        return {};
    }
    const TraceManifest old = read_manifest(dir);
    if (old.model_sha256 != m.model_sha256)
        throw Error(fmt::format("{}: holds a trace of a different model ({}, sha256 {}…) (use another --out)",
                                dir, old.model_path, old.model_sha256.substr(0, 12)));
    if (!resume)
        throw Error(fmt::format(
            "{}: already holds a trace (pass --resume to continue it or choose another --out)", dir));
    // A trace recorded before corpus hashes existed resumes on the other fields alone.
    const bool hash = !old.corpus_sha256.empty();
    if (run_identity(old, hash) != run_identity(m, hash))
        throw Error(
            fmt::format("{}: holds a trace of the same model with another corpus, corpus content or options "
                        "(cannot resume it with these arguments; use another --out)",
                        dir));
    remove_stale_temporaries(dir);
    // A shard counts as done only when its bytes match the checksum recorded when it was written. A shard
    // without one (the run was killed between the shard's rename and the manifest update, or an older
    // trace) counts when it reads back as a valid shard; anything else is recorded again. The other digests
    // (index part, XXH3-128) are kept where the SHA-256 matched (the same bytes); a shard without them is
    // verified by its SHA-256 and read whole.
    clear_shard_digests(m);
    std::vector<int64_t> done;
    for (const int64_t k : list_shards(dir)) {
        if (k >= trace_n_shards(m)) continue;
        std::string h;
        try {
            h = shard_sha256(dir, k);
            const auto it = old.shard_sha256.find(k);
            if (it != old.shard_sha256.end() ? it->second != h : (read_shard(dir, old, k), false)) h.clear();
        } catch (const Error &) {
            h.clear();
        }
        if (h.empty()) continue;  // recorded again (overwritten atomically)
        if (old.shard_sha256.count(k)) copy_shard_digests(old, m, k);  // of the same bytes
        m.shard_sha256[k] = h;
        done.push_back(k);
    }
    write_manifest(dir, m);
    return done;
}

TraceManifest read_manifest(const std::string & dir) {
    const fs::path p = fs::path(dir) / "manifest.json";
    std::ifstream f(p);
    std::error_code ec;
    if (!f || !fs::is_regular_file(p, ec))
        throw Error(fmt::format(
            "{}: not a trace directory (no manifest.json; record one with `routescope trace`)", dir));
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(f);
    } catch (const nlohmann::json::exception & e) {
        throw Error(
            fmt::format("{}: corrupt JSON: {} (re-record the trace)", p.string(), json_error_text(e.what())));
    }
    try {
        return manifest_from_json(j);
    } catch (const Error & e) {
        throw Error(fmt::format("{}: {} (re-record the trace)", p.string(), e.what()));
    }
}

int64_t trace_n_shards(const TraceManifest & m) {
    return (m.n_sequences + m.seqs_per_shard - 1) / m.seqs_per_shard;
}

TraceShard read_shard(const std::string & dir, const TraceManifest & m, int64_t shard) {
    const std::string path = (fs::path(dir) / shard_file_name(shard)).string();
    std::string raw = read_file(path);
    if (const DigestToVerify v = digest_to_verify(m, shard, /*whole_file=*/true); v.digest) {
        const std::string got =
            v.xxh3 ? xxh3_128_hex(raw.data(), raw.size()) : sha256_hex(raw.data(), raw.size());
        if (got != *v.digest) throw shard_checksum_mismatch(path);
    }
    return parse_shard(path, std::vector<uint8_t>(raw.begin(), raw.end()), m, shard);
}

Error shard_checksum_mismatch(const std::string & path) {
    return Error(
        fmt::format("{}: checksum does not match manifest.json (corrupt or replaced; "
                    "re-record it with `routescope trace --resume`)",
                    path));
}

DigestToVerify digest_to_verify(const TraceManifest & m, int64_t shard, bool whole_file) {
    const auto find = [&](const std::map<int64_t, std::string> & d) -> const std::string * {
        const auto it = d.find(shard);
        return it == d.end() ? nullptr : &it->second;
    };
    if (!whole_file) {
        if (const auto * d = find(m.shard_index_xxh3_128)) return {d, true, true};
        if (const auto * d = find(m.shard_index_sha256)) return {d, false, true};
    }
    if (const auto * d = find(m.shard_xxh3_128)) return {d, true, false};
    return {find(m.shard_sha256), false, false};
}

Error corrupt_shard(const std::string & path, const std::string & what) {
    return Error(
        fmt::format("{}: {} (corrupt shard; re-record it with `routescope trace --resume`)", path, what));
}

int64_t shard_n_sequences(const std::string & path, const TraceManifest & m, int64_t shard) {
    if (shard < 0 || shard >= trace_n_shards(m))
        throw corrupt_shard(path, fmt::format("shard {} is beyond the {} shards manifest.json describes",
                                              shard, trace_n_shards(m)));
    return std::min<int64_t>(m.seqs_per_shard, m.n_sequences - shard * m.seqs_per_shard);
}

std::vector<TraceSeq> checked_sequences(const std::string & path, const TraceManifest & m, int64_t shard,
                                        int64_t n_seq, const int64_t * index, const int64_t * group,
                                        const int32_t * lang, const int32_t * domain,
                                        const int64_t * offset) {
    if (offset[0] != 0) throw corrupt_shard(path, "seq_offset does not start at 0");
    for (int64_t i = 0; i < n_seq; ++i)  // before any difference is taken (INT64_MIN − x overflows)
        if (offset[i + 1] < offset[i])
            throw corrupt_shard(path, fmt::format("seq_offset decreases at {}", i + 1));
    std::vector<TraceSeq> out;
    out.reserve((size_t)n_seq);
    for (int64_t i = 0; i < n_seq; ++i) {
        TraceSeq q;
        q.index = index[i], q.group = group[i], q.lang = lang[i], q.domain = domain[i];
        q.tok_begin = offset[i], q.n_tok = offset[i + 1] - offset[i];
        if (q.index != shard * m.seqs_per_shard + i)
            throw corrupt_shard(path, fmt::format("sequence {} has corpus position {}, expected {}", i,
                                                  q.index, shard * m.seqs_per_shard + i));
        if (q.lang < 0 || q.lang >= (int32_t)m.langs.size() || q.domain < 0 ||
            q.domain >= (int32_t)m.domains.size() || q.group < -1)
            throw corrupt_shard(
                path, fmt::format("sequence {} has a language, domain or group outside manifest.json", i));
        out.push_back(std::move(q));
    }
    return out;
}

// Every value a consumer indexes with is checked here, so analysis code can trust a TraceShard:
// sequence counts and corpus positions agree with the manifest, offsets start at 0 and never decrease,
// languages/domains index the manifest's lists, expert ids are < E, probabilities are finite in [0, 1]
// and logits finite. Anything else is an rs::Error naming the file (3. and 8. in issue #15).
TraceShard parse_shard(const std::string & path, std::vector<uint8_t> bytes, const TraceManifest & m,
                       int64_t shard) {
    const StFile f = st_parse(path, std::move(bytes));
    auto bad = [&](const std::string & what) { return corrupt_shard(path, what); };
    const int64_t S = shard_n_sequences(path, m, shard);
    TraceShard s;
    s.n_moe = (int)m.moe_layers.size(), s.n_expert = m.n_expert, s.top_k = m.top_k;
    auto vec = [&](const char * name, const char * dtype, auto & out, const std::vector<int64_t> & shape) {
        const auto v = f.get(name, dtype);
        if (v.shape != shape)
            throw bad(fmt::format("tensor '{}' has shape [{}], expected [{}]", name, fmt::join(v.shape, ","),
                                  fmt::join(shape, ",")));
        out.resize(v.nbytes / sizeof(out[0]));
        if (v.nbytes) std::memcpy(out.data(), v.data, v.nbytes);
    };
    std::vector<int64_t> index, group, offset;
    std::vector<int32_t> lang, domain;
    vec("seq_index", "I64", index, {S});
    vec("seq_group", "I64", group, {S});
    vec("seq_lang", "I32", lang, {S});
    vec("seq_domain", "I32", domain, {S});
    vec("seq_offset", "I64", offset, {S + 1});
    const auto tv = f.get("tokens", "I32");
    if (tv.shape.size() != 1) throw bad("tensor 'tokens' is not one-dimensional");
    const int64_t T = tv.shape[0];
    vec("tokens", "I32", s.tokens, {T});
    const int64_t L = s.n_moe, E = s.n_expert, K = s.top_k;
    vec("topk", "I16", s.topk, {T, L, K});
    for (const int16_t id : s.topk)
        if (id < 0 || id >= E) throw bad(fmt::format("expert id {} outside [0, {})", id, E));
    const std::string pd = m.probs_dtype == "f16" ? "F16" : "F32";
    const bool topk_store = m.store == "topk";  // topk_probs [T, L, K] instead of probs
    const char * pname = topk_store ? "topk_probs" : "probs";
    const int64_t pw = topk_store ? K : E;
    const auto pv = f.get(pname, pd);
    if (pv.shape != std::vector<int64_t>{T, L, pw})
        throw bad(fmt::format("tensor '{}' has shape [{}], expected [{},{},{}]", pname,
                              fmt::join(pv.shape, ","), T, L, pw));
    auto & pout = topk_store ? s.topk_probs : s.probs;
    pout.resize((size_t)(T * L * pw));
    if (pd == "F16") {
        // data_offsets need not be 2-byte aligned in a foreign file: copy each half (UBSan, rs_fuzz)
        const auto * h = static_cast<const uint8_t *>(pv.data);
        for (size_t i = 0; i < pout.size(); ++i) {
            uint16_t v;
            std::memcpy(&v, h + 2 * i, 2);
            pout[i] = f16_to_f32(v);
        }
    } else if (pv.nbytes) {
        std::memcpy(pout.data(), pv.data, pv.nbytes);
    }
    for (const float p : topk_store ? s.topk_probs : s.probs)  // the negated test also catches NaN
        if (!(p >= 0.0f && p <= 1.0f + 1e-3f))
            throw bad(fmt::format("probability {} is not finite in [0, 1]", p));
    if (m.has_logits) {
        vec("logits", "F32", s.logits, {T, L, E});
        for (const float z : s.logits)
            if (!std::isfinite(z)) throw bad("a router logit is not finite");
    }

    nlohmann::json ids = nlohmann::json::array();
    if (f.metadata.count("seq_ids")) {
        try {
            ids = nlohmann::json::parse(f.metadata.at("seq_ids"));
        } catch (const nlohmann::json::exception &) {
            throw bad("metadata seq_ids is not JSON");
        }
        if (!ids.is_array() || (int64_t)ids.size() != S) throw bad("metadata seq_ids is not a list of S ids");
        for (const auto & x : ids)
            if (!x.is_string()) throw bad("metadata seq_ids holds a non-string id");
    }
    if (offset[(size_t)S] != T) throw bad("seq_offset does not span the tokens");
    s.seqs = checked_sequences(path, m, shard, S, index.data(), group.data(), lang.data(), domain.data(),
                               offset.data());
    for (int64_t i = 0; i < S && i < (int64_t)ids.size(); ++i)
        s.seqs[(size_t)i].id = ids[i].get<std::string>();
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
