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
#include <berth/workspace/manager.hpp>  // workspace_manager, workspace_runtime (local workspaces)

#include <boost/hana/for_each.hpp>  // hana::for_each (driver and policy dispatch)
#include <boost/hana/tuple.hpp>     // hana::tuple (the driver and policy instances)
#include <boost/json/value.hpp>     // boost::json::value (details documents)

#include <boost/json/serialize.hpp>  // serialize (error messages)

#include <algorithm>    // std::min
#include <chrono>       // std::chrono::seconds
#include <exception>    // std::current_exception
#include <optional>     // std::optional
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <type_traits>  // std::remove_cvref_t
#include <utility>      // std::move

namespace berth {

template <class Stack>
class run_orchestrator {
    static_assert(sizeof(Stack) == 0, "berth::run_orchestrator<Stack>: Stack must be a berth::stack<...>");
};

namespace detail {

inline std::optional<std::string> metadata_string(std::optional<json_object> const& md, std::string_view key) {
    if (!md) return std::nullopt;
    auto const* v = md->if_contains(key);
    if (!v || !v->is_string()) return std::nullopt;
    std::string s(v->get_string());
    auto const b = s.find_first_not_of(" \t\r\n");
    if (b == std::string::npos) return std::nullopt;
    auto const e = s.find_last_not_of(" \t\r\n");
    return s.substr(b, e - b + 1);
}

inline boost::json::value json_or_null(std::optional<std::string> const& s) {
    return s ? boost::json::value(*s) : boost::json::value(nullptr);
}

inline std::string first_non_empty_line(std::string_view text) {
    while (!text.empty()) {
        auto const nl = text.find('\n');
        auto line = text.substr(0, nl);
        auto const b = line.find_first_not_of(" \t\r");
        if (b != std::string_view::npos) {
            auto const e = line.find_last_not_of(" \t\r");
            return std::string(line.substr(b, e - b + 1));
        }
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

template <environment_driver... Ds, lease_policy... Ps, orchestrator_store Store, clock Clock, run_observer Observer>
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
        if (!stack_type::has_driver(env.driver))
            throw environment_run_error(environment_error_code::unsupported_environment,
                                        "Environment \"" + env.name + "\" uses driver \"" + to_string(env.driver) +
                                            "\", which this orchestrator's stack does not include (drivers: " +
                                            driver_list() + ").",
                                        {.environment_id = env.id, .driver = env.driver});
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

        lease_policy_kind policy{};
        std::optional<timestamp> policy_expiry;
        auto const now = clock_.now();
        try {
            policy = select_policy(env);
            visit_policy(policy, [&](auto const& p) { policy_expiry = p.expires_at(env, now); });
        } catch (...) {
            throw fail(message_of(std::current_exception()), std::current_exception());
        }

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
        };
        // The policy's reuse scope, an opaque key the store keeps unique among the environment's
        // active leases (model/lease_rules.hpp).
        std::optional<std::string> reuse_scope;
        lease_grant grant;
        try {
            visit_policy(policy, [&](auto const& p) {
                if constexpr (policy_with_reuse_scope<std::remove_cvref_t<decltype(p)>>) reuse_scope = p.reuse_scope(req);
            });
            visit_driver(req.env.driver, [&](auto const& d) { grant = d.acquire(req); });
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
            .reuse_scope = std::move(reuse_scope),
        };
        json_object details{
            {"environmentId", env.id},
            {"driver", to_string(env.driver)},
            {"leasePolicy", to_string(policy)},
            {"provider", detail::json_or_null(nl.provider)},
            {"executionWorkspaceId", detail::json_or_null(r.execution_workspace_id)},
            {"issueId", detail::json_or_null(r.issue_id)},
        };
        auto ev = make_event(actions::lease_acquired, nl.id, r.company_id, r.agent_id, r.heartbeat_run_id,
                                   std::move(details), now);
        environment_lease lease;
        try {
            lease = store_.acquire_lease(nl, now, std::move(ev));
        } catch (...) {
            auto const cause = std::current_exception();
            // Undo the provider side, or a refused lease would leak a sandbox/remote workspace.
            try {
                environment_lease const orphan{.id = nl.id,
                                               .company_id = nl.company_id,
                                               .environment_id = nl.environment_id,
                                               .heartbeat_run_id = nl.heartbeat_run_id,
                                               .lease_policy = nl.lease_policy,
                                               .provider = nl.provider,
                                               .provider_lease_id = nl.provider_lease_id,
                                               .metadata = nl.metadata};
                visit_driver(env.driver, [&](auto const& d) { (void)d.release(env, orphan, lease_status::failed); });
            } catch (...) {
                // The store's refusal is what the caller must see.
            }
            throw fail(message_of(cause), cause);
        }
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
        auto const kind = driver_of(lease, env);
        auto const remote_cwd = detail::metadata_string(lease.metadata, "remoteCwd");
        auto realize_error = [&](std::string const& what, std::exception_ptr cause) {
            return environment_run_error(environment_error_code::workspace_realization_failed,
                                         "Failed to " + what + " for environment \"" + env.name + "\" (" +
                                             to_string(env.driver) + "): " + message_of(cause),
                                         {.environment_id = env.id, .driver = env.driver, .cause = cause});
        };

        // Local: the execution workspace (worktree, provisioning, records) comes first; its cwd is
        // what the driver realizes.
        std::string workspace_cwd = r.workspace_cwd;
        std::string const run_id = lease.heartbeat_run_id.value_or("");
        std::optional<managed_workspace> managed;
        if (r.workspace && env.driver == driver_kind::local) {
            auto step = note(run_step::worktree, run_id, [&] {
                return std::string(to_string(r.workspace->strategy.type)) + " of " + r.workspace->base.base_cwd +
                       (r.workspace->strategy.provision_command ? ", provisioned by: " + *r.workspace->strategy.provision_command
                                                                : std::string());
            });
            realize_workspace_request ws = *r.workspace;
            if (!ws.stop.stop_possible()) ws.stop = r.stop;
            if (!ws.provision_timeout && r.provision_timeout) ws.provision_timeout = *r.provision_timeout;
            if constexpr (observes<Observer>) {
                ws.on_provision_output = [&step, user = std::move(ws.on_provision_output)](output_stream s,
                                                                                           std::string_view chunk) {
                    if (user) user(s, chunk);
                    step.output(s, chunk, run_step::provision);
                };
            }
            try {
                if constexpr (workspace_store<Store>) {
                    managed = workspace_manager<Store, Clock>(store_, workspace_runtime_, clock_)
                                  .realize(ws, {.company_id = env.company_id,
                                                .heartbeat_run_id = lease.heartbeat_run_id,
                                                .execution_workspace_id = lease.execution_workspace_id});
                } else {
                    throw error("this stack's store does not keep execution workspaces (it does not model "
                                "berth::workspace_store)");
                }
            } catch (...) {
                if constexpr (observes<Observer>) step.failed(message_of(std::current_exception()));
                throw realize_error("realize execution workspace", std::current_exception());
            }
            workspace_cwd = managed->realized.cwd;
            if constexpr (observes<Observer>)
                step.done(managed->realized.cwd + (managed->realized.created ? " (created)" : " (reused)"));
        }

        json_object workspace_realization;
        std::optional<std::string> realized_cwd;
        // Upstream realizes for local, ssh and sandbox only; plugin drivers realize on their side.
        if (env.driver != driver_kind::plugin) {
            auto step = note(run_step::realize, run_id, [&] { return "workspace " + workspace_cwd; });
            try {
                visit_driver(kind, [&](auto const& d) {
                    using D = std::remove_cvref_t<decltype(d)>;
                    if constexpr (driver_with_realize_workspace<D>) {
                        auto res = d.realize_workspace(realize_request{.env = env,
                                                                       .lease = lease,
                                                                       .local_path = workspace_cwd,
                                                                       .remote_path = remote_cwd,
                                                                       .mode = r.execution_workspace_mode,
                                                                       .metadata = {}});
                        if (res.cwd.find_first_not_of(" \t\r\n") != std::string::npos) realized_cwd = res.cwd;
                        if (auto const* w = res.metadata.if_contains("workspaceRealization"); w && w->is_object())
                            workspace_realization = w->get_object();
                    }
                });
            } catch (...) {
                if constexpr (observes<Observer>) step.failed(message_of(std::current_exception()));
                throw realize_error("realize workspace", std::current_exception());
            }
            if constexpr (observes<Observer>) step.done("cwd " + realized_cwd.value_or(workspace_cwd));
        }
        std::string const cwd = realized_cwd ? *realized_cwd : remote_cwd ? *remote_cwd : workspace_cwd;

        auto const provision = r.provision_command ? detail::first_non_empty_line(*r.provision_command).empty()
                                                         ? std::string()
                                                         : *r.provision_command
                                                   : std::string();
        if (!provision.empty() && env.driver != driver_kind::local) {
            auto step = note(run_step::provision, run_id, [&] { return provision + " in " + cwd; });
            try {
                visit_driver(kind, [&](auto const& d) {
                    using D = std::remove_cvref_t<decltype(d)>;
                    if constexpr (driver_with_execute<D>) {
                        command c{.program = "bash",
                                  .args = {"-lc", provision},
                                  .cwd = cwd,
                                  .env = {{"SHELL", "/bin/bash"}},
                                  .timeout = r.provision_timeout.value_or(std::chrono::seconds(300)),
                                  .stop = r.stop};
                        if constexpr (observes<Observer>)
                            c.on_output = [&step](output_stream s, std::string_view chunk) {
                                step.output(s, chunk, run_step::provision);
                            };
                        auto const res = d.execute(env, lease, c);
                        if (res.timed_out || res.exit_code != 0) throw error(detail::provision_failure_detail(res));
                    } else {
                        throw error("Environment driver \"" + std::string(to_string(kind)) +
                                    "\" does not support command execution.");
                    }
                });
            } catch (...) {
                if constexpr (observes<Observer>) step.failed(message_of(std::current_exception()));
                throw realize_error("provision workspace", std::current_exception());
            }
            step.done("provisioned");
        }

        if (!workspace_realization.empty()) {
            json_object md = lease.metadata.value_or(json_object{});
            md["workspaceRealization"] = workspace_realization;
            if (auto updated = store_.update_lease_metadata(lease.id, std::move(md), clock_.now()))
                lease = std::move(*updated);
            if constexpr (workspace_store<Store>) {
                if (managed) {  // upstream step 4: the execution workspace keeps the realization too
                    json_object ew_md = managed->record.metadata.value_or(json_object{});
                    ew_md["workspaceRealization"] = workspace_realization;
                    if (auto updated = store_.update_execution_workspace(
                            managed->record.id, {.metadata = std::optional<json_object>(std::move(ew_md))},
                            clock_.now()))
                        managed->record = std::move(*updated);
                }
            }
        }

        std::optional<execution_target> target;
        try {
            visit_driver(kind, [&](auto const& d) {
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
        if (managed) {
            out.workspace = std::move(managed->realized);
            out.execution_workspace = std::move(managed->record);
        }
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
                                        "Environment driver \"" + std::string(to_string(kind)) +
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
        std::vector<environment_lease> leases;
        try {
            // Every one must be released, and a run holds few: one page without a limit.
            leases = store_.list_run_leases(r.heartbeat_run_id,
                                            lease_filter{.status = lease_status::active, .limit = no_limit});
        } catch (...) {
            result.errors.push_back(lease_error{"*", environment_error_code::lease_release_failed,
                                                message_of(std::current_exception()), std::current_exception()});
            return result;
        }
        for (auto const& lease : leases) {
            try {
                end_lease(lease, r, result);
            } catch (...) {
                result.errors.push_back(lease_error{lease.id, environment_error_code::lease_release_failed,
                                                    message_of(std::current_exception()), std::current_exception()});
            }
        }
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
    /// cleanup status and `environment.lease_expired`. Never throws; failures are returned.
    [[nodiscard]] release_result reap_expired_leases() const noexcept {
        release_result result;
        std::vector<environment_lease> leases;
        try {
            leases = store_.list_expired_leases(clock_.now());
        } catch (...) {
            result.errors.push_back(lease_error{"*", environment_error_code::lease_cleanup_failed,
                                                message_of(std::current_exception()), std::current_exception()});
            return result;
        }
        for (auto const& lease : leases) {
            try {
                expire_lease(lease, result);
            } catch (...) {
                result.errors.push_back(lease_error{lease.id, environment_error_code::lease_cleanup_failed,
                                                    message_of(std::current_exception()), std::current_exception()});
            }
        }
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
        visit_policy(lease.lease_policy, [&](auto const& p) { expiry = p.expires_at(*env, now); });
        return store_.renew_lease(lease.id, lease.epoch, expiry, now);
    }

    /// Asks the environment's driver whether the environment is usable. Never throws.
    [[nodiscard]] probe_result probe(environment const& env) const noexcept {
        probe_result result{.ok = false,
                            .summary = "Environment driver \"" + std::string(to_string(env.driver)) +
                                       "\" does not support probes.",
                            .details = {}};
        visit_driver(env.driver, [&](auto const& d) {
            using D = std::remove_cvref_t<decltype(d)>;
            if constexpr (driver_with_probe<D>) result = d.probe(env);
        });
        return result;
    }

    /// What realizes local execution workspaces (git, shell, deadlines; default options).
    [[nodiscard]] workspace_runtime const& workspaces() const noexcept { return workspace_runtime_; }

    /// The driver instance of type D in this stack (for driver-specific calls).
    template <class D>
    [[nodiscard]] D const& driver() const noexcept {
        D const* found = nullptr;
        boost::hana::for_each(drivers_, [&](auto const& d) {
            if constexpr (std::is_same_v<std::remove_cvref_t<decltype(d)>, D>) found = &d;
        });
        return *found;
    }

private:
    template <class F>
    bool visit_driver(driver_kind k, F&& f) const {
        bool found = false;
        boost::hana::for_each(drivers_, [&](auto const& d) {
            if (!found && std::remove_cvref_t<decltype(d)>::kind == k) {
                found = true;
                f(d);
            }
        });
        if (!found)
            throw environment_run_error(environment_error_code::unsupported_environment,
                                        "Environment driver \"" + std::string(to_string(k)) +
                                            "\" is not in this orchestrator's stack (drivers: " + driver_list() + ").",
                                        {.driver = k});
        return found;
    }

    template <class F>
    void visit_policy(lease_policy_kind k, F&& f) const {
        bool found = false;
        boost::hana::for_each(policies_, [&](auto const& p) {
            if (!found && std::remove_cvref_t<decltype(p)>::kind == k) {
                found = true;
                f(p);
            }
        });
        if (!found)
            throw error("Lease policy \"" + std::string(to_string(k)) +
                        "\" is not in this orchestrator's stack (policies: " + policy_list() + ").");
    }

    static std::string driver_list() {
        std::string s;
        for (auto k : stack_type::driver_kinds) s += (s.empty() ? "" : ", ") + std::string(to_string(k));
        return s;
    }
    static std::string policy_list() {
        std::string s;
        for (auto k : stack_type::policy_kinds) s += (s.empty() ? "" : ", ") + std::string(to_string(k));
        return s;
    }

    /// The environment's config `leasePolicy`, else the stack's first policy.
    static lease_policy_kind select_policy(environment const& env) {
        auto const* v = env.config.if_contains("leasePolicy");
        if (!v || v->is_null()) return stack_type::policy_kinds[0];
        if (!v->is_string())
            throw parse_error("environment config leasePolicy", boost::json::serialize(*v), "expected a string");
        auto const k = parse_enum<lease_policy_kind>(std::string_view(v->get_string()));
        if (!stack_type::has_policy(k))
            throw error("Lease policy \"" + std::string(to_string(k)) +
                        "\" is not in this orchestrator's stack (policies: " + policy_list() + ").");
        return k;
    }

    /// The driver recorded on the lease at acquire (upstream getLeaseDriverKey), else the
    /// environment's, so a lease is released by the driver that created it.
    static driver_kind driver_of(environment_lease const& lease, environment const& env) {
        if (auto s = detail::metadata_string(lease.metadata, "driver"))
            if (auto k = try_parse_enum<driver_kind>(*s)) return *k;
        return env.driver;
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
        visit_policy(lease.lease_policy, [&](auto const& p) { target = p.status_for(r.outcome); });

        auto const env = store_.get_environment(lease.environment_id);
        std::optional<berth::cleanup_status> cleanup;
        std::optional<std::string> driver_reason;
        std::optional<driver_kind> kind;
        if (env) {
            kind = driver_of(lease, *env);
            try {
                visit_driver(*kind, [&](auto const& d) {
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

    void expire_lease(environment_lease const& lease, release_result& result) const {
        auto const env = store_.get_environment(lease.environment_id);
        auto cleanup = berth::cleanup_status::failed;
        std::optional<driver_kind> kind;
        if (env) {
            kind = driver_of(lease, *env);
            try {
                visit_driver(*kind, [&](auto const& d) {
                    using D = std::remove_cvref_t<decltype(d)>;
                    release_outcome out;
                    if constexpr (driver_with_destroy<D>) out = d.destroy(*env, lease);
                    else out = d.release(*env, lease, lease_status::expired);
                    cleanup = out.cleanup_status.value_or(berth::cleanup_status::success);
                });
            } catch (...) {
                result.errors.push_back(lease_error{lease.id, environment_error_code::lease_cleanup_failed,
                                                    message_of(std::current_exception()), std::current_exception()});
            }
        }
        auto const now = clock_.now();
        json_object details{
            {"environmentId", lease.environment_id},
            {"driver", kind ? boost::json::value(to_string(*kind)) : boost::json::value(nullptr)},
            {"leasePolicy", to_string(lease.lease_policy)},
            {"provider", detail::json_or_null(lease.provider)},
            {"expiresAt", lease.expires_at ? boost::json::value(to_iso8601(*lease.expires_at))
                                           : boost::json::value(nullptr)},
            {"status", "expired"},
            {"cleanupStatus", to_string(cleanup)},
            {"failureReason", "lease_expired"},
        };
        auto ev = make_event(actions::lease_expired, lease.id, lease.company_id, std::nullopt,
                                   lease.heartbeat_run_id, std::move(details), now);
        result.released.push_back(store_.transition_lease(lease_transition{.id = lease.id,
                                                                           .expected_epoch = lease.epoch,
                                                                           .to = lease_status::expired,
                                                                           .failure_reason = "lease_expired",
                                                                           .cleanup_status = cleanup},
                                                          now, std::move(ev)));
    }

    Store& store_;
    workspace_runtime workspace_runtime_{};
    boost::hana::tuple<Ds...> drivers_;
    boost::hana::tuple<Ps...> policies_{};
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
};

}  // namespace berth
