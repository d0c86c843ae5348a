// The pure rules of chat templates (routescope/chat_template.h): splitting a formatted chat around the
// message, and Qwen3's empty thinking block.
#include "routescope/chat_template.h"

#include <gtest/gtest.h>

#include "routescope/common.h"

namespace {

TEST(ChatTemplate, SplitsAroundTheMarker) {
    const auto f =
        rs::split_chat_frame("<|im_start|>user\nMSG<|im_end|>\n<|im_start|>assistant\n", "MSG", "x");
    EXPECT_EQ(f.name, "x");
    EXPECT_EQ(f.prefix, "<|im_start|>user\n");
    EXPECT_EQ(f.suffix, "<|im_end|>\n<|im_start|>assistant\n");
    EXPECT_FALSE(f.none());
    EXPECT_TRUE(rs::ChatFrame{}.none());
    const auto edge = rs::split_chat_frame("MSG", "MSG", "bare");  // nothing around the message
    EXPECT_EQ(edge.prefix, "");
    EXPECT_EQ(edge.suffix, "");
}

TEST(ChatTemplate, RefusesAMessageNotPlacedOnce) {
    EXPECT_THROW(rs::split_chat_frame("<s>user</s>", "MSG", "x"), rs::Error);  // dropped
    EXPECT_THROW(rs::split_chat_frame("MSG and MSG", "MSG", "x"), rs::Error);  // repeated
}

TEST(ChatTemplate, EmptyThinkingBlockOnlyForTemplatesThatThink) {
    EXPECT_EQ(rs::no_thinking_suffix("{%- if enable_thinking is defined and enable_thinking is false %}"),
              "<think>\n\n</think>\n\n");
    EXPECT_EQ(rs::no_thinking_suffix("{{ '<|im_start|>' + message['role'] }}"), "");
    EXPECT_EQ(rs::no_thinking_suffix("chatml"), "");
}

}  // namespace
