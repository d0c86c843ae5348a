// Corpus loading: FLoRes-200 (real data in data/), TSV and JSONL round trips, and every error path.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>

#include "routescope/common.h"
#include "routescope/corpus.h"

namespace fs = std::filesystem;

namespace {

const std::string kData = RS_SOURCE_DIR "/data";
const std::string kDevtest = "flores:" + kData + "/flores200/devtest";
const std::string kDev = "flores:" + kData + "/flores200/dev";

fs::path fresh_dir(const std::string & name) {
    const fs::path d = fs::path(testing::TempDir()) / ("rs_corpus_" + name);
    fs::remove_all(d);
    fs::create_directories(d);
    return d;
}

std::string write(const fs::path & path, const std::string & text) {
    std::ofstream(path, std::ios::binary) << text;
    return path.string();
}

rs::Corpus load(const std::string & spec, std::vector<std::string> langs = {}, int64_t limit = -1) {
    return rs::load_corpus(spec, rs::CorpusOptions{std::move(langs), limit});
}

// The rs::Error message of f(), which must throw one; it must be a single line.
template <class F>
std::string error_of(F && f) {
    try {
        f();
    } catch (const rs::Error & e) {
        const std::string msg = e.what();
        EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
        return msg;
    }
    ADD_FAILURE() << "expected rs::Error";
    return "";
}

#define EXPECT_HAS(msg, part)                              \
    do {                                                   \
        const std::string m_ = (msg);                      \
        EXPECT_NE(m_.find(part), std::string::npos) << m_; \
    } while (0)

TEST(Corpus, FloresDevtestFirstLine) {
    const rs::Corpus c = load(kDevtest, {"eng_Latn"}, 1);
    ASSERT_EQ(c.seqs.size(), 1u);
    const rs::Sequence & s = c.seqs[0];
    EXPECT_TRUE(s.text.starts_with("\"We now have 4-month-old mice")) << s.text;
    EXPECT_EQ(s.id, "flores/devtest/eng_Latn/0");
    EXPECT_EQ(s.lang, "eng_Latn");
    EXPECT_EQ(s.domain, "flores");
    EXPECT_EQ(s.group, 0);
    EXPECT_EQ(c.spec, kDevtest);
}

TEST(Corpus, FloresDevUsesLongCodes) {
    const auto langs = rs::corpus_languages(kDev);
    EXPECT_EQ(langs, rs::corpus_languages(kDevtest));
    const rs::Corpus c = load(kDev, {"eng_Latn", "zho_Hans"}, 2);
    ASSERT_EQ(c.seqs.size(), 4u);
    EXPECT_TRUE(c.seqs[0].text.starts_with("On Monday, scientists from the Stanford")) << c.seqs[0].text;
    EXPECT_EQ(c.seqs[1].id, "flores/dev/zho_Hans/0");
    std::ifstream cmn(kData + "/flores200/dev/cmn_Hans.dev");  // zho_Hans is cmn_Hans.dev in OPUS naming
    std::string first;
    std::getline(cmn, first);
    EXPECT_EQ(c.seqs[1].text, first);
    EXPECT_EQ(load(kDev, {"deu_Latn"}).seqs.size(), 997u);
    EXPECT_HAS(error_of([] { load(kDev, {"eng"}); }), "eng_Latn");  // short code: hint the long one
}

TEST(Corpus, TwentyFourLanguagesSorted) {
    const auto langs = rs::corpus_languages(kDevtest);
    ASSERT_EQ(langs.size(), 24u);
    EXPECT_TRUE(std::is_sorted(langs.begin(), langs.end()));
    EXPECT_EQ(langs.front(), "arb_Arab");
    EXPECT_EQ(langs.back(), "zho_Hans");
    EXPECT_NE(std::find(langs.begin(), langs.end(), "eng_Latn"), langs.end());
}

TEST(Corpus, FloresAllLanguagesGroupMajorAndFast) {
    const auto t0 = std::chrono::steady_clock::now();
    const rs::Corpus c = load(kDevtest);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_LT(secs, 1.0);
    ASSERT_EQ(c.langs.size(), 24u);
    ASSERT_EQ(c.seqs.size(), 24u * 1012u);
    for (size_t k = 0; k < c.seqs.size(); ++k) {
        ASSERT_EQ(c.seqs[k].group, static_cast<int64_t>(k / 24));
        ASSERT_EQ(c.seqs[k].lang, c.langs[k % 24]);
        ASSERT_FALSE(c.seqs[k].text.empty()) << c.seqs[k].id;
        ASSERT_FALSE(c.seqs[k].text.ends_with('\r')) << c.seqs[k].id;
    }
    EXPECT_EQ(c.seqs.back().id, "flores/devtest/zho_Hans/1011");
}

TEST(Corpus, RequestedOrderAndLimit) {
    const rs::Corpus c = load(kDevtest, {"deu_Latn", "eng_Latn"}, 3);
    EXPECT_EQ(c.langs, (std::vector<std::string>{"deu_Latn", "eng_Latn"}));
    ASSERT_EQ(c.seqs.size(), 6u);
    const char * want[] = {"deu_Latn/0", "eng_Latn/0", "deu_Latn/1",
                           "eng_Latn/1", "deu_Latn/2", "eng_Latn/2"};
    for (size_t i = 0; i < 6; ++i) EXPECT_EQ(c.seqs[i].id, std::string("flores/devtest/") + want[i]);
    EXPECT_EQ(load(kDevtest, {"eng_Latn"}, 5000).seqs.size(), 1012u);  // a limit past the end keeps all
}

TEST(Corpus, FloresErrors) {
    std::string msg = error_of([] { load(kDevtest, {"xyz_Latn"}); });
    EXPECT_HAS(msg, "xyz_Latn");
    EXPECT_HAS(msg, "arb_Arab");
    EXPECT_HAS(msg, "24 in all");
    EXPECT_HAS(error_of([] { load(kDevtest, {"eng_Latn", "eng_Latn"}); }), "twice");
    EXPECT_HAS(error_of([] { load(kDevtest, {}, 0); }), "empty corpus");
    EXPECT_HAS(error_of([] { load("flores:/nonexistent/flores"); }), "/nonexistent/flores");
    EXPECT_HAS(error_of([] { load("/nonexistent/corpus"); }), "flores:DIR");
    EXPECT_HAS(error_of([] { load(kData + "/mgsm"); }), "no *.dev or *.devtest");
}

TEST(Corpus, FloresTempDirs) {
    const fs::path d = fresh_dir("unequal");
    write(d / "aaa_Latn.devtest", "a0\r\na1\r\na2\r\n");
    write(d / "bbb_Latn.devtest", "b0\nb1\n");
    const std::string spec = "flores:" + d.string();
    std::string msg = error_of([&] { load(spec); });
    EXPECT_HAS(msg, "aaa_Latn.devtest has 3");
    EXPECT_HAS(msg, "bbb_Latn.devtest has 2");
    const rs::Corpus a = load(d.string(), {"aaa_Latn"});  // a bare directory is a FLoRes split too
    ASSERT_EQ(a.seqs.size(), 3u);
    EXPECT_EQ(a.seqs[2].text, "a2");  // '\r' stripped
    EXPECT_EQ(a.seqs[2].id, "flores/devtest/aaa_Latn/2");

    write(d / "ccc_Latn.dev", "c0\n");
    EXPECT_HAS(error_of([&] { load(spec); }), "mixes .dev and .devtest");

    const fs::path m = fresh_dir("codemap");
    write(m / "aa.dev", "x\ny\n");
    write(m / "CODE_MAP.tsv", "aaa_Latn\taa.dev\t3\tnote\n");
    EXPECT_HAS(error_of([&] { load("flores:" + m.string()); }), "CODE_MAP.tsv says 3");
    write(m / "bb.dev", "x\ny\n");
    EXPECT_HAS(error_of([&] { load("flores:" + m.string()); }), "no line for bb.dev");
}

TEST(Corpus, TsvRoundTrip) {
    const fs::path d = fresh_dir("tsv");
    const std::string paired = write(d / "p.tsv",
                                     "id\tlang\tdomain\ttext\tgroup\n"
                                     "e1\teng_Latn\tmed\tHello one\t1\n"
                                     "d0\tdeu_Latn\tmed\tHallo null\t0\n"
                                     "e0\teng_Latn\tmed\tHello zero\t0\n"
                                     "d1\tdeu_Latn\tmed\tHallo eins\t1\r\n");
    rs::Corpus c = load(paired, {"eng_Latn", "deu_Latn"});
    ASSERT_EQ(c.seqs.size(), 4u);
    EXPECT_EQ(c.seqs[0].id, "e0");
    EXPECT_EQ(c.seqs[1].id, "d0");
    EXPECT_EQ(c.seqs[2].id, "e1");
    EXPECT_EQ(c.seqs[3].text, "Hallo eins");
    EXPECT_EQ(c.seqs[3].group, 1);
    EXPECT_EQ(c.seqs[3].domain, "med");
    EXPECT_EQ(load("tsv:" + paired, {}, 1).seqs.size(), 2u);  // limit counts groups
    EXPECT_EQ(load(paired).langs, (std::vector<std::string>{"deu_Latn", "eng_Latn"}));

    const std::string unpaired = write(d / "u.tsv",
                                       "lang\tid\ttext\n"
                                       "fra_Latn\tx\tun\n"
                                       "eng_Latn\ty\tone\n"
                                       "fra_Latn\tz\tdeux\n");
    c = load(unpaired, {}, 2);
    ASSERT_EQ(c.seqs.size(), 2u);  // file order, limit counts sequences
    EXPECT_EQ(c.seqs[0].id, "x");
    EXPECT_EQ(c.seqs[1].id, "y");
    EXPECT_EQ(c.seqs[1].group, -1);
    EXPECT_EQ(c.seqs[1].domain, "u");  // no domain column: the file stem
    c = load(unpaired, {"fra_Latn"});
    ASSERT_EQ(c.seqs.size(), 2u);
    EXPECT_EQ(c.seqs[1].text, "deux");
    EXPECT_EQ(rs::corpus_languages(unpaired), (std::vector<std::string>{"eng_Latn", "fra_Latn"}));
}

TEST(Corpus, TsvErrors) {
    const fs::path d = fresh_dir("tsv_err");
    const std::string nocol = write(d / "a.tsv", "id\tlang\tdomain\n1\teng_Latn\tx\n");
    EXPECT_HAS(error_of([&] { load(nocol); }), "lacks column 'text'");
    const std::string fields =
        write(d / "b.tsv", "id\tlang\ttext\n1\teng_Latn\tok\n2\teng_Latn\tbad\textra\n");
    EXPECT_HAS(error_of([&] { load(fields); }), "b.tsv:3: expected 3 tab-separated fields, got 4");
    const std::string empty = write(d / "c.tsv", "id\tlang\ttext\n1\teng_Latn\t\n");
    EXPECT_HAS(error_of([&] { load(empty); }), "c.tsv:2: empty text");
    const std::string dup = write(d / "e.tsv", "id\tlang\ttext\n1\teng_Latn\ta\n1\teng_Latn\tb\n");
    EXPECT_HAS(error_of([&] { load(dup); }), "duplicate id '1'");
    const std::string mixed =
        write(d / "f.tsv", "id\tlang\ttext\tgroup\n1\teng_Latn\ta\t0\n2\teng_Latn\tb\t\n");
    EXPECT_HAS(error_of([&] { load(mixed); }), "mixes rows");
    EXPECT_HAS(error_of([&] { load(write(d / "g.tsv", "id\tlang\ttext\n")); }), "empty corpus");
    EXPECT_HAS(error_of([&] { load(write(d / "h.tsv", "")); }), "h.tsv is empty");
    EXPECT_HAS(error_of([&] { load("tsv:" + (d / "missing.tsv").string()); }), "missing.tsv");
    EXPECT_HAS(error_of([&] { load(fields, {"eng_Latn"}, 0); }), "b.tsv:3");  // bad files fail before limits
}

TEST(Corpus, JsonlRoundTrip) {
    const fs::path d = fresh_dir("jsonl");
    const std::string p =
        write(d / "m.jsonl",
              "{\"id\": \"e0\", \"lang\": \"eng_Latn\", \"text\": \"zero\", \"group\": 0}\n"
              "{\"id\": 7, \"lang\": \"spa_Latn\", \"text\": \"cero\", \"group\": 0, "
              "\"domain\": \"gsm8k\"}\n"
              "{\"id\": \"e1\", \"lang\": \"eng_Latn\", \"text\": \"one\\ttab\", \"group\": 1}\n");
    rs::Corpus c = load("jsonl:" + p, {"spa_Latn", "eng_Latn"});
    ASSERT_EQ(c.seqs.size(), 3u);
    EXPECT_EQ(c.seqs[0].id, "7");
    EXPECT_EQ(c.seqs[0].domain, "gsm8k");
    EXPECT_EQ(c.seqs[1].domain, "m");
    EXPECT_EQ(c.seqs[2].text, "one\ttab");
    EXPECT_EQ(c.seqs[2].group, 1);
    const std::string u =
        write(d / "u.jsonl",
              "{\"id\": \"a\", \"lang\": \"eng_Latn\", \"text\": \"A\"}\n"
              "{\"id\": \"b\", \"lang\": \"eng_Latn\", \"text\": \"B\", \"group\": null}\n");
    c = load(u, {}, 1);
    ASSERT_EQ(c.seqs.size(), 1u);
    EXPECT_EQ(c.seqs[0].group, -1);
}

TEST(Corpus, JsonlErrors) {
    const fs::path d = fresh_dir("jsonl_err");
    const std::string bad = write(d / "bad.jsonl",
                                  "{\"id\": \"a\", \"lang\": \"eng_Latn\", \"text\": \"A\"}\n"
                                  "{\"id\": \"b\", \"lang\": \"eng_Latn\", \"text\": \"B\"}\n"
                                  "{\"id\": \"c\", \"lang\": \"eng_Latn\", \"text\": \"C\"\n");
    EXPECT_HAS(error_of([&] { load(bad); }), "bad.jsonl:3: bad JSON");
    const std::string nokey = write(d / "nokey.jsonl", "{\"id\": \"a\", \"lang\": \"eng_Latn\"}\n");
    EXPECT_HAS(error_of([&] { load(nokey); }), "nokey.jsonl:1: missing key 'text'");
    const std::string type = write(d / "type.jsonl", "{\"id\": \"a\", \"lang\": 3, \"text\": \"x\"}\n");
    EXPECT_HAS(error_of([&] { load(type); }), "key 'lang' must be a string");
    const std::string blank =
        write(d / "blank.jsonl", "{\"id\": \"a\", \"lang\": \"eng_Latn\", \"text\": \"A\"}\n\n");
    EXPECT_HAS(error_of([&] { load(blank); }), "blank.jsonl:2");
    const std::string dup = write(d / "dup.jsonl",
                                  "{\"id\": \"a\", \"lang\": \"eng_Latn\", \"text\": \"A\", \"group\": 0}\n"
                                  "{\"id\": \"b\", \"lang\": \"eng_Latn\", \"text\": \"B\", \"group\": 0}\n");
    EXPECT_HAS(error_of([&] { load(dup); }), "both group 0 in eng_Latn");
    EXPECT_HAS(error_of([&] { load("jsonl:" + (d / "none.jsonl").string()); }), "none.jsonl");
}

}  // namespace

// Issue #15: bad UTF-8 in an id, lang or domain is a one-line error naming FILE:LINE (it used to surface
// as a raw JSON exception when the manifest was written, after the trace directory was created).
TEST(CorpusHardening, BadUtf8IsNamed) {
    const auto dir = std::filesystem::path(testing::TempDir()) / "rs_corpus_utf8";
    std::filesystem::create_directories(dir);
    const auto tsv = dir / "bad.tsv";
    std::ofstream(tsv, std::ios::binary) << "id\tlang\tdomain\ttext\na\xff\teng_Latn\tweb\thello\n";
    try {
        rs::load_corpus("tsv:" + tsv.string(), {});
        ADD_FAILURE();
    } catch (const rs::Error & e) {
        const std::string m = e.what();
        EXPECT_NE(m.find("bad.tsv:2: the id is not valid UTF-8"), std::string::npos) << m;
    }
    std::ofstream(tsv, std::ios::binary)
        << "id\tlang\tdomain\ttext\na\teng_Latn\tw\xc0\xaf\thello\n";  // overlong
    EXPECT_THROW(rs::load_corpus("tsv:" + tsv.string(), {}), rs::Error);
    std::ofstream(tsv, std::ios::binary)
        << "id\tlang\tdomain\ttext\na\teng_Latn\t\xe2\x82\xac\thello\n";  // €
    EXPECT_NO_THROW(rs::load_corpus("tsv:" + tsv.string(), {}));
    const auto jl = dir / "bad.jsonl";
    std::ofstream(jl, std::ios::binary) << "{\"id\": \"a\xff\", \"lang\": \"eng_Latn\", \"text\": \"x\"}\n";
    try {
        rs::load_corpus("jsonl:" + jl.string(), {});
        ADD_FAILURE();
    } catch (const rs::Error & e) {
        const std::string m = e.what();
        EXPECT_EQ(m.find("json.exception"), std::string::npos) << m;
        EXPECT_NE(m.find("bad.jsonl:1"), std::string::npos) << m;
    }
}
