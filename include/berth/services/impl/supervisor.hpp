#pragma once
// Definitions of berth/services/supervisor.hpp (included at its bottom).

#include <berth/error.hpp>                 // berth::error, process_error
#include <berth/model/ids.hpp>             // new_id
#include <berth/services/detail/proc.hpp>  // pid_running, port_owner, process_group, path_within, command_line
#include <berth/services/http_probe.hpp>   // http_get
#include <berth/services/identity.hpp>     // resolve_scope, resolve_reuse_identity, service_key, ...
#include <berth/services/ports.hpp>        // port_reserver
#include <berth/services/template.hpp>     // build_template_data, render_template, render_service_env
#include <berth/process/signal_name.hpp>   // signal_name (exit messages)
#include <berth/process/spawn.hpp>         // process::run (the runtime provision command)
#include <berth/process/lease_processes.hpp>  // scan_environments, end_processes_carrying (service_variable)
#include <berth/process/proc.hpp>          // pid_start_time, process_alive

#include <algorithm>  // std::find, std::min, std::erase
#include <array>      // std::array
#include <atomic>     // std::atomic (parallel health checks)
#include <cerrno>     // errno, EINTR, EAGAIN
#include <csignal>    // kill, SIGTERM, SIGKILL
#include <cstdlib>    // std::strtoll
#include <cstring>    // std::strerror

#include <poll.h>          // poll, pollfd
#include <sys/eventfd.h>   // eventfd
#include <sys/syscall.h>   // SYS_pidfd_open
#include <sys/wait.h>      // waitid, WIFEXITED, WEXITSTATUS, WIFSIGNALED, WTERMSIG
#include <unistd.h>        // read, write, close, getpid

namespace berth::services {

namespace detail {

/// The registry records (by service key) that a live supervisor of this process holds: it started,
/// adopted or is starting their service. A record whose `ownerPid` is this process but which no
/// live supervisor holds was left by one that is gone (stop_on_destroy = false): the next
/// supervisor here adopts it like any dead owner's. (The bug this replaces: every record naming
/// this pid was skipped as "ours", so a supervisor restarted in the same process adopted nothing.)
class process_holdings {
public:
    static process_holdings& instance() {
        static process_holdings h;
        return h;
    }
    void hold(std::string const& key) {
        std::lock_guard lock(mutex_);
        ++count_[key];
    }
    void release(std::string const& key) {
        std::lock_guard lock(mutex_);
        auto it = count_.find(key);
        if (it != count_.end() && --it->second == 0) count_.erase(it);
    }
    [[nodiscard]] bool held(std::string const& key) const {
        std::lock_guard lock(mutex_);
        return count_.contains(key);
    }

private:
    mutable std::mutex mutex_;
    std::map<std::string, int, std::less<>> count_;
};

/// One hold of process_holdings, released when it is destroyed.
class holding {
public:
    explicit holding(std::string key) : key_(std::move(key)) { process_holdings::instance().hold(key_); }
    holding(holding const&) = delete;
    holding& operator=(holding const&) = delete;
    ~holding() { process_holdings::instance().release(key_); }

private:
    std::string key_;
};

inline process::detail::unique_fd open_pidfd_of(pid_t pid) noexcept {
#ifdef SYS_pidfd_open
    return process::detail::unique_fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
#else
    (void)pid;
    return {};
#endif
}

/// Reaps the exited process of `pidfd` when it is a child of this process: a service that a
/// supervisor here left running (stop_on_destroy = false) and another one here adopted. Nobody
/// else holds its handle, so without this its zombie would stay until this process ends. A
/// process that is not ours (ECHILD) or still runs is left alone. The pidfd names the very
/// process adopted, so a reused pid is never reaped by mistake.
inline void reap_if_own_child(int pidfd) noexcept {
    if (pidfd < 0) return;
    // P_PIDFD is 3 in linux/wait.h; glibc names it only from 2.36 on, so the value is spelled out.
    // A kernel before 5.4 answers EINVAL, and the zombie stays as it did before.
    constexpr auto p_pidfd = static_cast<idtype_t>(3);
    siginfo_t info{};
    while (::waitid(p_pidfd, static_cast<id_t>(pidfd), &info, WEXITED | WNOHANG) != 0 && errno == EINTR) {
    }
}

/// Keeps the last `n` bytes of `tail` + `chunk`.
inline void append_tail(std::string& tail, std::string_view chunk, std::size_t n) {
    tail.append(chunk);
    if (tail.size() > n) tail.erase(0, tail.size() - n);
}

inline std::string trimmed(std::string s) {
    auto const b = s.find_first_not_of(" \t\r\n");
    if (b == std::string::npos) return {};
    auto const e = s.find_last_not_of(" \t\r\n");
    return s.substr(b, e - b + 1);
}

/// This process as a service's owner in service_variable: `<pid> <start time>`.
inline std::string const& owner_mark() {
    static std::string const mark = [] {
        auto const self = static_cast<std::int64_t>(::getpid());
        return std::to_string(self) + " " + std::to_string(process::pid_start_time(self).value_or(0));
    }();
    return mark;
}

/// A service_variable value: the row id, and whether the owner it names is gone (not this
/// process, and no process with that pid and start time runs).
struct service_mark {
    std::string row_id;
    bool owner_gone = false;
};
[[nodiscard]] inline std::optional<service_mark> parse_service_mark(std::string const& value) {
    auto const a = value.find(' ');
    if (a == std::string::npos || a == 0) return std::nullopt;
    auto const b = value.find(' ', a + 1);
    if (b == std::string::npos) return std::nullopt;
    auto const owner = value.substr(a + 1);
    if (owner == owner_mark()) return service_mark{value.substr(0, a), false};
    auto const pid = std::strtoll(value.c_str() + a + 1, nullptr, 10);
    auto const start = std::strtoll(value.c_str() + b + 1, nullptr, 10);
    return service_mark{value.substr(0, a), !process::process_alive(pid, start)};
}

/// Sends `sig` to the process group `pgid` (when `pid` still leads or belongs to it) and to `pid`.
inline void signal_process(std::int64_t pid, std::optional<std::int64_t> pgid, int sig) noexcept {
    if (pid <= 0) return;
    if (pgid && *pgid > 1) {
        auto const g = process_group(pid);
        if (!g || *g == *pgid || !pid_alive(pid)) ::kill(-static_cast<pid_t>(*pgid), sig);
    }
    ::kill(static_cast<pid_t>(pid), sig);
}

/// Ends a process that is not our child: SIGTERM to its group, SIGKILL after `grace`; returns
/// once it is gone (or after a further `grace`).
inline void terminate_foreign(std::int64_t pid, std::optional<std::int64_t> pgid, std::chrono::milliseconds grace) {
    using steady = std::chrono::steady_clock;
    auto const pidfd = open_pidfd_of(static_cast<pid_t>(pid));  // before the signal: the same process after it
    signal_process(pid, pgid, SIGTERM);
    auto deadline = steady::now() + grace;
    bool killed = false;
    while (pid_running(pid)) {
        if (steady::now() >= deadline) {
            if (killed) break;
            signal_process(pid, pgid, SIGKILL);
            killed = true;
            deadline = steady::now() + grace;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (pgid && *pgid > 1) ::kill(-static_cast<pid_t>(*pgid), SIGKILL);  // anything left of the group
    reap_if_own_child(pidfd.get());
}

}  // namespace detail

template <runtime_service_store Store, clock Clock, run_observer Observer>
struct supervisor<Store, Clock, Observer>::entry {
    workspace_runtime_service row;
    std::string service_key;
    std::string env_fingerprint;
    stop_policy_type stop_type = stop_policy_type::manual;
    std::int64_t idle_seconds = 1800;
    std::set<std::string> lease_run_ids;
    std::optional<steady::time_point> idle_deadline;

    std::optional<process::child> child;  // a process we started
    pid_t pid = 0;                        // ours or adopted
    std::optional<std::int64_t> pgid;
    process::detail::unique_fd pidfd;     // readable once the process exited
    process::detail::unique_fd out, err;  // our read ends of its stdout / stderr
    std::string out_tail, err_tail, out_line, err_line;
    std::optional<std::int64_t> reserved_port;
    steady::time_point last_touch{};

    enum class phase { starting, running, stopping, exited };
    phase state = phase::starting;
    bool registered = false;  // in by_id_ (running)
    bool finalized = false;
    std::optional<steady::time_point> kill_at;
    std::optional<int> wait_status;  // own children only
    std::optional<detail::holding> held;  // its registry record, while this supervisor has it
};

// ---- construction ----------------------------------------------------------------------------------

template <runtime_service_store Store, clock Clock, run_observer Observer>
supervisor<Store, Clock, Observer>::supervisor(Store& store, supervisor_options options, Clock clock,
                                               Observer observer)
    : store_(store),
      options_(std::move(options)),
      clock_(std::move(clock)),
      observer_(std::move(observer)),
      registry_(options_.registry_dir),
      base_env_(options_.base_environment ? *options_.base_environment : service_base_environment()),
      shell_(options_.shell ? *options_.shell : resolve_shell()) {
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0) throw error(std::string("runtime service supervisor: eventfd failed: ") + std::strerror(errno));
    monitor_ = std::thread([this] { monitor(); });
}

template <runtime_service_store Store, clock Clock, run_observer Observer>
supervisor<Store, Clock, Observer>::~supervisor() {
    {
        std::unique_lock lock(mutex_);
        if (options_.stop_on_destroy) {
            auto const all = watched_;
            for (auto const& e : all)
                if (e->state != entry::phase::exited) initiate_stop(e);
            changed_.wait(lock, [&] {
                return std::all_of(all.begin(), all.end(), [](entry_ptr const& e) { return e->finalized; });
            });
        } else {
            for (auto const& e : watched_) {
                if (e->child) (void)e->child->detach();
                e->out.reset();
                e->err.reset();
                e->held.reset();  // left for the next supervisor, of this process or another
            }
        }
        quit_ = true;
    }
    wake();
    monitor_.join();
    ::close(wake_fd_);
}

template <runtime_service_store Store, clock Clock, run_observer Observer>
void supervisor<Store, Clock, Observer>::wake() noexcept {
    std::uint64_t one = 1;
    [[maybe_unused]] auto r = ::write(wake_fd_, &one, sizeof one);
}

template <runtime_service_store Store, clock Clock, run_observer Observer>
void supervisor<Store, Clock, Observer>::persist(entry const& e) {
    store_.upsert_runtime_service(e.row, clock_.now());
}

template <runtime_service_store Store, clock Clock, run_observer Observer>
void supervisor<Store, Clock, Observer>::persist_row(workspace_runtime_service const& row) {
    store_.upsert_runtime_service(row, clock_.now());
}

// ---- runs and manual control ------------------------------------------------------------------------

template <runtime_service_store Store, clock Clock, run_observer Observer>
std::vector<runtime_service_ref> supervisor<Store, Clock, Observer>::ensure_for_run(
    std::string const& run_id, service_context const& ctx, std::span<runtime_service_config const> services) {
    {
        std::lock_guard lock(mutex_);
        leases_by_run_[run_id];
    }
    try {
        return ensure(run_id, run_id, ctx, services, true);
    } catch (...) {
        release_for_run(run_id);
        throw;
    }
}

template <runtime_service_store Store, clock Clock, run_observer Observer>
std::vector<runtime_service_ref> supervisor<Store, Clock, Observer>::start_for_control(
    service_context const& ctx, std::span<runtime_service_config const> services,
    std::optional<std::string> invocation_id) {
    return ensure(invocation_id ? *invocation_id : new_id(), std::nullopt, ctx, services, false);
}

template <runtime_service_store Store, clock Clock, run_observer Observer>
std::vector<runtime_service_ref> supervisor<Store, Clock, Observer>::ensure(std::string const& run_id,
                                                                  std::optional<std::string> const& lease_run,
                                                                  service_context const& ctx,
                                                                  std::span<runtime_service_config const> services,
                                                                  bool for_run) {
    std::vector<runtime_service_ref> refs;
    refs.reserve(services.size());
    for (auto const& service : services) {
        // Runs leave `manual` and `stopped` services alone (upstream: only desired `running` ones).
        if (for_run && service_state(service, runtime_desired_state::running) != runtime_desired_state::running)
            continue;
        if (ctx.stop.stop_requested())
            throw error("Failed to start runtime service \"" + service.name + "\": cancelled before it started");
        // The step's text is built only for an observer that reports it (no_observer: nothing).
        std::string what;
        if constexpr (observes<Observer>) what = "service " + service.name + ": " + service.command;
        berth::detail::step_note<Observer> note{observer_, run_step::service, run_id, what};
        auto const scope = resolve_scope(service, ctx, run_id);
        // Remembered per exact input: recomputing it was ≈ 75% of a reuse hit (docs/services.md).
        auto const identity_ptr = identities_.get(service, ctx, scope);
        auto const& identity = *identity_ptr;
        std::unique_lock lock(mutex_);
        if (identity.reuse_key) {
            // One start per key at a time: a second caller waits and then reuses the first's.
            changed_.wait(lock, [&] { return !starting_keys_.contains(*identity.reuse_key); });
            if (auto k = by_reuse_key_.find(*identity.reuse_key); k != by_reuse_key_.end()) {
                auto const& e = by_id_.at(k->second);
                if (e->state == entry::phase::running) {
                    auto const now = clock_.now();
                    if (lease_run && e->lease_run_ids.insert(*lease_run).second)
                        leases_by_run_[*lease_run].push_back(e->row.id);
                    e->row.last_used_at = now;
                    e->row.stopped_at = std::nullopt;
                    e->idle_deadline.reset();
                    // The registry's lastSeenAt is informational; refreshing it at most once a
                    // minute keeps a reuse hit free of file writes.
                    auto const t = steady::now();
                    if (t - e->last_touch > std::chrono::minutes(1)) {
                        e->last_touch = t;
                        try {
                            registry_.touch(e->service_key, e->row.id, to_iso8601(now));
                        } catch (std::exception const&) {
                        }
                    }
                    persist(*e);
                    refs.push_back({e->row, true});
                    lock.unlock();  // the observer is never called with the supervisor's lock held
                    if constexpr (observes<Observer>)
                        note.done("reused pid " + e->row.provider_ref.value_or("?") + " " + e->row.url.value_or("(no url)"));
                    continue;
                }
            }
            starting_keys_.insert(*identity.reuse_key);
        }
        lock.unlock();
        struct release_key {
            supervisor* self;
            std::optional<std::string> const& key;
            ~release_key() {
                if (!key) return;
                {
                    std::lock_guard l(self->mutex_);
                    self->starting_keys_.erase(*key);
                }
                self->changed_.notify_all();
            }
        } guard{this, identity.reuse_key};
        entry_ptr e;
        try {
            e = start_local(run_id, lease_run, ctx, service, scope, identity);
        } catch (std::exception const& ex) {
            note.failed(ex.what());
            throw;
        }
        {
            std::lock_guard relock(mutex_);
            if (lease_run) leases_by_run_[*lease_run].push_back(e->row.id);
            refs.push_back({e->row, !e->child});
        }
        if constexpr (observes<Observer>)
            note.done(std::string(e->child ? "started" : "adopted") + " pid " + std::to_string(e->pid) + " " +
                      e->row.url.value_or("(no url)"));
    }
    return refs;
}

// ---- start -------------------------------------------------------------------------------------------

template <runtime_service_store Store, clock Clock, run_observer Observer>
typename supervisor<Store, Clock, Observer>::entry_ptr supervisor<Store, Clock, Observer>::start_local(
    std::string const& run_id, std::optional<std::string> const& lease_run, service_context const& ctx,
    runtime_service_config const& service, service_scope const& scope, reuse_identity const& identity) {
    auto const& name = service.name;
    auto const fingerprint = identity.reuse_key ? *identity.reuse_key : identity.env_fingerprint;
    service_key_input key_in{.service_name = name,
                             .cwd = identity.service_cwd,
                             .command = service.command,
                             .env_fingerprint = fingerprint,
                             .port = identity.identity_port,
                             .scope = scope,
                             .execution_workspace_id = ctx.workspace.execution_workspace_id,
                             .reuse_key = identity.reuse_key};
    auto const key = service_key(key_in);
    auto const now = clock_.now();

    workspace_runtime_service row{.id = new_id(),
                                  .company_id = ctx.agent.company_id,
                                  .project_id = ctx.workspace.project_id,
                                  .project_workspace_id = ctx.workspace.project_workspace_id,
                                  .execution_workspace_id = ctx.workspace.execution_workspace_id,
                                  .issue_id = ctx.issue ? std::optional<std::string>(ctx.issue->id) : std::nullopt,
                                  .scope_type = scope.type,
                                  .scope_id = scope.id,
                                  .service_name = name,
                                  .status = runtime_service_status::starting,
                                  .lifecycle = service.lifecycle,
                                  .reuse_key = identity.reuse_key,
                                  .command = service.command,
                                  .cwd = identity.service_cwd,
                                  .port = identity.identity_port,
                                  .url = std::nullopt,
                                  .provider = runtime_service_provider::local_process,
                                  .provider_ref = std::nullopt,
                                  .owner_agent_id = ctx.agent.id,
                                  .started_by_run_id = lease_run,
                                  .last_used_at = now,
                                  .started_at = now,
                                  .stopped_at = std::nullopt,
                                  .stop_policy = service.stop_policy_json,
                                  .health_status = runtime_service_health::unknown,
                                  .created_at = now,
                                  .updated_at = now};

    // The store's rows of this reuse key that no supervisor here runs: a stopped one donates its
    // id (and its port, below) — upstream findStoppedRuntimeServiceReuseCandidate; a live one whose
    // registry record is gone may still have its process, found below by its port.
    std::optional<workspace_runtime_service> donor, live_orphan;
    if (identity.reuse_key) {
        runtime_service_filter f{.company_id = ctx.agent.company_id, .provider = runtime_service_provider::local_process};
        if (scope.type == runtime_service_scope_type::project_workspace && ctx.workspace.project_workspace_id)
            f.project_workspace_id = ctx.workspace.project_workspace_id;
        if (scope.type == runtime_service_scope_type::execution_workspace && ctx.workspace.execution_workspace_id)
            f.execution_workspace_id = ctx.workspace.execution_workspace_id;
        f.limit = no_limit;  // every row of the scope: the one with this reuse key may be anywhere
        for (auto& r : store_.list_runtime_services(f)) {
            if (r.reuse_key != identity.reuse_key) continue;
            if (r.status == runtime_service_status::stopped) {
                if (!donor) donor = r;
            } else if (is_live_status(r.status) && !live_orphan) {
                std::lock_guard lock(mutex_);
                if (!by_id_.contains(r.id)) live_orphan = r;
            }
        }
    }
    if (live_orphan) {
        row.id = live_orphan->id;
        row.created_at = live_orphan->created_at;  // what the store keeps
    } else if (donor) {
        row.id = donor->id;
        row.created_at = donor->created_at;
    }

    // Adoption: a live process of the same identity, left by an earlier supervisor.
    wait_for_young_listener(key);
    if (auto rec = registry_.find_adoptable({key, name, service.command, identity.service_cwd, fingerprint,
                                             identity.identity_port})) {
        auto adopt_row = row;
        if (rec->runtime_service_id) adopt_row.id = *rec->runtime_service_id;
        if (auto e = try_adopt(*rec, adopt_row, key, identity.env_fingerprint, &service)) {
            std::lock_guard lock(mutex_);
            if (lease_run) e->lease_run_ids.insert(*lease_run);
            return e;
        }
    }

    // Adoption by port ownership (upstream: a port-owner-only adoption creates the record): no
    // registry record, but the service's port — explicit, or the live row's — has a listener that
    // passes registry adoption's checks.
    std::optional<std::int64_t> const owned_port =
        identity.identity_port ? identity.identity_port : live_orphan ? live_orphan->port : std::nullopt;
    std::optional<std::int64_t> owner;
    if (owned_port) {
        owner = detail::port_owner(*owned_port);
        if (owner && !registry_.read(key)) {
            auto probe = row;
            probe.port = owned_port;
            if (auto const t = service.url_template())
                probe.url = render_template(*t, build_template_data(ctx, owned_port));
            if (live_orphan) probe.started_at = live_orphan->started_at;
            auto const live = store_.list_runtime_services(
                {.provider = runtime_service_provider::local_process,
                 .statuses = {runtime_service_status::provisioning, runtime_service_status::starting,
                              runtime_service_status::running},
                 .limit = no_limit});
            if (auto rec = port_adoption_record(*owned_port, owner, probe, key, fingerprint, live, registry_.list())) {
                if (auto e = try_adopt(*rec, probe, key, identity.env_fingerprint, &service)) {
                    std::lock_guard lock(mutex_);
                    if (lease_run) e->lease_run_ids.insert(*lease_run);
                    return e;
                }
                owner = detail::port_owner(*owned_port);  // it failed its health check and was ended
            }
        }
    }

    if (identity.identity_port && owner) {
        // upstream's two wordings: a listener outside this workspace is a cross-workspace conflict.
        auto const owner_cwd = detail::process_cwd(*owner);
        auto const head = "Runtime service \"" + name + "\" could not start because port " +
                          std::to_string(*identity.identity_port);
        if (owner_cwd && !detail::path_within(*owner_cwd, ctx.workspace.cwd))
            throw error(head + " has a cross-workspace port conflict with pid " + std::to_string(*owner) +
                        " (cwd: " + *owner_cwd + "); requested workspace: " + ctx.workspace.cwd +
                        ". Stop the other service or configure a different port.");
        throw error(head + " is already in use by pid " + std::to_string(*owner) + " (cwd: " +
                    owner_cwd.value_or("unknown") + ")");
    }

    // The workspace's runtime provision command, once, before its first start.
    if (ctx.workspace.runtime_provision_command) provision_workspace(ctx, row);

    std::optional<std::int64_t> port = identity.identity_port;
    std::optional<std::int64_t> reserved;
    port_reserver const ports(options_.registry_dir);
    if (service.port.mode == port_config::kind::automatic) {
        // A donor's port when it is free (upstream: only for an automatic port), else a new one.
        if (donor && donor->port) reserved = ports.try_reserve(*donor->port, key);
        if (!reserved) reserved = ports.reserve(key);
        port = reserved;
    }
    struct release_port {
        port_reserver const& ports;
        std::optional<std::int64_t>& port;
        ~release_port() {
            if (port) ports.release(*port);
        }
    } port_guard{ports, reserved};

    auto const data = build_template_data(ctx, port);
    auto const cwd = port == identity.identity_port
                         ? identity.service_cwd
                         : resolve_configured_path(render_template(service.cwd, data), ctx.workspace.cwd);
    environment_map env = base_env_;
    for (auto const& [k, v] : ctx.adapter_env) env[k] = v;
    for (auto const& [k, v] : render_service_env(service, data)) env[k] = v;
    if (port) env[service.port.env_key] = std::to_string(*port);
    // Last, so that no configured env hides the process from reconcile_on_startup.
    env[std::string(service_variable)] = row.id + " " + detail::owner_mark();
    std::optional<std::string> url;
    if (auto t = service.url_template()) url = render_template(*t, data);
    row.cwd = cwd;
    row.port = port;
    row.url = url;

    auto e = std::make_shared<entry>();
    e->service_key = key;
    e->held.emplace(key);
    e->env_fingerprint = identity.env_fingerprint;
    e->stop_type = service.stop_type();
    e->idle_seconds = service.stop_policy.idle_seconds;
    if (lease_run) e->lease_run_ids.insert(*lease_run);
    try {
        auto c = process::child::start(command{.program = shell_, .args = {"-lc", service.command}, .cwd = cwd},
                                       process::run_options{.base_environment = std::move(env)});
        e->pid = c.pid();
        e->pgid = c.pid();
        e->out = c.take_stdout();
        e->err = c.take_stderr();
        e->pidfd = c.take_pidfd();
        e->child.emplace(std::move(c));
    } catch (process_error const& err) {
        throw error("Failed to start runtime service \"" + name + "\": " + err.what());
    }
    row.provider_ref = std::to_string(e->pid);
    e->row = row;
    e->reserved_port = std::exchange(reserved, std::nullopt);  // the entry owns the reservation now
    {
        std::lock_guard lock(mutex_);
        watched_.push_back(e);
    }
    wake();

    auto fail = [&](std::string const& why) -> error {
        std::unique_lock lock(mutex_);
        terminate_and_wait(e, lock);
        e->row.status = runtime_service_status::stopped;
        e->row.health_status = runtime_service_health::unhealthy;
        e->row.stopped_at = clock_.now();
        e->row.last_used_at = e->row.stopped_at;
        registry_.remove(e->service_key);
        e->held.reset();
        if (e->reserved_port) ports.release(*e->reserved_port);
        try {
            persist(*e);
        } catch (std::exception const&) {
        }
        std::erase(watched_, e);
        auto const tail = detail::trimmed(e->err_tail);
        return error("Failed to start runtime service \"" + name + "\": " + why +
                     (tail.empty() ? std::string() : " | stderr: " + tail));
    };

    try {
        persist(*e);
        registry_.write(registry_record{.service_key = key,
                                        .service_name = name,
                                        .command = service.command,
                                        .cwd = cwd,
                                        .env_fingerprint = fingerprint,
                                        .port = port,
                                        .url = url,
                                        .pid = e->pid,
                                        .process_group_id = e->pid,
                                        .runtime_service_id = row.id,
                                        .reuse_key = identity.reuse_key,
                                        .started_at = to_iso8601(row.started_at),
                                        .last_seen_at = to_iso8601(now),
                                        .metadata = {{"projectId", detail::opt(row.project_id)},
                                                     {"projectWorkspaceId", detail::opt(row.project_workspace_id)},
                                                     {"executionWorkspaceId", detail::opt(row.execution_workspace_id)},
                                                     {"issueId", detail::opt(row.issue_id)},
                                                     {"scopeType", to_string(row.scope_type)},
                                                     {"scopeId", detail::opt(row.scope_id)}},
                                        .owner_pid = ::getpid()});
    } catch (std::exception const& ex) {
        throw fail(ex.what());
    }
    e->last_touch = steady::now();

    if (service.readiness && url) {
        std::string what;
        if constexpr (observes<Observer>)
            what = "waiting for service " + name + ": GET " + *url + " (timeout " +
                   std::to_string(service.readiness->timeout_sec) + " s)";
        berth::detail::step_note<Observer> note{observer_, run_step::readiness, run_id, what};
        if (auto why = wait_ready(e, *url, *service.readiness, ctx.stop)) {
            auto failure = fail(*why);
            note.failed(failure.what());
            throw failure;
        }
        note.done("ready");
    }

    std::unique_lock lock(mutex_);
    if (e->state == entry::phase::exited) {
        lock.unlock();
        throw fail("the service exited before it was registered");
    }
    e->state = entry::phase::running;
    e->row.status = runtime_service_status::running;
    e->row.health_status = runtime_service_health::healthy;
    e->row.last_used_at = clock_.now();
    register_entry(e);
    persist(*e);
    return e;
}

/// A record of `service_key` whose process runs but does not listen on its port yet, started less
/// than `health_timeout` ago: a service without a readiness check, asked for again while it starts.
/// Adoption needs the listener, and a second start would overwrite the record and leave the first
/// instance running, tracked by nothing; so wait for the listener until `health_timeout` after the
/// record's start (measured on the steady clock from here: an injected clock need not advance).
template <runtime_service_store Store, clock Clock, run_observer Observer>
void supervisor<Store, Clock, Observer>::wait_for_young_listener(std::string const& service_key) const {
    auto const rec = registry_.read(service_key);
    if (!rec || !rec->port || rec->started_at.empty()) return;
    timestamp started{};
    try {
        started = parse_iso8601(rec->started_at, "startedAt");
    } catch (parse_error const&) {
        return;
    }
    auto const age = clock_.now() - started;
    // The cheap checks first: an older record goes straight to find_adoptable, which walks /proc
    // for the listener itself.
    if (age < decltype(age)::zero() || age >= options_.health_timeout) return;
    if (!detail::pid_running(rec->pid) || detail::port_owner(*rec->port)) return;
    auto const until = steady::now() + (options_.health_timeout - std::chrono::duration_cast<std::chrono::milliseconds>(age));
    while (steady::now() < until && detail::pid_running(rec->pid) && !detail::port_owner(*rec->port))
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
}

template <runtime_service_store Store, clock Clock, run_observer Observer>
typename supervisor<Store, Clock, Observer>::entry_ptr supervisor<Store, Clock, Observer>::try_adopt(
    registry_record const& rec, workspace_runtime_service row, std::string const& service_key,
    std::string const& env_fingerprint, runtime_service_config const* config, bool healthy) {
    auto const url = rec.url ? rec.url : row.url;
    if (!healthy && url && !http_get(*url, options_.health_timeout).ok()) {
        detail::terminate_foreign(rec.pid, rec.process_group_id, options_.kill_grace);
        registry_.remove(service_key);
        return nullptr;
    }
    auto e = std::make_shared<entry>();
    e->service_key = service_key;
    e->held.emplace(service_key);
    e->env_fingerprint = env_fingerprint;
    if (config) {
        e->stop_type = config->stop_type();
        e->idle_seconds = config->stop_policy.idle_seconds;
    } else {
        // A reconciled row: its persisted stopPolicy is what is known.
        runtime_service_config c;
        c.lifecycle = row.lifecycle;
        if (row.stop_policy) {
            if (auto const* t = row.stop_policy->if_contains("type"); t && t->is_string())
                c.stop_policy.type = try_parse_enum<stop_policy_type>(std::string_view(t->get_string()));
            if (auto const* s = row.stop_policy->if_contains("idleSeconds"); s && s->is_int64())
                c.stop_policy.idle_seconds = std::max<std::int64_t>(1, s->get_int64());
        }
        e->stop_type = c.stop_type();
        e->idle_seconds = c.stop_policy.idle_seconds;
    }
    e->pid = static_cast<pid_t>(rec.pid);
    e->pgid = rec.process_group_id;
    e->pidfd = detail::open_pidfd_of(e->pid);
    auto const now = clock_.now();
    row.status = runtime_service_status::running;
    row.health_status = runtime_service_health::healthy;
    row.provider_ref = std::to_string(rec.pid);
    if (rec.port) row.port = rec.port;
    row.url = url;
    row.last_used_at = now;
    row.stopped_at = std::nullopt;
    if (!rec.started_at.empty()) {
        try {
            row.started_at = parse_iso8601(rec.started_at, "startedAt");
        } catch (parse_error const&) {
        }
    }
    e->row = row;
    e->state = entry::phase::running;
    auto updated = rec;
    updated.runtime_service_id = row.id;
    updated.last_seen_at = to_iso8601(now);
    updated.owner_pid = ::getpid();
    updated.pid = rec.pid;
    registry_.write(updated);
    e->last_touch = steady::now();
    std::lock_guard lock(mutex_);
    watched_.push_back(e);
    register_entry(e);
    persist(*e);
    wake();
    return e;
}

template <runtime_service_store Store, clock Clock, run_observer Observer>
void supervisor<Store, Clock, Observer>::register_entry(entry_ptr const& e) {
    e->registered = true;
    by_id_[e->row.id] = e;
    if (e->row.reuse_key) by_reuse_key_[*e->row.reuse_key] = e->row.id;
}

template <runtime_service_store Store, clock Clock, run_observer Observer>
std::optional<std::string> supervisor<Store, Clock, Observer>::wait_ready(entry_ptr const& e, std::string const& url,
                                                                          readiness_config const& r,
                                                                          std::stop_token const& stop) {
    // A stop request wakes the wait below at once (under the mutex, so that it cannot slip in
    // between the predicate's check and the wait).
    std::stop_callback const on_stop(stop, [this] {
        { std::lock_guard lock(mutex_); }
        changed_.notify_all();
    });
    auto cancelled = [&] {
        return "cancelled while waiting for readiness of " + url;
    };
    auto const started = steady::now();
    auto const deadline = started + std::chrono::seconds(r.timeout_sec);
    auto const longest = std::chrono::milliseconds(r.interval_ms);
    std::string last = "service did not become ready";
    while (true) {
        auto const left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
        if (left.count() <= 0) break;
        if (stop.stop_requested()) return cancelled();
        auto const res = http_get(url, std::min<std::chrono::milliseconds>(left, std::chrono::seconds(2)));
        if (res.ok()) return std::nullopt;
        last = res.status ? "received HTTP " + std::to_string(*res.status) : res.error;
        // The next attempt comes after a quarter of the time waited so far (at least 1 ms, at
        // most intervalMs): a service that is ready after t is seen by about 1.25 t.
        auto const waited = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - started);
        auto const gap = std::clamp<std::chrono::milliseconds>(waited / 4, std::chrono::milliseconds(1), longest);
        std::unique_lock lock(mutex_);
        auto const wake_at = std::min(deadline, steady::now() + gap);
        if (changed_.wait_until(lock, wake_at,
                                [&] { return e->state == entry::phase::exited || stop.stop_requested(); })) {
            if (e->state != entry::phase::exited) return cancelled();
            // Its output is read to the end before the message quotes its stderr.
            changed_.wait_for(lock, std::chrono::milliseconds(500), [&] { return !e->out && !e->err; });
            std::string how = "exited";
            if (e->wait_status && WIFEXITED(*e->wait_status))
                how = "exited with code " + std::to_string(WEXITSTATUS(*e->wait_status));
            else if (e->wait_status && WIFSIGNALED(*e->wait_status))
                how = "was killed by signal " + process::signal_name(WTERMSIG(*e->wait_status));
            return "Readiness check failed for " + url + ": the service " + how + " before it became ready";
        }
    }
    return "Readiness check failed for " + url + ": " + last;
}

// ---- stop ------------------------------------------------------------------------------------------

template <runtime_service_store Store, clock Clock, run_observer Observer>
void supervisor<Store, Clock, Observer>::initiate_stop(entry_ptr const& e) {
    if (e->registered) {
        e->registered = false;
        by_id_.erase(e->row.id);
        if (e->row.reuse_key) {
            auto k = by_reuse_key_.find(*e->row.reuse_key);
            if (k != by_reuse_key_.end() && k->second == e->row.id) by_reuse_key_.erase(k);
        }
    }
    e->idle_deadline.reset();
    if (e->state == entry::phase::exited) {
        e->state = entry::phase::stopping;
        finalize(e);
        return;
    }
    if (e->state == entry::phase::stopping) return;
    e->state = entry::phase::stopping;
    if (e->child) e->child->signal_group(SIGTERM);
    else detail::signal_process(e->pid, e->pgid, SIGTERM);
    e->kill_at = steady::now() + options_.kill_grace;
    wake();
}

/// Terminates a process during a failed start and waits for its exit (the lock is released while waiting).
template <runtime_service_store Store, clock Clock, run_observer Observer>
void supervisor<Store, Clock, Observer>::terminate_and_wait(entry_ptr const& e, std::unique_lock<std::mutex>& lock) {
    if (e->state != entry::phase::exited) {
        if (e->child) e->child->signal_group(SIGTERM);
        e->kill_at = steady::now() + options_.kill_grace;
        e->state = entry::phase::stopping;
        wake();
        changed_.wait(lock, [&] { return e->wait_status.has_value() || !e->child || e->finalized; });
    }
}

/// Records the end of a service whose process is gone: row, registry, port, persistence.
template <runtime_service_store Store, clock Clock, run_observer Observer>
void supervisor<Store, Clock, Observer>::finalize(entry_ptr const& e) {
    if (e->finalized) return;
    e->finalized = true;
    bool const stopping = e->state == entry::phase::stopping;
    bool clean = true;
    if (e->wait_status) {
        int const st = *e->wait_status;
        clean = (WIFEXITED(st) && WEXITSTATUS(st) == 0) || (WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
    }
    auto const now = clock_.now();
    e->row.status = stopping || clean ? runtime_service_status::stopped : runtime_service_status::failed;
    e->row.health_status =
        e->row.status == runtime_service_status::failed ? runtime_service_health::unhealthy : runtime_service_health::unknown;
    e->row.last_used_at = now;
    e->row.stopped_at = now;
    e->state = entry::phase::exited;
    if (e->registered) {
        e->registered = false;
        by_id_.erase(e->row.id);
        if (e->row.reuse_key) {
            auto k = by_reuse_key_.find(*e->row.reuse_key);
            if (k != by_reuse_key_.end() && k->second == e->row.id) by_reuse_key_.erase(k);
        }
    }
    try {
        registry_.remove(e->service_key);
    } catch (std::exception const&) {
    }
    e->held.reset();
    if (e->reserved_port) port_reserver(options_.registry_dir).release(*e->reserved_port);
    try {
        persist(*e);
    } catch (std::exception const&) {
        // The store refused: the in-memory state is final anyway; the next reconcile repairs the row.
    }
    std::erase(watched_, e);
    changed_.notify_all();
}

template <runtime_service_store Store, clock Clock, run_observer Observer>
bool supervisor<Store, Clock, Observer>::stop(std::string const& service_id) {
    std::unique_lock lock(mutex_);
    auto it = by_id_.find(service_id);
    if (it == by_id_.end()) return false;
    auto const e = it->second;
    initiate_stop(e);
    changed_.wait(lock, [&] { return e->finalized; });
    return true;
}

template <runtime_service_store Store, clock Clock, run_observer Observer>
void supervisor<Store, Clock, Observer>::release_for_run(std::string const& run_id) {
    std::vector<entry_ptr> to_stop;
    {
        std::unique_lock lock(mutex_);
        auto node = leases_by_run_.extract(run_id);
        if (node.empty()) return;
        auto const now = clock_.now();
        for (auto const& id : node.mapped()) {
            auto it = by_id_.find(id);
            if (it == by_id_.end()) continue;
            auto const& e = it->second;
            e->lease_run_ids.erase(run_id);
            e->row.last_used_at = now;
            persist(*e);
            if (!e->lease_run_ids.empty()) continue;
            if (e->row.lifecycle == runtime_service_lifecycle::ephemeral || e->stop_type == stop_policy_type::on_run_finish)
                to_stop.push_back(e);
            else if (e->stop_type == stop_policy_type::idle_timeout)
                e->idle_deadline = steady::now() + std::chrono::seconds(e->idle_seconds);
        }
        for (auto const& e : to_stop) initiate_stop(e);
        changed_.wait(lock, [&] {
            return std::all_of(to_stop.begin(), to_stop.end(), [](entry_ptr const& e) { return e->finalized; });
        });
    }
    wake();
}

template <runtime_service_store Store, clock Clock, run_observer Observer>
std::size_t supervisor<Store, Clock, Observer>::stop_for_execution_workspace(std::string const& execution_workspace_id,
                                                                   std::optional<std::string> const& workspace_cwd) {
    std::vector<entry_ptr> hit;
    {
        std::unique_lock lock(mutex_);
        std::optional<std::string> root;
        if (workspace_cwd) root = resolve_configured_path(*workspace_cwd, "/");
        for (auto const& [id, e] : by_id_) {
            if (e->row.execution_workspace_id == execution_workspace_id ||
                (root && e->row.cwd && detail::path_within(*e->row.cwd, *root)))
                hit.push_back(e);
        }
        for (auto const& e : hit) initiate_stop(e);
        changed_.wait(lock, [&] {
            return std::all_of(hit.begin(), hit.end(), [](entry_ptr const& e) { return e->finalized; });
        });
    }
    store_.stop_runtime_services({.execution_workspace_id = execution_workspace_id}, clock_.now());
    return hit.size();
}

template <runtime_service_store Store, clock Clock, run_observer Observer>
std::size_t supervisor<Store, Clock, Observer>::stop_for_project_workspace(std::string const& project_workspace_id) {
    std::vector<entry_ptr> hit;
    {
        std::unique_lock lock(mutex_);
        for (auto const& [id, e] : by_id_)
            if (e->row.project_workspace_id == project_workspace_id &&
                e->row.scope_type == runtime_service_scope_type::project_workspace)
                hit.push_back(e);
        for (auto const& e : hit) initiate_stop(e);
        changed_.wait(lock, [&] {
            return std::all_of(hit.begin(), hit.end(), [](entry_ptr const& e) { return e->finalized; });
        });
    }
    store_.stop_runtime_services(
        {.project_workspace_id = project_workspace_id, .scope_type = runtime_service_scope_type::project_workspace},
        clock_.now());
    return hit.size();
}

// ---- startup -------------------------------------------------------------------------------------

template <runtime_service_store Store, clock Clock, run_observer Observer>
reconcile_result supervisor<Store, Clock, Observer>::reconcile_on_startup() {
    reconcile_result out;
    auto const rows = store_.list_runtime_services(
        {.provider = runtime_service_provider::local_process,
         .statuses = {runtime_service_status::provisioning, runtime_service_status::starting,
                      runtime_service_status::running},
         .limit = no_limit});
    out.reconciled = rows.size();
    std::map<std::string, registry_record> by_service;
    std::vector<registry_record> unnamed;
    auto const records = registry_.list();
    for (auto r : records) {
        if (r.runtime_service_id) by_service.emplace(*r.runtime_service_id, std::move(r));
        else unnamed.push_back(std::move(r));
    }
    auto const self = static_cast<std::int64_t>(::getpid());
    // A zombie owner is dead (pid_running): it was killed and not yet reaped.
    auto owned_by_live_other = [&](registry_record const& r) {
        return r.owner_pid && *r.owner_pid != self && detail::pid_running(*r.owner_pid);
    };
    // Held by a live supervisor of this process (being started or supervised): not ours to take.
    // A record naming this pid that no live supervisor holds was left by one that is gone.
    auto held_here = [&](registry_record const& r) {
        return r.owner_pid == self && detail::process_holdings::instance().held(r.service_key);
    };
    std::vector<std::string> to_stop;
    std::set<std::string> handled;
    std::vector<workspace_runtime_service const*> no_record;  // port adoption candidates
    for (auto const& row : rows) {
        {
            std::lock_guard lock(mutex_);
            if (by_id_.contains(row.id)) {
                handled.insert(row.id);
                continue;
            }
        }
        auto rec = by_service.find(row.id);
        if (rec != by_service.end()) {
            handled.insert(row.id);
            auto const& r = rec->second;
            if (held_here(r)) continue;
            if (owned_by_live_other(r)) {
                ++out.left_to_live_owner;
                continue;
            }
            bool const alive =
                detail::pid_running(r.pid) &&
                command_matches(r, r.command, r.service_name, r.port ? detail::port_owner(*r.port) : std::nullopt);
            // An ephemeral service served only its run, whose supervisor is gone, and no later run
            // can reuse it (it has no reuse key): it is ended below, not adopted. (Upstream adopts
            // it with no run holding it, and then nothing ever stops it.)
            bool const ephemeral = row.lifecycle == runtime_service_lifecycle::ephemeral;
            if (alive && !ephemeral) {
                auto adopted = try_adopt(r, row, r.service_key, r.env_fingerprint, nullptr);
                if (adopted) {
                    ++out.adopted;
                    continue;
                }
            } else if (!alive) {
                registry_.remove(r.service_key);
            }
        } else if (row.port && row.cwd && row.command && row.lifecycle != runtime_service_lifecycle::ephemeral) {
            no_record.push_back(&row);
            continue;
        }
        to_stop.push_back(row.id);
    }
    // Rows whose registry record is gone: the listener of the row's port, when it is the service's
    // process (upstream's port-owner adoption). One walk of /proc finds every owner.
    if (!no_record.empty()) {
        std::set<std::int64_t> ports;
        for (auto const* row : no_record) ports.insert(*row->port);
        auto const owners = detail::port_owners(ports);
        std::vector<std::optional<registry_record>> recs(no_record.size());
        for (std::size_t i = 0; i < no_record.size(); ++i) {
            auto const* row = no_record[i];
            auto const owner = owners.find(*row->port);
            if (owner == owners.end()) continue;
            auto const key = "workspace-runtime-" + sanitize_slug(row->service_name, "service") + "-" +
                             sha256_hex("port-adopted:" + row->id).substr(0, 24);
            recs[i] = port_adoption_record(*row->port, owner->second, *row, key, "", rows, records);
        }
        // The health checks wait on other processes: up to 16 at a time (a serial walk of 100
        // services costs 100 round trips to 100 processes that must each be scheduled).
        std::vector<char> healthy(no_record.size(), 0);
        {
            std::atomic<std::size_t> next{0};
            auto check = [&] {
                for (std::size_t i; (i = next.fetch_add(1)) < recs.size();) {
                    if (!recs[i]) continue;
                    auto const url = recs[i]->url ? recs[i]->url : no_record[i]->url;
                    healthy[i] = !url || http_get(*url, options_.health_timeout).ok();
                }
            };
            std::vector<std::thread> workers;
            auto const n = std::min<std::size_t>(16, recs.size());
            for (std::size_t w = 1; w < n; ++w) workers.emplace_back(check);
            check();
            for (auto& t : workers) t.join();
        }
        std::set<std::int64_t> taken;
        for (std::size_t i = 0; i < no_record.size(); ++i) {
            auto const* row = no_record[i];
            auto const& rec = recs[i];
            // Not healthy: try_adopt checks again, then ends the process as for any failed adoption.
            if (rec && !taken.contains(rec->pid) &&
                try_adopt(*rec, *row, rec->service_key, rec->env_fingerprint, nullptr, healthy[i] != 0)) {
                taken.insert(rec->pid);
                ++out.adopted;
                ++out.adopted_by_port;
                continue;
            }
            to_stop.push_back(row->id);
        }
    }
    if (!to_stop.empty()) out.stopped = store_.stop_runtime_services({.ids = to_stop}, clock_.now()).size();
    // The services whose processes are ended below, and then by their service_variable (what left
    // their group: a daemon, a double fork; or a row whose registry record is gone).
    std::set<std::string> ended(to_stop.begin(), to_stop.end());
    std::set<std::string> counted;  // of ended: those counted in orphans_stopped
    // Orphans: records of dead supervisors that no live row adopted.
    auto end_orphan = [&](registry_record const& r) {
        if (held_here(r) || owned_by_live_other(r)) return;
        if (detail::pid_running(r.pid)) {
            detail::terminate_foreign(r.pid, r.process_group_id, options_.kill_grace);
            ++out.orphans_stopped;
            if (r.runtime_service_id) counted.insert(*r.runtime_service_id);
        }
        if (r.runtime_service_id) ended.insert(*r.runtime_service_id);
        registry_.remove(r.service_key);
    };
    for (auto const& [id, r] : by_service) {
        bool adopted = false;
        {
            std::lock_guard lock(mutex_);
            adopted = by_id_.contains(id);
        }
        if (!adopted && !handled.contains(id)) end_orphan(r);
        else if (!adopted && handled.contains(id) && !owned_by_live_other(r) && detail::pid_running(r.pid))
            end_orphan(r);  // a live process whose row could not adopt it
    }
    for (auto const& r : unnamed) end_orphan(r);
    if (!ended.empty()) {
        // Only processes whose owner is gone: a row stopped here may still be served by a live
        // supervisor whose registry this one cannot see (another $HOME).
        auto const scan = process::scan_environments(service_variable);
        for (auto const& [value, pids] : scan.carrying) {
            auto const mark = detail::parse_service_mark(value);
            if (!mark || !mark->owner_gone || !ended.contains(mark->row_id)) continue;
            (void)process::end_processes_carrying(service_variable, value, pids);
            if (counted.insert(mark->row_id).second) ++out.orphans_stopped;
        }
    }
    return out;
}


/// The registry record that adopting the listener of `port` would write, when that listener is
/// this service's process: not this process nor in its process group, its cwd inside the
/// service's cwd, its command line naming the command or the service (registry adoption's
/// checks), and no other service's process — no live registry record of another service names
/// its pid or group, and no other live row of another workspace names its pid. Else nullopt.
template <runtime_service_store Store, clock Clock, run_observer Observer>
std::optional<registry_record> supervisor<Store, Clock, Observer>::port_adoption_record(
    std::int64_t port, std::optional<std::int64_t> owner, workspace_runtime_service const& row,
    std::string const& service_key, std::string const& fingerprint,
    std::span<workspace_runtime_service const> live_rows, std::span<registry_record const> records) const {
    if (!owner || !row.cwd || !row.command) return std::nullopt;
    auto const self = static_cast<std::int64_t>(::getpid());
    if (*owner == self) return std::nullopt;
    auto group = detail::process_group(*owner);
    if (group && *group == static_cast<std::int64_t>(::getpgrp())) return std::nullopt;  // never signal our own group
    auto const cwd = detail::process_cwd(*owner);
    if (!cwd || !detail::path_within(*cwd, *row.cwd)) return std::nullopt;
    registry_record rec{.service_key = service_key,
                        .service_name = row.service_name,
                        .command = *row.command,
                        .cwd = *row.cwd,
                        .env_fingerprint = fingerprint,
                        .port = port,
                        .url = row.url,
                        .pid = *owner,
                        .process_group_id = group,
                        .runtime_service_id = row.id,
                        .reuse_key = row.reuse_key,
                        .started_at = to_iso8601(row.started_at),
                        .last_seen_at = to_iso8601(clock_.now()),
                        .metadata = {{"projectId", detail::opt(row.project_id)},
                                     {"projectWorkspaceId", detail::opt(row.project_workspace_id)},
                                     {"executionWorkspaceId", detail::opt(row.execution_workspace_id)},
                                     {"issueId", detail::opt(row.issue_id)},
                                     {"scopeType", to_string(row.scope_type)},
                                     {"scopeId", detail::opt(row.scope_id)}},
                        .owner_pid = self};
    if (!command_matches(rec, *row.command, row.service_name, owner)) return std::nullopt;
    // The group's leader, when it still runs, is what berth started (`$SHELL -lc`, which may not
    // exec the command): supervise it, as a registry record does, so that its exit is seen and, when
    // it is this process's child, it is reaped.
    if (group && *group != *owner && detail::pid_running(*group) && detail::process_group(*group) == group)
        rec.pid = *group;
    for (auto const& other : records) {
        if (other.runtime_service_id == row.id || other.service_key == service_key) continue;
        bool const same_process = other.pid == *owner || (group && other.process_group_id == group);
        if (same_process && detail::pid_running(other.pid)) return std::nullopt;
    }
    auto const pid_text = std::to_string(*owner);
    auto const group_text = group ? std::optional<std::string>(std::to_string(*group)) : std::nullopt;
    for (auto const& other : live_rows)
        if (other.id != row.id && (other.provider_ref == pid_text || other.provider_ref == group_text) &&
            (other.execution_workspace_id != row.execution_workspace_id ||
             other.project_workspace_id != row.project_workspace_id))
            return std::nullopt;
    return rec;
}

/// Runs the workspace's runtime provision command once (upstream: under a mutex, before the first
/// service start, retried after a failure): the row is persisted `provisioning` first; a failure
/// persists it `failed`/`unhealthy`, logs the error and throws it.
template <runtime_service_store Store, clock Clock, run_observer Observer>
void supervisor<Store, Clock, Observer>::provision_workspace(service_context const& ctx, workspace_runtime_service row) {
    auto const& workspace = ctx.workspace.cwd;
    std::shared_ptr<std::mutex> m;
    {
        std::lock_guard lock(provision_mutex_);
        if (provisioned_.contains(workspace)) return;
        auto& slot = provision_locks_[workspace];
        if (!slot) slot = std::make_shared<std::mutex>();
        m = slot;
    }
    std::lock_guard one_at_a_time(*m);
    {
        std::lock_guard lock(provision_mutex_);
        if (provisioned_.contains(workspace)) return;  // a concurrent start did it
    }
    auto const& command = *ctx.workspace.runtime_provision_command;
    row.status = runtime_service_status::provisioning;
    persist_row(row);
    std::optional<std::string> operation;
    if constexpr (operation_store<Store>) {
        operation = store_
                        .begin_operation({.company_id = row.company_id,
                                          .execution_workspace_id = row.execution_workspace_id,
                                          .heartbeat_run_id = row.started_by_run_id,
                                          .issue_id = row.issue_id,
                                          .phase = workspace_operation_phase::workspace_runtime_provision,
                                          .command = command,
                                          .cwd = workspace},
                                         clock_.now())
                        .id;
    }
    environment_map env = base_env_;
    for (auto const& [k, v] : ctx.adapter_env) env[k] = v;
    // Marked as the service it provisions for: what the command leaves running (a daemon it
    // forked) is ended with that service's processes when its owner dies (reconcile_on_startup).
    env[std::string(service_variable)] = row.id + " " + detail::owner_mark();
    // A `provision` step with the command's live output (one line per chunk as it comes).
    std::string what;
    if constexpr (observes<Observer>) what = "runtime provision of " + workspace + ": " + command;
    std::string const run_id = row.started_by_run_id.value_or(std::string());
    berth::detail::step_note<Observer> note{observer_, run_step::provision, run_id, what};
    std::function<void(output_stream, std::string_view)> on_output;
    if constexpr (observes<Observer>)
        on_output = [&note](output_stream stream, std::string_view chunk) { note.output(stream, chunk, run_step::provision); };
    command_result result;
    std::string why;
    try {
        result = process::run(berth::command{.program = shell_, .args = {"-lc", command}, .cwd = workspace,
                                             .timeout = std::chrono::minutes(5), .max_output_bytes = 64 * 1024,
                                             .on_output = std::move(on_output), .stop = ctx.stop},
                              {.base_environment = std::move(env), .kill_grace = options_.kill_grace});
        if (result.cancelled) why = "cancelled";
        else if (result.timed_out) why = "timed out";
        else if (!result.exit_code) why = "was killed by signal " + process::signal_name(result.signal.value_or(0));
        else if (*result.exit_code != 0) why = "exited with code " + std::to_string(*result.exit_code);
    } catch (std::exception const& ex) {
        why = ex.what();
    }
    auto tail = [](std::string const& s) { return detail::trimmed(s.size() > 4096 ? s.substr(s.size() - 4096) : s); };
    if constexpr (operation_store<Store>) {
        try {
            store_.update_operation(
                *operation,
                {.status = why.empty() ? workspace_operation_status::succeeded : workspace_operation_status::failed,
                 .exit_code = result.exit_code,
                 .stdout_excerpt = tail(result.stdout_text),
                 .stderr_excerpt = tail(result.stderr_text),
                 .finished_at = clock_.now()},
                clock_.now());
        } catch (std::exception const&) {
        }
    }
    if (why.empty()) {
        note.done("provisioned");
        std::lock_guard lock(provision_mutex_);
        provisioned_.insert(workspace);
        return;
    }
    auto const err_tail = tail(result.stderr_text);
    error const failure("Failed to start runtime service \"" + row.service_name + "\": runtime provision command \"" +
                        command + "\" " + why + (err_tail.empty() ? std::string() : " | stderr: " + err_tail));
    note.failed(failure.what());
    row.status = runtime_service_status::failed;
    row.health_status = runtime_service_health::unhealthy;
    row.stopped_at = clock_.now();
    try {
        persist_row(row);
    } catch (std::exception const&) {
    }
    if (options_.on_log) {
        try {
            options_.on_log(output_stream::stderr_stream, std::string("[service:") + row.service_name + "] " + failure.what());
        } catch (...) {
        }
    }
    throw failure;
}

template <runtime_service_store Store, clock Clock, run_observer Observer>
control_result supervisor<Store, Clock, Observer>::control(runtime_control_action action, service_context const& ctx,
                                                 workspace_runtime const& runtime,
                                                 std::optional<std::size_t> service_index) {
    control_result out;
    auto const& services = runtime.services;
    out.states = desired_state_patch(runtime.states, services.size(), action, service_index);
    std::vector<runtime_service_config> targets;
    for (std::size_t i = 0; i < services.size(); ++i) {
        if (service_index ? *service_index != i
                          : service_state(services[i], runtime.states.desired_state.value_or(
                                                           runtime_desired_state::stopped)) ==
                                runtime_desired_state::manual)
            continue;
        targets.push_back(services[i]);
    }
    auto context = ctx;
    if (!context.workspace.runtime_provision_command) context.workspace.runtime_provision_command = runtime.runtime_provision_command;
    if (action != runtime_control_action::start) {
        // The supervised services of these definitions in this workspace (any scope, any run).
        std::vector<entry_ptr> hit;
        std::unique_lock lock(mutex_);
        for (auto const& t : targets) {
            auto const cwd = resolve_reuse_identity(t, context, resolve_scope(t, context, "control")).service_cwd;
            for (auto const& [id, e] : by_id_)
                if (e->row.service_name == t.name && e->row.cwd && detail::path_within(*e->row.cwd, cwd) &&
                    e->row.execution_workspace_id == context.workspace.execution_workspace_id &&
                    e->row.project_workspace_id == context.workspace.project_workspace_id &&
                    std::find(hit.begin(), hit.end(), e) == hit.end())
                    hit.push_back(e);
        }
        for (auto const& e : hit) initiate_stop(e);
        changed_.wait(lock, [&] {
            return std::all_of(hit.begin(), hit.end(), [](entry_ptr const& e) { return e->finalized; });
        });
        out.stopped = hit.size();
    }
    if (action != runtime_control_action::stop) out.started = start_for_control(context, targets);
    // The new states go where restart_desired_on_startup reads them: the execution workspace's
    // `metadata.config`, else the project workspace's `metadata.runtimeConfig`.
    [[maybe_unused]] auto merged = [&](std::optional<json_object> const& current, std::string_view key) {
        json_object metadata = current.value_or(json_object{});
        json_object config;
        if (auto const* c = metadata.if_contains(key); c && c->is_object()) config = c->get_object();
        write_runtime_states(config, out.states);
        metadata[key] = std::move(config);
        return metadata;
    };
    [[maybe_unused]] bool const execution_workspace = context.workspace.execution_workspace_id.has_value();
    if constexpr (execution_workspace_store<Store>) {
        if (execution_workspace) {
            if (auto w = store_.get_execution_workspace(*context.workspace.execution_workspace_id))
                out.persisted = store_
                                    .update_execution_workspace(
                                        w->id, {.metadata = std::optional<json_object>(merged(w->metadata, "config"))},
                                        clock_.now())
                                    .has_value();
        }
    }
    if constexpr (project_workspace_store<Store>) {
        if (!execution_workspace && context.workspace.project_workspace_id) {
            if (auto w = store_.get_project_workspace(*context.workspace.project_workspace_id))
                out.persisted =
                    store_
                        .update_project_workspace(
                            w->id, {.metadata = std::optional<json_object>(merged(w->metadata, "runtimeConfig"))},
                            clock_.now())
                        .has_value();
        }
    }
    return out;
}

template <runtime_service_store Store, clock Clock, run_observer Observer>
restart_result supervisor<Store, Clock, Observer>::restart_desired_on_startup(std::string_view company_id)
    requires execution_workspace_store<Store> && project_workspace_store<Store>
{
    restart_result out;
    // One workspace: its config's `desiredState` must be `running` with a `workspaceRuntime`
    // (upstream's test); then each service whose own state, else the aggregate, is `running`.
    auto restart = [&](json_object const& config, service_context ctx) {
        auto const* d = config.if_contains("desiredState");
        if (!d || !d->is_string() || d->get_string() != "running" || !config.contains("workspaceRuntime")) return;
        try {
            auto const runtime = parse_workspace_runtime(config);
            std::vector<runtime_service_config> wanted;
            for (auto const& s : runtime.services)
                if (service_state(s, runtime_desired_state::running) == runtime_desired_state::running)
                    wanted.push_back(s);
            if (wanted.empty()) return;
            ctx.workspace.runtime_provision_command = runtime.runtime_provision_command;
            for (auto const& r : start_for_control(ctx, wanted))
                if (!r.reused) ++out.restarted;
        } catch (std::exception const&) {
            ++out.failed;
        }
    };
    auto object_at = [](std::optional<json_object> const& metadata, std::string_view key) -> json_object const* {
        if (!metadata) return nullptr;
        auto const* c = metadata->if_contains(key);
        return c && c->is_object() ? &c->get_object() : nullptr;
    };
    // Project workspaces first, as upstream: their config is `metadata.runtimeConfig`
    // (readProjectWorkspaceRuntimeConfig).
    for (auto const& w : store_.list_project_workspaces(company_id, {})) {
        auto const* config = object_at(w.metadata, "runtimeConfig");
        if (!config || !w.cwd || w.cwd->empty()) continue;
        service_context ctx;
        ctx.workspace.cwd = *w.cwd;
        ctx.workspace.strategy = "project_primary";
        ctx.workspace.project_id = w.project_id;
        ctx.workspace.project_workspace_id = w.id;
        ctx.workspace.repo_url = w.repo_url;
        ctx.workspace.repo_ref = w.repo_ref;
        ctx.workspace.branch_name = w.default_ref ? w.default_ref : w.repo_ref;
        ctx.agent = {.id = std::nullopt, .name = "berth", .company_id = w.company_id};
        restart(*config, std::move(ctx));
    }
    // Every unarchived execution workspace, one status at a time: each list is a seek in the
    // store's (company, status) order, not a walk of the company's whole history (issue 22).
    std::vector<execution_workspace> workspaces;
    for (auto const status : {execution_workspace_status::active, execution_workspace_status::idle,
                              execution_workspace_status::in_review, execution_workspace_status::cleanup_failed}) {
        auto rows = store_.list_execution_workspaces(company_id, {.status = status, .limit = no_limit});
        workspaces.insert(workspaces.end(), std::make_move_iterator(rows.begin()), std::make_move_iterator(rows.end()));
    }
    for (auto const& w : workspaces) {
        auto const* config = object_at(w.metadata, "config");
        if (!config || !w.cwd || w.cwd->empty()) continue;
        service_context ctx;
        ctx.workspace.cwd = *w.cwd;
        ctx.workspace.strategy =
            w.strategy_type == workspace_strategy_type::git_worktree ? "git_worktree" : "project_primary";
        ctx.workspace.project_id = w.project_id;
        ctx.workspace.project_workspace_id = w.project_workspace_id;
        ctx.workspace.execution_workspace_id = w.id;
        ctx.workspace.branch_name = w.branch_name;
        if (w.strategy_type == workspace_strategy_type::git_worktree) ctx.workspace.worktree_path = w.cwd;
        ctx.workspace.repo_url = w.repo_url;
        ctx.workspace.repo_ref = w.base_ref;
        ctx.agent = {.id = std::nullopt, .name = "berth", .company_id = w.company_id};
        if (w.source_issue_id)
            ctx.issue = issue_ref{.id = *w.source_issue_id, .identifier = std::nullopt, .title = w.name};
        restart(*config, std::move(ctx));
    }
    return out;
}

// ---- queries -----------------------------------------------------------------------------------------

template <runtime_service_store Store, clock Clock, run_observer Observer>
std::vector<runtime_service_ref> supervisor<Store, Clock, Observer>::running() const {
    std::lock_guard lock(mutex_);
    std::vector<runtime_service_ref> out;
    for (auto const& [id, e] : by_id_) out.push_back({e->row, false});
    return out;
}

template <runtime_service_store Store, clock Clock, run_observer Observer>
std::optional<runtime_service_ref> supervisor<Store, Clock, Observer>::find(std::string const& service_id) const {
    std::lock_guard lock(mutex_);
    auto it = by_id_.find(service_id);
    if (it == by_id_.end()) return std::nullopt;
    return runtime_service_ref{it->second->row, false};
}

template <runtime_service_store Store, clock Clock, run_observer Observer>
std::vector<std::string> supervisor<Store, Clock, Observer>::leases_of(std::string const& service_id) const {
    std::lock_guard lock(mutex_);
    auto it = by_id_.find(service_id);
    if (it == by_id_.end()) return {};
    return {it->second->lease_run_ids.begin(), it->second->lease_run_ids.end()};
}

template <runtime_service_store Store, clock Clock, run_observer Observer>
std::optional<std::pair<std::string, std::string>> supervisor<Store, Clock, Observer>::output_tails(
    std::string const& service_id) const {
    std::lock_guard lock(mutex_);
    auto it = by_id_.find(service_id);
    if (it == by_id_.end()) return std::nullopt;
    return std::pair{it->second->out_tail, it->second->err_tail};
}

// ---- the background thread ----------------------------------------------------------------------

template <runtime_service_store Store, clock Clock, run_observer Observer>
void supervisor<Store, Clock, Observer>::monitor() {
    std::array<char, 16 * 1024> buffer;
    std::vector<std::pair<output_stream, std::string>> lines;
    while (true) {
        std::vector<entry_ptr> polled;
        std::vector<pollfd> fds;
        int timeout_ms = -1;
        {
            std::lock_guard lock(mutex_);
            if (quit_) return;
            fds.push_back({wake_fd_, POLLIN, 0});
            auto const now = steady::now();
            std::optional<steady::time_point> next;
            bool need_polling = false;
            for (auto const& e : watched_) {
                polled.push_back(e);
                if (e->out) fds.push_back({e->out.get(), POLLIN, 0});
                if (e->err) fds.push_back({e->err.get(), POLLIN, 0});
                if (e->state != entry::phase::exited) {
                    if (e->pidfd) fds.push_back({e->pidfd.get(), POLLIN, 0});
                    else need_polling = true;
                }
                for (auto const& t : {e->idle_deadline, e->kill_at})
                    if (t && (!next || *t < *next)) next = t;
            }
            if (next) {
                auto const ms = std::chrono::ceil<std::chrono::milliseconds>(*next - now).count();
                timeout_ms = static_cast<int>(std::clamp<long long>(ms, 0, 60'000));
            }
            if (need_polling && (timeout_ms < 0 || timeout_ms > 20)) timeout_ms = 20;
        }
        if (::poll(fds.data(), fds.size(), timeout_ms) < 0 && errno != EINTR) timeout_ms = 20;

        {
            std::lock_guard lock(mutex_);
            if (fds[0].revents & POLLIN) {
                std::uint64_t v;
                [[maybe_unused]] auto r = ::read(wake_fd_, &v, sizeof v);
            }
            auto revents_of = [&](int fd) -> short {
                for (auto const& p : fds)
                    if (p.fd == fd) return p.revents;
                return 0;
            };
            auto const now = steady::now();
            for (auto const& e : polled) {
                for (auto* which : {&e->out, &e->err}) {
                    if (!*which || (revents_of(which->get()) & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
                    bool const is_out = which == &e->out;
                    auto& tail = is_out ? e->out_tail : e->err_tail;
                    auto& partial = is_out ? e->out_line : e->err_line;
                    auto const stream = is_out ? output_stream::stdout_stream : output_stream::stderr_stream;
                    ssize_t const got = ::read(which->get(), buffer.data(), buffer.size());
                    if (got > 0) {
                        std::string_view chunk(buffer.data(), static_cast<std::size_t>(got));
                        detail::append_tail(tail, chunk, tail_bytes);
                        if (options_.on_log) {
                            partial.append(chunk);
                            std::size_t nl;
                            while ((nl = partial.find('\n')) != std::string::npos) {
                                lines.emplace_back(stream, "[service:" + e->row.service_name + "] " + partial.substr(0, nl));
                                partial.erase(0, nl + 1);
                            }
                            if (partial.size() > tail_bytes) {  // a very long line: pass it on in pieces
                                lines.emplace_back(stream, "[service:" + e->row.service_name + "] " + partial);
                                partial.clear();
                            }
                        }
                    } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
                        which->reset();
                        if (!partial.empty()) {
                            lines.emplace_back(stream, "[service:" + e->row.service_name + "] " + partial);
                            partial.clear();
                        }
                        changed_.notify_all();
                    }
                }
                if (e->state != entry::phase::exited && !e->finalized) {
                    bool exited = false;
                    if (e->pidfd) exited = (revents_of(e->pidfd.get()) & POLLIN) != 0;
                    else exited = e->child ? false : !detail::pid_running(e->pid);
                    if (e->child && (exited || !e->pidfd)) {
                        if (auto st = e->child->try_wait()) {
                            e->wait_status = st;
                            exited = true;
                        } else {
                            exited = false;
                        }
                    }
                    if (exited) {
                        if (!e->child) detail::reap_if_own_child(e->pidfd.get());
                        e->kill_at.reset();
                        if (e->state == entry::phase::starting) {
                            e->state = entry::phase::exited;  // start_local reports it
                        } else if (e->registered || e->state == entry::phase::stopping) {
                            if (e->state != entry::phase::stopping) e->state = entry::phase::running;
                            finalize(e);
                        } else {
                            e->state = entry::phase::exited;
                        }
                        changed_.notify_all();
                    }
                }
                if (e->kill_at && now >= *e->kill_at) {
                    if (e->child) e->child->signal_group(SIGKILL);
                    else detail::signal_process(e->pid, e->pgid, SIGKILL);
                    e->kill_at.reset();
                }
                if (e->idle_deadline && now >= *e->idle_deadline && e->registered && e->lease_run_ids.empty())
                    initiate_stop(e);
            }
        }
        if (options_.on_log)
            for (auto const& [stream, line] : lines) {
                try {
                    options_.on_log(stream, line);
                } catch (...) {
                }
            }
        lines.clear();
    }
}

}  // namespace berth::services
