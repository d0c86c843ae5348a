#include <gtest/gtest.h>
TEST(Corpus, Placeholder) { SUCCEED(); }
