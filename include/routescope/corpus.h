// Corpora: the text sequences routescope records routing on.
//
// A corpus is a flat list of sequences, each with a language, a domain and a parallel-group id
// (the line number in a parallel corpus such as FLoRes, so line i in every language shares group i).
// Specs accepted on the command line:
//   flores:DIR (or a bare DIR)  a FLoRes-200 split directory of {lang}.dev or {lang}.devtest files; the split
//       name is the extension. Languages are always long codes (eng_Latn): DIR/CODE_MAP.tsv, if present, maps
//       them to OPUS short file names (long_code TAB file TAB n_lines TAB note, no header; zho_Hans ->
//       cmn_Hans.dev); without it the file stems are the codes. Ids are "flores/<split>/<lang>/<line>",
//       domain "flores", group = 0-based line index.
//   tsv:FILE / FILE.tsv  a header line with columns id, lang, text and optionally domain, group (any order,
//       tab separated, no quoting); domain defaults to the file stem, group to -1 (unpaired)
//   jsonl:FILE / FILE.jsonl  one object per line with keys id, lang, text, optional domain and group (same
//       defaults; an integer id is accepted)
// Paired corpora (FLoRes, or files whose rows all have a group) are group-major: group 0 in every requested
// language (in the requested order), then group 1, ..., so a limit of N groups keeps every language parallel.
// Unpaired files keep file order. A trailing '\r' is stripped; nothing is skipped: an empty id, lang or
// text, a duplicate id, or a malformed line is an error naming FILE:LINE.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rs {

struct Sequence {
    std::string id;      // stable id, e.g. "flores/devtest/eng_Latn/17"
    std::string lang;    // FLoRes-200 style code, e.g. "eng_Latn"
    std::string domain;  // e.g. "flores", "gsm8k", "medical"
    int64_t group = -1;  // parallel-group id (0-based line index); -1 when unpaired
    std::string text;
};

struct Corpus {
    std::string spec;                // the spec it was loaded from
    std::vector<std::string> langs;  // in the order requested
    std::vector<Sequence> seqs;      // group-major order
};

struct CorpusOptions {
    std::vector<std::string> langs;  // empty: every language the source has (sorted); else this order
    int64_t limit = -1;              // keep the first N parallel groups (or sequences if unpaired); <0: all
};

// Loads a corpus from a spec; throws rs::Error with a one-line message for a missing directory or file,
// an unknown language, an empty corpus (also limit 0), or a parallel corpus whose languages have unequal
// line counts.
Corpus load_corpus(const std::string & spec, const CorpusOptions & opt);

// The languages a corpus source offers (e.g. every code in a FLoRes directory), sorted.
std::vector<std::string> corpus_languages(const std::string & spec);

}  // namespace rs
