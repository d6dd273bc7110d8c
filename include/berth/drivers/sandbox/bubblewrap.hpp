#pragma once
//! @file
//! berth::bubblewrap — a sandbox provider that isolates each command with `bwrap` (Debian package
//! `bubblewrap`) on this machine. Unprivileged user namespaces are all it needs (no setuid, no
//! daemon); every execute is one `bwrap` process spawned through berth::process::run.
//!
//! @code
//! berth::sandbox_driver<berth::bubblewrap> sandbox{berth::bubblewrap{{.state_root = "/var/lib/berth/sandboxes"}}};
//! // environment: driver "sandbox", config {"provider": "bubblewrap", "network": false,
//! //              "limits": {"cpuSeconds": 600, "openFiles": 1024, "processes": 256}}
//! @endcode
//!
//! What a command sees (and does not):
//! - **namespaces**: new user, pid, ipc, uts (hostname `berth-sandbox`) and cgroup namespaces;
//!   a new network namespace with only `lo` unless the config says `"network": true`; no
//!   capabilities (`--cap-drop ALL`); a new session (`--new-session`: no TIOCSTI into our tty).
//! - **files**: the host's system directories read-only (`/usr` and the merged-usr links `/bin`,
//!   `/lib`, `/lib64`, `/sbin`, ...), a short list of `/etc` files programs need (loader cache,
//!   passwd/group, resolver, certificates, alternatives, ...) read-only, `/proc` of its own pid
//!   namespace, a minimal `/dev`, and everything else of the root read-only and empty. Not there
//!   at all: the host's `/home`, `/root`, `/var`, `/srv`, `/etc/shadow`, other leases' state.
//! - **writable**: the workspace, bound read-write at `/workspace` (the realized local path, else
//!   the lease's own directory); `HOME=/home/sandbox` and `/tmp`, both directories of the lease's
//!   state (`<state_root>/<provider lease id>/{home,tmp}`), so they persist across the lease's
//!   commands and, for a reusable lease, across runs — and are deleted with the lease.
//! - **environment**: exactly `PATH`, `HOME`, `TMPDIR`, `LANG` (C.UTF-8 by default), the variables of
//!   this process named in the allow-list (options + config `allowEnv`; names on the secret list
//!   are never passed), the command's own `env`, and `BERTH_SANDBOX_ID` (the provider lease id:
//!   destroy finds the sandbox's processes by it). Values travel in bwrap's environment, never
//!   in its argv (no secret in `ps`).
//! - **limits** (config `limits`, over `bubblewrap_options::limits`): CPU seconds, address space
//!   bytes, open files, processes — applied with `prlimit` inside the sandbox before the command.
//! - **lifetime**: `--die-with-parent` — if this process dies (even `kill -9`), bwrap and every
//!   process of the sandbox get SIGKILL; on timeout process::run kills bwrap's process group and
//!   the pid namespace goes with its init. Nothing started by a command outlives the command —
//!   except when this process dies while bwrap sets the sandbox up (its init arms
//!   --die-with-parent only after the setup): destroy, which recovery calls for the dead
//!   holder's lease, kills such a sandbox (kill_processes), and reap_orphans one whose lease was
//!   never recorded.
//!
//! Not protected against: kernel exploits (it is namespaces, not a VM), reading world-readable
//! files under the bound system directories, using the network when `network` is true, and
//! exhausting disk space in the workspace or the lease's state.
//!
//! Reusable leases (supports_reusable_leases): a reusable lease's release keeps its state
//! directory; resume checks it is still there; destroy deletes it. An ephemeral lease's release
//! deletes it.

#include <berth/drivers/sandbox/config.hpp>    // refuse_unknown_sandbox_keys, sandbox_config_error
#include <berth/drivers/sandbox/provider.hpp>  // sandbox_provider_tag, the IO types
#include <berth/error.hpp>                     // berth::error
#include <berth/model/ids.hpp>                 // new_id
#include <berth/process/environment.hpp>       // is_secret_env_name, environment_map
#include <berth/process/lease_processes.hpp>   // scan_environments (a sandbox's processes by BERTH_SANDBOX_ID)
#include <berth/process/proc.hpp>              // pid_start_time, process_alive, host_identity
#include <berth/process/spawn.hpp>             // process::run

#include <boost/json/serialize.hpp>  // boost::json::serialize (values in messages)
#include <boost/json/value.hpp>      // boost::json::value

#include <array>        // std::array
#include <chrono>       // std::chrono::milliseconds
#include <cstdint>      // std::int64_t
#include <cstdlib>      // std::getenv
#include <filesystem>   // std::filesystem
#include <fstream>      // std::ofstream, std::ifstream
#include <memory>       // std::shared_ptr
#include <optional>     // std::optional
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <system_error> // std::error_code
#include <vector>       // std::vector

#include <unistd.h>  // access, X_OK

namespace berth {

/// Resource limits of a sandboxed command (prlimit); unset members are not limited.
struct sandbox_limits {
    std::optional<std::int64_t> cpu_seconds{};
    std::optional<std::int64_t> address_space_bytes{};
    std::optional<std::int64_t> open_files{};
    std::optional<std::int64_t> processes{};

    [[nodiscard]] bool empty() const noexcept {
        return !cpu_seconds && !address_space_bytes && !open_files && !processes;
    }
};

/// Options of the bubblewrap provider (the machine's side; per-environment choices are config).
struct bubblewrap_options {
    /// Where lease state lives (`<state_root>/<provider lease id>/`). Empty: `$XDG_STATE_HOME/
    /// berth/sandboxes`, else `$HOME/.local/state/berth/sandboxes`. Created 0700.
    std::string state_root{};
    /// The bwrap executable; looked up in this process's PATH when it has no '/'.
    std::string bwrap = "bwrap";
    /// prlimit inside the sandbox (it must be under a bound system directory).
    std::string prlimit = "/usr/bin/prlimit";
    /// Host directories bound read-only at the same path; a symlink (merged /usr) is recreated
    /// as the same symlink; a missing one is skipped.
    std::vector<std::string> system_paths{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt"};
    /// /etc entries bound read-only when they exist.
    std::vector<std::string> etc_paths{"/etc/alternatives", "/etc/ld.so.cache", "/etc/ld.so.conf",
                                       "/etc/ld.so.conf.d", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf",
                                       "/etc/hosts", "/etc/resolv.conf", "/etc/host.conf", "/etc/gai.conf",
                                       "/etc/localtime", "/etc/timezone", "/etc/ssl", "/etc/ca-certificates",
                                       "/etc/gitconfig", "/etc/os-release", "/etc/debian_version",
                                       "/etc/mime.types", "/etc/profile", "/etc/bash.bashrc", "/etc/inputrc",
                                       "/etc/magic", "/etc/java-17-openjdk", "/etc/python3", "/etc/perl"};
    /// Variables of this process passed into the sandbox when set (secret names never are).
    std::vector<std::string> allow_env{"LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM"};
    /// Limits of every command unless the environment's config `limits` overrides them.
    sandbox_limits limits{.cpu_seconds = std::nullopt, .address_space_bytes = std::nullopt, .open_files = 4096,
                          .processes = 4096};
    /// After a command's deadline: SIGTERM to bwrap's group, SIGKILL this much later.
    std::chrono::milliseconds kill_grace{std::chrono::seconds(2)};
};

/// A bubblewrap environment's own config keys, parsed (bubblewrap::parse_config).
struct bubblewrap_config {
    bool network = false;
    sandbox_limits limits{};  ///< the options' limits with the config's on top
    std::vector<std::string> allow_env{};
    std::vector<std::string> read_only_paths{};
};

class bubblewrap {
public:
    using sandbox_provider_concept = sandbox_provider_tag;
    static constexpr std::string_view name = "bubblewrap";
    static constexpr bool supports_reusable_leases = true;

    /// Where the workspace, the home and /tmp are inside every sandbox.
    static constexpr char const* workspace_path = "/workspace";
    static constexpr char const* home_path = "/home/sandbox";

    bubblewrap() : bubblewrap(bubblewrap_options{}) {}
    explicit bubblewrap(bubblewrap_options options);

    [[nodiscard]] bubblewrap_options const& options() const noexcept { return plan_->options; }
    /// The state root in use (options.state_root, or the default it resolved to).
    [[nodiscard]] std::filesystem::path const& state_root() const noexcept { return plan_->state_root; }

    /// Config keys: `network` (boolean, default false), `limits` ({cpuSeconds, addressSpaceBytes,
    /// openFiles, processes}: positive integers or null for none), `allowEnv` (array of variable
    /// names), `readOnlyPaths` (array of absolute host paths bound read-only at the same path);
    /// plus the envelope's. Anything else is refused (`Unrecognized key(s) in object: '<k>'`).
    /// @throws sandbox_config_error naming the field.
    [[nodiscard]] json_object validate_config(json_object const& config) const;
    /// The typed form of a validated config.
    [[nodiscard]] bubblewrap_config parse_config(json_object const& config) const;

    /// Creates the lease's state directory (home, tmp, workspace). Metadata: `{remoteCwd:
    /// "/workspace", shellCommand: "sh", sandboxHome: "/home/sandbox"}`. No expiry.
    /// @throws berth::error when the state directory cannot be created.
    [[nodiscard]] sandbox_lease acquire(sandbox_acquire_params const& params) const;

    /// Checks the lease's state directory still exists. @throws berth::error when it does not.
    [[nodiscard]] sandbox_lease resume(sandbox_lease_params const& lease) const;

    /// Deletes the lease's state unless the lease is reusable (then it is kept for the next run).
    /// @throws berth::error when the state cannot be deleted.
    void release(sandbox_lease_params const& lease) const;

    /// Kills what of the sandbox still runs (kill_processes: only a dead host leaves anything),
    /// then deletes the lease's state (a missing one is already destroyed).
    /// @throws berth::error when the state cannot be deleted.
    void destroy(sandbox_lease_params const& lease) const;

    /// The variable every process of a sandbox gets in its initial environment: bwrap itself, the
    /// sandbox's init (which bwrap clones) and the command. Its value is the provider lease id.
    static constexpr char const* sandbox_id_variable = "BERTH_SANDBOX_ID";

    /// SIGKILLs every process of this user whose initial environment says it belongs to the
    /// sandbox `provider_lease_id` (sandbox_id_variable), until a scan of /proc finds none — what a
    /// host killed while bwrap set the sandbox up leaves running (bwrap's --die-with-parent is
    /// armed in the sandbox's init only once its setup is done). Returns how many it signalled.
    /// @throws berth::error for an id that is not `bwrap-<uuid>`.
    std::size_t kill_processes(std::string const& provider_lease_id) const;

    /// A sandbox directory under the state root that reap_orphans found.
    struct state_directory {
        std::string name;    ///< `bwrap-<uuid>` (the provider lease id), or `.making-...`
        json_object owner{};  ///< lease.json: companyId, environmentId, runId, agentId, holder...
    };
    /// What reap_orphans did.
    struct reap_result {
        std::vector<std::string> removed{};  ///< directory names (their processes killed first)
        std::vector<std::string> errors{};   ///< "<name>: <why>" for directories it could not remove
    };
    /// Removes the sandboxes under the state root that nothing holds (recovery's part for
    /// bubblewrap; berth::reap_orphan_sandboxes asks the store for `held`):
    /// - a `.making-<pid>-<start>-<uuid>` directory whose process is gone (killed while it made it);
    /// - a `bwrap-<uuid>` sandbox for which `held(state_directory const&)` is false — no live lease
    ///   records it — unless the process that made it still runs and made it less than
    ///   `grace` ago (it may not have recorded its lease yet).
    /// Each goes as destroy does: its processes killed, its directory deleted. A directory without
    /// lease.json (made by a berth before 2026-12) is left alone. Never throws for one directory.
    template <class Held>
    reap_result reap_orphans(Held&& held, std::chrono::seconds grace = std::chrono::minutes(10)) const;

    /// Binds `local_path` (an existing absolute directory, not `/`) at /workspace for the lease's
    /// commands, else the lease's own workspace directory. cwd = "/workspace"; sync "none" (the
    /// workspace is the host directory itself, nothing is copied).
    /// @throws sandbox_config_error for a local path that is not such a directory.
    [[nodiscard]] sandbox_realized realize(sandbox_realize_params const& params) const;

    /// Runs `cmd` in the lease's sandbox (see the file comment). `cmd.cwd` is a path inside the
    /// sandbox (default /workspace). A non-zero exit is a result; a command killed by a signal
    /// shows as bwrap's exit code 128 + signal.
    /// @throws berth::error for a lease whose state is gone; berth::process_error when bwrap
    ///         cannot be started.
    [[nodiscard]] command_result execute(sandbox_lease_params const& lease, command const& cmd) const;

    /// Runs `true` in a sandbox with the config's flags. ok → `Bubblewrap sandbox is available
    /// (<bwrap --version>).`; failure → `Bubblewrap sandbox failed: <stderr>`. Never throws.
    [[nodiscard]] probe_result probe(json_object const& config) const noexcept;

    /// The bwrap argv (without the program) for a command of `lease` — what execute runs; public
    /// so that benchmarks can compare against bwrap itself with the very same flags.
    [[nodiscard]] std::vector<std::string> bwrap_args(sandbox_lease_params const& lease, command const& cmd) const;
    /// The environment the command gets (see the file comment).
    [[nodiscard]] process::environment_map sandbox_environment(bubblewrap_config const& cfg, command const& cmd) const;
    /// The resolved bwrap executable.
    [[nodiscard]] std::string const& bwrap_executable() const noexcept { return plan_->bwrap; }

    /// The state directory of a provider lease id (refusing ids that are not berth's: no path
    /// can be smuggled in through lease metadata).
    /// @throws berth::error for an id that is not `bwrap-<uuid>`.
    [[nodiscard]] std::filesystem::path lease_directory(std::optional<std::string> const& provider_lease_id) const;

private:
    struct plan {
        bubblewrap_options options;
        std::filesystem::path state_root;
        std::string bwrap;
        std::vector<std::string> fixed_args;  ///< namespaces, system paths, /etc, /proc, /dev
    };
    [[nodiscard]] std::string workspace_of(sandbox_lease_params const& lease, std::filesystem::path const& dir) const;

    std::shared_ptr<plan const> plan_;
};

static_assert(sandbox_provider<bubblewrap>);
static_assert(provider_with_validate_config<bubblewrap> && provider_with_resume<bubblewrap> &&
              provider_with_destroy<bubblewrap> && provider_with_realize<bubblewrap> &&
              provider_with_execute<bubblewrap> && provider_with_probe<bubblewrap>);
static_assert(!provider_with_sync<bubblewrap>, "the workspace is bound in place: there is nothing to sync");

}  // namespace berth

#include <berth/drivers/sandbox/impl/bubblewrap.hpp>
