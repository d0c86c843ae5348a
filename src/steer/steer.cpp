// Router steering: spec parsing/validation and the per-token logit operations (see steer.h).
#include "routescope/steer.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numbers>
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
        for (const auto & op : block) ids.insert(op.experts.begin(), op.experts.end());
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
    }
    return "?";
}

nlohmann::json SteerPlan::to_json() const {
    nlohmann::json rules = nlohmann::json::array();
    for (size_t il = 0; il < ops.size(); ++il)
        for (const auto & op : ops[il])
            rules.push_back({{"layer", il},
                             {"method", method_name(op.method)},
                             {"lambda", op.lambda},
                             {"margin", op.margin},
                             {"experts", op.experts}});
    return {{"seed", seed}, {"ops", rules}};
}

namespace {

std::vector<int> parse_layers(const nlohmann::json & j, const ModelInfo & m, const std::string & where) {
    std::vector<int> out;
    if (j.is_string()) {
        const auto s = j.get<std::string>();
        if (s == "all") return m.moe_layers;
        int a = -1, b = -1;
        char extra = 0;
        if (std::sscanf(s.c_str(), "%d:%d%c", &a, &b, &extra) != 2 || a > b)
            throw Error(
                fmt::format("{}: layers '{}' is not \"a:b\" (inclusive block indices) or \"all\"", where, s));
        for (int il = a; il <= b; ++il) out.push_back(il);
    } else if (j.is_number_integer()) {
        out.push_back(j.get<int>());
    } else if (j.is_array()) {
        for (const auto & v : j) {
            if (!v.is_number_integer()) throw Error(fmt::format("{}: layers list must hold integers", where));
            out.push_back(v.get<int>());
        }
    } else {
        throw Error(fmt::format("{}: \"layers\" is missing (\"a:b\", \"all\", an integer or a list)", where));
    }
    for (int il : out) {
        if (il < 0 || il >= m.n_layer)
            throw Error(
                fmt::format("{}: layer {} out of range (model has blocks 0..{})", where, il, m.n_layer - 1));
        if (!std::binary_search(m.moe_layers.begin(), m.moe_layers.end(), il))
            throw Error(fmt::format("{}: block {} has no router (MoE blocks: {})", where, il, m.moe_layers));
    }
    return out;
}

std::vector<int> expert_list(const nlohmann::json & j, const ModelInfo & m, const std::string & where) {
    if (!j.is_array()) throw Error(fmt::format("{}: experts must be a list of ids", where));
    std::vector<int> out;
    for (const auto & v : j) {
        if (!v.is_number_integer()) throw Error(fmt::format("{}: expert ids must be integers", where));
        const int e = v.get<int>();
        if (e < 0 || e >= m.n_expert)
            throw Error(
                fmt::format("{}: expert {} out of range (model has {} experts)", where, e, m.n_expert));
        out.push_back(e);
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

}  // namespace

SteerPlan steer_plan_from_json(const nlohmann::json & spec, const ModelInfo & m,
                               const std::string & base_dir) {
    if (!spec.is_object() || !spec.contains("rules") || !spec["rules"].is_array())
        throw Error("steering spec: expected an object with a \"rules\" list");
    SteerPlan plan;
    plan.seed = spec.value("seed", uint64_t{0});
    plan.ops.assign(m.n_layer, {});
    nlohmann::json sets;
    if (spec.contains("experts_file")) {
        const fs::path p = fs::path(base_dir) / spec["experts_file"].get<std::string>();
        std::ifstream f(p);
        if (!f) throw Error(fmt::format("steering spec: experts_file {} not found", p.string()));
        try {
            sets = nlohmann::json::parse(f).at("sets");
        } catch (const nlohmann::json::exception & e) {
            throw Error(fmt::format("steering spec: {} has no readable \"sets\" ({})", p.string(), e.what()));
        }
    }
    for (size_t r = 0; r < spec["rules"].size(); ++r) {
        const auto & rule = spec["rules"][r];
        const std::string where = fmt::format("steering rule {}", r);
        const std::string method = rule.value("method", "");
        SteerOp base;
        if (method == "soft") {
            base.method = SteerMethod::soft;
            if (!rule.contains("lambda") || !rule["lambda"].is_number())
                throw Error(fmt::format("{}: method soft needs a numeric \"lambda\"", where));
            base.lambda = rule["lambda"].get<double>();
        } else if (method == "force") {
            base.method = SteerMethod::force;
        } else if (method == "suppress") {
            base.method = SteerMethod::suppress;
            base.margin = rule.value("margin", 1.0);
            if (!(base.margin > 0)) throw Error(fmt::format("{}: margin must be > 0", where));
        } else {
            throw Error(fmt::format("{}: method '{}' is not soft, force or suppress", where, method));
        }
        const auto layers =
            parse_layers(rule.contains("layers") ? rule["layers"] : nlohmann::json(), m, where);
        for (int il : layers) {
            const std::string key = std::to_string(il);
            std::vector<int> experts;
            if (rule.contains("set")) {
                const auto name = rule["set"].get<std::string>();
                if (sets.is_null())
                    throw Error(fmt::format("{}: \"set\" needs \"experts_file\" in the spec", where));
                if (!sets.contains(name))
                    throw Error(fmt::format("{}: unknown expert set '{}'", where, name));
                if (sets[name].contains(key)) experts = expert_list(sets[name][key], m, where);
            } else if (rule.contains("experts") && rule["experts"].is_object()) {
                if (rule["experts"].contains(key)) experts = expert_list(rule["experts"][key], m, where);
            } else if (rule.contains("experts")) {
                experts = expert_list(rule["experts"], m, where);
            } else {
                throw Error(fmt::format("{}: give \"experts\" or \"set\"", where));
            }
            if (experts.empty()) continue;  // a set may be empty in some layers
            // Allowed, as in the paper (Appendix A.6): the jitter ε then decides which k of them win.
            if (base.method == SteerMethod::force && (int)experts.size() > m.top_k)
                plan.warnings.push_back(fmt::format(
                    "{}: forcing {} experts in block {} but the model selects {}: only {} of them (by the "
                    "jitter ε) are selected per token",
                    where, experts.size(), il, m.top_k, m.top_k));
            SteerOp op = base;
            op.experts = experts;
            plan.ops[il].push_back(op);
        }
    }
    if (plan.empty() && !spec["rules"].empty())
        throw Error("steering spec: every rule selects an empty expert set; nothing would be steered");
    return plan;
}

SteerPlan load_steer_plan(const std::string & path, const ModelInfo & m) {
    std::ifstream f(path);
    if (!f) throw Error(fmt::format("steering spec {} not found", path));
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(f);
    } catch (const nlohmann::json::exception & e) {
        throw Error(fmt::format("steering spec {} is not valid JSON ({})", path, e.what()));
    }
    return steer_plan_from_json(j, m, fs::path(path).parent_path().string());
}

// ε ~ N(0, σ²), σ = 1e-6, from two uniforms (Box–Muller) of a stream keyed by (seed, il, e, token).
static double force_jitter(uint64_t seed, int il, int e, uint64_t token_key) {
    SplitMix64 rng(derive_seed(seed, ((uint64_t)il << 32) | (uint32_t)e, token_key));
    const double u1 = ((double)(rng.next() >> 11) + 1.0) * 0x1p-53;  // (0, 1]
    const double u2 = (double)(rng.next() >> 11) * 0x1p-53;
    return 1e-6 * std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

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
        }
    }
}

}  // namespace rs
