// Chat templates (routescope/chat_template.h): the pure splitting rules here, the llama.cpp calls in
// Engine::chat_frame (engine.cpp).
#include "routescope/chat_template.h"

#include <fmt/format.h>

#include "routescope/common.h"

namespace rs {

ChatFrame split_chat_frame(std::string_view formatted, std::string_view marker, const std::string & name) {
    const auto at = formatted.find(marker);
    if (at == std::string_view::npos || formatted.find(marker, at + 1) != std::string_view::npos)
        throw Error(
            fmt::format("chat template {} does not place the user message once (use another "
                        "--chat-template, or none)",
                        name));
    ChatFrame f;
    f.name = name;
    f.prefix = std::string(formatted.substr(0, at));
    f.suffix = std::string(formatted.substr(at + marker.size()));
    return f;
}

std::string no_thinking_suffix(std::string_view template_source) {
    return template_source.find("enable_thinking") != std::string_view::npos ? "<think>\n\n</think>\n\n" : "";
}

}  // namespace rs
