#pragma once
//! @file
//! What realizing and cleaning up an execution workspace take and return (upstream
//! ExecutionWorkspaceInput / IssueRef / AgentRef / RealizedExecutionWorkspace, the strategy part
//! of the workspace config, and cleanupExecutionWorkspaceArtifacts' input and result).

#include <berth/model/workspace.hpp>  // workspace_source, workspace_strategy_type, execution_workspace

#include <berth/model/command.hpp>    // output_stream

#include <chrono>      // std::chrono::milliseconds
#include <functional>  // std::function
#include <memory>    // std::shared_ptr
#include <optional>  // std::optional
#include <stop_token>  // std::stop_token
#include <string>    // std::string
#include <vector>    // std::vector

namespace berth {

class workspace_lock;  // berth/workspace/lock.hpp

/// The base a workspace is realized from (upstream ExecutionWorkspaceInput).
struct workspace_base {
    std::string base_cwd{};  ///< the project's checkout (project_primary: the cwd itself)
    workspace_source source = workspace_source::project_primary;
    std::optional<std::string> project_id{};
    std::optional<std::string> workspace_id{};  ///< the project workspace's id
    std::optional<std::string> repo_url{};
    std::optional<std::string> repo_ref{};
};

/// The issue a workspace is for (upstream ExecutionWorkspaceIssueRef).
struct workspace_issue {
    std::string id{};
    std::optional<std::string> identifier{};
    std::optional<std::string> title{};
};

/// The agent a workspace is for (upstream ExecutionWorkspaceAgentRef).
struct workspace_agent {
    std::optional<std::string> id{};
    std::string name{};
    std::string company_id{};
};

/// The strategy part of a workspace config (upstream `config.workspaceStrategy`) plus the commands
/// of `metadata.config`. Read from JSON with workspace_strategy_from_json (workspace/runtime.hpp).
struct workspace_strategy {
    workspace_strategy_type type = workspace_strategy_type::project_primary;
    std::optional<std::string> branch_template{};      ///< default `{{issue.identifier}}-{{slug}}`
    std::optional<std::string> worktree_parent_dir{};  ///< default `<repo>/.berth/worktrees`
    std::optional<std::string> base_ref{};
    std::optional<std::string> provision_command{};
    std::optional<std::string> teardown_command{};
    std::optional<std::string> cleanup_command{};
};

/// Input of workspace_runtime::realize (upstream realizeExecutionWorkspace's input).
struct realize_workspace_request {
    workspace_base base{};
    workspace_strategy strategy{};
    std::optional<workspace_issue> issue{};
    workspace_agent agent{};
    /// Cancels `git worktree add` and the provision command (their process groups are ended);
    /// realize then throws workspace_error "... cancelled". A cancelled `git worktree add` leaves
    /// nothing: what it made (directory, admin entry, the branch it was creating) is discarded
    /// at once. After a cancelled provision command the worktree created so far stays, recorded,
    /// for cleanup.
    std::stop_token stop{};
    /// Deadline of the provision command; nullopt: workspace_runtime_options::command_timeout.
    std::optional<std::chrono::milliseconds> provision_timeout{};
    /// Each chunk of the provision command's output as it arrives (progress for a caller).
    std::function<void(output_stream, std::string_view)> on_provision_output{};
    /// The caller removes the workspace when its run ends (berth-run without --keep). Recorded on
    /// the worktree's operation and record, so that a recovery after a crash removes what the run
    /// would have removed, and keeps what it would have kept (docs/reliability.md).
    bool remove_when_run_ends = false;
    /// The lease the run holds: its provision command carries `BERTH_LEASE_ID=<lease id>`, so that
    /// what it leaves running is ended with the lease's other processes (process/lease_processes.hpp).
    std::optional<std::string> lease_id{};
};

/// A realized workspace (upstream RealizedExecutionWorkspace, plus what cleanup needs later).
struct realized_workspace {
    workspace_base base{};
    workspace_strategy_type strategy = workspace_strategy_type::project_primary;
    std::string cwd{};
    std::optional<std::string> branch_name{};
    std::optional<std::string> worktree_path{};
    std::optional<std::string> repo_root{};
    std::optional<std::string> base_ref{};  ///< the start point of a new worktree (nullopt on reuse)
    bool created = false;                   ///< a new worktree was added by this call
    bool branch_created = false;            ///< ... and its branch too (`worktree add -b`)
    std::optional<std::string> branch_head_sha{};  ///< the new branch's tip, when branch_created
    std::vector<std::string> warnings{};
    /// git_worktree: this run's hold on the worktree (berth/workspace/lock.hpp), shared by every
    /// copy of this result; the worktree is the run's until the last copy is gone. Pass it to
    /// cleanup (cleanup_workspace_request::held_lock) so that cleanup knows the lock is the caller's.
    std::shared_ptr<workspace_lock const> lock{};
};

/// Input of workspace_runtime::cleanup (upstream cleanupExecutionWorkspaceArtifacts' input).
struct cleanup_workspace_request {
    execution_workspace workspace{};
    std::optional<std::string> project_workspace_cwd{};
    std::optional<std::string> project_cleanup_command{};
    std::optional<std::string> cleanup_command{};
    std::optional<std::string> teardown_command{};
    /// The caller's hold on the worktree (realized_workspace::lock). Without it, cleanup takes the
    /// lock itself, and skips (with a warning) a worktree another live run holds.
    std::shared_ptr<workspace_lock const> held_lock{};
};

/// What cleanup did. Failures are warnings: cleanup never throws for a command or git failure.
struct cleanup_result {
    std::optional<std::string> cleaned_path{};
    bool cleaned = false;  ///< no path, or the path no longer exists
    std::vector<std::string> warnings{};
};

}  // namespace berth
