#pragma once
//! @file
//! The project workspace store concept: durable project workspace records (upstream's
//! `project_workspaces` table). The runtime services need it (restart_desired_on_startup reads the
//! rows, supervisor::control writes a project workspace's desired states); it is not part of
//! berth::persistence_backend, which the orchestrator needs.
//!
//! Required (berth::project_workspace_store<S>), all safe to call from many threads:
//!   - `std::optional<project_workspace> get_project_workspace(std::string_view id)`
//!   - `std::vector<project_workspace> list_project_workspaces(std::string_view company_id,
//!        project_workspace_filter const&)`   that company's records matching every engaged filter
//!        member, primary ones first, then oldest `created_at`, then first inserted
//!   - `project_workspace create_project_workspace(new_project_workspace const&, timestamp now)`
//!        new id; created_at = updated_at = now; `store_errc::invalid_argument` for an empty
//!        company id, project id, name, source type or visibility (naming it)
//!   - `std::optional<project_workspace> update_project_workspace(std::string_view id,
//!        project_workspace_patch const&, timestamp now)`   patch semantics (an engaged nullopt sets
//!        a nullable column to null); updated_at = now; nullopt for an unknown id;
//!        `invalid_argument` for an empty name
//!
//! Every failure is a berth::store_error and leaves the store unchanged.
//! Shipped: memory_store, sqlite_store, postgres_store.

#include <berth/model/project_workspace.hpp>

#include <concepts>     // std::same_as
#include <optional>     // std::optional
#include <string_view>  // std::string_view
#include <vector>       // std::vector

namespace berth {

template <class S>
concept project_workspace_store =
    requires(S& s, std::string_view id, project_workspace_filter const& f, new_project_workspace const& n,
             project_workspace_patch const& p, timestamp now) {
        { s.get_project_workspace(id) } -> std::same_as<std::optional<project_workspace>>;
        { s.list_project_workspaces(id, f) } -> std::same_as<std::vector<project_workspace>>;
        { s.create_project_workspace(n, now) } -> std::same_as<project_workspace>;
        { s.update_project_workspace(id, p, now) } -> std::same_as<std::optional<project_workspace>>;
    };

namespace archetypes {
struct project_workspace_store {
    std::optional<project_workspace> get_project_workspace(std::string_view) { return {}; }
    std::vector<project_workspace> list_project_workspaces(std::string_view, project_workspace_filter const&) {
        return {};
    }
    project_workspace create_project_workspace(new_project_workspace const&, timestamp) { return {}; }
    std::optional<project_workspace> update_project_workspace(std::string_view, project_workspace_patch const&,
                                                              timestamp) {
        return {};
    }
};
}  // namespace archetypes

static_assert(berth::project_workspace_store<archetypes::project_workspace_store>);

}  // namespace berth
