#pragma once
// The definitions of berth::run_orchestrator's members (declared, with their docs, in
// orchestrator/run_orchestrator.hpp). They are defined outside the class, so not implicitly
// inline: a TU that declares `extern template class berth::run_orchestrator<S>;`
// (BERTH_EXTERN_ORCHESTRATOR, orchestrator/instantiate.hpp) compiles none of them, even at -O2,
// and the one TU with BERTH_INSTANTIATE_ORCHESTRATOR compiles them all.

#include <berth/orchestrator/run_orchestrator.hpp>  // the declarations (this file is included at its end)
#include <berth/process/signal_name.hpp>  // signal_name (step summaries)
#include <berth/recovery/holder.hpp>  // set_holder, this_process_holder (who holds each lease)

#include <boost/json/serialize.hpp>  // serialize (error messages)

#include <chrono>   // std::chrono::seconds
#include <utility>  // std::move

namespace berth {

#define BERTH_RUN_ORCHESTRATOR_TEMPLATE                                                                       \
    template <conforming_driver... Ds, conforming_policy... Ps, orchestrator_store Store, clock Clock,          \
              run_observer Observer>
#define BERTH_RUN_ORCHESTRATOR run_orchestrator<stack<drivers<Ds...>, policies<Ps...>, Store, Clock, Observer>>

BERTH_RUN_ORCHESTRATOR_TEMPLATE
environment BERTH_RUN_ORCHESTRATOR::resolve_environment(resolve_request const& r) const {
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

BERTH_RUN_ORCHESTRATOR_TEMPLATE
acquisition BERTH_RUN_ORCHESTRATOR::acquire_for_run(acquire_for_run_request const& r) const {
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
        .expires_at = detail::earliest(grant.expires_at, policy_expiry),
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
    auto ev = detail::make_lease_event(actions::lease_acquired, nl.id, r.company_id, r.agent_id, r.heartbeat_run_id,
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

BERTH_RUN_ORCHESTRATOR_TEMPLATE
realization BERTH_RUN_ORCHESTRATOR::realize_for_run(realize_for_run_request const& r) const {
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

BERTH_RUN_ORCHESTRATOR_TEMPLATE
command_result BERTH_RUN_ORCHESTRATOR::execute(environment const& env, environment_lease const& lease,
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
                                          : "signal " + process::signal_name(result.signal.value_or(0)));
    }
    if (!supported)
        throw environment_run_error(environment_error_code::unsupported_environment,
                                    "Environment driver \"" + std::string(stack_type::driver_names[kind]) +
                                        "\" does not support command execution.",
                                    {.environment_id = env.id, .driver = env.driver});
    return result;
}

BERTH_RUN_ORCHESTRATOR_TEMPLATE
release_result BERTH_RUN_ORCHESTRATOR::release_for_run(release_for_run_request const& r) const noexcept {
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

BERTH_RUN_ORCHESTRATOR_TEMPLATE
release_result BERTH_RUN_ORCHESTRATOR::reap_expired_leases() const noexcept {
    release_result result;
    (void)end_each(result, environment_error_code::lease_cleanup_failed,
                   [&] { return store_.list_expired_leases(clock_.now()); },
                   [&](environment_lease const& lease) { expire_lease(lease, result); });
    return result;
}

BERTH_RUN_ORCHESTRATOR_TEMPLATE
release_result BERTH_RUN_ORCHESTRATOR::end_abandoned_lease(environment_lease const& lease,
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

BERTH_RUN_ORCHESTRATOR_TEMPLATE
release_result BERTH_RUN_ORCHESTRATOR::destroy_reusable_leases(destroy_reusable_request const& r) const noexcept
    requires detail::store_lists_environments<Store> {
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

BERTH_RUN_ORCHESTRATOR_TEMPLATE
environment_lease BERTH_RUN_ORCHESTRATOR::renew_lease(environment_lease const& lease) const {
    auto env = store_.get_environment(lease.environment_id);
    if (!env)
        throw store_error(store_errc::not_found, "Environment \"" + lease.environment_id + "\" of lease \"" +
                                                     lease.id + "\" not found.");
    auto const now = clock_.now();
    std::optional<timestamp> expiry;
    visit_policy(policy_of(lease), [&](auto const& p) { expiry = p.expires_at(*env, now); });
    return store_.renew_lease(lease.id, lease.epoch, expiry, now);
}

BERTH_RUN_ORCHESTRATOR_TEMPLATE
probe_result BERTH_RUN_ORCHESTRATOR::probe(environment const& env) const noexcept {
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

BERTH_RUN_ORCHESTRATOR_TEMPLATE
std::size_t BERTH_RUN_ORCHESTRATOR::select_policy(environment const& env) {
    auto const* v = env.config.if_contains("leasePolicy");
    if (!v || v->is_null()) return 0;
    if (!v->is_string())
        throw parse_error("environment config leasePolicy", boost::json::serialize(*v), "expected a string");
    auto const name = std::string_view(v->get_string());
    if (auto const i = stack_type::policy_index(name)) return *i;
    throw error("Lease policy \"" + std::string(name) + "\" is not in this orchestrator's stack (policies: " +
                stack_type::policy_list() + ").");
}

BERTH_RUN_ORCHESTRATOR_TEMPLATE
std::size_t BERTH_RUN_ORCHESTRATOR::policy_of(environment_lease const& lease) {
    auto const i = lease.policy_name ? stack_type::policy_index(*lease.policy_name)
                                     : stack_type::policy_index(lease.lease_policy);
    if (i) return *i;
    throw error("Lease policy \"" + (lease.policy_name ? *lease.policy_name : std::string(to_string(lease.lease_policy))) +
                "\" of lease \"" + lease.id + "\" is not in this orchestrator's stack (policies: " +
                stack_type::policy_list() + ").");
}

BERTH_RUN_ORCHESTRATOR_TEMPLATE
bool BERTH_RUN_ORCHESTRATOR::reusing_policy(environment_lease const& lease) const noexcept {
    bool reuses = false;
    try {
        visit_policy(policy_of(lease), [&](auto const& p) {
            reuses = policy_with_reuse<std::remove_cvref_t<decltype(p)>>;
        });
    } catch (...) {
    }
    return reuses;
}

BERTH_RUN_ORCHESTRATOR_TEMPLATE
std::size_t BERTH_RUN_ORCHESTRATOR::driver_of(environment_lease const& lease, environment const& env) {
    if (!lease.driver_name) return stack_type::select_driver(env);
    if (auto const i = stack_type::driver_index(*lease.driver_name)) return *i;
    throw environment_run_error(environment_error_code::unsupported_environment,
                                "Lease \"" + lease.id + "\" is held by driver \"" + *lease.driver_name +
                                    "\", which this orchestrator's stack does not include (drivers: " +
                                    stack_type::driver_list() + ").",
                                {.environment_id = env.id, .driver = env.driver});
}

BERTH_RUN_ORCHESTRATOR_TEMPLATE
void BERTH_RUN_ORCHESTRATOR::end_handed_over(environment_lease const& old, environment_lease const& successor, timestamp now) const noexcept {
    try {
        json_object details{{"environmentId", old.environment_id},
                            {"leasePolicy", to_string(old.lease_policy)},
                            {"provider", detail::json_or_null(old.provider)},
                            {"status", "released"},
                            {"resumedBy", successor.id}};
        (void)store_.transition_lease(
            lease_transition{.id = old.id, .expected_epoch = old.epoch, .to = lease_status::released},
            now,
            detail::make_lease_event(actions::lease_released, old.id, old.company_id, std::nullopt, old.heartbeat_run_id,
                       std::move(details), now));
    } catch (...) {
    }
}

BERTH_RUN_ORCHESTRATOR_TEMPLATE
void BERTH_RUN_ORCHESTRATOR::check_held(environment_lease const& lease) const {
    auto const current = store_.get_lease(lease.id);
    if (!current)
        throw store_error(store_errc::not_found, "Lease \"" + lease.id + "\" not found.");
    if (current->epoch != lease.epoch || current->status != lease_status::active)
        throw store_error(store_errc::stale_epoch,
                          "Lease \"" + lease.id + "\" is no longer held by this caller (status " +
                              to_string(current->status) + ", epoch " + std::to_string(current->epoch) +
                              "; caller holds epoch " + std::to_string(lease.epoch) + ").");
}

BERTH_RUN_ORCHESTRATOR_TEMPLATE
void BERTH_RUN_ORCHESTRATOR::end_lease(environment_lease const& lease, release_for_run_request const& r, release_result& result) const {
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
    auto ev = detail::make_lease_event(actions::lease_released, lease.id, r.company_id, r.agent_id, r.heartbeat_run_id,
                               std::move(details), now);
    result.released.push_back(store_.transition_lease(
        lease_transition{.id = lease.id,
                         .expected_epoch = lease.epoch,
                         .to = target,
                         .failure_reason = std::move(reason),
                         .cleanup_status = cleanup},
        now, std::move(ev)));
}

BERTH_RUN_ORCHESTRATOR_TEMPLATE
void BERTH_RUN_ORCHESTRATOR::expire_lease(environment_lease const& lease, release_result& result,
                  std::string const& failure_reason) const {
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
    auto ev = detail::make_lease_event(actions::lease_expired, lease.id, lease.company_id, std::nullopt,
                               lease.heartbeat_run_id, std::move(details), now);
    result.released.push_back(store_.transition_lease(lease_transition{.id = lease.id,
                                                                       .expected_epoch = lease.epoch,
                                                                       .to = to,
                                                                       .failure_reason = failure_reason,
                                                                       .cleanup_status = cleanup},
                                                      now, std::move(ev)));
}

#undef BERTH_RUN_ORCHESTRATOR
#undef BERTH_RUN_ORCHESTRATOR_TEMPLATE

}  // namespace berth
