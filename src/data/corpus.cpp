// Corpus loading (routescope/corpus.h): FLoRes-200 split directories and plain TSV / JSONL files.
#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "routescope/common.h"
#include "routescope/corpus.h"
#include "text_io.h"

namespace fs = std::filesystem;

namespace rs {
namespace {

enum class Kind { flores, tsv, jsonl };

struct Source {
    Kind kind;
    fs::path path;
};

Source parse_spec(const std::string & spec) {
    const std::string_view s = spec;
    if (s.starts_with("flores:")) return {Kind::flores, spec.substr(7)};
    if (s.starts_with("tsv:")) return {Kind::tsv, spec.substr(4)};
    if (s.starts_with("jsonl:")) return {Kind::jsonl, spec.substr(6)};
    if (s.ends_with(".tsv")) return {Kind::tsv, spec};
    if (s.ends_with(".jsonl")) return {Kind::jsonl, spec};
    std::error_code ec;
    if (fs::is_directory(spec, ec)) return {Kind::flores, spec};
    throw Error(
        fmt::format("corpus '{}' is not a directory, .tsv or .jsonl (use flores:DIR, tsv:F, jsonl:F)", spec));
}

std::vector<std::string_view> split_tabs(std::string_view line) {
    std::vector<std::string_view> out;
    for (size_t pos = 0;;) {
        const size_t tab = line.find('\t', pos);
        out.push_back(line.substr(pos, tab == std::string_view::npos ? std::string_view::npos : tab - pos));
        if (tab == std::string_view::npos) return out;
        pos = tab + 1;
    }
}

bool parse_int(std::string_view s, int64_t & v) {
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    return ec == std::errc() && p == s.data() + s.size();
}

std::vector<std::string> select_langs(const std::vector<std::string> & available, const CorpusOptions & opt,
                                      const std::string & spec) {
    if (opt.langs.empty()) return available;
    std::set<std::string> seen;
    for (const auto & l : opt.langs) {
        if (!std::binary_search(available.begin(), available.end(), l)) {
            const size_t n = std::min<size_t>(available.size(), 6);
            const std::vector<std::string> some(available.begin(), available.begin() + n);
            throw Error(fmt::format("unknown language '{}' in {} (available: {}{}; {} in all)", l, spec,
                                    some.empty() ? "none" : fmt::format("{}", fmt::join(some, ", ")),
                                    n < available.size() ? ", ..." : "", available.size()));
        }
        if (!seen.insert(l).second) throw Error(fmt::format("language '{}' requested twice for {}", l, spec));
    }
    return opt.langs;
}

// ---- FLoRes-200 ----

struct FloresDir {
    std::string split;                        // "dev" or "devtest", from the file extension
    std::map<std::string, fs::path> files;    // long code -> file
    std::map<std::string, int64_t> expected;  // long code -> line count from CODE_MAP.tsv
};

FloresDir scan_flores(const fs::path & dir) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec))
        throw Error(fmt::format(
            "flores: no such directory {} (e.g. data/flores200/devtest of the repository)", dir.string()));
    FloresDir fd;
    std::map<std::string, fs::path> by_name;
    std::set<std::string> splits;
    for (const auto & e : fs::directory_iterator(dir, ec)) {
        const std::string ext = e.path().extension().string();
        if (ext != ".dev" && ext != ".devtest") continue;
        splits.insert(ext.substr(1));
        by_name[e.path().filename().string()] = e.path();
    }
    if (ec) throw Error(fmt::format("flores: cannot list {}: {}", dir.string(), ec.message()));
    if (splits.empty()) throw Error(fmt::format("flores: no *.dev or *.devtest files in {}", dir.string()));
    if (splits.size() > 1)
        throw Error(
            fmt::format("flores: {} mixes .dev and .devtest files (one split per dir)", dir.string()));
    fd.split = *splits.begin();
    const fs::path map_path = dir / "CODE_MAP.tsv";
    if (!fs::exists(map_path, ec)) {
        for (const auto & [name, path] : by_name) fd.files[path.stem().string()] = path;
        return fd;
    }
    const std::string text = read_text(map_path, "flores");
    const auto lines = split_lines(text);
    std::set<std::string> used;
    for (size_t i = 0; i < lines.size(); ++i) {
        const auto f = split_tabs(lines[i]);
        const std::string where = fmt::format("{}:{}", map_path.string(), i + 1);
        if (f.size() < 2 || f[0].empty() || f[1].empty())
            throw Error(fmt::format("flores: {}: expected long_code TAB file [TAB n_lines TAB note]", where));
        const std::string code(f[0]), file(f[1]);
        if (!by_name.count(file))
            throw Error(fmt::format("flores: {}: {} is not in {}", where, file, dir.string()));
        if (!fd.files.emplace(code, by_name[file]).second)
            throw Error(fmt::format("flores: {}: code {} is mapped twice", where, code));
        used.insert(file);
        if (f.size() >= 3 && !f[2].empty() && !parse_int(f[2], fd.expected[code]))
            throw Error(fmt::format("flores: {}: bad line count '{}'", where, f[2]));
    }
    for (const auto & [name, path] : by_name)
        if (!used.count(name))
            throw Error(fmt::format("flores: {} has no line for {} (add: long_code TAB {})",
                                    map_path.string(), name, name));
    return fd;
}

Corpus load_flores(const std::string & spec, const fs::path & dir, const CorpusOptions & opt) {
    const FloresDir fd = scan_flores(dir);
    std::vector<std::string> available;
    for (const auto & [code, path] : fd.files) available.push_back(code);
    for (const auto & l : opt.langs)  // a short OPUS code (eng for eng.dev) gets a pointed hint
        for (const auto & [code, path] : fd.files)
            if (path.stem() == l && code != l)
                throw Error(fmt::format("unknown language '{}' in {} (use the long code: {} is {})", l, spec,
                                        path.filename().string(), code));
    Corpus c{spec, select_langs(available, opt, spec), {}};
    const size_t nl = c.langs.size();
    std::vector<std::string> texts(nl);
    std::vector<std::vector<std::string_view>> lines(nl);
    for (size_t i = 0; i < nl; ++i) {
        const fs::path & path = fd.files.at(c.langs[i]);
        texts[i] = read_text(path, "flores");
        lines[i] = split_lines(texts[i]);
        const auto exp = fd.expected.find(c.langs[i]);
        if (exp != fd.expected.end() && exp->second != static_cast<int64_t>(lines[i].size()))
            throw Error(fmt::format("flores: {} has {} lines but CODE_MAP.tsv says {}", path.string(),
                                    lines[i].size(), exp->second));
        if (lines[i].size() != lines[0].size())
            throw Error(fmt::format(
                "flores: unequal line counts: {} has {} lines but {} has {} (must be parallel)",
                fd.files.at(c.langs[0]).string(), lines[0].size(), path.string(), lines[i].size()));
    }
    size_t n_groups = lines[0].size();
    if (opt.limit >= 0) n_groups = std::min(n_groups, static_cast<size_t>(opt.limit));
    if (n_groups == 0) throw Error(fmt::format("empty corpus: {} (no lines, or --limit 0)", spec));
    c.seqs.reserve(n_groups * nl);
    for (size_t g = 0; g < n_groups; ++g)
        for (size_t i = 0; i < nl; ++i)
            c.seqs.push_back({fmt::format("flores/{}/{}/{}", fd.split, c.langs[i], g), c.langs[i], "flores",
                              static_cast<int64_t>(g), std::string(lines[i][g])});
    return c;
}

// ---- TSV / JSONL ----

void check_row(const Sequence & s, const std::string & where, std::unordered_set<std::string> & ids) {
    const auto nonempty = [&](const std::string & v, const char * name) {
        if (v.empty()) throw Error(fmt::format("{}: empty {} (fill it in or remove the row)", where, name));
    };
    nonempty(s.id, "id");
    nonempty(s.lang, "lang");
    nonempty(s.text, "text");
    for (const auto & [v, name] : {std::pair{&s.id, "id"}, {&s.lang, "lang"}, {&s.domain, "domain"}})
        if (!is_valid_utf8(*v))
            throw Error(
                fmt::format("{}: the {} is not valid UTF-8 (re-encode the file as UTF-8)", where, name));
    for (const auto & [v, name] : {std::pair{&s.id, "id"}, {&s.lang, "lang"}, {&s.domain, "domain"}})
        if (std::any_of(v->begin(), v->end(), [](char c) { return (unsigned char)c < 0x20 || c == 0x7f; }))
            throw Error(
                fmt::format("{}: the {} contains a control character (ids, languages and domains are "
                            "names on one line)",
                            where, name));
    if (s.group < -1)
        throw Error(fmt::format("{}: bad group {} (0-based, or -1 for unpaired)", where, s.group));
    if (!ids.insert(s.id).second) throw Error(fmt::format("{}: duplicate id '{}'", where, printable(s.id)));
}

std::vector<Sequence> read_tsv(const fs::path & path) {
    const std::string text = read_text(path, "tsv");
    const auto lines = split_lines(text);
    const std::string file = path.string();
    if (lines.empty())
        throw Error(fmt::format("tsv: {} is empty (need a header: id, lang, domain, text)", file));
    const auto header = split_tabs(lines[0]);
    std::map<std::string_view, size_t> col;
    for (size_t i = 0; i < header.size(); ++i)
        if (!col.emplace(header[i], i).second)
            throw Error(fmt::format("tsv: {}:1: column '{}' appears twice", file, header[i]));
    for (const char * need : {"id", "lang", "text"})
        if (!col.count(need))
            throw Error(
                fmt::format("tsv: {}:1: header lacks column '{}' (need id, lang, text; domain, group "
                            "optional)",
                            file, need));
    const std::string stem = path.stem().string();
    std::vector<Sequence> rows;
    std::unordered_set<std::string> ids;
    for (size_t i = 1; i < lines.size(); ++i) {
        const std::string where = fmt::format("tsv: {}:{}", file, i + 1);
        const auto f = split_tabs(lines[i]);
        if (f.size() != header.size())
            throw Error(
                fmt::format("{}: expected {} tab-separated fields, got {} (text may not contain tabs)", where,
                            header.size(), f.size()));
        Sequence s{std::string(f[col["id"]]), std::string(f[col["lang"]]),
                   col.count("domain") ? std::string(f[col["domain"]]) : stem, -1,
                   std::string(f[col["text"]])};
        if (col.count("group") && !f[col["group"]].empty() && !parse_int(f[col["group"]], s.group))
            throw Error(fmt::format("{}: bad group '{}' (expected an integer)", where, f[col["group"]]));
        check_row(s, where, ids);
        rows.push_back(std::move(s));
    }
    return rows;
}

std::vector<Sequence> read_jsonl(const fs::path & path) {
    const std::string text = read_text(path, "jsonl");
    const auto lines = split_lines(text);
    const std::string stem = path.stem().string();
    std::vector<Sequence> rows;
    std::unordered_set<std::string> ids;
    for (size_t i = 0; i < lines.size(); ++i) {
        const std::string where = fmt::format("jsonl: {}:{}", path.string(), i + 1);
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(lines[i]);
        } catch (const nlohmann::json::exception & e) {
            throw Error(fmt::format("{}: bad JSON: {} (one JSON object per line, UTF-8)", where,
                                    json_error_text(e.what())));
        }
        if (!j.is_object()) throw Error(fmt::format("{}: expected a JSON object per line", where));
        auto str = [&](const char * key, bool required) -> std::string {
            const auto it = j.find(key);
            if (it == j.end() || it->is_null()) {
                if (required)
                    throw Error(fmt::format("{}: missing key '{}' (need id, lang, text)", where, key));
                return key == std::string_view("domain") ? stem : "";
            }
            if (it->is_string()) return it->get<std::string>();
            if (it->is_number_integer() && key == std::string_view("id")) return it->dump();
            throw Error(fmt::format("{}: key '{}' must be a string", where, key));
        };
        Sequence s{str("id", true), str("lang", true), str("domain", false), -1, str("text", true)};
        if (const auto g = j.find("group"); g != j.end() && !g->is_null()) {
            if (!g->is_number_integer())
                throw Error(fmt::format("{}: key 'group' must be an integer", where));
            s.group = g->get<int64_t>();
        }
        check_row(s, where, ids);
        rows.push_back(std::move(s));
    }
    return rows;
}

std::vector<Sequence> read_rows(const Source & src) {
    return src.kind == Kind::tsv ? read_tsv(src.path) : read_jsonl(src.path);
}

std::vector<std::string> row_langs(const std::vector<Sequence> & rows) {
    std::set<std::string> langs;
    for (const auto & s : rows) langs.insert(s.lang);
    return {langs.begin(), langs.end()};
}

Corpus load_rows(const std::string & spec, std::vector<Sequence> rows, const CorpusOptions & opt) {
    Corpus c{spec, select_langs(row_langs(rows), opt, spec), {}};
    std::unordered_map<std::string, size_t> rank;
    for (size_t i = 0; i < c.langs.size(); ++i) rank[c.langs[i]] = i;
    std::erase_if(rows, [&](const Sequence & s) { return !rank.count(s.lang); });
    const auto paired =
        std::count_if(rows.begin(), rows.end(), [](const Sequence & s) { return s.group >= 0; });
    if (paired > 0 && paired < static_cast<std::ptrdiff_t>(rows.size()))
        throw Error(fmt::format("{} mixes rows with and without a group (give all rows one, or none)", spec));
    const size_t limit = opt.limit < 0 ? SIZE_MAX : static_cast<size_t>(opt.limit);
    if (paired > 0) {
        std::stable_sort(rows.begin(), rows.end(), [&](const Sequence & a, const Sequence & b) {
            return a.group != b.group ? a.group < b.group : rank[a.lang] < rank[b.lang];
        });
        size_t n_groups = 0;
        for (auto & s : rows) {  // rows move into c.seqs, so compare against c.seqs.back()
            const bool new_group = c.seqs.empty() || s.group != c.seqs.back().group;
            if (!new_group && s.lang == c.seqs.back().lang)
                throw Error(fmt::format("{}: ids '{}' and '{}' are both group {} in {}", spec,
                                        printable(c.seqs.back().id), printable(s.id), s.group,
                                        printable(s.lang)));
            if (new_group && ++n_groups > limit) break;
            c.seqs.push_back(std::move(s));
        }
    } else {
        for (size_t i = 0; i < rows.size() && i < limit; ++i) c.seqs.push_back(std::move(rows[i]));
    }
    if (c.seqs.empty())
        throw Error(fmt::format("empty corpus: {} (no rows for these languages, or --limit 0)", spec));
    return c;
}

}  // namespace

Corpus load_corpus(const std::string & spec, const CorpusOptions & opt) {
    const Source src = parse_spec(spec);
    if (src.kind == Kind::flores) return load_flores(spec, src.path, opt);
    return load_rows(spec, read_rows(src), opt);
}

std::vector<std::string> corpus_languages(const std::string & spec) {
    const Source src = parse_spec(spec);
    if (src.kind != Kind::flores) return row_langs(read_rows(src));
    std::vector<std::string> langs;
    for (const auto & [code, path] : scan_flores(src.path).files) langs.push_back(code);
    return langs;
}

}  // namespace rs
