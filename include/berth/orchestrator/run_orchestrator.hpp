#pragma once
//! @file
//! berth::run_orchestrator<Stack> — owns an environment's lifecycle for a run (upstream
//! environment-run-orchestrator.ts):
//!   1. resolve the selected environment (else the company's default local one), check it
//!   2. acquire a lease through the environment's driver, under the environment's lease policy
//!   3. realize the workspace in the environment, provision it off-local
//!   4. resolve the execution target
//!   5. execute commands (fenced: only while the lease is held)
//!   6. release / retain / fail the run's leases by policy, never hiding the run's own failure
//!   7. record activity for every lease transition, in the same store transaction
//!
//! Thread safety: every member function may be called concurrently; the orchestrator holds no
//! mutable state besides the store (thread-safe by concept) and the drivers (const, thread-safe).

#include <berth/model/activity.hpp>
#include <berth/model/ids.hpp>
#include <berth/model/lease_transitions.hpp>
#include <berth/orchestrator/error.hpp>
#include <berth/orchestrator/observer.hpp>  // step_note, observes (progress of each step)
#include <berth/orchestrator/run_types.hpp>
#include <berth/orchestrator/stack.hpp>
#include <berth/recovery/holder.hpp>   // set_holder, this_process_holder (who holds each lease)

#include <boost/json/value.hpp>  // boost::json::value (details documents)

#include <boost/json/serialize.hpp>  // serialize (error messages)

#include <algorithm>    // std::min
#include <chrono>       // std::chrono::seconds
#include <cstddef>      // std::size_t
#include <tuple>        // std::tuple (the driver and policy instances)
#include <exception>    // std::current_exception
#include <optional>     // std::optional
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <type_traits>  // std::remove_cvref_t
#include <utility>      // std::move

namespace berth {

template <class Stack>
class run_orchestrator {
    // sizeof instantiates a refused berth::stack, whose diagnostics name the failing driver or policy.
    static_assert(sizeof(Stack) == 0,
                  "berth::run_orchestrator<Stack>: Stack must be a berth::stack<...> of conforming drivers, policies, "
                  "store, clock and observer (the errors above name the one that does not conform)");
};

namespace detail {

template <class D, class... Rest>
struct first_managing_workspaces {
    using type = typename first_managing_workspaces<Rest...>::type;
};
template <class D, class... Rest>
    requires driver_with_execution_workspaces<D>
struct first_managing_workspaces<D, Rest...> {
    using type = D;
};
/// The first of Ds that models driver_with_execution_workspaces.
template <class... Ds>
using first_managing_workspaces_t = typename first_managing_workspaces<Ds...>::type;

/// `text` without leading and trailing blanks (space, tab, CR, LF): the one trim of the orchestrator.
[[nodiscard]] inline std::string_view trim(std::string_view text) noexcept {
    auto const b = text.find_first_not_of(" \t\r\n");
    if (b == std::string_view::npos) return {};
    return text.substr(b, text.find_last_not_of(" \t\r\n") - b + 1);
}

inline boost::json::value json_or_null(std::optional<std::string> const& s) {
    return s ? boost::json::value(*s) : boost::json::value(nullptr);
}

inline std::string first_non_empty_line(std::string_view text) {
    while (!text.empty()) {
        auto const nl = text.find('\n');
        if (auto const line = trim(text.substr(0, nl)); !line.empty()) return std::string(line);
        if (nl == std::string_view::npos) break;
        text.remove_prefix(nl + 1);
    }
    return {};
}

/// Upstream formatProvisionFailureDetail, with the LAST lines of stderr (else of stdout) where
/// upstream shows the first one: a login shell's profile noise comes first, the error last.
inline std::string provision_failure_detail(command_result const& r) {
    if (r.cancelled) return "provision command cancelled";
    if (r.timed_out) return "provision command timed out";
    std::string status = "exit code " + (r.exit_code ? std::to_string(*r.exit_code) : std::string("null"));
    if (r.signal) status += " (signal " + std::to_string(*r.signal) + ")";
    auto detail = last_lines(r.stderr_text);
    if (detail.empty()) detail = last_lines(r.stdout_text);
    return detail.empty() ? status : status + ": " + detail;
}

}  // namespace detail

template <conforming_driver... Ds, conforming_policy... Ps, orchestrator_store Store, clock Clock,
          run_observer Observer>
class run_orchestrator<stack<drivers<Ds...>, policies<Ps...>, Store, Clock, Observer>> {
public:
    using stack_type = stack<drivers<Ds...>, policies<Ps...>, Store, Clock, Observer>;
    using observer_type = Observer;
    using store_type = Store;
    using clock_type = Clock;

    /// The store is used by reference and must outlive the orchestrator.
    explicit run_orchestrator(Store& store, Ds... ds)
        requires std::default_initializable<Clock>
        : store_(store), drivers_(std::move(ds)...), clock_() {}

    run_orchestrator(Store& store, Clock clk, Ds... ds)
        : store_(store), drivers_(std::move(ds)...), clock_(std::move(clk)) {}

    /// With the stack's observer (orchestrator/observer.hpp), which each step reports to.
    run_orchestrator(Store& store, Clock clk, Observer observer, Ds... ds)
        requires observes<Observer>
        : store_(store), drivers_(std::move(ds)...), clock_(std::move(clk)), observer_(std::move(observer)) {}

    [[nodiscard]] Observer const& observer() const noexcept { return observer_; }

    [[nodiscard]] Store& store() const noexcept { return store_; }
    [[nodiscard]] Clock const& clock() const noexcept { return clock_; }

    /// Step 1: the environment a run uses.
    /// @throws environment_run_error environment_not_found (missing, or another company's),
    ///         environment_inactive, unsupported_environment (driver not in this stack).
    /// @throws store_error when the store fails.
    [[nodiscard]] environment resolve_environment(resolve_request const& r) const {
        environment env;
        if (!r.environment_id || r.environment_id->empty()) {
            env = store_.ensure_local_environment(r.company_id, clock_.now());
        } else {
            auto found = store_.get_environment(*r.environment_id);
            // Another company's environment is reported exactly like a missing one, so that ids
            // of other tenants cannot be probed.
            if (!found || found->company_id != r.company_id)
                throw environment_run_error(environment_error_code::environment_not_found,
                                            "Environment \"" + *r.environment_id + "\" not found.",
                                            {.environment_id = *r.environment_id});
            env = std::move(*found);
        }
        if (env.status != environment_status::active)
            throw environment_run_error(environment_error_code::environment_inactive,
                                        "Environment \"" + env.name + "\" is not active (status: " +
                                            to_string(env.status) + ").",
                                        {.environment_id = env.id, .driver = env.driver});
        (void)stack_type::select_driver(env);  // unsupported_environment before anything is written
        return env;
    }

    /// Steps 1–2: resolve, acquire a lease, record `environment.lease_acquired` with it.
    /// @throws environment_run_error from resolve_environment, or lease_acquire_failed wrapping the
    ///         driver's or the store's error (capacity, ...). When the store refuses the lease, the
    ///         provider side the driver created is released again before throwing.
    [[nodiscard]] acquisition acquire_for_run(acquire_for_run_request const& r) const {
        auto env = resolve_environment(resolve_request{r.company_id, r.environment_id});
        auto step = note(run_step::acquire, r.heartbeat_run_id,
                         [&] { return "environment \"" + env.name + "\" (" + to_string(env.driver) + ")"; });
        auto fail = [&](std::string const& why, std::exception_ptr cause) {
            return environment_run_error(environment_error_code::lease_acquire_failed,
                                         "Failed to acquire lease for environment \"" + env.name + "\" (" +
                                             to_string(env.driver) + "): " + why,
                                         {.environment_id = env.id, .driver = env.driver, .cause = cause});
        };
        if (r.heartbeat_run_id.empty()) throw fail("heartbeat_run_id must not be empty", nullptr);
        // One active lease per run: a second acquire under a run id still in use (a reused --run)
        // would let either holder end the other's lease. (docs/reliability.md)
        if (auto held = store_.list_run_leases(r.heartbeat_run_id, lease_filter{.status = lease_status::active});
            !held.empty())
            throw fail("run \"" + r.heartbeat_run_id + "\" already holds active lease " + held.front().id +
                           " (acquired " + to_iso8601(held.front().acquired_at) +
                           "); end it (release_for_run, or recover() once its holder is gone) before acquiring again",
                       nullptr);

        auto const di = stack_type::select_driver(env);
        std::size_t pi = 0;
        std::optional<timestamp> policy_expiry;
        auto const now = clock_.now();
        try {
            pi = select_policy(env);
            visit_policy(pi, [&](auto const& p) { policy_expiry = p.expires_at(env, now); });
        } catch (...) {
            throw fail(message_of(std::current_exception()), std::current_exception());
        }
        auto const policy = stack_type::policy_kinds[pi];

        // The request borrows the environment (moved in, moved back out below) rather than
        // copying it: the pair's cost is mostly its copies of JSON-bearing records.
        acquire_request req{
            .env = std::move(env),
            .company_id = r.company_id,
            .agent_id = r.agent_id,
            .issue_id = r.issue_id,
            .heartbeat_run_id = r.heartbeat_run_id,
            .execution_workspace_id = r.execution_workspace_id,
            .execution_workspace_mode = r.execution_workspace_mode,
            .lease_policy = policy,
            .adapter_type = r.adapter_type,
        };
        lease_grant grant;
        std::optional<environment_lease> reused;  // the earlier lease whose provider side was resumed
        // The policy's reuse scope, an opaque key the store keeps unique among the environment's
        // active leases (model/lease_rules.hpp).
        std::optional<std::string> scope;
        try {
            visit_driver(di, [&](auto const& d) {
                visit_policy(pi, [&](auto const& p) {
                    using P = std::remove_cvref_t<decltype(p)>;
                    if constexpr (policy_with_reuse_scope<P>) scope = p.reuse_scope(req);
                    grant = obtain(d, p, req, reused, now);
                });
            });
        } catch (...) {
            env = std::move(req.env);
            throw fail(message_of(std::current_exception()), std::current_exception());
        }
        env = std::move(req.env);

        new_lease nl{
            .id = new_id(),
            .company_id = r.company_id,
            .environment_id = env.id,
            .execution_workspace_id = r.execution_workspace_id,
            .issue_id = r.issue_id,
            .heartbeat_run_id = r.heartbeat_run_id,
            .lease_policy = policy,
            .provider = grant.provider,
            .provider_lease_id = grant.provider_lease_id,
            .expires_at = earliest(grant.expires_at, policy_expiry),
            .metadata = std::move(grant.metadata),
            .reuse_scope = std::move(scope),
            .driver_name = std::string(stack_type::driver_names[di]),
            .policy_name = std::string(stack_type::policy_names[pi]),
        };
        set_holder(nl, this_process_holder());
        json_object details{
            {"environmentId", env.id},
            {"driver", to_string(env.driver)},
            {"leasePolicy", to_string(policy)},
            {"provider", detail::json_or_null(nl.provider)},
            {"executionWorkspaceId", detail::json_or_null(r.execution_workspace_id)},
            {"issueId", detail::json_or_null(r.issue_id)},
        };
        if (reused) details["resumedLeaseId"] = reused->id;
        auto ev = make_event(actions::lease_acquired, nl.id, r.company_id, r.agent_id, r.heartbeat_run_id,
                                   std::move(details), now);
        environment_lease lease;
        try {
            lease = store_.acquire_lease(nl, now, std::move(ev));
        } catch (...) {
            auto const cause = std::current_exception();
            // Undo the provider side, or a refused lease would leak a sandbox/remote workspace;
            // but not a resumed one, which its earlier lease (still live) holds.
            if (!reused) try {
                environment_lease const orphan{.id = nl.id,
                                               .company_id = nl.company_id,
                                               .environment_id = nl.environment_id,
                                               .heartbeat_run_id = nl.heartbeat_run_id,
                                               .lease_policy = nl.lease_policy,
                                               .provider = nl.provider,
                                               .provider_lease_id = nl.provider_lease_id,
                                               .metadata = nl.metadata,
                                               .driver_name = nl.driver_name,
                                               .policy_name = nl.policy_name};
                visit_driver(di, [&](auto const& d) { (void)d.release(env, orphan, lease_status::failed); });
            } catch (...) {
                // The store's refusal is what the caller must see.
            }
            throw fail(message_of(cause), cause);
        }
        // A retained lease whose provider side the new one took over has nothing left to hold.
        if (reused && is_live(reused->status))
            end_handed_over(*reused, lease, now);
        if constexpr (observes<Observer>)
            step.done("lease " + lease.id + " policy " + to_string(lease.lease_policy) + " provider " +
                      lease.provider.value_or("-"));
        return acquisition{std::move(env), std::move(lease), r.execution_workspace_id, r.execution_workspace_mode};
    }

    /// Steps 3–4: realize the workspace, provision it off-local, persist the realization on the
    /// lease, resolve the execution target.
    /// @throws environment_run_error workspace_realization_failed, transport_resolution_failed.
    [[nodiscard]] realization realize_for_run(realize_for_run_request const& r) const {
        auto const& env = r.env;
        environment_lease lease = r.lease;
        auto const di = driver_of(lease, env);
        auto realize_error = [&](std::string const& what, std::exception_ptr cause) {
            return environment_run_error(environment_error_code::workspace_realization_failed,
                                         "Failed to " + what + " for environment \"" + env.name + "\" (" +
                                             to_string(env.driver) + "): " + message_of(cause),
                                         {.environment_id = env.id, .driver = env.driver, .cause = cause});
        };
        auto provision = r.provision_command && !detail::trim(*r.provision_command).empty()
                             ? *r.provision_command
                             : std::string();

        std::string workspace_cwd = r.workspace_cwd;
        std::string const run_id = lease.heartbeat_run_id.value_or("");
        std::optional<realized_workspace> managed;  // a driver that manages execution workspaces
        std::optional<execution_workspace> managed_record;
        json_object workspace_realization;
        std::optional<std::string> realized_cwd;
        std::optional<std::string> remote_cwd;
        char const* what = "realize execution workspace";
        // The step being reported (worktree, realize, provision), so that a failure is reported on it.
        std::optional<detail::step_note<Observer>> step;
        try {
            visit_driver(di, [&](auto const& d) {
                using D = std::remove_cvref_t<decltype(d)>;
                // The stack's driver that manages execution workspaces (the local driver's
                // worktrees) realizes one first — for a lease of any driver: its cwd is what the
                // lease's driver then realizes (e.g. a sandbox binds it as its workspace).
                if constexpr (workspace_store<Store> && (driver_with_execution_workspaces<Ds> || ...)) {
                    if (r.workspace) {
                        auto const& wd = workspace_driver_for(d);
                        note_into(step, run_step::worktree, run_id, [&] {
                            return std::string(to_string(r.workspace->strategy.type)) + " of " +
                                   r.workspace->base.base_cwd +
                                   (r.workspace->strategy.provision_command
                                        ? ", provisioned by: " + *r.workspace->strategy.provision_command
                                        : std::string());
                        });
                        realize_workspace_request ws = *r.workspace;
                        if constexpr (!driver_with_execution_workspaces<D>) {
                            // Provisioning is the lease's driver's (it runs where the commands will),
                            // not the workspace manager's.
                            if (provision.empty() && ws.strategy.provision_command &&
                                !detail::trim(*ws.strategy.provision_command).empty())
                                provision = *ws.strategy.provision_command;
                            ws.strategy.provision_command.reset();
                        }
                        if (!ws.stop.stop_possible()) ws.stop = r.stop;
                        if (!ws.lease_id) ws.lease_id = lease.id;
                        if (!ws.provision_timeout && r.provision_timeout) ws.provision_timeout = *r.provision_timeout;
                        if constexpr (observes<Observer>) {
                            ws.on_provision_output = [&step, user = std::move(ws.on_provision_output)](
                                                         output_stream s, std::string_view chunk) {
                                if (user) user(s, chunk);
                                step->output(s, chunk, run_step::provision);
                            };
                        }
                        auto m = wd.realize_execution_workspace(
                            store_, clock_, ws,
                            {.company_id = env.company_id,
                             .heartbeat_run_id = lease.heartbeat_run_id,
                             .execution_workspace_id = lease.execution_workspace_id});
                        workspace_cwd = m.realized.cwd;
                        if constexpr (observes<Observer>)
                            step->done(m.realized.cwd + (m.realized.created ? " (created)" : " (reused)"));
                        managed = std::move(m.realized);
                        managed_record = std::move(m.record);
                    }
                }
                what = "realize workspace";
                if constexpr (driver_with_realize_workspace<D>) {
                    note_into(step, run_step::realize, run_id, [&] { return "workspace " + workspace_cwd; });
                    auto res = d.realize_workspace(realize_request{.env = env,
                                                                   .lease = lease,
                                                                   .local_path = workspace_cwd,
                                                                   .remote_path = std::nullopt,
                                                                   .mode = r.execution_workspace_mode,
                                                                   .metadata = {}});
                    if (!detail::trim(res.cwd).empty()) realized_cwd = res.cwd;
                    remote_cwd = std::move(res.remote_cwd);
                    if (auto const* w = res.metadata.if_contains("workspaceRealization"); w && w->is_object())
                        workspace_realization = w->get_object();
                    if constexpr (observes<Observer>) step->done("cwd " + realized_cwd.value_or(workspace_cwd));
                }
                // Provisioning runs in the realized workspace through the driver, unless the
                // driver provisions the workspaces it manages itself.
                what = "provision workspace";
                if constexpr (!driver_with_execution_workspaces<D>) {
                    if (!provision.empty()) {
                        if constexpr (driver_with_execute<D>) {
                            auto const in = realized_cwd ? *realized_cwd : workspace_cwd;
                            note_into(step, run_step::provision, run_id, [&] { return provision + " in " + in; });
                            command c{.program = "bash",
                                      .args = {"-lc", provision},
                                      .cwd = in,
                                      .env = {{"SHELL", "/bin/bash"}},
                                      .timeout = r.provision_timeout.value_or(std::chrono::seconds(300)),
                                      .stop = r.stop};
                            if constexpr (observes<Observer>)
                                c.on_output = [&step](output_stream s, std::string_view chunk) {
                                    step->output(s, chunk, run_step::provision);
                                };
                            auto const res = d.execute(env, lease, c);
                            if (res.timed_out || res.exit_code != 0)
                                throw error(detail::provision_failure_detail(res));
                            if constexpr (observes<Observer>) step->done("provisioned");
                        } else {
                            throw error("Environment driver \"" + std::string(D::name) +
                                        "\" does not support command execution.");
                        }
                    }
                }
            });
        } catch (...) {
            if constexpr (observes<Observer>)
                if (step) step->failed(message_of(std::current_exception()));
            throw realize_error(what, std::current_exception());
        }
        std::string const cwd = realized_cwd ? *realized_cwd : workspace_cwd;

        if (!workspace_realization.empty()) {
            json_object md = lease.metadata.value_or(json_object{});
            md["workspaceRealization"] = workspace_realization;
            if (auto updated = store_.update_lease_metadata(lease.id, std::move(md), clock_.now()))
                lease = std::move(*updated);
            if constexpr (workspace_store<Store>) {
                if (managed_record) {  // upstream step 4: the execution workspace keeps the realization too
                    json_object ew_md = managed_record->metadata.value_or(json_object{});
                    ew_md["workspaceRealization"] = workspace_realization;
                    if (auto updated = store_.update_execution_workspace(
                            managed_record->id, {.metadata = std::optional<json_object>(std::move(ew_md))},
                            clock_.now()))
                        managed_record = std::move(*updated);
                }
            }
        }

        std::optional<execution_target> target;
        try {
            visit_driver(di, [&](auto const& d) {
                using D = std::remove_cvref_t<decltype(d)>;
                if constexpr (driver_with_execution_target<D>) target = d.execution_target(env, lease);
            });
        } catch (...) {
            auto const cause = std::current_exception();
            throw environment_run_error(environment_error_code::transport_resolution_failed,
                                        "Failed to resolve execution target for \"" + env.name +
                                            "\": " + message_of(cause),
                                        {.environment_id = env.id, .driver = env.driver, .cause = cause});
        }
        realization out{std::move(lease), cwd, std::move(workspace_realization), std::move(target)};
        out.remote_cwd = std::move(remote_cwd);
        out.workspace = std::move(managed);
        out.execution_workspace = std::move(managed_record);
        return out;
    }

    /// Step 5: run a command in the leased environment. Fenced: refused unless the store still
    /// holds the lease `active` at the caller's epoch, so a holder that lost its lease cannot act.
    /// @throws store_error stale_epoch when the lease moved on; environment_run_error
    ///         unsupported_environment when the driver cannot execute; the driver's own errors.
    [[nodiscard]] command_result execute(environment const& env, environment_lease const& lease,
                                         command const& cmd) const {
        auto const kind = driver_of(lease, env);
        command_result result;
        bool supported = false;
        auto step = note(run_step::execute, lease.heartbeat_run_id ? std::string_view(*lease.heartbeat_run_id) : "", [&] {
            std::string argv = cmd.program;
            for (auto const& a : cmd.args) argv += " " + a;
            return argv;
        });
        visit_driver(kind, [&](auto const& d) {
            using D = std::remove_cvref_t<decltype(d)>;
            if constexpr (driver_with_execute<D>) {
                supported = true;
                check_held(lease);
                if constexpr (observes<Observer>) {
                    command observed = cmd;  // the observer sees the output as it arrives, after the caller
                    observed.on_output = [&step, &cmd](output_stream s, std::string_view chunk) {
                        if (cmd.on_output) cmd.on_output(s, chunk);
                        step.output(s, chunk, run_step::execute);
                    };
                    result = d.execute(env, lease, observed);
                } else {
                    result = d.execute(env, lease, cmd);
                }
            }
        });
        if constexpr (observes<Observer>) {
            if (supported)
                step.done(result.cancelled    ? std::string("cancelled")
                          : result.timed_out  ? std::string("timed out")
                          : result.exit_code  ? "exit " + std::to_string(*result.exit_code)
                                              : "signal " + std::to_string(result.signal.value_or(0)));
        }
        if (!supported)
            throw environment_run_error(environment_error_code::unsupported_environment,
                                        "Environment driver \"" + std::string(stack_type::driver_names[kind]) +
                                            "\" does not support command execution.",
                                        {.environment_id = env.id, .driver = env.driver});
        return result;
    }

    /// Step 6: end every active lease of a run by policy (upstream releaseForRun). Each lease is
    /// released through its driver (the one recorded at acquire), moved to the policy's status for
    /// the run's outcome with compare-and-set, and `environment.lease_released` is recorded with it.
    /// Never throws: failures are returned per lease, so they never hide the run's own failure.
    [[nodiscard]] release_result release_for_run(release_for_run_request const& r) const noexcept {
        release_result result;
        auto step = note(run_step::release, r.heartbeat_run_id, [&] { return "run outcome " + std::string(to_string(r.outcome)); });
        bool const listed = end_each(
            result, environment_error_code::lease_release_failed,
            // Every one must be released, and a run holds few: one page without a limit.
            [&] { return store_.list_run_leases(r.heartbeat_run_id, lease_filter{.status = lease_status::active, .limit = no_limit}); },
            [&](environment_lease const& lease) { end_lease(lease, r, result); });
        if (!listed) return result;
        if constexpr (observes<Observer>) {
            std::string said;
            for (auto const& l : result.released) said += (said.empty() ? "lease " : ", lease ") + l.id + " " + to_string(l.status);
            if (result.errors.empty()) step.done(said.empty() ? "no active lease" : said);
            else step.failed(result.errors.front().message);
        }
        return result;
    }

    /// Moves every active lease whose expires_at has passed to `expired` (failure reason
    /// `lease_expired`), after handing it to its driver's destroy (or release), recording the
    /// cleanup status and `environment.lease_expired`; a lease whose cleanup failed becomes
    /// `pending_cleanup` instead (see end_abandoned_lease). Never throws; failures are returned.
    [[nodiscard]] release_result reap_expired_leases() const noexcept {
        release_result result;
        (void)end_each(result, environment_error_code::lease_cleanup_failed,
                       [&] { return store_.list_expired_leases(clock_.now()); },
                       [&](environment_lease const& lease) { expire_lease(lease, result); });
        return result;
    }

    /// Ends one lease whose holder is gone (recover(), berth/recovery/recover.hpp): an `active`
    /// lease goes through its driver's destroy (else release) and ends `expired` with
    /// `failure_reason` (`holder_lost`, `lease_expired`); when the driver's cleanup fails it
    /// becomes `pending_cleanup` (cleanup status `failed`) instead, and a `pending_cleanup` lease
    /// is retried the same way until its cleanup succeeds. Records `environment.lease_expired`.
    /// Never throws; the outcome is returned (a lease another caller moved first is a stale_epoch
    /// error, and nothing changes).
    [[nodiscard]] release_result end_abandoned_lease(environment_lease const& lease,
                                                     std::string const& failure_reason) const noexcept {
        release_result result;
        try {
            expire_lease(lease, result, failure_reason);
        } catch (...) {
            result.errors.push_back(lease_error{lease.id, environment_error_code::lease_cleanup_failed,
                                                message_of(std::current_exception()), std::current_exception()});
        }
        return result;
    }

    /// Destroys the reusable leases of a company's terminal issue and/or closed execution workspace
    /// (upstream destroyReusableSandboxLeases): every `retained` or `pending_cleanup` lease of the
    /// company whose policy reuses (berth::policy_with_reuse) and whose issue and execution
    /// workspace are the request's (those given) goes through its driver's destroy (else release)
    /// and ends `expired` with cleanup `success`, or `pending_cleanup` with cleanup `failed` when the
    /// destroy fails (recover() retries it), with `r.reason`; records `environment.lease_expired`.
    /// Active leases are left to their runs. A request naming neither an issue nor an execution
    /// workspace destroys nothing. Never throws; the outcome is returned. Exists when the store
    /// lists a company's environments (environment_store's list_environments).
    [[nodiscard]] release_result destroy_reusable_leases(destroy_reusable_request const& r) const noexcept
        requires requires(Store& s, std::string const& company) { s.list_environments(company, environment_filter{}); }
    {
        release_result result;
        if (!r.issue_id && !r.execution_workspace_id) return result;
        (void)end_each(
            result, environment_error_code::lease_cleanup_failed,
            [&] {
                std::vector<environment_lease> leases;
                for (auto const& env : store_.list_environments(r.company_id, environment_filter{.limit = no_limit}))
                    for (auto const status : {lease_status::retained, lease_status::pending_cleanup})
                        for (auto& l : store_.list_leases(env.id, lease_filter{.status = status, .limit = no_limit}))
                            if (l.company_id == r.company_id && (!r.issue_id || l.issue_id == r.issue_id) &&
                                (!r.execution_workspace_id || l.execution_workspace_id == r.execution_workspace_id) &&
                                reusing_policy(l))
                                leases.push_back(std::move(l));
                return leases;
            },
            [&](environment_lease const& lease) { expire_lease(lease, result, r.reason); });
        return result;
    }

    /// Extends an active lease by its policy's TTL from now (fenced by the caller's epoch).
    /// @throws store_error (stale_epoch, illegal_transition, not_found); parse_error for a bad TTL.
    [[nodiscard]] environment_lease renew_lease(environment_lease const& lease) const {
        auto env = store_.get_environment(lease.environment_id);
        if (!env)
            throw store_error(store_errc::not_found, "Environment \"" + lease.environment_id + "\" of lease \"" +
                                                         lease.id + "\" not found.");
        auto const now = clock_.now();
        std::optional<timestamp> expiry;
        visit_policy(policy_of(lease), [&](auto const& p) { expiry = p.expires_at(*env, now); });
        return store_.renew_lease(lease.id, lease.epoch, expiry, now);
    }

    /// Asks the environment's driver whether the environment is usable. Never throws.
    [[nodiscard]] probe_result probe(environment const& env) const noexcept {
        try {
            auto const di = stack_type::select_driver(env);
            probe_result result{.ok = false,
                                .summary = "Environment driver \"" + std::string(stack_type::driver_names[di]) +
                                           "\" does not support probes.",
                                .details = {}};
            visit_driver(di, [&](auto const& d) {
                using D = std::remove_cvref_t<decltype(d)>;
                if constexpr (driver_with_probe<D>) result = d.probe(env);
            });
            return result;
        } catch (...) {
            try {
                return probe_result{.ok = false, .summary = message_of(std::current_exception()), .details = {}};
            } catch (...) {
                return probe_result{};
            }
        }
    }

    /// The driver instance of type D in this stack (for driver-specific calls).
    template <class D>
    [[nodiscard]] D const& driver() const noexcept {
        return std::get<D>(drivers_);
    }

    /// The first driver of the stack that manages execution workspaces (the local driver), for
    /// what reaches its workspaces outside a run (recover()'s cleanup). Exists only when the stack
    /// has one.
    [[nodiscard]] auto const& workspace_driver() const noexcept
        requires(driver_with_execution_workspaces<Ds> || ...)
    {
        return std::get<detail::first_managing_workspaces_t<Ds...>>(drivers_);
    }

private:
    /// Calls `f` with the driver at index `i` of the stack (one fold over the drivers; no search
    /// by name at run time beyond the index the caller resolved once).
    template <class F>
    void visit_driver(std::size_t i, F&& f) const {
        visit_index(drivers_, i, f);
    }
    template <class F>
    void visit_policy(std::size_t i, F&& f) const {
        visit_index(policies_, i, f);
    }
    template <class Tuple, class F>
    static void visit_index(Tuple const& t, std::size_t i, F& f) {
        [&]<std::size_t... I>(std::index_sequence<I...>) {
            (void)((i == I ? (f(std::get<I>(t)), true) : false) || ...);
        }(std::make_index_sequence<std::tuple_size_v<Tuple>>{});
    }

    /// The environment's config `leasePolicy` (a policy name), else the stack's first policy.
    static std::size_t select_policy(environment const& env) {
        auto const* v = env.config.if_contains("leasePolicy");
        if (!v || v->is_null()) return 0;
        if (!v->is_string())
            throw parse_error("environment config leasePolicy", boost::json::serialize(*v), "expected a string");
        auto const name = std::string_view(v->get_string());
        if (auto const i = stack_type::policy_index(name)) return *i;
        throw error("Lease policy \"" + std::string(name) + "\" is not in this orchestrator's stack (policies: " +
                    stack_type::policy_list() + ").");
    }

    /// The policy a lease was acquired under: the one it records by name, else (a lease written
    /// before policies had names) the first of its kind.
    static std::size_t policy_of(environment_lease const& lease) {
        auto const i = lease.policy_name ? stack_type::policy_index(*lease.policy_name)
                                         : stack_type::policy_index(lease.lease_policy);
        if (i) return *i;
        throw error("Lease policy \"" + (lease.policy_name ? *lease.policy_name : std::string(to_string(lease.lease_policy))) +
                    "\" of lease \"" + lease.id + "\" is not in this orchestrator's stack (policies: " +
                    stack_type::policy_list() + ").");
    }

    /// The driver that realizes execution workspaces for a lease of `d`: `d` when it manages them,
    /// else the stack's first driver that does.
    template <class D>
    auto const& workspace_driver_for(D const& d) const noexcept {
        if constexpr (driver_with_execution_workspaces<D>) return d;
        else return workspace_driver();
    }

    /// Whether the policy a lease was acquired under reuses leases (false when the stack no longer has it).
    bool reusing_policy(environment_lease const& lease) const noexcept {
        bool reuses = false;
        try {
            visit_policy(policy_of(lease), [&](auto const& p) {
                reuses = policy_with_reuse<std::remove_cvref_t<decltype(p)>>;
            });
        } catch (...) {
        }
        return reuses;
    }

    /// The driver that holds a lease: the one the orchestrator recorded on it at acquire, so a
    /// lease is released by the driver that created it even if the environment changed since
    /// (upstream getLeaseDriverKey); a lease without a record (written before berth recorded
    /// it) goes to the environment's driver.
    static std::size_t driver_of(environment_lease const& lease, environment const& env) {
        if (!lease.driver_name) return stack_type::select_driver(env);
        if (auto const i = stack_type::driver_index(*lease.driver_name)) return *i;
        throw environment_run_error(environment_error_code::unsupported_environment,
                                    "Lease \"" + lease.id + "\" is held by driver \"" + *lease.driver_name +
                                        "\", which this orchestrator's stack does not include (drivers: " +
                                        stack_type::driver_list() + ").",
                                    {.environment_id = env.id, .driver = env.driver});
    }

    /// The grant of a new lease: the provider side of an earlier lease resumed when the policy
    /// reuses and finds one that matches (concepts/lease_policy.hpp), else a new one.
    template <class D, class P>
    lease_grant obtain(D const& d, P const& p, acquire_request const& req, std::optional<environment_lease>& reused,
                       timestamp now) const {
        if constexpr (policy_with_reuse<P>) {
            // Only the leases in the status the policy says its candidates are in, when it says
            // so: the environment's history (one ended lease per run) is not read at every acquire.
            lease_filter candidates{};
            if constexpr (requires { P::reuse_candidate_status; }) candidates.status = P::reuse_candidate_status;
            auto leases = store_.list_leases(req.env.id, candidates);
            // Every candidate that does not match is destroyed (upstream destroys each mismatching
            // kept sandbox of the scope, not only the newest); the newest that matches is resumed.
            // Each found lease leaves the list, so this ends (the bound also holds for a policy that
            // returns a lease the list does not have).
            std::optional<environment_lease> candidate;
            for (std::size_t round = 0, rounds = leases.size() + 1; round < rounds; ++round) {
                auto found = p.find_reusable(req, leases);
                if (!found) break;
                if (std::erase_if(leases, [&](environment_lease const& l) { return l.id == found->id; }) == 0)
                    rounds = round + 1;
                if (!p.matches(req, *found)) discard(d, req.env, *found, "lease_fingerprint_mismatch", now);
                else if (!candidate) candidate = std::move(found);
            }
            if (candidate) {
                if constexpr (driver_with_resume<D>) {
                    std::optional<lease_grant> resumed;
                    try {
                        resumed = d.resume(req.env, *candidate);
                    } catch (...) {
                        resumed.reset();  // upstream: a failed resume destroys the old lease and acquires anew
                    }
                    if (resumed && resumed->provider_lease_id && !resumed->provider_lease_id->empty()) {
                        p.stamp(req, *resumed);
                        reused = std::move(candidate);
                        return std::move(*resumed);
                    }
                    discard(d, req.env, *candidate, "resume_failed", now);
                } else {
                    discard(d, req.env, *candidate, "resume_unsupported", now);
                }
            }
            auto grant = d.acquire(req);
            p.stamp(req, grant);
            return grant;
        } else {
            (void)p, (void)reused, (void)now;
            return d.acquire(req);
        }
    }

    /// Destroys the provider side of a lease a reusing policy will not resume; a lease still live
    /// (retained, pending_cleanup) ends as expire_lease ends it (`expired`, else `pending_cleanup`
    /// when the destroy fails) with `reason`. Never throws: the run goes on with a new lease
    /// whatever happens here.
    template <class D>
    void discard(D const& d, environment const& env, environment_lease const& old, char const* reason,
                 timestamp now) const noexcept {
        if (is_live(old.status)) {
            try {
                release_result ignored;  // a lease another holder moved meanwhile is theirs to end
                expire_lease(old, ignored, reason);
            } catch (...) {
            }
            return;
        }
        try {
            release_outcome out;
            try {
                if constexpr (driver_with_destroy<D>) out = d.destroy(env, old);
                else out = d.release(env, old, lease_status::released);
            } catch (...) {
                out.cleanup_status = berth::cleanup_status::failed;
            }
            if (!is_live(old.status)) return;
            json_object details{{"environmentId", old.environment_id},
                                {"driver", to_string(env.driver)},
                                {"leasePolicy", to_string(old.lease_policy)},
                                {"provider", detail::json_or_null(old.provider)},
                                {"status", "released"},
                                {"cleanupStatus", out.cleanup_status ? boost::json::value(to_string(*out.cleanup_status))
                                                                     : boost::json::value(nullptr)},
                                {"failureReason", reason}};
            (void)store_.transition_lease(lease_transition{.id = old.id,
                                                           .expected_epoch = old.epoch,
                                                           .to = lease_status::released,
                                                           .failure_reason = std::string(reason),
                                                           .cleanup_status = out.cleanup_status},
                                          now,
                                          make_event(actions::lease_released, old.id, old.company_id, std::nullopt,
                                                     old.heartbeat_run_id, std::move(details), now));
        } catch (...) {
            // A lease another holder moved meanwhile is theirs to end.
        }
    }

    /// Ends a live lease whose provider side `successor` now holds. Never throws.
    void end_handed_over(environment_lease const& old, environment_lease const& successor, timestamp now) const noexcept {
        try {
            json_object details{{"environmentId", old.environment_id},
                                {"leasePolicy", to_string(old.lease_policy)},
                                {"provider", detail::json_or_null(old.provider)},
                                {"status", "released"},
                                {"resumedBy", successor.id}};
            (void)store_.transition_lease(
                lease_transition{.id = old.id, .expected_epoch = old.epoch, .to = lease_status::released},
                now,
                make_event(actions::lease_released, old.id, old.company_id, std::nullopt, old.heartbeat_run_id,
                           std::move(details), now));
        } catch (...) {
        }
    }

    static std::optional<timestamp> earliest(std::optional<timestamp> a, std::optional<timestamp> b) {
        if (a && b) return std::min(*a, *b);
        return a ? a : b;
    }

    static activity_event make_event(char const* action, std::string const& lease_id, std::string const& company_id,
                                     nullable<std::string> const& agent_id, std::optional<std::string> const& run_id,
                                     json_object details, timestamp now) {
        return activity_event{.id = new_id(),
                              .company_id = company_id,
                              .actor_type = agent_id.has_value() ? "agent" : "system",
                              .actor_id = agent_id.has_value() ? *agent_id : std::string("berth"),
                              .action = action,
                              .entity_type = "environment_lease",
                              .entity_id = lease_id,
                              .agent_id = agent_id.get(),
                              .run_id = run_id,
                              .details = std::move(details),
                              .created_at = now};
    }

    void check_held(environment_lease const& lease) const {
        auto const current = store_.get_lease(lease.id);
        if (!current)
            throw store_error(store_errc::not_found, "Lease \"" + lease.id + "\" not found.");
        if (current->epoch != lease.epoch || current->status != lease_status::active)
            throw store_error(store_errc::stale_epoch,
                              "Lease \"" + lease.id + "\" is no longer held by this caller (status " +
                                  to_string(current->status) + ", epoch " + std::to_string(current->epoch) +
                                  "; caller holds epoch " + std::to_string(lease.epoch) + ").");
    }

    void end_lease(environment_lease const& lease, release_for_run_request const& r, release_result& result) const {
        lease_status target{};
        visit_policy(policy_of(lease), [&](auto const& p) {
            using P = std::remove_cvref_t<decltype(p)>;
            if constexpr (policy_with_lease_status<P>) target = p.status_for(r.outcome, lease);
            else target = p.status_for(r.outcome);
        });

        auto const env = store_.get_environment(lease.environment_id);
        std::optional<berth::cleanup_status> cleanup;
        std::optional<std::string> driver_reason;
        std::optional<driver_kind> kind;
        if (env) {
            kind = env->driver;
            try {
                visit_driver(driver_of(lease, *env), [&](auto const& d) {
                    auto const out = d.release(*env, lease, target);
                    cleanup = out.cleanup_status;
                    driver_reason = out.failure_reason;
                });
            } catch (...) {
                cleanup = berth::cleanup_status::failed;
                result.errors.push_back(lease_error{lease.id, environment_error_code::lease_cleanup_failed,
                                                    message_of(std::current_exception()), std::current_exception()});
            }
        } else {
            // The environment row is gone (upstream #11347 strands such leases); end the lease
            // anyway and say that nothing could be cleaned up.
            cleanup = berth::cleanup_status::failed;
            result.errors.push_back(lease_error{lease.id, environment_error_code::lease_cleanup_failed,
                                                "Environment \"" + lease.environment_id + "\" of lease \"" +
                                                    lease.id + "\" no longer exists; nothing was cleaned up.",
                                                nullptr});
        }

        std::optional<std::string> reason = r.failure_reason ? r.failure_reason : driver_reason;
        if (!reason && r.outcome != run_outcome::succeeded) reason = std::string("run_") + to_string(r.outcome);

        auto const now = clock_.now();
        json_object details{
            {"environmentId", lease.environment_id},
            {"driver", kind ? boost::json::value(to_string(*kind)) : boost::json::value(nullptr)},
            {"leasePolicy", to_string(lease.lease_policy)},
            {"provider", detail::json_or_null(lease.provider)},
            {"executionWorkspaceId", detail::json_or_null(lease.execution_workspace_id)},
            {"issueId", detail::json_or_null(lease.issue_id)},
            {"status", to_string(target)},
            {"cleanupStatus", cleanup ? boost::json::value(to_string(*cleanup)) : boost::json::value(nullptr)},
            {"failureReason", detail::json_or_null(reason)},
        };
        auto ev = make_event(actions::lease_released, lease.id, r.company_id, r.agent_id, r.heartbeat_run_id,
                                   std::move(details), now);
        result.released.push_back(store_.transition_lease(
            lease_transition{.id = lease.id,
                             .expected_epoch = lease.epoch,
                             .to = target,
                             .failure_reason = std::move(reason),
                             .cleanup_status = cleanup},
            now, std::move(ev)));
    }

    /// Lists leases with `list`, then ends each with `end`: a failure is returned as `code` (under
    /// lease id "*" for the listing) and never stops the other leases. False when the listing failed.
    template <class List, class End>
    bool end_each(release_result& result, environment_error_code code, List&& list, End&& end) const noexcept {
        std::vector<environment_lease> leases;
        try {
            leases = list();
        } catch (...) {
            result.errors.push_back(lease_error{"*", code, message_of(std::current_exception()), std::current_exception()});
            return false;
        }
        for (auto const& lease : leases) {
            try {
                end(lease);
            } catch (...) {
                result.errors.push_back(lease_error{lease.id, code, message_of(std::current_exception()), std::current_exception()});
            }
        }
        return true;
    }

    void expire_lease(environment_lease const& lease, release_result& result,
                      std::string const& failure_reason = "lease_expired") const {
        auto const env = store_.get_environment(lease.environment_id);
        auto cleanup = berth::cleanup_status::failed;
        std::optional<driver_kind> kind;
        // Without its environment there is nothing left to clean up: retrying cannot help.
        bool retryable = false;
        if (env) {
            kind = env->driver;
            try {
                visit_driver(driver_of(lease, *env), [&](auto const& d) {
                    using D = std::remove_cvref_t<decltype(d)>;
                    release_outcome out;
                    if constexpr (driver_with_destroy<D>) out = d.destroy(*env, lease);
                    else out = d.release(*env, lease, lease_status::expired);
                    cleanup = out.cleanup_status.value_or(berth::cleanup_status::success);
                });
                // A driver that reports its cleanup failed without throwing (a noexcept release,
                // an SSH host out of reach) is retried like one that throws.
                retryable = cleanup == berth::cleanup_status::failed;
            } catch (...) {
                retryable = true;
                result.errors.push_back(lease_error{lease.id, environment_error_code::lease_cleanup_failed,
                                                    message_of(std::current_exception()), std::current_exception()});
            }
        }
        // A failed cleanup leaves the lease pending_cleanup for a later recovery to retry; a
        // pending_cleanup lease that fails again stays as it is.
        auto const to = cleanup == berth::cleanup_status::failed && retryable ? lease_status::pending_cleanup
                                                                              : lease_status::expired;
        if (to == lease_status::pending_cleanup && lease.status == lease_status::pending_cleanup) return;
        auto const now = clock_.now();
        json_object details{
            {"environmentId", lease.environment_id},
            {"driver", kind ? boost::json::value(to_string(*kind)) : boost::json::value(nullptr)},
            {"leasePolicy", to_string(lease.lease_policy)},
            {"provider", detail::json_or_null(lease.provider)},
            {"expiresAt", lease.expires_at ? boost::json::value(to_iso8601(*lease.expires_at))
                                           : boost::json::value(nullptr)},
            {"status", to_string(to)},
            {"cleanupStatus", to_string(cleanup)},
            {"failureReason", failure_reason},
        };
        if (lease.holder_pid) details["holderPid"] = *lease.holder_pid;
        auto ev = make_event(actions::lease_expired, lease.id, lease.company_id, std::nullopt,
                                   lease.heartbeat_run_id, std::move(details), now);
        result.released.push_back(store_.transition_lease(lease_transition{.id = lease.id,
                                                                           .expected_epoch = lease.epoch,
                                                                           .to = to,
                                                                           .failure_reason = failure_reason,
                                                                           .cleanup_status = cleanup},
                                                          now, std::move(ev)));
    }

    Store& store_;
    std::tuple<Ds...> drivers_;
    std::tuple<Ps...> policies_{};
    Clock clock_;
    [[no_unique_address]] Observer observer_{};

    /// A step_note of the observer; `what` is called (to build the step's text) only when it observes.
    template <class F>
    [[nodiscard]] detail::step_note<Observer> note(run_step step, std::string_view run_id, F&& what) const {
        if constexpr (observes<Observer>) {
            return detail::step_note<Observer>(observer_, step, run_id, std::string(std::forward<F>(what)()));
        } else {
            return detail::step_note<Observer>(observer_, step, run_id, {});
        }
    }
    /// As note(), into `slot` (a function whose steps follow one another; the previous one ends).
    template <class F>
    void note_into(std::optional<detail::step_note<Observer>>& slot, run_step step, std::string_view run_id,
                   F&& what) const {
        slot.reset();
        if constexpr (observes<Observer>) slot.emplace(observer_, step, run_id, std::string(std::forward<F>(what)()));
        else slot.emplace(observer_, step, run_id, std::string_view{});
    }
};

}  // namespace berth
