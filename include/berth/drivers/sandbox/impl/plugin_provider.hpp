#pragma once
// Definitions of berth/drivers/sandbox/plugin_provider.hpp (included at its bottom; include that
// header instead).

#include <berth/drivers/sandbox/plugin_provider.hpp>  // the declarations (a no-op when included from there)

#include <berth/drivers/plugin/config.hpp>        // read_string, rpc_timeout_of, parse_expires_at
#include <berth/drivers/plugin/detail/calls.hpp>  // worker_lease, read_lease_reply, the execute JSON
#include <berth/model/ids.hpp>                    // new_id (runId of ad-hoc leases)
#include <berth/plugins/protocol.hpp>             // methods

#include <chrono>     // std::chrono::steady_clock
#include <exception>  // std::exception_ptr, std::throw_with_nested
#include <thread>     // std::this_thread::sleep_for

namespace berth::detail::plugin {

inline std::string sandbox_provider_core::message(std::string_view what) const {
    return "Sandbox provider \"" + std::string(key_) + "\" " + std::string(what);
}

inline std::shared_ptr<plugins::registry> const& sandbox_provider_core::registry_or_throw() const {
    if (!plugins_) throw berth::error(message("is installed, but sandbox plugin workers are unavailable in this server process."));
    return plugins_;
}

inline void sandbox_provider_core::check_ready(plugins::installed_plugin const& p) const {
    if (p.status != "ready")
        throw berth::error(message("is installed via plugin \"" + p.key + "\", but that plugin is currently " + p.status +
                                   "."));
}

inline bool sandbox_provider_core::reusable_leases() const {
    if (!plugins_) return false;
    auto const p = plugins_->declaring(key_, "sandbox_provider");
    if (!p) return false;
    auto const* d = p->declared_driver(key_);
    if (d == nullptr) return false;
    // The nested capability wins over the flag when both are there (the SDK's manifest types).
    if (auto const* caps = d->if_contains("sandboxCapabilities"); caps && caps->is_object())
        if (auto const* r = caps->get_object().if_contains("reusableLeases"); r && r->is_bool()) return r->get_bool();
    auto const* flag = d->if_contains("supportsReusableLeases");
    return flag && flag->is_bool() && flag->get_bool();
}

inline plugins::installed_plugin sandbox_provider_core::resolve_for_acquire() const {
    auto const& reg = registry_or_throw();
    auto found = reg->declaring(key_, "sandbox_provider");
    if (!found)
        throw sandbox_config_error(
            "provider", message("is not registered as a built-in provider and no matching plugin is available."));
    check_ready(*found);
    // Upstream waits for its worker manager to bring the worker up; berth starts workers on
    // demand, so it tries to start it, and tries again every poll interval until the deadline.
    auto const deadline = std::chrono::steady_clock::now() + std::max(options_.worker_ready_timeout, std::chrono::milliseconds(0));
    std::exception_ptr why;
    for (;;) {
        try {
            found->worker->start();  // returns at once when the worker is running
            return *found;
        } catch (...) {
            why = std::current_exception();
        }
        auto const now = std::chrono::steady_clock::now();
        if (now >= deadline) break;
        std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
            std::max(options_.worker_ready_poll, std::chrono::milliseconds(1)), deadline - now));
        // Asked again each time, as upstream does: the plugin may have been replaced or disabled.
        auto again = reg->declaring(key_, "sandbox_provider");
        if (!again) break;
        found = std::move(again);
        check_ready(*found);
    }
    try {
        std::rethrow_exception(why);
    } catch (...) {
        std::throw_with_nested(
            berth::error(message("is installed via plugin \"" + found->key + "\", but its worker is not running.")));
    }
}

inline plugins::installed_plugin sandbox_provider_core::resolve_for_lease(json_object const& md) const {
    auto const& reg = registry_or_throw();
    std::optional<plugins::installed_plugin> p;
    if (auto const id = plugins::detail::read_string(&md, "pluginId")) p = reg->by_id(*id);
    if (!p)
        if (auto const key = plugins::detail::read_string(&md, "pluginKey")) p = reg->by_key(*key);
    if (!p) p = reg->declaring(key_, "sandbox_provider");
    if (!p)
        throw sandbox_config_error(
            "provider", message("is not registered as a built-in provider and no matching plugin is available."));
    check_ready(*p);
    try {
        p->worker->start();
    } catch (...) {
        std::throw_with_nested(
            berth::error(message("is installed via plugin \"" + p->key + "\", but its worker is not running.")));
    }
    return *p;
}

inline boost::json::object sandbox_provider_core::base_params(std::string const& company_id,
                                                              std::string const& environment_id,
                                                              std::optional<std::string> const& issue_id,
                                                              json_object const& config) const {
    return boost::json::object{{"driverKey", key_},
                               {"companyId", company_id},
                               {"environmentId", environment_id},
                               {"issueId", string_or_null(issue_id)},
                               {"config", config}};
}

inline boost::json::object sandbox_provider_core::lease_call_params(sandbox_lease_params const& l) const {
    auto params = base_params(l.company_id, l.environment_id, l.issue_id, l.config);
    params["providerLeaseId"] = string_or_null(l.provider_lease_id);
    params["leaseMetadata"] = l.lease_metadata;
    return params;
}

/// upstream resolvePluginSandboxRpcTimeoutMs: max(config.timeoutMs, config.bridgeRequestTimeoutMs)
/// plus the overhead buffer; nullopt (the host's default) when neither is set.
inline std::optional<std::chrono::milliseconds> sandbox_rpc_timeout(json_object const& config) {
    auto t = plugins::detail::rpc_timeout_of(config);
    if (auto const* b = config.if_contains("bridgeRequestTimeoutMs"))
        if (auto const bt = plugins::detail::rpc_timeout_of(json_object{{"timeoutMs", *b}}); bt && (!t || *bt > *t))
            t = bt;
    if (!t) return std::nullopt;
    return *t + plugin_rpc_overhead;
}

/// The lease of an acquire or resume reply. Later calls find the plugin through `pluginId` and
/// `pluginKey`, written after the worker's metadata so that it cannot redirect them.
template <class Reply, class Plugin>
sandbox_lease sandbox_lease_of(Reply reply, Plugin const& plugin) {
    sandbox_lease lease;
    lease.provider_lease_id = std::move(reply.provider_lease_id);
    lease.expires_at = reply.expires_at;
    lease.metadata = std::move(reply.metadata);
    lease.metadata["pluginId"] = plugin.id;
    lease.metadata["pluginKey"] = plugin.key;
    lease.metadata["sandboxProviderPlugin"] = true;
    return lease;
}

inline sandbox_lease sandbox_provider_core::acquire(sandbox_acquire_params const& a) const {
    auto const plugin = resolve_for_acquire();
    auto params = base_params(a.company_id, a.environment_id, a.issue_id, a.config);
    params["runId"] = a.run_id.empty() ? new_id() : a.run_id;
    // Omitted, not null, when absent (as the plugin driver: a worker's schema may refuse null).
    if (a.workspace_mode) params["workspaceMode"] = *a.workspace_mode;
    if (a.agent_id) params["agentId"] = *a.agent_id;
    if (a.execution_workspace_id) params["executionWorkspaceId"] = *a.execution_workspace_id;
    if (a.adapter_type) params["adapterType"] = *a.adapter_type;
    auto reply = read_lease_reply(plugin.worker->call(plugins::methods::environment_acquire_lease, params,
                                                      {.timeout = sandbox_rpc_timeout(a.config)}));
    return sandbox_lease_of(std::move(reply), plugin);
}

inline sandbox_lease sandbox_provider_core::resume(sandbox_lease_params const& l) const {
    auto const plugin = resolve_for_lease(l.lease_metadata);
    auto reply = read_lease_reply(plugin.worker->call(plugins::methods::environment_resume_lease,
                                                      lease_call_params(l), {.timeout = sandbox_rpc_timeout(l.config)}));
    return sandbox_lease_of(std::move(reply), plugin);  // an empty id: the driver refuses it
}

inline void sandbox_provider_core::release(sandbox_lease_params const& l) const {
    auto const plugin = resolve_for_lease(l.lease_metadata);
    (void)plugin.worker->call(plugins::methods::environment_release_lease, lease_call_params(l),
                              {.timeout = sandbox_rpc_timeout(l.config)});
}

inline void sandbox_provider_core::destroy(sandbox_lease_params const& l) const {
    auto const plugin = resolve_for_lease(l.lease_metadata);
    (void)plugin.worker->call(plugins::methods::environment_destroy_lease, lease_call_params(l),
                              {.timeout = sandbox_rpc_timeout(l.config)});
}

inline sandbox_realized sandbox_provider_core::realize(sandbox_realize_params const& r) const {
    auto const& l = r.lease;
    auto const plugin = resolve_for_lease(l.lease_metadata);
    auto params = base_params(l.company_id, l.environment_id, l.issue_id, l.config);
    params["lease"] = worker_lease(l.provider_lease_id, &l.lease_metadata, l.expires_at);
    boost::json::object workspace;
    if (r.local_path) workspace["localPath"] = *r.local_path;
    if (r.remote_path) workspace["remotePath"] = *r.remote_path;
    if (r.mode) workspace["mode"] = *r.mode;
    if (!r.metadata.empty()) workspace["metadata"] = r.metadata;
    params["workspace"] = std::move(workspace);
    auto const reply = plugin.worker->call(plugins::methods::environment_realize_workspace, params,
                                           {.timeout = sandbox_rpc_timeout(l.config)});
    sandbox_realized out;
    auto const* o = reply.if_object();
    out.cwd = plugins::detail::read_string(o, "cwd").value_or("");  // blank: the driver keeps its own cwd
    if (o)
        if (auto const* m = o->if_contains("metadata"); m && m->is_object()) out.metadata = m->get_object();
    return out;
}

inline command_result sandbox_provider_core::execute(sandbox_lease_params const& l, command const& cmd) const {
    auto const plugin = resolve_for_lease(l.lease_metadata);
    auto params = base_params(l.company_id, l.environment_id, l.issue_id, l.config);
    params["lease"] = worker_lease(l.provider_lease_id, &l.lease_metadata, l.expires_at);
    add_execute_params(params, cmd);
    // The worker enforces the command's timeout; the call waits upstream's buffer longer for its answer.
    plugins::call_options options;
    options.timeout = cmd.timeout.count() > 0 ? std::optional(cmd.timeout + plugin_rpc_overhead)
                                              : sandbox_rpc_timeout(l.config);
    stream_execute_log(options, cmd);
    auto const started = std::chrono::steady_clock::now();
    auto const reply = plugin.worker->call(plugins::methods::environment_execute, params, options);
    auto out = read_execute_result(reply, cmd, message("(plugin \"" + plugin.key + "\")"));
    out.duration = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started);
    return out;
}

inline probe_result sandbox_provider_core::probe(json_object const& config, environment const& env) const noexcept {
    try {
        auto const plugin = resolve_for_acquire();
        auto const reply = plugin.worker->call(plugins::methods::environment_probe,
                                               base_params(env.company_id, env.id, std::nullopt, config),
                                               {.timeout = sandbox_rpc_timeout(config)});
        probe_result p;
        auto const* o = reply.if_object();
        auto const* ok = o ? o->if_contains("ok") : nullptr;
        p.ok = ok && ok->is_bool() && ok->get_bool();
        p.summary = plugins::detail::read_string(o, "summary")
                        .value_or(p.ok ? message("is available.") : message("probe failed."));
        if (o)
            for (char const* key : {"diagnostics", "metadata"})
                if (auto const* v = o->if_contains(key)) p.details[key] = *v;
        p.details["pluginKey"] = plugin.key;
        return p;
    } catch (std::exception const& e) {
        try {
            return probe_result{.ok = false, .summary = e.what(), .details = {}};
        } catch (...) {
            return probe_result{};
        }
    } catch (...) {
        return probe_result{};
    }
}

}  // namespace berth::detail::plugin
