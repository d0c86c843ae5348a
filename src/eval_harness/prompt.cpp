// Evaluation prompts (routescope/eval_prompt.h): MGSM k-shot prompts with localised labels, the exemplar /
// evaluation split, stop strings, and 0-shot multiple-choice prompts with their letter continuations.
//
// Limits: labels exist for the 11 MGSM languages only; other languages get English labels. Prompts are raw
// text; `eval --chat-template` frames them.
#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "routescope/common.h"
#include "routescope/eval_prompt.h"
#include "routescope/languages.h"

namespace rs {
namespace {

// Question labels: LM Evaluation Harness lm_eval/tasks/mgsm/utils.py (LANGUAGES[*]["QUESTION"]), which
// follow the MGSM exemplars of Shi et al. 2023. Answer labels: the plain word for "answer" in each language.
// Keyed by FLoRes-200 code; MGSM's ISO codes map through languages.h.
const std::map<std::string, MgsmLabels> kLabels = {
    {"eng_Latn", {"Question:", "Answer:"}},    {"ben_Beng", {"প্রশ্ন:", "উত্তর:"}},
    {"deu_Latn", {"Frage:", "Antwort:"}},      {"spa_Latn", {"Pregunta:", "Respuesta:"}},
    {"fra_Latn", {"Question :", "Réponse :"}}, {"jpn_Jpan", {"問題:", "答え:"}},
    {"rus_Cyrl", {"Задача:", "Ответ:"}},       {"swh_Latn", {"Swali:", "Jibu:"}},
    {"tel_Telu", {"ప్రశ్న:", "సమాధానం:"}},         {"tha_Thai", {"โจทย์:", "คำตอบ:"}},
    {"zho_Hans", {"问题:", "答案:"}},
};

std::string underscores_to_spaces(std::string s) {
    std::replace(s.begin(), s.end(), '_', ' ');
    return s;
}

}  // namespace

MgsmLabels mgsm_labels(const std::string & lang) {
    const auto it = kLabels.find(flores_code(lang));
    return it == kLabels.end() ? kLabels.at("eng_Latn") : it->second;
}

MgsmSplit mgsm_split(std::span<const MathItem> items, int n_shot) {
    RS_ASSERT(n_shot >= 0);
    if (items.size() <= (size_t)n_shot)
        throw Error(
            fmt::format("mgsm: {} items cannot give {} exemplars and a non-empty evaluation set (lower "
                        "--shots)",
                        items.size(), n_shot));
    MgsmSplit s;
    s.exemplars.assign(items.begin(), items.begin() + n_shot);
    s.eval.assign(items.begin() + n_shot, items.end());
    return s;
}

std::string mgsm_prompt(std::span<const MathItem> exemplars, const MathItem & item,
                        const MgsmLabels & labels) {
    std::string p;
    for (const MathItem & ex : exemplars) {
        RS_ASSERT(ex.id != item.id);  // an exemplar must never be the evaluated item
        p += fmt::format("{} {}\n{} {}\n\n", labels.question, ex.question, labels.answer, ex.answer);
    }
    p += fmt::format("{} {}\n{}", labels.question, item.question, labels.answer);
    return p;
}

std::vector<std::string> mgsm_stop_strings(const MgsmLabels & labels) {
    return {"\n\n" + labels.question, "\n" + labels.question, labels.question};
}

std::string mc_prompt(const McItem & item, const McPromptOptions & opt) {
    const size_t n = item.options.size();
    RS_ASSERT(n >= 2 && n <= 26);
    std::string p;
    if (opt.belebele_lm_eval) {  // "P: …\nQ: …\nA: …\nAnswer："
                                 // (lm_eval/tasks/belebele/_default_template_yaml)
        std::string q = item.question;
        const auto first = q.find_first_not_of(" \t\n\r\f\v"), last = q.find_last_not_of(" \t\n\r\f\v");
        q = first == std::string::npos ? "" : q.substr(first, last - first + 1);  // question.strip()
        p = fmt::format("P: {}\nQ: {}", item.passage, q);
        for (size_t i = 0; i < n; ++i) p += fmt::format("\n{}: {}", (char)('A' + i), item.options[i]);
        return p + "\nAnswer\uFF1A";
    }
    if (opt.subject_header && !item.subject.empty())
        p += fmt::format("The following are multiple choice questions (with answers) about {}.\n\n",
                         underscores_to_spaces(item.subject));
    if (!item.passage.empty()) p += item.passage + "\n\n";
    p += item.question;
    for (size_t i = 0; i < n; ++i) p += fmt::format("\n{}. {}", (char)('A' + i), item.options[i]);
    p += "\nAnswer:";
    return p;
}

std::vector<std::string> mc_continuations(size_t n_options) {
    RS_ASSERT(n_options <= 26);
    std::vector<std::string> out;
    for (size_t i = 0; i < n_options; ++i) out.push_back(std::string(" ") + (char)('A' + i));
    return out;
}

std::vector<EvalPrompt> mgsm_eval_prompts(std::span<const MathItem> items, int n_shot) {
    const MgsmSplit split = mgsm_split(items, n_shot);
    const std::string & lang = items[0].lang;
    const MgsmLabels labels = mgsm_labels(lang);
    const std::vector<std::string> stops = mgsm_stop_strings(labels);
    std::vector<EvalPrompt> out;
    out.reserve(split.eval.size());
    for (const MathItem & it : split.eval) {
        RS_ASSERT(it.lang == lang);  // one language file at a time
        out.push_back({it.id, it.lang, mgsm_prompt(split.exemplars, it, labels), it.answer, stops, {}});
    }
    return out;
}

MgsmLabels mgsm_direct_labels(const std::string & lang) {
    const std::string code = flores_code(lang);
    MgsmLabels l = mgsm_labels(code);
    l.answer = code == "deu_Latn"   ? "Antwort:"
               : code == "fra_Latn" ? "Réponse :"
               : code == "spa_Latn" ? "Respuesta:"
                                    : "Answer:";
    return l;
}

std::vector<EvalPrompt> mgsm_direct_eval_prompts(std::span<const MathItem> items) {
    std::vector<EvalPrompt> out;
    if (items.empty()) return out;
    const MgsmLabels labels = mgsm_direct_labels(items[0].lang);
    const std::vector<std::string> stops = {labels.question, "</s>", "<|im_end|>"};  // the harness's `until`
    for (const MathItem & it : items) {
        RS_ASSERT(it.lang == items[0].lang);
        out.push_back({it.id, it.lang, mgsm_prompt({}, it, labels), it.answer, stops, {}});
    }
    return out;
}

std::vector<EvalPrompt> mc_eval_prompts(std::span<const McItem> items, const McPromptOptions & opt) {
    std::vector<EvalPrompt> out;
    out.reserve(items.size());
    for (const McItem & it : items) {
        RS_ASSERT(it.gold >= 0 && (size_t)it.gold < it.options.size());
        out.push_back({it.id,
                       it.lang,
                       mc_prompt(it, opt),
                       std::string(1, (char)('A' + it.gold)),
                       {},
                       mc_continuations(it.options.size())});
    }
    return out;
}

}  // namespace rs
