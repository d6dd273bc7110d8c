#pragma once
//! @file
//! berth::workspace_lock — one run's hold on one execution workspace, across threads and
//! processes: an exclusive flock(2) on a lock file in the repository's git directory
//! (`<git common dir>/berth/locks/<hash of the worktree path>.lock`), held for as long as the
//! object (or a copy of the shared_ptr a realization carries) lives. The kernel drops it when the
//! holder dies, however it dies: a kill -9 leaves nothing to expire.
//!
//! It keeps two runs of the same issue from working in (and cleaning up) one worktree at once:
//! a second realization waits a bounded time and then fails naming the holder's pid; cleanup
//! never removes a worktree whose lock another live run holds.
//!
//! Lock files are never deleted (deleting one while another process waits on it would give two
//! holders); there is one small file per worktree path ever used.
//!
//! @code
//! auto lock = berth::workspace_lock::acquire(berth::workspace_lock::path_for(common_dir, worktree),
//!                                             std::chrono::seconds(30), worktree);
//! @endcode

#include <berth/workspace/error.hpp>  // workspace_error

#include <cerrno>        // errno, EINTR, EWOULDBLOCK
#include <chrono>        // std::chrono::steady_clock, milliseconds
#include <cstddef>       // std::size_t
#include <cstdint>       // std::uint64_t
#include <cstdio>        // std::snprintf
#include <filesystem>    // std::filesystem::path, create_directories
#include <optional>      // std::optional
#include <string>        // std::string
#include <system_error>  // std::error_code, std::generic_category
#include <thread>        // std::this_thread::sleep_for
#include <utility>       // std::exchange

#include <fcntl.h>     // open, O_RDWR, O_CREAT, O_CLOEXEC
#include <sys/file.h>  // flock, LOCK_EX, LOCK_NB, LOCK_UN
#include <unistd.h>    // close, ftruncate, pwrite, pread, getpid

namespace berth {

class workspace_lock {
public:
    workspace_lock(workspace_lock&& o) noexcept : fd_(std::exchange(o.fd_, -1)), path_(std::move(o.path_)) {}
    workspace_lock& operator=(workspace_lock&& o) noexcept {
        if (this != &o) {
            if (fd_ >= 0) ::close(fd_);
            fd_ = std::exchange(o.fd_, -1);
            path_ = std::move(o.path_);
        }
        return *this;
    }
    workspace_lock(workspace_lock const&) = delete;
    workspace_lock& operator=(workspace_lock const&) = delete;
    ~workspace_lock() {
        if (fd_ >= 0) ::close(fd_);  // releases the flock
    }

    /// The lock file of the worktree at `worktree_path` of the repository whose git common
    /// directory is `common_dir`. The worktree path is hashed (FNV-1a, 64 bits) so that any path
    /// makes a short file name.
    [[nodiscard]] static std::filesystem::path path_for(std::filesystem::path const& common_dir,
                                                        std::string const& worktree_path) {
        std::uint64_t h = 14695981039346656037ull;
        for (unsigned char c : worktree_path) {
            h ^= c;
            h *= 1099511628211ull;
        }
        char name[32];
        std::snprintf(name, sizeof name, "%016llx", static_cast<unsigned long long>(h));
        return common_dir / "berth" / "locks" / (std::string(name) + ".lock");
    }

    /// Takes the lock if nobody holds it; nullopt when another open of the file holds it (another
    /// process, or another workspace_lock of this process).
    /// @throws workspace_error when the lock file cannot be created or opened.
    [[nodiscard]] static std::optional<workspace_lock> try_acquire(std::filesystem::path const& lock_file) {
        workspace_lock l(open_file(lock_file), lock_file.string());
        if (!l.try_lock()) return std::nullopt;
        l.record_holder();
        return l;
    }

    /// Takes the lock, waiting up to `wait` for its holder to let go.
    /// @throws workspace_error naming `what` (the worktree), the holder's pid and the lock file
    ///         when `wait` passes; or when the lock file cannot be created.
    [[nodiscard]] static workspace_lock acquire(std::filesystem::path const& lock_file, std::chrono::milliseconds wait,
                                                std::string const& what) {
        workspace_lock l(open_file(lock_file), lock_file.string());
        auto const deadline = std::chrono::steady_clock::now() + wait;
        auto pause = std::chrono::milliseconds(5);
        while (!l.try_lock()) {
            if (std::chrono::steady_clock::now() >= deadline)
                throw workspace_error("Execution workspace \"" + what + "\" is in use by another run (" +
                                      l.holder_text() + ", lock file " + l.path_ + "); waited " +
                                      std::to_string(wait.count()) + " ms. Run again once it ends.");
            std::this_thread::sleep_for(pause);
            if (pause < std::chrono::milliseconds(100)) pause *= 2;
        }
        l.record_holder();
        return l;
    }

    [[nodiscard]] std::string const& path() const noexcept { return path_; }

    /// The holder_text() of whoever last held `lock_file` ("holder unknown" when unreadable).
    [[nodiscard]] static std::string holder_of(std::filesystem::path const& lock_file) {
        int const fd = ::open(lock_file.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) return "holder unknown";
        workspace_lock reader(fd, lock_file.string());
        return reader.holder_text();
    }

    /// "pid N" of the holder as it wrote itself into the file (informative: the flock decides).
    [[nodiscard]] std::string holder_text() const {
        char buf[32] = {};
        auto const n = ::pread(fd_, buf, sizeof buf - 1, 0);
        std::string s = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
        while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
        return s.empty() ? std::string("holder unknown") : "pid " + s;
    }

private:
    workspace_lock(int fd, std::string path) noexcept : fd_(fd), path_(std::move(path)) {}

    static int open_file(std::filesystem::path const& lock_file) {
        std::error_code ec;
        std::filesystem::create_directories(lock_file.parent_path(), ec);
        int const fd = ::open(lock_file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
            throw workspace_error("Cannot open the workspace lock file \"" + lock_file.string() +
                                  "\": " + std::generic_category().message(errno));
        return fd;
    }

    bool try_lock() {
        while (true) {
            if (::flock(fd_, LOCK_EX | LOCK_NB) == 0) return true;
            if (errno == EINTR) continue;
            if (errno == EWOULDBLOCK) return false;
            throw workspace_error("Cannot lock the workspace lock file \"" + path_ +
                                  "\": " + std::generic_category().message(errno));
        }
    }

    void record_holder() noexcept {
        auto const text = std::to_string(::getpid()) + "\n";
        if (::ftruncate(fd_, 0) == 0) (void)!::pwrite(fd_, text.data(), text.size(), 0);
    }

    int fd_;
    std::string path_;
};

}  // namespace berth
