#pragma once
// Execution workspaces and their operations: the enums (upstream packages/shared
// types/workspace-runtime.ts and types/workspace-operation.ts, exact values), the execution
// workspace record (upstream table `execution_workspaces`, §1.5) and the workspace operation record
// (upstream table `workspace_operations`, §1.7), with the inputs their stores take.

#include <berth/error.hpp>  // store_error (the shared validation below)
#include <berth/model/enum_string.hpp>
#include <berth/model/paging.hpp>
#include <berth/model/record.hpp>
#include <berth/model/time.hpp>

#include <boost/describe/enum.hpp>  // BOOST_DEFINE_ENUM_CLASS

#include <cstdint>   // std::int64_t
#include <optional>  // std::optional
#include <string>    // std::string
#include <utility>   // std::move

namespace berth {

/// ExecutionWorkspaceStrategyType: how a workspace is made. berth realizes project_primary and
/// git_worktree; the other two are owned by adapters (type values only, as upstream).
BOOST_DEFINE_ENUM_CLASS(workspace_strategy_type, project_primary, git_worktree, adapter_managed, cloud_sandbox)

/// ExecutionWorkspaceProviderType: what holds the workspace's files.
BOOST_DEFINE_ENUM_CLASS(workspace_provider_type, local_fs, git_worktree, adapter_managed, cloud_sandbox)

/// ExecutionWorkspaceStatus.
BOOST_DEFINE_ENUM_CLASS(execution_workspace_status, active, idle, in_review, archived, cleanup_failed)

/// The persisted `mode` column of execution_workspaces (ExecutionWorkspaceMode without inherit,
/// reuse_existing and agent_default, plus adapter_managed and cloud_sandbox).
BOOST_DEFINE_ENUM_CLASS(execution_workspace_mode, shared_workspace, isolated_workspace, operator_branch,
                        adapter_managed, cloud_sandbox)

/// ExecutionWorkspaceInput.source: where the base cwd of a realization comes from.
BOOST_DEFINE_ENUM_CLASS(workspace_source, project_primary, task_session, agent_home)

/// WorkspaceOperationPhase.
BOOST_DEFINE_ENUM_CLASS(workspace_operation_phase, worktree_prepare, workspace_config_freshness, workspace_provision,
                        workspace_runtime_provision, workspace_teardown, worktree_cleanup, workspace_finalize)

/// WorkspaceOperationStatus.
BOOST_DEFINE_ENUM_CLASS(workspace_operation_status, running, succeeded, failed, skipped)

template <> inline constexpr char const* enum_label<workspace_strategy_type> = "execution workspace strategy type";
template <> inline constexpr char const* enum_label<workspace_provider_type> = "execution workspace provider type";
template <> inline constexpr char const* enum_label<execution_workspace_status> = "execution workspace status";
template <> inline constexpr char const* enum_label<execution_workspace_mode> = "execution workspace mode";
template <> inline constexpr char const* enum_label<workspace_source> = "execution workspace source";
template <> inline constexpr char const* enum_label<workspace_operation_phase> = "workspace operation phase";
template <> inline constexpr char const* enum_label<workspace_operation_status> = "workspace operation status";

/// One execution workspace (upstream `execution_workspaces`; every column, same names). Config
/// (provision/teardown/cleanup commands) lives in `metadata.config`; berth's realization also
/// writes `createdByRuntime`, `repoRoot`, `branchCreatedByRuntime` and `branchHeadSha` there
/// (docs/workspaces.md).
struct execution_workspace {
    std::string id{};
    std::string company_id{};
    std::string project_id{};
    std::optional<std::string> project_workspace_id{};
    std::optional<std::string> source_issue_id{};
    execution_workspace_mode mode = execution_workspace_mode::shared_workspace;
    workspace_strategy_type strategy_type = workspace_strategy_type::project_primary;
    std::string name{};
    execution_workspace_status status = execution_workspace_status::active;
    std::optional<std::string> cwd{};
    std::optional<std::string> repo_url{};
    std::optional<std::string> base_ref{};
    std::optional<std::string> branch_name{};
    workspace_provider_type provider_type = workspace_provider_type::local_fs;
    std::optional<std::string> provider_ref{};  ///< the worktree path for git_worktree
    std::optional<std::string> derived_from_execution_workspace_id{};
    std::optional<timestamp> last_used_at{};
    timestamp opened_at{};
    std::optional<timestamp> closed_at{};
    std::optional<timestamp> cleanup_eligible_at{};
    std::optional<std::string> cleanup_reason{};
    std::optional<json_object> metadata{};
    timestamp created_at{};
    timestamp updated_at{};
};
BOOST_DESCRIBE_STRUCT(execution_workspace, (),
                      (id, company_id, project_id, project_workspace_id, source_issue_id, mode, strategy_type, name,
                       status, cwd, repo_url, base_ref, branch_name, provider_type, provider_ref,
                       derived_from_execution_workspace_id, last_used_at, opened_at, closed_at, cleanup_eligible_at,
                       cleanup_reason, metadata, created_at, updated_at))
template <> inline constexpr char const* record_name<execution_workspace> = "execution_workspace";

/// Input of execution_workspace_store::create_execution_workspace: the record without id and
/// timestamps (opened_at = last_used_at = created_at = updated_at = now).
struct new_execution_workspace {
    std::string company_id{};  ///< required
    std::string project_id{};  ///< required
    std::optional<std::string> project_workspace_id{};
    std::optional<std::string> source_issue_id{};
    execution_workspace_mode mode = execution_workspace_mode::shared_workspace;
    workspace_strategy_type strategy_type = workspace_strategy_type::project_primary;
    std::string name{};  ///< required
    execution_workspace_status status = execution_workspace_status::active;
    std::optional<std::string> cwd{};
    std::optional<std::string> repo_url{};
    std::optional<std::string> base_ref{};
    std::optional<std::string> branch_name{};
    workspace_provider_type provider_type = workspace_provider_type::local_fs;
    std::optional<std::string> provider_ref{};
    std::optional<std::string> derived_from_execution_workspace_id{};
    std::optional<json_object> metadata{};
};

/// Input of execution_workspace_store::update_execution_workspace: each engaged member replaces
/// the stored one; for nullable columns an engaged nullopt sets null.
struct execution_workspace_patch {
    std::optional<std::string> name{};
    std::optional<execution_workspace_status> status{};
    std::optional<std::optional<std::string>> cwd{};
    std::optional<std::optional<std::string>> repo_url{};
    std::optional<std::optional<std::string>> base_ref{};
    std::optional<std::optional<std::string>> branch_name{};
    std::optional<workspace_provider_type> provider_type{};
    std::optional<std::optional<std::string>> provider_ref{};
    std::optional<std::optional<timestamp>> last_used_at{};
    std::optional<std::optional<timestamp>> closed_at{};
    std::optional<std::optional<timestamp>> cleanup_eligible_at{};
    std::optional<std::optional<std::string>> cleanup_reason{};
    std::optional<std::optional<json_object>> metadata{};
};

/// Filter of execution_workspace_store::list_execution_workspaces (every engaged member must match).
struct execution_workspace_filter {
    std::optional<std::string> project_id{};
    std::optional<execution_workspace_status> status{};
    std::optional<std::string> source_issue_id{};
    std::optional<std::string> branch_name{};
    /// At most this many rows (paging.hpp).
    std::size_t limit = default_list_limit;
    /// The id of the last row of the previous page: the page starts just after that row's place
    /// in the list's order (paging.hpp, "row cursors"). An id the store does not hold gives an empty page.
    std::optional<std::string> after{};
};

/// One git or workspace command berth ran for a workspace (upstream `workspace_operations`; every
/// column, same names). berth keeps no separate log store: `log_*` stay null and the output is in
/// the excerpts (the last 4 KiB of each stream).
struct workspace_operation {
    std::string id{};
    std::string company_id{};
    std::optional<std::string> execution_workspace_id{};
    std::optional<std::string> heartbeat_run_id{};
    std::optional<std::string> issue_id{};
    workspace_operation_phase phase = workspace_operation_phase::worktree_prepare;
    std::optional<std::string> command{};  ///< for display: argv joined, non-plain parts JSON-quoted
    std::optional<std::string> cwd{};
    workspace_operation_status status = workspace_operation_status::running;
    std::optional<int> exit_code{};
    std::optional<std::string> log_store{};
    std::optional<std::string> log_ref{};
    std::optional<std::int64_t> log_bytes{};
    std::optional<std::string> log_sha256{};
    bool log_compressed = false;
    std::optional<std::string> stdout_excerpt{};
    std::optional<std::string> stderr_excerpt{};
    std::optional<json_object> metadata{};
    timestamp started_at{};
    std::optional<timestamp> finished_at{};
    timestamp created_at{};
    timestamp updated_at{};
};
BOOST_DESCRIBE_STRUCT(workspace_operation, (),
                      (id, company_id, execution_workspace_id, heartbeat_run_id, issue_id, phase, command, cwd,
                       status, exit_code, log_store, log_ref, log_bytes, log_sha256, log_compressed, stdout_excerpt,
                       stderr_excerpt, metadata, started_at, finished_at, created_at, updated_at))
template <> inline constexpr char const* record_name<workspace_operation> = "workspace_operation";

/// Input of operation_store::begin_operation: a `running` operation started at `now`.
struct new_workspace_operation {
    std::string company_id{};  ///< required
    std::optional<std::string> execution_workspace_id{};
    std::optional<std::string> heartbeat_run_id{};
    std::optional<std::string> issue_id{};
    workspace_operation_phase phase = workspace_operation_phase::worktree_prepare;
    std::optional<std::string> command{};
    std::optional<std::string> cwd{};
    std::optional<json_object> metadata{};
};

/// Input of operation_store::update_operation: each engaged member replaces the stored one.
struct workspace_operation_patch {
    std::optional<workspace_operation_status> status{};
    std::optional<std::optional<int>> exit_code{};
    std::optional<std::optional<std::string>> execution_workspace_id{};
    std::optional<std::optional<std::string>> stdout_excerpt{};
    std::optional<std::optional<std::string>> stderr_excerpt{};
    std::optional<std::optional<json_object>> metadata{};
    std::optional<std::optional<timestamp>> finished_at{};
};

/// Filter of operation_store::list_operations (every engaged member must match). In the SQL
/// stores, upstream's indexes start with the company: without `company_id` the list reads every row.
struct workspace_operation_filter {
    std::optional<std::string> company_id{};
    std::optional<std::string> execution_workspace_id{};
    std::optional<std::string> heartbeat_run_id{};
    std::optional<std::string> issue_id{};
    /// At most this many rows (paging.hpp).
    std::size_t limit = default_list_limit;
    /// The id of the last row of the previous page: the page starts just after that row's place
    /// in the list's order (paging.hpp, "row cursors"). An id the store does not hold gives an empty page.
    std::optional<std::string> after{};
};

// ---- helpers every store shares (so that each applies the same rules) -------------------------

/// The record create_execution_workspace stores for `input`.
/// @throws store_error invalid_argument naming the empty field (company id, project id, name).
[[nodiscard]] inline execution_workspace make_execution_workspace(new_execution_workspace const& input,
                                                                  std::string id, timestamp now) {
    if (input.company_id.empty())
        throw store_error(store_errc::invalid_argument, "An execution workspace needs a company id.");
    if (input.project_id.empty())
        throw store_error(store_errc::invalid_argument, "An execution workspace needs a project id.");
    if (input.name.empty()) throw store_error(store_errc::invalid_argument, "An execution workspace needs a name.");
    return execution_workspace{.id = std::move(id),
                               .company_id = input.company_id,
                               .project_id = input.project_id,
                               .project_workspace_id = input.project_workspace_id,
                               .source_issue_id = input.source_issue_id,
                               .mode = input.mode,
                               .strategy_type = input.strategy_type,
                               .name = input.name,
                               .status = input.status,
                               .cwd = input.cwd,
                               .repo_url = input.repo_url,
                               .base_ref = input.base_ref,
                               .branch_name = input.branch_name,
                               .provider_type = input.provider_type,
                               .provider_ref = input.provider_ref,
                               .derived_from_execution_workspace_id = input.derived_from_execution_workspace_id,
                               .last_used_at = now,
                               .opened_at = now,
                               .closed_at = std::nullopt,
                               .cleanup_eligible_at = std::nullopt,
                               .cleanup_reason = std::nullopt,
                               .metadata = input.metadata,
                               .created_at = now,
                               .updated_at = now};
}

/// Applies every engaged member of `patch` to `w`; updated_at = now.
/// @throws store_error invalid_argument for an empty name (`w` is unchanged then).
inline void apply_patch(execution_workspace& w, execution_workspace_patch const& patch, timestamp now) {
    if (patch.name && patch.name->empty())
        throw store_error(store_errc::invalid_argument, "An execution workspace needs a name.");
    auto set = [](auto& member, auto const& value) {
        if (value) member = *value;
    };
    set(w.name, patch.name);
    set(w.status, patch.status);
    set(w.cwd, patch.cwd);
    set(w.repo_url, patch.repo_url);
    set(w.base_ref, patch.base_ref);
    set(w.branch_name, patch.branch_name);
    set(w.provider_type, patch.provider_type);
    set(w.provider_ref, patch.provider_ref);
    set(w.last_used_at, patch.last_used_at);
    set(w.closed_at, patch.closed_at);
    set(w.cleanup_eligible_at, patch.cleanup_eligible_at);
    set(w.cleanup_reason, patch.cleanup_reason);
    set(w.metadata, patch.metadata);
    w.updated_at = now;
}

/// The record begin_operation stores for `input`: `running`, started now.
/// @throws store_error invalid_argument for an empty company id.
[[nodiscard]] inline workspace_operation make_operation(new_workspace_operation const& input, std::string id,
                                                        timestamp now) {
    if (input.company_id.empty())
        throw store_error(store_errc::invalid_argument, "A workspace operation needs a company id.");
    workspace_operation op{};
    op.id = std::move(id);
    op.company_id = input.company_id;
    op.execution_workspace_id = input.execution_workspace_id;
    op.heartbeat_run_id = input.heartbeat_run_id;
    op.issue_id = input.issue_id;
    op.phase = input.phase;
    op.command = input.command;
    op.cwd = input.cwd;
    op.status = workspace_operation_status::running;
    op.metadata = input.metadata;
    op.started_at = op.created_at = op.updated_at = now;
    return op;
}

/// Applies every engaged member of `patch` to `op`; updated_at = now.
inline void apply_patch(workspace_operation& op, workspace_operation_patch const& patch, timestamp now) {
    auto set = [](auto& member, auto const& value) {
        if (value) member = *value;
    };
    set(op.status, patch.status);
    set(op.exit_code, patch.exit_code);
    set(op.execution_workspace_id, patch.execution_workspace_id);
    set(op.stdout_excerpt, patch.stdout_excerpt);
    set(op.stderr_excerpt, patch.stderr_excerpt);
    set(op.metadata, patch.metadata);
    set(op.finished_at, patch.finished_at);
    op.updated_at = now;
}

}  // namespace berth
