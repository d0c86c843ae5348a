// Language codes. routescope names languages by FLoRes-200 code (eng_Latn) everywhere; the evaluation sets
// name them by ISO 639-1 code (MGSM and Global-MMLU: en, de, sw, ...). One table maps between the two for
// the 24 languages of Bandarkar et al. 2025 (Appendix A.3) and the 42 of Global-MMLU.
#pragma once

#include <string>
#include <string_view>

namespace rs {

// The FLoRes-200 code of an ISO 639-1 code ("de" -> "deu_Latn"); a FLoRes-style code ("xxx_Yyyy") is
// returned unchanged; "" for an unknown short code.
std::string flores_code(std::string_view code);

// The ISO 639-1 code of a FLoRes-200 code ("deu_Latn" -> "de"); "" when the table has none.
std::string iso_code(std::string_view flores);

// True for "xxx_Yyyy" (three lowercase letters, '_', a capitalised four-letter script).
bool is_flores_code(std::string_view code);

}  // namespace rs
