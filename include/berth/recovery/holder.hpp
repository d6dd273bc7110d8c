#pragma once
//! @file
//! Who holds a lease, and whether that holder still lives (docs/reliability.md).
//!
//! Every lease the orchestrator acquires records its holder: this host's identity for this boot,
//! the pid, and the pid's start time. Recovery (berth/recovery/recover.hpp) decides from them,
//! without waiting for a TTL, that a holder on this host is gone: its pid no longer runs, or runs
//! a process that started at another time (the pid was reused). A holder on another host, or a
//! lease that names none, is judged by its expiry alone.

#include <berth/model/lease.hpp>    // environment_lease, new_lease
#include <berth/process/lease_processes.hpp>  // lease_starter
#include <berth/process/proc.hpp>   // host_identity, pid_start_time

#include <cstdint>  // std::int64_t
#include <string>   // std::string

#include <unistd.h>  // getpid

namespace berth {

/// A lease holder: a process on a host, in one boot.
struct lease_holder {
    std::string host{};
    std::int64_t pid = 0;
    std::int64_t start_time = 0;
};

/// This process as a lease holder. The start time is read once per thread and pid (a fork has
/// another pid): reading /proc/self/stat on every acquire cost 4-7% of a sandbox acquire+realize.
[[nodiscard]] inline lease_holder this_process_holder() {
    struct known {
        std::int64_t pid = 0;
        std::int64_t start_time = 0;
    };
    thread_local known cached;
    auto const pid = static_cast<std::int64_t>(::getpid());
    if (cached.pid != pid) cached = {pid, process::pid_start_time(pid).value_or(0)};
    return lease_holder{process::host_identity(), pid, cached.start_time};
}

/// Writes `h` into the holder fields of a lease to acquire.
inline void set_holder(new_lease& nl, lease_holder const& h) {
    nl.holder_host = h.host;
    nl.holder_pid = h.pid;
    nl.holder_start_time = h.start_time;
}

/// What can be said of a lease's holder from this process.
enum class holder_liveness {
    alive,    ///< on this host, and its pid still runs the process that acquired the lease
    dead,     ///< on this host, and that process is gone (pid free or reused)
    unknown,  ///< another host, or no holder recorded: judge by expiry
};

/// Judges `lease`'s holder against this host (see holder_liveness). A holder of this machine in
/// an earlier boot (same machine id, another boot id) is dead: a reboot ended every process.
[[nodiscard]] inline holder_liveness liveness_of_holder(environment_lease const& lease) {
    if (!lease.holder_host || !lease.holder_pid || !lease.holder_start_time) return holder_liveness::unknown;
    auto const here = process::host_identity();
    if (*lease.holder_host != here) {
        auto const machine = [](std::string const& id) { return id.substr(0, id.rfind(':')); };
        bool const known_machine = machine(here) != "unknown" && machine(here) == machine(*lease.holder_host);
        return known_machine ? holder_liveness::dead : holder_liveness::unknown;
    }
    return process::process_alive(*lease.holder_pid, *lease.holder_start_time) ? holder_liveness::alive
                                                                                : holder_liveness::dead;
}

/// What this host can say about the process that started `lease`'s commands (its holder), for
/// process::lease_process_sweeper: here (pid and start time), elsewhere (another host, or this
/// machine in an earlier boot), or unknown (no holder recorded).
[[nodiscard]] inline process::lease_starter starter_of(environment_lease const& lease) {
    using where = process::lease_starter::where;
    if (!lease.holder_host) return {};
    if (*lease.holder_host != process::host_identity()) return {.at = where::elsewhere};
    if (!lease.holder_pid || !lease.holder_start_time) return {};
    return {.at = where::here, .pid = *lease.holder_pid, .start_time = *lease.holder_start_time};
}

}  // namespace berth
