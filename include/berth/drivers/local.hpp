#pragma once
//! @file
//! berth::local_driver — the environment driver for the machine berth runs on (upstream §2.1).
//!
//! There is nothing to provision: a lease is a record (provider "local"), releasing a run that
//! ended well cleans nothing up, the workspace is the path the caller gives, and commands run as child processes of
//! this process through berth::process::run, with the parent's environment minus secrets
//! (berth::process::sanitized_environment), the command's own variables on top, and
//! `BERTH_LEASE_ID=<lease id>` over both. Destroy (what recovery calls for a lease whose holder
//! died), and the release of a run that failed, was cancelled or expired, end every process that
//! still carries that variable: the descendants of an interrupted run, however they detached
//! (berth/process/lease_processes.hpp).
//!
//! @code
//! berth::local_driver local;
//! auto r = local.execute(env, lease, {.program = "make", .args = {"test"}, .cwd = "/srv/work"});
//! @endcode
//!
//! Models environment_driver, driver_with_realize_workspace, driver_with_execute, driver_with_probe,
//! driver_with_execution_target and driver_with_destroy (not resume: a local lease has no provider
//! side to resume).
//! It also owns the runtime that realizes execution workspaces (git worktrees, provisioning),
//! configured through local_driver_options::workspaces. Every member is const and safe to call
//! from many threads.

#include <berth/concepts/clock.hpp>               // clock (the workspace records' timestamps)
#include <berth/concepts/environment_driver.hpp>  // driver_tag, the driver concepts
#include <berth/concepts/orchestrator_store.hpp>  // workspace_store (where execution workspaces are recorded)
#include <berth/detail/config.hpp>                // BERTH_DECL, BERTH_SEPARATE_COMPILATION
#include <berth/model/driver_io.hpp>              // acquire_request, lease_grant, command, ...
#include <berth/workspace/options.hpp>            // workspace_runtime_options

#include <chrono>       // std::chrono::milliseconds
#include <memory>       // std::shared_ptr
#include <string_view>  // std::string_view

// What this header names and does not define: the runtime and the sweeper are held by pointer, and
// the members that use them are defined in drivers/impl/local.hpp (compiled once in <berth/src.hpp>
// under BERTH_SEPARATE_COMPILATION), so that a TU that uses a local_driver parses neither the
// workspace runtime (git, locks, <filesystem>, <thread>) nor the spawn layer.
namespace berth {
class workspace_runtime;                // workspace/runtime.hpp
struct realize_workspace_request;       // workspace/types.hpp
struct workspace_record_context;        // workspace/manager.hpp
struct managed_workspace;               // workspace/manager.hpp
namespace process {
class lease_process_sweeper;            // process/lease_processes.hpp
}  // namespace process
}  // namespace berth

/// Defined by this header: <berth/template_definitions.hpp> then includes the definition of
/// local_driver's member template (drivers/impl/local_workspaces.hpp).
#define BERTH_DRIVERS_LOCAL_INCLUDED 1

namespace berth {

/// Options of local_driver.
struct local_driver_options {
    /// After a command's deadline: SIGTERM, then SIGKILL this much later (see process::run_options).
    std::chrono::milliseconds kill_grace{std::chrono::seconds(2)};
    /// How the driver realizes execution workspaces: git, the shell and environment of provision
    /// commands, their deadline (workspace/runtime.hpp).
    workspace_runtime_options workspaces{};
};

class local_driver {
public:
    using driver_concept = driver_tag;
    static constexpr std::string_view name = "local";
    static constexpr driver_kind family = driver_kind::local;

    /// The exact probe summary (upstream's, with "this host" for "this Paperclip host").
    static constexpr char const* probe_summary = "Local environment is available on this host.";

    /// The local driver realizes and provisions the run's execution workspace itself (project
    /// primary or a git worktree), recording it and its operations in the store.
    static constexpr bool manages_execution_workspaces = true;

    local_driver() : local_driver(local_driver_options{}) {}
    explicit local_driver(local_driver_options options);

    [[nodiscard]] local_driver_options const& options() const noexcept { return options_; }
    /// What realizes execution workspaces (shared by copies of this driver).
    [[nodiscard]] workspace_runtime const& workspaces() const noexcept { return *workspaces_; }

    /// Realizes the run's execution workspace (workspace_manager::realize over this driver's
    /// runtime): the worktree or project directory, its provisioning, its record and operations.
    /// @throws what workspace_manager::realize throws.
    template <workspace_store Store, clock Clock>
    [[nodiscard]] managed_workspace realize_execution_workspace(Store& store, Clock const& clock,
                                                                realize_workspace_request const& request,
                                                                workspace_record_context const& context) const;

    /// A lease on this machine: provider "local", no provider lease id, no expiry, and metadata
    /// `{agentId (only when the request has one), driver: "local", executionWorkspaceMode (or null)}`.
    /// @throws std::bad_alloc
    [[nodiscard]] lease_grant acquire(acquire_request const& request) const;

    /// A run that ended well (`released`), or whose lease is kept (`retained`, for inspection or
    /// reuse), leaves what its commands started in the background as it is (upstream): an empty
    /// outcome. A run that failed, was cancelled or expired ends every
    /// process that still carries its lease id (as destroy does): empty outcome when none is left,
    /// cleanup `failed` with the reason when one survives SIGKILL. Never throws.
    [[nodiscard]] release_outcome release(environment const&, environment_lease const& lease,
                                          lease_status to) const noexcept;

    /// Ends every process of this host that carries `BERTH_LEASE_ID=<lease id>` (SIGKILL, again
    /// until none is left): what a run whose holder died left running. Cleanup `success` when none
    /// is left, else `failed` with the reason (recovery retries: the lease is pending_cleanup).
    /// Costs one pass over /proc, shared by the leases of one recovery (process::lease_process_sweeper).
    /// Never throws.
    [[nodiscard]] release_outcome destroy(environment const&, environment_lease const& lease) const noexcept;

    /// cwd = local_path ?? remote_path ?? "/", and metadata `{workspaceRealization: {version: 1,
    /// driver: "local", transport: "local", mode, cwd (local ?? remote, else null), local: {path},
    /// remote: {path}}}`. Does not touch the filesystem (as upstream): execute checks the cwd.
    /// @throws std::bad_alloc
    [[nodiscard]] workspace_realization realize_workspace(realize_request const& request) const;

    /// Runs `cmd` on this machine (berth::process::run) with this process's environment minus
    /// secrets (the variables process::sanitized_environment() lists), `cmd.env` on top, and
    /// `BERTH_LEASE_ID=<lease id>` over both (cmd.env cannot hide a process from destroy), in
    /// `cmd.cwd` (which must exist) or this process's cwd.
    /// @throws berth::process_error when the program or the cwd is missing or the spawn fails (a
    ///         non-zero exit is a result, not an error); whatever `cmd.on_output` throws.
    [[nodiscard]] command_result execute(environment const&, environment_lease const& lease, command const& cmd) const;

    /// Always ok on a host that runs berth: summary `probe_summary`, details `{hostname, cwd}`
    /// (null where the system call fails). Never throws; under memory exhaustion it returns a
    /// default (not ok) result.
    [[nodiscard]] probe_result probe(environment const&) const noexcept;

    /// `{kind: "local", environment_id, lease_id}`; no transport, remote cwd or spec.
    /// @throws std::bad_alloc
    [[nodiscard]] berth::execution_target execution_target(environment const& env,
                                                           environment_lease const& lease) const;

private:
    [[nodiscard]] release_outcome end_processes_of(environment_lease const& lease) const noexcept;

    local_driver_options options_{};
    std::shared_ptr<workspace_runtime const> workspaces_;
    std::shared_ptr<process::lease_process_sweeper> sweeper_;  // shared by copies: one pass per recovery
};

static_assert(environment_driver<local_driver>);
static_assert(driver_with_realize_workspace<local_driver>);
static_assert(driver_with_execute<local_driver>);
static_assert(driver_with_probe<local_driver>);
static_assert(driver_with_execution_target<local_driver>);
static_assert(driver_with_execution_workspaces<local_driver>);
static_assert(driver_with_destroy<local_driver>);
static_assert(!driver_with_resume<local_driver>, "a local lease has no provider side to resume");

}  // namespace berth

// The definitions: here in header-only mode. Under BERTH_SEPARATE_COMPILATION the non-template
// members are compiled once in <berth/src.hpp>, and the member template is defined where an
// orchestrator is instantiated (<berth/template_definitions.hpp>, included by
// <berth/orchestrator/instantiate.hpp>).
#ifndef BERTH_SEPARATE_COMPILATION
#include <berth/drivers/impl/local.hpp>
#include <berth/drivers/impl/local_workspaces.hpp>
#endif
