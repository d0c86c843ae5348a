// Router steering: spec parsing/validation and the per-token logit operations (see steer.h).
#include "routescope/steer.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <optional>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "routescope/common.h"
#include "routescope/stats.h"

namespace fs = std::filesystem;

namespace rs {

bool SteerPlan::empty() const {
    return std::all_of(ops.begin(), ops.end(), [](const auto & v) { return v.empty(); });
}

std::vector<int> SteerPlan::forced_experts(int il) const {
    std::vector<int> out;
    if (il < 0 || il >= (int)ops.size()) return out;
    for (const auto & op : ops[il])
        if (op.method == SteerMethod::force) out.insert(out.end(), op.experts.begin(), op.experts.end());
    return out;
}

bool SteerPlan::has_force(int il) const {
    if (il < 0 || il >= (int)ops.size()) return false;
    return std::any_of(ops[il].begin(), ops[il].end(),
                       [](const SteerOp & op) { return op.method == SteerMethod::force; });
}

int SteerPlan::n_steered_experts() const {
    int n = 0;
    for (const auto & block : ops) {
        std::set<int> ids;
        for (const auto & op : block) {
            ids.insert(op.experts.begin(), op.experts.end());
            ids.insert(op.off.begin(), op.off.end());
        }
        n += (int)ids.size();
    }
    return n;
}

static const char * method_name(SteerMethod m) {
    switch (m) {
        case SteerMethod::soft:
            return "soft";
        case SteerMethod::force:
            return "force";
        case SteerMethod::suppress:
            return "suppress";
        case SteerMethod::chen:
            return "chen";
        case SteerMethod::steermoe:
            return "steermoe";
    }
    return "?";
}

nlohmann::json SteerPlan::to_json() const {
    nlohmann::json rules = nlohmann::json::array();
    for (size_t il = 0; il < ops.size(); ++il)
        for (const auto & op : ops[il]) {
            nlohmann::json r = {{"layer", il},
                                {"method", method_name(op.method)},
                                {"lambda", op.lambda},
                                {"margin", op.margin},
                                {"experts", op.experts}};
            if (!op.coef.empty()) r["coefficients"] = op.coef;
            if (!op.off.empty()) r["deactivate"] = op.off;
            rules.push_back(std::move(r));
        }
    return {{"seed", seed}, {"ops", rules}};
}

namespace {

// Bounds that keep steered logits finite: z_k += λ·std(z) with |λ| ≤ 100 and z_k = min(z) − margin with
// margin ≤ 1e4 stay far inside float range for any router logits a model produces (issue #15: λ = 1e300
// recorded NaN probabilities). The paper's values (Appendix A.6) are of order 1.
constexpr double kMaxLambda = 100.0, kMaxMargin = 1e4;

// A JSON integer as int64 without wrapping (4294967299 is not expert 3); nullopt for a non-integer.
std::optional<int64_t> as_int(const nlohmann::json & v) {
    if (v.is_number_unsigned()) {
        if (v.get<uint64_t>() > (uint64_t)INT64_MAX) return INT64_MAX;
        return (int64_t)v.get<uint64_t>();
    }
    if (v.is_number_integer()) return v.get<int64_t>();
    return std::nullopt;
}

void check_keys(const nlohmann::json & o, std::initializer_list<const char *> known,
                const std::string & where) {
    for (auto it = o.begin(); it != o.end(); ++it) {
        bool ok = false;
        for (const char * k : known) ok = ok || it.key() == k;
        if (!ok) {
            std::string list;
            for (const char * k : known) list += std::string(list.empty() ? "" : ", ") + k;
            throw Error(
                fmt::format("{}: unknown key \"{}\" (known keys: {})", where, printable(it.key()), list));
        }
    }
}

int64_t parse_block(const std::string & t, const std::string & where, const std::string & s) {
    size_t used = 0;
    long long v = -1;
    try {
        v = std::stoll(t, &used);
    } catch (const std::exception &) {
        used = 0;
    }
    if (t.empty() || used != t.size() || !std::isdigit((unsigned char)t[0]))
        throw Error(
            fmt::format("{}: layers '{}' is not \"a:b\" (inclusive block indices) or \"all\"", where, s));
    return v;
}

std::vector<int> parse_layers(const nlohmann::json & j, const ModelInfo & m, const std::string & where) {
    std::vector<int64_t> out;
    if (j.is_string()) {
        const auto s = j.get<std::string>();
        if (s == "all") return m.moe_layers;
        const size_t colon = s.find(':');
        if (colon == std::string::npos)
            throw Error(
                fmt::format("{}: layers '{}' is not \"a:b\" (inclusive block indices) or \"all\"", where, s));
        const int64_t a = parse_block(s.substr(0, colon), where, s),
                      b = parse_block(s.substr(colon + 1), where, s);
        if (a > b) throw Error(fmt::format("{}: layers '{}': the last block is before the first", where, s));
        if (b >= m.n_layer)
            throw Error(
                fmt::format("{}: layer {} out of range (model has blocks 0..{})", where, b, m.n_layer - 1));
        for (int64_t il = a; il <= b; ++il) out.push_back(il);
    } else if (as_int(j)) {
        out.push_back(*as_int(j));
    } else if (j.is_array()) {
        for (const auto & v : j) {
            if (!as_int(v)) throw Error(fmt::format("{}: layers list must hold integers", where));
            out.push_back(*as_int(v));
        }
    } else {
        throw Error(fmt::format("{}: \"layers\" is missing (\"a:b\", \"all\", an integer or a list)", where));
    }
    std::vector<int> blocks;
    for (const int64_t il : out) {
        if (il < 0 || il >= m.n_layer)
            throw Error(
                fmt::format("{}: layer {} out of range (model has blocks 0..{})", where, il, m.n_layer - 1));
        if (!std::binary_search(m.moe_layers.begin(), m.moe_layers.end(), (int)il))
            throw Error(fmt::format("{}: block {} has no router (MoE blocks: {})", where, il, m.moe_layers));
        if (std::find(blocks.begin(), blocks.end(), (int)il) != blocks.end())
            throw Error(fmt::format("{}: block {} is listed twice", where, il));
        blocks.push_back((int)il);
    }
    return blocks;
}

std::vector<int> expert_list(const nlohmann::json & j, const ModelInfo & m, const std::string & where) {
    if (!j.is_array()) throw Error(fmt::format("{}: experts must be a list of ids", where));
    std::vector<int> out;
    for (const auto & v : j) {
        const auto e = as_int(v);
        if (!e) throw Error(fmt::format("{}: expert ids must be integers, not {}", where, v.dump()));
        if (*e < 0 || *e >= m.n_expert)
            throw Error(
                fmt::format("{}: expert {} out of range (model has {} experts)", where, *e, m.n_expert));
        out.push_back((int)*e);
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

double number(const nlohmann::json & rule, const char * key, const std::string & where) {
    const auto & v = rule[key];
    if (!v.is_number() || !std::isfinite(v.get<double>()))
        throw Error(fmt::format("{}: \"{}\" must be a finite number", where, key));
    return v.get<double>();
}

// One block of a chen "coefficients" map, {"<expert>": s}: the experts (ascending) and their s.
std::pair<std::vector<int>, std::vector<double>> coefficient_map(const nlohmann::json & j,
                                                                 const ModelInfo & m,
                                                                 const std::string & where) {
    if (!j.is_object())
        throw Error(fmt::format("{}: a block of \"coefficients\" must be {{\"<expert>\": s}}", where));
    std::vector<std::pair<int, double>> v;
    for (auto it = j.begin(); it != j.end(); ++it) {
        const std::string & k = it.key();
        if (k.empty() || k.size() > 9 || k.find_first_not_of("0123456789") != std::string::npos)
            throw Error(
                fmt::format("{}: \"coefficients\" key \"{}\" is not an expert id", where, printable(k)));
        const int e = expert_list(nlohmann::json::array({std::stoi(k)}), m, where)[0];  // range check
        if (!it->is_number() || !std::isfinite(it->get<double>()))
            throw Error(fmt::format("{}: coefficient of expert {} must be a finite number", where, e));
        v.emplace_back(e, it->get<double>());
    }
    std::sort(v.begin(), v.end());
    std::pair<std::vector<int>, std::vector<double>> out;
    for (const auto & [e, s] : v) out.first.push_back(e), out.second.push_back(s);
    return out;
}

}  // namespace

SteerPlan steer_plan_from_json(const nlohmann::json & spec, const ModelInfo & m,
                               const std::string & base_dir) {
    if (!spec.is_object() || !spec.contains("rules") || !spec["rules"].is_array())
        throw Error("steering spec: expected an object with a \"rules\" list");
    check_keys(spec, {"seed", "experts_file", "rules"}, "steering spec");
    SteerPlan plan;
    if (spec.contains("seed")) {
        if (!spec["seed"].is_number_unsigned())
            throw Error("steering spec: \"seed\" must be a non-negative integer below 2^64");
        plan.seed = spec["seed"].get<uint64_t>();
    }
    plan.ops.assign(m.n_layer, {});
    nlohmann::json sets, coefficients;  // experts_file's "sets" and (method chen) "coefficients"
    if (spec.contains("experts_file")) {
        if (!spec["experts_file"].is_string())
            throw Error("steering spec: \"experts_file\" must be a file name (a string)");
        const fs::path p = fs::path(base_dir) / spec["experts_file"].get<std::string>();
        std::ifstream f(p);
        std::error_code ec;
        if (!f || !fs::is_regular_file(p, ec))
            throw Error(
                fmt::format("{}: not found (experts_file of the steering spec)", printable(p.string())));
        try {
            sets = nlohmann::json::parse(f);
        } catch (const nlohmann::json::exception & e) {
            throw Error(fmt::format("{}: not valid JSON: {} (write it with `routescope experts`)", p.string(),
                                    json_error_text(e.what())));
        }
        if (!sets.is_object() || !sets.contains("sets") || !sets["sets"].is_object())
            throw Error(
                fmt::format("{}: has no \"sets\" object (write it with `routescope experts`)", p.string()));
        if (sets.contains("coefficients")) coefficients = nlohmann::json(sets["coefficients"]);
        sets = nlohmann::json(sets["sets"]);
        for (auto it = sets.begin(); it != sets.end(); ++it)
            if (!it->is_object())
                throw Error(fmt::format("{}: set '{}' is not a {{\"<layer>\": [ids]}} object", p.string(),
                                        printable(it.key())));
    }
    for (size_t r = 0; r < spec["rules"].size(); ++r) {
        const auto & rule = spec["rules"][r];
        const std::string where = fmt::format("steering rule {}", r);
        if (!rule.is_object()) throw Error(fmt::format("{}: a rule must be an object", where));
        check_keys(rule,
                   {"layers", "experts", "set", "method", "lambda", "margin", "coefficients", "deactivate",
                    "deactivate_set"},
                   where);
        if (!rule.contains("method") || !rule["method"].is_string())
            throw Error(fmt::format(
                "{}: \"method\" must be \"soft\", \"force\", \"suppress\", \"chen\" or \"steermoe\"", where));
        const std::string method = rule["method"].get<std::string>();
        SteerOp base;
        // soft and chen: a required, bounded λ (hint: the values the method's authors use)
        auto lambda_of = [&](const char * name, const char * hint) {
            if (!rule.contains("lambda") || !rule["lambda"].is_number())
                throw Error(fmt::format("{}: method {} needs a numeric \"lambda\"{}", where, name, hint));
            const double l = number(rule, "lambda", where);
            if (std::fabs(l) > kMaxLambda)
                throw Error(fmt::format("{}: lambda {} is outside [-{}, {}] (steered logits would overflow)",
                                        where, l, kMaxLambda, kMaxLambda));
            return l;
        };
        if (method == "soft") {
            base.method = SteerMethod::soft;
            base.lambda = lambda_of("soft", "");
        } else if (method == "chen") {
            base.method = SteerMethod::chen;
            base.lambda = lambda_of("chen", " (the authors use 0.022 to 0.034)");
        } else if (method == "steermoe") {
            base.method = SteerMethod::steermoe;
        } else if (method == "force") {
            base.method = SteerMethod::force;
        } else if (method == "suppress") {
            base.method = SteerMethod::suppress;
            if (rule.contains("margin")) base.margin = number(rule, "margin", where);
            if (!(base.margin > 0) || base.margin > kMaxMargin)
                throw Error(fmt::format("{}: margin must be in (0, {}]", where, kMaxMargin));
        } else {
            throw Error(fmt::format("{}: method '{}' is not soft, force, suppress, chen or steermoe", where,
                                    printable(method)));
        }
        if (rule.contains("lambda") && base.method != SteerMethod::soft && base.method != SteerMethod::chen)
            throw Error(fmt::format("{}: \"lambda\" applies to methods soft and chen only", where));
        if (rule.contains("coefficients") && base.method != SteerMethod::chen)
            throw Error(fmt::format("{}: \"coefficients\" applies to method chen only", where));
        if ((rule.contains("deactivate") || rule.contains("deactivate_set")) &&
            base.method != SteerMethod::steermoe)
            throw Error(
                fmt::format("{}: \"deactivate\"/\"deactivate_set\" apply to method steermoe only", where));
        if (rule.contains("deactivate") && rule.contains("deactivate_set"))
            throw Error(fmt::format("{}: give either \"deactivate\" or \"deactivate_set\", not both", where));
        if (base.method == SteerMethod::chen && rule.contains("coefficients") &&
            (rule.contains("set") || rule.contains("experts")))
            throw Error(
                fmt::format("{}: method chen takes \"coefficients\" or \"set\"/\"experts\", not both "
                            "(the coefficients name the experts)",
                            where));
        if (rule.contains("margin") && base.method != SteerMethod::suppress)
            throw Error(fmt::format("{}: \"margin\" applies to method suppress only", where));
        if (rule.contains("set") && rule.contains("experts"))
            throw Error(fmt::format("{}: give either \"experts\" or \"set\", not both", where));
        for (const char * k : {"set", "deactivate_set"})
            if (rule.contains(k) && !rule[k].is_string())
                throw Error(fmt::format("{}: \"{}\" must be a set name (a string)", where, k));
        const bool named = rule.contains("set") || rule.contains("experts") ||
                           (base.method == SteerMethod::chen && rule.contains("coefficients"));
        if (!named && !(base.method == SteerMethod::steermoe &&
                        (rule.contains("deactivate") || rule.contains("deactivate_set"))))
            throw Error(fmt::format("{}: give \"experts\" or \"set\"", where));
        const auto layers =
            parse_layers(rule.contains("layers") ? rule["layers"] : nlohmann::json(), m, where);
        // The experts a rule names in block `key`: from a set of experts_file, a {"<layer>": [ids]} map or a
        // list (the same in every block).
        auto named_experts = [&](const char * list_key, const char * set_key, const std::string & key) {
            if (rule.contains(set_key)) {
                const auto name = rule[set_key].get<std::string>();
                if (sets.is_null())
                    throw Error(fmt::format("{}: \"{}\" needs \"experts_file\" in the spec", where, set_key));
                if (!sets.contains(name))
                    throw Error(fmt::format("{}: unknown expert set '{}'", where, printable(name)));
                return sets[name].contains(key) ? expert_list(sets[name][key], m, where) : std::vector<int>{};
            }
            if (!rule.contains(list_key)) return std::vector<int>{};
            if (rule[list_key].is_object())
                return rule[list_key].contains(key) ? expert_list(rule[list_key][key], m, where)
                                                    : std::vector<int>{};
            return expert_list(rule[list_key], m, where);
        };
        for (int il : layers) {
            const std::string key = std::to_string(il);
            std::vector<int> experts, off;
            std::vector<double> coef;
            if (base.method == SteerMethod::chen && rule.contains("coefficients")) {
                // {"<layer>": {"<expert>": s}}: the experts and their s in one map
                const auto & c = rule["coefficients"];
                if (!c.is_object())
                    throw Error(fmt::format(
                        "{}: \"coefficients\" must be {{\"<layer>\": {{\"<expert>\": s}}}}", where));
                if (c.contains(key)) std::tie(experts, coef) = coefficient_map(c[key], m, where);
            } else {
                experts = named_experts("experts", "set", key);
                if (base.method == SteerMethod::chen)  // s_e from experts_file's "coefficients"
                    for (int e : experts) {
                        const auto & c = coefficients.is_object() && coefficients.contains(key)
                                             ? coefficients[key]
                                             : nlohmann::json();
                        const std::string ek = std::to_string(e);
                        if (!c.is_object() || !c.contains(ek) || !c[ek].is_number() ||
                            !std::isfinite(c[ek].get<double>()))
                            throw Error(
                                fmt::format("{}: expert {} of block {} has no coefficient in experts_file's "
                                            "\"coefficients\" (write the file with `routescope experts "
                                            "--method chen`, or "
                                            "give the rule a \"coefficients\" map)",
                                            where, e, il));
                        coef.push_back(c[ek].get<double>());
                    }
            }
            if (base.method == SteerMethod::steermoe) {
                off = named_experts("deactivate", "deactivate_set", key);
                for (int e : off)
                    if (std::find(experts.begin(), experts.end(), e) != experts.end())
                        throw Error(fmt::format("{}: expert {} of block {} is both activated and deactivated",
                                                where, e, il));
            }
            if (experts.empty() && off.empty()) continue;  // a set may be empty in some layers
            // Allowed, as in the paper (Appendix A.6): the jitter ε then decides which k of them win.
            if (base.method == SteerMethod::force && (int)experts.size() > m.top_k)
                plan.warnings.push_back(fmt::format(
                    "{}: forcing {} experts in block {} but the model selects {}: only {} of them (by the "
                    "jitter ε) are selected per token",
                    where, experts.size(), il, m.top_k, m.top_k));
            SteerOp op = base;
            op.experts = experts;
            op.coef = coef;
            op.off = off;
            plan.ops[il].push_back(op);
        }
        for (const char * k : {"experts", "deactivate", "coefficients"})  // keys must name targeted blocks
            if (rule.contains(k) && rule[k].is_object())
                for (auto it = rule[k].begin(); it != rule[k].end(); ++it)
                    if (std::find(layers.begin(), layers.end(), std::atoi(it.key().c_str())) ==
                            layers.end() ||
                        std::to_string(std::atoi(it.key().c_str())) != it.key())
                        throw Error(
                            fmt::format("{}: \"{}\" names block \"{}\", which \"layers\" does not target",
                                        where, k, printable(it.key())));
    }
    if (plan.empty() && !spec["rules"].empty())
        throw Error("steering spec: every rule selects an empty expert set; nothing would be steered");
    return plan;
}

SteerPlan load_steer_plan(const std::string & path, const ModelInfo & m) {
    std::ifstream f(path);
    std::error_code ec;
    if (!f || !fs::is_regular_file(path, ec))
        throw Error(
            fmt::format("{}: steering spec not found or not a file (check the path)", printable(path)));
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(f);
    } catch (const nlohmann::json::exception & e) {
        throw Error(fmt::format("{}: steering spec is not valid JSON: {} (fix the file)", path,
                                json_error_text(e.what())));
    }
    try {
        return steer_plan_from_json(j, m, fs::path(path).parent_path().string());
    } catch (const Error & e) {
        throw Error(fmt::format("{}: {} (fix the spec; see `routescope steer --help`)", path, e.what()));
    }
}

// ε ~ N(0, σ²), σ = 1e-6, from two uniforms (Box–Muller) of a stream keyed by (seed, il, e, token).
static double force_jitter(uint64_t seed, int il, int e, uint64_t token_key) {
    SplitMix64 rng(derive_seed(seed, ((uint64_t)il << 32) | (uint32_t)e, token_key));
    const double u1 = ((double)(rng.next() >> 11) + 1.0) * 0x1p-53;  // (0, 1]
    const double u2 = (double)(rng.next() >> 11) * 0x1p-53;
    return 1e-6 * std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

// The authors' fixed offset above the maximum / below the minimum (SteerMoE, qwen3_moe.py: ± 0.01).
constexpr double kSteerMoeMargin = 0.01;

void steer_logits(std::span<float> z, std::span<const SteerOp> ops, uint64_t seed, int il,
                  uint64_t token_key) {
    const size_t E = z.size();
    for (const auto & op : ops) {
        switch (op.method) {
            case SteerMethod::soft: {  // z_k += λ·std(z), std over all E logits of this token
                double mean = 0, var = 0;
                for (float v : z) mean += v;
                mean /= (double)E;
                for (float v : z) var += ((double)v - mean) * ((double)v - mean);
                const double s = std::sqrt(var / (double)E);
                for (int e : op.experts) z[e] = (float)((double)z[e] + op.lambda * s);
                break;
            }
            case SteerMethod::force: {  // z_k = max(z) + ε
                const float zmax = *std::max_element(z.begin(), z.end());
                for (int e : op.experts) z[e] = (float)((double)zmax + force_jitter(seed, il, e, token_key));
                break;
            }
            case SteerMethod::suppress: {  // z_k = min(z) − margin (never −inf: NaN in softmax_topk)
                const float zmin = *std::min_element(z.begin(), z.end());
                for (int e : op.experts) z[e] = (float)((double)zmin - op.margin);
                break;
            }
            case SteerMethod::chen:  // z_k += λ·s_k·|z_k| (Chen et al., qwen3_moe.py Qwen3MoeSparseMoeBlock)
                for (size_t i = 0; i < op.experts.size(); ++i) {
                    const int e = op.experts[i];
                    z[e] = (float)((double)z[e] + op.lambda * op.coef[i] * std::fabs((double)z[e]));
                }
                break;
            case SteerMethod::steermoe: {
                // SteerMoE (github.com/adobe-research/SteerMoE; the fork JACKPURCELL/SteerMoE,
                // src/modeling_vllm/qwen3_moe.py): the router's logits become their log-softmax; activated
                // experts get its max + 0.01, deactivated ones its min − 0.01 (both of the unmodified row).
                // For softmax gating this is the same distribution as editing z itself; for other gatings
                // the log-softmax is what the gate then sees, as in the authors' code.
                double zmax = z[0];
                for (float v : z) zmax = std::max(zmax, (double)v);
                double sum = 0;
                for (float v : z) sum += std::exp((double)v - zmax);
                const double lse = zmax + std::log(sum);
                double lmax = -INFINITY, lmin = INFINITY;
                for (float & v : z) {
                    const double l = (double)v - lse;
                    lmax = std::max(lmax, l), lmin = std::min(lmin, l);
                    v = (float)l;
                }
                for (int e : op.experts) z[e] = (float)(lmax + kSteerMoeMargin);
                for (int e : op.off) z[e] = (float)(lmin - kSteerMoeMargin);
                break;
            }
        }
    }
}

}  // namespace rs
