// Corpora: the text sequences routescope records routing on.
//
// A corpus is a flat list of sequences, each with a language, a domain and a parallel-group id
// (the line number in a parallel corpus such as FLoRes, so line i in every language shares group i).
// Specs accepted on the command line (see parse_corpus_spec):
//   flores:DIR            a FLoRes-200 split directory: {lang}.dev / {lang}.devtest files, long codes
//                         (eng_Latn.devtest) or the short OPUS codes mapped by DIR/CODE_MAP.tsv
//   tsv:FILE  / FILE.tsv  columns id, lang, domain, text (header line required)
//   jsonl:FILE / FILE.jsonl  objects with keys id, lang, domain, text (domain optional)
// Order is group-major (group 0 in every language, then group 1, ...), so a --limit of N groups keeps
// every language parallel.
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
    std::vector<std::string> langs;  // empty: every language the source has
    int64_t limit = -1;              // keep at most this many parallel groups (or sequences if unpaired)
};

// Loads a corpus from a spec; throws rs::Error with a one-line message for a missing directory or file,
// an unknown language, an empty corpus, or a parallel corpus whose languages have unequal line counts.
Corpus load_corpus(const std::string & spec, const CorpusOptions & opt);

// The languages a corpus source offers (e.g. every code in a FLoRes directory), sorted.
std::vector<std::string> corpus_languages(const std::string & spec);

}  // namespace rs
