#pragma once
//! @file
//! berth::services::supervisor — starts, reuses, watches and stops the runtime services of runs
//! (upstream `workspace-runtime.ts`: ensureRuntimeServicesForRun, startRuntimeServicesForWorkspaceControl,
//! releaseRuntimeServicesForRun, stopRuntimeServicesFor{Execution,Project}Workspace,
//! reconcilePersistedRuntimeServicesOnStartup, restartDesiredRuntimeServicesOnStartup), keeping
//! every change in a berth::runtime_service_store and in the on-disk registry (registry.hpp).
//!
//! @code
//! berth::sqlite_store store = berth::sqlite_store::open("berth.db");
//! berth::services::supervisor sup{store, {.on_log = [](auto, std::string_view line) { log(line); }}};
//! auto services = berth::services::parse_runtime_services(config);
//! auto refs = sup.ensure_for_run(run_id, context, services);   // started, adopted or reused
//! ...
//! sup.release_for_run(run_id);   // stop policies: on_run_finish / ephemeral stop, idle_timeout waits
//! @endcode
//!
//! Start (upstream startLocalRuntimeService), for a service no running one can serve:
//!  0. a stopped row of the same reuse key donates its id (upstream
//!     findStoppedRuntimeServiceReuseCandidate), and its port in step 1 when the port is automatic
//!     and free; a live row of the key that nothing supervises gives its id and port to step 3b;
//!  1. the port: `{type: auto}` reserves one (port_reserver: never the same for two processes),
//!     a number is used as given;
//!  2. the environment: service_base_environment() (this process's minus secrets and `BERTH_*`),
//!     then the adapter's env, then the service's rendered `env`, then `PORT` (or `port.envKey`);
//!  3. the registry: a live process with the same identity (service_registry::find_adoptable) is
//!     adopted (`reused = true`) instead of started twice; one that fails its health check is
//!     terminated and replaced;
//!  3b. no record: the listener of the explicit port (or of the live row's port) is adopted when
//!     it passes the registry's checks (cwd inside the service cwd, command line) and no other
//!     service's registry record or live row of another workspace names it;
//!  4. an explicit port with a listener → upstream's words: `Runtime service "<name>" could not
//!     start because port <N> has a cross-workspace port conflict with pid <P> (cwd: <C>);
//!     requested workspace: <W>. Stop the other service or configure a different port.` when the
//!     listener's cwd is outside the workspace, else `... is already in use by pid <P> (cwd: <C>)`;
//!  4b. the workspace's `runtimeProvisionCommand` (service_context), once per workspace: the row is
//!     persisted `provisioning` while it runs; a failure persists it `failed`/`unhealthy` and throws
//!     `Failed to start runtime service "<name>": runtime provision command "<c>" exited with code
//!     <n> | stderr: <tail>` (retried by the next start);
//!  5. `$SHELL -lc <command>` (resolve_shell) in the service cwd, in its own process group; the
//!     last 4 KiB of stdout and stderr are kept, and each line is passed to `on_log` as
//!     `[service:<name>] <line>`; the row is persisted `starting` and the registry record written;
//!  6. readiness (`readiness.type == "http"` and a URL): GET until a 2xx, until `timeoutSec`;
//!     the gap between attempts is a quarter of the time waited so far, at least 1 ms and at most
//!     `intervalMs` (upstream waits `intervalMs` every time: berth sees a service that is ready
//!     after t by about 1.25 t, and never polls less often than upstream). A service that exits meanwhile fails at once. Failure: the group is
//!     terminated, the row persisted `stopped`/`unhealthy`, the record removed, and
//!     `Failed to start runtime service "<name>": Readiness check failed for <url>: <why> | stderr: <tail>`
//!     thrown;
//!  7. success: `running`/`healthy`, persisted.
//!
//! Cancellation (service_context::stop): a stop request before a service is looked at throws
//! `Failed to start runtime service "<name>": cancelled before it started`; during step 4b it
//! ends the provision command's group (`... runtime provision command "<c>" cancelled`); during
//! step 6 it ends the wait within one probe gap, and the start fails as a readiness failure does
//! (group terminated, row `stopped`/`unhealthy`, record removed) with `... cancelled while waiting
//! for readiness of <url>`. ensure_for_run then releases the services it had already started.
//!
//! Reuse: a shared service's reuse key (resolve_reuse_identity) finds a running one; the run
//! takes a lease on it, its idle timer is cleared, its `last_used_at` is persisted (as upstream
//! does on every reuse), the ref says `reused = true`. Two threads asking for the same key at
//! once start it once (the second waits for the first). The identity is remembered per exact
//! input (reuse_identity_cache), so a hit renders no template and computes no SHA-256.
//!
//! Stop: SIGTERM to the process group, SIGKILL after `kill_grace` (2 s); the registry record and
//! the port reservation go; the row becomes `stopped`/`unknown`. A service that exits by itself
//! becomes `stopped` (exit 0 or SIGTERM) or `failed`/`unhealthy` (anything else).
//!
//! Threads: every member function is thread-safe. One background thread, owned and joined by
//! the supervisor, drains the services' output, reaps them, runs the idle timers and the
//! SIGKILL deadlines. `on_log` is called from it (never with a lock held); it must not call
//! back into the supervisor.
//!
//! Destruction: with `stop_on_destroy` (the default) every service this supervisor owns is
//! stopped. Without it they keep running, their rows stay `running` and their registry records
//! stay, so that the next supervisor's reconcile_on_startup adopts them (upstream's server
//! restart). Their output pipes close with this process: a service that keeps writing to
//! stdout after that gets SIGPIPE unless it ignores it (upstream's Node children behave alike).
//! A later supervisor of the same process that adopts one reaps it when it exits (docs/services.md).

#include <berth/concepts/clock.hpp>                  // clock, system_clock
#include <berth/concepts/execution_workspace_store.hpp>  // execution_workspace_store (desired states)
#include <berth/concepts/operation_store.hpp>        // operation_store (runtime provision, when the store has it)
#include <berth/concepts/project_workspace_store.hpp>  // project_workspace_store (desired states)
#include <berth/concepts/runtime_service_store.hpp>  // runtime_service_store
#include <berth/model/command.hpp>                   // output_stream
#include <berth/model/runtime_service.hpp>           // workspace_runtime_service
#include <berth/orchestrator/observer.hpp>           // run_observer, no_observer (progress of starts)
#include <berth/process/child.hpp>                   // process::child
#include <berth/services/config.hpp>                 // runtime_service_config
#include <berth/services/context.hpp>                // service_context, runtime_service_ref
#include <berth/services/desired_state.hpp>          // workspace_runtime, runtime_control_action
#include <berth/services/run_environment.hpp>        // service_environment (for the run's command)
#include <berth/services/identity.hpp>               // service_scope, reuse_identity
#include <berth/services/identity_cache.hpp>         // reuse_identity_cache (a reuse hit's identity)
#include <berth/services/registry.hpp>               // service_registry, default_registry_dir

#include <chrono>              // std::chrono
#include <condition_variable>  // std::condition_variable
#include <cstddef>             // std::size_t
#include <filesystem>          // std::filesystem::path
#include <functional>          // std::function
#include <map>                 // std::map
#include <memory>              // std::shared_ptr
#include <mutex>               // std::mutex
#include <optional>            // std::optional
#include <set>                 // std::set
#include <span>                // std::span
#include <stop_token>          // std::stop_token
#include <string>              // std::string
#include <string_view>         // std::string_view
#include <thread>              // std::thread
#include <vector>              // std::vector

namespace berth::services {

/// The variable every service process carries: `BERTH_RUNTIME_SERVICE=<row id> <owner pid>
/// <owner start time>` (the supervisor's process, its start in clock ticks since boot). Its
/// descendants inherit it however they detach, so reconcile_on_startup finds, in one pass over
/// /proc, what a dead owner's service left, even when the registry record is gone (another
/// `$HOME`, a wiped registry) or the service forked a daemon; the owner's identity keeps it from
/// ending a live supervisor's service. The services' own environment cannot override it.
inline constexpr std::string_view service_variable = "BERTH_RUNTIME_SERVICE";

struct supervisor_options {
    /// Where registry records and port reservations live (default_registry_dir()).
    std::filesystem::path registry_dir = default_registry_dir();
    /// Each line a service writes, as `[service:<name>] <line>`. Called from the background thread.
    std::function<void(output_stream, std::string_view)> on_log{};
    /// The environment services start from; default service_base_environment().
    std::optional<environment_map> base_environment{};
    /// The shell that runs `-lc <command>`; default resolve_shell().
    std::optional<std::string> shell{};
    /// SIGTERM → SIGKILL grace of a stop.
    std::chrono::milliseconds kill_grace{2000};
    /// Deadline of a health check (adoption, reconcile).
    std::chrono::milliseconds health_timeout{2000};
    /// Stop every owned service in the destructor (else leave them for the next supervisor).
    bool stop_on_destroy = true;
};

/// What reconcile_on_startup did (upstream's counts, plus berth's orphan handling).
struct reconcile_result {
    std::size_t reconciled = 0;          ///< live local_process rows looked at
    std::size_t adopted = 0;             ///< now supervised by this process
    std::size_t stopped = 0;             ///< rows marked stopped
    /// registry records of dead owners whose process was ended, and rows stopped here whose
    /// processes (found by service_variable) were ended
    std::size_t orphans_stopped = 0;
    std::size_t left_to_live_owner = 0;  ///< rows whose registry record names another live supervisor
    std::size_t adopted_by_port = 0;     ///< of `adopted`: no registry record, found as the owner of the row's port
};

struct restart_result {
    std::size_t restarted = 0;  ///< services started (not reused)
    std::size_t failed = 0;     ///< workspaces whose start failed
};

/// What supervisor::control did.
struct control_result {
    std::vector<runtime_service_ref> started{};  ///< start / restart: the targeted services, started or reused
    std::size_t stopped = 0;                     ///< stop / restart: supervised services stopped
    workspace_runtime_states states{};           ///< the desired states after the action (desired_state_patch)
    bool persisted = false;  ///< written to the workspace's config (see supervisor::control)
};

/// `Observer` (berth::run_observer, orchestrator/observer.hpp) is told, on the thread that calls
/// ensure_for_run / start_for_control / control, of each service as a `service` step (started
/// before it is reused, adopted or started: "service <name>: <command>"; ended "started pid <P>
/// <url>", "reused ...", "adopted ...", or failed with the error) and, inside it, of its
/// readiness wait as a `readiness` step ("waiting for service <name>: GET <url> (timeout <N> s)";
/// ended "ready" or failed with the reason). The default, no_observer, builds no text and calls
/// nothing.
template <runtime_service_store Store, clock Clock = system_clock, run_observer Observer = no_observer>
class supervisor {
public:
    /// Starts the background thread.
    /// @throws berth::error when the wake-up descriptor cannot be made.
    explicit supervisor(Store& store, supervisor_options options = {}, Clock clock = {}, Observer observer = {});
    supervisor(supervisor const&) = delete;
    supervisor& operator=(supervisor const&) = delete;
    ~supervisor();

    /// The run's services (upstream ensureRuntimeServicesForRun): each reused when a running one
    /// has its reuse key (the run takes a lease), else started (the run holds the lease and is
    /// `started_by_run_id`). On any failure the run's leases are released and the error rethrown.
    /// Only services whose desired state is `running` or unset are ensured: a `manual` or
    /// `stopped` one (its `serviceStates` entry, desired_state.hpp) is left alone, as upstream.
    /// Pass the refs to service_environment() for the run's command.
    /// @throws berth::error (a start failure, see the file comment); store_error.
    std::vector<runtime_service_ref> ensure_for_run(std::string const& run_id, service_context const& ctx,
                                                    std::span<runtime_service_config const> services);

    /// Manual control (upstream startRuntimeServicesForWorkspaceControl): like ensure_for_run,
    /// but started services hold no run lease and have no started_by_run_id; `invocation_id`
    /// (default: a new id) stands in for the run in `run`-scoped services.
    std::vector<runtime_service_ref> start_for_control(service_context const& ctx,
                                                       std::span<runtime_service_config const> services,
                                                       std::optional<std::string> invocation_id = std::nullopt);

    /// A workspace control (upstream's start / stop / restart of a workspace's services, with
    /// buildWorkspaceRuntimeDesiredStatePatch): `service_index` names one service of
    /// `runtime.services`, else every service that is not `manual`. Stop (and restart) stops the
    /// supervised services of those definitions in this workspace; start (and restart) starts them
    /// under manual control. The new desired states are returned and written (so that
    /// restart_desired_on_startup and later runs see them) to the execution workspace `ctx` names,
    /// in its `metadata.config`, when the store keeps execution workspaces; else to the project
    /// workspace `ctx` names, in its `metadata.runtimeConfig` (upstream
    /// mergeProjectWorkspaceRuntimeConfig), when the store keeps project workspaces.
    /// @throws config_error for an index out of range; berth::error / store_error as start_for_control.
    control_result control(runtime_control_action action, service_context const& ctx, workspace_runtime const& runtime,
                           std::optional<std::size_t> service_index = std::nullopt);

    /// Drops the run's leases. A service left without leases: ephemeral or `on_run_finish` →
    /// stopped now; `idle_timeout` → stopped after idleSeconds unless a run takes it again;
    /// `manual` → keeps running.
    void release_for_run(std::string const& run_id);

    /// Stops one service; false when this supervisor has no running service with that id.
    bool stop(std::string const& service_id);

    /// Stops the services of an execution workspace — by id, or whose cwd is `workspace_cwd` or
    /// inside it (never a sibling) — and marks its persisted live rows stopped. Returns how many
    /// supervised services were stopped.
    std::size_t stop_for_execution_workspace(std::string const& execution_workspace_id,
                                             std::optional<std::string> const& workspace_cwd = std::nullopt);

    /// Stops the project_workspace-scoped services of a project workspace and marks its persisted
    /// live rows of that scope stopped.
    std::size_t stop_for_project_workspace(std::string const& project_workspace_id);

    /// After a restart (upstream reconcilePersistedRuntimeServicesOnStartup): every live
    /// local_process row whose registry record names a live, healthy process is adopted
    /// (`running`/`healthy`, reused); so is one without a record whose port's listener passes the
    /// same checks (its cwd inside the row's cwd, its command line naming the command or the
    /// service, no other service's process); the rest are marked stopped and their records removed.
    /// Beyond upstream, no process is left unowned: a live process whose record fails the checks,
    /// and any registry record of a dead supervisor that no row adopted, has its group terminated.
    reconcile_result reconcile_on_startup();

    /// upstream restartDesiredRuntimeServicesOnStartup over the store's workspace rows of
    /// `company_id`: first each project workspace with a cwd whose `metadata.runtimeConfig` has
    /// `desiredState: running` and a `workspaceRuntime`, then each open execution workspace
    /// (active, idle, in_review, cleanup_failed) with a cwd whose `metadata.config` has them. Of
    /// each, the services whose state (`serviceStates`, else the aggregate) is `running` are
    /// started under manual control (running ones are reused). A workspace whose config berth
    /// cannot read, or whose start fails, counts as failed; the others go on.
    restart_result restart_desired_on_startup(std::string_view company_id)
        requires execution_workspace_store<Store> && project_workspace_store<Store>;

    /// The services this supervisor runs now.
    [[nodiscard]] std::vector<runtime_service_ref> running() const;
    /// One of them.
    [[nodiscard]] std::optional<runtime_service_ref> find(std::string const& service_id) const;
    /// The run ids holding a lease on a service.
    [[nodiscard]] std::vector<std::string> leases_of(std::string const& service_id) const;
    /// The kept stdout / stderr tails (at most 4 KiB each) of a running service.
    [[nodiscard]] std::optional<std::pair<std::string, std::string>> output_tails(std::string const& service_id) const;

    [[nodiscard]] service_registry const& registry() const noexcept { return registry_; }

    /// How much of each stream is kept.
    static constexpr std::size_t tail_bytes = 4096;

private:
    struct entry;
    using entry_ptr = std::shared_ptr<entry>;
    using steady = std::chrono::steady_clock;

    std::vector<runtime_service_ref> ensure(std::string const& run_id, std::optional<std::string> const& lease_run,
                                            service_context const& ctx,
                                            std::span<runtime_service_config const> services, bool for_run);
    std::optional<registry_record> port_adoption_record(std::int64_t port, std::optional<std::int64_t> owner,
                                                        workspace_runtime_service const& row,
                                                        std::string const& service_key,
                                                        std::string const& fingerprint,
                                                        std::span<workspace_runtime_service const> live_rows,
                                                        std::span<registry_record const> records) const;
    void provision_workspace(service_context const& ctx, workspace_runtime_service row);
    entry_ptr start_local(std::string const& run_id, std::optional<std::string> const& lease_run,
                          service_context const& ctx, runtime_service_config const& service,
                          service_scope const& scope, reuse_identity const& identity);
    void wait_for_young_listener(std::string const& service_key) const;
    entry_ptr try_adopt(registry_record const& rec, workspace_runtime_service row, std::string const& service_key,
                        std::string const& env_fingerprint, runtime_service_config const* config,
                        bool healthy = false);  // healthy: its URL answered 2xx just now
    void register_entry(entry_ptr const& e);
    void initiate_stop(entry_ptr const& e);
    void finalize(entry_ptr const& e);
    void persist(entry const& e);
    void persist_row(workspace_runtime_service const& row);
    void terminate_and_wait(entry_ptr const& e, std::unique_lock<std::mutex>& lock);
    std::optional<std::string> wait_ready(entry_ptr const& e, std::string const& url, readiness_config const& r,
                                          std::stop_token const& stop);
    void wake() noexcept;
    void monitor();

    Store& store_;
    supervisor_options options_;
    Clock clock_;
    [[no_unique_address]] Observer observer_;
    service_registry registry_;
    environment_map base_env_;
    std::string shell_;
    reuse_identity_cache identities_;  // a reuse hit renders no template and hashes nothing

    mutable std::mutex mutex_;
    std::condition_variable changed_;
    std::map<std::string, entry_ptr, std::less<>> by_id_;         // registered (running) services
    std::map<std::string, std::string, std::less<>> by_reuse_key_;
    std::map<std::string, std::vector<std::string>, std::less<>> leases_by_run_;
    std::vector<entry_ptr> watched_;  // every entry with a process the monitor watches
    std::set<std::string, std::less<>> starting_keys_;
    // Runtime provision (once per workspace, retried after a failure): the workspaces done, and
    // one mutex per workspace so that a second start waits for the first's provision.
    std::mutex provision_mutex_;
    std::set<std::string, std::less<>> provisioned_;
    std::map<std::string, std::shared_ptr<std::mutex>, std::less<>> provision_locks_;
    bool quit_ = false;
    int wake_fd_ = -1;
    std::thread monitor_;
};

}  // namespace berth::services

#include <berth/services/impl/supervisor.hpp>
