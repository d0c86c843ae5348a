// rs_fuzz: a deterministic mutation fuzzer over routescope's input parsers (issue #15).
//
//   rs_fuzz TARGET --iterations N [--seed S] [--regress DIR] [--dump I --out FILE]
//
// TARGET: safetensors (the shard container), shard (container + trace-store validation + the per-sequence
// metrics over what it accepts), manifest, steer (steering specs), experts (experts.json referenced by a
// spec), tsv, jsonl (corpora) and scores (--scores). Each iteration takes a seed input (valid files built
// in-process, plus every file in --regress DIR), applies 1–4 mutations drawn from a SplitMix64 stream
// keyed by (seed, iteration) — bit flips, interesting bytes, deletions, duplications, splices, and
// JSON/text-aware replacements of numbers and strings with boundary values — and feeds the result to the
// parser. The contract: the parser returns or throws rs::Error. Any other exception is a finding (the CLI
// would print a raw library message); a crash or a sanitizer report is a finding. The run is a function
// of (TARGET, N, seed, DIR) only — no clock — so CI and a local run see the same inputs, and
// --dump I writes the input of iteration I for a regression case. On a fatal signal the current input is
// written to ./crash-TARGET-ITER before the process dies.
//
// Limits: a black-box mutator without coverage feedback; seeds are small (a few hundred bytes to a few KB)
// so each execution is cheap. libFuzzer is not used: GCC (the project's compiler) has no -fsanitize=fuzzer.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#endif

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "routescope/analysis.h"
#include "routescope/common.h"
#include "routescope/corpus.h"
#include "routescope/metrics.h"
#include "routescope/stats.h"
#include "routescope/steer.h"
#include "routescope/trace.h"
#include "safetensors.h"

namespace fs = std::filesystem;

namespace {

using Bytes = std::string;

// ---------------------------------------------------------------------------------------------
// Seeds: valid inputs of each format, built here so the harness needs no data files.

rs::TraceManifest seed_manifest() {
    rs::TraceManifest m;
    m.tool_version = "0.1.0";
    m.model_path = "/m/q.gguf";
    m.model_sha256 = std::string(64, 'a');
    m.arch = "qwen3moe";
    m.model_name = "tiny";
    m.n_layer = 3;
    m.moe_layers = {0, 2};
    m.n_expert = 4;
    m.top_k = 2;
    m.gating = "softmax";
    m.corpus = "tsv:x.tsv";
    m.langs = {"eng_Latn", "deu_Latn"};
    m.domains = {"flores"};
    m.n_sequences = 3;
    m.seqs_per_shard = 3;
    m.probs_dtype = "f16";
    m.corpus_sha256 = std::string(64, 'b');
    m.options = {{"max_tokens", 64}, {"limit", -1}};
    return m;
}

rs::TraceShard seed_shard() {
    rs::TraceShard s;
    s.n_moe = 2, s.n_expert = 4, s.top_k = 2;
    s.seqs = {{0, 0, 0, 0, "a", 0, 2}, {1, 0, 1, 0, "b", 2, 1}, {2, -1, 0, 0, "c", 3, 0}};
    s.tokens = {1, 7, 1};
    for (int t = 0; t < 3; ++t)
        for (int l = 0; l < 2; ++l) {
            const float v[4] = {0.1f * (float)(t + 1), 0.2f, 0.3f, 0.4f - 0.1f * (float)t};
            s.probs.insert(s.probs.end(), v, v + 4);
            s.topk.push_back((int16_t)(3 - l));
            s.topk.push_back((int16_t)(t % 2));
        }
    return s;
}

Bytes seed_shard_bytes(const fs::path & work) {
    auto m = seed_manifest();
    fs::create_directories(work / "seedtrace");
    rs::write_shard((work / "seedtrace").string(), 0, m, seed_shard());
    std::ifstream f(work / "seedtrace" / rs::shard_file_name(0), std::ios::binary);
    return Bytes(std::istreambuf_iterator<char>(f), {});
}

rs::ModelInfo seed_model() {
    rs::ModelInfo mi;
    mi.arch = "qwen3moe";
    mi.n_layer = 6;
    mi.moe_layers = {1, 2, 3, 4, 5};
    mi.n_expert = 8;
    mi.top_k = 2;
    return mi;
}

const char * kExperts =
    R"({"model": {"arch": "qwen3moe", "n_expert": 8}, "tau": 0.3, "layers": [1, 2, 3],
 "sets": {"multilingual": {"1": [0, 3], "2": [5], "3": []}, "deu_Latn": {"2": [1, 7]}},
 "delta": {"1": [0.1, -0.2, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0]}})";

std::vector<Bytes> seeds_for(const std::string & target, const fs::path & work) {
    if (target == "safetensors" || target == "shard") return {seed_shard_bytes(work)};
    if (target == "manifest") {
        auto m = seed_manifest();
        m.shard_sha256[0] = std::string(64, 'c');
        return {rs::manifest_to_json(m).dump(2), rs::manifest_to_json(seed_manifest()).dump()};
    }
    if (target == "steer")
        return {
            R"({"seed": 3, "rules": [{"layers": "1:3", "experts": [0, 7], "method": "force"},
 {"layers": [2, 4], "experts": {"2": [1], "4": [4, 6]}, "method": "suppress", "margin": 2.5},
 {"layers": "all", "experts": [5], "method": "soft", "lambda": -0.5}]})",
            R"({"experts_file": "experts.json", "rules": [{"layers": "all", "set": "multilingual", "method": "soft", "lambda": 1}]})",
            R"({"rules": [{"layers": 3, "experts": [2], "method": "force"}]})",
        };
    if (target == "experts") return {kExperts};
    if (target == "tsv")
        return {
            "id\tlang\tdomain\ttext\tgroup\na1\teng_Latn\tweb\tHello world.\t0\nb1\tdeu_Latn\tweb\tHallo "
            "Welt.\t0\n"
            "a2\teng_Latn\tweb\tTwo.\t1\nb2\tdeu_Latn\tweb\tZwei.\t1\n",
            "text\tlang\tid\nCafé ☕\tfra_Latn\tx\nNi hao\tzho_Hans\ty\r\n"};
    if (target == "jsonl")
        return {R"({"id": "a", "lang": "eng_Latn", "text": "Hello", "group": 0, "domain": "web"}
{"id": 7, "lang": "deu_Latn", "text": "Hallo", "group": 0}
{"id": "c", "lang": "eng_Latn", "text": "Again \u00e9", "group": 1}
{"id": "d", "lang": "deu_Latn", "text": "Wieder", "group": 1}
)"};
    if (target == "scores")
        return {"lang\tscore\neng_Latn\t1.0\ndeu_Latn\t0.75\nswh_Latn\t-3e-2\n",
                "lang\tacc\r\nfra_Latn\t12\r\n"};
    return {};
}

// ---------------------------------------------------------------------------------------------
// Mutations

const char * kNumbers[] = {"0",
                           "-1",
                           "1",
                           "2",
                           "3.5",
                           "-0",
                           "1e300",
                           "-1e300",
                           "1e-320",
                           "4294967297",
                           "4294967299",
                           "2147483648",
                           "-2147483649",
                           "9223372036854775807",
                           "-9223372036854775808",
                           "18446744073709551615",
                           "18446744073709551616",
                           "65536",
                           "32768",
                           "nan",
                           "NaN",
                           "inf",
                           "1e999",
                           "0x10",
                           "007",
                           "1.",
                           "",
                           "99999999999999999999999999"};
const char * kStrings[] = {"\"\"",
                           "\"x\"",
                           "null",
                           "true",
                           "[]",
                           "{}",
                           "[0]",
                           "[0,1,2]",
                           "\"a:b\"",
                           "\"all\"",
                           "\"\\u0000\"",
                           "\"\xff\"",
                           "[[[[[[[[]]]]]]]]",
                           "{\"a\":1}",
                           "\"F16\"",
                           "\"I64\"",
                           "\"F32\"",
                           "\"soft\"",
                           "\"force\"",
                           "\"1:99\"",
                           "-1"};
const uint8_t kBytes[] = {0,   0xff, 0x7f, 0x80, '"',  '[',  ']',  '{', '}',  ',',  ':',
                          '-', '0',  '9',  '\t', '\n', '\r', '\\', ' ', 0xc0, 0xe2, 0xf4};

size_t pick(rs::SplitMix64 & r, size_t n) {
    return n == 0 ? 0 : (size_t)rs::uniform_below(r, (uint64_t)n);
}

// A run of digits (with sign, dot, exponent) or a quoted string, starting at or after `from`.
bool find_token(const Bytes & s, size_t from, bool number, size_t & b, size_t & e) {
    for (size_t i = from; i < s.size(); ++i) {
        if (number && (std::isdigit((unsigned char)s[i]) || s[i] == '-')) {
            e = i;
            while (e < s.size() && (std::isdigit((unsigned char)s[e]) || std::strchr("-+.eE", s[e]))) ++e;
            b = i;
            return true;
        }
        if (!number && s[i] == '"') {
            e = s.find('"', i + 1);
            if (e == Bytes::npos) return false;
            b = i, ++e;
            return true;
        }
    }
    return false;
}

void mutate_once(Bytes & s, rs::SplitMix64 & r, const std::vector<Bytes> & pool) {
    const size_t n = s.size();
    switch (rs::uniform_below(r, 11)) {
        case 0:  // bit flip
            if (n) s[pick(r, n)] ^= (char)(1u << pick(r, 8));
            break;
        case 1:  // interesting byte
            if (n) s[pick(r, n)] = (char)kBytes[pick(r, sizeof kBytes)];
            break;
        case 2: {  // delete a range
            if (!n) break;
            const size_t b = pick(r, n), len = 1 + pick(r, std::min<size_t>(n - b, 16));
            s.erase(b, len);
            break;
        }
        case 3: {  // duplicate a range
            if (!n) break;
            const size_t b = pick(r, n), len = 1 + pick(r, std::min<size_t>(n - b, 32));
            s.insert(pick(r, n + 1), s.substr(b, len));
            break;
        }
        case 4: {  // insert random bytes
            const size_t len = 1 + pick(r, 8);
            Bytes ins;
            for (size_t i = 0; i < len; ++i) ins += (char)pick(r, 256);
            s.insert(pick(r, n + 1), ins);
            break;
        }
        case 5:  // truncate
            if (n) s.resize(pick(r, n));
            break;
        case 6: {  // splice with another seed
            const Bytes & o = pool[pick(r, pool.size())];
            if (o.empty() || !n) break;
            const size_t at = pick(r, n), ob = pick(r, o.size());
            s = s.substr(0, at) + o.substr(ob);
            break;
        }
        case 7:
        case 8: {  // replace a number with a boundary value
            size_t b, e;
            if (find_token(s, pick(r, n + 1), true, b, e) || find_token(s, 0, true, b, e))
                s.replace(b, e - b, kNumbers[pick(r, std::size(kNumbers))]);
            break;
        }
        case 9: {  // replace a string (a JSON value or key) with another value
            size_t b, e;
            if (find_token(s, pick(r, n + 1), false, b, e) || find_token(s, 0, false, b, e))
                s.replace(b, e - b, kStrings[pick(r, std::size(kStrings))]);
            break;
        }
        case 10: {  // 64-bit little-endian field (the safetensors header length) set to a boundary value
            if (n < 8) break;
            const uint64_t v[] = {0,
                                  1,
                                  7,
                                  8,
                                  (uint64_t)n,
                                  (uint64_t)n - 8,
                                  (uint64_t)n - 7,
                                  UINT64_MAX,
                                  (uint64_t)1 << 63,
                                  100u << 20};
            const uint64_t x = v[pick(r, std::size(v))];
            std::memcpy(s.data() + (pick(r, 2) ? 0 : pick(r, n - 7)), &x, 8);
            break;
        }
    }
}

// For the binary container, mutations often target the JSON header and then fix its length prefix, so
// they reach the header validation rather than stopping at "corrupt header length".
Bytes mutate(const Bytes & seed, rs::SplitMix64 & r, const std::vector<Bytes> & pool, bool binary) {
    Bytes s = seed;
    const int k = 1 + (int)rs::uniform_below(r, 4);
    if (binary && s.size() >= 8 && rs::uniform_below(r, 2) == 0) {
        uint64_t hn = 0;
        std::memcpy(&hn, s.data(), 8);
        if (hn <= s.size() - 8) {
            Bytes h = s.substr(8, hn), data = s.substr(8 + hn);
            for (int i = 0; i < k; ++i) mutate_once(h, r, pool);
            if (rs::uniform_below(r, 3) == 0) mutate_once(data, r, pool);
            const uint64_t nh = h.size();
            s.assign(reinterpret_cast<const char *>(&nh), 8);
            s += h + data;
            return s;
        }
    }
    for (int i = 0; i < k; ++i) mutate_once(s, r, pool);
    return s;
}

// ---------------------------------------------------------------------------------------------
// Targets: return normally or throw rs::Error.

struct Ctx {
    fs::path work;
    rs::TraceManifest manifest = seed_manifest();
    rs::ModelInfo model = seed_model();
};

void write_bytes(const fs::path & p, const Bytes & b) {
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f.write(b.data(), (std::streamsize)b.size());
}

nlohmann::json parse_json(const Bytes & b) {
    try {
        return nlohmann::json::parse(b);
    } catch (const nlohmann::json::exception &) {  // parse errors and number overflow (1e999)
        throw rs::Error("not JSON");               // what the CLI readers do (each names its file)
    }
}

void run_target(const std::string & target, const Bytes & in, Ctx & c) {
    if (target == "safetensors") {
        const auto f = rs::st_parse("fuzz.safetensors", std::vector<uint8_t>(in.begin(), in.end()));
        for (auto it = f.header.begin(); it != f.header.end(); ++it) {
            if (it.key() == "__metadata__") continue;
            const auto v = f.get(it.key(), it.value()["dtype"].get<std::string>());
            volatile uint8_t sink = 0;
            for (size_t i = 0; i < v.nbytes; i += 64) sink = sink + static_cast<const uint8_t *>(v.data)[i];
            if (v.nbytes) sink = sink + static_cast<const uint8_t *>(v.data)[v.nbytes - 1];
        }
    } else if (target == "shard") {
        const auto s =
            rs::parse_shard("fuzz.safetensors", std::vector<uint8_t>(in.begin(), in.end()), c.manifest, 0);
        // what analyze does with an accepted shard: per-sequence statistics and divergences
        std::vector<std::vector<rs::SequenceLayerStats>> sums;
        for (const auto & q : s.seqs)
            sums.push_back(rs::summarise_sequence(s.probs, s.topk, q.tok_begin, q.n_tok, s.n_moe, s.n_expert,
                                                  s.top_k, q.index));
        for (size_t a = 0; a + 1 < sums.size(); ++a)
            for (int l = 0; l < s.n_moe; ++l)
                if (!sums[a][(size_t)l].importance.empty() && !sums[a + 1][(size_t)l].importance.empty())
                    (void)rs::hjs_divergence(std::span<const double>(sums[a][(size_t)l].importance),
                                             std::span<const double>(sums[a + 1][(size_t)l].importance));
    } else if (target == "manifest") {
        const auto m = rs::manifest_from_json(parse_json(in));
        (void)rs::trace_n_shards(m);
        (void)rs::manifest_to_json(m).dump();
    } else if (target == "steer") {
        const auto plan = rs::steer_plan_from_json(parse_json(in), c.model, c.work.string());
        (void)plan.to_json().dump();
        std::vector<float> z = {0.5f, -1.f, 2.f, 0.f, 3.f, -2.f, 1.f, 0.25f};
        for (size_t il = 0; il < plan.ops.size(); ++il) {
            rs::steer_logits(z, plan.ops[il], plan.seed, (int)il, 42);
            for (const float v : z)
                if (!std::isfinite(v)) throw std::runtime_error("steered logit not finite");
        }
    } else if (target == "experts") {
        write_bytes(c.work / "experts.json", in);
        const auto spec = nlohmann::json::parse(
            R"({"experts_file": "experts.json", "rules": [{"layers": "all", "set": "multilingual", "method": "force"}]})");
        (void)rs::steer_plan_from_json(spec, c.model, c.work.string());
    } else if (target == "tsv" || target == "jsonl") {
        const fs::path p = c.work / ("corpus." + target);
        write_bytes(p, in);
        const auto corpus = rs::load_corpus(target + ":" + p.string(), {});
        (void)rs::load_corpus(target + ":" + p.string(), {corpus.langs, 1});
        nlohmann::json j = nlohmann::json::array();  // what the trace manifest and shards store
        for (const auto & q : corpus.seqs) j.push_back({q.id, q.lang, q.domain});
        (void)j.dump();
    } else if (target == "scores") {
        const fs::path p = c.work / "scores.tsv";
        write_bytes(p, in);
        for (const auto & [lang, v] : rs::read_scores(p.string()))
            if (!std::isfinite(v) || lang.empty()) throw std::runtime_error("bad score accepted");
    } else {
        throw std::invalid_argument("unknown target " + target);
    }
}

// ---------------------------------------------------------------------------------------------
// Crash capture: the current input goes to ./crash-TARGET-ITER on a fatal signal (async-signal-safe).

const Bytes * g_current = nullptr;
char g_crash_name[256] = "crash";

extern "C" void save_current() {
    if (g_current) {
        const int fd = ::open(g_crash_name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            const ssize_t w = ::write(fd, g_current->data(), g_current->size());
            (void)w;
            ::close(fd);
        }
    }
}

extern "C" void on_fatal(int sig) {
    save_current();
    ::signal(sig, SIG_DFL);
    ::raise(sig);
}

int usage() {
    std::fprintf(stderr,
                 "usage: rs_fuzz TARGET --iterations N [--seed S] [--regress DIR] [--dump I --out FILE]\n"
                 "TARGET: safetensors shard manifest steer experts tsv jsonl scores\n");
    return 2;
}

}  // namespace

int main(int argc, char ** argv) {
    if (argc < 2) return usage();
    const std::string target = argv[1];
    int64_t iterations = 1000, dump = -1;
    uint64_t seed = 1;
    std::string regress, out;
    for (int i = 2; i + 1 < argc; i += 2) {
        const std::string k = argv[i], v = argv[i + 1];
        if (k == "--iterations")
            iterations = std::stoll(v);
        else if (k == "--seed")
            seed = std::stoull(v);
        else if (k == "--regress")
            regress = v;
        else if (k == "--dump")
            dump = std::stoll(v);
        else if (k == "--out")
            out = v;
        else
            return usage();
    }
    Ctx c;
    // file-based targets write their input once per execution: a tmpfs keeps that ~15x cheaper than disk
    std::error_code shm_ec;
    const fs::path base = ::access("/dev/shm", W_OK) == 0 && fs::is_directory("/dev/shm", shm_ec)
                              ? fs::path("/dev/shm")
                              : fs::temp_directory_path();
    c.work = base / ("rs_fuzz_" + target + "_" + std::to_string(getpid()));
    fs::create_directories(c.work);
    write_bytes(c.work / "experts.json", kExperts);
    std::vector<Bytes> pool = seeds_for(target, c.work);
    if (pool.empty()) return usage();
    const size_t n_builtin = pool.size();
    std::vector<std::string> regress_names;
    if (!regress.empty() && fs::is_directory(regress)) {
        std::vector<fs::path> files;
        for (const auto & e : fs::directory_iterator(regress))
            if (e.is_regular_file()) files.push_back(e.path());
        std::sort(files.begin(), files.end());  // directory order is not deterministic
        for (const auto & p : files) {
            std::ifstream f(p, std::ios::binary);
            pool.emplace_back(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
            regress_names.push_back(p.filename().string());
        }
    }
    for (const int s : {SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL}) ::signal(s, on_fatal);
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_set_death_callback(save_current);  // sanitizer reports may end the process by _exit
#endif
    const bool binary = target == "safetensors" || target == "shard";

    int64_t n_ok = 0, n_error = 0, n_findings = 0;
    auto exec = [&](const Bytes & in, const std::string & label) {
        g_current = &in;
        std::snprintf(g_crash_name, sizeof g_crash_name, "crash-%s-%s", target.c_str(), label.c_str());
        try {
            run_target(target, in, c);
            ++n_ok;
        } catch (const rs::Error & e) {
            ++n_error;
            const std::string m = e.what();
            // one line, no raw library text (the CLI prints it as is)
            if (m.find("json.exception") != std::string::npos || m.find('\n') != std::string::npos) {
                ++n_findings;
                std::fprintf(stderr, "FINDING %s %s: raw error text: %s\n", target.c_str(), label.c_str(),
                             m.c_str());
            }
        } catch (const std::exception & e) {
            ++n_findings;
            std::fprintf(stderr, "FINDING %s %s: %s escaped: %s\n", target.c_str(), label.c_str(),
                         typeid(e).name(), e.what());
        }
        g_current = nullptr;
    };
    // every seed and regression case as is, then the mutants
    for (size_t i = 0; i < pool.size(); ++i)
        exec(pool[i], i < n_builtin ? "seed" + std::to_string(i) : "regress-" + regress_names[i - n_builtin]);
    for (int64_t it = 0; it < iterations; ++it) {
        rs::SplitMix64 r(rs::derive_seed(seed, (uint64_t)it, 0xf022));
        const Bytes in = mutate(pool[pick(r, pool.size())], r, pool, binary);
        if (it == dump) {
            write_bytes(out.empty() ? "fuzz-input" : out, in);
            std::printf("wrote iteration %lld (%zu bytes)\n", (long long)it, in.size());
            break;
        }
        if (dump < 0) exec(in, std::to_string(it));
    }
    std::error_code ec;
    fs::remove_all(c.work, ec);
    std::printf(
        "rs_fuzz %s: %lld executions (%zu seeds + %lld mutants, seed %llu): %lld accepted, %lld refused "
        "with rs::Error, %lld findings\n",
        target.c_str(), (long long)(n_ok + n_error + n_findings), pool.size(), (long long)iterations,
        (unsigned long long)seed, (long long)n_ok, (long long)n_error, (long long)n_findings);
    return n_findings == 0 ? 0 : 1;
}
