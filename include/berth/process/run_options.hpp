#pragma once
//! @file
//! berth::process::run_options — how process::run (process/spawn.hpp) and process::child::start
//! (process/child.hpp) treat the child beyond what the command says: its environment, the
//! deadline's grace, dying with its parent. Its own header so that the spawn layer's helpers
//! (process/detail/spawn.hpp) need not include spawn.hpp, whose definitions include them.

#include <berth/process/environment.hpp>  // environment_map

#include <chrono>  // std::chrono::milliseconds, std::chrono::seconds

namespace berth::process {

/// How run() treats the child, beyond what the command itself says.
struct run_options {
    /// Start the child's environment from this process's environment minus secrets (exactly the
    /// variables sanitized_environment() returns), read from `environ` at spawn time without
    /// building a map. Off by default: nothing is inherited unless asked for. (A name that appears
    /// twice in `environ` is passed on twice; the child's getenv sees the first, as ours does.)
    bool inherit_sanitized_environment = false;
    /// Variables set on top of the inherited ones (if any), before `command::env` is applied on
    /// top of them. With the defaults, the child gets only this map and the command's own env.
    environment_map base_environment{};
    /// Once the deadline passed: time between SIGTERM and SIGKILL to the child's process group, and
    /// again between SIGKILL and giving up on pipes still held open by a process outside the
    /// group (a daemon that called setsid).
    std::chrono::milliseconds kill_grace{std::chrono::seconds(2)};
    /// The child gets SIGKILL when the thread that called run() dies (PR_SET_PDEATHSIG): a berth
    /// process killed with -9 takes its git, provisioning and command processes with it instead of
    /// leaving them working in a workspace the next run reuses (docs/reliability.md). Only the
    /// direct child: descendants in its process group are stopped by run()'s own deadline, or by
    /// the next run's recovery.
    bool die_with_parent = true;
};

}  // namespace berth::process
