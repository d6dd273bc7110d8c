#pragma once
//! @file
//! berth::workspace_manager — realization and cleanup with their records: every git and
//! workspace command is stored as a `workspace_operations` row, and the execution workspace is a
//! row of `execution_workspaces`, created on first realization and updated on reuse, with the
//! facts cleanup needs in its metadata (`createdByRuntime`, `branchCreatedByRuntime`,
//! `branchHeadSha`, `repoRoot`, `config`).
//!
//! @code
//! berth::workspace_manager wm{store, runtime};
//! auto ws = wm.realize(request, {.company_id = "c1", .heartbeat_run_id = "run-1"});
//! // ... run in ws.realized.cwd ...
//! auto done = wm.cleanup(ws.record.id, {.heartbeat_run_id = "run-1"});
//! @endcode

#include <berth/concepts/clock.hpp>                      // clock, system_clock
#include <berth/concepts/execution_workspace_store.hpp>  // execution_workspace_store
#include <berth/concepts/operation_store.hpp>            // operation_store
#include <berth/workspace/operation_recorder.hpp>        // operation_recorder
#include <berth/workspace/runtime.hpp>                   // workspace_runtime

#include <boost/json/value.hpp>  // boost::json::value

#include <memory>    // std::shared_ptr
#include <optional>  // std::optional
#include <string>    // std::string
#include <utility>   // std::move
#include <vector>    // std::vector

namespace berth {

/// Whom a realization is recorded for.
struct workspace_record_context {
    std::string company_id{};
    std::optional<std::string> heartbeat_run_id{};
    /// The record to reuse; nullopt: an active record of the same project and worktree path is
    /// reused, else a new one is created.
    std::optional<std::string> execution_workspace_id{};
};

/// A realized workspace with its record and the operations of the realization.
struct managed_workspace {
    execution_workspace record{};
    realized_workspace realized{};
    std::vector<std::string> operation_ids{};
};

/// Options of workspace_manager::cleanup.
struct workspace_cleanup_options {
    std::optional<std::string> heartbeat_run_id{};
    std::optional<std::string> project_workspace_cwd{};  ///< default: the record's metadata `baseCwd`
    std::optional<std::string> project_cleanup_command{};
    std::optional<std::string> cleanup_reason{};
    /// The caller's hold on the worktree (realized_workspace::lock); see cleanup_workspace_request.
    std::shared_ptr<workspace_lock const> held_lock{};
};

/// Cleanup's result with the record as updated (archived without warnings, else cleanup_failed).
struct managed_cleanup {
    cleanup_result result{};
    execution_workspace record{};
    std::vector<std::string> operation_ids{};
};

template <class Store, clock Clock = system_clock>
    requires execution_workspace_store<Store> && operation_store<Store>
class workspace_manager {
public:
    /// `store` and `runtime` are used by reference and must outlive the manager.
    workspace_manager(Store& store, workspace_runtime const& runtime, Clock clk = {})
        : store_(store), runtime_(runtime), clock_(std::move(clk)) {}

    /// Realizes the workspace (workspace_runtime::realize) and creates or updates its record.
    /// @throws what workspace_runtime::realize throws (the operations recorded so far stay stored,
    ///         attached to the record when one was given); store_error (invalid_argument when the
    ///         request has no project id or the agent no company id).
    managed_workspace realize(realize_workspace_request const& request, workspace_record_context const& ctx) {
        if (!request.base.project_id || request.base.project_id->empty())
            throw store_error(store_errc::invalid_argument,
                              "An execution workspace needs a project id (realize_workspace_request.base.project_id).");
        operation_recorder recorder{store_,
                                    operation_context{.company_id = ctx.company_id,
                                                      .execution_workspace_id = ctx.execution_workspace_id,
                                                      .heartbeat_run_id = ctx.heartbeat_run_id,
                                                      .issue_id = request.issue ? std::optional(request.issue->id)
                                                                                : std::nullopt},
                                    clock_};
        auto realized = runtime_.realize(request, &recorder);
        auto const now = clock_.now();

        std::optional<execution_workspace> existing;
        if (ctx.execution_workspace_id) existing = store_.get_execution_workspace(*ctx.execution_workspace_id);
        if (!existing && !realized.created && realized.worktree_path) {
            for (auto& w : store_.list_execution_workspaces(
                     ctx.company_id, {.project_id = request.base.project_id,
                                      .status = execution_workspace_status::active,
                                      .branch_name = realized.branch_name,
                                      .limit = no_limit}))
                if (w.provider_ref == realized.worktree_path) {
                    existing = std::move(w);
                    break;
                }
        }

        bool const git = realized.strategy == workspace_strategy_type::git_worktree;
        json_object md = existing && existing->metadata ? *existing->metadata : json_object{};
        auto keep_true = [&](char const* key, bool now_value) {
            auto const* v = md.if_contains(key);
            bool const before = v && v->is_bool() && v->get_bool();
            md[key] = before || now_value;
        };
        keep_true("createdByRuntime", realized.created);
        keep_true("branchCreatedByRuntime", realized.branch_created);
        if (realized.branch_created && realized.branch_head_sha) md["branchHeadSha"] = *realized.branch_head_sha;
        if (realized.repo_root) md["repoRoot"] = *realized.repo_root;
        md["baseCwd"] = request.base.base_cwd;
        if (request.remove_when_run_ends) md["removeWhenRunEnds"] = true;
        else md.erase("removeWhenRunEnds");
        json_object config;
        auto put = [&](char const* key, std::optional<std::string> const& v) {
            config[key] = v ? boost::json::value(*v) : boost::json::value(nullptr);
        };
        put("provisionCommand", request.strategy.provision_command);
        put("teardownCommand", request.strategy.teardown_command);
        put("cleanupCommand", request.strategy.cleanup_command);
        md["config"] = std::move(config);

        execution_workspace record;
        if (existing) {
            auto updated = store_.update_execution_workspace(
                existing->id,
                execution_workspace_patch{.status = execution_workspace_status::active,
                                          .cwd = std::optional(realized.cwd),
                                          .branch_name = realized.branch_name,
                                          .provider_ref = realized.worktree_path,
                                          .last_used_at = std::optional(now),
                                          .closed_at = std::optional<timestamp>(),
                                          .metadata = std::optional(md)},
                now);
            record = updated ? std::move(*updated) : *existing;
        } else {
            record = store_.create_execution_workspace(
                new_execution_workspace{
                    .company_id = ctx.company_id,
                    .project_id = *request.base.project_id,
                    .project_workspace_id = request.base.workspace_id,
                    .source_issue_id = request.issue ? std::optional(request.issue->id) : std::nullopt,
                    .mode = git ? execution_workspace_mode::isolated_workspace
                                : execution_workspace_mode::shared_workspace,
                    .strategy_type = realized.strategy,
                    .name = realized.branch_name ? *realized.branch_name : request.base.base_cwd,
                    .status = execution_workspace_status::active,
                    .cwd = realized.cwd,
                    .repo_url = request.base.repo_url,
                    .base_ref = realized.base_ref ? realized.base_ref : request.base.repo_ref,
                    .branch_name = realized.branch_name,
                    .provider_type = git ? workspace_provider_type::git_worktree : workspace_provider_type::local_fs,
                    .provider_ref = realized.worktree_path,
                    .derived_from_execution_workspace_id = std::nullopt,
                    .metadata = std::move(md)},
                now);
        }
        recorder.attach_execution_workspace(record.id);
        return managed_workspace{std::move(record), std::move(realized), recorder.operation_ids()};
    }

    /// Cleans up the workspace `id` (workspace_runtime::cleanup, its commands from the record's
    /// `metadata.config`) and updates the record: `archived` with closed_at when cleanup gave no
    /// warning, else `cleanup_failed`; cleanup_reason from the options.
    /// @throws store_error not_found for an unknown id; store errors.
    managed_cleanup cleanup(std::string const& id, workspace_cleanup_options const& options = {}) {
        auto w = store_.get_execution_workspace(id);
        if (!w) throw store_error(store_errc::not_found, "Execution workspace \"" + id + "\" not found.");
        operation_recorder recorder{store_,
                                    operation_context{.company_id = w->company_id,
                                                      .execution_workspace_id = w->id,
                                                      .heartbeat_run_id = options.heartbeat_run_id,
                                                      .issue_id = w->source_issue_id},
                                    clock_};
        std::optional<std::string> project_cwd = options.project_workspace_cwd;
        if (!project_cwd && w->metadata)
            if (auto const* v = w->metadata->if_contains("baseCwd"); v && v->is_string())
                project_cwd = std::string(v->get_string());
        auto result = runtime_.cleanup(cleanup_workspace_request{.workspace = *w,
                                                                 .project_workspace_cwd = project_cwd,
                                                                 .project_cleanup_command = options.project_cleanup_command,
                                                                 .held_lock = options.held_lock},
                                       &recorder);
        auto const now = clock_.now();
        // Archived unless something went wrong: a checkout berth did not create stays (not cleaned)
        // and that is no failure.
        bool const ok = result.warnings.empty();
        auto updated = store_.update_execution_workspace(
            id,
            execution_workspace_patch{.status = ok ? execution_workspace_status::archived
                                                   : execution_workspace_status::cleanup_failed,
                                      .closed_at = ok ? std::optional(now) : std::optional<timestamp>(),
                                      .cleanup_reason = options.cleanup_reason},
            now);
        return managed_cleanup{std::move(result), updated ? std::move(*updated) : *w, recorder.operation_ids()};
    }

private:
    Store& store_;
    workspace_runtime const& runtime_;
    Clock clock_;
};

}  // namespace berth
