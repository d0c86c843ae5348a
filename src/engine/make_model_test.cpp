#include <gtest/gtest.h>
TEST(MakeModel, Placeholder) { SUCCEED(); }
