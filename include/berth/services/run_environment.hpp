#pragma once
//! @file
//! The runtime services a run's command is given: for each service, `BERTH_SERVICE_<NAME>_URL`
//! (when it has a URL) and `BERTH_SERVICE_<NAME>_PORT` (when it has a port), `<NAME>` being the
//! service name upper-cased with every character outside [A-Z0-9] as `_` (`web-ui` →
//! `BERTH_SERVICE_WEB_UI_URL`). Pass the map as berth::command::env of the run's command:
//!
//! @code
//! auto const refs = sup.ensure_for_run(run_id, ctx, services);
//! cmd.env = berth::services::service_environment(refs);
//! @endcode
//!
//! Upstream hands the services to the adapter as `runtimeServices` in its context (and in the
//! workspace-ready comment); berth's commands are plain processes, so the environment carries them.

#include <berth/services/context.hpp>  // runtime_service_ref

#include <map>          // std::map
#include <span>         // std::span
#include <string>       // std::string
#include <string_view>  // std::string_view

namespace berth::services {

/// `BERTH_SERVICE_<NAME>` for a service name (see the file comment); `_` for an empty name.
[[nodiscard]] inline std::string service_env_prefix(std::string_view service_name) {
    std::string out = "BERTH_SERVICE_";
    if (service_name.empty()) return out + "_";
    for (char c : service_name) {
        if (c >= 'a' && c <= 'z') out += static_cast<char>(c - 'a' + 'A');
        else if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) out += c;
        else out += '_';
    }
    return out;
}

/// The variables of `services` (see the file comment). Two services of one name: the later one wins.
[[nodiscard]] inline std::map<std::string, std::string> service_environment(
    std::span<runtime_service_ref const> services) {
    std::map<std::string, std::string> env;
    for (auto const& s : services) {
        auto const prefix = service_env_prefix(s.service.service_name);
        if (s.service.url) env[prefix + "_URL"] = *s.service.url;
        if (s.service.port) env[prefix + "_PORT"] = std::to_string(*s.service.port);
    }
    return env;
}

}  // namespace berth::services
