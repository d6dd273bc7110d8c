#pragma once
//! @file
//! The lease store concept: durable, fenced environment leases.
//!
//! Required (berth::lease_store<S>), all safe to call from many threads and processes:
//!   - `std::optional<environment_lease> get_lease(std::string_view id)`
//!   - `std::vector<environment_lease> list_leases(std::string_view environment_id, lease_filter const&)`
//!        newest `last_used_at` first, then greatest `id`; at most `filter.limit` leases, starting
//!        just after `filter.after` in that order (keyset paging: model/paging.hpp); a page should
//!        cost its rows, not the environment's history
//!   - `std::vector<environment_lease> list_run_leases(std::string_view heartbeat_run_id, lease_filter const&)`
//!        in list_leases' order, paged the same way
//!   - `environment_lease acquire_lease(new_lease const&, timestamp now, std::optional<activity_event> event)`
//!        inserts an `active` lease (acquired_at = last_used_at = now, epoch 1) and, in the same
//!        transaction, `event` when engaged. The event is a sink: callers move it in, and a store
//!        that keeps it (the memory store) keeps that object instead of copying it. Refuses with `capacity_exceeded` when the environment's
//!        config `maxActiveLeases` (a positive integer) would be exceeded; `not_found` for an unknown
//!        environment; `conflict` for a duplicate id.
//!   - `environment_lease transition_lease(lease_transition const&, timestamp now, std::optional<activity_event> event)`
//!        compare-and-set: only when the stored epoch equals `expected_epoch` (else `stale_epoch`)
//!        and the table allows the move (else `illegal_transition`). Sets status, epoch + 1,
//!        last_used_at = updated_at = now; released_at = now except for `active`/`retained` (null);
//!        failure_reason/cleanup_status when given. `event` is written in the same transaction.
//!   - `std::optional<environment_lease> update_lease_metadata(std::string_view id,
//!        std::optional<json_object> metadata, timestamp now)`   replaces metadata, bumps last_used_at
//!   - `environment_lease renew_lease(std::string_view id, std::uint64_t expected_epoch,
//!        std::optional<timestamp> expires_at, timestamp now)`  an `active` lease only; epoch unchanged
//!   - `std::vector<environment_lease> release_leases_for_run(std::string_view heartbeat_run_id,
//!        lease_status to, timestamp now)`   every `active` lease of that run, and only those
//!   - `std::vector<environment_lease> list_expired_leases(timestamp now)`
//!        `active` leases whose expires_at <= now, oldest expiry first
//!
//! Every failure is a berth::store_error and leaves the store unchanged.

#include <berth/model/activity.hpp>
#include <berth/model/lease.hpp>

#include <concepts>     // std::same_as
#include <cstdint>      // std::uint64_t
#include <optional>     // std::optional
#include <string_view>  // std::string_view
#include <utility>      // std::move
#include <vector>       // std::vector

namespace berth {

template <class S>
concept lease_store = requires(S& s, std::string_view id, lease_filter const& f, new_lease const& nl,
                               lease_transition const& t, timestamp now, std::optional<activity_event> ev,
                               std::optional<json_object> md, std::uint64_t epoch, std::optional<timestamp> exp,
                               lease_status to) {
    { s.get_lease(id) } -> std::same_as<std::optional<environment_lease>>;
    { s.list_leases(id, f) } -> std::same_as<std::vector<environment_lease>>;
    { s.list_run_leases(id, f) } -> std::same_as<std::vector<environment_lease>>;
    { s.acquire_lease(nl, now, std::move(ev)) } -> std::same_as<environment_lease>;
    { s.transition_lease(t, now, std::move(ev)) } -> std::same_as<environment_lease>;
    { s.update_lease_metadata(id, md, now) } -> std::same_as<std::optional<environment_lease>>;
    { s.renew_lease(id, epoch, exp, now) } -> std::same_as<environment_lease>;
    { s.release_leases_for_run(id, to, now) } -> std::same_as<std::vector<environment_lease>>;
    { s.list_expired_leases(now) } -> std::same_as<std::vector<environment_lease>>;
};

namespace archetypes {
struct lease_store {
    std::optional<environment_lease> get_lease(std::string_view) { return {}; }
    std::vector<environment_lease> list_leases(std::string_view, lease_filter const&) { return {}; }
    std::vector<environment_lease> list_run_leases(std::string_view, lease_filter const&) { return {}; }
    environment_lease acquire_lease(new_lease const&, timestamp, std::optional<activity_event>) { return {}; }
    environment_lease transition_lease(lease_transition const&, timestamp, std::optional<activity_event>) {
        return {};
    }
    std::optional<environment_lease> update_lease_metadata(std::string_view, std::optional<json_object>, timestamp) {
        return {};
    }
    environment_lease renew_lease(std::string_view, std::uint64_t, std::optional<timestamp>, timestamp) { return {}; }
    std::vector<environment_lease> release_leases_for_run(std::string_view, lease_status, timestamp) { return {}; }
    std::vector<environment_lease> list_expired_leases(timestamp) { return {}; }
};
}  // namespace archetypes

static_assert(berth::lease_store<archetypes::lease_store>);

}  // namespace berth
