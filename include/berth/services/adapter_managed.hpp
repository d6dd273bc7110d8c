#pragma once
//! @file
//! Services that an adapter runs itself and reports (upstream normalizeAdapterManagedRuntimeServices
//! and persistAdapterManagedRuntimeServices): each report becomes a `workspace_runtime_services`
//! row with provider `adapter_managed`. Defaults: scope `run`, status `running`, lifecycle
//! `ephemeral`, health from the status (running → healthy, failed → unhealthy, else unknown); the
//! id is the report's, else `<adapterType>-<sha256(...)[:32]>` (stable across reports).

#include <berth/concepts/runtime_service_store.hpp>  // runtime_service_store
#include <berth/model/runtime_service.hpp>           // workspace_runtime_service and its enums
#include <berth/services/context.hpp>                // service_context, runtime_service_ref
#include <berth/services/identity.hpp>               // stable_adapter_service_id, service_scope

#include <cstdint>   // std::int64_t
#include <optional>  // std::optional
#include <span>      // std::span
#include <string>    // std::string
#include <vector>    // std::vector

namespace berth::services {

/// An adapter's report of one service (upstream AdapterRuntimeServiceReport); every member optional.
struct adapter_service_report {
    std::optional<std::string> id{};
    std::optional<std::string> project_id{};
    std::optional<std::string> project_workspace_id{};
    std::optional<std::string> issue_id{};
    std::optional<runtime_service_scope_type> scope_type{};
    std::optional<std::string> scope_id{};
    std::optional<std::string> service_name{};
    std::optional<runtime_service_status> status{};
    std::optional<runtime_service_lifecycle> lifecycle{};
    std::optional<std::string> reuse_key{};
    std::optional<std::string> command{};
    std::optional<std::string> cwd{};
    std::optional<std::int64_t> port{};
    std::optional<std::string> url{};
    std::optional<std::string> provider_ref{};
    std::optional<std::string> owner_agent_id{};
    std::optional<json_object> stop_policy{};
    std::optional<runtime_service_health> health_status{};
};

/// The rows the reports stand for, all stamped `now` (started_at, last_used_at; stopped_at
/// unless running or starting).
[[nodiscard]] inline std::vector<runtime_service_ref> normalize_adapter_managed_services(
    std::string const& adapter_type, std::string const& run_id, service_context const& ctx,
    std::span<adapter_service_report const> reports, timestamp now) {
    std::vector<runtime_service_ref> out;
    auto const& w = ctx.workspace;
    for (auto const& r : reports) {
        auto const type = r.scope_type.value_or(runtime_service_scope_type::run);
        std::optional<std::string> scope_id = r.scope_id;
        if (!scope_id) {
            switch (type) {
                case runtime_service_scope_type::project_workspace: scope_id = w.project_workspace_id; break;
                case runtime_service_scope_type::execution_workspace:
                    scope_id = w.execution_workspace_id ? *w.execution_workspace_id : w.cwd;
                    break;
                case runtime_service_scope_type::agent: scope_id = ctx.agent.id; break;
                case runtime_service_scope_type::run: scope_id = run_id; break;
            }
        }
        std::string name = r.service_name ? detail::trimmed_copy(*r.service_name) : std::string();
        if (name.empty()) name = "service";
        auto const status = r.status.value_or(runtime_service_status::running);
        auto const health = r.health_status.value_or(status == runtime_service_status::running ? runtime_service_health::healthy
                                                     : status == runtime_service_status::failed
                                                         ? runtime_service_health::unhealthy
                                                         : runtime_service_health::unknown);
        bool const live = status == runtime_service_status::running || status == runtime_service_status::starting;
        workspace_runtime_service row{
            .id = stable_adapter_service_id(adapter_type, run_id, {type, scope_id}, name, r.id, r.provider_ref,
                                            r.reuse_key),
            .company_id = ctx.agent.company_id,
            .project_id = r.project_id ? r.project_id : w.project_id,
            .project_workspace_id = r.project_workspace_id ? r.project_workspace_id : w.project_workspace_id,
            .execution_workspace_id = w.execution_workspace_id,
            .issue_id = r.issue_id ? r.issue_id : (ctx.issue ? std::optional<std::string>(ctx.issue->id) : std::nullopt),
            .scope_type = type,
            .scope_id = scope_id,
            .service_name = name,
            .status = status,
            .lifecycle = r.lifecycle.value_or(runtime_service_lifecycle::ephemeral),
            .reuse_key = r.reuse_key,
            .command = r.command,
            .cwd = r.cwd,
            .port = r.port,
            .url = r.url,
            .provider = runtime_service_provider::adapter_managed,
            .provider_ref = r.provider_ref,
            .owner_agent_id = r.owner_agent_id ? r.owner_agent_id : ctx.agent.id,
            .started_by_run_id = run_id,
            .last_used_at = now,
            .started_at = now,
            .stopped_at = live ? std::nullopt : std::optional<timestamp>(now),
            .stop_policy = r.stop_policy,
            .health_status = health,
            .created_at = now,
            .updated_at = now};
        out.push_back({std::move(row), false});
    }
    return out;
}

/// Normalises the reports and upserts each row by id; a row reported again keeps its
/// started_at (and, by the store's rule, its created_at). Returns the stored rows.
template <runtime_service_store Store>
std::vector<runtime_service_ref> persist_adapter_managed_services(Store& store, std::string const& adapter_type,
                                                                  std::string const& run_id,
                                                                  service_context const& ctx,
                                                                  std::span<adapter_service_report const> reports,
                                                                  timestamp now) {
    auto refs = normalize_adapter_managed_services(adapter_type, run_id, ctx, reports, now);
    for (auto& ref : refs) {
        if (auto existing = store.get_runtime_service(ref.service.id)) ref.service.started_at = existing->started_at;
        ref.service = store.upsert_runtime_service(ref.service, now);
    }
    return refs;
}

}  // namespace berth::services
