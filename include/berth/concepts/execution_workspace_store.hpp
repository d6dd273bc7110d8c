#pragma once
//! @file
//! The execution workspace store concept: durable execution workspace records (upstream
//! executionWorkspaceService over the `execution_workspaces` table).
//!
//! Required (berth::execution_workspace_store<S>), all safe to call from many threads:
//!   - `std::optional<execution_workspace> get_execution_workspace(std::string_view id)`
//!   - `std::vector<execution_workspace> list_execution_workspaces(std::string_view company_id,
//!        execution_workspace_filter const&)`   that company's records matching every engaged
//!        filter member, newest `last_used_at` first (null last), then newest `created_at`
//!   - `execution_workspace create_execution_workspace(new_execution_workspace const&, timestamp now)`
//!        new id; opened_at = last_used_at = created_at = updated_at = now;
//!        `store_errc::invalid_argument` for an empty company id, project id or name (naming it)
//!   - `std::optional<execution_workspace> update_execution_workspace(std::string_view id,
//!        execution_workspace_patch const&, timestamp now)`   patch semantics (an engaged nullopt
//!        sets a nullable column to null); updated_at = now; nullopt for an unknown id;
//!        `invalid_argument` for an empty name
//!
//! Every failure is a berth::store_error and leaves the store unchanged.
//! Shipped: memory_store, sqlite_store. Contract tests: berth/testing/store_conformance.hpp.

#include <berth/model/workspace.hpp>

#include <concepts>     // std::same_as
#include <optional>     // std::optional
#include <string_view>  // std::string_view
#include <vector>       // std::vector

namespace berth {

template <class S>
concept execution_workspace_store =
    requires(S& s, std::string_view id, execution_workspace_filter const& f, new_execution_workspace const& n,
             execution_workspace_patch const& p, timestamp now) {
        { s.get_execution_workspace(id) } -> std::same_as<std::optional<execution_workspace>>;
        { s.list_execution_workspaces(id, f) } -> std::same_as<std::vector<execution_workspace>>;
        { s.create_execution_workspace(n, now) } -> std::same_as<execution_workspace>;
        { s.update_execution_workspace(id, p, now) } -> std::same_as<std::optional<execution_workspace>>;
    };

namespace archetypes {
struct execution_workspace_store {
    std::optional<execution_workspace> get_execution_workspace(std::string_view) { return {}; }
    std::vector<execution_workspace> list_execution_workspaces(std::string_view, execution_workspace_filter const&) {
        return {};
    }
    execution_workspace create_execution_workspace(new_execution_workspace const&, timestamp) { return {}; }
    std::optional<execution_workspace> update_execution_workspace(std::string_view, execution_workspace_patch const&,
                                                                  timestamp) {
        return {};
    }
};
}  // namespace archetypes

static_assert(berth::execution_workspace_store<archetypes::execution_workspace_store>);

}  // namespace berth
