#pragma once
//! @file
//! What the runtime services of a run are started for: the realized workspace, the agent, the
//! issue and the adapter's environment, as plain inputs (upstream's RealizedExecutionWorkspace,
//! ExecutionWorkspaceAgentRef, ExecutionWorkspaceIssueRef), and what a start returns
//! (RuntimeServiceRef). Whoever realizes workspaces (git worktrees, issue 4) fills these in.

#include <berth/model/runtime_service.hpp>  // workspace_runtime_service
#include <berth/process/environment.hpp>    // environment_map

#include <optional>    // std::optional
#include <stop_token>  // std::stop_token
#include <string>      // std::string

namespace berth::services {

using process::environment_map;

/// The realized workspace a run works in.
struct workspace_context {
    std::string cwd{};                               ///< absolute
    std::string strategy = "project_primary";        ///< project_primary | git_worktree (for the ready summary)
    std::optional<std::string> project_id{};
    std::optional<std::string> project_workspace_id{};  ///< upstream `workspaceId`
    std::optional<std::string> execution_workspace_id{};
    std::optional<std::string> branch_name{};
    std::optional<std::string> worktree_path{};
    std::optional<std::string> repo_url{};
    std::optional<std::string> repo_ref{};
    /// upstream `runtimeProvisionCommand`: run once per workspace (by cwd), lazily, before the first
    /// service of the workspace is started (not when every service is reused or adopted); retried
    /// after a failure (parse_workspace_runtime reads it from a workspace config).
    std::optional<std::string> runtime_provision_command{};
};

struct agent_ref {
    std::optional<std::string> id{};
    std::string name{};
    std::string company_id{};
};

struct issue_ref {
    std::string id{};
    std::optional<std::string> identifier{};
    std::optional<std::string> title{};
};

/// Everything a service start depends on besides its definition.
struct service_context {
    workspace_context workspace{};
    agent_ref agent{};
    std::optional<issue_ref> issue{};
    environment_map adapter_env{};  ///< the adapter's environment; passed to the service and to templates
    /// Cancels the start: checked before each service, it ends a runtime provision command (its
    /// group killed) and a readiness wait (within one probe gap; an attempt in flight ends by its
    /// own deadline, at most 2 s). The service being started is stopped (its group killed, its row
    /// `stopped`, its registry record removed) and the start throws `Failed to start runtime
    /// service "<name>": cancelled ...`; ensure_for_run then releases the run's other services.
    std::stop_token stop{};
};

/// A service as a start, a reuse or a report returns it (upstream RuntimeServiceRef).
struct runtime_service_ref {
    workspace_runtime_service service{};
    bool reused = false;
};

}  // namespace berth::services
