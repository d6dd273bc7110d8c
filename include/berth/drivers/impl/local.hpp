#pragma once
// Definitions of berth::local_driver's non-template members (declared and documented in
// berth/drivers/local.hpp, which includes this file at its end in header-only mode; <berth/src.hpp>
// includes it under BERTH_SEPARATE_COMPILATION). The member template realize_execution_workspace
// is in drivers/impl/local_workspaces.hpp.

#include <berth/drivers/local.hpp>            // the declarations (a no-op when included from there)
#include <berth/process/lease_processes.hpp>  // lease_variable, lease_process_sweeper
#include <berth/process/spawn.hpp>            // process::run (its environment: process/environment.hpp)
#include <berth/recovery/holder.hpp>          // starter_of
#include <berth/workspace/runtime.hpp>        // workspace_runtime

#include <boost/json/object.hpp>  // boost::json::object (metadata, details)
#include <boost/json/value.hpp>   // boost::json::value (null members)

#include <memory>    // std::make_shared
#include <optional>  // std::optional
#include <string>    // std::string
#include <utility>   // std::move

#include <climits>   // HOST_NAME_MAX, PATH_MAX
#include <unistd.h>  // gethostname, getcwd

namespace berth {

BERTH_DECL local_driver::local_driver(local_driver_options options)
    : options_(std::move(options)),
      workspaces_(std::make_shared<workspace_runtime const>(options_.workspaces)),
      sweeper_(std::make_shared<process::lease_process_sweeper>()) {}

BERTH_DECL lease_grant local_driver::acquire(acquire_request const& request) const {
    lease_grant grant;
    grant.provider = "local";
    grant.metadata.reserve(3);
    if (request.agent_id.has_value()) grant.metadata.emplace("agentId", *request.agent_id);
    grant.metadata.emplace("driver", "local");
    if (request.execution_workspace_mode)
        grant.metadata.emplace("executionWorkspaceMode", *request.execution_workspace_mode);
    else
        grant.metadata.emplace("executionWorkspaceMode", nullptr);
    return grant;
}

BERTH_DECL release_outcome local_driver::release(environment const&, environment_lease const& lease,
                                                 lease_status to) const noexcept {
    if (to != lease_status::failed && to != lease_status::expired) return {};  // released, retained
    auto out = end_processes_of(lease);
    if (out.cleanup_status == cleanup_status::success) return {};
    return out;
}

BERTH_DECL release_outcome local_driver::destroy(environment const&, environment_lease const& lease) const noexcept {
    return end_processes_of(lease);
}

BERTH_DECL workspace_realization local_driver::realize_workspace(realize_request const& request) const {
    auto nullable_string = [](std::optional<std::string> const& s) {
        return s ? boost::json::value(*s) : boost::json::value(nullptr);
    };
    std::optional<std::string> const chosen = request.local_path ? request.local_path : request.remote_path;

    boost::json::object record;
    record["version"] = 1;
    record["driver"] = "local";
    record["transport"] = "local";
    record["mode"] = nullable_string(request.mode);
    record["cwd"] = nullable_string(chosen);
    record["local"] = boost::json::object{{"path", nullable_string(request.local_path)}};
    record["remote"] = boost::json::object{{"path", nullable_string(request.remote_path)}};

    workspace_realization realization;
    realization.cwd = chosen.value_or("/");
    realization.metadata["workspaceRealization"] = std::move(record);
    return realization;
}

BERTH_DECL command_result local_driver::execute(environment const&, environment_lease const& lease,
                                                command const& cmd) const {
    process::run_options run{.inherit_sanitized_environment = true, .kill_grace = options_.kill_grace};
    if (lease.id.empty()) return process::run(cmd, run);
    std::string const variable(process::lease_variable);
    if (!cmd.env.contains(variable)) {
        run.base_environment.emplace(variable, lease.id);
        return process::run(cmd, run);
    }
    command own = cmd;  // rare: the command names the variable itself
    own.env[variable] = lease.id;
    return process::run(own, run);
}

BERTH_DECL probe_result local_driver::probe(environment const&) const noexcept {
    try {
        probe_result result;
        result.ok = true;
        result.summary = probe_summary;
        char host[HOST_NAME_MAX + 1] = {};
        if (::gethostname(host, sizeof host - 1) == 0)
            result.details["hostname"] = host;
        else
            result.details["hostname"] = nullptr;
        char cwd[PATH_MAX];
        if (::getcwd(cwd, sizeof cwd) != nullptr)
            result.details["cwd"] = cwd;
        else
            result.details["cwd"] = nullptr;
        return result;
    } catch (...) {
        return probe_result{};
    }
}

BERTH_DECL berth::execution_target local_driver::execution_target(environment const& env,
                                                                environment_lease const& lease) const {
    berth::execution_target target;
    target.kind = "local";
    target.environment_id = env.id;
    target.lease_id = lease.id;
    return target;
}

BERTH_DECL release_outcome local_driver::end_processes_of(environment_lease const& lease) const noexcept {
    try {
        if (sweeper_->end_processes_of(lease.id, starter_of(lease)))
            return {.cleanup_status = cleanup_status::success, .failure_reason = std::nullopt};
        return {.cleanup_status = cleanup_status::failed,
                .failure_reason = "processes of lease " + lease.id + " still run after SIGKILL"};
    } catch (...) {
        return {.cleanup_status = cleanup_status::failed, .failure_reason = std::nullopt};
    }
}

}  // namespace berth
