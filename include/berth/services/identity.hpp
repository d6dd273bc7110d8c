#pragma once
//! @file
//! Who a runtime service is: upstream's scope ids (resolveServiceScopeId), reuse identity
//! (resolveRuntimeServiceReuseIdentity: the reuse key and env fingerprint), the registry's
//! serviceKey (createLocalServiceKey) and the adapter-managed ids (stableRuntimeServiceId), all
//! SHA-256 (OpenSSL libcrypto) over upstream's stable serialisation (stableStringify: object keys
//! sorted, JSON scalars). Also the small rules every start uses: resolveShell, the service base
//! environment (sanitizeRuntimeServiceBaseEnv) and resolveConfiguredPath.

#include <berth/model/runtime_service.hpp>  // runtime_service_scope_type, runtime_service_lifecycle
#include <berth/process/environment.hpp>    // sanitized_environment, environment_map
#include <berth/services/config.hpp>        // runtime_service_config
#include <berth/services/context.hpp>       // service_context
#include <berth/services/template.hpp>      // build_template_data, render_template, render_service_env

#include <boost/json/array.hpp>      // boost::json::array
#include <boost/json/object.hpp>     // boost::json::object
#include <boost/json/serialize.hpp>  // serialize (scalars)
#include <boost/json/value.hpp>      // boost::json::value

#include <openssl/evp.h>  // EVP_MD_fetch, EVP_Digest*

#include <algorithm>    // std::sort
#include <cstdint>      // std::int64_t
#include <cstdlib>      // std::getenv
#include <filesystem>   // std::filesystem::path
#include <optional>     // std::optional
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <vector>       // std::vector

#include <unistd.h>  // access, X_OK

namespace berth::services {

namespace detail {
[[nodiscard]] inline std::string trimmed_copy(std::string_view s) {
    auto const b = s.find_first_not_of(" \t\r\n");
    if (b == std::string_view::npos) return {};
    auto const e = s.find_last_not_of(" \t\r\n");
    return std::string(s.substr(b, e - b + 1));
}
}  // namespace detail

/// Lower-case hex SHA-256 of `data`. The algorithm is fetched once per process and the digest
/// context kept per thread (OpenSSL 3's implicit fetch in EVP_Digest costs more than hashing the
/// few hundred bytes of an identity).
[[nodiscard]] inline std::string sha256_hex(std::string_view data) {
    static EVP_MD* const algorithm = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    struct context_holder {
        EVP_MD_CTX* ctx = EVP_MD_CTX_new();
        ~context_holder() { EVP_MD_CTX_free(ctx); }
    };
    thread_local context_holder holder;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!algorithm || !holder.ctx || EVP_DigestInit_ex(holder.ctx, algorithm, nullptr) != 1 ||
        EVP_DigestUpdate(holder.ctx, data.data(), data.size()) != 1 || EVP_DigestFinal_ex(holder.ctx, md, &len) != 1)
        throw error("SHA-256 failed (OpenSSL EVP)");
    static constexpr char hex[] = "0123456789abcdef";
    std::string out(len * 2, '0');
    for (unsigned int i = 0; i < len; ++i) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 0xf];
    }
    return out;
}

/// upstream stableStringify: arrays in order, objects with their keys sorted, scalars as JSON.
inline void stable_stringify_to(std::string& out, boost::json::value const& v) {
    if (v.is_array()) {
        out += '[';
        bool first = true;
        for (auto const& e : v.get_array()) {
            if (!std::exchange(first, false)) out += ',';
            stable_stringify_to(out, e);
        }
        out += ']';
    } else if (v.is_object()) {
        auto const& o = v.get_object();
        std::vector<std::string_view> keys;
        keys.reserve(o.size());
        for (auto const& kv : o) keys.push_back(kv.key());
        std::sort(keys.begin(), keys.end());
        out += '{';
        bool first = true;
        for (auto k : keys) {
            if (!std::exchange(first, false)) out += ',';
            out += boost::json::serialize(boost::json::value(boost::json::string_view(k.data(), k.size())));
            out += ':';
            stable_stringify_to(out, o.at(k));
        }
        out += '}';
    } else {
        out += boost::json::serialize(v);
    }
}

[[nodiscard]] inline std::string stable_stringify(boost::json::value const& v) {
    std::string out;
    stable_stringify_to(out, v);
    return out;
}

/// upstream resolveShell: `$SHELL` trimmed, else /bin/sh; an absolute `$SHELL` that is not
/// executable also falls back to /bin/sh.
[[nodiscard]] inline std::string resolve_shell() {
    char const* s = std::getenv("SHELL");
    std::string shell = s ? s : "";
    auto const b = shell.find_first_not_of(" \t\r\n");
    auto const e = shell.find_last_not_of(" \t\r\n");
    shell = b == std::string::npos ? std::string() : shell.substr(b, e - b + 1);
    if (shell.empty()) return "/bin/sh";
    if (shell.front() == '/' && ::access(shell.c_str(), X_OK) != 0) return "/bin/sh";
    return shell;
}

/// upstream sanitizeRuntimeServiceBaseEnv, berth's way: this process's environment minus every
/// secret (process::sanitized_environment, which includes upstream's DATABASE_URL and npm auth
/// removals) and minus berth's own `BERTH_*` variables (upstream drops `PAPERCLIP_*`).
[[nodiscard]] inline environment_map service_base_environment() {
    auto env = process::sanitized_environment();
    std::erase_if(env, [](auto const& kv) { return kv.first.rfind("BERTH_", 0) == 0; });
    return env;
}

/// upstream resolveConfiguredPath: `~` and `~/x` against $HOME, absolute paths as they are,
/// others against `base`; the result is normalised (no `.`, `..` or trailing `/`).
[[nodiscard]] inline std::string resolve_configured_path(std::string const& value, std::string const& base) {
    std::filesystem::path p;
    if (value == "~" || value.rfind("~/", 0) == 0) {
        char const* home = std::getenv("HOME");
        p = std::filesystem::path(home ? home : "/") / value.substr(value.size() > 1 ? 2 : 1);
    } else if (!value.empty() && value.front() == '/') {
        p = value;
    } else {
        p = std::filesystem::path(base) / value;
    }
    auto s = p.lexically_normal().string();
    while (s.size() > 1 && s.back() == '/') s.pop_back();
    return s;
}

/// A service's scope (upstream resolveServiceScopeId).
struct service_scope {
    runtime_service_scope_type type = runtime_service_scope_type::run;
    std::optional<std::string> id{};
};

/// project_workspace → workspace id ?? project id; execution_workspace → execution workspace id ??
/// workspace cwd; agent → agent id; run → the run id.
[[nodiscard]] inline service_scope resolve_scope(runtime_service_config const& service, service_context const& ctx,
                                                 std::string const& run_id) {
    auto const type = service.scope();
    auto const& w = ctx.workspace;
    switch (type) {
        case runtime_service_scope_type::project_workspace:
            return {type, w.project_workspace_id ? w.project_workspace_id : w.project_id};
        case runtime_service_scope_type::execution_workspace:
            return {type, w.execution_workspace_id ? *w.execution_workspace_id : w.cwd};
        case runtime_service_scope_type::agent: return {type, ctx.agent.id};
        case runtime_service_scope_type::run: break;
    }
    return {runtime_service_scope_type::run, run_id};
}

/// upstream resolveRuntimeServiceReuseIdentity.
struct reuse_identity {
    std::string service_cwd;                     ///< rendered with the identity port, resolved
    std::map<std::string, std::string> env;      ///< rendered with the identity port
    std::string env_fingerprint;                 ///< sha256(stableStringify(env))
    std::optional<std::int64_t> identity_port;   ///< the explicit port, else null
    std::optional<std::string> reuse_key;        ///< shared services only
};

[[nodiscard]] inline boost::json::value nullable_json(std::optional<std::string> const& s) {
    return s ? boost::json::value(*s) : boost::json::value(nullptr);
}

[[nodiscard]] inline boost::json::object env_json(std::map<std::string, std::string> const& env) {
    boost::json::object o;
    for (auto const& [k, v] : env) o[k] = v;
    return o;
}

[[nodiscard]] inline reuse_identity resolve_reuse_identity(runtime_service_config const& service,
                                                           service_context const& ctx, service_scope const& scope) {
    reuse_identity id;
    if (service.port.mode == port_config::kind::fixed) id.identity_port = service.port.value;
    auto const data = build_template_data(ctx, id.identity_port);
    id.service_cwd = resolve_configured_path(render_template(service.cwd, data), ctx.workspace.cwd);
    id.env = render_service_env(service, data);
    auto const env = env_json(id.env);
    id.env_fingerprint = sha256_hex(stable_stringify(env));
    if (service.lifecycle == runtime_service_lifecycle::shared) {
        boost::json::object key{{"scopeType", to_string(scope.type)},
                                {"scopeId", nullable_json(scope.id)},
                                {"serviceName", service.name},
                                {"command", service.command},
                                {"cwd", id.service_cwd},
                                {"env", env}};
        key["port"] = id.identity_port ? boost::json::value(*id.identity_port) : boost::json::value(nullptr);
        id.reuse_key = sha256_hex(stable_stringify(key));
    }
    return id;
}

/// Lower-case, runs of anything but [a-z0-9_-] as one `-`, no leading or trailing `-`/`_`;
/// `fallback` when nothing is left (upstream sanitizeSlugPart).
[[nodiscard]] inline std::string sanitize_slug(std::string_view value, std::string_view fallback) {
    std::string out;
    for (char c : value) {
        char const l = (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c;
        bool const ok = (l >= 'a' && l <= 'z') || (l >= '0' && l <= '9') || l == '_' || l == '-';
        if (ok && !(l == '-' && !out.empty() && out.back() == '-')) out += l;
        else if (!ok && (out.empty() || out.back() != '-')) out += '-';
    }
    auto const b = out.find_first_not_of("-_");
    if (b == std::string::npos) return std::string(fallback);
    auto const e = out.find_last_not_of("-_");
    return out.substr(b, e - b + 1);
}

/// What createLocalServiceKey hashes.
struct service_key_input {
    std::string profile_kind = "workspace-runtime";
    std::string service_name{};
    std::string cwd{};
    std::string command{};
    std::string env_fingerprint{};
    std::optional<std::int64_t> port{};
    service_scope scope{};
    std::optional<std::string> execution_workspace_id{};
    std::optional<std::string> reuse_key{};
};

/// `<profileKind>-<serviceName>-<sha256(stable{...})[:24]>`, both names sanitised: the registry
/// file name (only [a-z0-9_-], so it cannot leave the registry directory).
[[nodiscard]] inline std::string service_key(service_key_input const& in) {
    boost::json::object scope{{"scopeType", to_string(in.scope.type)},
                              {"scopeId", nullable_json(in.scope.id)},
                              {"executionWorkspaceId", nullable_json(in.execution_workspace_id)},
                              {"reuseKey", nullable_json(in.reuse_key)}};
    boost::json::object key{{"profileKind", in.profile_kind}, {"serviceName", in.service_name},
                            {"cwd", in.cwd},                  {"command", in.command},
                            {"envFingerprint", in.env_fingerprint}, {"scope", std::move(scope)}};
    key["port"] = in.port ? boost::json::value(*in.port) : boost::json::value(nullptr);
    return sanitize_slug(in.profile_kind, "service") + "-" + sanitize_slug(in.service_name, "service") + "-" +
           sha256_hex(stable_stringify(key)).substr(0, 24);
}

/// upstream stableRuntimeServiceId: the report's id, else `<adapterType>-<sha256(...)[:32]>`.
[[nodiscard]] inline std::string stable_adapter_service_id(std::string const& adapter_type, std::string const& run_id,
                                                           service_scope const& scope, std::string const& service_name,
                                                           std::optional<std::string> const& report_id,
                                                           std::optional<std::string> const& provider_ref,
                                                           std::optional<std::string> const& reuse_key) {
    if (report_id && !report_id->empty()) return *report_id;
    boost::json::object o{{"adapterType", adapter_type},
                          {"runId", run_id},
                          {"scopeType", to_string(scope.type)},
                          {"scopeId", nullable_json(scope.id)},
                          {"serviceName", service_name},
                          {"providerRef", nullable_json(provider_ref)},
                          {"reuseKey", nullable_json(reuse_key)}};
    return adapter_type + "-" + sha256_hex(stable_stringify(o)).substr(0, 32);
}

}  // namespace berth::services
