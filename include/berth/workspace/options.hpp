#pragma once
//! @file
//! berth::workspace_runtime_options and berth::git_options — how the workspace runtime
//! (workspace/runtime.hpp) and its git runner (workspace/git.hpp) run their commands. Their own
//! header, standard library and process/environment.hpp only, so that a header that only holds
//! options (berth::local_driver_options) need not include the runtime, git or the spawn layer.

#include <berth/process/environment.hpp>  // environment_map

#include <chrono>    // std::chrono::milliseconds, minutes, seconds
#include <optional>  // std::optional
#include <string>    // std::string

namespace berth {

/// How git_runner runs git.
struct git_options {
    /// The program: looked up in the child's PATH unless it contains '/'.
    std::string program = "git";
    /// The child's whole environment. nullopt: this process's environment minus secrets
    /// (process::sanitized_environment). Either way berth adds `LC_ALL=C` (so that the messages
    /// berth looks for, "already exists", are not translated) and `GIT_TERMINAL_PROMPT=0` (git
    /// never waits for a password on a terminal).
    std::optional<process::environment_map> environment{};
    /// Deadline of one git command.
    std::chrono::milliseconds timeout{std::chrono::minutes(5)};
};

/// How workspace_runtime runs git and workspace commands.
struct workspace_runtime_options {
    git_options git{};
    /// The shell of provision/cleanup/teardown commands (`<shell> -c <command>`). nullopt:
    /// upstream resolveShell, `$SHELL` (trimmed) else `/bin/sh`.
    std::optional<std::string> shell{};
    /// The base environment of those commands, before the BERTH_* workspace variables. nullopt:
    /// this process's whole environment, as the seed gives them (`{...process.env}` for provision,
    /// `sanitizeRuntimeServiceBaseEnv(process.env)` for cleanup/teardown). From the base, a
    /// provision command loses only a stale `BERTH_LEASE_ID` (it gets its lease's, or none); a
    /// cleanup or teardown command loses what the seed's sanitizeRuntimeServiceBaseEnv drops:
    /// `BERTH_*` (upstream's PAPERCLIP_*), `DATABASE_URL`, `npm_config_tailscale_auth`,
    /// `npm_config_authenticated_private`. docs/workspaces.md, "Environment".
    std::optional<process::environment_map> command_environment{};
    /// Opt-in (berth, not upstream): also drop every variable on berth's secret list
    /// (process::is_secret_env_name: *TOKEN*, *SECRET*, *PASSWORD*, AWS_*, SSH_AUTH_SOCK, ...) from
    /// the base of provision, cleanup and teardown commands. Off by default, because the seed
    /// gives a provision command the whole environment (a `git clone` of a private dependency or
    /// an `npm ci` against a private registry needs its credentials).
    bool strip_secret_environment = false;
    /// Deadline of one provision, cleanup or teardown command.
    std::chrono::milliseconds command_timeout{std::chrono::minutes(15)};
    /// How long realize() waits for another run that holds the same worktree (workspace_lock)
    /// before it fails naming that run's pid.
    std::chrono::milliseconds lock_wait{std::chrono::seconds(30)};
};

}  // namespace berth
