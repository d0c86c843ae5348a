// Chat templates: a corpus sentence or an eval prompt as the user message of a chat, the way
// instruction-tuned models are prompted and the way Bandarkar et al. (xl_moe_alignment) and Chen et al.
// record passages (template applied, no thinking). llama.cpp formats the chat
// (llama_chat_apply_template: its built-in templates, detected from the GGUF's
// tokenizer.chat_template); routescope splits the result around the message so the template's text is
// tokenized with special tokens parsed and the message never is (a "<|im_end|>" inside a FLoRes
// sentence stays text), and so the message's token span is known exactly.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rs {

// A template resolved for one model: the text around one user message, up to the assistant's turn.
struct ChatFrame {
    std::string name = "none";  // "none", or the template used: a built-in name or "gguf"
    std::string prefix;         // before the message (special tokens parsed)
    std::string suffix;         // after it: end of turn + generation prompt (+ empty thinking block)
    bool none() const { return name == "none"; }
};

// Splits a chat formatted with `marker` as the message into prefix and suffix; throws rs::Error unless
// the marker occurs exactly once.
ChatFrame split_chat_frame(std::string_view formatted, std::string_view marker, const std::string & name);

// The text a template adds after the generation prompt to turn thinking off. Qwen3's template
// (Qwen/Qwen3-30B-A3B tokenizer_config.json: `{%- if enable_thinking is defined and enable_thinking is
// false %}{{- '<think>\n\n</think>\n\n' }}`) writes an empty thinking block; llama.cpp's built-in
// formatter does not run Jinja, so routescope adds it for templates that mention enable_thinking.
std::string no_thinking_suffix(std::string_view template_source);

// Tokens of a message framed by a template, and where the message's own tokens are.
struct ChatTokens {
    std::vector<int32_t> tokens;
    int64_t text_begin = 0, text_end = 0;  // [begin, end) of the message's tokens in `tokens`
};

}  // namespace rs
