#pragma once
//! @file
//! berth::ssh_driver — the environment driver for a host reached over SSH (upstream §2.2), built
//! on libssh. CMake target `berth::ssh` (it links libssh; the core berth::berth does not).
//!
//! @code
//! berth::ssh_driver ssh{{.identity = berth::ssh_identity{.private_key_file = "/etc/berth/id_ed25519"}}};
//! // an environment with driver "ssh" and config
//! //   {"host": "build-1", "port": 22, "username": "ci", "remoteWorkspacePath": "/srv/work",
//! //    "knownHosts": "build-1 ssh-ed25519 AAAA..."}
//! auto grant = ssh.acquire({.env = env, .company_id = "c1", .agent_id = "a1"});  // mkdir -p, cd, pwd
//! auto r = ssh.execute(env, lease, {.program = "make", .args = {"test"}, .env = {{"CI", "1"}}});
//! @endcode
//!
//! - **Sessions** are pooled per destination (host, port, user, known hosts, key) and reused by
//!   every call; each session serves one call at a time, so concurrent calls open more sessions
//!   (up to `max_idle_sessions_per_host` are kept). TCP_NODELAY is on (a warm exec costs one
//!   round trip, not Nagle's 40 ms), TCP keepalive is on, pooled sessions idle past
//!   `idle_timeout` are closed, and a pooled session that turns out dead is replaced by a fresh
//!   connection once, transparently (only before the command started: nothing runs twice).
//! - **Host keys** are checked against the environment's `knownHosts` (known_hosts *content*), else
//!   `ssh_driver_options::known_hosts_file`, else libssh's defaults (~/.ssh/known_hosts). With
//!   `strictHostKeyChecking` (the default) an unknown host is refused; a *changed* key is refused
//!   always. Nothing is ever written to a known hosts file.
//! - **The private key** comes from the driver options (a file path, or the key text held in
//!   memory), or per environment from `identity_for` (where an application resolves upstream's
//!   `privateKeySecretRef`). It is never written to the stored config, lease metadata, the
//!   execution target, an error message, a log line or any command line.
//! - **Commands** (execute) keep their argv (each argument quoted on its own, never re-split), run
//!   in `cmd.cwd` (else the lease's remoteCwd), get `cmd.env` over the channel — the values are
//!   never on a command line, local or remote (see detail/shell.hpp for the protocol) — and
//!   `cmd.stdin_data` as stdin. At the deadline the remote process group gets SIGTERM, then SIGKILL
//!   after `kill_grace`, and the result says `timed_out`. Output is bounded per stream and streamed
//!   to `cmd.on_output` as it arrives.
//! - **Workspace sync** (sync_in / sync_out, upstream's `ssh_git_import_export`): the local
//!   workspace's tracked files (`git ls-files`) are pushed to the remote cwd before a run, and
//!   files changed remotely are pulled back after it; `.git` and `.paperclip-runtime` are never sent
//!   either way. Needs `git` and `tar` locally and `tar` and `find` remotely.
//!
//! Models environment_driver, driver_with_realize_workspace, driver_with_execute,
//! driver_with_probe and driver_with_execution_target. Copies share one session pool; every
//! member is const and safe to call from many threads at once.

#include <berth/concepts/environment_driver.hpp>  // driver_tag, the driver concepts
#include <berth/drivers/ssh/config.hpp>           // ssh_config, parse_ssh_config
#include <berth/drivers/ssh/detail/pool.hpp>      // detail::ssh::session_pool (includes libssh)
#include <berth/drivers/ssh/error.hpp>            // ssh_error, ssh_config_error
#include <berth/model/driver_io.hpp>              // acquire_request, lease_grant, command, ...

#include <chrono>      // std::chrono::milliseconds, std::chrono::seconds
#include <cstddef>     // std::size_t
#include <functional>  // std::function
#include <memory>      // std::shared_ptr
#include <optional>    // std::optional
#include <string>      // std::string

namespace berth {

/// The private key the SSH driver authenticates with: the key text held in memory (OpenSSH or
/// PEM format), or a file to read it from. Either way it is used for authentication only.
struct ssh_identity {
    std::optional<std::string> private_key_file{};
    std::string private_key{};  ///< the key text; wins over the file when non-empty
    std::string passphrase{};   ///< for an encrypted key; empty for none
};

/// Options of ssh_driver (not stored anywhere: the stored config holds no secret).
struct ssh_driver_options {
    /// The key for every environment that identity_for gives none for. Without either, libssh's
    /// defaults (ssh-agent, ~/.ssh/id_*) are tried.
    std::optional<ssh_identity> identity{};
    /// Per-environment key, e.g. resolved from the config's `privateKeySecretRef` by the
    /// application's secret store. Called on every connect; may be empty.
    std::function<std::optional<ssh_identity>(environment const&, ssh_config const&)> identity_for{};
    /// The known hosts file for environments whose config has no `knownHosts`.
    std::optional<std::string> known_hosts_file{};
    /// TCP connect plus SSH handshake, and every blocking libssh step (channel open, exec request).
    std::chrono::milliseconds connect_timeout{std::chrono::seconds(10)};
    /// TCP keepalive idle time on every session.
    std::chrono::seconds keepalive_interval{std::chrono::seconds(30)};
    /// A pooled session idle longer than this is closed instead of reused (0: never).
    std::chrono::seconds idle_timeout{std::chrono::minutes(5)};
    /// Sessions kept per destination.
    std::size_t max_idle_sessions_per_host = 4;
    /// After a command's deadline: SIGTERM to the remote group, then SIGKILL this much later.
    std::chrono::milliseconds kill_grace{std::chrono::seconds(2)};
    /// Source /etc/profile, ~/.profile, ~/.bash_profile and ~/.zprofile before each command, as
    /// upstream's runSshCommand does. Off by default: it costs a few ms (or far more) per command,
    /// and the provision step runs under `bash -lc` anyway.
    bool source_login_profiles = false;
};

/// What a workspace sync moved.
struct ssh_sync_result {
    std::size_t files = 0;  ///< files sent (sync_in) or received (sync_out)
    std::size_t bytes = 0;  ///< size of the archive that crossed the connection
};

class ssh_driver {
public:
    using driver_concept = driver_tag;
    static constexpr std::string_view name = "ssh";
    static constexpr driver_kind family = driver_kind::ssh;

    ssh_driver() : ssh_driver(ssh_driver_options{}) {}
    explicit ssh_driver(ssh_driver_options options);

    [[nodiscard]] ssh_driver_options const& options() const noexcept { return *options_; }

    /// Ensures the remote workspace (`mkdir -p <rwp> && cd <rwp> && pwd`, remoteCwd = the trimmed
    /// output) and returns provider "ssh", providerLeaseId `ssh://<user>@<host>:<port><remoteCwd>`
    /// and metadata `{agentId (when given), driver: "ssh", executionWorkspaceMode (or null), host,
    /// port, username, remoteWorkspacePath, remoteCwd}`.
    /// @throws berth::error `Expected SSH environment config for driver "<d>".` when the
    ///         environment is not an SSH one; ssh_config_error for a bad config; ssh_error when the
    ///         host cannot be reached or authenticated, or the workspace cannot be created.
    [[nodiscard]] lease_grant acquire(acquire_request const& request) const;

    /// Ends every process on the host that a command of this lease started and that still runs
    /// (a background job the command left, or the command itself when berth's process was
    /// killed): each execute exports `BERTH_LEASE_ID=<lease id>`, which descendants inherit, and
    /// release SIGKILLs the processes whose environment holds it (GNU `grep -z` over
    /// /proc/<pid>/environ; a host without /proc or GNU grep ends nothing). The remote workspace
    /// stays (upstream's releaseLease). Idempotent: one remote exec, nothing found the second time.
    /// Never throws: when the host cannot be reached (or the config is bad, or the processes will
    /// not die) the outcome is cleanup `failed` with the reason, so that the lease records it and
    /// recovery leaves it `pending_cleanup` and retries it.
    [[nodiscard]] release_outcome release(environment const& env, environment_lease const& lease,
                                          lease_status) const noexcept;

    /// cwd = the lease's remoteCwd ?? remote_path ?? local_path, and metadata
    /// `{workspaceRealization: {version: 1, driver: "ssh", transport: "ssh", sync:
    /// "ssh_git_import_export", mode, cwd, local: {path}, remote: {path}}}`. No remote call.
    [[nodiscard]] workspace_realization realize_workspace(realize_request const& request) const;

    /// Runs `cmd` on the host (see the file comment). A non-zero exit is a result, not an error.
    /// @throws ssh_config_error; ssh_error connect_failed / host_key_* / auth_failed / key_unreadable
    ///         (nothing ran), channel_failed, connection_lost (the command may have run partly),
    ///         invalid_command (bad env name, NUL byte, missing remote cwd); whatever
    ///         `cmd.on_output` throws (the remote group is killed first).
    [[nodiscard]] command_result execute(environment const& env, environment_lease const& lease,
                                         command const& cmd) const;

    /// Connects and verifies the remote workspace path (mkdir -p, cd, pwd). ok → summary
    /// `Connected to <user>@<host> and verified the remote workspace path.`, details {host, port,
    /// username, remoteWorkspacePath, remoteCwd}; failure → `SSH probe failed for <user>@<host>.`
    /// with details {host, port, username, remoteWorkspacePath, error, code}. Never throws.
    [[nodiscard]] probe_result probe(environment const& env) const noexcept;

    /// `{kind: "remote", transport: "ssh", environment_id, lease_id, remote_cwd (lease remoteCwd ??
    /// remoteWorkspacePath), spec: {host, port, username, remoteWorkspacePath, knownHosts,
    /// strictHostKeyChecking, remoteCwd}}` — upstream's spec without its privateKey.
    /// @throws ssh_config_error
    [[nodiscard]] berth::execution_target execution_target(environment const& env,
                                                           environment_lease const& lease) const;

    /// Pushes the tracked files of the git work tree at `local_dir` (`git ls-files`, minus `.git`
    /// and `.paperclip-runtime`) to the lease's remote cwd, and marks the time for sync_out.
    /// @throws ssh_error local_failed (not a git work tree, git/tar failed), remote_failed, and the
    ///         connection errors of execute.
    ssh_sync_result sync_in(environment const& env, environment_lease const& lease, std::string const& local_dir) const;

    /// Pulls back into `local_dir` every regular file under the remote cwd modified since the last
    /// sync_in of this lease (or every file when there was none), `.git` and `.paperclip-runtime`
    /// excluded. Files deleted remotely are not deleted locally.
    /// @throws as sync_in.
    ssh_sync_result sync_out(environment const& env, environment_lease const& lease, std::string const& local_dir) const;

    /// The session pool's counters (connections opened, reuses, reconnects, idle sessions).
    [[nodiscard]] detail::ssh::pool_counters pool_counters() const { return pool_->counters(); }

    /// Closes every pooled session (e.g. before fork, or to drop connections to a host).
    void close_idle_sessions() const { pool_->clear(); }

private:
    [[nodiscard]] detail::ssh::endpoint endpoint_for(environment const& env, ssh_config const& cfg) const;
    /// SIGKILLs the lease's processes on the host (see release). @throws ssh_error, ssh_config_error.
    void end_lease_processes(environment const& env, environment_lease const& lease) const;
    [[nodiscard]] command_result run(detail::ssh::endpoint const& ep, command const& cmd, std::string const& cwd,
                                     std::string_view lease_id = {}) const;
    [[nodiscard]] std::string ensure_workspace(detail::ssh::endpoint const& ep, ssh_config const& cfg) const;
    [[nodiscard]] static std::string remote_cwd_of(environment_lease const& lease, ssh_config const& cfg);
    [[nodiscard]] ssh_config config_of(environment const& env) const;

    std::shared_ptr<ssh_driver_options const> options_;
    std::shared_ptr<detail::ssh::session_pool> pool_;
};

static_assert(environment_driver<ssh_driver>);
static_assert(driver_with_realize_workspace<ssh_driver>);
static_assert(driver_with_execute<ssh_driver>);
static_assert(driver_with_probe<ssh_driver>);
static_assert(driver_with_execution_target<ssh_driver>);

}  // namespace berth

#include <berth/drivers/ssh/impl/ssh_driver.hpp>
