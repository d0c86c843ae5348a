// The digests of file_io.h against published values and against themselves fed in pieces.
#include "routescope/file_io.h"

#include <gtest/gtest.h>

#include <string>

namespace {

// FIPS 180-2 appendix B.1 ("abc") and the empty message.
TEST(Sha256, KnownAnswers) {
    EXPECT_EQ(rs::sha256_hex("", 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(rs::sha256_hex("abc", 3), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

// XXH3-128 of the empty input, seed 0: 0x99AA06D3014798D8'6001C324468D497F (xxHash's sanity table,
// cli/xsum_sanity_check.c), written high half first as xxhsum -H2 prints it.
TEST(Xxh3_128, KnownAnswerAndCanonicalOrder) {
    EXPECT_EQ(rs::xxh3_128_hex("", 0), "99aa06d3014798d86001c324468d497f");
    EXPECT_EQ(rs::xxh3_128_hex("abc", 3).size(), 32u);
    EXPECT_NE(rs::xxh3_128_hex("abc", 3), rs::xxh3_128_hex("abd", 3));
}

// Streaming in uneven pieces (as a shard is written tensor by tensor and read in 1 MiB chunks) gives the
// one-shot digest; one flipped bit anywhere changes it.
TEST(Xxh3_128, PiecesEqualOneShotAndEveryBitCounts) {
    std::string data(3u << 20, '\0');
    for (size_t i = 0; i < data.size(); ++i) data[i] = (char)((i * 2654435761u) >> 13);
    const std::string whole = rs::xxh3_128_hex(data.data(), data.size());
    rs::Xxh3_128 h;
    rs::Sha256 s;
    for (size_t at = 0, n = 1; at < data.size(); at += n, n = n * 7 + 3) {
        const size_t len = std::min(n, data.size() - at);
        h.update(data.data() + at, len);
        s.update(data.data() + at, len);
    }
    EXPECT_EQ(h.hex(), whole);
    EXPECT_EQ(s.hex(), rs::sha256_hex(data.data(), data.size()));
    for (const size_t at : {size_t{0}, data.size() / 2 + 1, data.size() - 1}) {
        std::string flipped = data;
        flipped[at] ^= 1;
        EXPECT_NE(rs::xxh3_128_hex(flipped.data(), flipped.size()), whole) << at;
    }
}

}  // namespace
