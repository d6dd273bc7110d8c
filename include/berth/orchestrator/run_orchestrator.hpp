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
#include <berth/orchestrator/detail/run_support.hpp>  // the helpers compiled once (make_lease_event, ...)

#include <boost/json/value.hpp>  // boost::json::value (details documents)

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

/// Whether the store lists a company's environments (destroy_reusable_leases needs it).
template <class Store>
concept store_lists_environments = requires(Store& s, std::string const& company) {
    s.list_environments(company, environment_filter{});
};

}  // namespace detail

template <conforming_driver... Ds, conforming_policy... Ps, orchestrator_store Store, clock Clock,
          run_observer Observer>
class run_orchestrator<stack<drivers<Ds...>, policies<Ps...>, Store, Clock, Observer>> {
public:
    using stack_type = stack<drivers<Ds...>, policies<Ps...>, Store, Clock, Observer>;
    // Matching the specialisation does not instantiate the stack: this does, so that its checks
    // (distinct names, realize for a realizing family, ...) fire for an orchestrator that is only
    // constructed, not only once a member that reads the stack is called.
    static_assert(sizeof(stack_type) > 0);
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
    [[nodiscard]] environment resolve_environment(resolve_request const& r) const;

    /// Steps 1–2: resolve, acquire a lease, record `environment.lease_acquired` with it.
    /// @throws environment_run_error from resolve_environment, or lease_acquire_failed wrapping the
    ///         driver's or the store's error (capacity, ...). When the store refuses the lease, the
    ///         provider side the driver created is released again before throwing.
    [[nodiscard]] acquisition acquire_for_run(acquire_for_run_request const& r) const;

    /// Steps 3–4: realize the workspace, provision it off-local, persist the realization on the
    /// lease, resolve the execution target.
    /// @throws environment_run_error workspace_realization_failed, transport_resolution_failed.
    [[nodiscard]] realization realize_for_run(realize_for_run_request const& r) const;

    /// Step 5: run a command in the leased environment. Fenced: refused unless the store still
    /// holds the lease `active` at the caller's epoch, so a holder that lost its lease cannot act.
    /// @throws store_error stale_epoch when the lease moved on; environment_run_error
    ///         unsupported_environment when the driver cannot execute; the driver's own errors.
    [[nodiscard]] command_result execute(environment const& env, environment_lease const& lease,
                                         command const& cmd) const;

    /// Step 6: end every active lease of a run by policy (upstream releaseForRun). Each lease is
    /// released through its driver (the one recorded at acquire), moved to the policy's status for
    /// the run's outcome with compare-and-set, and `environment.lease_released` is recorded with it.
    /// Never throws: failures are returned per lease, so they never hide the run's own failure.
    [[nodiscard]] release_result release_for_run(release_for_run_request const& r) const noexcept;

    /// Moves every active lease whose expires_at has passed to `expired` (failure reason
    /// `lease_expired`), after handing it to its driver's destroy (or release), recording the
    /// cleanup status and `environment.lease_expired`; a lease whose cleanup failed becomes
    /// `pending_cleanup` instead (see end_abandoned_lease). Never throws; failures are returned.
    [[nodiscard]] release_result reap_expired_leases() const noexcept;

    /// Ends one lease whose holder is gone (recover(), berth/recovery/recover.hpp): an `active`
    /// lease goes through its driver's destroy (else release) and ends `expired` with
    /// `failure_reason` (`holder_lost`, `lease_expired`); when the driver's cleanup fails it
    /// becomes `pending_cleanup` (cleanup status `failed`) instead, and a `pending_cleanup` lease
    /// is retried the same way until its cleanup succeeds. Records `environment.lease_expired`.
    /// Never throws; the outcome is returned (a lease another caller moved first is a stale_epoch
    /// error, and nothing changes).
    [[nodiscard]] release_result end_abandoned_lease(environment_lease const& lease,
                                                     std::string const& failure_reason) const noexcept;

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
        requires detail::store_lists_environments<Store>;

    /// Extends an active lease by its policy's TTL from now (fenced by the caller's epoch).
    /// @throws store_error (stale_epoch, illegal_transition, not_found); parse_error for a bad TTL.
    [[nodiscard]] environment_lease renew_lease(environment_lease const& lease) const;

    /// Asks the environment's driver whether the environment is usable. Never throws.
    [[nodiscard]] probe_result probe(environment const& env) const noexcept;

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
    static std::size_t select_policy(environment const& env);

    /// The policy a lease was acquired under: the one it records by name, else (a lease written
    /// before policies had names) the first of its kind.
    static std::size_t policy_of(environment_lease const& lease);

    /// The driver that realizes execution workspaces for a lease of `d`: `d` when it manages them,
    /// else the stack's first driver that does.
    template <class D>
    auto const& workspace_driver_for(D const& d) const noexcept {
        if constexpr (driver_with_execution_workspaces<D>) return d;
        else return workspace_driver();
    }

    /// Whether the policy a lease was acquired under reuses leases (false when the stack no longer has it).
    bool reusing_policy(environment_lease const& lease) const noexcept;

    /// The driver that holds a lease: the one the orchestrator recorded on it at acquire, so a
    /// lease is released by the driver that created it even if the environment changed since
    /// (upstream getLeaseDriverKey); a lease without a record (written before berth recorded
    /// it) goes to the environment's driver.
    static std::size_t driver_of(environment_lease const& lease, environment const& env);

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
                                          detail::make_lease_event(actions::lease_released, old.id, old.company_id, std::nullopt,
                                                     old.heartbeat_run_id, std::move(details), now));
        } catch (...) {
            // A lease another holder moved meanwhile is theirs to end.
        }
    }

    /// Ends a live lease whose provider side `successor` now holds. Never throws.
    void end_handed_over(environment_lease const& old, environment_lease const& successor, timestamp now) const noexcept;

    void check_held(environment_lease const& lease) const;

    void end_lease(environment_lease const& lease, release_for_run_request const& r, release_result& result) const;

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
                      std::string const& failure_reason = "lease_expired") const;

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

/// Declares that `run_orchestrator<Stack>` is instantiated in another TU, by
/// BERTH_INSTANTIATE_ORCHESTRATOR (orchestrator/instantiate.hpp): a TU that sees this compiles none
/// of its members. `Stack` is a type name (an alias of a berth::stack<...>), at namespace scope.
#define BERTH_EXTERN_ORCHESTRATOR(Stack) extern template class ::berth::run_orchestrator<Stack>

// The members' definitions. Under BERTH_SEPARATE_COMPILATION (berth/detail/config.hpp) a TU gets
// them only from <berth/orchestrator/instantiate.hpp>: the others use stacks that one TU
// instantiates (BERTH_EXTERN_ORCHESTRATOR) and need not parse them.
#ifndef BERTH_SEPARATE_COMPILATION
#include <berth/orchestrator/impl/run_orchestrator.hpp>
#endif
