#pragma once
//! @file
//! The operation store concept: the record of every git and workspace command berth ran for a
//! workspace (upstream `workspace_operations`, written through a WorkspaceOperationRecorder; ours
//! is berth::operation_recorder, workspace/operation_recorder.hpp).
//!
//! Required (berth::operation_store<S>), all safe to call from many threads:
//!   - `workspace_operation begin_operation(new_workspace_operation const&, timestamp now)`
//!        inserts a `running` operation with a new id; started_at = created_at = updated_at = now;
//!        `store_errc::invalid_argument` for an empty company id
//!   - `std::optional<workspace_operation> update_operation(std::string_view id,
//!        workspace_operation_patch const&, timestamp now)`   patch semantics; updated_at = now;
//!        nullopt for an unknown id
//!   - `std::optional<workspace_operation> get_operation(std::string_view id)`
//!   - `std::vector<workspace_operation> list_operations(workspace_operation_filter const&)`
//!        matching every engaged member, oldest `started_at` first, then oldest inserted
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
concept operation_store = requires(S& s, std::string_view id, new_workspace_operation const& n,
                                   workspace_operation_patch const& p, workspace_operation_filter const& f,
                                   timestamp now) {
    { s.begin_operation(n, now) } -> std::same_as<workspace_operation>;
    { s.update_operation(id, p, now) } -> std::same_as<std::optional<workspace_operation>>;
    { s.get_operation(id) } -> std::same_as<std::optional<workspace_operation>>;
    { s.list_operations(f) } -> std::same_as<std::vector<workspace_operation>>;
};

namespace archetypes {
struct operation_store {
    workspace_operation begin_operation(new_workspace_operation const&, timestamp) { return {}; }
    std::optional<workspace_operation> update_operation(std::string_view, workspace_operation_patch const&, timestamp) {
        return {};
    }
    std::optional<workspace_operation> get_operation(std::string_view) { return {}; }
    std::vector<workspace_operation> list_operations(workspace_operation_filter const&) { return {}; }
};
}  // namespace archetypes

static_assert(berth::operation_store<archetypes::operation_store>);

}  // namespace berth
