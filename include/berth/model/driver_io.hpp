#pragma once
// What the orchestrator hands to an environment driver and what a driver returns.
// Drivers perform side effects (create a sandbox, mkdir a remote workspace, run a process);
// the store alone writes lease state, so every state change is fenced and audited in one place.

#include <berth/model/command.hpp>  // command, command_result, output_stream (std-only, shared with process/)
#include <berth/model/environment.hpp>
#include <berth/model/lease.hpp>
#include <berth/model/nullable.hpp>
#include <berth/model/record.hpp>

#include <optional>  // std::optional
#include <string>    // std::string

namespace berth {

/// Input of a driver's acquire: the context of the run that asks for a lease.
struct acquire_request {
    environment env{};
    std::string company_id{};
    nullable<std::string> agent_id;  ///< required-but-nullable: ad-hoc probes pass std::nullopt
    std::optional<std::string> issue_id{};
    std::optional<std::string> heartbeat_run_id{};
    std::optional<std::string> execution_workspace_id{};
    std::optional<std::string> execution_workspace_mode{};
    lease_policy_kind lease_policy = lease_policy_kind::ephemeral;
    /// The agent adapter the run uses (upstream `adapterType`); part of a reusable sandbox's scope
    /// record and fingerprints. nullopt when the caller does not say (upstream: null).
    std::optional<std::string> adapter_type{};
};

/// What a driver returns from acquire (or resume): the provider-side facts of the lease.
struct lease_grant {
    std::optional<std::string> provider{};           ///< "local", "ssh", a sandbox provider key, ...
    std::optional<std::string> provider_lease_id{};  ///< the provider's handle, if any
    std::optional<timestamp> expires_at{};           ///< a provider-imposed expiry, if any
    json_object metadata{};                          ///< stored as the lease's metadata (never secrets)
};

/// What a driver reports after releasing or destroying the provider side of a lease.
struct release_outcome {
    std::optional<berth::cleanup_status> cleanup_status{};
    std::optional<std::string> failure_reason{};
};

/// Input of realize_workspace (upstream `workspace: {localPath, remotePath, mode, metadata}`).
struct realize_request {
    environment env{};
    environment_lease lease{};
    std::optional<std::string> local_path{};
    std::optional<std::string> remote_path{};
    std::optional<std::string> mode{};
    json_object metadata{};
};

/// Where the workspace is, in the environment, once realized.
struct workspace_realization {
    std::string cwd{};
    /// Where the workspace lives on the far side (an SSH host's directory, a sandbox path), when
    /// the environment is not this machine: typed, so no caller reads it back out of metadata.
    std::optional<std::string> remote_cwd{};
    json_object metadata{};  ///< `workspaceRealization` is persisted on the lease when non-empty
};

/// Outcome of a driver probe. Probes never throw: a failure is `ok = false` with details.
struct probe_result {
    bool ok = false;
    std::string summary{};
    json_object details{};
};

/// What an adapter needs to reach the environment (upstream AdapterExecutionTarget):
/// kind "local", or "remote" with a transport ("ssh", "sandbox") and its spec.
struct execution_target {
    std::string kind{};
    std::optional<std::string> transport{};
    std::string environment_id{};
    std::string lease_id{};
    std::optional<std::string> remote_cwd{};
    json_object spec{};
};
BOOST_DESCRIBE_STRUCT(execution_target, (), (kind, transport, environment_id, lease_id, remote_cwd, spec))
template <> inline constexpr char const* record_name<execution_target> = "execution_target";

}  // namespace berth
