#pragma once
//! @file
//! The lease policy concept: how a lease is acquired, how long it lives, and how it ends.
//!
//! Required (berth::lease_policy<P>):
//!   - `using lease_policy_concept = berth::lease_policy_tag;`     opt-in tag
//!   - `static constexpr berth::lease_policy_kind kind`              the value stored in `lease_policy`
//!   - `lease_status status_for(run_outcome) const noexcept`         the status a run's lease ends in
//!   - `std::optional<timestamp> expires_at(environment const&, timestamp now) const`
//!                                                                   the expiry given at acquire/renew
//!
//! Optional (berth::policy_with_reuse_scope<P>):
//!   - `std::optional<std::string> reuse_scope(acquire_request const&) const`
//!        the opaque key of the scope a new lease holds (nullopt: none). The store keeps at most
//!        one active lease per (environment, key) and refuses a second with `conflict`
//!        (model/lease_rules.hpp); it knows nothing of what the key means.
//!
//! Semantics: policies are stateless values; `status_for` must return a status reachable from
//! `active` (berth::stack static_asserts it over every outcome for policies whose status_for is constexpr).
//!
//! Shipped: berth::ephemeral, berth::retain_on_failure; berth::reuse_by_environment and
//! berth::reuse_by_execution_workspace with reuse scopes (policies/).

#include <berth/model/driver_io.hpp>  // acquire_request (the reuse scope hook)
#include <berth/model/enums.hpp>
#include <berth/model/environment.hpp>
#include <berth/model/time.hpp>

#include <concepts>  // std::same_as
#include <optional>  // std::optional
#include <string>    // std::string

namespace berth {

struct lease_policy_tag {};

namespace detail {
template <class P>
concept policy_opted_in = requires { typename P::lease_policy_concept; } &&
                          std::derived_from<typename P::lease_policy_concept, lease_policy_tag>;
template <class P>
concept policy_names_kind = requires {
    { P::kind } -> std::convertible_to<lease_policy_kind>;
};
}  // namespace detail

template <class P>
concept lease_policy = detail::policy_opted_in<P> && detail::policy_names_kind<P> &&
                       requires(P const& p, run_outcome o, environment const& e, timestamp now) {
                           { p.status_for(o) } noexcept -> std::same_as<lease_status>;
                           { p.expires_at(e, now) } -> std::same_as<std::optional<timestamp>>;
                       };

/// A policy whose leases hold a reuse scope (see the file comment).
template <class P>
concept policy_with_reuse_scope = lease_policy<P> && requires(P const& p, acquire_request const& r) {
    { p.reuse_scope(r) } -> std::same_as<std::optional<std::string>>;
};

namespace archetypes {
struct policy {
    using lease_policy_concept = lease_policy_tag;
    static constexpr lease_policy_kind kind = lease_policy_kind::ephemeral;
    lease_status status_for(run_outcome) const noexcept { return lease_status::released; }
    std::optional<timestamp> expires_at(environment const&, timestamp) const { return std::nullopt; }
};
}  // namespace archetypes

static_assert(lease_policy<archetypes::policy>);
static_assert(!policy_with_reuse_scope<archetypes::policy>, "the archetype must be minimal");

}  // namespace berth
