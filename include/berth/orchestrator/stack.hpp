#pragma once
//! @file
//! berth::stack — the compile-time composition of a run orchestrator:
//!
//! @code
//! using my_stack = berth::stack<berth::drivers<berth::local_driver>,
//!                               berth::policies<berth::ephemeral, berth::retain_on_failure>,
//!                               berth::memory_store>;            // clock: berth::system_clock
//! berth::run_orchestrator<my_stack> orch{store, berth::local_driver{}};
//! @endcode
//!
//! The environment record names its driver at run time (it comes from the database); the stack
//! holds a compile-time set of drivers and dispatches to the one whose `kind` matches. A driver the
//! stack does not name is not compiled or linked. The first policy listed is the stack's default.

#include <berth/concepts/clock.hpp>
#include <berth/concepts/environment_driver.hpp>
#include <berth/concepts/lease_policy.hpp>
#include <berth/concepts/orchestrator_store.hpp>  // orchestrator_store (what Store must model)
#include <berth/model/lease_transitions.hpp>  // can_transition (policy end states)
#include <berth/orchestrator/observer.hpp>     // run_observer, no_observer (the fifth parameter)

#include <array>    // std::array
#include <cstddef>  // std::size_t
#include <tuple>    // std::tuple_element_t (default policy)
#include <type_traits>  // std::integral_constant

namespace berth {

/// The set of drivers a stack dispatches to; kinds must be distinct.
template <environment_driver... Ds>
struct drivers {
    static_assert(sizeof...(Ds) > 0, "berth::drivers<> needs at least one driver");
};

/// The set of lease policies a stack can apply; the first is the default. Kinds must be distinct.
template <lease_policy... Ps>
struct policies {
    static_assert(sizeof...(Ps) > 0, "berth::policies<> needs at least one policy");
};

namespace detail {
template <class E, std::size_t N>
constexpr bool all_distinct(std::array<E, N> const& a) noexcept {
    for (std::size_t i = 0; i < N; ++i)
        for (std::size_t j = i + 1; j < N; ++j)
            if (a[i] == a[j]) return false;
    return true;
}

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
}  // namespace detail

/// Observer: what the orchestrator reports each step to (orchestrator/observer.hpp); the default,
/// no_observer, costs nothing.
template <class Drivers, class Policies, class Store, class Clock = system_clock, class Observer = no_observer>
struct stack {
    static_assert(sizeof(Drivers) == 0,
                  "berth::stack<Drivers, Policies, Store, Clock>: Drivers must be berth::drivers<...> and "
                  "Policies berth::policies<...>");
};

template <environment_driver... Ds, lease_policy... Ps, orchestrator_store Store, clock Clock, run_observer Observer>
struct stack<drivers<Ds...>, policies<Ps...>, Store, Clock, Observer> {
    using store_type = Store;
    using clock_type = Clock;
    using observer_type = Observer;
    using default_policy = std::tuple_element_t<0, std::tuple<Ps...>>;

    static constexpr std::array<driver_kind, sizeof...(Ds)> driver_kinds{Ds::kind...};
    static constexpr std::array<lease_policy_kind, sizeof...(Ps)> policy_kinds{Ps::kind...};

    static_assert(detail::all_distinct(driver_kinds), "berth::drivers<...>: two drivers serve the same driver_kind");
    static_assert(detail::all_distinct(policy_kinds), "berth::policies<...>: a lease policy kind is listed twice");
    static_assert((detail::policy_ends_legally<Ps>() && ...),
                  "berth::policies<...>: a policy's status_for ends an active lease in a status the lease status "
                  "table does not allow from active (model/lease_transitions.hpp)");

    template <template <class...> class T>
    using apply_drivers = T<Ds...>;
    template <template <class...> class T>
    using apply_policies = T<Ps...>;

    [[nodiscard]] static constexpr bool has_driver(driver_kind k) noexcept {
        for (auto d : driver_kinds)
            if (d == k) return true;
        return false;
    }
    [[nodiscard]] static constexpr bool has_policy(lease_policy_kind k) noexcept {
        for (auto p : policy_kinds)
            if (p == k) return true;
        return false;
    }
};

}  // namespace berth
