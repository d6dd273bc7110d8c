#pragma once
//! @file
//! The workspace runtime service record (upstream table `workspace_runtime_services`,
//! `schema/workspace_runtime_services.ts`), its enums with upstream's exact values, and the inputs
//! of berth::runtime_service_store.
//!
//! A runtime service is a long-lived process a run needs beside its command (a dev server, a
//! database): started by berth's supervisor (provider `local_process`, services/supervisor.hpp) or
//! reported by an adapter that manages it itself (provider `adapter_managed`).

#include <berth/model/enum_string.hpp>  // enum_label
#include <berth/model/paging.hpp>       // default_list_limit
#include <berth/model/record.hpp>       // json_object, record_name
#include <berth/model/time.hpp>         // timestamp

#include <boost/describe/class.hpp>  // BOOST_DESCRIBE_STRUCT
#include <boost/describe/enum.hpp>   // BOOST_DEFINE_ENUM_CLASS

#include <cstdint>   // std::int64_t
#include <optional>  // std::optional
#include <string>    // std::string
#include <vector>    // std::vector

namespace berth {

/// Runtime service `scopeType`: what a shared service is reused across.
BOOST_DEFINE_ENUM_CLASS(runtime_service_scope_type, project_workspace, execution_workspace, run, agent)

/// Runtime service `status`. (`provisioning` is upstream's newer lazy-provision state; berth's
/// supervisor does not write it but reads it.)
BOOST_DEFINE_ENUM_CLASS(runtime_service_status, provisioning, starting, running, stopped, failed)

/// Runtime service `lifecycle`: `shared` services are reused by key, `ephemeral` ones belong to one run.
BOOST_DEFINE_ENUM_CLASS(runtime_service_lifecycle, shared, ephemeral)

/// Runtime service `provider`.
BOOST_DEFINE_ENUM_CLASS(runtime_service_provider, local_process, adapter_managed)

/// Runtime service `healthStatus`.
BOOST_DEFINE_ENUM_CLASS(runtime_service_health, unknown, healthy, unhealthy)

/// WorkspaceRuntimeDesiredState: whether a workspace's services should run after a restart.
BOOST_DEFINE_ENUM_CLASS(runtime_desired_state, running, stopped, manual)

template <> inline constexpr char const* enum_label<runtime_service_scope_type> = "runtime service scope type";
template <> inline constexpr char const* enum_label<runtime_service_status> = "runtime service status";
template <> inline constexpr char const* enum_label<runtime_service_lifecycle> = "runtime service lifecycle";
template <> inline constexpr char const* enum_label<runtime_service_provider> = "runtime service provider";
template <> inline constexpr char const* enum_label<runtime_service_health> = "runtime service health status";
template <> inline constexpr char const* enum_label<runtime_desired_state> = "workspace runtime desired state";

/// One row of `workspace_runtime_services`, upstream's columns in upstream's order.
struct workspace_runtime_service {
    std::string id{};  ///< supplied by the writer (upstream: no default)
    std::string company_id{};
    std::optional<std::string> project_id{};
    std::optional<std::string> project_workspace_id{};
    std::optional<std::string> execution_workspace_id{};
    std::optional<std::string> issue_id{};
    runtime_service_scope_type scope_type = runtime_service_scope_type::run;
    std::optional<std::string> scope_id{};
    std::string service_name{};
    runtime_service_status status = runtime_service_status::starting;
    runtime_service_lifecycle lifecycle = runtime_service_lifecycle::shared;
    std::optional<std::string> reuse_key{};
    std::optional<std::string> command{};
    std::optional<std::string> cwd{};
    std::optional<std::int64_t> port{};
    std::optional<std::string> url{};
    runtime_service_provider provider = runtime_service_provider::local_process;
    std::optional<std::string> provider_ref{};  ///< the pid, for local_process
    std::optional<std::string> owner_agent_id{};
    std::optional<std::string> started_by_run_id{};
    std::optional<timestamp> last_used_at{};
    timestamp started_at{};
    std::optional<timestamp> stopped_at{};
    std::optional<json_object> stop_policy{};
    runtime_service_health health_status = runtime_service_health::unknown;
    timestamp created_at{};
    timestamp updated_at{};
};
BOOST_DESCRIBE_STRUCT(workspace_runtime_service, (),
                      (id, company_id, project_id, project_workspace_id, execution_workspace_id, issue_id, scope_type,
                       scope_id, service_name, status, lifecycle, reuse_key, command, cwd, port, url, provider,
                       provider_ref, owner_agent_id, started_by_run_id, last_used_at, started_at, stopped_at,
                       stop_policy, health_status, created_at, updated_at))
template <> inline constexpr char const* record_name<workspace_runtime_service> = "workspace_runtime_service";

/// Filter of runtime_service_store::list_runtime_services and stop_runtime_services: a row
/// matches when it matches every engaged member (an empty `statuses` or `ids` matches all).
/// In the SQL stores, upstream's indexes start with the company: a workspace filter without
/// `company_id` reads every row (unless it asks for live statuses only, or ids).
struct runtime_service_filter {
    std::optional<std::string> company_id{};
    std::optional<runtime_service_provider> provider{};
    std::vector<runtime_service_status> statuses{};
    std::optional<std::string> execution_workspace_id{};
    std::optional<std::string> project_workspace_id{};
    std::optional<runtime_service_scope_type> scope_type{};
    std::vector<std::string> ids{};
    /// At most this many rows (paging.hpp). list_runtime_services only: stop_runtime_services
    /// moves every matching row and ignores `limit` and `after`.
    std::size_t limit = default_list_limit;
    /// The id of the last row of the previous page (paging.hpp, "row cursors"); list_runtime_services only.
    std::optional<std::string> after{};
};

/// The statuses of a service that may still have a process: what the stop operations move.
/// (Upstream's `inArray(status, ["starting", "running"])`, plus `provisioning`.)
[[nodiscard]] constexpr bool is_live_status(runtime_service_status s) noexcept {
    return s == runtime_service_status::provisioning || s == runtime_service_status::starting ||
           s == runtime_service_status::running;
}

}  // namespace berth
