#pragma once
//! @file
//! The environment driver concept and its optional capabilities.
//!
//! A driver places leases on environments of one *family* (upstream's stored `environments.driver`
//! value: local, ssh, sandbox, plugin) and names itself with a compile-time *name* ("local",
//! "bubblewrap", "e2b", ...). A stack may hold several drivers of one family; the environment's
//! config selects one of them (below). The driver performs the provider-side effects; the
//! orchestrator persists lease state through the store, and records which driver holds each lease.
//!
//! Required (berth::environment_driver<D>):
//!   - `using driver_concept = berth::driver_tag;`             opt-in tag
//!   - `static constexpr std::string_view name = "...";`        its name: non-empty, unique in a stack
//!   - `static constexpr berth::driver_kind family = ...;`      the environments it serves
//!   - `lease_grant acquire(acquire_request const&) const`      create/attach the provider side
//!   - `release_outcome release(environment const&, environment_lease const&, lease_status to) const`
//!                                                                let go of it; `to` is the status the lease moves to
//! Optional, each detected by a narrower concept (a member with the capability's name but another
//! signature is a compile error naming the requirement, never a silently missing capability:
//! berth::stack runs concepts/diagnostics.hpp's driver_requirements<D> on every driver):
//!   - resume            `lease_grant resume(environment const&, environment_lease const&) const`
//!   - destroy           `release_outcome destroy(environment const&, environment_lease const&) const`
//!   - realize_workspace `workspace_realization realize_workspace(realize_request const&) const`
//!   - execute           `command_result execute(environment const&, environment_lease const&, command const&) const`
//!   - probe             `probe_result probe(environment const&) const noexcept`  (never throws)
//!   - execution_target  `berth::execution_target execution_target(environment const&, environment_lease const&) const`
//!   - execution workspaces  `static constexpr bool manages_execution_workspaces = true;` and
//!                       `template <berth::workspace_store S, berth::clock C> W realize_execution_workspace(S&,
//!                        C const&, realize_workspace_request const&, workspace_record_context const&) const`
//!                        (W has `realized` and `record`): the driver creates and provisions the
//!                        run's execution workspace itself (the local driver's git worktrees), and
//!                        records it in the store; the orchestrator then does not run the provision
//!                        command. A stack with such a driver requires a berth::workspace_store.
//!   - claims_name       `static bool claims_name(std::string_view) noexcept`  answers for names
//!                        other than its own (a driver that serves many providers, e.g. plugin-backed)
//!
//! Selecting the driver of an environment (berth::stack::select_driver): the environment's family
//! (`env.driver`) narrows the stack's drivers to that family; then the config key of the family
//! (`provider` for sandbox, as upstream's sandbox config; `driver` for the others, a berth key)
//! names one of them. Without the key, a family with one driver in the stack needs none; with
//! several, the key is required. No match → environment_run_error{unsupported_environment} naming
//! the family and the name, before any lease is written.
//!
//! Semantics: every member is const and must be safe to call from many threads at once (the
//! orchestrator calls drivers concurrently for different runs). Errors are exceptions; the
//! orchestrator wraps them into environment_run_error with the matching code.
//!
//! Example: berth::local_driver (drivers/local.hpp); writing one: docs/drivers/writing-a-driver.md.

#include <berth/model/driver_io.hpp>

#include <concepts>     // std::same_as, std::derived_from
#include <cstddef>      // std::size_t
#include <string_view>  // std::string_view
#include <type_traits>  // std::integral_constant

namespace berth {

/// Tag a driver names as `driver_concept` to opt in.
struct driver_tag {};

namespace detail {
template <class D>
concept driver_opted_in = requires { typename D::driver_concept; } &&
                          std::derived_from<typename D::driver_concept, driver_tag>;
/// `D::name` is a compile-time string and `D::family` a compile-time driver_kind.
template <class D>
concept driver_names_itself = requires {
    { D::name } -> std::convertible_to<std::string_view>;
    { D::family } -> std::convertible_to<driver_kind>;
    typename std::integral_constant<std::size_t, std::string_view(D::name).size()>;
    typename std::integral_constant<driver_kind, D::family>;
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

/// A type named `D::name` that can hold leases on environments of family `D::family`.
template <class D>
concept environment_driver = detail::driver_opted_in<D> && detail::driver_names_itself<D> &&
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

/// A driver that realizes (and provisions) execution workspaces itself; see the file comment.
template <class D>
concept driver_with_execution_workspaces = environment_driver<D> && requires {
    { D::manages_execution_workspaces } -> std::convertible_to<bool>;
} && static_cast<bool>(D::manages_execution_workspaces);

/// A driver that answers for names other than its own within its family (one driver serving many
/// sandbox providers, say): the stack selects it for a config naming any name it claims.
template <class D>
concept driver_with_name_claim = environment_driver<D> && requires(std::string_view n) {
    { D::claims_name(n) } noexcept -> std::same_as<bool>;
};

namespace archetypes {
/// The smallest environment driver: the required members only. Start a custom driver from here.
struct driver {
    using driver_concept = driver_tag;
    static constexpr std::string_view name = "archetype";
    static constexpr driver_kind family = driver_kind::plugin;
    lease_grant acquire(acquire_request const&) const { return {}; }
    release_outcome release(environment const&, environment_lease const&, lease_status) const { return {}; }
};
}  // namespace archetypes

static_assert(environment_driver<archetypes::driver>);
static_assert(!driver_with_execute<archetypes::driver> && !driver_with_probe<archetypes::driver>,
              "the archetype must be minimal");

}  // namespace berth
