#pragma once
// Definitions of memory_store::tables' berth::runtime_service_store members (memory_store's are declared and
// documented in berth/stores/memory.hpp, and forward to these; included with impl/memory_store.hpp).

#include <berth/error.hpp>                  // store_error, store_errc
#include <berth/stores/memory/impl/tables.hpp>  // memory_store::tables
#include <berth/model/runtime_service.hpp>  // workspace_runtime_service, runtime_service_filter, is_live_status

#include <algorithm>  // std::sort, std::find
#include <mutex>      // std::unique_lock
#include <string>     // std::string
#include <utility>    // std::move

namespace berth::detail::memory {

[[nodiscard]] BERTH_DECL bool matches(workspace_runtime_service const& r, runtime_service_filter const& f) {
    if (f.company_id && r.company_id != *f.company_id) return false;
    if (f.provider && r.provider != *f.provider) return false;
    if (!f.statuses.empty() && std::find(f.statuses.begin(), f.statuses.end(), r.status) == f.statuses.end())
        return false;
    if (f.execution_workspace_id && r.execution_workspace_id != f.execution_workspace_id) return false;
    if (f.project_workspace_id && r.project_workspace_id != f.project_workspace_id) return false;
    if (f.scope_type && r.scope_type != *f.scope_type) return false;
    if (!f.ids.empty() && std::find(f.ids.begin(), f.ids.end(), r.id) == f.ids.end()) return false;
    return true;
}

BERTH_DECL void validate_service_row(workspace_runtime_service const& row) {
    if (row.id.empty()) throw store_error(store_errc::invalid_argument, "A runtime service needs an id.");
    if (row.company_id.empty())
        throw store_error(store_errc::invalid_argument, "Runtime service \"" + row.id + "\" needs a company id.");
    if (row.service_name.empty())
        throw store_error(store_errc::invalid_argument, "Runtime service \"" + row.id + "\" needs a service name.");
}

}  // namespace berth::detail::memory

namespace berth {

BERTH_DECL std::optional<workspace_runtime_service> memory_store::tables::get_runtime_service(std::string_view id) const {
    std::shared_lock lock(mutex_);
    auto it = services_.find(id);
    if (it == services_.end()) return std::nullopt;
    return it->second.value;
}

BERTH_DECL workspace_runtime_service memory_store::tables::upsert_runtime_service(workspace_runtime_service const& row,
                                                                      timestamp now) {
    detail::memory::validate_service_row(row);
    workspace_runtime_service stored = row;
    stored.updated_at = now;
    std::unique_lock lock(mutex_);
    auto it = services_.find(row.id);
    if (it != services_.end()) {
        if (it->second.value.company_id != row.company_id)
            throw store_error(store_errc::conflict, "Runtime service \"" + row.id + "\" belongs to company \"" +
                                                        it->second.value.company_id + "\", not \"" + row.company_id +
                                                        "\".");
        stored.created_at = it->second.value.created_at;
        it->second.value = stored;  // copy-assign of a built value: may throw only before it changes anything
        return stored;
    }
    stored.created_at = now;
    services_.emplace(stored.id, service_row{stored, next_seq_++});
    return stored;
}

BERTH_DECL std::vector<workspace_runtime_service> memory_store::tables::list_runtime_services(
    runtime_service_filter const& filter) const {
    std::shared_lock lock(mutex_);
    std::vector<service_row const*> rows;
    for (auto const& [id, row] : services_)
        if (detail::memory::matches(row.value, filter)) rows.push_back(&row);
    auto const before = [](service_row const* a, service_row const* b) {
        if (a->value.updated_at != b->value.updated_at) return a->value.updated_at > b->value.updated_at;
        if (a->value.created_at != b->value.created_at) return a->value.created_at > b->value.created_at;
        return a->seq > b->seq;
    };
    return detail::memory::row_page(rows, filter.after.has_value(), detail::memory::cursor_row(services_, filter.after),
                                    filter.limit, before);
}

BERTH_DECL std::vector<std::string> memory_store::tables::stop_runtime_services(runtime_service_filter const& filter,
                                                                    timestamp now) {
    std::unique_lock lock(mutex_);
    std::vector<service_row*> hit;
    for (auto& [id, row] : services_)
        if (is_live_status(row.value.status) && detail::memory::matches(row.value, filter)) hit.push_back(&row);
    std::vector<std::string> ids;
    ids.reserve(hit.size());
    for (auto* r : hit) ids.push_back(r->value.id);
    // Nothing below throws: the store changes only once every allocation is done.
    for (auto* r : hit) {
        r->value.status = runtime_service_status::stopped;
        r->value.health_status = runtime_service_health::unknown;
        r->value.stopped_at = now;
        r->value.last_used_at = now;
        r->value.updated_at = now;
    }
    return ids;
}

}  // namespace berth
