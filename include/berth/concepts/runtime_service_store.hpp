#pragma once
//! @file
//! The runtime service store concept: durable `workspace_runtime_services` rows (upstream's
//! persistRuntimeServiceRecord / markPersisted...Stopped / the startup reconcile's queries).
//!
//! Required (berth::runtime_service_store<S>), all safe to call from many threads:
//!   - `std::optional<workspace_runtime_service> get_runtime_service(std::string_view id)`
//!   - `workspace_runtime_service upsert_runtime_service(workspace_runtime_service const&, timestamp now)`
//!        inserts the row (created_at = updated_at = now) or, when a row with that id exists,
//!        replaces every column but `company_id` and `created_at` (kept) and sets updated_at = now
//!        (upstream's `onConflictDoUpdate` on the id). Returns the stored row.
//!        `invalid_argument` for an empty id, company id or service name; `conflict` when the
//!        existing row belongs to another company.
//!   - `std::vector<workspace_runtime_service> list_runtime_services(runtime_service_filter const&)`
//!        the rows matching every engaged filter member, newest `updated_at` first, then newest
//!        `created_at`, then most recently inserted
//!   - `std::vector<std::string> stop_runtime_services(runtime_service_filter const&, timestamp now)`
//!        every matching row whose status is live (berth::is_live_status) — and only those — moves
//!        to `stopped` with health `unknown` and stopped_at = last_used_at = updated_at = now, in
//!        one transaction; returns their ids (any order)
//!
//! Every failure is a berth::store_error and leaves the store unchanged.
//! Shipped: memory_store, sqlite_store. Contract tests: berth/testing/store_conformance.hpp.

#include <berth/model/runtime_service.hpp>

#include <concepts>     // std::same_as
#include <optional>     // std::optional
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <vector>       // std::vector

namespace berth {

template <class S>
concept runtime_service_store = requires(S& s, std::string_view id, workspace_runtime_service const& row,
                                         runtime_service_filter const& f, timestamp now) {
    { s.get_runtime_service(id) } -> std::same_as<std::optional<workspace_runtime_service>>;
    { s.upsert_runtime_service(row, now) } -> std::same_as<workspace_runtime_service>;
    { s.list_runtime_services(f) } -> std::same_as<std::vector<workspace_runtime_service>>;
    { s.stop_runtime_services(f, now) } -> std::same_as<std::vector<std::string>>;
};

namespace archetypes {
struct runtime_service_store {
    std::optional<workspace_runtime_service> get_runtime_service(std::string_view) { return {}; }
    workspace_runtime_service upsert_runtime_service(workspace_runtime_service const&, timestamp) { return {}; }
    std::vector<workspace_runtime_service> list_runtime_services(runtime_service_filter const&) { return {}; }
    std::vector<std::string> stop_runtime_services(runtime_service_filter const&, timestamp) { return {}; }
};
}  // namespace archetypes

static_assert(berth::runtime_service_store<archetypes::runtime_service_store>);

}  // namespace berth
