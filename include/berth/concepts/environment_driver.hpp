#pragma once
//! @file
//! The environment driver concept and its optional capabilities.
//!
//! A driver places leases on one kind of environment (local machine, SSH host, sandbox, plugin).
//! It performs the provider-side effects; the orchestrator persists lease state through the store.
//!
//! Required (berth::environment_driver<D>):
//!   - `using driver_concept = berth::driver_tag;`          opt-in tag
//!   - `static constexpr berth::driver_kind kind`            the environments it serves
//!   - `lease_grant acquire(acquire_request const&) const`   create/attach the provider side
//!   - `release_outcome release(environment const&, environment_lease const&, lease_status to) const`
//!                                                             let go of it; `to` is the status the lease moves to
//! Optional, each detected by a narrower concept:
//!   - resume            `lease_grant resume(environment const&, environment_lease const&) const`
//!   - destroy           `release_outcome destroy(environment const&, environment_lease const&) const`
//!   - realize_workspace `workspace_realization realize_workspace(realize_request const&) const`
//!   - execute           `command_result execute(environment const&, environment_lease const&, command const&) const`
//!   - probe             `probe_result probe(environment const&) const noexcept`  (never throws)
//!   - execution_target  `berth::execution_target execution_target(environment const&, environment_lease const&) const`
//!
//! Semantics: every member is const and must be safe to call from many threads at once (the
//! orchestrator calls drivers concurrently for different runs). Errors are exceptions; the
//! orchestrator wraps them into environment_run_error with the matching code.
//!
//! Example: berth::local_driver (drivers/local.hpp); writing one: docs/concepts.md.

#include <berth/model/driver_io.hpp>

#include <concepts>  // std::same_as, std::derived_from

namespace berth {

/// Tag a driver names as `driver_concept` to opt in.
struct driver_tag {};

namespace detail {
template <class D>
concept driver_opted_in = requires { typename D::driver_concept; } &&
                          std::derived_from<typename D::driver_concept, driver_tag>;
template <class D>
concept driver_names_kind = requires {
    { D::kind } -> std::convertible_to<driver_kind>;
};
template <class D>
concept driver_acquires = requires(D const& d, acquire_request const& r) {
    { d.acquire(r) } -> std::same_as<lease_grant>;
};
template <class D>
concept driver_releases = requires(D const& d, environment const& e, environment_lease const& l, lease_status s) {
    { d.release(e, l, s) } -> std::same_as<release_outcome>;
};
}  // namespace detail

/// A type that can hold leases on environments of kind `D::kind`.
template <class D>
concept environment_driver = detail::driver_opted_in<D> && detail::driver_names_kind<D> &&
                             detail::driver_acquires<D> && detail::driver_releases<D>;

template <class D>
concept driver_with_resume = environment_driver<D> && requires(D const& d, environment const& e,
                                                               environment_lease const& l) {
    { d.resume(e, l) } -> std::same_as<lease_grant>;
};

template <class D>
concept driver_with_destroy = environment_driver<D> && requires(D const& d, environment const& e,
                                                                environment_lease const& l) {
    { d.destroy(e, l) } -> std::same_as<release_outcome>;
};

template <class D>
concept driver_with_realize_workspace = environment_driver<D> && requires(D const& d, realize_request const& r) {
    { d.realize_workspace(r) } -> std::same_as<workspace_realization>;
};

template <class D>
concept driver_with_execute = environment_driver<D> && requires(D const& d, environment const& e,
                                                                environment_lease const& l, command const& c) {
    { d.execute(e, l, c) } -> std::same_as<command_result>;
};

template <class D>
concept driver_with_probe = environment_driver<D> && requires(D const& d, environment const& e) {
    { d.probe(e) } noexcept -> std::same_as<probe_result>;
};

template <class D>
concept driver_with_execution_target = environment_driver<D> && requires(D const& d, environment const& e,
                                                                         environment_lease const& l) {
    { d.execution_target(e, l) } -> std::same_as<berth::execution_target>;
};

namespace archetypes {
/// The smallest environment driver: the required members only. Start a custom driver from here.
struct driver {
    using driver_concept = driver_tag;
    static constexpr driver_kind kind = driver_kind::plugin;
    lease_grant acquire(acquire_request const&) const { return {}; }
    release_outcome release(environment const&, environment_lease const&, lease_status) const { return {}; }
};
}  // namespace archetypes

static_assert(environment_driver<archetypes::driver>);
static_assert(!driver_with_execute<archetypes::driver> && !driver_with_probe<archetypes::driver>,
              "the archetype must be minimal");

}  // namespace berth
