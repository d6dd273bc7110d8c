#pragma once
//! @file
//! berth::ssh_config — an SSH environment's config (upstream §1.8 `sshEnvironmentConfigSchema`),
//! read from the environment's config JSON by parse_ssh_config with upstream's rules and messages:
//!
//! | key                    | rule                                                     | message when broken |
//! |------------------------|----------------------------------------------------------|---------------------|
//! | `host`                 | required string, trimmed, non-empty                      | `SSH environments require a host.` |
//! | `port`                 | integer (or a decimal string) 1..65535, default 22       | `SSH port must be an integer from 1 to 65535 (got <v>).` |
//! | `username`             | required string, trimmed, non-empty                      | `SSH environments require a username.` |
//! | `remoteWorkspacePath`  | required string, trimmed, non-empty, starts with `/`     | `SSH environments require a remote workspace path.` / `SSH remote workspace path must be absolute.` |
//! | `privateKey`           | must be absent or null: keys are never stored in config  | `SSH private keys must not be stored in the environment config (privateKey); pass them in ssh_driver_options.` |
//! | `privateKeySecretRef`  | null or `{type: "secret_ref", secretId, version}`        | `SSH privateKeySecretRef must be {type: "secret_ref", secretId, version} or null.` |
//! | `knownHosts`           | string (known_hosts *content*); empty → none             | `SSH knownHosts must be a string (got <v>).` |
//! | `strictHostKeyChecking`| boolean, default true                                    | `SSH strictHostKeyChecking must be a boolean (got <v>).` |
//!
//! The schema is strict like upstream's: any other key is refused (`Unrecognized key(s) in
//! object: '<k>'`), except `leasePolicy`, which the orchestrator reads from every environment.
//! Errors are berth::ssh_config_error naming the field.

#include <berth/drivers/ssh/error.hpp>  // ssh_config_error
#include <berth/model/record.hpp>       // json_object

#include <boost/json/serialize.hpp>  // boost::json::serialize (values in messages)
#include <boost/json/value.hpp>      // boost::json::value

#include <array>        // std::array
#include <cstdint>      // std::int64_t
#include <optional>     // std::optional
#include <string>       // std::string
#include <string_view>  // std::string_view

namespace berth {

/// Upstream's `privateKeySecretRef`: where the host application keeps the key. berth does not
/// resolve it; ssh_driver_options::identity_for does (the application's secret store).
struct ssh_secret_ref {
    std::string secret_id{};
    std::string version{"latest"};  ///< "latest" or a positive integer, as text
};

/// The parsed, validated config of an SSH environment. Holds no secret.
struct ssh_config {
    std::string host{};
    int port = 22;
    std::string username{};
    std::string remote_workspace_path{};
    std::optional<ssh_secret_ref> private_key_secret_ref{};
    std::optional<std::string> known_hosts{};  ///< known_hosts file content, not a path
    bool strict_host_key_checking = true;
};

namespace detail {

inline std::optional<std::string> ssh_trimmed_string(boost::json::value const* v) {
    if (v == nullptr || !v->is_string()) return std::nullopt;
    std::string_view s(v->get_string());
    auto const b = s.find_first_not_of(" \t\r\n");
    if (b == std::string_view::npos) return std::string();
    auto const e = s.find_last_not_of(" \t\r\n");
    return std::string(s.substr(b, e - b + 1));
}

inline constexpr std::array<std::string_view, 9> ssh_config_keys{
    "host", "port", "username", "remoteWorkspacePath", "privateKey", "privateKeySecretRef",
    "knownHosts", "strictHostKeyChecking", "leasePolicy"};

}  // namespace detail

/// Reads and validates an SSH environment's config (the table in this file's comment).
/// @throws berth::ssh_config_error naming the first broken field, with upstream's message.
/// @throws std::bad_alloc
[[nodiscard]] inline ssh_config parse_ssh_config(json_object const& config) {
    for (auto const& kv : config) {
        bool known = false;
        for (auto k : detail::ssh_config_keys) known = known || kv.key() == k;
        if (!known)
            throw ssh_config_error(std::string(kv.key()),
                                   "Unrecognized key(s) in object: '" + std::string(kv.key()) + "'");
    }
    ssh_config c;

    auto host = detail::ssh_trimmed_string(config.if_contains("host"));
    if (!host || host->empty()) throw ssh_config_error("host", "SSH environments require a host.");
    c.host = std::move(*host);

    if (auto const* p = config.if_contains("port"); p != nullptr && !p->is_null()) {
        std::optional<std::int64_t> n;
        if (p->is_int64()) n = p->get_int64();
        else if (p->is_uint64() && p->get_uint64() <= 65535u) n = static_cast<std::int64_t>(p->get_uint64());
        else if (p->is_double() && p->get_double() == static_cast<double>(static_cast<std::int64_t>(p->get_double())))
            n = static_cast<std::int64_t>(p->get_double());
        else if (p->is_string()) {
            auto s = detail::ssh_trimmed_string(p).value_or("");
            if (!s.empty() && s.size() <= 6 && s.find_first_not_of("0123456789") == std::string::npos)
                n = std::stoll(s);
        }
        if (!n || *n < 1 || *n > 65535)
            throw ssh_config_error("port", "SSH port must be an integer from 1 to 65535 (got " +
                                               boost::json::serialize(*p) + ").");
        c.port = static_cast<int>(*n);
    }

    auto user = detail::ssh_trimmed_string(config.if_contains("username"));
    if (!user || user->empty()) throw ssh_config_error("username", "SSH environments require a username.");
    c.username = std::move(*user);

    auto rwp = detail::ssh_trimmed_string(config.if_contains("remoteWorkspacePath"));
    if (!rwp || rwp->empty())
        throw ssh_config_error("remoteWorkspacePath", "SSH environments require a remote workspace path.");
    if (rwp->front() != '/')
        throw ssh_config_error("remoteWorkspacePath", "SSH remote workspace path must be absolute.");
    c.remote_workspace_path = std::move(*rwp);

    if (auto const* k = config.if_contains("privateKey"); k != nullptr && !k->is_null())
        throw ssh_config_error("privateKey",
                               "SSH private keys must not be stored in the environment config (privateKey); "
                               "pass them in ssh_driver_options.");

    if (auto const* r = config.if_contains("privateKeySecretRef"); r != nullptr && !r->is_null()) {
        auto bad = [] {
            return ssh_config_error("privateKeySecretRef",
                                    "SSH privateKeySecretRef must be {type: \"secret_ref\", secretId, version} or null.");
        };
        if (!r->is_object()) throw bad();
        auto const& o = r->get_object();
        auto const* type = o.if_contains("type");
        auto const* id = o.if_contains("secretId");
        if (type == nullptr || !type->is_string() || type->get_string() != "secret_ref" || id == nullptr ||
            !id->is_string() || id->get_string().empty())
            throw bad();
        ssh_secret_ref ref;
        ref.secret_id = std::string(id->get_string());
        if (auto const* v = o.if_contains("version"); v != nullptr && !v->is_null()) {
            if (v->is_string() && v->get_string() == "latest") ref.version = "latest";
            else if (v->is_int64() && v->get_int64() > 0) ref.version = std::to_string(v->get_int64());
            else throw bad();
        }
        c.private_key_secret_ref = std::move(ref);
    }

    if (auto const* k = config.if_contains("knownHosts"); k != nullptr && !k->is_null()) {
        if (!k->is_string())
            throw ssh_config_error("knownHosts",
                                   "SSH knownHosts must be a string (got " + boost::json::serialize(*k) + ").");
        if (auto s = detail::ssh_trimmed_string(k); s && !s->empty()) c.known_hosts = std::string(k->get_string());
    }

    if (auto const* s = config.if_contains("strictHostKeyChecking"); s != nullptr && !s->is_null()) {
        if (!s->is_bool())
            throw ssh_config_error("strictHostKeyChecking", "SSH strictHostKeyChecking must be a boolean (got " +
                                                                boost::json::serialize(*s) + ").");
        c.strict_host_key_checking = s->get_bool();
    }
    return c;
}

}  // namespace berth
