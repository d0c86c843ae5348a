// Inside the report: the tables read from a run directory and the Vega-Lite figure builders.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace rs::report {

using nlohmann::json;

// A CSV file as written by analyze/experts/compare: a header and string cells.
struct Table {
    std::string path;
    std::vector<std::string> header;
    std::vector<std::vector<std::string>> rows;

    int col(const std::string & name) const;  // -1 when absent
    // Rows as JSON objects with the named columns; a cell that parses as a number becomes one (rounded to
    // five significant digits), an empty cell becomes null (the CSVs leave undefined values empty, never
    // NaN).
    json records(const std::vector<std::string> & columns) const;
};

// Everything the figures are drawn from; a missing input stays empty.
struct Inputs {
    std::optional<Table> divergence, entropy, consistency, pairwise, isolation, experts, compare;
    std::optional<Table> chen, rise;       // `experts --method chen | rise` tables
    std::optional<Table> finetune;         // finetune_ppl.csv: condition,seed,lang,bpc,… (RISE finetuning)
    json clusters, summary, experts_json;  // null when absent
    json chen_json, rise_json;             // their experts.json (params, zones)
    std::map<std::string, double> scores;  // lang -> score (--scores)
    std::vector<std::string> files;        // paths read
};

// One figure of the page: a Vega-Lite spec, or null with the reason it is absent.
struct Figure {
    std::string id, section, title, caption;
    json spec;            // null when absent
    std::string missing;  // why absent
};

// The figures in page order (present or absent).
std::vector<Figure> build_figures(const Inputs & in);

}  // namespace rs::report
