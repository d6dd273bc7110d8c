#pragma once
//! @file
//! The lease policy concept: how a lease is acquired (new, or reused), how long it lives, and how
//! it ends.
//!
//! Required (berth::lease_policy<P>):
//!   - `using lease_policy_concept = berth::lease_policy_tag;`     opt-in tag
//!   - `static constexpr std::string_view name = "...";`            its name: what an environment's
//!        config `leasePolicy` selects, unique in a stack, recorded on the lease (`policy_name`)
//!   - `static constexpr berth::lease_policy_kind kind`              upstream's value stored in `lease_policy`
//!   - `lease_status status_for(run_outcome) const noexcept`         the status a run's lease ends in
//!   - `std::optional<timestamp> expires_at(environment const&, timestamp now) const`
//!                                                                   the expiry given at acquire/renew
//!
//! Optional acquire-side hooks — reuse — each detected by a narrower concept:
//!
//!   - reuse scope (berth::policy_with_reuse_scope)
//!       `std::optional<std::string> reuse_scope(acquire_request const&) const`
//!     The opaque key of the scope the new lease holds (nullopt: none). The store keeps at most one
//!     active lease per (environment, key) and refuses a second with `conflict`
//!     (model/lease_rules.hpp); it knows nothing of what the key means. E.g. reuse_by_environment:
//!     `"environment"`; reuse_by_execution_workspace: `"execution_workspace:" + id` when the run has one.
//!
//!   - reuse (berth::policy_with_reuse): all three members
//!       `std::optional<environment_lease> find_reusable(acquire_request const&,
//!                                                       std::vector<environment_lease> const& leases) const`
//!           among the environment's leases (newest first), the one whose provider side the run
//!           may take over — typically a `released` or `retained` lease of the same scope whose
//!           driver kept the resource; nullopt: acquire a new one.
//!       `bool matches(acquire_request const&, environment_lease const& candidate) const`
//!           decide by fingerprint: whether the candidate was made under the configuration the
//!           run asks for now (config, provider, image, ...). A mismatch destroys it.
//!       `void stamp(acquire_request const&, lease_grant& grant) const`
//!           write what the next run's find_reusable / matches will read (a fingerprint, the scope)
//!           into the grant's metadata; called on every grant, new or resumed.
//!     Optionally `static constexpr berth::lease_status reuse_candidate_status`: the status every
//!     candidate is in (e.g. `retained`); the orchestrator then lists only those leases for
//!     find_reusable instead of the environment's history (up to a page of 500).
//!     The orchestrator runs them in this order at acquire (the driver calls need the driver's
//!     capabilities; without them there is nothing to reuse):
//!       1. leases = store.list_leases(env[, reuse_candidate_status]); found = find_reusable(request,
//!          leases) again and again, each found lease taken out of `leases`, until nullopt: every one
//!          that !matches(request, found) → driver.destroy(found) (reason `lease_fingerprint_mismatch`);
//!          the first that matches is the candidate (upstream destroys every mismatching one);
//!       2. no candidate → acquire new;
//!          else → driver.resume(env, candidate); if it throws or returns no provider lease id →
//!          driver.destroy(candidate) (reason `resume_failed`), acquire new.
//!       3. stamp(request, grant), then the lease is written: a `retained` candidate moves back to
//!          `active` (compare-and-set on its epoch) with the new grant's metadata; any other
//!          candidate (already ended) is succeeded by a new lease carrying the same provider lease id.
//!     A candidate that is still live when destroyed (retained, pending_cleanup) ends as upstream's
//!     destroyReusableSandboxLease ends it: `expired` with cleanup `success` when the driver's destroy
//!     succeeds, else `pending_cleanup` with cleanup `failed` (recover() retries it), with the reason above.
//!
//!   - lease-aware end status (berth::policy_with_lease_status)
//!       `lease_status status_for(run_outcome, environment_lease const&) const noexcept`
//!     The status a run's lease ends in when it depends on the lease, not only on the outcome:
//!     e.g. a reuse policy keeps a lease whose driver kept the resource for reuse `retained`
//!     (resumable, released_at null) and ends the others as upstream. The orchestrator prefers it
//!     to `status_for(run_outcome)`, which must still exist (and give the status for a lease the
//!     policy does not treat specially).
//!
//! Semantics: policies are stateless values, safe to call from many threads; `status_for` must
//! return a status reachable from `active` (berth::stack static_asserts it over every outcome for
//! policies whose status_for is constexpr).
//!
//! Shipped (policies/): berth::ephemeral, berth::retain_on_failure, and berth::reuse_by_environment
//! and berth::reuse_by_execution_workspace (component berth::sandbox), which model every hook above
//! over the sandbox driver's reuse records (drivers/sandbox/reuse.hpp).

#include <berth/model/driver_io.hpp>  // acquire_request, lease_grant
#include <berth/model/enums.hpp>
#include <berth/model/environment.hpp>
#include <berth/model/lease.hpp>
#include <berth/model/time.hpp>

#include <concepts>     // std::same_as
#include <cstddef>      // std::size_t
#include <optional>     // std::optional
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <type_traits>  // std::integral_constant
#include <vector>       // std::vector

namespace berth {

struct lease_policy_tag {};

namespace detail {
template <class P>
concept policy_opted_in = requires { typename P::lease_policy_concept; } &&
                          std::derived_from<typename P::lease_policy_concept, lease_policy_tag>;
/// `P::name` is a compile-time string and `P::kind` a compile-time lease_policy_kind.
template <class P>
concept policy_names_itself = requires {
    { P::name } -> std::convertible_to<std::string_view>;
    { P::kind } -> std::convertible_to<lease_policy_kind>;
    typename std::integral_constant<std::size_t, std::string_view(P::name).size()>;
    typename std::integral_constant<lease_policy_kind, P::kind>;
};
}  // namespace detail

template <class P>
concept lease_policy = detail::policy_opted_in<P> && detail::policy_names_itself<P> &&
                       requires(P const& p, run_outcome o, environment const& e, timestamp now) {
                           { p.status_for(o) } noexcept -> std::same_as<lease_status>;
                           { p.expires_at(e, now) } -> std::same_as<std::optional<timestamp>>;
                       };

/// A policy whose leases hold a reuse scope (see the file comment).
template <class P>
concept policy_with_reuse_scope = lease_policy<P> && requires(P const& p, acquire_request const& r) {
    { p.reuse_scope(r) } -> std::same_as<std::optional<std::string>>;
};

/// A policy that reuses the provider side of earlier leases (see the file comment).
template <class P>
concept policy_with_reuse = lease_policy<P> && requires(P const& p, acquire_request const& r,
                                                        std::vector<environment_lease> const& leases,
                                                        environment_lease const& candidate, lease_grant& grant) {
    { p.find_reusable(r, leases) } -> std::same_as<std::optional<environment_lease>>;
    { p.matches(r, candidate) } -> std::same_as<bool>;
    { p.stamp(r, grant) } -> std::same_as<void>;
};

/// A policy whose end status depends on the lease (see the file comment).
template <class P>
concept policy_with_lease_status = lease_policy<P> && requires(P const& p, run_outcome o, environment_lease const& l) {
    { p.status_for(o, l) } noexcept -> std::same_as<lease_status>;
};

namespace archetypes {
/// The smallest lease policy: the required members only.
struct policy {
    using lease_policy_concept = lease_policy_tag;
    static constexpr std::string_view name = "archetype";
    static constexpr lease_policy_kind kind = lease_policy_kind::ephemeral;
    lease_status status_for(run_outcome) const noexcept { return lease_status::released; }
    std::optional<timestamp> expires_at(environment const&, timestamp) const { return std::nullopt; }
};

/// The smallest reusing policy: the archetype plus both optional hook sets. Start a reuse policy
/// (reuse_by_environment, reuse_by_execution_workspace) from here.
struct reusing_policy : policy {
    static constexpr std::string_view name = "archetype-reuse";
    static constexpr lease_policy_kind kind = lease_policy_kind::reuse_by_environment;
    std::optional<std::string> reuse_scope(acquire_request const&) const { return std::nullopt; }
    std::optional<environment_lease> find_reusable(acquire_request const&,
                                                   std::vector<environment_lease> const&) const {
        return std::nullopt;
    }
    bool matches(acquire_request const&, environment_lease const&) const { return false; }
    void stamp(acquire_request const&, lease_grant&) const {}
};
}  // namespace archetypes

static_assert(lease_policy<archetypes::policy>);
static_assert(!policy_with_reuse_scope<archetypes::policy> && !policy_with_reuse<archetypes::policy>,
              "the archetype must be minimal");
static_assert(policy_with_reuse_scope<archetypes::reusing_policy> && policy_with_reuse<archetypes::reusing_policy>);

}  // namespace berth
