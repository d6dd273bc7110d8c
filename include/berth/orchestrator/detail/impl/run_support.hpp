#pragma once
// Definitions of orchestrator/detail/run_support.hpp: inline in header-only mode, compiled once in
// <berth/src.hpp> under BERTH_SEPARATE_COMPILATION.

#include <berth/model/ids.hpp>             // new_id
#include <berth/process/signal_name.hpp>  // signal_name

#include <algorithm>  // std::min
#include <utility>    // std::move

namespace berth::detail {

BERTH_DECL std::string_view trim(std::string_view text) noexcept {
    auto const b = text.find_first_not_of(" \t\r\n");
    if (b == std::string_view::npos) return {};
    return text.substr(b, text.find_last_not_of(" \t\r\n") - b + 1);
}

BERTH_DECL boost::json::value json_or_null(std::optional<std::string> const& s) {
    return s ? boost::json::value(*s) : boost::json::value(nullptr);
}

BERTH_DECL std::string first_non_empty_line(std::string_view text) {
    while (!text.empty()) {
        auto const nl = text.find('\n');
        if (auto const line = trim(text.substr(0, nl)); !line.empty()) return std::string(line);
        if (nl == std::string_view::npos) break;
        text.remove_prefix(nl + 1);
    }
    return {};
}

BERTH_DECL std::string provision_failure_detail(command_result const& r) {
    if (r.cancelled) return "provision command cancelled";
    if (r.timed_out) return "provision command timed out";
    std::string status = "exit code " + (r.exit_code ? std::to_string(*r.exit_code) : std::string("null"));
    if (r.signal) status += " (signal " + process::signal_name(*r.signal) + ")";  // the seed: (signal SIGKILL)
    auto detail = last_lines(r.stderr_text);
    if (detail.empty()) detail = last_lines(r.stdout_text);
    return detail.empty() ? status : status + ": " + detail;
}

BERTH_DECL std::optional<timestamp> earliest(std::optional<timestamp> a, std::optional<timestamp> b) {
    if (a && b) return std::min(*a, *b);
    return a ? a : b;
}

BERTH_DECL activity_event make_lease_event(char const* action, std::string const& lease_id,
                                           std::string const& company_id, nullable<std::string> const& agent_id,
                                           std::optional<std::string> const& run_id, boost::json::object details,
                                           timestamp now) {
    return activity_event{.id = new_id(),
                          .company_id = company_id,
                          .actor_type = agent_id.has_value() ? "agent" : "system",
                          .actor_id = agent_id.has_value() ? *agent_id : std::string("berth"),
                          .action = action,
                          .entity_type = "environment_lease",
                          .entity_id = lease_id,
                          .agent_id = agent_id.get(),
                          .run_id = run_id,
                          .details = std::move(details),
                          .created_at = now};
}

}  // namespace berth::detail
