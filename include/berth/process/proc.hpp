#pragma once
//! @file
//! What berth reads about processes from Linux /proc to decide, without a TTL, whether the holder
//! of a lease or a workspace is still alive: this host's identity (boot id + machine id), a
//! pid's start time (so a reused pid is not mistaken for the holder), and the processes that work
//! inside a directory (to stop what an interrupted run left running in a half-made worktree).
//!
//! Standard and POSIX headers only.

#include <cerrno>        // errno, EPERM, EINTR
#include <csignal>       // kill
#include <cstddef>       // std::size_t
#include <cstdint>       // std::int64_t
#include <cstdlib>       // std::strtoll
#include <filesystem>    // directory_iterator, read_symlink
#include <optional>      // std::optional
#include <string>        // std::string
#include <string_view>   // std::string_view
#include <system_error>  // std::error_code
#include <vector>        // std::vector

#include <fcntl.h>      // open, O_RDONLY, O_CLOEXEC
#include <sys/types.h>  // pid_t, ssize_t
#include <unistd.h>     // read, close, getpid, getuid

namespace berth::process {

namespace detail {
/// The whole of `path`, or nullopt when it cannot be opened or read (a /proc file of a process
/// that exited fails its read with ESRCH: never an exception).
[[nodiscard]] inline std::optional<std::string> read_small_file(char const* path) {
    int const fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return std::nullopt;
    std::string out;
    char buf[4096];
    while (true) {
        ssize_t const n = ::read(fd, buf, sizeof buf);
        if (n > 0) {
            out.append(buf, static_cast<std::size_t>(n));
        } else if (n == 0) {
            break;
        } else if (errno != EINTR) {
            ::close(fd);
            return std::nullopt;
        }
    }
    ::close(fd);
    return out;
}

[[nodiscard]] inline std::string trimmed(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r' || s.back() == '\t')) s.pop_back();
    return s;
}
}  // namespace detail

/// This host's identity for this boot: `<machine id>:<boot id>` (/etc/machine-id and
/// /proc/sys/kernel/random/boot_id). A pid and its start time mean something only on the same
/// host in the same boot; a holder with another identity is judged by its lease's expiry.
/// Either part falls back to "unknown" when unreadable (containers without /etc/machine-id), so
/// the identity still changes with every boot.
[[nodiscard]] inline std::string host_identity() {
    static std::string const id = [] {
        auto machine = detail::read_small_file("/etc/machine-id");
        if (!machine || detail::trimmed(*machine).empty()) machine = detail::read_small_file("/var/lib/dbus/machine-id");
        auto boot = detail::read_small_file("/proc/sys/kernel/random/boot_id");
        std::string m = machine ? detail::trimmed(*machine) : std::string();
        std::string b = boot ? detail::trimmed(*boot) : std::string();
        return (m.empty() ? std::string("unknown") : m) + ":" + (b.empty() ? std::string("unknown") : b);
    }();
    return id;
}

/// The start time of `pid` in clock ticks since boot (field 22 of /proc/<pid>/stat), or nullopt
/// when there is no such process (or it is a zombie: it no longer runs anything).
[[nodiscard]] inline std::optional<std::int64_t> pid_start_time(std::int64_t pid) {
    if (pid <= 0) return std::nullopt;
    auto const path = "/proc/" + std::to_string(pid) + "/stat";
    auto const stat = detail::read_small_file(path.c_str());
    if (!stat) return std::nullopt;
    // The command name (field 2) may hold spaces and parentheses: fields are counted after the last ')'.
    auto const close = stat->rfind(')');
    if (close == std::string::npos) return std::nullopt;
    std::string_view rest(*stat);
    rest.remove_prefix(close + 1);
    int field = 2;
    std::size_t i = 0;
    std::optional<char> state;
    while (i < rest.size()) {
        while (i < rest.size() && rest[i] == ' ') ++i;
        auto const start = i;
        while (i < rest.size() && rest[i] != ' ') ++i;
        if (start == i) break;
        ++field;
        if (field == 3) state = rest[start];
        if (field == 22) {
            if (state == 'Z' || state == 'X') return std::nullopt;
            return std::strtoll(std::string(rest.substr(start, i - start)).c_str(), nullptr, 10);
        }
    }
    return std::nullopt;
}

/// Whether the process `pid` that started at `start_time` (pid_start_time) still runs: false for
/// a dead pid and for a pid the kernel gave to another process since.
[[nodiscard]] inline bool process_alive(std::int64_t pid, std::int64_t start_time) {
    auto const now = pid_start_time(pid);
    return now && *now == start_time;
}

/// Pids (other than this process) of this user whose working directory is `dir` or below it.
[[nodiscard]] inline std::vector<pid_t> processes_working_in(std::filesystem::path const& dir) {
    namespace fs = std::filesystem;
    std::vector<pid_t> out;
    std::error_code ec;
    auto const root = fs::weakly_canonical(dir, ec).lexically_normal();
    if (ec || root.empty() || root == root.root_path()) return out;
    auto const self = ::getpid();
    for (fs::directory_iterator it("/proc", ec), end; !ec && it != end; it.increment(ec)) {
        auto const name = it->path().filename().string();
        if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
        auto const pid = static_cast<pid_t>(std::strtol(name.c_str(), nullptr, 10));
        if (pid == self) continue;
        std::error_code e2;
        auto const cwd = fs::read_symlink(it->path() / "cwd", e2);
        if (e2) continue;  // another user's process, or gone
        auto text = cwd.string();
        if (text.ends_with(" (deleted)")) text.resize(text.size() - 10);  // a removed directory
        auto const c = fs::path(text).lexically_normal();
        auto r = c.begin();
        auto d = root.begin();
        for (; d != root.end() && r != c.end() && *r == *d; ++r, ++d) {
        }
        if (d == root.end()) out.push_back(pid);
    }
    return out;
}

}  // namespace berth::process
