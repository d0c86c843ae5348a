// Evaluation data set readers (routescope/datasets.h): MGSM, GSM8K, MMLU / Global-MMLU, Belebele, AlpaCare.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "routescope/common.h"
#include "routescope/datasets.h"
#include "routescope/languages.h"
#include "text_io.h"

namespace fs = std::filesystem;

namespace rs {
namespace {

// MGSM's languages, by the ISO 639-1 codes of its file names (mgsm_<code>.tsv).
const std::vector<std::string> kMgsmIso = {"bn", "de", "en", "es", "fr", "ja", "ru", "sw", "te", "th", "zh"};

std::string trim(std::string_view s) {
    const size_t b = s.find_first_not_of(" \t\r\n");
    return b == std::string_view::npos ? "" : std::string(s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1));
}

// "1,234" -> "1234"; accepts an optional sign and decimals, nothing else.
std::string parse_number(std::string_view s, const std::string & where) {
    std::string out;
    for (char ch : trim(s))
        if (ch != ',') out += ch;
    const size_t digits = out.starts_with('-') ? 1 : 0;
    const size_t dot = out.find('.');
    const bool ok =
        out.size() > digits && out.find_first_not_of("0123456789.", digits) == std::string::npos &&
        (dot == std::string::npos || (dot > digits && dot + 1 < out.size() && out.rfind('.') == dot));
    if (!ok) throw Error(fmt::format("{}: answer '{}' is not a number", where, s));
    return out;
}

// Runs f(json, "FILE:LINE") for every line of a jsonl file; JSON type errors become rs::Error naming the
// line.
template <class F>
void for_each_jsonl(const fs::path & path, std::string_view what, F && f) {
    const std::string text = read_text(path, what);
    const auto lines = split_lines(text);
    for (size_t i = 0; i < lines.size(); ++i) {
        const std::string where = fmt::format("{}: {}:{}", what, path.string(), i + 1);
        try {
            f(nlohmann::json::parse(lines[i]), where, i);
        } catch (const nlohmann::json::exception & e) {
            throw Error(
                fmt::format("{}: bad record: {} (fix the data file)", where, json_error_text(e.what())));
        }
    }
}

}  // namespace

std::vector<std::vector<std::string>> parse_csv(std::string_view text, const std::string & name) {
    std::vector<std::vector<std::string>> rows;
    size_t i = 0, line = 1;
    const size_t n = text.size();
    const auto at_record_end = [&] { return i == n || text[i] == '\n' || text.substr(i, 2) == "\r\n"; };
    while (i < n) {
        std::vector<std::string> row;
        for (;;) {
            std::string field;
            if (i < n && text[i] == '"') {
                const size_t start = line;
                for (++i;; ++i) {
                    if (i == n)
                        throw Error(fmt::format("csv: {}:{}: unterminated quoted field", name, start));
                    if (text[i] == '"' && (i + 1 == n || text[i + 1] != '"')) break;
                    if (text[i] == '"') ++i;  // "" -> "
                    if (text[i] == '\n') ++line;
                    field += text[i];
                }
                ++i;
                if (!at_record_end() && text[i] != ',')
                    throw Error(fmt::format("csv: {}:{}: text after a closing quote", name, line));
            } else {
                for (; !at_record_end() && text[i] != ','; ++i) {
                    if (text[i] == '"')
                        throw Error(fmt::format("csv: {}:{}: stray '\"' in an unquoted field", name, line));
                    field += text[i];
                }
            }
            row.push_back(std::move(field));
            if (i < n && text[i] == ',') {
                ++i;
                continue;
            }
            i += i == n ? 0 : text[i] == '\n' ? 1 : 2;
            ++line;
            break;
        }
        rows.push_back(std::move(row));
    }
    return rows;
}

std::vector<std::string> mgsm_languages() {
    std::vector<std::string> langs;
    for (const auto & iso : kMgsmIso) langs.push_back(flores_code(iso));
    std::sort(langs.begin(), langs.end());
    return langs;
}

std::vector<MathItem> load_mgsm(const std::string & dir, const std::string & lang) {
    const std::string code = flores_code(lang), iso = iso_code(code);
    if (std::find(kMgsmIso.begin(), kMgsmIso.end(), iso) == kMgsmIso.end())
        throw Error(
            fmt::format("mgsm: unknown language '{}' (MGSM has en bn de es fr ja ru sw te th zh)", lang));
    const fs::path path = fs::path(dir) / fmt::format("mgsm_{}.tsv", iso);
    const std::string text = read_text(path, "mgsm");
    const auto lines = split_lines(text);
    std::vector<MathItem> items;
    for (size_t i = 0; i < lines.size(); ++i) {
        const std::string where = fmt::format("mgsm: {}:{}", path.string(), i + 1);
        const size_t tab = lines[i].find('\t');
        if (tab == std::string_view::npos || lines[i].find('\t', tab + 1) != std::string_view::npos)
            throw Error(fmt::format("{}: expected question TAB answer", where));
        MathItem m{fmt::format("mgsm/{}/{}", code, i), code, trim(lines[i].substr(0, tab)),
                   parse_number(lines[i].substr(tab + 1), where), ""};
        if (m.question.empty()) throw Error(fmt::format("{}: empty question", where));
        items.push_back(std::move(m));
    }
    if (items.empty()) throw Error(fmt::format("mgsm: {} has no rows", path.string()));
    return items;
}

std::vector<MathItem> load_gsm8k(const std::string & file) {
    std::vector<MathItem> items;
    const std::string stem = fs::path(file).stem().string();
    for_each_jsonl(file, "gsm8k", [&](const nlohmann::json & j, const std::string & where, size_t i) {
        const std::string answer = j.at("answer").get<std::string>();
        const size_t mark = answer.rfind("####");
        if (mark == std::string::npos) throw Error(fmt::format("{}: answer lacks the final '#### N'", where));
        items.push_back({fmt::format("gsm8k/{}/{}", stem, i), "eng_Latn",
                         trim(j.at("question").get<std::string>()),
                         parse_number(std::string_view(answer).substr(mark + 4), where),
                         trim(std::string_view(answer).substr(0, mark))});
    });
    if (items.empty()) throw Error(fmt::format("gsm8k: {} has no rows", file));
    return items;
}

const std::vector<std::string> & mmlu_medical_subjects() {
    static const std::vector<std::string> subjects = {
        "clinical_knowledge", "college_medicine",      "human_aging", "medical_genetics",
        "nutrition",          "professional_medicine", "virology"};
    return subjects;
}

std::vector<McItem> load_mmlu(const std::string & dir, const std::string & subject,
                              const std::string & split) {
    const std::string name = fmt::format("{}_{}.csv", subject, split);
    fs::path path = fs::path(dir) / split / name;
    std::error_code ec;
    if (!fs::exists(path, ec)) path = fs::path(dir) / name;
    const auto rows = parse_csv(read_text(path, "mmlu"), path.string());
    std::vector<McItem> items;
    for (size_t i = 0; i < rows.size(); ++i) {
        const auto & r = rows[i];
        const std::string where = fmt::format("mmlu: {} record {}", path.string(), i);
        if (r.size() != 6) throw Error(fmt::format("{}: expected 6 fields, got {}", where, r.size()));
        const std::string letter = trim(r[5]);
        if (letter.size() != 1 || letter[0] < 'A' || letter[0] > 'D')
            throw Error(fmt::format("{}: answer '{}' is not A-D", where, r[5]));
        items.push_back({fmt::format("mmlu/{}/{}/{}", split, subject, i),
                         "eng_Latn",
                         subject,
                         "",
                         trim(r[0]),
                         {trim(r[1]), trim(r[2]), trim(r[3]), trim(r[4])},
                         letter[0] - 'A'});
    }
    if (items.empty()) throw Error(fmt::format("mmlu: {} has no rows", path.string()));
    return items;
}

std::vector<McItem> select_global_mmlu_sample(std::span<const McItem> items,
                                              const std::string & indices_file) {
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(read_text(indices_file, "global-mmlu"));
    } catch (const nlohmann::json::exception & e) {
        throw Error(fmt::format("{}: bad JSON: {} (global-mmlu indices file)", indices_file,
                                json_error_text(e.what())));
    }
    if (!j.is_object() || j.empty())
        throw Error(fmt::format("global-mmlu: {}: expected {{subject: [row index, ...]}}", indices_file));
    std::map<std::string, const McItem *> by_id;
    for (const McItem & it : items) by_id[it.id] = &it;
    std::vector<McItem> out;
    for (const auto & [subject, indices] : j.items()) {
        if (!indices.is_array())
            throw Error(fmt::format("global-mmlu: {}: '{}' is not a list", indices_file, subject));
        for (const auto & idx : indices) {
            const auto hit = idx.is_number_integer()
                                 ? by_id.find(fmt::format("mmlu/test/{}/{}", subject, idx.get<int64_t>()))
                                 : by_id.end();
            if (hit == by_id.end()) {
                const auto n_rows = std::count_if(items.begin(), items.end(),
                                                  [&](const McItem & it) { return it.subject == subject; });
                throw Error(fmt::format("global-mmlu: {}: index {} out of range for {} ({} test rows given)",
                                        indices_file, idx.dump(), subject, n_rows));
            }
            out.push_back(*hit->second);
        }
    }
    return out;
}

std::vector<McItem> load_global_mmlu_medical(const std::string & mmlu_dir, const std::string & indices_file) {
    std::vector<McItem> all;
    for (const auto & subject : mmlu_medical_subjects()) {
        auto items = load_mmlu(mmlu_dir, subject, "test");
        all.insert(all.end(), std::make_move_iterator(items.begin()), std::make_move_iterator(items.end()));
    }
    return select_global_mmlu_sample(all, indices_file);
}

std::vector<McItem> load_global_mmlu_csv(const std::string & file, const std::string & lang) {
    const auto rows = parse_csv(read_text(file, "global-mmlu"), file);
    if (rows.empty()) throw Error(fmt::format("global-mmlu: {} is empty", file));
    const auto & head = rows[0];
    const auto col = [&](const char * name) {
        const auto it = std::find(head.begin(), head.end(), name);
        if (it == head.end())
            throw Error(
                fmt::format("global-mmlu: {}: no '{}' column (expected the CohereForAI/Global-MMLU "
                            "columns sample_id, subject, question, option_a..option_d, answer)",
                            file, name));
        return (size_t)(it - head.begin());
    };
    const size_t c_id = col("sample_id"), c_subject = col("subject"), c_q = col("question"),
                 c_a = col("option_a"), c_b = col("option_b"), c_c = col("option_c"), c_d = col("option_d"),
                 c_ans = col("answer");
    std::map<std::string, int64_t> next_row;  // per subject: running row index when sample_id has none
    std::vector<McItem> items;
    for (size_t i = 1; i < rows.size(); ++i) {
        const auto & r = rows[i];
        const std::string where = fmt::format("global-mmlu: {} record {}", file, i);
        if (r.size() != head.size())
            throw Error(fmt::format("{}: {} fields, the header has {}", where, r.size(), head.size()));
        const std::string subject = trim(r[c_subject]), letter = trim(r[c_ans]);
        if (letter.size() != 1 || letter[0] < 'A' || letter[0] > 'D')
            throw Error(fmt::format("{}: answer '{}' is not A-D", where, r[c_ans]));
        // sample_id is "<subject>/<split>/<row>" (the MMLU row): keep that row so ids match English MMLU
        int64_t row = next_row[subject]++;
        std::string split = "test";
        const std::string sid = trim(r[c_id]);
        const size_t s1 = sid.find('/'), s2 = sid.rfind('/');
        if (s1 != std::string::npos && s2 > s1 && sid.substr(0, s1) == subject) {
            split = sid.substr(s1 + 1, s2 - s1 - 1);
            try {
                row = std::stoll(sid.substr(s2 + 1));
            } catch (const std::exception &) {
                throw Error(fmt::format("{}: sample_id '{}' does not end in a row number", where, sid));
            }
        }
        items.push_back({fmt::format("mmlu/{}/{}/{}", split, subject, row),
                         lang,
                         subject,
                         "",
                         trim(r[c_q]),
                         {trim(r[c_a]), trim(r[c_b]), trim(r[c_c]), trim(r[c_d])},
                         letter[0] - 'A'});
    }
    if (items.empty()) throw Error(fmt::format("global-mmlu: {} has no rows", file));
    return items;
}

std::vector<McItem> load_belebele(const std::string & file) {
    std::vector<McItem> items;
    const std::string stem = fs::path(file).stem().string();
    for_each_jsonl(file, "belebele", [&](const nlohmann::json & j, const std::string & where, size_t i) {
        if (j.contains("flores_passage")) {  // the original release: one question per line
            const std::string lang = j.value("dialect", stem);
            McItem m{fmt::format("belebele/{}/{}", lang, i),
                     lang,
                     "",
                     trim(j.at("flores_passage").get<std::string>()),
                     trim(j.at("question").get<std::string>()),
                     {},
                     -1};
            for (int a = 1; a <= 4; ++a)
                m.options.push_back(trim(j.at(fmt::format("mc_answer{}", a)).get<std::string>()));
            const auto & c = j.at("correct_answer_num");
            const int num = c.is_string() ? std::atoi(c.get<std::string>().c_str()) : c.get<int>();
            if (num < 1 || num > 4)
                throw Error(fmt::format("{}: correct_answer_num {} is not 1-4", where, c.dump()));
            m.gold = num - 1;
            items.push_back(std::move(m));
            return;
        }
        const auto meta = j.find("metadata");
        const std::string lang =
            meta != j.end() && meta->contains("extra") ? meta->at("extra").value("language", stem) : stem;
        const std::string passage = trim(j.at("text").get<std::string>());
        const auto & questions = j.at("items");
        for (size_t q = 0; q < questions.size(); ++q) {
            McItem m{fmt::format("belebele/{}/{}/{}", lang, i, q),         lang, "", passage,
                     trim(questions[q].at("question").get<std::string>()), {},   -1};
            for (const auto & a : questions[q].at("answers")) {
                if (a.at("correct").get<bool>()) {
                    if (m.gold >= 0)
                        throw Error(fmt::format("{}: question {} has two correct answers", where, q));
                    m.gold = static_cast<int>(m.options.size());
                }
                m.options.push_back(trim(a.at("text").get<std::string>()));
            }
            if (m.gold < 0) throw Error(fmt::format("{}: question {} has no correct answer", where, q));
            items.push_back(std::move(m));
        }
    });
    if (items.empty()) throw Error(fmt::format("belebele: {} has no questions", file));
    return items;
}

std::vector<InstructionItem> load_alpacare(const std::string & file) {
    std::vector<InstructionItem> items;
    for_each_jsonl(file, "alpacare", [&](const nlohmann::json & j, const std::string & where, size_t) {
        const auto & id = j.at("id");
        InstructionItem it{"alpacare/" + (id.is_string() ? id.get<std::string>() : id.dump()), "eng_Latn",
                           trim(j.at("instruction").get<std::string>())};
        if (it.instruction.empty()) throw Error(fmt::format("{}: empty instruction", where));
        items.push_back(std::move(it));
    });
    if (items.empty()) throw Error(fmt::format("alpacare: {} has no rows", file));
    return items;
}

}  // namespace rs
