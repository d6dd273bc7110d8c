#pragma once
//! @file
//! berth::workspace_runtime — realizes execution workspaces on this machine and cleans them up
//! (upstream realizeExecutionWorkspace and cleanupExecutionWorkspaceArtifacts, §5):
//!
//! - `project_primary`: the workspace is the base cwd; nothing is created.
//! - `git_worktree`: a linked worktree of the base cwd's repository at
//!   `<worktreeParentDir or <repo>/.berth/worktrees>/<branch>`, the branch rendered from the
//!   template and sanitised (workspace/naming.hpp), started from the configured base ref, else the
//!   repository ref, else the detected default branch (origin/HEAD, then main, then master), else
//!   HEAD. An existing valid worktree at that path is reused; a branch that already exists is
//!   attached. Then the provision command runs in the worktree, by the shell, with the BERTH_*
//!   workspace variables.
//! - cleanup: cleanup and teardown commands (failures are warnings), `git worktree remove
//!   --force`, `git branch -d` only for a branch berth created whose tip has not moved, and for
//!   local_fs workspaces berth created, removal of the directory, never of one that contains the
//!   project workspace.
//!
//! git runs as an argv through berth::git_runner (never a shell); the provision, cleanup and
//! teardown commands are the only strings given to a shell, and they come from the workspace
//! config, never from issue titles or identifiers (those reach commands only as environment
//! variables). Every git and workspace command is recorded through an operation_recorder when one
//! is given. Git processes per call: 2 to create (3 when the default branch is detected through
//! origin's refs), 2 to reuse, 3 to clean up (docs/workspaces.md).
//!
//! @code
//! berth::workspace_runtime rt;
//! auto ws = rt.realize({.base = {.base_cwd = "/srv/repo", .project_id = "p1"},
//!                       .strategy = {.type = berth::workspace_strategy_type::git_worktree},
//!                       .issue = berth::workspace_issue{.id = "i1", .identifier = "ENG-1", .title = "Fix it"},
//!                       .agent = {.id = "a1", .name = "coder", .company_id = "c1"}});
//! // ws.cwd == "/srv/repo/.berth/worktrees/ENG-1-fix-it"
//! @endcode
//!
//! Interrupted runs (docs/reliability.md): a git_worktree realization holds the worktree's
//! workspace_lock from before it looks at the path until the caller drops the result, so a second
//! run of the same issue waits (options().lock_wait) instead of working in, or removing, the first
//! one's worktree. A worktree whose creation did not finish (berth's `.creating` marker beside the
//! lock file, or git's `locked: initializing`) is never reused: the git processes still working in
//! it are killed, it is removed (with its branch when berth had just created it) and made again.
//!
//! Thread safety: const members, safe to call from many threads; two realizations of the same
//! worktree at once are serialised by its lock.

#include <berth/detail/config.hpp>              // BERTH_DECL, BERTH_SEPARATE_COMPILATION
#include <berth/model/record.hpp>                // json_object
#include <berth/model/workspace.hpp>             // execution_workspace, the workspace enums
#include <berth/process/environment.hpp>         // environment_map, sanitized_environment
#include <berth/workspace/error.hpp>             // workspace_error, git_error
#include <berth/workspace/git.hpp>               // git_runner, git_options
#include <berth/workspace/lock.hpp>              // workspace_lock
#include <berth/workspace/options.hpp>           // workspace_runtime_options, git_options
#include <berth/workspace/naming.hpp>            // sanitize_branch_name, render_workspace_template, ...
#include <berth/workspace/operation_recorder.hpp>  // operation_recorder
#include <berth/workspace/types.hpp>             // realize_workspace_request, realized_workspace, ...

#include <chrono>    // std::chrono::milliseconds
#include <optional>  // std::optional
#include <string>    // std::string
#include <utility>   // std::move
#include <vector>    // std::vector

namespace berth {

/// Reads a workspace config (upstream `config`: `{workspaceStrategy: {type, branchTemplate,
/// worktreeParentDir, baseRef, provisionCommand, teardownCommand, cleanupCommand}}`; commands may
/// also sit at the top level, as in `metadata.config`). Absent or null members keep the defaults.
/// @throws parse_error naming `workspaceStrategy.<field>` and the value for a member of the
///         wrong type or an unknown strategy type.
[[nodiscard]] workspace_strategy workspace_strategy_from_json(json_object const& config);

class workspace_runtime {
public:
    workspace_runtime() : workspace_runtime(workspace_runtime_options{}) {}
    explicit workspace_runtime(workspace_runtime_options options)
        : options_(std::move(options)), git_(options_.git) {}

    [[nodiscard]] workspace_runtime_options const& options() const noexcept { return options_; }
    /// The git runner (its processes_started() counts every git process this runtime started).
    [[nodiscard]] git_runner const& git() const noexcept { return git_; }

    /// Realizes the workspace (see the file comment), recording every git and workspace command
    /// through `recorder` when non-null.
    /// @throws workspace_error: git missing, base cwd not in a repository (naming it), a bad base
    ///         ref, a worktree path that exists and is not a worktree of this repository (upstream's
    ///         message), a relative worktreeParentDir that leaves the repository, a provision
    ///         command that failed (its label, stderr and stdout); git_error for git's own failures;
    ///         store_error from the recorder's store.
    [[nodiscard]] realized_workspace realize(realize_workspace_request const& request,
                                             operation_recorder* recorder = nullptr) const;

    /// Cleans up the workspace's artifacts (see the file comment). Command and git failures are
    /// returned as warnings, never thrown.
    /// @throws store_error from the recorder's store; std::bad_alloc.
    [[nodiscard]] cleanup_result cleanup(cleanup_workspace_request const& request,
                                         operation_recorder* recorder = nullptr) const;

    /// Removes the worktree at `worktree_path` of the repository at `repo_root` if its creation
    /// did not finish (see the file comment) and no live run holds it; recovery calls this for a
    /// dead run's `git worktree add` that never got a record. Returns whether it removed one.
    bool discard_unfinished(std::string const& repo_root, std::string const& worktree_path,
                            std::vector<std::string>& warnings) const;

    /// The shell workspace commands run with (upstream resolveShell).
    [[nodiscard]] std::string shell() const;

    /// The environment of a provision command (upstream buildWorkspaceCommandEnv with BERTH_*).
    [[nodiscard]] process::environment_map workspace_command_env(realize_workspace_request const& request,
                                                                 realized_workspace const& ws) const;

    /// The environment of cleanup and teardown commands (upstream buildExecutionWorkspaceCleanupEnv).
    [[nodiscard]] process::environment_map cleanup_env(cleanup_workspace_request const& request) const;

private:
    workspace_runtime_options options_;
    git_runner git_;
};

}  // namespace berth

// The definitions: here in header-only mode, compiled once in <berth/src.hpp> under
// BERTH_SEPARATE_COMPILATION (berth/detail/config.hpp).
#ifndef BERTH_SEPARATE_COMPILATION
#include <berth/workspace/impl/runtime.hpp>
#endif
