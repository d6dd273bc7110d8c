#pragma once
// Definitions of memory_store::tables' berth::project_workspace_store members (memory_store's are declared and
// documented in berth/stores/memory.hpp, and forward to these; included with impl/memory_store.hpp).

#include <berth/model/ids.hpp>                // new_id
#include <berth/stores/memory/impl/tables.hpp>  // memory_store::tables
#include <berth/model/project_workspace.hpp>  // project_workspace and its inputs

#include <algorithm>  // std::sort
#include <mutex>      // std::unique_lock
#include <utility>    // std::move

namespace berth {

BERTH_DECL std::optional<project_workspace> memory_store::tables::get_project_workspace(std::string_view id) const {
    std::shared_lock lock(mutex_);
    auto it = project_workspaces_.find(id);
    if (it == project_workspaces_.end()) return std::nullopt;
    return it->second.value;
}

BERTH_DECL std::vector<project_workspace> memory_store::tables::list_project_workspaces(
    std::string_view company_id, project_workspace_filter const& filter) const {
    std::shared_lock lock(mutex_);
    std::vector<project_workspace_row const*> rows;
    for (auto const& [id, row] : project_workspaces_) {
        if (row.value.company_id != company_id) continue;
        if (filter.project_id && row.value.project_id != *filter.project_id) continue;
        rows.push_back(&row);
    }
    std::sort(rows.begin(), rows.end(), [](project_workspace_row const* a, project_workspace_row const* b) {
        if (a->value.is_primary != b->value.is_primary) return a->value.is_primary;
        if (a->value.created_at != b->value.created_at) return a->value.created_at < b->value.created_at;
        return a->seq < b->seq;
    });
    return detail::memory::values_of(rows);
}

BERTH_DECL project_workspace memory_store::tables::create_project_workspace(new_project_workspace const& input, timestamp now) {
    auto w = make_project_workspace(input, new_id(), now);
    std::unique_lock lock(mutex_);
    auto const id = w.id;
    project_workspaces_.emplace(id, project_workspace_row{w, next_seq_++});
    return w;
}

BERTH_DECL std::optional<project_workspace> memory_store::tables::update_project_workspace(std::string_view id,
                                                                               project_workspace_patch const& patch,
                                                                               timestamp now) {
    std::unique_lock lock(mutex_);
    auto it = project_workspaces_.find(id);
    if (it == project_workspaces_.end()) return std::nullopt;
    auto updated = it->second.value;  // patched on a copy: the stored row changes only on success
    apply_patch(updated, patch, now);
    it->second.value = std::move(updated);
    return it->second.value;
}

}  // namespace berth
