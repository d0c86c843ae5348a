// write_file_atomic (routescope/file_io.h).
#include "routescope/file_io.h"

#include <openssl/evp.h>
#include <signal.h>
#include <unistd.h>
#include <xxhash.h>

#include <cerrno>

#include <filesystem>
#include <fstream>
#include <iterator>

#include <fmt/format.h>

#include "routescope/common.h"

namespace fs = std::filesystem;

namespace rs {

namespace {

std::string lower_hex(const unsigned char * b, size_t n) {
    std::string out;
    for (size_t i = 0; i < n; ++i) out += fmt::format("{:02x}", b[i]);
    return out;
}

}  // namespace

struct Sha256::Impl {
    EVP_MD_CTX * ctx = nullptr;
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {
    impl_->ctx = EVP_MD_CTX_new();
    RS_ASSERT(impl_->ctx && EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr) == 1);
}

Sha256::~Sha256() {
    EVP_MD_CTX_free(impl_->ctx);
}

void Sha256::update(const void * data, size_t n) {
    if (n) RS_ASSERT(EVP_DigestUpdate(impl_->ctx, data, n) == 1);
}

std::string Sha256::hex() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    RS_ASSERT(EVP_DigestFinal_ex(impl_->ctx, md, &n) == 1);
    return lower_hex(md, n);
}

std::string Sha256::hex_so_far() const {
    Sha256 copy;
    RS_ASSERT(EVP_MD_CTX_copy_ex(copy.impl_->ctx, impl_->ctx) == 1);
    return copy.hex();
}

std::string sha256_hex(const void * data, size_t n) {
    Sha256 h;
    h.update(data, n);
    return h.hex();
}

struct Xxh3_128::Impl {
    XXH3_state_t * state = nullptr;
};

Xxh3_128::Xxh3_128() : impl_(std::make_unique<Impl>()) {
    impl_->state = XXH3_createState();
    RS_ASSERT(impl_->state && XXH3_128bits_reset(impl_->state) == XXH_OK);
}

Xxh3_128::~Xxh3_128() {
    XXH3_freeState(impl_->state);
}

void Xxh3_128::update(const void * data, size_t n) {
    if (n) RS_ASSERT(XXH3_128bits_update(impl_->state, data, n) == XXH_OK);
}

std::string Xxh3_128::hex() const {
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, XXH3_128bits_digest(impl_->state));
    return lower_hex(c.digest, sizeof c.digest);
}

std::string xxh3_128_hex(const void * data, size_t n) {
    Xxh3_128 h;
    h.update(data, n);
    return h.hex();
}

void remove_stale_temporaries(const std::string & dir);

void write_file_atomic(const std::string & path, const std::string & content) {
    const fs::path p(path);
    std::error_code ec;
    if (fs::is_directory(p)) throw Error(fmt::format("{}: is a directory (name a file to write)", path));
    if (p.has_parent_path()) fs::create_directories(p.parent_path(), ec);
    // the pid keeps two processes writing the same target from sharing a temporary file
    const std::string tmp = fmt::format("{}.tmp-{}", path, getpid());
    {
        std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
        if (!f)
            throw Error(fmt::format("{}: cannot write (check the directory exists and is writable)", tmp));
        f.write(content.data(), (std::streamsize)content.size());
        if (!f.flush()) {
            f.close();
            fs::remove(tmp, ec);  // a full disk must not leave the temporary behind
            throw Error(fmt::format("{}: cannot write (disk full?)", tmp));
        }
    }
    fs::rename(tmp, p, ec);
    if (ec) {
        std::error_code ec2;
        fs::remove(tmp, ec2);
        throw Error(fmt::format("{}: cannot rename {} over it: {}", path, tmp, ec.message()));
    }
}

void OutputFiles::add(const std::string & path, std::string content) {
    files_.emplace_back(path, std::move(content));
}

void OutputFiles::commit(const std::vector<std::string> & stale) {
    std::vector<std::string> tmps;
    std::error_code ec;
    for (const auto & f : files_)  // temporaries a killed earlier run left beside these outputs
        remove_stale_temporaries(
            fs::path(f.first).has_parent_path() ? fs::path(f.first).parent_path().string() : ".");
    auto cleanup = [&] {
        for (const auto & t : tmps) fs::remove(t, ec);
    };
    try {
        for (const auto & [path, content] : files_) {
            const fs::path p(path);
            if (fs::is_directory(p, ec))
                throw Error(fmt::format("{}: is a directory (name a file to write, or remove it)", path));
            if (p.has_parent_path()) {
                fs::create_directories(p.parent_path(), ec);
                if (!fs::is_directory(p.parent_path()))
                    throw Error(fmt::format("{}: cannot create the directory (is it a file?)",
                                            p.parent_path().string()));
            }
            const std::string tmp = fmt::format("{}.tmp-{}", path, getpid());
            std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
            if (!f) throw Error(fmt::format("{}: cannot write (check the directory is writable)", tmp));
            tmps.push_back(tmp);
            f.write(content.data(), (std::streamsize)content.size());
            if (!f.flush()) throw Error(fmt::format("{}: cannot write (disk full?)", tmp));
        }
    } catch (...) {
        cleanup();
        throw;
    }
    for (size_t i = 0; i < files_.size(); ++i) {  // renames of written files into existing directories
        fs::rename(tmps[i], files_[i].first, ec);
        if (ec) {
            for (size_t j = i; j < tmps.size(); ++j) fs::remove(tmps[j], ec);
            throw Error(
                fmt::format("{}: cannot rename {} over it: {}", files_[i].first, tmps[i], ec.message()));
        }
    }
    for (const auto & s : stale) {
        bool produced = false;
        for (const auto & f : files_) produced = produced || f.first == s;
        if (!produced) fs::remove(s, ec);
    }
    files_.clear();
}

void remove_stale_temporaries(const std::string & dir) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) return;
    for (const auto & e : fs::directory_iterator(dir, ec)) {
        const std::string n = e.path().filename().string();
        const size_t at = n.rfind(".tmp-");
        if (at == std::string::npos || at + 5 >= n.size() ||
            n.find_first_not_of("0123456789", at + 5) != std::string::npos)
            continue;
        const long pid = std::strtol(n.c_str() + at + 5, nullptr, 10);
        // kill(pid, 0) fails with ESRCH when no such process exists: its temporary is garbage
        if (pid > 0 && pid != (long)getpid() && kill((pid_t)pid, 0) != 0 && errno == ESRCH) {
            std::error_code ec2;
            fs::remove(e.path(), ec2);
        }
    }
}

std::string read_file(const std::string & path) {
    std::ifstream f(path, std::ios::binary);
    std::error_code ec;
    if (!f || !fs::is_regular_file(path, ec))
        throw Error(fmt::format("{}: cannot read (missing, or not a file?)", path));
    try {
        return std::string(std::istreambuf_iterator<char>(f), {});
    } catch (const std::ios_base::failure &) {  // filebuf::underflow throws on a read error
        throw Error(fmt::format("{}: read error (check the file and the disk)", path));
    }
}

}  // namespace rs
