// Evaluation data set readers on the real files in data/ (counts measured on the staged copies), the
// CSV parser, and the error paths.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "routescope/common.h"
#include "routescope/datasets.h"
#include "routescope/languages.h"

namespace fs = std::filesystem;

namespace {

const std::string kData = RS_SOURCE_DIR "/data";
const std::string kMmlu = kData + "/mmlu_medical_en";

std::string write_temp(const std::string & name, const std::string & text) {
    const fs::path p = fs::path(testing::TempDir()) / ("rs_datasets_" + name);
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
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

TEST(Datasets, Mgsm) {
    const auto langs = rs::mgsm_languages();
    ASSERT_EQ(langs.size(), 11u);
    EXPECT_EQ(langs.front(), "ben_Beng");
    const auto en = rs::load_mgsm(kData + "/mgsm", "en");
    ASSERT_EQ(en.size(), 250u);
    EXPECT_EQ(en[0].id, "mgsm/eng_Latn/0");
    EXPECT_EQ(en[0].lang, "eng_Latn");
    EXPECT_TRUE(en[0].question.starts_with("Janet’s ducks lay 16 eggs per day.")) << en[0].question;
    EXPECT_EQ(en[0].answer, "18");
    EXPECT_EQ(en[146].answer, "2125");    // "2,125" in the file
    EXPECT_EQ(en[201].answer, "114200");  // "114,200"
    for (const auto & lang : langs) {
        const auto items = rs::load_mgsm(kData + "/mgsm", lang);
        ASSERT_EQ(items.size(), 250u) << lang;
        for (size_t i = 0; i < items.size(); ++i) ASSERT_EQ(items[i].answer, en[i].answer) << items[i].id;
    }
    EXPECT_EQ(rs::load_mgsm(kData + "/mgsm", "zh")[0].lang, "zho_Hans");
    EXPECT_HAS(error_of([] { rs::load_mgsm(kData + "/mgsm", "xx"); }), "unknown language 'xx'");
    EXPECT_HAS(error_of([] { rs::load_mgsm("/nonexistent", "de"); }), "/nonexistent/mgsm_de.tsv");
    const fs::path d = fs::path(testing::TempDir()) / "rs_datasets_mgsm";
    fs::create_directories(d);
    std::ofstream(d / "mgsm_fr.tsv") << "Q1\t3\nQ2 sans réponse\n";
    EXPECT_HAS(error_of([&] { rs::load_mgsm(d.string(), "fr"); }),
               "mgsm_fr.tsv:2: expected question TAB answer");
    std::ofstream(d / "mgsm_fr.tsv") << "Q1\tdrei\n";
    EXPECT_HAS(error_of([&] { rs::load_mgsm(d.string(), "fr"); }), "answer 'drei' is not a number");
}

TEST(Datasets, Gsm8k) {
    const auto test = rs::load_gsm8k(kData + "/gsm8k/test.jsonl");
    ASSERT_EQ(test.size(), 1319u);
    EXPECT_EQ(test[0].id, "gsm8k/test/0");
    EXPECT_EQ(test[0].answer, "18");
    EXPECT_TRUE(test[0].solution.starts_with("Janet sells 16 - 3 - 4 = <<16-3-4=9>>9")) << test[0].solution;
    EXPECT_EQ(test[0].solution.find("####"), std::string::npos);
    EXPECT_EQ(test[146].answer, "2125");  // "2,125"
    const auto train = rs::load_gsm8k(kData + "/gsm8k/train.jsonl");
    ASSERT_EQ(train.size(), 7473u);
    EXPECT_EQ(train[5715].answer, "-7");
    EXPECT_EQ(rs::load_gsm8k(kData + "/gsm8k/test_socratic.jsonl").size(), 1319u);
    const std::string bad = write_temp("gsm.jsonl",
                                       "{\"question\": \"q\", \"answer\": \"x\\n#### 4\"}\n"
                                       "{\"question\": \"q\", \"answer\": \"no final line\"}\n");
    EXPECT_HAS(error_of([&] { rs::load_gsm8k(bad); }), "gsm.jsonl:2: answer lacks the final '#### N'");
    const std::string broken = write_temp("gsm2.jsonl", "{\"question\": \"q\"}\n");
    EXPECT_HAS(error_of([&] { rs::load_gsm8k(broken); }), "gsm2.jsonl:1: bad record");
}

TEST(Datasets, MmluMedical) {
    const size_t want[] = {265, 173, 223, 100,
                           306, 282, 166};  // the 2020 files; professional_medicine has 282
    const auto & subjects = rs::mmlu_medical_subjects();
    ASSERT_EQ(subjects.size(), 7u);
    for (size_t s = 0; s < 7; ++s) {
        const auto test = rs::load_mmlu(kMmlu, subjects[s], "test");
        EXPECT_EQ(test.size(), want[s]) << subjects[s];
        for (const auto & it : test) {
            ASSERT_EQ(it.options.size(), 4u);
            ASSERT_TRUE(it.gold >= 0 && it.gold < 4) << it.id;
            ASSERT_FALSE(it.question.empty() || it.question.ends_with('\n')) << it.id;
        }
        EXPECT_EQ(rs::load_mmlu(kMmlu, subjects[s], "dev").size(), 5u) << subjects[s];
    }
    const auto vir = rs::load_mmlu(kMmlu, "virology", "test");
    EXPECT_EQ(vir[0].id, "mmlu/test/virology/0");
    EXPECT_EQ(vir[0].question, "How many human polyomaviruses are known at present?");
    EXPECT_EQ(vir[0].options, (std::vector<std::string>{"100", "1", "10", "unknown"}));
    EXPECT_EQ(vir[0].gold, 0);
    EXPECT_EQ(vir[2].question, "Globally, the most deaths are caused by:");  // quoted field with a comma
    EXPECT_EQ(vir[2].gold, 1);
    EXPECT_EQ(rs::load_mmlu(kMmlu, "professional_medicine", "test")[281].gold, 1);
    EXPECT_TRUE(rs::load_mmlu(kMmlu, "nutrition", "test")[0].question.ends_with("Wales and Scotland?"));
    EXPECT_HAS(error_of([] { rs::load_mmlu(kMmlu, "anatomy", "test"); }), "anatomy_test.csv");
}

TEST(Datasets, GlobalMmluMedical) {
    const auto items = rs::load_global_mmlu_medical(
        kMmlu, kData + "/global_mmlu_medical_indices/gmmlu_medical_samples_dict.json");
    ASSERT_EQ(items.size(), 420u);
    std::set<std::string> ids;
    for (const auto & it : items) ids.insert(it.id);
    EXPECT_EQ(ids.size(), 420u);
    EXPECT_EQ(items[0].id, "mmlu/test/clinical_knowledge/149");
    EXPECT_EQ(items[0].subject, "clinical_knowledge");
    EXPECT_EQ(items[60].subject, "college_medicine");
    EXPECT_EQ(items.back().id, "mmlu/test/virology/57");
    EXPECT_EQ(items.back().question, "How is the parvovirus family targeted to reduce disease?");
    const std::string bad = write_temp("gidx.json", "{\"virology\": [0, 166]}");
    EXPECT_HAS(error_of([&] { rs::load_global_mmlu_medical(kMmlu, bad); }),
               "index 166 out of range for virology");
}

TEST(Datasets, Belebele) {
    const auto en = rs::load_belebele(kData + "/belebele/eng_Latn.jsonl");
    const auto de = rs::load_belebele(kData + "/belebele/deu_Latn.jsonl");
    ASSERT_EQ(en.size(), 900u);  // 488 passages, 900 questions per language
    ASSERT_EQ(de.size(), 900u);
    std::set<std::string> passages;
    int gold_counts[4] = {0, 0, 0, 0};
    for (size_t i = 0; i < en.size(); ++i) {
        ASSERT_EQ(en[i].options.size(), 4u);
        ASSERT_EQ(de[i].id.substr(de[i].id.find('/', 9)),
                  en[i].id.substr(en[i].id.find('/', 9)));  // parallel
        ASSERT_EQ(de[i].gold, en[i].gold);
        ++gold_counts[en[i].gold];
        passages.insert(en[i].passage);
    }
    EXPECT_EQ(passages.size(), 488u);
    EXPECT_EQ(gold_counts[0], 206);  // gold is not always the first option
    EXPECT_EQ(en[0].id, "belebele/eng_Latn/0/0");
    EXPECT_EQ(en[0].lang, "eng_Latn");
    EXPECT_TRUE(en[0].passage.starts_with("Make sure your hand is as relaxed as possible"));
    EXPECT_EQ(de.back().id, "belebele/deu_Latn/487/1");
    EXPECT_EQ(de.back().lang, "deu_Latn");
    const std::string two =
        write_temp("bb.jsonl",
                   "{\"text\": \"P\", \"items\": [{\"question\": \"Q\", \"answers\": "
                   "[{\"text\": \"a\", \"correct\": true}, {\"text\": \"b\", \"correct\": true}]}]}\n");
    EXPECT_HAS(error_of([&] { rs::load_belebele(two); }), "bb.jsonl:1: question 0 has two correct answers");
}

// A Global-MMLU file in the CohereForAI column layout (a pandas export: index column first, other columns
// in between, a quoted multi-line question), then the 420-item sample drawn from it.
TEST(Datasets, GlobalMmluCsv) {
    std::string csv =
        ",sample_id,subject,subject_category,question,option_a,option_b,option_c,option_d,answer,culture\n"
        "0,virology/test/0,virology,Medical,\"Wie, bitte?\nZweite Zeile\",a,b,c,d,C,\n"
        "1,virology/test/57,virology,Medical,Q57,a,b,c,d,A,x\n"
        "2,anatomy/test/3,anatomy,STEM,Q3,a,b,c,d,D,\n";
    const auto items = rs::load_global_mmlu_csv(write_temp("gm_de.csv", csv), "deu_Latn");
    ASSERT_EQ(items.size(), 3u);
    EXPECT_EQ(items[0].id, "mmlu/test/virology/0");
    EXPECT_EQ(items[0].question, "Wie, bitte?\nZweite Zeile");
    EXPECT_EQ(items[0].gold, 2);
    EXPECT_EQ(items[0].lang, "deu_Latn");
    EXPECT_EQ(items[1].id, "mmlu/test/virology/57");
    EXPECT_EQ(items[2].subject, "anatomy");
    EXPECT_EQ(items[2].options, (std::vector<std::string>{"a", "b", "c", "d"}));
    const std::string idx = write_temp("gm_idx.json", "{\"virology\": [57, 0]}");
    const auto sample = rs::select_global_mmlu_sample(items, idx);
    ASSERT_EQ(sample.size(), 2u);
    EXPECT_EQ(sample[0].question, "Q57");  // the indices file's order
    EXPECT_HAS(error_of([&] {
                   rs::select_global_mmlu_sample(items, write_temp("gm_idx2.json", "{\"virology\": [5]}"));
               }),
               "index 5 out of range for virology");
    EXPECT_HAS(
        error_of([&] { rs::load_global_mmlu_csv(write_temp("gm_bad.csv", "question,answer\nq,A\n"), "x"); }),
        "no 'sample_id' column");
    EXPECT_HAS(error_of([&] {
                   rs::load_global_mmlu_csv(
                       write_temp("gm_bad2.csv", csv + "3,virology/test/9,virology,M,Q,a,b,c,d,E,\n"), "x");
               }),
               "record 4: answer 'E' is not A-D");
}

// The original Belebele layout (one question per line) is read as well as the staged reshaped one.
TEST(Datasets, BelebeleOriginalLayout) {
    const std::string f = write_temp(
        "bb_orig.jsonl",
        "{\"link\": \"u\", \"question_number\": 1, \"flores_passage\": \"Passage one.\", \"question\": "
        "\"Q?\", "
        "\"mc_answer1\": \"w\", \"mc_answer2\": \"x\", \"mc_answer3\": \"y\", \"mc_answer4\": \"z\", "
        "\"correct_answer_num\": \"3\", \"dialect\": \"swh_Latn\", \"ds\": \"2023-05-03\"}\n");
    const auto items = rs::load_belebele(f);
    ASSERT_EQ(items.size(), 1u);
    EXPECT_EQ(items[0].id, "belebele/swh_Latn/0");
    EXPECT_EQ(items[0].lang, "swh_Latn");
    EXPECT_EQ(items[0].passage, "Passage one.");
    EXPECT_EQ(items[0].gold, 2);
    EXPECT_EQ(items[0].options[3], "z");
    const std::string bad =
        write_temp("bb_orig_bad.jsonl",
                   "{\"flores_passage\": \"P\", \"question\": \"Q\", \"mc_answer1\": \"a\", "
                   "\"mc_answer2\": \"b\", \"mc_answer3\": \"c\", \"mc_answer4\": \"d\", "
                   "\"correct_answer_num\": \"5\"}\n");
    EXPECT_HAS(error_of([&] { rs::load_belebele(bad); }), "correct_answer_num \"5\" is not 1-4");
}

TEST(Languages, IsoAndFloresCodes) {
    EXPECT_EQ(rs::flores_code("de"), "deu_Latn");
    EXPECT_EQ(rs::flores_code("zh"), "zho_Hans");
    EXPECT_EQ(rs::flores_code("fil"), "tgl_Latn");
    EXPECT_EQ(rs::flores_code("eng_Latn"), "eng_Latn");
    EXPECT_EQ(rs::flores_code("xx"), "");
    EXPECT_EQ(rs::iso_code("swh_Latn"), "sw");
    EXPECT_EQ(rs::iso_code("bam_Latn"), "bm");
    EXPECT_EQ(rs::iso_code("xyz_Latn"), "");
    EXPECT_TRUE(rs::is_flores_code("srp_Cyrl"));
    EXPECT_FALSE(rs::is_flores_code("srp_cyrl"));
    EXPECT_FALSE(rs::is_flores_code("de"));
    // every MGSM language maps both ways
    for (const auto & l : rs::mgsm_languages()) EXPECT_EQ(rs::flores_code(rs::iso_code(l)), l);
}

TEST(Datasets, AlpaCare) {
    const auto items = rs::load_alpacare(kData + "/alpacare/MedInstruct-test.jsonl");
    ASSERT_EQ(items.size(), 216u);  // ids 0..216 with 143 missing
    EXPECT_EQ(items[0].id, "alpacare/0");
    EXPECT_TRUE(items[0].instruction.starts_with("My sister has just returned from a trip to the tropics"));
    EXPECT_EQ(items.back().id, "alpacare/216");
    EXPECT_HAS(error_of([] { rs::load_alpacare("/nonexistent/a.jsonl"); }),
               "no such file /nonexistent/a.jsonl");
}

TEST(Datasets, CsvParser) {
    const auto rows = rs::parse_csv("a,\"b,c\",\"say \"\"hi\"\"\"\r\n\"multi\nline\",,x\nlast,\"\"", "t.csv");
    ASSERT_EQ(rows.size(), 3u);
    EXPECT_EQ(rows[0], (std::vector<std::string>{"a", "b,c", "say \"hi\""}));
    EXPECT_EQ(rows[1], (std::vector<std::string>{"multi\nline", "", "x"}));
    EXPECT_EQ(rows[2], (std::vector<std::string>{"last", ""}));
    EXPECT_EQ(rs::parse_csv("a,b,\n", "t.csv")[0], (std::vector<std::string>{"a", "b", ""}));
    EXPECT_TRUE(rs::parse_csv("", "t.csv").empty());
    EXPECT_HAS(error_of([] { rs::parse_csv("a\n\"open,\nb\n", "t.csv"); }),
               "t.csv:2: unterminated quoted field");
    EXPECT_HAS(error_of([] { rs::parse_csv("a\nb\"c\n", "t.csv"); }), "t.csv:2: stray");
    EXPECT_HAS(error_of([] { rs::parse_csv("\"a\"b,c\n", "t.csv"); }), "t.csv:1: text after a closing quote");
}

}  // namespace
