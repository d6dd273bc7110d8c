#pragma once
//! @file
//! The processes a lease started on this host, and ending them after their holder died
//! (docs/reliability.md).
//!
//! Every command berth runs for a lease carries `BERTH_LEASE_ID=<lease id>` in its environment
//! (the local and SSH drivers' execute, the workspace runtime's provision command). Descendants
//! inherit it however they detach (a new session, a double fork, a daemon), so one pass over
//! /proc/<pid>/environ finds them all. PR_SET_PDEATHSIG ends only the direct child of a killed
//! holder; this finds the rest.
//!
//! A pass reads the environment of every process on the host (about 0.4 ms for 100 processes),
//! and recovery may end thousands of dead leases in one call. lease_process_sweeper therefore
//! reuses its last pass for a lease when it can prove that no process of that lease started
//! since: the holder was already dead when the pass began (see end_processes_of).
//!
//! Standard and POSIX headers only. Reading another user's environ needs root (or ptrace rights);
//! processes berth cannot read are not found.

#include <berth/process/proc.hpp>  // detail::read_small_file

#include <algorithm>      // std::sort, std::binary_search
#include <cstddef>        // std::size_t
#include <cstdint>        // std::int64_t
#include <cstdlib>        // std::strtol
#include <ctime>          // clock_gettime, CLOCK_BOOTTIME
#include <filesystem>     // directory_iterator
#include <mutex>          // std::mutex, std::lock_guard
#include <optional>       // std::optional
#include <string>         // std::string
#include <string_view>    // std::string_view
#include <system_error>   // std::error_code
#include <unordered_map>  // std::unordered_map
#include <vector>         // std::vector

#include <csignal>      // kill, SIGKILL
#include <sys/types.h>  // pid_t
#include <unistd.h>     // getpid, sysconf, usleep

namespace berth::process {

/// The variable every command run for a lease carries: `BERTH_LEASE_ID=<lease id>`.
inline constexpr std::string_view lease_variable = "BERTH_LEASE_ID";

/// One pass over /proc: every pid present, and which of them carry each value of a variable.
struct environment_scan {
    /// Clock ticks since boot when the pass began (the unit of pid_start_time).
    std::int64_t began_at_ticks = 0;
    std::vector<pid_t> pids{};  ///< sorted, this process included
    /// value -> the pids carrying it (this process excluded: it is never one to end)
    std::unordered_map<std::string, std::vector<pid_t>> carrying{};

    [[nodiscard]] bool present(std::int64_t pid) const {
        return std::binary_search(pids.begin(), pids.end(), static_cast<pid_t>(pid));
    }
    [[nodiscard]] std::vector<pid_t> carrying_value(std::string const& value) const {
        auto const it = carrying.find(value);
        return it == carrying.end() ? std::vector<pid_t>{} : it->second;
    }
};

namespace detail {
[[nodiscard]] inline std::int64_t ticks_since_boot() {
    timespec ts{};
    ::clock_gettime(CLOCK_BOOTTIME, &ts);
    auto const hz = ::sysconf(_SC_CLK_TCK);
    return static_cast<std::int64_t>(ts.tv_sec) * hz + static_cast<std::int64_t>(ts.tv_nsec) * hz / 1'000'000'000;
}
}  // namespace detail

/// Reads every process's environment once and records which pids carry `name` and with which
/// value. A zombie's environ reads empty: it carries nothing (it runs nothing either).
[[nodiscard]] inline environment_scan scan_environments(std::string_view name) {
    namespace fs = std::filesystem;
    environment_scan scan;
    scan.began_at_ticks = detail::ticks_since_boot();
    std::string const prefix = std::string(name) + "=";
    auto const self = ::getpid();
    std::error_code ec;
    for (fs::directory_iterator it("/proc", ec), end; !ec && it != end; it.increment(ec)) {
        auto const dir = it->path().filename().string();
        if (dir.empty() || dir.find_first_not_of("0123456789") != std::string::npos) continue;
        auto const pid = static_cast<pid_t>(std::strtol(dir.c_str(), nullptr, 10));
        scan.pids.push_back(pid);  // this process too: it may be a lease's starter
        if (pid == self) continue;  // never a process to end
        auto const env = detail::read_small_file(("/proc/" + dir + "/environ").c_str());
        if (!env) continue;
        std::string_view rest = *env;
        while (!rest.empty()) {
            auto const nul = rest.find('\0');
            auto const entry = rest.substr(0, nul);
            if (entry.starts_with(prefix)) {
                scan.carrying[std::string(entry.substr(prefix.size()))].push_back(pid);
                break;  // the first definition is the one getenv sees
            }
            rest.remove_prefix(nul == std::string_view::npos ? rest.size() : nul + 1);
        }
    }
    std::sort(scan.pids.begin(), scan.pids.end());
    return scan;
}

/// SIGKILLs every process carrying `name=value`, scanning again until none is left (a process may
/// fork while its parent is killed), at most `rounds` passes after the first. Returns true when
/// none is left. `found` is the first pass's finding when the caller has one.
inline bool end_processes_carrying(std::string_view name, std::string const& value, std::vector<pid_t> found,
                                   int rounds = 5) {
    for (int i = 0; i <= rounds; ++i) {
        if (found.empty()) return true;
        for (auto const pid : found) (void)::kill(pid, SIGKILL);
        ::usleep(20'000);  // let the killed exit, so that the next pass sees their children
        found = scan_environments(name).carrying_value(value);
    }
    return found.empty();
}

/// What this host can say about the process that started a lease's commands (its holder).
struct lease_starter {
    enum class where { unknown, elsewhere, here };
    where at = where::unknown;    ///< elsewhere: another host, or this machine in an earlier boot
    std::int64_t pid = 0;         ///< here: its pid
    std::int64_t start_time = 0;  ///< here: its start time (pid_start_time)
};

/// Ends the processes leases left on this host (see the file comment). Thread-safe.
class lease_process_sweeper {
public:
    lease_process_sweeper() = default;
    lease_process_sweeper(lease_process_sweeper const&) = delete;
    lease_process_sweeper& operator=(lease_process_sweeper const&) = delete;

    /// Ends every process carrying `BERTH_LEASE_ID=<lease_id>`; true when none is left.
    ///
    /// The last pass answers "none" without a new one when `starter` could not have started a
    /// process of the lease after that pass began: it is on another host or boot, or it started
    /// before the pass and was gone during it. A process carrying the id descends from one that
    /// carried it, or from the starter, so none can appear after such a pass. Otherwise (a live or
    /// unknown starter, a stale pass) a new pass is made and kept for the next lease. (A starter
    /// that died during the pass itself counts as gone before it: the window is the pass's length,
    /// and what it started in that window dies with it, PR_SET_PDEATHSIG.)
    bool end_processes_of(std::string const& lease_id, lease_starter const& starter) {
        if (lease_id.empty()) return true;
        std::vector<pid_t> found;
        {
            std::lock_guard lock(mutex_);
            if (!last_ || !answers_for(*last_, starter)) {
                last_ = scan_environments(lease_variable);
                ++passes_;
            }
            found = last_->carrying_value(lease_id);
            if (found.empty()) return true;
            last_->carrying.erase(lease_id);
        }
        return end_processes_carrying(lease_variable, lease_id, std::move(found));
    }

    /// How many passes over /proc end_processes_of made (tests and benchmarks read it).
    [[nodiscard]] std::size_t passes() const {
        std::lock_guard lock(mutex_);
        return passes_;
    }

private:
    [[nodiscard]] static bool answers_for(environment_scan const& scan, lease_starter const& s) {
        switch (s.at) {
            case lease_starter::where::elsewhere: return true;
            case lease_starter::where::here:
                // Ticks are 10 ms: a starter that began in the pass's own tick is not "before".
                return s.start_time > 0 && s.start_time + 1 < scan.began_at_ticks && !scan.present(s.pid);
            case lease_starter::where::unknown: return false;
        }
        return false;
    }

    mutable std::mutex mutex_;
    std::optional<environment_scan> last_;
    std::size_t passes_ = 0;
};

}  // namespace berth::process
