// The report's figures as Vega-Lite specifications (https://vega.github.io/vega-lite/), data inlined.
// Nothing is drawn by hand: every mark, scale and legend is Vega-Lite's. The figure numbers cite
// Bandarkar et al. 2025 (Figs. 2–5, A.9, Table 2); the isolation and clustering views are ours
// (docs/metrics.md). Readability at 24 languages × 48 layers: lines are selected from the legend (the others
// fade), the heatmap and Δ views show one layer at a time behind a slider, so no view draws more than one
// layer's matrix.
#include <fmt/format.h>
#include <algorithm>
#include <map>
#include <set>

#include "report_internal.h"

namespace rs::report {
namespace {

constexpr const char * kSchema = "https://vega.github.io/schema/vega-lite/v6.json";

json base_spec(const std::string & title, const std::string & subtitle) {
    json s = {{"$schema", kSchema}, {"title", {{"text", title}, {"anchor", "start"}}}};
    if (!subtitle.empty()) s["title"]["subtitle"] = subtitle;
    s["config"] = {{"font", "DejaVu Sans, Helvetica, Arial, sans-serif"},
                   {"view", {{"stroke", nullptr}}},
                   {"axis", {{"labelFontSize", 11}, {"titleFontSize", 12}}},
                   {"legend", {{"labelFontSize", 11}, {"titleFontSize", 12}}}};
    return s;
}

std::string pivot_of(const Inputs & in) {
    return in.summary.is_object() && in.summary.contains("pivot") ? in.summary["pivot"].get<std::string>()
                                                                  : std::string("eng_Latn");
}

// The detected (or given) middle-layer range of `analyze`, as block indices; nullopt when unknown.
std::optional<std::pair<int, int>> middle_of(const Inputs & in) {
    if (!in.summary.is_object() || !in.summary.contains("middle_layers") ||
        !in.summary["middle_layers"].is_object())
        return std::nullopt;
    const auto & m = in.summary["middle_layers"];
    return std::pair{m["first"].get<int>(), m["last"].get<int>()};
}

json layer_axis(const json & values) {
    int lo = 0, hi = 0;
    bool first = true;
    for (const auto & v : values)
        if (v.contains("layer") && v["layer"].is_number()) {
            const int l = v["layer"].get<int>();
            lo = first ? l : std::min(lo, l), hi = first ? l : std::max(hi, l), first = false;
        }
    return {{"field", "layer"},
            {"type", "quantitative"},
            {"title", "layer"},
            {"scale", {{"domain", {lo - 0.5, hi + 0.5}}, {"nice", false}, {"zero", false}}},
            {"axis", {{"tickMinStep", 1}, {"format", "d"}, {"grid", false}}}};
}

// Shaded band over the middle layers (the paper marks them by eye; analyze finds them, Eq. 2 curve).
json middle_band(const Inputs & in) {
    const auto mid = middle_of(in);
    if (!mid) return nullptr;
    return {{"data",
             {{"values",
               {{{"first", mid->first - 0.5}, {"last", mid->second + 0.5}, {"label", "middle layers"}}}}}},
            {"mark", {{"type", "rect"}, {"color", "#9aa5b1"}, {"opacity", 0.18}}},
            {"encoding",
             {{"x", {{"field", "first"}, {"type", "quantitative"}}},
              {"x2", {{"field", "last"}}},
              {"tooltip", {{{"field", "label"}, {"type", "nominal"}}}}}}};
}

size_t distinct(const json & values, const char * field) {
    std::set<std::string> s;
    for (const auto & v : values) s.insert(v[field].dump());
    return s.size();
}

json lang_color(size_t n_langs) {
    return {{"field", "lang"},
            {"type", "nominal"},
            {"title", "language"},
            {"scale", {{"scheme", n_langs > 10 ? "category20" : "tableau10"}}},
            {"legend", {{"columns", n_langs > 16 ? 2 : 1}, {"symbolLimit", 0}}}};
}

// One line per language over the layers (Figs. 2–4). With ci, a band from ci_lo to ci_hi; with a
// score per language, lines are coloured by it (Fig. 2) and selected by clicking, else by the legend.
json per_layer_lines(const Inputs & in, const std::string & title, const std::string & subtitle, json values,
                     const std::string & y, const std::string & y_title, bool ci) {
    const bool scored = !in.scores.empty();
    if (scored) {
        for (auto & v : values) {
            const auto it = in.scores.find(v["lang"].get<std::string>());
            v["score"] = it == in.scores.end() ? json(nullptr) : json(it->second);
        }
    }
    const size_t n_langs = distinct(values, "lang");
    json s = base_spec(title, subtitle);
    s["width"] = 620;
    s["height"] = 340;
    s["data"] = {{"values", values}};
    const json color = scored ? json{{"field", "score"},
                                     {"type", "quantitative"},
                                     {"title", "score"},
                                     {"scale", {{"scheme", "viridis"}}}}
                              : lang_color(n_langs);
    const json fade = {{"condition", {{"param", "pick"}, {"value", 1}}}, {"value", 0.12}};
    json tooltip = {{{"field", "lang"}, {"type", "nominal"}},
                    {{"field", "layer"}, {"type", "quantitative"}},
                    {{"field", y}, {"type", "quantitative"}, {"format", ".4f"}, {"title", y_title}}};
    if (ci) {
        tooltip.push_back(
            {{"field", "ci_lo"}, {"type", "quantitative"}, {"format", ".4f"}, {"title", "95% CI low"}});
        tooltip.push_back(
            {{"field", "ci_hi"}, {"type", "quantitative"}, {"format", ".4f"}, {"title", "95% CI high"}});
    }
    if (scored) tooltip.push_back({{"field", "score"}, {"type", "quantitative"}});
    json layers = json::array();
    if (auto band = middle_band(in); !band.is_null()) layers.push_back(band);
    if (ci)
        layers.push_back(
            {{"mark", {{"type", "area"}, {"opacity", 0.13}}},
             {"encoding",
              {{"x", layer_axis(values)},
               {"y", {{"field", "ci_lo"}, {"type", "quantitative"}}},
               {"y2", {{"field", "ci_hi"}}},
               {"detail", {{"field", "lang"}}},
               {"color", color},
               {"opacity", {{"condition", {{"param", "pick"}, {"value", 0.13}}}, {"value", 0.02}}}}}});
    json pick = {{"name", "pick"}, {"select", {{"type", "point"}, {"fields", {"lang"}}}}};
    if (!scored) pick["bind"] = "legend";
    layers.push_back(
        {{"params", {pick}},
         {"mark", {{"type", "line"}, {"point", {{"size", 18}}}, {"strokeWidth", 1.6}}},
         {"encoding",
          {{"x", layer_axis(values)},
           // divergence reads against 0 (= routed like the pivot); the others by their spread
           {"y", {{"field", y}, {"type", "quantitative"}, {"title", y_title}, {"scale", {{"zero", ci}}}}},
           {"detail", {{"field", "lang"}}},
           {"color", color},
           {"opacity", fade},
           {"tooltip", tooltip}}}});
    s["layer"] = layers;
    return s;
}

Figure absent(std::string id, std::string section, std::string title, std::string missing) {
    return {std::move(id), std::move(section), std::move(title), "", nullptr, std::move(missing)};
}

// ---- Fig. 2: divergence from the pivot ------------------------------------------------------------
Figure divergence_figure(const Inputs & in) {
    const std::string id = "divergence", sec = "Divergence from the pivot";
    const std::string pivot = pivot_of(in);
    const std::string title = fmt::format("Routing divergence from {} per layer", pivot);
    if (!in.divergence) return absent(id, sec, title, "no divergence.csv (run `routescope analyze`)");
    json values = json::array();
    for (auto & r :
         in.divergence->records({"lang", "layer", "div", "ci_lo", "ci_hi", "n_pairs", "n_undefined"}))
        if (r["lang"] != pivot && !r["div"].is_null()) values.push_back(std::move(r));
    if (values.empty()) return absent(id, sec, title, "divergence.csv has no language besides the pivot");
    Figure f{id, sec, title, "", nullptr, ""};
    f.caption = fmt::format(
        "Entropy-normalised Jensen–Shannon divergence between the routing distributions of parallel "
        "sentences in each language and {} (Bandarkar et al. 2025, Eq. 2 and Fig. 2), mean over sentence "
        "pairs with a 95% bootstrap CI band. The shaded band is the middle-layer range. Click a legend "
        "entry to pick a language (shift-click for more).",
        pivot);
    f.spec = per_layer_lines(in, title, "mean over parallel sentences, 95% bootstrap CI", values, "div",
                             "divergence from " + pivot, true);
    return f;
}

// ---- Figs. 3–4: entropy and consistency --------------------------------------------------------------
// One column of an analyze CSV per language and layer as lines; the figure id, the file stem and the
// column name are the same word ("entropy", "consistency").
struct ColumnFigureText {
    const char *id, *title, *subtitle, *y_title, *caption;
};

Figure per_layer_column_figure(const Inputs & in, const std::optional<Table> & table,
                               const ColumnFigureText & t) {
    const std::string sec = "Entropy and consistency";
    if (!table) return absent(t.id, sec, t.title, fmt::format("no {}.csv (run `routescope analyze`)", t.id));
    Figure f{t.id, sec, t.title, t.caption, nullptr, ""};
    f.spec = per_layer_lines(in, t.title, t.subtitle, table->records({"lang", "layer", t.id}), t.id,
                             t.y_title, false);
    return f;
}

Figure entropy_figure(const Inputs & in) {
    return per_layer_column_figure(
        in, in.entropy,
        {"entropy", "Routing entropy per layer", "mean over tokens of H(p_t), nats", "routing entropy (nats)",
         "Routing entropy: mean over the tokens of a language of H(p_t), the entropy of the router's "
         "distribution over the E experts, in nats (at most log E; Bandarkar et al. 2025, §4.4 and Fig. 3). "
         "Low values: the router is confident."});
}

Figure consistency_figure(const Inputs & in) {
    return per_layer_column_figure(
        in, in.consistency,
        {"consistency", "Token routing consistency per layer", "Jaccard of top-k sets of token pairs",
         "top-k consistency",
         "Token routing consistency: per sequence, the mean Jaccard overlap of the top-k expert sets of "
         "random token pairs, averaged over the sequences of a language (Bandarkar et al. 2025, §4.4 and "
         "Fig. 4): how consistently a language is routed to the same experts."});
}

// ---- Fig. A.9 and Fig. 5: specialised experts -------------------------------------------------------
double tau_of(const Inputs & in) {
    return in.experts_json.is_object() && in.experts_json.contains("tau")
               ? in.experts_json["tau"].get<double>()
               : 0.3;
}

Figure expert_delta_figure(const Inputs & in) {
    const std::string id = "expert_delta", sec = "Specialised experts",
                      title = "Δ activation frequency per expert";
    if (!in.experts) return absent(id, sec, title, "no experts CSV (run `routescope experts`)");
    json values = in.experts->records({"layer", "expert", "delta", "selected", "target"});
    if (values.empty()) return absent(id, sec, title, "the experts CSV has no rows");
    std::vector<std::string> targets;
    int lo = 1 << 30, hi = -1;
    for (const auto & v : values) {
        const auto t = v["target"].is_string() ? v["target"].get<std::string>() : v["target"].dump();
        if (std::find(targets.begin(), targets.end(), t) == targets.end()) targets.push_back(t);
        lo = std::min(lo, v["layer"].get<int>()), hi = std::max(hi, v["layer"].get<int>());
    }
    const auto mid = middle_of(in);
    const int start = mid ? std::clamp(mid->first, lo, hi) : lo;
    const double tau = tau_of(in);
    Figure f{id, sec, title, "", nullptr, ""};
    f.caption = fmt::format(
        "Δ of activation frequency of every expert of one layer, target corpus minus baseline (Bandarkar "
        "et al. 2025, Eq. 3 and Fig. A.9); experts above τ = {} (dashed) are selected for steering. Pick "
        "the layer with the slider and the target with the menu.",
        tau);
    json s = base_spec(title, fmt::format("selected: Δ > τ = {}", tau));
    s["width"] = 620;
    s["height"] = 260;
    s["params"] = {
        {{"name", "layer_sel"},
         {"value", start},
         {"bind", {{"input", "range"}, {"min", lo}, {"max", hi}, {"step", 1}, {"name", "layer "}}}},
        {{"name", "target_sel"},
         {"value", targets.front()},
         {"bind", {{"input", "select"}, {"options", targets}, {"name", "target "}}}}};
    s["data"] = {{"values", values}};
    s["transform"] = {{{"filter", "datum.layer == layer_sel && datum.target == target_sel"}},
                      {{"calculate", "datum.selected == 1 ? 'selected' : 'not selected'"}, {"as", "status"}}};
    s["layer"] = {
        {{"mark", {{"type", "bar"}}},
         {"encoding",
          {{"x", {{"field", "expert"}, {"type", "ordinal"}, {"title", "expert"}}},
           {"y", {{"field", "delta"}, {"type", "quantitative"}, {"title", "Δ activation frequency"}}},
           {"color",
            {{"field", "status"},
             {"type", "nominal"},
             {"title", nullptr},
             {"scale", {{"domain", {"selected", "not selected"}}, {"range", {"#d62728", "#9aa5b1"}}}}}},
           {"tooltip",
            {{{"field", "expert"}, {"type", "ordinal"}},
             {{"field", "delta"}, {"type", "quantitative"}, {"format", ".4f"}, {"title", "Δ"}},
             {{"field", "target"}, {"type", "nominal"}}}}}}},
        {{"mark", {{"type", "rule"}, {"strokeDash", {4, 3}}, {"color", "#333"}}},
         {"encoding", {{"y", {{"datum", tau}}}}}}};
    f.spec = s;
    return f;
}

Figure experts_per_layer_figure(const Inputs & in) {
    const std::string id = "experts_per_layer", sec = "Specialised experts",
                      title = "Selected experts per layer";
    if (!in.experts) return absent(id, sec, title, "no experts CSV (run `routescope experts`)");
    // Union over targets per layer: the multilingual set of `experts --multilingual` (docs/metrics.md).
    std::map<int, std::set<int>> sel;
    std::map<int, int> all;
    for (const auto & v : in.experts->records({"layer", "expert", "selected"})) {
        const int l = v["layer"].get<int>();
        all[l];
        if (v["selected"] == 1) sel[l].insert(v["expert"].get<int>());
    }
    json values = json::array();
    for (const auto & [l, _] : all) values.push_back({{"layer", l}, {"n", sel[l].size()}});
    Figure f{id, sec, title, "", nullptr, ""};
    f.caption = fmt::format(
        "Number of experts with Δ > τ = {} for at least one target, per layer (Bandarkar et al. 2025, "
        "Fig. 5): where language-specific experts concentrate.",
        tau_of(in));
    json s = base_spec(title, "union over the targets");
    s["width"] = 620;
    s["height"] = 220;
    s["data"] = {{"values", values}};
    json layers = json::array();
    if (auto band = middle_band(in); !band.is_null()) layers.push_back(band);
    const double bar = std::max(2.0, 480.0 / (double)std::max<size_t>(values.size(), 1));
    layers.push_back(
        {{"mark", {{"type", "bar"}, {"color", "#4c78a8"}, {"size", bar}}},
         {"encoding",
          {{"x", layer_axis(values)},
           {"y", {{"field", "n"}, {"type", "quantitative"}, {"title", "selected experts"}}},
           {"tooltip",
            {{{"field", "layer"}, {"type", "quantitative"}}, {{"field", "n"}, {"type", "quantitative"}}}}}}});
    s["layer"] = layers;
    f.spec = s;
    return f;
}

// ---- Chen et al. 2026: shared and language-exclusive experts ---------------------------------------------
Figure chen_figure(const Inputs & in) {
    const std::string id = "chen_sets", sec = "Shared and exclusive experts (Chen et al.)",
                      title = "Shared and language-exclusive experts per layer";
    if (!in.chen) return absent(id, sec, title, "no `experts --method chen` table");
    std::map<std::pair<std::string, int>, int> n;  // (language or "shared", layer) -> experts
    std::map<int, std::set<int>> shared;
    for (const auto & r : in.chen->records({"layer", "expert", "lang", "shared", "exclusive"})) {
        const int l = r["layer"].get<int>();
        n[{r["lang"].get<std::string>(), l}] += r["exclusive"] == 1;
        if (r["shared"] == 1) shared[l].insert(r["expert"].get<int>());
        n[{"shared", l}];
    }
    if (n.empty()) return absent(id, sec, title, "the chen table has no rows");
    json values = json::array();
    for (const auto & [key, count] : n)
        values.push_back({{"lang", key.first},
                          {"layer", key.second},
                          {"experts", key.first == "shared" ? (int)shared[key.second].size() : count}});
    const json p = in.chen_json.is_object() ? in.chen_json.value("params", json::object()) : json::object();
    const std::string params = p.contains("top") ? fmt::format("top-{} per language, θ = {}",
                                                               p.value("top", 0), p.value("threshold", 0.0))
                                                 : "";
    Figure f{id, sec, title, "", nullptr, ""};
    f.caption = fmt::format(
        "Per layer, the experts exclusive to each language (its share of the expert's top-k frequency above "
        "θ) "
        "and the shared experts (some share > 0, every share below θ; line \"shared\"), as Chen et al. 2026 "
        "define them in their code (intervention/vllm_intervention_flores.py; {}). Their finding: "
        "high-resource languages lean on shared experts, low-resource ones on exclusive experts.",
        params.empty() ? "parameters in the experts JSON" : params);
    f.spec = per_layer_lines(in, title, params, values, "experts", "experts", false);
    return f;
}

// ---- RISE (Zheng et al. 2026): zones and the selected subnetwork ------------------------------------------
Figure rise_figure(const Inputs & in) {
    const std::string id = "rise_subnetwork", sec = "RISE subnetwork (Zheng et al.)",
                      title = "RISE zones and selected experts";
    if (!in.rise) return absent(id, sec, title, "no `experts --method rise` table");
    json values = in.rise->records({"zone", "layer", "expert", "score", "specificity", "overlap"});
    if (values.empty()) return absent(id, sec, title, "the rise table selects no expert");
    const json zone_color = {
        {"field", "zone"},
        {"type", "nominal"},
        {"title", "zone"},
        {"scale", {{"domain", {"shallow", "middle", "deep"}}, {"range", {"#4c78a8", "#f58518", "#54a24b"}}}}};
    json layers = json::array();
    std::string target, subtitle;
    if (in.rise_json.is_object() && in.rise_json.contains("zones") && in.rise_json["zones"].is_object()) {
        json bands = json::array();
        for (const char * z : {"shallow", "middle", "deep"}) {
            const json b = in.rise_json["zones"].value(z, json::array());
            if (!b.is_array() || b.empty()) continue;
            bands.push_back(
                {{"zone", z}, {"first", b.front().get<int>() - 0.5}, {"last", b.back().get<int>() + 0.5}});
        }
        layers.push_back({{"data", {{"values", bands}}},
                          {"mark", {{"type", "rect"}, {"opacity", 0.12}}},
                          {"encoding",
                           {{"x", {{"field", "first"}, {"type", "quantitative"}}},
                            {"x2", {{"field", "last"}}},
                            {"color", zone_color},
                            {"tooltip", {{{"field", "zone"}, {"type", "nominal"}}}}}}});
        const json p = in.rise_json.value("params", json::object());
        target = p.value("target_lang", "");
        subtitle =
            fmt::format("target {}, K = {}, α = {}", target, p.value("budget", 0), p.value("alpha", 0.0));
    }
    layers.push_back(
        {{"mark", {{"type", "square"}, {"size", 60}, {"opacity", 0.9}}},
         {"encoding",
          {{"x", layer_axis(values)},
           {"y", {{"field", "expert"}, {"type", "quantitative"}, {"title", "expert"}}},
           {"color", zone_color},
           {"tooltip",
            {{{"field", "zone"}, {"type", "nominal"}},
             {{"field", "layer"}, {"type", "quantitative"}},
             {{"field", "expert"}, {"type", "quantitative"}},
             {{"field", "score"}, {"type", "quantitative"}, {"format", ".4f"}, {"title", "composite score"}},
             {{"field", "specificity"}, {"type", "quantitative"}, {"format", ".4f"}},
             {{"field", "overlap"}, {"type", "quantitative"}, {"format", ".4f"}}}}}}});
    Figure f{id, sec, title, "", nullptr, ""};
    f.caption =
        "The expert subnetwork RISE selects for fine-tuning (Zheng et al. 2026, Algorithm 1, as "
        "rise/expert_selector.py computes it): layers split into shallow, middle and deep zones by depth "
        "(shaded); in the shallow and deep zones the experts with the highest composite specificity "
        "S·(1 + α·a) for the target language, in the middle zone those with the highest composite overlap "
        "O·(1 + α·ā), each zone's budget ranked across all its layers.";
    json s = base_spec(title, subtitle);
    s["width"] = 620;
    s["height"] = 300;
    s["data"] = {{"values", values}};
    s["layer"] = layers;
    f.spec = s;
    return f;
}

// ---- RISE finetuning: held-out bits per character against the base model ----------------------------------
// Per condition and language the change of bits per character from the base model (negative: better), the
// mean over seeds as a bar and every seed as a point, so that seed noise is visible next to the effect.
Figure finetune_figure(const Inputs & in) {
    const std::string id = "rise_finetune", sec = "RISE subnetwork (Zheng et al.)",
                      title = "Finetuning: change in held-out bits per character";
    if (!in.finetune) return absent(id, sec, title, "no finetune_ppl.csv (`routescope demo --finetune`)");
    const Table & t = *in.finetune;
    const int c_cond = t.col("condition"), c_seed = t.col("seed"), c_lang = t.col("lang"),
              c_bpc = t.col("bpc");
    std::map<std::string, double> base;
    for (const auto & r : t.rows)
        if (r[(size_t)c_cond] == "base" && !r[(size_t)c_bpc].empty())
            base[r[(size_t)c_lang]] = std::stod(r[(size_t)c_bpc]);
    json points = json::array();
    std::map<std::pair<std::string, std::string>, std::pair<double, int>> sums;  // (cond, lang) -> Σ Δ, n
    for (const auto & r : t.rows) {
        const auto &cond = r[(size_t)c_cond], &lang = r[(size_t)c_lang];
        if (cond == "base" || r[(size_t)c_bpc].empty() || !base.contains(lang)) continue;
        const double d = std::stod(r[(size_t)c_bpc]) - base[lang];
        points.push_back({{"condition", cond}, {"seed", r[(size_t)c_seed]}, {"lang", lang}, {"delta", d}});
        auto & s = sums[{cond, lang}];
        s.first += d, ++s.second;
    }
    if (points.empty())
        return absent(id, sec, title, "finetune_ppl.csv has no finetuned condition with a base");
    json means = json::array();
    for (const auto & [k, s] : sums)
        means.push_back(
            {{"condition", k.first}, {"lang", k.second}, {"delta", s.first / s.second}, {"n", s.second}});
    const json x = {{"field", "lang"}, {"type", "nominal"}, {"title", nullptr}};
    const json y = {{"field", "delta"}, {"type", "quantitative"}, {"title", "Δ bits per character vs base"}};
    const json color = {
        {"field", "condition"},
        {"type", "nominal"},
        {"title", "trained"},
        {"scale", {{"domain", {"rise", "random", "all"}}, {"range", {"#f58518", "#4c78a8", "#9d9d9d"}}}}};
    const json offset = {{"field", "condition"}};
    json s = base_spec(title, "mean over seeds (bars), each seed (points)");
    s["width"] = 620;
    s["height"] = 280;
    s["layer"] = {{{"data", {{"values", means}}},
                   {"mark", {{"type", "bar"}, {"opacity", 0.7}}},
                   {"encoding",
                    {{"x", x},
                     {"xOffset", offset},
                     {"y", y},
                     {"color", color},
                     {"tooltip",
                      {{{"field", "condition"}},
                       {{"field", "lang"}},
                       {{"field", "delta"}, {"type", "quantitative"}, {"format", "+.4f"}},
                       {{"field", "n"}, {"title", "seeds"}}}}}}},
                  {{"data", {{"values", points}}},
                   {"mark", {{"type", "point"}, {"filled", true}, {"color", "black"}, {"size", 18}}},
                   {"encoding", {{"x", x}, {"xOffset", offset}, {"y", y}, {"detail", color}}}}};
    Figure f{id, sec, title, "", nullptr, ""};
    f.caption =
        "Held-out FLoRes devtest bits per character of every language after `routescope finetune` on the "
        "target "
        "language, minus the base model's (negative is better): RISE's selected experts (rise), a random "
        "subnetwork with as many experts in every block (random), every expert (all); attention, norms, "
        "embeddings and routers frozen in each. Bits per character, unlike per-token perplexity, compare "
        "across scripts. RISE's claim: large gains in the target, little change elsewhere.";
    f.spec = s;
    return f;
}

// ---- language × language divergence and its clustering -------------------------------------------------
// Dendrogram segments of an average-linkage merge list (clusters.json: leaves 0..n-1, merge m makes
// node n+m), laid out over the leaf order: leaf x = rank + 0.5, node x = mean of its children, y = the
// merge distance. The segments are data for Vega-Lite rule marks.
json dendrogram_segments(const json & layer) {
    const auto langs = layer["langs"].get<std::vector<std::string>>();
    const auto order = layer["leaf_order"].get<std::vector<std::string>>();
    const size_t n = langs.size();
    std::vector<double> x(2 * n, 0), y(2 * n, 0);
    for (size_t i = 0; i < n; ++i)
        x[i] = (double)(std::find(order.begin(), order.end(), langs[i]) - order.begin()) + 0.5;
    json seg = json::array();
    const int l = layer["layer"].get<int>();
    size_t node = n;
    for (const auto & m : layer["merges"]) {
        if (node >= 2 * n) break;
        const size_t a = m["a"].get<size_t>(), b = m["b"].get<size_t>();
        const double h = m["distance"].get<double>();
        x[node] = (x[a] + x[b]) / 2, y[node] = h;
        for (size_t c : {a, b})
            seg.push_back({{"layer", l}, {"x", x[c]}, {"x2", x[c]}, {"y", y[c]}, {"y2", h}});
        seg.push_back({{"layer", l}, {"x", x[a]}, {"x2", x[b]}, {"y", h}, {"y2", h}});
        ++node;
    }
    return seg;
}

Figure pairwise_figure(const Inputs & in) {
    const std::string id = "pairwise", sec = "Language structure",
                      title = "Language × language routing divergence and clustering";
    if (!in.pairwise) return absent(id, sec, title, "no pairwise.csv (run `routescope analyze`)");
    if (!in.clusters.is_object())
        return absent(id, sec, title, "no clusters.json (run `routescope analyze`)");
    // rank of each language in the dendrogram's leaf order of its layer, so the heatmap follows the tree
    std::map<int, std::map<std::string, int>> rank;
    json segs = json::array();
    for (const auto & layer : in.clusters["layers"]) {
        const auto order = layer["leaf_order"].get<std::vector<std::string>>();
        for (size_t i = 0; i < order.size(); ++i) rank[layer["layer"].get<int>()][order[i]] = (int)i;
        for (auto & s : dendrogram_segments(layer)) segs.push_back(std::move(s));
    }
    // One row per (layer, lang_a) holding the row of the matrix as arrays (lang_b as an index into
    // lang_names), which Vega-Lite's flatten transform turns into cells: a fifth of the bytes of one object
    // per cell at 24 languages × 48 layers.
    std::vector<std::string> names;
    auto name_index = [&](const std::string & n) {
        const auto it = std::find(names.begin(), names.end(), n);
        if (it != names.end()) return (int)(it - names.begin());
        names.push_back(n);
        return (int)names.size() - 1;
    };
    std::map<std::pair<int, std::string>, json> row_of;
    int lo = 1 << 30, hi = -1;
    size_t n_langs = 0;
    for (const auto & r : in.pairwise->records({"layer", "lang_a", "lang_b", "div"})) {
        const int l = r["layer"].get<int>();
        const auto & rk = rank[l];
        const auto a = rk.find(r["lang_a"].get<std::string>()), b = rk.find(r["lang_b"].get<std::string>());
        if (a == rk.end() || b == rk.end()) continue;
        json & row = row_of[{l, a->first}];
        if (row.is_null())
            row = {{"layer", l},          {"lang_a", a->first},  {"ra", a->second},
                   {"ib", json::array()}, {"rb", json::array()}, {"div", json::array()}};
        row["ib"].push_back(name_index(b->first)), row["rb"].push_back(b->second),
            row["div"].push_back(r["div"]);
        n_langs = std::max(n_langs, rk.size());
        lo = std::min(lo, l), hi = std::max(hi, l);
    }
    json cells = json::array();
    for (auto & [_, row] : row_of) cells.push_back(std::move(row));
    if (cells.empty()) return absent(id, sec, title, "pairwise.csv and clusters.json share no layer");
    const auto mid = middle_of(in);
    const int start = mid ? std::clamp(mid->first, lo, hi) : lo;
    const int side = (int)std::clamp<size_t>(n_langs * 22, 220, 620);
    Figure f{id, sec, title, "", nullptr, ""};
    f.caption =
        "Divergence (Eq. 2) between every pair of languages in one layer, rows and columns in the leaf "
        "order of the average-linkage clustering drawn above (clusters.json). Pick the layer with the "
        "slider.";
    json s = base_spec(title, "one layer at a time; the tree orders rows and columns");
    s["params"] = {
        {{"name", "layer_sel"},
         {"value", start},
         {"bind", {{"input", "range"}, {"min", lo}, {"max", hi}, {"step", 1}, {"name", "layer "}}}},
        {{"name", "lang_names"}, {"value", names}}};
    // leaves at rank + 0.5 on [0, n]: the centres of the heatmap's bands below (no padding)
    const json x_tree = {{"field", "x"},
                         {"type", "quantitative"},
                         {"scale", {{"domain", {0, n_langs}}, {"nice", false}}},
                         {"axis", nullptr}};
    json tree = {{"width", side},
                 {"height", 110},
                 {"data", {{"values", segs}}},
                 {"transform", {{{"filter", "datum.layer == layer_sel"}}}},
                 {"mark", {{"type", "rule"}, {"color", "#333"}}},
                 {"encoding",
                  {{"x", x_tree},
                   {"x2", {{"field", "x2"}}},
                   {"y", {{"field", "y"}, {"type", "quantitative"}, {"title", "merge distance"}}},
                   {"y2", {{"field", "y2"}}}}}};
    const json sort_a = {{"field", "ra"}, {"op", "min"}}, sort_b = {{"field", "rb"}, {"op", "min"}};
    json heat = {{"width", side},
                 {"height", side},
                 {"data", {{"values", cells}}},
                 {"transform",
                  {{{"filter", "datum.layer == layer_sel"}},
                   {{"flatten", {"ib", "rb", "div"}}},
                   {{"calculate", "lang_names[datum.ib]"}, {"as", "lang_b"}}}},
                 {"mark", {{"type", "rect"}}},
                 {"encoding",
                  {{"x",
                    {{"field", "lang_a"},
                     {"type", "ordinal"},
                     {"sort", sort_a},
                     {"title", nullptr},
                     {"scale", {{"paddingInner", 0}, {"paddingOuter", 0}}},
                     {"axis", {{"labelAngle", -50}}}}},
                   {"y", {{"field", "lang_b"}, {"type", "ordinal"}, {"sort", sort_b}, {"title", nullptr}}},
                   {"color",
                    {{"field", "div"},
                     {"type", "quantitative"},
                     {"title", "divergence"},
                     {"scale", {{"scheme", "viridis"}}}}},
                   {"tooltip",
                    {{{"field", "lang_a"}, {"type", "nominal"}},
                     {{"field", "lang_b"}, {"type", "nominal"}},
                     {{"field", "div"}, {"type", "quantitative"}, {"format", ".4f"}}}}}}};
    s["vconcat"] = {tree, heat};
    s["spacing"] = 4;
    f.spec = s;
    return f;
}

// ---- routing isolation -------------------------------------------------------------------------------
Figure isolation_figure(const Inputs & in) {
    const std::string id = "isolation", sec = "Routing isolation", title = "Routing isolation per layer";
    if (!in.isolation) return absent(id, sec, title, "no isolation.csv (run `routescope analyze`)");
    // mean over the other languages: every pair counts for both of its languages
    std::map<std::pair<std::string, int>, std::pair<double, int>> sum;  // (lang, layer) -> (sum, n)
    for (const auto & r : in.isolation->records({"layer", "lang_a", "lang_b", "isolation"})) {
        if (r["isolation"].is_null() || r["lang_a"] == r["lang_b"]) continue;
        for (const char * side : {"lang_a", "lang_b"}) {
            auto & [total, n] = sum[{r[side].get<std::string>(), r["layer"].get<int>()}];
            total += r["isolation"].get<double>(), ++n;
        }
    }
    json values = json::array();
    for (const auto & [key, acc] : sum)
        values.push_back({{"lang", key.first},
                          {"layer", key.second},
                          {"isolation", acc.first / acc.second},
                          {"n", acc.second}});
    if (values.empty()) return absent(id, sec, title, "isolation.csv has no pair of two languages");
    Figure f{id, sec, title, "", nullptr, ""};
    f.caption =
        "Jaccard overlap of the top-activated expert sets of a language and each other language, averaged "
        "over the other languages (RISE-style operationalisation, ours; docs/metrics.md): low overlap means "
        "the language is routed to experts of its own.";
    f.spec = per_layer_lines(in, title, "mean Jaccard overlap with the other languages", values, "isolation",
                             "overlap of top expert sets", false);
    return f;
}

// ---- Table 2 as charts: base vs steered --------------------------------------------------------------
json compare_values(const Inputs & in) {
    json values = json::array();
    for (auto & r : in.compare->records(
             {"task", "lang", "n", "base", "steered", "delta", "ci_lo", "ci_hi", "p_mcnemar"}))
        if (!r["base"].is_null() && !r["steered"].is_null()) values.push_back(std::move(r));
    return values;
}

Figure steering_accuracy_figure(const Inputs & in) {
    const std::string id = "steering_accuracy", sec = "Steering",
                      title = "Base vs steered accuracy per language";
    if (!in.compare) return absent(id, sec, title, "no compare.csv (run `routescope compare` or `sweep`)");
    json values = compare_values(in);
    if (values.empty()) return absent(id, sec, title, "compare.csv has no language with both runs");
    json folded = json::array();
    for (const auto & v : values)
        for (const char * run : {"base", "steered"})
            folded.push_back({{"task", v["task"]},
                              {"lang", v["lang"]},
                              {"run", run},
                              {"accuracy", v[run]},
                              {"n", v["n"]}});
    Figure f{id, sec, title, "", nullptr, ""};
    f.caption =
        "Accuracy of the unsteered and the steered model on the same items (Bandarkar et al. 2025, Table 2), "
        "one row per task; AVG rows are unweighted means over languages.";
    json s = base_spec(title, "");
    s["data"] = {{"values", folded}};
    s["mark"] = {{"type", "bar"}};
    s["width"] = {{"step", 11}};
    s["height"] = 180;
    s["encoding"] = {{"row", {{"field", "task"}, {"type", "nominal"}, {"title", nullptr}}},
                     {"x",
                      {{"field", "lang"},
                       {"type", "nominal"},
                       {"title", nullptr},
                       {"sort", nullptr},
                       {"axis", {{"labelAngle", -50}}}}},
                     {"xOffset", {{"field", "run"}}},
                     {"y", {{"field", "accuracy"}, {"type", "quantitative"}, {"axis", {{"format", ".0%"}}}}},
                     {"color",
                      {{"field", "run"},
                       {"type", "nominal"},
                       {"title", nullptr},
                       {"scale", {{"range", {"#9aa5b1", "#4c78a8"}}}}}},
                     {"tooltip",
                      {{{"field", "task"}, {"type", "nominal"}},
                       {{"field", "lang"}, {"type", "nominal"}},
                       {{"field", "run"}, {"type", "nominal"}},
                       {{"field", "accuracy"}, {"type", "quantitative"}, {"format", ".1%"}},
                       {{"field", "n"}, {"type", "quantitative"}}}}};
    s["resolve"] = {{"scale", {{"x", "independent"}}}};
    f.spec = s;
    return f;
}

Figure steering_delta_figure(const Inputs & in) {
    const std::string id = "steering_delta", sec = "Steering", title = "Effect of steering per language";
    if (!in.compare) return absent(id, sec, title, "no compare.csv (run `routescope compare` or `sweep`)");
    json values = compare_values(in);
    if (values.empty()) return absent(id, sec, title, "compare.csv has no language with both runs");
    Figure f{id, sec, title, "", nullptr, ""};
    f.caption =
        "Steered minus base accuracy with its 95% paired bootstrap CI; p is McNemar's exact test on the "
        "discordant items (averages: sign test over languages).";
    json s = base_spec(title, "Δ accuracy, 95% paired bootstrap CI");
    s["data"] = {{"values", values}};
    s["height"] = 180;
    s["width"] = {{"step", 16}};
    const json x = {{"field", "lang"},
                    {"type", "nominal"},
                    {"title", nullptr},
                    {"sort", nullptr},
                    {"axis", {{"labelAngle", -50}}}};
    s["facet"] = {{"row", {{"field", "task"}, {"type", "nominal"}, {"title", nullptr}}}};
    s["spec"] = {{"layer",
                  {{{"mark", {{"type", "rule"}, {"color", "#4c78a8"}}},
                    {"encoding",
                     {{"x", x},
                      {"y",
                       {{"field", "ci_lo"},
                        {"type", "quantitative"},
                        {"title", "Δ accuracy"},
                        {"axis", {{"format", "+.0%"}}}}},
                      {"y2", {{"field", "ci_hi"}}}}}},
                   {{"mark", {{"type", "point"}, {"filled", true}, {"color", "#4c78a8"}}},
                    {"encoding",
                     {{"x", x},
                      {"y", {{"field", "delta"}, {"type", "quantitative"}}},
                      {"tooltip",
                       {{{"field", "lang"}, {"type", "nominal"}},
                        {{"field", "delta"}, {"type", "quantitative"}, {"format", "+.1%"}},
                        {{"field", "ci_lo"}, {"type", "quantitative"}, {"format", "+.1%"}},
                        {{"field", "ci_hi"}, {"type", "quantitative"}, {"format", "+.1%"}},
                        {{"field", "p_mcnemar"}, {"type", "quantitative"}, {"format", ".3g"}}}}}}},
                   {{"mark", {{"type", "rule"}, {"color", "#888"}, {"strokeDash", {3, 3}}}},
                    {"encoding", {{"y", {{"datum", 0}}}}}}}}};
    s["resolve"] = {{"scale", {{"x", "independent"}}}};
    f.spec = s;
    return f;
}

}  // namespace

std::vector<Figure> build_figures(const Inputs & in) {
    return {divergence_figure(in),
            entropy_figure(in),
            consistency_figure(in),
            expert_delta_figure(in),
            experts_per_layer_figure(in),
            pairwise_figure(in),
            isolation_figure(in),
            chen_figure(in),
            rise_figure(in),
            finetune_figure(in),
            steering_accuracy_figure(in),
            steering_delta_figure(in)};
}

}  // namespace rs::report
