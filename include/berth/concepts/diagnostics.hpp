#pragma once
//! @file
//! Requirement-by-requirement diagnostics for drivers and lease policies.
//!
//! A concept answers yes or no; when a type fails one, GCC prints the failed expression and the
//! reader has to work out which member is wrong. Worse, an optional capability (probe, execute,
//! resume, ...) is detected by a concept, so a member with the capability's name and the wrong
//! signature — `probe` without `noexcept`, `execute` without `const`, a wrong parameter type —
//! would silently read as "not supported" and fail only at run time. Here every requirement is a
//! static_assert of its own whose message names it, and a *near miss* (a member with a
//! capability's name that does not model the capability) is an error.
//!
//! berth::stack runs these checks on every driver and policy it is given, one type at a time, so
//! the diagnostic names the failing type (`In instantiation of 'struct
//! berth::driver_requirements<my_driver>'`) and the requirement (the static_assert's message).
//! A driver or policy author can run them at the type's definition:
//! @code
//! static_assert(berth::verified_driver<my_driver>);   // all of my_driver's requirements, one by one
//! static_assert(berth::verified_policy<my_policy>);
//! @endcode
//!
//! berth::conforming_driver<D> / conforming_policy<P> are the same checks as concepts (true when
//! nothing would fire): what berth::stack's specialization requires.
//!
//! What counts as "declaring" a capability: `&D::member` names a member (any signature, static or
//! not, not overloaded), or the member can be called on a non-const object with the capability's
//! arguments. An overloaded member none of whose overloads fits, or a member template, is not
//! seen: those read as "not declared".

#include <berth/concepts/environment_driver.hpp>
#include <berth/concepts/lease_policy.hpp>

#include <concepts>     // std::same_as
#include <optional>     // std::optional
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <vector>       // std::vector

namespace berth {

namespace detail {
// Drivers: does D declare a member with a capability's name (whatever its signature)?
template <class D>
concept declares_resume = requires { &D::resume; } || requires(D& d, environment const& e, environment_lease const& l) {
    d.resume(e, l);
};
template <class D>
concept declares_destroy = requires { &D::destroy; } || requires(D& d, environment const& e,
                                                                  environment_lease const& l) { d.destroy(e, l); };
template <class D>
concept declares_realize_workspace = requires { &D::realize_workspace; } ||
                                     requires(D& d, realize_request const& r) { d.realize_workspace(r); };
template <class D>
concept declares_execute = requires { &D::execute; } || requires(D& d, environment const& e, environment_lease const& l,
                                                                  command const& c) { d.execute(e, l, c); };
template <class D>
concept declares_probe = requires { &D::probe; } || requires(D& d, environment const& e) { d.probe(e); };
template <class D>
concept declares_execution_target = requires { &D::execution_target; } ||
                                    requires(D& d, environment const& e, environment_lease const& l) {
                                        d.execution_target(e, l);
                                    };
template <class D>
concept declares_claims_name = requires { &D::claims_name; } || requires(std::string_view n) { D::claims_name(n); };

// Policies: the required members one by one, and the optional hooks' names.
template <class P>
concept policy_status_for = requires(P const& p, run_outcome o) {
    { p.status_for(o) } noexcept -> std::same_as<lease_status>;
};
template <class P>
concept policy_expires_at = requires(P const& p, environment const& e, timestamp now) {
    { p.expires_at(e, now) } -> std::same_as<std::optional<timestamp>>;
};
template <class P>
concept declares_reuse_scope = requires { &P::reuse_scope; } ||
                               requires(P& p, acquire_request const& r) { p.reuse_scope(r); };
template <class P>
concept declares_reuse_hook = requires { &P::find_reusable; } || requires { &P::matches; } ||
                              requires { &P::stamp; };
}  // namespace detail

/// Every requirement of berth::environment_driver and every capability D declares, each a
/// static_assert naming it. Instantiating it (berth::verified_driver<D>) runs them all.
template <class D>
struct driver_requirements {
    static_assert(detail::driver_opted_in<D>,
                  "berth::environment_driver: the driver must opt in with `using driver_concept = berth::driver_tag;`");
    static_assert(detail::driver_names_itself<D>,
                  "berth::environment_driver: the driver must name itself with compile-time constants "
                  "`static constexpr std::string_view name = \"...\";` and "
                  "`static constexpr berth::driver_kind family = ...;`");
    static_assert(detail::driver_acquires<D>,
                  "berth::environment_driver: the driver must have "
                  "`berth::lease_grant acquire(berth::acquire_request const&) const` (missing, or another signature)");
    static_assert(detail::driver_releases<D>,
                  "berth::environment_driver: the driver must have `berth::release_outcome release(berth::environment "
                  "const&, berth::environment_lease const&, berth::lease_status) const` (missing, or another "
                  "signature)");
    // Only if each requirement above held: the concept and the checks above must not drift apart.
    static_assert(!(detail::driver_opted_in<D> && detail::driver_names_itself<D> && detail::driver_acquires<D> &&
                    detail::driver_releases<D>) ||
                      environment_driver<D>,
                  "berth::environment_driver is not modelled, although each requirement berth checks is");

    // Near misses: only judged once D is a driver (else the requirements above already fired).
    static constexpr bool is_driver = environment_driver<D>;
    static_assert(!is_driver || !detail::declares_resume<D> || driver_with_resume<D>,
                  "berth::driver_with_resume: the driver declares `resume`, but not as "
                  "`berth::lease_grant resume(berth::environment const&, berth::environment_lease const&) const`");
    static_assert(!is_driver || !detail::declares_destroy<D> || driver_with_destroy<D>,
                  "berth::driver_with_destroy: the driver declares `destroy`, but not as `berth::release_outcome "
                  "destroy(berth::environment const&, berth::environment_lease const&) const`");
    static_assert(!is_driver || !detail::declares_realize_workspace<D> || driver_with_realize_workspace<D>,
                  "berth::driver_with_realize_workspace: the driver declares `realize_workspace`, but not as "
                  "`berth::workspace_realization realize_workspace(berth::realize_request const&) const`");
    static_assert(!is_driver || !detail::declares_execute<D> || driver_with_execute<D>,
                  "berth::driver_with_execute: the driver declares `execute`, but not as `berth::command_result "
                  "execute(berth::environment const&, berth::environment_lease const&, berth::command const&) const`");
    static_assert(!is_driver || !detail::declares_probe<D> || driver_with_probe<D>,
                  "berth::driver_with_probe: the driver declares `probe`, but not as `berth::probe_result "
                  "probe(berth::environment const&) const noexcept` (probes never throw: noexcept is required)");
    static_assert(!is_driver || !detail::declares_execution_target<D> || driver_with_execution_target<D>,
                  "berth::driver_with_execution_target: the driver declares `execution_target`, but not as "
                  "`berth::execution_target execution_target(berth::environment const&, berth::environment_lease "
                  "const&) const`");
    static_assert(!is_driver || !detail::declares_claims_name<D> || driver_with_name_claim<D>,
                  "berth::driver_with_name_claim: the driver declares `claims_name`, but not as "
                  "`static bool claims_name(std::string_view) noexcept`");

    static constexpr bool value = true;
};

/// Every requirement of berth::lease_policy and every reuse hook P declares, each a static_assert
/// naming it.
template <class P>
struct policy_requirements {
    static_assert(detail::policy_opted_in<P>,
                  "berth::lease_policy: the policy must opt in with "
                  "`using lease_policy_concept = berth::lease_policy_tag;`");
    static_assert(detail::policy_names_itself<P>,
                  "berth::lease_policy: the policy must name itself with compile-time constants "
                  "`static constexpr std::string_view name = \"...\";` and "
                  "`static constexpr berth::lease_policy_kind kind = ...;`");
    static_assert(detail::policy_status_for<P>,
                  "berth::lease_policy: the policy must have "
                  "`berth::lease_status status_for(berth::run_outcome) const noexcept` (missing, or another "
                  "signature; noexcept is required)");
    static_assert(detail::policy_expires_at<P>,
                  "berth::lease_policy: the policy must have `std::optional<berth::timestamp> "
                  "expires_at(berth::environment const&, berth::timestamp) const` (missing, or another signature)");
    static_assert(!(detail::policy_opted_in<P> && detail::policy_names_itself<P> && detail::policy_status_for<P> &&
                    detail::policy_expires_at<P>) ||
                      lease_policy<P>,
                  "berth::lease_policy is not modelled, although each requirement berth checks is");

    static constexpr bool is_policy = lease_policy<P>;
    static_assert(!is_policy || !detail::declares_reuse_scope<P> || policy_with_reuse_scope<P>,
                  "berth::policy_with_reuse_scope: the policy declares `reuse_scope`, but not as "
                  "`std::optional<std::string> reuse_scope(berth::acquire_request const&) const`");
    static_assert(!is_policy || !detail::declares_reuse_hook<P> || policy_with_reuse<P>,
                  "berth::policy_with_reuse: the policy declares one of `find_reusable`, `matches`, `stamp`, but "
                  "not all three as `std::optional<berth::environment_lease> find_reusable(berth::acquire_request "
                  "const&, std::vector<berth::environment_lease> const&) const`, `bool matches(berth::acquire_request "
                  "const&, berth::environment_lease const&) const` and `void stamp(berth::acquire_request const&, "
                  "berth::lease_grant&) const`");

    static constexpr bool value = true;
};

/// Runs every check of driver_requirements<D>: `static_assert(berth::verified_driver<my_driver>);`
template <class D>
inline constexpr bool verified_driver = driver_requirements<D>::value;
/// Runs every check of policy_requirements<P>.
template <class P>
inline constexpr bool verified_policy = policy_requirements<P>::value;

/// A driver that driver_requirements accepts: a berth::environment_driver with no near-miss
/// capability.
template <class D>
concept conforming_driver =
    environment_driver<D> && (!detail::declares_resume<D> || driver_with_resume<D>) &&
    (!detail::declares_destroy<D> || driver_with_destroy<D>) &&
    (!detail::declares_realize_workspace<D> || driver_with_realize_workspace<D>) &&
    (!detail::declares_execute<D> || driver_with_execute<D>) && (!detail::declares_probe<D> || driver_with_probe<D>) &&
    (!detail::declares_execution_target<D> || driver_with_execution_target<D>) &&
    (!detail::declares_claims_name<D> || driver_with_name_claim<D>);

/// A policy that policy_requirements accepts: a berth::lease_policy with no near-miss hook.
template <class P>
concept conforming_policy = lease_policy<P> && (!detail::declares_reuse_scope<P> || policy_with_reuse_scope<P>) &&
                            (!detail::declares_reuse_hook<P> || policy_with_reuse<P>);

static_assert(conforming_driver<archetypes::driver> && verified_driver<archetypes::driver>);
static_assert(conforming_policy<archetypes::policy> && conforming_policy<archetypes::reusing_policy>);

}  // namespace berth
