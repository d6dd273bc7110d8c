#pragma once
//! @file
//! Runtime service definitions, read from a workspace runtime config (upstream's
//! `workspaceRuntime.services` entries, `WorkspaceCommandDefinition`):
//!
//! | field                 | shape (default)                                                         |
//! |-----------------------|-------------------------------------------------------------------------|
//! | `name`                | string ("service")                                                      |
//! | `command`             | string, required: `Runtime service "<name>" is missing command`         |
//! | `cwd`                 | template string ("."), relative to the workspace cwd                    |
//! | `lifecycle`           | "shared" \| "ephemeral" ("shared")                                      |
//! | `reuseScope`          | project_workspace \| execution_workspace \| agent \| run (`lifecycle: "shared"` given: project_workspace; ephemeral or no lifecycle: run, as the seed) |
//! | `port`                | a number, or `{type: "auto", envKey ("PORT")}`, or `{value, envKey}`   |
//! | `env`                 | object of template strings (non-string values are skipped, as upstream) |
//! | `expose.urlTemplate`  | template string                                                         |
//! | `readiness`           | `{type: "http", urlTemplate, timeoutSec (90 for a dev server, else 30), intervalMs (500)}` |
//! | `stopPolicy`          | `{type: manual \| on_run_finish \| idle_timeout, idleSeconds (1800)}`   |
//!
//! Upstream reads these leniently (a wrong type silently becomes the default); berth refuses
//! them: every bad value is a berth::services::config_error naming the service, the field and
//! the value. Unknown fields are ignored.

#include <berth/error.hpp>                  // berth::error
#include <berth/model/record.hpp>           // json_object
#include <berth/model/runtime_service.hpp>  // runtime_service_lifecycle, runtime_service_scope_type

#include <boost/describe/enum.hpp>    // BOOST_DEFINE_ENUM_CLASS
#include <boost/json/serialize.hpp>   // serialize (values in messages)
#include <boost/json/value.hpp>       // boost::json::value

#include <cstdint>   // std::int64_t
#include <map>       // std::map
#include <optional>  // std::optional
#include <string>    // std::string
#include <string_view>  // std::string_view
#include <vector>    // std::vector

namespace berth::services {

/// A runtime service definition that berth cannot use: names the service, the field and the value.
class config_error : public error {
public:
    config_error(std::string service, std::string field, std::string const& message)
        : error(message), service_(std::move(service)), field_(std::move(field)) {}
    [[nodiscard]] std::string const& service() const noexcept { return service_; }
    [[nodiscard]] std::string const& field() const noexcept { return field_; }

private:
    std::string service_;
    std::string field_;
};

/// `stopPolicy.type`.
BOOST_DEFINE_ENUM_CLASS(stop_policy_type, manual, on_run_finish, idle_timeout)

/// How a service gets its port.
struct port_config {
    enum class kind { none, fixed, automatic };
    kind mode = kind::none;
    std::int64_t value = 0;         ///< for `fixed`
    std::string env_key = "PORT";  ///< the variable the port is passed in
};

/// `readiness` (only `http` exists upstream).
struct readiness_config {
    std::optional<std::string> url_template{};
    std::int64_t timeout_sec = 30;   ///< at least 1; parsed: default_readiness_timeout_sec when not given
    std::int64_t interval_ms = 500;  ///< at least 100: the longest gap between two attempts
};

struct stop_policy_config {
    std::optional<stop_policy_type> type{};  ///< absent: on_run_finish for ephemeral, manual for shared
    std::int64_t idle_seconds = 1800;        ///< at least 1
};

/// One service entry, checked.
struct runtime_service_config {
    std::string name = "service";
    std::string command{};
    std::string cwd = ".";
    runtime_service_lifecycle lifecycle = runtime_service_lifecycle::shared;
    std::optional<runtime_service_scope_type> reuse_scope{};
    port_config port{};
    std::map<std::string, std::string> env{};  ///< name → template
    std::optional<std::string> expose_url_template{};
    std::optional<readiness_config> readiness{};
    stop_policy_config stop_policy{};
    json_object stop_policy_json{};  ///< `stopPolicy` as given ({} when absent): what is persisted
    std::optional<runtime_desired_state> desired_state{};  ///< berth: per-service desired state, if given

    /// The reuse scope in effect: `reuseScope`, else project_workspace (shared) / run (ephemeral).
    /// parse_runtime_service sets `reuse_scope` to run for an entry without `lifecycle` (the seed's
    /// resolveServiceScopeId reads the lifecycle as given, before its default).
    [[nodiscard]] runtime_service_scope_type scope() const noexcept {
        if (reuse_scope) return *reuse_scope;
        return lifecycle == runtime_service_lifecycle::shared ? runtime_service_scope_type::project_workspace
                                                              : runtime_service_scope_type::run;
    }
    /// The stop type release_for_run applies (upstream's default rule).
    [[nodiscard]] stop_policy_type stop_type() const noexcept {
        if (stop_policy.type) return *stop_policy.type;
        return lifecycle == runtime_service_lifecycle::ephemeral ? stop_policy_type::on_run_finish
                                                                 : stop_policy_type::manual;
    }
    /// `expose.urlTemplate`, else `readiness.urlTemplate`.
    [[nodiscard]] std::optional<std::string> url_template() const {
        if (expose_url_template && !expose_url_template->empty()) return expose_url_template;
        if (readiness && readiness->url_template && !readiness->url_template->empty()) return readiness->url_template;
        return std::nullopt;
    }
};

/// upstream resolveWorkspaceRuntimeReadinessTimeoutSec: the readiness timeout of a service whose
/// `readiness` gives no `timeoutSec` — 90 s for a dev server (`pnpm|npm|yarn|bun [run] dev`, the
/// runner as a word of the command, with or without a path), else 30 s.
[[nodiscard]] std::int64_t default_readiness_timeout_sec(std::string_view command);

/// Checks one service entry (`index` is its position, for messages).
/// @throws config_error naming the service, the field and the value.
[[nodiscard]] runtime_service_config parse_runtime_service(boost::json::value const& entry, std::size_t index = 0);

/// The service entries of a config document: `{"workspaceRuntime": {"services": [...]}}` (the
/// seed's readRuntimeServiceEntries), `{"services": [...]}`, or the array itself. A document
/// without services gives an empty list.
/// @throws config_error for a document of another shape or any bad entry.
[[nodiscard]] std::vector<runtime_service_config> parse_runtime_services(boost::json::value const& config);

}  // namespace berth::services

#include <berth/services/impl/config.hpp>
