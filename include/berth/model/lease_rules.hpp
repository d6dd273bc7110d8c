#pragma once
//! @file
//! berth::lease_rules — the lease store's rules, written once for every store (memory, SQLite,
//! PostgreSQL, yours): validation of a new lease, the company check, capacity (`maxActiveLeases`),
//! one active lease per reuse scope, the status transition table and the epoch fence, the
//! `released_at` rule, and the messages of every refusal.
//!
//! The functions are pure: they take the records and the facts a store has read (an environment's
//! config, a count of active leases, the id of a scope's holder) and either return what to store or
//! throw the store_error to report. A store decides *how* it reads those facts (an index, a SQL
//! query inside its write transaction); it never words a refusal itself, so every store refuses
//! the same input with the same code and the same message (the conformance kit compares them).

#include <berth/error.hpp>                    // store_error, store_errc
#include <berth/model/enum_string.hpp>        // to_string (statuses in messages)
#include <berth/model/environment.hpp>        // environment (config, name)
#include <berth/model/lease.hpp>              // environment_lease, new_lease, lease_transition
#include <berth/model/lease_transitions.hpp>  // can_transition

#include <boost/json/serialize.hpp>  // serialize (a malformed maxActiveLeases in messages)

#include <cstdint>      // std::int64_t, std::uint64_t
#include <limits>       // std::numeric_limits
#include <optional>     // std::optional
#include <string>       // std::string, std::to_string
#include <string_view>  // std::string_view

namespace berth::lease_rules {

[[nodiscard]] inline std::string dquoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

// ---- refusals that only name an id ------------------------------------------------------------

[[nodiscard]] inline store_error lease_not_found(std::string_view id) {
    return store_error(store_errc::not_found, "Lease " + dquoted(id) + " not found.");
}
[[nodiscard]] inline store_error environment_not_found(std::string_view id) {
    return store_error(store_errc::not_found, "Environment " + dquoted(id) + " not found.");
}
[[nodiscard]] inline store_error lease_exists(std::string_view id) {
    return store_error(store_errc::conflict, "Lease " + dquoted(id) + " already exists.");
}

// ---- acquire -----------------------------------------------------------------------------------

/// @throws store_error invalid_argument naming the first empty required field.
inline void validate(new_lease const& input) {
    if (input.id.empty()) throw store_error(store_errc::invalid_argument, "A lease needs an id (id is empty).");
    if (input.company_id.empty())
        throw store_error(store_errc::invalid_argument, "A lease needs a company id (company_id is empty).");
    if (input.environment_id.empty())
        throw store_error(store_errc::invalid_argument, "A lease needs an environment id (environment_id is empty).");
    if (input.reuse_scope && input.reuse_scope->empty())
        throw store_error(store_errc::invalid_argument,
                          "Lease " + dquoted(input.id) + " has an empty reuse_scope; leave it null for no scope.");
}

/// The lease acquire_lease stores: `active`, epoch 1, acquired_at = last_used_at = created_at =
/// updated_at = now, the reuse scope as given.
[[nodiscard]] inline environment_lease make_lease(new_lease const& input, timestamp now) {
    return environment_lease{.id = input.id,
                             .company_id = input.company_id,
                             .environment_id = input.environment_id,
                             .execution_workspace_id = input.execution_workspace_id,
                             .issue_id = input.issue_id,
                             .heartbeat_run_id = input.heartbeat_run_id,
                             .status = lease_status::active,
                             .lease_policy = input.lease_policy,
                             .provider = input.provider,
                             .provider_lease_id = input.provider_lease_id,
                             .acquired_at = now,
                             .last_used_at = now,
                             .expires_at = input.expires_at,
                             .released_at = std::nullopt,
                             .failure_reason = std::nullopt,
                             .cleanup_status = std::nullopt,
                             .metadata = input.metadata,
                             .epoch = 1,
                             .created_at = now,
                             .updated_at = now,
                             .reuse_scope = input.reuse_scope,
                             .driver_name = input.driver_name,
                             .policy_name = input.policy_name,
                             .holder_host = input.holder_host,
                             .holder_pid = input.holder_pid,
                             .holder_start_time = input.holder_start_time};
}

/// A lease for another company than its environment's: invalid_argument naming both companies.
[[nodiscard]] inline store_error company_mismatch(new_lease const& input, std::string_view environment_company_id) {
    return store_error(store_errc::invalid_argument,
                       "Lease " + dquoted(input.id) + " is for company " + dquoted(input.company_id) +
                           " but environment " + dquoted(input.environment_id) + " belongs to company " +
                           dquoted(environment_company_id) + ".");
}

/// A lease belongs to its environment's company.
/// @throws store_error invalid_argument naming both companies.
inline void check_company(new_lease const& input, std::string_view environment_company_id) {
    if (input.company_id != environment_company_id) throw company_mismatch(input, environment_company_id);
}

// ---- capacity ----------------------------------------------------------------------------------

/// The environment's config `maxActiveLeases` (absent or null: no limit).
/// @throws store_error invalid_argument, naming the environment and the value, for anything but a
///         positive integer.
[[nodiscard]] inline std::optional<std::int64_t> max_active_leases(json_object const& config,
                                                                  std::string_view environment_name,
                                                                  std::string_view environment_id) {
    auto const* v = config.if_contains("maxActiveLeases");
    if (!v || v->is_null()) return std::nullopt;
    std::optional<std::int64_t> n;
    if (v->is_int64()) n = v->get_int64();
    else if (v->is_uint64() && v->get_uint64() <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
        n = static_cast<std::int64_t>(v->get_uint64());
    if (!n || *n < 1)
        throw store_error(store_errc::invalid_argument,
                          "Environment " + dquoted(environment_name) + " (" + std::string(environment_id) +
                              ") has config maxActiveLeases = " + boost::json::serialize(*v) +
                              "; it must be a positive integer.");
    return n;
}

[[nodiscard]] inline std::optional<std::int64_t> max_active_leases(environment const& env) {
    return max_active_leases(env.config, env.name, env.id);
}

/// The refusal of one more active lease on an environment that has `active` of its `limit`.
[[nodiscard]] inline store_error capacity_exceeded(std::string_view environment_name, std::string_view environment_id,
                                                   std::int64_t limit, std::int64_t active) {
    return store_error(store_errc::capacity_exceeded,
                       "Environment " + dquoted(environment_name) + " (" + std::string(environment_id) +
                           ") already has " + std::to_string(active) + " active lease" + (active == 1 ? "" : "s") +
                           ", its limit (maxActiveLeases = " + std::to_string(limit) + ").");
}

/// Refuses one more active lease when `active` already reaches `limit` (nullopt: no limit).
/// @throws store_error capacity_exceeded naming the environment, the count and the limit.
inline void check_capacity(std::string_view environment_name, std::string_view environment_id,
                           std::optional<std::int64_t> limit, std::int64_t active) {
    if (!limit || active < *limit) return;
    throw capacity_exceeded(environment_name, environment_id, *limit, active);
}

// ---- reuse scopes ------------------------------------------------------------------------------
//
// A lease may carry an opaque `reuse_scope` key, chosen by its lease policy (berth::lease_policy's
// reuse hooks): within one environment, at most one `active` lease holds a given key. A lease
// without a key has no scope (capacity bounds it). Stores compare keys as strings and know
// nothing of what they mean.

/// The refusal of a lease in reuse scope `scope` of environment `environment_id`, which the active
/// lease `holder` holds: conflict naming the environment, the scope and that lease.
[[nodiscard]] inline store_error reuse_scope_taken(std::string_view environment_id, std::string_view scope,
                                                   std::string_view holder) {
    return store_error(store_errc::conflict, "Environment " + dquoted(environment_id) +
                                                 " already has an active lease in reuse scope " + dquoted(scope) +
                                                 " (" + std::string(holder) + ").");
}

/// Refuses a lease whose scope `scope` (in environment `environment_id`) is held by the active
/// lease `holder` (nullopt: the scope is free).
/// @throws store_error conflict naming the environment, the scope and the holder.
inline void check_reuse_scope(std::string_view environment_id, std::optional<std::string> const& scope,
                              std::optional<std::string_view> holder) {
    if (!scope || !holder) return;
    throw reuse_scope_taken(environment_id, *scope, *holder);
}

// ---- transitions -------------------------------------------------------------------------------

/// released_at after a move to `to`: null while the lease holds (or may again hold) its resource.
[[nodiscard]] constexpr std::optional<timestamp> released_at_for(lease_status to, timestamp now) noexcept {
    if (to == lease_status::active || to == lease_status::retained) return std::nullopt;
    return now;
}

/// The fence of transition_lease and renew_lease: the stored epoch must be the caller's.
/// @throws store_error stale_epoch naming the lease, both epochs and the stored status.
inline void check_epoch(std::string_view id, lease_status stored_status, std::uint64_t stored_epoch,
                        std::uint64_t expected_epoch) {
    if (stored_epoch == expected_epoch) return;
    throw store_error(store_errc::stale_epoch,
                      "Lease " + dquoted(id) + " is at epoch " + std::to_string(stored_epoch) + " (status " +
                          to_string(stored_status) + "), not the caller's epoch " + std::to_string(expected_epoch) +
                          ": another holder moved it. Nothing was changed.");
}

/// The refusal of a check_* above as a value, for a store that reports it rather than throws it
/// (e.g. after a compare-and-set matched no row); nullopt when the check passes.
template <class Check>
[[nodiscard]] std::optional<store_error> refusal_of(Check&& check) {
    try {
        check();
    } catch (store_error const& e) {
        return e;
    }
    return std::nullopt;
}

/// The whole check of transition_lease: the epoch fence, then the status table.
/// @throws store_error stale_epoch or illegal_transition.
inline void check_transition(std::string_view id, lease_status stored_status, std::uint64_t stored_epoch,
                             std::uint64_t expected_epoch, lease_status to) {
    check_epoch(id, stored_status, stored_epoch, expected_epoch);
    if (!can_transition(stored_status, to))
        throw store_error(store_errc::illegal_transition, "Lease " + dquoted(id) + " cannot move from " +
                                                              to_string(stored_status) + " to " + to_string(to) + ".");
}

/// The whole check of renew_lease: the epoch fence, then `active` only.
/// @throws store_error stale_epoch or illegal_transition.
inline void check_renewal(std::string_view id, lease_status stored_status, std::uint64_t stored_epoch,
                          std::uint64_t expected_epoch) {
    check_epoch(id, stored_status, stored_epoch, expected_epoch);
    if (stored_status != lease_status::active)
        throw store_error(store_errc::illegal_transition, "Lease " + dquoted(id) + " is " + to_string(stored_status) +
                                                              "; only an active lease can be renewed.");
}

/// release_leases_for_run moves active leases only to a status the table allows from `active`.
/// @throws store_error illegal_transition.
inline void check_release_target(lease_status to) {
    if (!can_transition(lease_status::active, to))
        throw store_error(store_errc::illegal_transition,
                          std::string("Leases cannot move from active to ") + to_string(to) + ".");
}

/// The lease after a checked transition: status, epoch + 1, last_used_at = updated_at = now,
/// released_at by released_at_for, failure_reason / cleanup_status replaced only when given.
inline void apply_transition(environment_lease& lease, lease_transition const& t, timestamp now) {
    lease.status = t.to;
    lease.epoch += 1;
    lease.last_used_at = now;
    lease.updated_at = now;
    lease.released_at = released_at_for(t.to, now);
    if (t.failure_reason) lease.failure_reason = t.failure_reason;
    if (t.cleanup_status) lease.cleanup_status = t.cleanup_status;
}

/// Whether a move to `to` makes the lease count against capacity and hold its reuse scope again
/// (a retained lease resumed): the store must then check both as for a new lease.
[[nodiscard]] constexpr bool reactivates(lease_status from, lease_status to) noexcept {
    return to == lease_status::active && from != lease_status::active;
}

}  // namespace berth::lease_rules
