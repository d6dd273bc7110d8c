#pragma once
// The requests the run orchestrator takes and the results it returns (upstream's
// acquireForRun / realizeForRun / releaseForRun inputs and EnvironmentAcquisitionResult etc.).

#include <berth/model/driver_io.hpp>
#include <berth/model/environment.hpp>
#include <berth/model/lease.hpp>
#include <berth/model/nullable.hpp>
#include <berth/model/workspace.hpp>      // execution_workspace
#include <berth/workspace/types.hpp>      // realize_workspace_request, realized_workspace

#include <chrono>     // std::chrono::milliseconds
#include <exception>  // std::exception_ptr
#include <optional>   // std::optional
#include <stop_token> // std::stop_token
#include <string>     // std::string
#include <vector>     // std::vector

namespace berth {

struct resolve_request {
    std::string company_id{};
    /// The environment the run selected; nullopt or empty → the company's default local environment.
    std::optional<std::string> environment_id{};
};

struct acquire_for_run_request {
    std::string company_id{};
    std::optional<std::string> environment_id{};  ///< as in resolve_request
    nullable<std::string> agent_id;             ///< required-but-nullable (upstream #8375 note)
    std::string heartbeat_run_id{};               ///< the run; required, non-empty
    std::optional<std::string> issue_id{};
    std::optional<std::string> execution_workspace_id{};
    std::optional<std::string> execution_workspace_mode{};
    /// The agent adapter of the run (upstream `adapterType`), when the caller knows it: a reusable
    /// sandbox is resumed only by a run of the same adapter (acquire_request::adapter_type).
    std::optional<std::string> adapter_type{};
};

/// Result of acquire_for_run.
struct acquisition {
    environment env{};
    environment_lease lease{};
    std::optional<std::string> execution_workspace_id{};    ///< lease context
    std::optional<std::string> execution_workspace_mode{};  ///< lease context
};

struct realize_for_run_request {
    environment env{};
    environment_lease lease{};
    std::string workspace_cwd{};  ///< the execution workspace's local path
    std::optional<std::string> execution_workspace_mode{};
    /// Run in the realized workspace with `bash -lc` (300 s) — off-local environments only; a local
    /// workspace is provisioned by the workspace layer where it is created.
    std::optional<std::string> provision_command{};
    /// Local environments: realize an execution workspace first (project_primary or git_worktree,
    /// berth/workspace/runtime.hpp) and use its cwd instead of `workspace_cwd`; its record and
    /// operations are stored (the lease's execution_workspace_id, when set, names the record to
    /// reuse). Ignored by other drivers, which realize `workspace_cwd` on their side.
    std::optional<realize_workspace_request> workspace{};
    /// Deadline of the provision command (off-local: `bash -lc`, default 300 s as upstream; local:
    /// the workspace's, default workspace_runtime_options::command_timeout).
    std::optional<std::chrono::milliseconds> provision_timeout{};
    /// Cancels the long parts of realize — the provision command (off-local and local) — which end
    /// with workspace_realization_failed "... cancelled"; the run's lease is then released by the
    /// caller as for any failure (run_scope does it when unwound).
    std::stop_token stop{};
};

/// Result of realize_for_run.
struct realization {
    environment_lease lease{};                      ///< with realization metadata persisted
    std::string cwd{};                              ///< where commands run in the environment
    json_object workspace_realization{};            ///< empty when the driver has no realization step
    std::optional<execution_target> target{};       ///< nullopt when the driver resolves none
    std::optional<realized_workspace> workspace{};            ///< when the request asked for one
    std::optional<berth::execution_workspace> execution_workspace{};  ///< its record, as stored
    std::optional<std::string> remote_cwd{};  ///< the driver's workspace on the far side, when it has one
};

struct release_for_run_request {
    std::string company_id{};
    nullable<std::string> agent_id;
    std::string heartbeat_run_id{};
    run_outcome outcome = run_outcome::succeeded;
    std::optional<std::string> failure_reason{};  ///< recorded on the lease; defaults to "run_<outcome>" on failure
};

/// Which reusable leases destroy_reusable_leases ends (upstream destroyReusableSandboxLeases): the
/// company's, of an issue that became terminal and/or of an execution workspace that was closed.
/// At least one of issue_id and execution_workspace_id must be given (else nothing is destroyed).
struct destroy_reusable_request {
    std::string company_id{};
    std::optional<std::string> issue_id{};
    std::optional<std::string> execution_workspace_id{};
    /// The failure reason recorded on each lease (upstream: `execution_workspace_closed`,
    /// `issue_terminal_<status>`; default `reusable_lease_destroyed`).
    std::string reason = "reusable_lease_destroyed";
};

/// One lease that could not be released or cleaned up cleanly.
struct lease_error {
    std::string lease_id{};  ///< "*" when the run's leases could not even be listed
    environment_error_code code{};
    std::string message{};
    std::exception_ptr error{};
};

/// Result of release_for_run and reap_expired_leases: never thrown, always returned.
struct release_result {
    std::vector<environment_lease> released{};
    std::vector<lease_error> errors{};
};

}  // namespace berth
