// Checks shared by the two shard readers (read_shard in trace_store.cpp, read_shard_raw in trace_raw.cpp),
// so that both refuse the same damaged shards (issue #15).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "routescope/common.h"
#include "routescope/trace.h"

namespace rs {

// The error for a damaged shard: names the file, says to re-record it.
Error corrupt_shard(const std::string & path, const std::string & what);

// The error for a shard whose digest differs from the one manifest.json recorded when it was written.
Error shard_checksum_mismatch(const std::string & path);

// What verifies the bytes a reader reads, the fastest digest the manifest holds: unless the whole file is
// wanted, that of the index part alone where it holds one (the writer puts that part first), else that of
// the whole file; XXH3-128 before SHA-256 (traces written before XXH3). No digest for a trace that records
// none.
struct DigestToVerify {
    const std::string * digest = nullptr;
    bool xxh3 = false;
    bool index_part = false;  // the digest covers the index part: only that part is read
};
DigestToVerify digest_to_verify(const TraceManifest & m, int64_t shard, bool whole_file);

// How many sequences shard `shard` of the manifest holds; throws for a shard beyond the manifest.
int64_t shard_n_sequences(const std::string & path, const TraceManifest & m, int64_t shard);

// The sequence table checked against the manifest: corpus positions, offsets from 0 never decreasing
// (checked before any difference is taken), language / domain / group in range. Ids are left empty.
std::vector<TraceSeq> checked_sequences(const std::string & path, const TraceManifest & m, int64_t shard,
                                        int64_t n_seq, const int64_t * index, const int64_t * group,
                                        const int32_t * lang, const int32_t * domain, const int64_t * offset);

}  // namespace rs
