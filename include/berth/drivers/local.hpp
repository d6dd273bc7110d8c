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
#include <berth/model/driver_io.hpp>              // acquire_request, lease_grant, command, ...
#include <berth/process/lease_processes.hpp>      // lease_variable, lease_process_sweeper
#include <berth/process/spawn.hpp>                // process::run (its environment: process/environment.hpp)
#include <berth/recovery/holder.hpp>              // starter_of
#include <berth/workspace/manager.hpp>            // workspace_manager, workspace_runtime

#include <boost/json/object.hpp>  // boost::json::object (metadata, details)
#include <boost/json/value.hpp>   // boost::json::value (null members)

#include <chrono>    // std::chrono::milliseconds
#include <memory>    // std::shared_ptr
#include <optional>  // std::optional
#include <string>    // std::string
#include <utility>   // std::move

#include <climits>   // HOST_NAME_MAX, PATH_MAX
#include <unistd.h>  // gethostname, getcwd

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
    explicit local_driver(local_driver_options options)
        : options_(std::move(options)),
          workspaces_(std::make_shared<workspace_runtime const>(options_.workspaces)),
          sweeper_(std::make_shared<process::lease_process_sweeper>()) {}

    [[nodiscard]] local_driver_options const& options() const noexcept { return options_; }
    /// What realizes execution workspaces (shared by copies of this driver).
    [[nodiscard]] workspace_runtime const& workspaces() const noexcept { return *workspaces_; }

    /// Realizes the run's execution workspace (workspace_manager::realize over this driver's
    /// runtime): the worktree or project directory, its provisioning, its record and operations.
    /// @throws what workspace_manager::realize throws.
    template <workspace_store Store, clock Clock>
    [[nodiscard]] managed_workspace realize_execution_workspace(Store& store, Clock const& clock,
                                                                realize_workspace_request const& request,
                                                                workspace_record_context const& context) const {
        return workspace_manager<Store, Clock>(store, *workspaces_, clock).realize(request, context);
    }

    /// A lease on this machine: provider "local", no provider lease id, no expiry, and metadata
    /// `{agentId (only when the request has one), driver: "local", executionWorkspaceMode (or null)}`.
    /// @throws std::bad_alloc
    [[nodiscard]] lease_grant acquire(acquire_request const& request) const {
        lease_grant grant;
        grant.provider = "local";
        grant.metadata.reserve(3);
        if (request.agent_id.has_value()) grant.metadata.emplace("agentId", *request.agent_id);
        grant.metadata.emplace("driver", "local");
        if (request.execution_workspace_mode)
            grant.metadata.emplace("executionWorkspaceMode", *request.execution_workspace_mode);
        else
            grant.metadata.emplace("executionWorkspaceMode", nullptr);
        return grant;
    }

    /// A run that ended well (`released`), or whose lease is kept (`retained`, for inspection or
    /// reuse), leaves what its commands started in the background as it is (upstream): an empty
    /// outcome. A run that failed, was cancelled or expired ends every
    /// process that still carries its lease id (as destroy does): empty outcome when none is left,
    /// cleanup `failed` with the reason when one survives SIGKILL. Never throws.
    [[nodiscard]] release_outcome release(environment const&, environment_lease const& lease,
                                          lease_status to) const noexcept {
        if (to != lease_status::failed && to != lease_status::expired) return {};  // released, retained
        auto out = end_processes_of(lease);
        if (out.cleanup_status == cleanup_status::success) return {};
        return out;
    }

    /// Ends every process of this host that carries `BERTH_LEASE_ID=<lease id>` (SIGKILL, again
    /// until none is left): what a run whose holder died left running. Cleanup `success` when none
    /// is left, else `failed` with the reason (recovery retries: the lease is pending_cleanup).
    /// Costs one pass over /proc, shared by the leases of one recovery (process::lease_process_sweeper).
    /// Never throws.
    [[nodiscard]] release_outcome destroy(environment const&, environment_lease const& lease) const noexcept {
        return end_processes_of(lease);
    }

    /// cwd = local_path ?? remote_path ?? "/", and metadata `{workspaceRealization: {version: 1,
    /// driver: "local", transport: "local", mode, cwd (local ?? remote, else null), local: {path},
    /// remote: {path}}}`. Does not touch the filesystem (as upstream): execute checks the cwd.
    /// @throws std::bad_alloc
    [[nodiscard]] workspace_realization realize_workspace(realize_request const& request) const {
        auto nullable_string = [](std::optional<std::string> const& s) {
            return s ? boost::json::value(*s) : boost::json::value(nullptr);
        };
        std::optional<std::string> const chosen = request.local_path ? request.local_path : request.remote_path;

        boost::json::object record;
        record["version"] = 1;
        record["driver"] = "local";
        record["transport"] = "local";
        record["mode"] = nullable_string(request.mode);
        record["cwd"] = nullable_string(chosen);
        record["local"] = boost::json::object{{"path", nullable_string(request.local_path)}};
        record["remote"] = boost::json::object{{"path", nullable_string(request.remote_path)}};

        workspace_realization realization;
        realization.cwd = chosen.value_or("/");
        realization.metadata["workspaceRealization"] = std::move(record);
        return realization;
    }

    /// Runs `cmd` on this machine (berth::process::run) with this process's environment minus
    /// secrets (the variables process::sanitized_environment() lists), `cmd.env` on top, and
    /// `BERTH_LEASE_ID=<lease id>` over both (cmd.env cannot hide a process from destroy), in
    /// `cmd.cwd` (which must exist) or this process's cwd.
    /// @throws berth::process_error when the program or the cwd is missing or the spawn fails (a
    ///         non-zero exit is a result, not an error); whatever `cmd.on_output` throws.
    [[nodiscard]] command_result execute(environment const&, environment_lease const& lease, command const& cmd) const {
        process::run_options run{.inherit_sanitized_environment = true, .kill_grace = options_.kill_grace};
        if (lease.id.empty()) return process::run(cmd, run);
        std::string const variable(process::lease_variable);
        if (!cmd.env.contains(variable)) {
            run.base_environment.emplace(variable, lease.id);
            return process::run(cmd, run);
        }
        command own = cmd;  // rare: the command names the variable itself
        own.env[variable] = lease.id;
        return process::run(own, run);
    }

    /// Always ok on a host that runs berth: summary `probe_summary`, details `{hostname, cwd}`
    /// (null where the system call fails). Never throws; under memory exhaustion it returns a
    /// default (not ok) result.
    [[nodiscard]] probe_result probe(environment const&) const noexcept {
        try {
            probe_result result;
            result.ok = true;
            result.summary = probe_summary;
            char host[HOST_NAME_MAX + 1] = {};
            if (::gethostname(host, sizeof host - 1) == 0)
                result.details["hostname"] = host;
            else
                result.details["hostname"] = nullptr;
            char cwd[PATH_MAX];
            if (::getcwd(cwd, sizeof cwd) != nullptr)
                result.details["cwd"] = cwd;
            else
                result.details["cwd"] = nullptr;
            return result;
        } catch (...) {
            return probe_result{};
        }
    }

    /// `{kind: "local", environment_id, lease_id}`; no transport, remote cwd or spec.
    /// @throws std::bad_alloc
    [[nodiscard]] berth::execution_target execution_target(environment const& env,
                                                           environment_lease const& lease) const {
        berth::execution_target target;
        target.kind = "local";
        target.environment_id = env.id;
        target.lease_id = lease.id;
        return target;
    }

private:
    [[nodiscard]] release_outcome end_processes_of(environment_lease const& lease) const noexcept {
        try {
            if (sweeper_->end_processes_of(lease.id, starter_of(lease)))
                return {.cleanup_status = cleanup_status::success, .failure_reason = std::nullopt};
            return {.cleanup_status = cleanup_status::failed,
                    .failure_reason = "processes of lease " + lease.id + " still run after SIGKILL"};
        } catch (...) {
            return {.cleanup_status = cleanup_status::failed, .failure_reason = std::nullopt};
        }
    }

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
