// Evaluation tasks (routescope/eval_tasks.h): data locations, languages and prompts per task.
#include <algorithm>
#include <filesystem>

#include <fmt/format.h>

#include "routescope/common.h"
#include "routescope/datasets.h"
#include "routescope/eval_tasks.h"
#include "routescope/languages.h"
#include "routescope/stats.h"

namespace fs = std::filesystem;

namespace rs {
namespace {

std::string gmmlu_indices(const EvalData & d) {
    return (fs::path(d.data_dir) / "global_mmlu_medical_indices" / "gmmlu_medical_samples_dict.json")
        .string();
}

std::string belebele_dir(const EvalData & d) {
    return d.belebele_dir.empty() ? (fs::path(d.data_dir) / "belebele").string() : d.belebele_dir;
}

// The user's Global-MMLU file for `lang` (<iso>.csv or <flores>.csv), or "" when there is none.
std::string gmmlu_file(const EvalData & d, const std::string & lang) {
    if (d.gmmlu_dir.empty()) return "";
    for (const std::string & stem : {iso_code(lang), lang}) {
        if (stem.empty()) continue;
        const fs::path p = fs::path(d.gmmlu_dir) / (stem + ".csv");
        std::error_code ec;
        if (fs::is_regular_file(p, ec)) return p.string();
    }
    return "";
}

// Language codes of the files *.EXT in dir (stems mapped to FLoRes codes), sorted.
std::vector<std::string> langs_of_files(const std::string & dir, const std::string & ext) {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto & e : fs::directory_iterator(dir, ec)) {
        if (e.path().extension() != ext) continue;
        const std::string code = flores_code(e.path().stem().string());
        if (!code.empty()) out.push_back(code);
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

}  // namespace

EvalTask parse_eval_task(const std::string & name) {
    if (name == "mgsm") return EvalTask::mgsm;
    if (name == "mgsm-direct" || name == "mgsm_direct") return EvalTask::mgsm_direct;
    if (name == "gmmlu_med" || name == "gmmlu-med" || name == "mmlu_med" || name == "mmlu-med")
        return EvalTask::gmmlu_med;
    if (name == "belebele") return EvalTask::belebele;
    throw Error(fmt::format("unknown task '{}' (tasks: mgsm, mgsm-direct, mmlu-med, belebele)", name));
}

std::string eval_task_name(EvalTask task) {
    switch (task) {
        case EvalTask::mgsm:
            return "mgsm";
        case EvalTask::mgsm_direct:
            return "mgsm_direct";
        case EvalTask::gmmlu_med:
            return "gmmlu_med";
        case EvalTask::belebele:
            return "belebele";
    }
    RS_ASSERT(false);
    return "";
}

bool eval_task_generates(EvalTask task) {
    return task == EvalTask::mgsm || task == EvalTask::mgsm_direct;
}

std::vector<std::string> eval_task_languages(EvalTask task, const EvalData & data) {
    switch (task) {
        case EvalTask::mgsm:
        case EvalTask::mgsm_direct:
            return mgsm_languages();
        case EvalTask::gmmlu_med: {
            auto langs =
                data.gmmlu_dir.empty() ? std::vector<std::string>{} : langs_of_files(data.gmmlu_dir, ".csv");
            if (std::find(langs.begin(), langs.end(), "eng_Latn") == langs.end()) langs.push_back("eng_Latn");
            std::sort(langs.begin(), langs.end());
            return langs;
        }
        case EvalTask::belebele:
            return langs_of_files(belebele_dir(data), ".jsonl");
    }
    return {};
}

std::vector<EvalPrompt> eval_task_prompts(EvalTask task, const std::string & lang_in, const EvalData & data,
                                          int n_shot) {
    const std::string lang = flores_code(lang_in);
    if (lang.empty())
        throw Error(
            fmt::format("unknown language code '{}' (use FLoRes-200 codes such as deu_Latn)", lang_in));
    switch (task) {
        case EvalTask::mgsm:
            return mgsm_eval_prompts(load_mgsm((fs::path(data.data_dir) / "mgsm").string(), lang), n_shot);
        case EvalTask::mgsm_direct:  // 0-shot: n_shot does not apply
            return mgsm_direct_eval_prompts(load_mgsm((fs::path(data.data_dir) / "mgsm").string(), lang));
        case EvalTask::gmmlu_med: {
            const std::string file = gmmlu_file(data, lang);
            std::vector<McItem> items;
            if (!file.empty()) {
                items = select_global_mmlu_sample(load_global_mmlu_csv(file, lang), gmmlu_indices(data));
            } else if (lang == "eng_Latn") {
                items = load_global_mmlu_medical((fs::path(data.data_dir) / "mmlu_medical_en").string(),
                                                 gmmlu_indices(data));
            } else {
                throw Error(
                    fmt::format("gmmlu_med: no Global-MMLU data for {}: only English is bundled; give "
                                "--gmmlu DIR holding "
                                "{}.csv (the CohereForAI/Global-MMLU test split as CSV)",
                                lang, iso_code(lang).empty() ? lang : iso_code(lang)));
            }
            return mc_eval_prompts(items);
        }
        case EvalTask::belebele: {
            const fs::path file = fs::path(belebele_dir(data)) / (lang + ".jsonl");
            std::error_code ec;
            if (!fs::is_regular_file(file, ec))
                throw Error(
                    fmt::format("belebele: no file for {} ({} not found; bundled: eng_Latn, deu_Latn; give "
                                "--belebele DIR for the full release)",
                                lang, file.string()));
            McPromptOptions o;
            o.belebele_lm_eval = true;  // the harness's "P: … Q: … Answer：" prompt
            return mc_eval_prompts(load_belebele(file.string()), o);
        }
    }
    return {};
}

std::string parallel_item_key(const std::string & item_id, const std::string & lang) {
    const std::string part = "/" + lang;
    const size_t at = item_id.find(part + "/");
    if (at == std::string::npos) return item_id;
    return item_id.substr(0, at) + item_id.substr(at + part.size());
}

bool in_dev_split(const std::string & parallel_key, double dev_fraction, uint64_t seed) {
    uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a 64 (Fowler, Noll, Vo)
    for (const unsigned char ch : parallel_key) {
        h ^= ch;
        h *= 0x100000001b3ull;
    }
    const double u = (double)(derive_seed(seed, h, 0x5eedu) >> 11) * 0x1p-53;  // uniform in [0, 1)
    return u < dev_fraction;
}

}  // namespace rs
