#pragma once
//! @file
//! berth::stack — the compile-time composition of a run orchestrator:
//!
//! @code
//! using my_stack = berth::stack<berth::drivers<berth::local_driver, bubblewrap_driver, e2b_driver>,
//!                               berth::policies<berth::ephemeral, berth::retain_on_failure>,
//!                               berth::memory_store>;            // clock: berth::system_clock
//! berth::run_orchestrator<my_stack> orch{store, berth::local_driver{}, bubblewrap_driver{}, e2b_driver{}};
//! @endcode
//!
//! Drivers and policies are keyed by their compile-time names (`D::name`, `P::name`), which must
//! be distinct (checked when the stack is named). The environment record names its driver
//! *family* at run time (it comes from the database) and its config names the driver within the
//! family (concepts/environment_driver.hpp: `provider` for sandbox, `driver` otherwise);
//! select_driver maps that to a driver of the stack, or refuses with unsupported_environment
//! before anything is written. A driver the stack does not name is not compiled or linked. The
//! first policy listed is the stack's default; an environment's config `leasePolicy` names another.

#include <berth/concepts/clock.hpp>
#include <berth/concepts/diagnostics.hpp>  // conforming_driver/policy, driver/policy_requirements
#include <berth/concepts/environment_driver.hpp>
#include <berth/concepts/lease_policy.hpp>
#include <berth/concepts/orchestrator_store.hpp>  // orchestrator_store (what Store must model)
#include <berth/model/driver_family.hpp>           // driver_selector_key, family_realizes_workspace
#include <berth/model/enum_string.hpp>             // to_string (families in messages)
#include <berth/model/lease_transitions.hpp>       // can_transition (policy end states)
#include <berth/orchestrator/error.hpp>            // environment_run_error (selection refusals)
#include <berth/orchestrator/observer.hpp>             // run_observer, no_observer (the fifth parameter)

#include <array>        // std::array
#include <cstddef>      // std::size_t
#include <optional>     // std::optional
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <tuple>        // std::tuple_element_t (default policy)
#include <type_traits>  // std::integral_constant

namespace berth {

/// The set of drivers a stack dispatches to; names must be distinct. Unconstrained on purpose:
/// berth::stack checks each driver on its own (concepts/diagnostics.hpp), so that an error names
/// the failing driver and requirement instead of "constraints not satisfied" for the whole pack.
template <class... Ds>
struct drivers {
    static_assert(sizeof...(Ds) > 0, "berth::drivers<> needs at least one driver");
};

/// The set of lease policies a stack can apply; the first is the default. Names must be distinct.
/// Checked one by one by berth::stack, like drivers.
template <class... Ps>
struct policies {
    static_assert(sizeof...(Ps) > 0, "berth::policies<> needs at least one policy");
};

namespace detail {

/// Instantiated for every pair of drivers of a stack, so that a clash names both types.
template <class A, class B>
struct distinct_driver_names {
    static_assert(std::string_view(A::name) != std::string_view(B::name),
                  "berth::drivers<...>: two drivers have the same name (D::name); the two types are the "
                  "template arguments of this distinct_driver_names<A, B>");
    static constexpr bool value = true;
};
template <class A, class B>
struct distinct_policy_names {
    static_assert(std::string_view(A::name) != std::string_view(B::name),
                  "berth::policies<...>: two lease policies have the same name (P::name); the two types are "
                  "the template arguments of this distinct_policy_names<A, B>");
    static constexpr bool value = true;
};
template <template <class, class> class Check, class... Ts>
struct all_pairs;
template <template <class, class> class Check>
struct all_pairs<Check> : std::true_type {};
template <template <class, class> class Check, class T, class... Rest>
struct all_pairs<Check, T, Rest...>
    : std::bool_constant<(Check<T, Rest>::value && ... && true) && all_pairs<Check, Rest...>::value> {};

/// Whether P's status_for can be evaluated at compile time (a stateless, constexpr policy).
template <class P>
concept constexpr_status_for = requires {
    typename std::integral_constant<bool, (P{}.status_for(run_outcome::succeeded), true)>;
};

/// Every status P ends a lease in must be a legal move from `active`; checked for policies whose
/// status_for is constexpr (the shipped ones), trivially true for the others (the store still
/// refuses an illegal transition at run time).
template <class P>
constexpr bool policy_ends_legally() noexcept {
    if constexpr (constexpr_status_for<P>) {
        for (auto o : {run_outcome::succeeded, run_outcome::failed, run_outcome::cancelled, run_outcome::timed_out})
            if (!can_transition(lease_status::active, P{}.status_for(o))) return false;
    }
    return true;
}

/// Why a stack's arguments were refused: each driver and policy checked on its own (a failure
/// names the type in `driver_requirements<D>` / `policy_requirements<P>` and the requirement in
/// the message), then the store, clock and observer.
template <class Drivers, class Policies, class Store, class Clock, class Observer>
struct stack_diagnosis {
    static_assert(sizeof(Drivers) == 0,
                  "berth::stack<Drivers, Policies, Store, Clock>: Drivers must be berth::drivers<...> and "
                  "Policies berth::policies<...>");
    static constexpr bool value = false;
};
template <class... Ds, class... Ps, class Store, class Clock, class Observer>
struct stack_diagnosis<drivers<Ds...>, policies<Ps...>, Store, Clock, Observer> {
    // `&`, not `&&`: every driver and policy is checked, not only up to the first failure.
    static constexpr bool value = (true & ... & driver_requirements<Ds>::value) &
                                  (true & ... & policy_requirements<Ps>::value);
    static_assert(sizeof...(Ds) > 0, "berth::drivers<> needs at least one driver");
    static_assert(sizeof...(Ps) > 0, "berth::policies<> needs at least one policy");
    static_assert(orchestrator_store<Store>,
                  "berth::stack: the store must model berth::orchestrator_store (concepts/orchestrator_store.hpp)");
    static_assert(clock<Clock>, "berth::stack: the clock must model berth::clock (concepts/clock.hpp)");
    static_assert(run_observer<Observer>,
                  "berth::stack: the observer must model berth::run_observer (orchestrator/observer.hpp)");
};

/// Instantiated per driver, so that the failure names it. Upstream's realizeForRun calls
/// realizeWorkspace for every local, ssh and sandbox environment, and a driver without the hook
/// fails each run with `Environment driver "<d>" does not support workspace realization.`
/// (workspace_realization_failed); the family being static here, berth refuses such a driver when
/// the stack is named instead, with upstream's sentence in the message.
template <class D>
struct realizes_if_its_family_does {
    static_assert(!family_realizes_workspace(D::family) || driver_with_realize_workspace<D>,
                  "berth::drivers<...>: Environment driver does not support workspace realization. A driver of "
                  "family local, ssh or sandbox (upstream realizes their workspaces: model/driver_family.hpp) "
                  "must model berth::driver_with_realize_workspace; the driver is the template argument of "
                  "this realizes_if_its_family_does<D>");
    static constexpr bool value = true;
};

template <class D>
[[nodiscard]] constexpr bool claims(std::string_view n) noexcept {
    if constexpr (driver_with_name_claim<D>) return D::claims_name(n);
    else return false;
}

}  // namespace detail

/// Observer: what the orchestrator reports each step to (orchestrator/observer.hpp); the default,
/// no_observer, costs nothing.
/// A stack whose arguments do not conform: instantiating it reports why (detail::stack_diagnosis).
template <class Drivers, class Policies, class Store, class Clock = system_clock, class Observer = no_observer>
struct stack {
    static_assert(detail::stack_diagnosis<Drivers, Policies, Store, Clock, Observer>::value && sizeof(Drivers) == 0,
                  "berth::stack: its arguments do not conform (the errors above name the type and the requirement)");
};

template <conforming_driver... Ds, conforming_policy... Ps, orchestrator_store Store, clock Clock,
          run_observer Observer>
struct stack<drivers<Ds...>, policies<Ps...>, Store, Clock, Observer> {
    using store_type = Store;
    using clock_type = Clock;
    using observer_type = Observer;
    using default_policy = std::tuple_element_t<0, std::tuple<Ps...>>;

    static constexpr std::size_t driver_count = sizeof...(Ds);
    static constexpr std::size_t policy_count = sizeof...(Ps);
    static constexpr std::array<std::string_view, sizeof...(Ds)> driver_names{std::string_view(Ds::name)...};
    static constexpr std::array<driver_kind, sizeof...(Ds)> driver_families{Ds::family...};
    static constexpr std::array<std::string_view, sizeof...(Ps)> policy_names{std::string_view(Ps::name)...};
    static constexpr std::array<lease_policy_kind, sizeof...(Ps)> policy_kinds{Ps::kind...};

    static_assert(((!std::string_view(Ds::name).empty()) && ...), "berth::drivers<...>: a driver's name is empty");
    static_assert(((!std::string_view(Ps::name).empty()) && ...), "berth::policies<...>: a policy's name is empty");
    static_assert(detail::all_pairs<detail::distinct_driver_names, Ds...>::value);
    static_assert(detail::all_pairs<detail::distinct_policy_names, Ps...>::value);
    static_assert((true & ... & detail::realizes_if_its_family_does<Ds>::value));
    static_assert(((!driver_with_execution_workspaces<Ds>) && ...) || workspace_store<Store>,
                  "berth::stack: a driver of this stack manages execution workspaces (the local driver's "
                  "git worktrees), so the store must model berth::workspace_store (execution_workspace_store "
                  "+ operation_store)");
    static_assert((detail::policy_ends_legally<Ps>() && ...),
                  "berth::policies<...>: a policy's status_for ends an active lease in a status the lease status "
                  "table does not allow from active (model/lease_transitions.hpp)");

    template <template <class...> class T>
    using apply_drivers = T<Ds...>;
    template <template <class...> class T>
    using apply_policies = T<Ps...>;

    /// The index of the driver named `name`, or nullopt.
    [[nodiscard]] static constexpr std::optional<std::size_t> driver_index(std::string_view name) noexcept {
        for (std::size_t i = 0; i < driver_names.size(); ++i)
            if (driver_names[i] == name) return i;
        return std::nullopt;
    }
    [[nodiscard]] static constexpr bool has_family(driver_kind f) noexcept {
        for (auto d : driver_families)
            if (d == f) return true;
        return false;
    }
    /// The index of the policy named `name`, or nullopt.
    [[nodiscard]] static constexpr std::optional<std::size_t> policy_index(std::string_view name) noexcept {
        for (std::size_t i = 0; i < policy_names.size(); ++i)
            if (policy_names[i] == name) return i;
        return std::nullopt;
    }
    /// The index of the first policy of kind `k` (leases written before policies had names).
    [[nodiscard]] static constexpr std::optional<std::size_t> policy_index(lease_policy_kind k) noexcept {
        for (std::size_t i = 0; i < policy_kinds.size(); ++i)
            if (policy_kinds[i] == k) return i;
        return std::nullopt;
    }

    /// "local (local), bubblewrap (sandbox)": the stack's drivers, for messages.
    [[nodiscard]] static std::string driver_list() {
        std::string s;
        for (std::size_t i = 0; i < driver_names.size(); ++i)
            (((s += s.empty() ? "" : ", ") += driver_names[i]) += " (") += std::string(to_string(driver_families[i])) +
                                                                         ")";
        return s;
    }
    [[nodiscard]] static std::string policy_list() {
        std::string s;
        for (auto n : policy_names) (s += s.empty() ? "" : ", ") += n;
        return s;
    }

    /// The driver of this stack that serves `env`: within the environment's family, the one its
    /// config names (see concepts/environment_driver.hpp), else the family's only driver.
    /// @throws environment_run_error unsupported_environment naming the family, the name given
    ///         (if any) and the stack's drivers.
    [[nodiscard]] static std::size_t select_driver(environment const& env) {
        auto const key = driver_selector_key(env.driver);
        auto refuse = [&](std::string const& why) {
            return environment_run_error(environment_error_code::unsupported_environment,
                                         "Environment \"" + env.name + "\" uses driver \"" +
                                             std::string(to_string(env.driver)) + "\"" + why +
                                             " (drivers: " + driver_list() + ").",
                                         {.environment_id = env.id, .driver = env.driver});
        };
        std::optional<std::string_view> wanted;
        if (auto const* v = env.config.if_contains(key); v && !v->is_null()) {
            if (!v->is_string() || v->get_string().empty())
                throw refuse(", and its config " + std::string(key) + " is not a driver name");
            wanted = std::string_view(v->get_string());
        }
        std::optional<std::size_t> only, claimed;
        std::size_t in_family = 0;
        std::size_t i = 0;
        bool exact = false;
        std::optional<std::size_t> exact_index;
        (
            [&] {
                if (Ds::family == env.driver) {
                    ++in_family;
                    only = i;
                    if (wanted && std::string_view(Ds::name) == *wanted) exact_index = i, exact = true;
                    else if (wanted && !claimed && detail::claims<Ds>(*wanted)) claimed = i;
                }
                ++i;
            }(),
            ...);
        if (in_family == 0) throw refuse(", which this orchestrator's stack does not include");
        if (wanted) {
            if (exact) return *exact_index;
            if (claimed) return *claimed;
            throw refuse(" with " + std::string(key) + " \"" + std::string(*wanted) +
                         "\", which no driver of this orchestrator's stack serves");
        }
        if (in_family == 1) return *only;
        throw refuse(" but its config names no " + std::string(key) + ", and this orchestrator's stack has " +
                     std::to_string(in_family) + " drivers of that family");
    }
};

}  // namespace berth
