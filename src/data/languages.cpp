// Language code table (routescope/languages.h).
#include "routescope/languages.h"

#include <array>
#include <cctype>
#include <utility>

namespace rs {
namespace {

// ISO 639-1 -> FLoRes-200. The paper's languages (Appendix A.3, Table A.2) and Global-MMLU's 42
// (Singh et al. 2025): Filipino is tgl_Latn, Malagasy plt_Latn, Malay zsm_Latn, Nepali npi_Deva in
// FLoRes-200.
constexpr std::array<std::pair<std::string_view, std::string_view>, 47> kCodes = {{
    {"am", "amh_Ethi"}, {"ar", "arb_Arab"},  {"as", "asm_Beng"}, {"bm", "bam_Latn"}, {"bn", "ben_Beng"},
    {"cs", "ces_Latn"}, {"de", "deu_Latn"},  {"el", "ell_Grek"}, {"en", "eng_Latn"}, {"es", "spa_Latn"},
    {"fa", "pes_Arab"}, {"fil", "tgl_Latn"}, {"fr", "fra_Latn"}, {"ha", "hau_Latn"}, {"he", "heb_Hebr"},
    {"hi", "hin_Deva"}, {"id", "ind_Latn"},  {"ig", "ibo_Latn"}, {"it", "ita_Latn"}, {"ja", "jpn_Jpan"},
    {"ko", "kor_Hang"}, {"ky", "kir_Cyrl"},  {"lt", "lit_Latn"}, {"mg", "plt_Latn"}, {"ms", "zsm_Latn"},
    {"ne", "npi_Deva"}, {"nl", "nld_Latn"},  {"ny", "nya_Latn"}, {"or", "ory_Orya"}, {"pl", "pol_Latn"},
    {"pt", "por_Latn"}, {"ro", "ron_Latn"},  {"ru", "rus_Cyrl"}, {"si", "sin_Sinh"}, {"sn", "sna_Latn"},
    {"so", "som_Latn"}, {"sr", "srp_Cyrl"},  {"sv", "swe_Latn"}, {"sw", "swh_Latn"}, {"te", "tel_Telu"},
    {"th", "tha_Thai"}, {"tr", "tur_Latn"},  {"uk", "ukr_Cyrl"}, {"vi", "vie_Latn"}, {"yo", "yor_Latn"},
    {"zh", "zho_Hans"}, {"tl", "tgl_Latn"},
}};

}  // namespace

bool is_flores_code(std::string_view c) {
    if (c.size() != 8 || c[3] != '_') return false;
    for (size_t i = 0; i < 3; ++i)
        if (!std::islower((unsigned char)c[i])) return false;
    if (!std::isupper((unsigned char)c[4])) return false;
    for (size_t i = 5; i < 8; ++i)
        if (!std::islower((unsigned char)c[i])) return false;
    return true;
}

std::string flores_code(std::string_view code) {
    if (is_flores_code(code)) return std::string(code);
    for (const auto & [iso, flores] : kCodes)
        if (iso == code) return std::string(flores);
    return "";
}

std::string iso_code(std::string_view flores) {
    for (const auto & [iso, f] : kCodes)
        if (f == flores) return std::string(iso);
    return "";
}

}  // namespace rs
