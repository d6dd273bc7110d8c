#pragma once
// Definitions of berth::sandbox_driver (declared in berth/drivers/sandbox/driver.hpp).

#include <berth/model/ids.hpp>  // new_id (run id of ad-hoc leases)

#include <boost/json/value.hpp>  // boost::json::value

#include <exception>  // std::exception
#include <optional>   // std::optional
#include <utility>    // std::move

namespace berth {

namespace detail::sandbox {

inline std::optional<std::string> string_at(json_object const& o, std::string_view key) {
    auto const* v = o.if_contains(key);
    if (v == nullptr || !v->is_string() || v->get_string().empty()) return std::nullopt;
    return std::string(v->get_string());
}

/// Keys of a sandbox lease's metadata that the driver owns: a provider's metadata never overrides them.
inline bool driver_owned_key(std::string_view key) noexcept {
    return key == "agentId" || key == "driver" || key == "executionWorkspaceMode" || key == "provider" ||
           key == "sandboxConfig" || key == reusable_sandbox_lease_key || key == "workspaceRealization";
}

inline void merge_provider_metadata(json_object& into, json_object const& from) {
    for (auto const& kv : from)
        if (!driver_owned_key(kv.key())) into[kv.key()] = kv.value();
}

inline std::string provider_message(std::string_view provider, std::string_view what) {
    return "Sandbox provider \"" + std::string(provider) + "\" " + std::string(what);
}

}  // namespace detail::sandbox

template <sandbox_provider... Ps>
template <class F>
void sandbox_driver<Ps...>::with_provider(std::string_view name, F&& f) const {
    bool found = false;
    std::apply(
        [&](auto const&... p) {
            (void)((p.name == name ? (f(p), found = true) : false) || ...);
        },
        providers_);
    if (!found)
        throw sandbox_config_error("provider",
                                   detail::sandbox::provider_message(
                                       name, "is not registered as a built-in provider and no matching plugin is available."));
}

template <sandbox_provider... Ps>
auto sandbox_driver<Ps...>::view_of(environment const& env, environment_lease const& lease) const -> lease_view {
    lease_view v;
    json_object const empty;
    json_object const& md = lease.metadata ? *lease.metadata : empty;
    if (auto const* c = md.if_contains("sandboxConfig"); c && c->is_object())
        v.config = c->get_object();
    else
        v.config = env.config;
    auto const cfg = parse_sandbox_config(v.config);
    v.provider = lease.provider && !lease.provider->empty() ? *lease.provider : cfg.provider;
    v.params.provider_lease_id = lease.provider_lease_id;
    v.params.lease_metadata = md;
    v.params.config = cfg.provider_config;
    v.params.lease_id = lease.id;
    v.params.company_id = lease.company_id;
    v.params.environment_id = lease.environment_id.empty() ? env.id : lease.environment_id;
    v.params.issue_id = lease.issue_id;
    v.params.expires_at = lease.expires_at;
    auto const* scope = md.if_contains(reusable_sandbox_lease_key);
    v.params.reusable = reuses_sandboxes(lease.lease_policy) && scope != nullptr && scope->is_object();
    return v;
}

template <sandbox_provider... Ps>
lease_grant sandbox_driver<Ps...>::acquire(acquire_request const& request) const {
    if (request.env.driver != driver_kind::sandbox)
        throw error("Expected sandbox environment config for driver \"" + std::string(to_string(request.env.driver)) +
                    "\".");
    auto const cfg = parse_sandbox_config(request.env.config);
    lease_grant grant;
    with_provider(cfg.provider, [&](auto const& p) {
        using P = std::remove_cvref_t<decltype(p)>;
        json_object provider_config = cfg.provider_config;
        if constexpr (provider_with_validate_config<P>) provider_config = p.validate_config(provider_config);
        bool const reusable = sandbox_reuse_gate(true, cfg, request) && reuses_sandboxes(request.lease_policy) &&
                              provider_offers_reuse(p);

        sandbox_acquire_params params{
            .company_id = request.company_id,
            .environment_id = request.env.id,
            .issue_id = request.issue_id,
            .config = provider_config,
            .run_id = request.heartbeat_run_id && !request.heartbeat_run_id->empty() ? *request.heartbeat_run_id
                                                                                     : new_id(),
            .workspace_mode = request.execution_workspace_mode,
            .agent_id = request.agent_id.get(),
            .execution_workspace_id = request.execution_workspace_id,
            .adapter_type = request.adapter_type,
            .reusable = reusable,
        };
        sandbox_lease lease = p.acquire(params);

        json_object md;
        md.reserve(8 + lease.metadata.size());
        if (request.agent_id.has_value()) md.emplace("agentId", *request.agent_id);
        md.emplace("driver", "sandbox");
        md.emplace("executionWorkspaceMode", detail::json_or_null_of(request.execution_workspace_mode));
        md.emplace("provider", P::name);
        json_object stored = provider_config;
        stored["provider"] = P::name;
        md.emplace("sandboxConfig", std::move(stored));
        detail::sandbox::merge_provider_metadata(md, lease.metadata);
        // Fingerprinted over the config as stored, so that a reuse policy computes the same record.
        if (reusable) md.emplace(reusable_sandbox_lease_key, sandbox_reuse_scope(request, P::name, cfg.provider_config, request.adapter_type));

        grant.provider = std::string(P::name);
        grant.provider_lease_id = std::move(lease.provider_lease_id);
        grant.expires_at = lease.expires_at;
        grant.metadata = std::move(md);
    });
    return grant;
}

template <sandbox_provider... Ps>
std::optional<json_object> sandbox_driver<Ps...>::reuse_scope(acquire_request const& request) const {
    if (request.env.driver != driver_kind::sandbox) return std::nullopt;
    auto const cfg = parse_sandbox_config(request.env.config);
    std::optional<json_object> scope;
    with_provider(cfg.provider, [&](auto const& p) {
        using P = std::remove_cvref_t<decltype(p)>;
        if (!(sandbox_reuse_gate(true, cfg, request) && reuses_sandboxes(request.lease_policy) &&
              provider_offers_reuse(p)))
            return;
        if constexpr (provider_with_validate_config<P>) (void)p.validate_config(cfg.provider_config);
        scope = sandbox_reuse_scope(request, P::name, cfg.provider_config, request.adapter_type);
    });
    return scope;
}

template <sandbox_provider... Ps>
release_outcome sandbox_driver<Ps...>::release(environment const& env, environment_lease const& lease,
                                               lease_status to) const {
    auto v = view_of(env, lease);
    // Kept, for reuse (a reuse policy's successful run) or for inspection (retain_on_failure):
    // nothing of the sandbox is touched.
    if (to == lease_status::retained) {
        release_outcome kept{.cleanup_status = std::nullopt,
                             .failure_reason = v.params.reusable ? std::nullopt
                                                                 : std::optional<std::string>("adapter_or_run_failure")};
        // A provider that keeps the sandbox itself (a plugin) is told of the run's end, as
        // upstream's plugin path is: cleanup `success`, or `failed` when the call throws; the lease
        // stays `retained` either way.
        with_provider(v.provider, [&](auto const& p) {
            using P = std::remove_cvref_t<decltype(p)>;
            if constexpr (provider_releasing_kept_leases<P>) {
                try {
                    p.release(v.params);
                    kept.cleanup_status = cleanup_status::success;
                } catch (...) {
                    kept.cleanup_status = cleanup_status::failed;
                }
            }
        });
        return kept;
    }
    release_outcome out;
    with_provider(v.provider, [&](auto const& p) {
        using P = std::remove_cvref_t<decltype(p)>;
        if ((to == lease_status::expired || to == lease_status::failed) && v.params.reusable) {
            // A cancelled run's reusable sandbox is not worth keeping (upstream: destroy,
            // lease_expired). Nor is a failed run's: a failed lease is not resumable, so upstream's
            // kept sandbox could never be reused nor found by destroyReusableSandboxLeases — a leak.
            if constexpr (provider_with_destroy<P>) {
                p.destroy(v.params);
            } else {
                v.params.reusable = false;
                p.release(v.params);
            }
            out = {.cleanup_status = cleanup_status::success,
                   .failure_reason = to == lease_status::expired ? "lease_expired" : "adapter_or_run_failure"};
            return;
        }
        p.release(v.params);
        out.cleanup_status = cleanup_status::success;
        if (to == lease_status::failed) out.failure_reason = "adapter_or_run_failure";
    });
    return out;
}

template <sandbox_provider... Ps>
lease_grant sandbox_driver<Ps...>::resume(environment const& env, environment_lease const& lease) const {
    auto v = view_of(env, lease);
    lease_grant grant;
    with_provider(v.provider, [&](auto const& p) {
        using P = std::remove_cvref_t<decltype(p)>;
        if constexpr (provider_with_resume<P>) {
            sandbox_lease res = p.resume(v.params);
            if (!res.provider_lease_id || res.provider_lease_id->empty())
                throw error(detail::sandbox::provider_message(
                    v.provider, "returned no provider lease id when resuming lease \"" + lease.id + "\"."));
            grant.provider = v.provider;
            grant.provider_lease_id = std::move(res.provider_lease_id);
            grant.expires_at = res.expires_at;
            grant.metadata = std::move(v.params.lease_metadata);  // v is not read again
            // The earlier lease's realization is not the new lease's: it is realized anew (upstream
            // builds a resumed lease's metadata afresh; the rest is the sandbox's own).
            grant.metadata.erase("workspaceRealization");
            detail::sandbox::merge_provider_metadata(grant.metadata, res.metadata);
        } else {
            throw error(detail::sandbox::provider_message(v.provider, "does not support lease resume."));
        }
    });
    return grant;
}

template <sandbox_provider... Ps>
release_outcome sandbox_driver<Ps...>::destroy(environment const& env, environment_lease const& lease) const {
    auto v = view_of(env, lease);
    with_provider(v.provider, [&](auto const& p) {
        using P = std::remove_cvref_t<decltype(p)>;
        if constexpr (provider_with_destroy<P>) {
            p.destroy(v.params);
        } else {
            v.params.reusable = false;  // a provider without destroy deletes on a non-reusable release
            p.release(v.params);
        }
    });
    return {.cleanup_status = cleanup_status::success, .failure_reason = std::nullopt};
}

template <sandbox_provider... Ps>
workspace_realization sandbox_driver<Ps...>::realize_workspace(realize_request const& request) const {
    auto const v = view_of(request.env, request.lease);
    auto const& md = v.params.lease_metadata;
    std::optional<std::string> cwd = detail::sandbox::string_at(md, "remoteCwd");
    if (!cwd) cwd = request.remote_path ? request.remote_path : request.local_path;
    json_object provider_md;
    std::string sync = "provider_defined";
    with_provider(v.provider, [&](auto const& p) {
        using P = std::remove_cvref_t<decltype(p)>;
        if constexpr (provider_with_realize<P>) {
            auto res = p.realize(sandbox_realize_params{.lease = v.params,
                                                        .local_path = request.local_path,
                                                        .remote_path = cwd,
                                                        .mode = request.mode,
                                                        .metadata = request.metadata});
            if (res.cwd.find_first_not_of(" \t\r\n") != std::string::npos) cwd = res.cwd;
            provider_md = std::move(res.metadata);
        }
        if (auto s = detail::sandbox::string_at(provider_md, "sync")) sync = *s;
        else if constexpr (provider_with_sync<P>) sync = "sandbox_archive_upload_download";
    });
    json_object record{
        {"version", 1},
        {"driver", "sandbox"},
        {"transport", "sandbox"},
        {"provider", v.provider},
        {"sync", sync},
        {"mode", detail::json_or_null_of(request.mode)},
        {"cwd", detail::json_or_null_of(cwd)},
        {"local", json_object{{"path", detail::json_or_null_of(request.local_path)}}},
        {"remote", json_object{{"path", detail::json_or_null_of(cwd)}}},
    };
    workspace_realization out;
    out.cwd = cwd.value_or(default_sandbox_remote_cwd);
    out.remote_cwd = out.cwd;  // a sandbox's workspace is always on its far side
    out.metadata = std::move(provider_md);
    out.metadata.erase("sync");
    out.metadata["workspaceRealization"] = std::move(record);
    return out;
}

template <sandbox_provider... Ps>
command_result sandbox_driver<Ps...>::execute(environment const& env, environment_lease const& lease,
                                              command const& cmd) const {
    auto const v = view_of(env, lease);
    command_result result;
    with_provider(v.provider, [&](auto const& p) {
        using P = std::remove_cvref_t<decltype(p)>;
        if constexpr (provider_with_execute<P>)
            result = p.execute(v.params, cmd);
        else
            throw error(detail::sandbox::provider_message(v.provider, "does not support direct command execution."));
    });
    return result;
}

template <sandbox_provider... Ps>
probe_result sandbox_driver<Ps...>::probe(environment const& env) const noexcept {
    try {
        if (env.driver != driver_kind::sandbox)
            return probe_result{.ok = false,
                                .summary = "Expected sandbox environment config for driver \"" +
                                           std::string(to_string(env.driver)) + "\".",
                                .details = {}};
        auto const cfg = parse_sandbox_config(env.config);
        probe_result result;
        with_provider(cfg.provider, [&](auto const& p) {
            using P = std::remove_cvref_t<decltype(p)>;
            json_object provider_config = cfg.provider_config;
            if constexpr (provider_with_validate_config<P>) provider_config = p.validate_config(provider_config);
            if constexpr (provider_with_environment_probe<P>) {
                result = p.probe(provider_config, env);
            } else if constexpr (provider_with_probe<P>) {
                result = p.probe(provider_config);
            } else {
                result = probe_result{.ok = true,
                                      .summary = detail::sandbox::provider_message(P::name, "is ready."),
                                      .details = {}};
            }
        });
        result.details.emplace("provider", cfg.provider);
        return result;
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

template <sandbox_provider... Ps>
berth::execution_target sandbox_driver<Ps...>::execution_target(environment const& env,
                                                                environment_lease const& lease) const {
    auto const v = view_of(env, lease);
    auto const cfg = parse_sandbox_config(v.config);
    auto const& md = v.params.lease_metadata;
    std::string const remote_cwd = detail::sandbox::string_at(md, "remoteCwd").value_or(default_sandbox_remote_cwd);
    auto shell = detail::sandbox::string_at(md, "shellCommand");
    if (shell && *shell != "bash" && *shell != "sh") shell.reset();
    berth::execution_target t;
    t.kind = "remote";
    t.transport = "sandbox";
    t.environment_id = env.id;
    t.lease_id = lease.id;
    t.remote_cwd = remote_cwd;
    t.spec = json_object{
        {"providerKey", v.provider},
        {"shellCommand", detail::json_or_null_of(shell)},
        {"remoteCwd", remote_cwd},
        {"timeoutMs", cfg.timeout_ms ? boost::json::value(*cfg.timeout_ms) : boost::json::value(nullptr)},
        {"streamRunLogs", cfg.stream_run_logs},
        {"streamAgentSessionOutput", cfg.stream_agent_session_output},
    };
    return t;
}

template <sandbox_provider... Ps>
bool sandbox_driver<Ps...>::supports_sync(environment const& env, environment_lease const& lease) const {
    auto const v = view_of(env, lease);
    auto const& md = v.params.lease_metadata;
    if (auto const* n = md.if_contains("nativeFileSyncUnsupported"); n && n->is_bool() && n->get_bool()) return false;
    if (detail::sandbox::string_at(md, "backend") == std::optional<std::string>("job")) return false;
    bool supported = false;
    with_provider(v.provider, [&](auto const& p) {
        supported = provider_with_sync<std::remove_cvref_t<decltype(p)>>;
    });
    return supported;
}

template <sandbox_provider... Ps>
sandbox_sync_result sandbox_driver<Ps...>::sync_in(environment const& env, environment_lease const& lease,
                                                   std::string const& local_dir) const {
    auto const v = view_of(env, lease);
    sandbox_sync_result r;
    with_provider(v.provider, [&](auto const& p) {
        if constexpr (provider_with_sync<std::remove_cvref_t<decltype(p)>>)
            r = p.sync_in(v.params, local_dir);
        else
            throw error("Environment driver \"sandbox\" does not support native file sync.");
    });
    return r;
}

template <sandbox_provider... Ps>
sandbox_sync_result sandbox_driver<Ps...>::sync_out(environment const& env, environment_lease const& lease,
                                                    std::string const& local_dir) const {
    auto const v = view_of(env, lease);
    sandbox_sync_result r;
    with_provider(v.provider, [&](auto const& p) {
        if constexpr (provider_with_sync<std::remove_cvref_t<decltype(p)>>)
            r = p.sync_out(v.params, local_dir);
        else
            throw error("Environment driver \"sandbox\" does not support native file sync.");
    });
    return r;
}

static_assert(environment_driver<sandbox_driver<archetypes::sandbox_provider>>);
static_assert(driver_with_resume<sandbox_driver<archetypes::sandbox_provider>> &&
              driver_with_destroy<sandbox_driver<archetypes::sandbox_provider>> &&
              driver_with_realize_workspace<sandbox_driver<archetypes::sandbox_provider>> &&
              driver_with_execute<sandbox_driver<archetypes::sandbox_provider>> &&
              driver_with_probe<sandbox_driver<archetypes::sandbox_provider>> &&
              driver_with_execution_target<sandbox_driver<archetypes::sandbox_provider>>);

}  // namespace berth
