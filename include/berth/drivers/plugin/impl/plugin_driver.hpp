#pragma once
// Definitions of berth/drivers/plugin.hpp (included at its bottom; include that header instead).

#include <berth/drivers/plugin.hpp>  // the declarations (a no-op when included from there)
#include <berth/drivers/plugin/detail/calls.hpp>  // worker_lease, read_lease_reply, the execute JSON

#include <berth/error.hpp>      // berth::error
#include <berth/model/time.hpp> // to_iso8601

#include <boost/json/serialize.hpp>  // boost::json::serialize

#include <algorithm>  // std::min
#include <chrono>     // std::chrono
#include <exception>  // std::throw_with_nested, std::exception
#include <optional>   // std::optional

namespace berth {

namespace detail::plugin {

/// The worker has to be up for a call: start it now if it is not (berth's workers start on demand).
inline void ensure_worker(plugins::installed_plugin const& p, std::string const& provider_key) {
    try {
        p.worker->start();
    } catch (...) {
        std::throw_with_nested(
            berth::error("Plugin environment driver \"" + provider_key + "\" has no running worker."));
    }
}

inline boost::json::object worker_lease(environment_lease const& lease) {
    return worker_lease(lease.provider_lease_id, lease.metadata ? &*lease.metadata : nullptr, lease.expires_at);
}

}  // namespace detail::plugin

inline plugins::installed_plugin plugin_driver::resolve(plugins::plugin_environment_config const& c) const {
    auto p = plugins_->by_key(c.plugin_key);
    if (!p || p->status != "ready")
        throw berth::error("Plugin environment driver \"" + c.provider_key() + "\" is not ready.");
    if (p->declared_driver(c.driver_key) == nullptr)
        throw berth::error("Plugin \"" + c.plugin_key + "\" does not declare environment driver \"" + c.driver_key +
                           "\".");
    detail::plugin::ensure_worker(*p, c.provider_key());
    return *p;
}

inline plugin_driver::resolved plugin_driver::resolve_for_lease(environment const& env,
                                                               environment_lease const& lease) const {
    using plugins::detail::read_string;
    boost::json::object const* metadata = lease.metadata ? &*lease.metadata : nullptr;
    auto const metadata_plugin_id = read_string(metadata, "pluginId");
    auto const metadata_plugin_key = read_string(metadata, "pluginKey");
    auto const metadata_driver_key = read_string(metadata, "driverKey");
    std::optional<plugins::plugin_environment_config> current;
    if (env.driver == driver_kind::plugin) {
        try {
            current = plugins::parse_plugin_environment_config(env);
        } catch (...) {
        }
    }

    if (!metadata_plugin_id && !metadata_plugin_key && !metadata_driver_key) {
        if (!current)
            throw berth::error("Expected plugin environment config for driver \"" + std::string(to_string(env.driver)) +
                               "\".");
        return {resolve(*current), current->plugin_key, current->driver_key, current->driver_config};
    }

    std::optional<plugins::installed_plugin> plugin = metadata_plugin_id    ? plugins_->by_id(*metadata_plugin_id)
                                                      : metadata_plugin_key ? plugins_->by_key(*metadata_plugin_key)
                                                      : current             ? plugins_->by_key(current->plugin_key)
                                                                            : std::nullopt;
    std::optional<std::string> const driver_key =
        metadata_driver_key ? metadata_driver_key : current ? std::optional(current->driver_key) : std::nullopt;
    std::string const plugin_key = metadata_plugin_key ? *metadata_plugin_key
                                   : plugin            ? plugin->key
                                   : current           ? current->plugin_key
                                                       : std::string("unknown");
    if (!driver_key)
        throw berth::error("Plugin environment driver \"" + plugin_key + ":unknown\" is missing a driver key.");
    if (!plugin || plugin->status != "ready")
        throw berth::error("Plugin environment driver \"" + plugin_key + ":" + *driver_key + "\" is not ready.");
    if (plugin->declared_driver(*driver_key) == nullptr)
        throw berth::error("Plugin \"" + plugin->key + "\" does not declare environment driver \"" + *driver_key +
                           "\".");
    detail::plugin::ensure_worker(*plugin, plugin->key + ":" + *driver_key);
    bool const still_matches = current && current->plugin_key == plugin->key && current->driver_key == *driver_key;
    return {*plugin, plugin->key, *driver_key, still_matches ? current->driver_config : boost::json::object{}};
}

inline boost::json::object plugin_driver::base_params(resolved const& r, environment const& env,
                                                      environment_lease const& lease) const {
    return boost::json::object{{"driverKey", r.driver_key},
                               {"companyId", lease.company_id},
                               {"environmentId", env.id},
                               {"issueId", detail::plugin::string_or_null(lease.issue_id)},
                               {"config", r.driver_config}};
}

inline boost::json::value plugin_driver::call(resolved const& r, std::string_view method,
                                              boost::json::object const& params) const {
    return r.plugin.worker->call(method, params, {.timeout = plugins::detail::rpc_timeout_of(r.driver_config)});
}

// ---- lease lifecycle ---------------------------------------------------------------------------------

inline lease_grant plugin_driver::acquire(acquire_request const& r) const {
    auto const c = plugins::parse_plugin_environment_config(r.env);
    auto const plugin = resolve(c);
    boost::json::object params{{"driverKey", c.driver_key},
                               {"companyId", r.company_id},
                               {"environmentId", r.env.id},
                               {"issueId", detail::plugin::string_or_null(r.issue_id)},
                               {"config", c.driver_config},
                               {"runId", r.heartbeat_run_id ? *r.heartbeat_run_id : new_id()}};
    // Omitted, not null, when absent: upstream's payload (a worker's zod schema may refuse null).
    if (r.execution_workspace_mode) params["workspaceMode"] = *r.execution_workspace_mode;
    if (r.agent_id.has_value()) params["agentId"] = *r.agent_id;
    if (r.execution_workspace_id) params["executionWorkspaceId"] = *r.execution_workspace_id;
    if (r.adapter_type) params["adapterType"] = *r.adapter_type;

    auto const reply = detail::plugin::read_lease_reply(
        plugin.worker->call(plugins::methods::environment_acquire_lease, params,
                            {.timeout = plugins::detail::rpc_timeout_of(c.driver_config)}));
    lease_grant g;
    g.provider = "plugin:" + c.plugin_key + ":" + c.driver_key;
    g.provider_lease_id = reply.provider_lease_id;
    g.expires_at = reply.expires_at;
    g.metadata = {{"providerMetadata", reply.metadata},
                  {"driver", "plugin"},
                  {"executionWorkspaceMode", detail::plugin::string_or_null(r.execution_workspace_mode)},
                  {"pluginId", plugin.id},
                  {"pluginKey", c.plugin_key},
                  {"driverKey", c.driver_key}};
    if (r.agent_id.has_value()) g.metadata["agentId"] = *r.agent_id;
    return g;
}

inline release_outcome plugin_driver::release(environment const& env, environment_lease const& lease,
                                              lease_status) const {
    auto const r = resolve_for_lease(env, lease);
    auto params = base_params(r, env, lease);
    params["providerLeaseId"] = detail::plugin::string_or_null(lease.provider_lease_id);
    if (lease.metadata) params["leaseMetadata"] = *lease.metadata;
    (void)call(r, plugins::methods::environment_release_lease, params);
    return {};
}

inline lease_grant plugin_driver::resume(environment const& env, environment_lease const& lease) const {
    if (!lease.provider_lease_id || lease.provider_lease_id->empty())
        throw berth::error("Plugin environment lease \"" + lease.id +
                           "\" does not have a provider lease id to resume.");
    auto const r = resolve_for_lease(env, lease);
    auto params = base_params(r, env, lease);
    params["providerLeaseId"] = *lease.provider_lease_id;
    if (lease.metadata) params["leaseMetadata"] = *lease.metadata;
    auto const reply = detail::plugin::read_lease_reply(call(r, plugins::methods::environment_resume_lease, params));
    if (!reply.provider_lease_id)
        throw berth::error("Plugin environment lease \"" + lease.id + "\" was not resumed: the worker returned no "
                           "provider lease id.");
    lease_grant g;
    g.provider = lease.provider;
    g.provider_lease_id = reply.provider_lease_id;
    g.expires_at = reply.expires_at;
    g.metadata = lease.metadata.value_or(boost::json::object{});
    g.metadata["providerMetadata"] = reply.metadata;
    return g;
}

inline release_outcome plugin_driver::destroy(environment const& env, environment_lease const& lease) const {
    auto const r = resolve_for_lease(env, lease);
    auto params = base_params(r, env, lease);
    params["providerLeaseId"] = detail::plugin::string_or_null(lease.provider_lease_id);
    if (lease.metadata) params["leaseMetadata"] = *lease.metadata;
    (void)call(r, plugins::methods::environment_destroy_lease, params);
    return {.cleanup_status = std::nullopt, .failure_reason = std::string("lease_destroyed")};
}

// ---- in the environment ------------------------------------------------------------------------------

inline command_result plugin_driver::execute(environment const& env, environment_lease const& lease,
                                             command const& cmd) const {
    auto const r = resolve_for_lease(env, lease);
    auto params = base_params(r, env, lease);
    params["lease"] = detail::plugin::worker_lease(lease);
    detail::plugin::add_execute_params(params, cmd);

    // The worker enforces the command's timeout; the call waits a little longer for its answer.
    plugins::call_options options;
    options.timeout = cmd.timeout.count() > 0 ? std::optional(cmd.timeout + std::chrono::seconds(5))
                                              : plugins::detail::rpc_timeout_of(r.driver_config);
    detail::plugin::stream_execute_log(options, cmd);
    auto const started = std::chrono::steady_clock::now();
    auto const reply = r.plugin.worker->call(plugins::methods::environment_execute, params, options);
    auto out = detail::plugin::read_execute_result(
        reply, cmd, "Plugin environment driver \"" + r.plugin_key + ":" + r.driver_key + "\"");
    out.duration = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started);
    return out;
}

inline probe_result plugin_driver::probe(environment const& env) const noexcept {
    try {
        auto const c = plugins::parse_plugin_environment_config(env);
        auto const plugin = resolve(c);
        boost::json::object const params{{"driverKey", c.driver_key},
                                         {"companyId", env.company_id},
                                         {"environmentId", env.id},
                                         {"issueId", nullptr},
                                         {"config", c.driver_config}};
        auto const reply = plugin.worker->call(plugins::methods::environment_probe, params,
                                               {.timeout = plugins::detail::rpc_timeout_of(c.driver_config)});
        probe_result p;
        auto const* o = reply.if_object();
        auto const* ok = o ? o->if_contains("ok") : nullptr;
        p.ok = ok && ok->is_bool() && ok->get_bool();
        p.summary = plugins::detail::read_string(o, "summary")
                        .value_or(p.ok ? "Plugin environment driver \"" + c.provider_key() + "\" is available."
                                       : "Plugin environment driver \"" + c.provider_key() + "\" probe failed.");
        if (o)
            for (char const* key : {"diagnostics", "metadata"})
                if (auto const* v = o->if_contains(key)) p.details[key] = *v;
        p.details["pluginKey"] = c.plugin_key;
        p.details["driverKey"] = c.driver_key;
        return p;
    } catch (std::exception const& e) {
        return probe_result{.ok = false, .summary = e.what(), .details = {}};
    } catch (...) {
        return probe_result{.ok = false, .summary = "plugin probe failed", .details = {}};
    }
}

inline berth::execution_target plugin_driver::execution_target(environment const& env,
                                                               environment_lease const& lease) const {
    boost::json::object const* metadata = lease.metadata ? &*lease.metadata : nullptr;
    berth::execution_target t;
    t.kind = "remote";
    t.transport = "plugin";
    t.environment_id = env.id;
    t.lease_id = lease.id;
    if (metadata)
        if (auto const* pm = metadata->if_contains("providerMetadata"); pm && pm->is_object())
            t.remote_cwd = plugins::detail::read_string(&pm->get_object(), "remoteCwd");
    t.spec = {{"pluginKey", detail::plugin::string_or_null(plugins::detail::read_string(metadata, "pluginKey"))},
              {"driverKey", detail::plugin::string_or_null(plugins::detail::read_string(metadata, "driverKey"))},
              {"providerLeaseId", detail::plugin::string_or_null(lease.provider_lease_id)}};
    return t;
}

inline workspace_realization plugin_driver::realize_on_worker(realize_request const& q) const {
    auto const r = resolve_for_lease(q.env, q.lease);
    auto params = base_params(r, q.env, q.lease);
    params["lease"] = detail::plugin::worker_lease(q.lease);
    boost::json::object workspace;
    if (q.local_path) workspace["localPath"] = *q.local_path;
    if (q.remote_path) workspace["remotePath"] = *q.remote_path;
    if (q.mode) workspace["mode"] = *q.mode;
    if (!q.metadata.empty()) workspace["metadata"] = q.metadata;
    params["workspace"] = std::move(workspace);
    auto const reply = call(r, plugins::methods::environment_realize_workspace, params);
    workspace_realization w;
    auto const* o = reply.if_object();
    w.cwd = plugins::detail::read_string(o, "cwd").value_or("");
    if (o)
        if (auto const* m = o->if_contains("metadata"); m && m->is_object()) w.metadata = m->get_object();
    return w;
}

inline bool plugin_driver::supports_sync(environment const& env, environment_lease const& lease) const {
    auto const r = resolve_for_lease(env, lease);
    if (!r.plugin.worker->supports(plugins::methods::environment_sync_in) ||
        !r.plugin.worker->supports(plugins::methods::environment_sync_out))
        return false;
    auto refuses = [](boost::json::object const* m) {
        if (m == nullptr) return false;
        auto const* n = m->if_contains("nativeFileSyncUnsupported");
        auto const* b = m->if_contains("backend");
        return (n && n->is_bool() && n->get_bool()) || (b && b->is_string() && b->get_string() == "job");
    };
    boost::json::object const* metadata = lease.metadata ? &*lease.metadata : nullptr;
    boost::json::object const* provider = nullptr;
    if (metadata)
        if (auto const* pm = metadata->if_contains("providerMetadata"); pm && pm->is_object())
            provider = &pm->get_object();
    return !refuses(metadata) && !refuses(provider);
}

inline boost::json::value plugin_driver::sync_in(environment const& env, environment_lease const& lease,
                                                 boost::json::array const& operations) const {
    auto const r = resolve_for_lease(env, lease);
    auto params = base_params(r, env, lease);
    params["lease"] = detail::plugin::worker_lease(lease);
    params["operations"] = operations;
    return call(r, plugins::methods::environment_sync_in, params);
}

inline boost::json::value plugin_driver::sync_out(environment const& env, environment_lease const& lease,
                                                  boost::json::array const& operations) const {
    auto const r = resolve_for_lease(env, lease);
    auto params = base_params(r, env, lease);
    params["lease"] = detail::plugin::worker_lease(lease);
    params["operations"] = operations;
    return call(r, plugins::methods::environment_sync_out, params);
}

}  // namespace berth
