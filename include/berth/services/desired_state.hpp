#pragma once
//! @file
//! A workspace's runtime desired states, as upstream stores them in a workspace's config
//! (`metadata.config` of an execution workspace): the aggregate `desiredState` and the per-service
//! `serviceStates`, keyed by the service's index in `workspaceRuntime.services` ("0", "1", …).
//!
//! | who | which services |
//! |---|---|
//! | a run (`ensure_for_run`) | state `running`, or none: runs default to `running`; `manual` and `stopped` services are left alone |
//! | `restart_desired_on_startup` | workspaces whose `desiredState` is `running`; of those, services whose own state (else the aggregate) is `running` |
//! | control (`supervisor::control`) | the one service named by index, or every service that is not `manual` |
//!
//! desired_state_patch is upstream's buildWorkspaceRuntimeDesiredStatePatch: start/restart set the
//! targeted states `running`, stop sets them `stopped`, a `manual` state is never changed; the
//! aggregate is `running` if any service is, else `manual` if any is, else `stopped`.

#include <berth/model/enum_string.hpp>      // try_parse_enum, to_string
#include <berth/model/record.hpp>           // json_object
#include <berth/model/runtime_service.hpp>  // runtime_desired_state
#include <berth/services/config.hpp>        // runtime_service_config, config_error

#include <boost/describe/enum.hpp>   // BOOST_DEFINE_ENUM_CLASS
#include <boost/json/object.hpp>     // boost::json::object
#include <boost/json/serialize.hpp>  // serialize (values in messages)
#include <boost/json/value.hpp>      // boost::json::value

#include <cstddef>   // std::size_t
#include <map>       // std::map
#include <optional>  // std::optional
#include <span>      // std::span
#include <string>    // std::string
#include <vector>    // std::vector

namespace berth::services {

/// What a workspace control does (upstream's `start | stop | restart`).
BOOST_DEFINE_ENUM_CLASS(runtime_control_action, start, stop, restart)

/// `desiredState` and `serviceStates` of a workspace config.
struct workspace_runtime_states {
    std::optional<runtime_desired_state> desired_state{};
    std::map<std::size_t, runtime_desired_state> service_states{};  ///< service index → state

    friend bool operator==(workspace_runtime_states const&, workspace_runtime_states const&) = default;
};

/// Reads `desiredState` and `serviceStates` of `config` (absent: none).
/// @throws config_error naming the field and the value: a state that is not running, stopped or
///         manual, or a `serviceStates` key that is not a service index.
[[nodiscard]] inline workspace_runtime_states read_runtime_states(boost::json::object const& config) {
    workspace_runtime_states out;
    auto state_of = [](boost::json::value const& v, std::string const& field) {
        std::optional<runtime_desired_state> s;
        if (v.is_string()) s = try_parse_enum<runtime_desired_state>(std::string_view(v.get_string()));
        if (!s)
            throw config_error("", field,
                               "Workspace runtime config: field \"" + field +
                                   "\" must be one of running, stopped, manual, got " + boost::json::serialize(v));
        return *s;
    };
    if (auto const* d = config.if_contains("desiredState"); d && !d->is_null())
        out.desired_state = state_of(*d, "desiredState");
    if (auto const* s = config.if_contains("serviceStates"); s && !s->is_null()) {
        if (!s->is_object())
            throw config_error("", "serviceStates",
                               "Workspace runtime config: field \"serviceStates\" must be an object, got " +
                                   boost::json::serialize(*s));
        for (auto const& kv : s->get_object()) {
            std::string const key(kv.key());
            auto const field = "serviceStates." + key;
            if (key.empty() || key.size() > 9 || key.find_first_not_of("0123456789") != std::string::npos)
                throw config_error("", field,
                                   "Workspace runtime config: field \"serviceStates\" has a key that is not a service "
                                   "index, got \"" + key + "\"");
            out.service_states[std::stoul(key)] = state_of(kv.value(), field);
        }
    }
    return out;
}

/// Writes `desiredState` and `serviceStates` into `config` (replacing them).
inline void write_runtime_states(boost::json::object& config, workspace_runtime_states const& states) {
    if (states.desired_state) config["desiredState"] = to_string(*states.desired_state);
    else config.erase("desiredState");
    boost::json::object s;
    for (auto const& [i, st] : states.service_states) s[std::to_string(i)] = to_string(st);
    config["serviceStates"] = std::move(s);
}

/// The state a service has for runs and controls: its `serviceStates` entry as parsed into
/// runtime_service_config::desired_state (parse_runtime_services applies them), else `fallback`.
[[nodiscard]] inline runtime_desired_state service_state(runtime_service_config const& s,
                                                         runtime_desired_state fallback) noexcept {
    return s.desired_state ? *s.desired_state : fallback;
}

/// upstream buildWorkspaceRuntimeDesiredStatePatch (see the file comment). `index` names one
/// service; without it every service is targeted.
/// @throws config_error for an index past the last service.
[[nodiscard]] inline workspace_runtime_states desired_state_patch(workspace_runtime_states current,
                                                                  std::size_t service_count,
                                                                  runtime_control_action action,
                                                                  std::optional<std::size_t> index = std::nullopt) {
    if (index && *index >= service_count)
        throw config_error("", "serviceIndex",
                           "Workspace runtime control: service index " + std::to_string(*index) + " is out of range (" +
                               std::to_string(service_count) + " services)");
    auto const fallback = current.desired_state.value_or(runtime_desired_state::stopped);
    auto const wanted = action == runtime_control_action::stop ? runtime_desired_state::stopped
                                                               : runtime_desired_state::running;
    for (std::size_t i = 0; i < service_count; ++i) {
        auto it = current.service_states.find(i);
        auto const now = it != current.service_states.end() ? it->second : fallback;
        if (now == runtime_desired_state::manual) {
            current.service_states[i] = now;  // manual is preserved, and written out
            continue;
        }
        current.service_states[i] = (!index || *index == i) ? wanted : now;
    }
    bool any_running = false, any_manual = false;
    for (auto const& [i, st] : current.service_states) {
        if (i >= service_count) continue;
        any_running = any_running || st == runtime_desired_state::running;
        any_manual = any_manual || st == runtime_desired_state::manual;
    }
    current.desired_state = any_running  ? runtime_desired_state::running
                            : any_manual ? runtime_desired_state::manual
                                         : runtime_desired_state::stopped;
    return current;
}

/// The per-index states of `services` (their desired_state members), for desired_state_patch.
[[nodiscard]] inline workspace_runtime_states states_of(std::span<runtime_service_config const> services,
                                                        std::optional<runtime_desired_state> aggregate) {
    workspace_runtime_states out{.desired_state = aggregate, .service_states = {}};
    for (std::size_t i = 0; i < services.size(); ++i)
        if (services[i].desired_state) out.service_states[i] = *services[i].desired_state;
    return out;
}

/// The runtime part of a workspace config (upstream ExecutionWorkspaceConfig: `workspaceRuntime`,
/// `desiredState`, `serviceStates`, `runtimeProvisionCommand`, `workspaceStrategy`).
struct workspace_runtime {
    std::vector<runtime_service_config> services{};  ///< each with its `serviceStates` entry applied
    workspace_runtime_states states{};
    std::optional<std::string> runtime_provision_command{};  ///< trimmed; none when empty
};

/// Reads a workspace config. A service's `serviceStates` entry replaces its own `desiredState`.
/// `runtimeProvisionCommand` is the config's, else `workspaceStrategy.runtimeProvisionCommand`.
/// @throws config_error (see parse_runtime_services and read_runtime_states).
[[nodiscard]] inline workspace_runtime parse_workspace_runtime(boost::json::object const& config) {
    workspace_runtime out;
    out.services = parse_runtime_services(config);
    out.states = read_runtime_states(config);
    for (auto const& [i, st] : out.states.service_states)
        if (i < out.services.size()) out.services[i].desired_state = st;
    auto command_of = [](boost::json::object const& o) -> std::optional<std::string> {
        auto const* c = o.if_contains("runtimeProvisionCommand");
        if (!c || c->is_null()) return std::nullopt;
        if (!c->is_string())
            throw config_error("", "runtimeProvisionCommand",
                               "Workspace runtime config: field \"runtimeProvisionCommand\" must be a string, got " +
                                   boost::json::serialize(*c));
        std::string s(c->get_string());
        auto const b = s.find_first_not_of(" \t\r\n");
        if (b == std::string::npos) return std::nullopt;
        return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
    };
    out.runtime_provision_command = command_of(config);
    if (!out.runtime_provision_command)
        if (auto const* ws = config.if_contains("workspaceStrategy"); ws && ws->is_object())
            out.runtime_provision_command = command_of(ws->get_object());
    return out;
}

}  // namespace berth::services
