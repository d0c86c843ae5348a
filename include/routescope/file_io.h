// Whole-file writes that never leave a half-written file behind: the content goes to a temporary file next
// to the target, which is then renamed over it (atomic on POSIX). Used for every result file routescope
// writes in one piece (manifests, CSV tables, JSON summaries, reports).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace rs {

// Incremental SHA-256 (OpenSSL EVP): shard checksums and the corpus content hash in trace manifests.
class Sha256 {
  public:
    Sha256();
    ~Sha256();
    Sha256(const Sha256 &) = delete;
    Sha256 & operator=(const Sha256 &) = delete;
    void update(const void * data, size_t n);
    std::string hex();  // lowercase hex of everything updated so far; ends the hash
    // The same of everything updated so far, and the hash goes on (a shard's index-part digest is taken
    // on the way to the whole file's)
    std::string hex_so_far() const;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};
std::string sha256_hex(const void * data, size_t n);

// Incremental XXH3-128 (libxxhash): the checksum readers verify a whole shard with. Not cryptographic, but
// any accidental change of the bytes (a flipped bit, a truncated or swapped file) alters it with
// probability 1 − 2^-128, and it runs at memory speed (~20 GB/s a core, against SHA-256's ~1.8 GB/s with
// SHA-NI here), so verifying a shard no longer costs more than reading it (issue #14).
class Xxh3_128 {
  public:
    Xxh3_128();
    ~Xxh3_128();
    Xxh3_128(const Xxh3_128 &) = delete;
    Xxh3_128 & operator=(const Xxh3_128 &) = delete;
    void update(const void * data, size_t n);
    std::string hex() const;  // lowercase hex of the canonical (big-endian) form, as xxhsum -H2 prints it

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};
std::string xxh3_128_hex(const void * data, size_t n);

// Removes `NAME.tmp-PID` files in `dir` (written by write_file_atomic / shard writes) whose process is
// gone: a killed run or a full disk leaves them; the next run in that directory clears them.
void remove_stale_temporaries(const std::string & dir);

// Creates the parent directory if needed; throws rs::Error naming the file (and a hint) on failure.
void write_file_atomic(const std::string & path, const std::string & content);

// Result files that appear together or not at all (issue #15): add() collects them in memory, commit()
// writes each to PATH.tmp-PID and, only when all were written, renames them into place (then removes
// `stale`: files of an earlier run this one does not produce). On a failure every temporary is removed
// and the old files stay as they were, so a run that fails late never leaves a mix of new and old
// results. Nothing is written before commit(): an error found while computing leaves no file at all.
class OutputFiles {
  public:
    void add(const std::string & path, std::string content);
    void commit(const std::vector<std::string> & stale = {});

  private:
    std::vector<std::pair<std::string, std::string>> files_;
};

// The whole file; rs::Error naming it when it cannot be read.
std::string read_file(const std::string & path);

}  // namespace rs
