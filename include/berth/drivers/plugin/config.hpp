#pragma once
//! @file
//! The `plugin` driver's environment config (upstream `{pluginKey, driverKey, driverConfig}`) and
//! the small JSON readings the plugin driver and the plugin-backed sandbox providers share.

#include <berth/error.hpp>              // parse_error
#include <berth/model/environment.hpp>  // environment
#include <berth/model/time.hpp>         // timestamp, parse_iso8601

#include <boost/json/object.hpp>     // boost::json::object
#include <boost/json/serialize.hpp>  // boost::json::serialize (error messages)
#include <boost/json/value.hpp>      // boost::json::value

#include <chrono>       // std::chrono::milliseconds
#include <csignal>      // SIGTERM, ...
#include <optional>     // std::optional
#include <string>       // std::string
#include <string_view>  // std::string_view

namespace berth::plugins {

/// An environment of driver `plugin`: which plugin, which of its drivers, and that driver's config.
struct plugin_environment_config {
    std::string plugin_key;            ///< `pluginKey`, non-empty
    std::string driver_key;            ///< `driverKey`, `^[a-z0-9][a-z0-9._-]*$`
    boost::json::object driver_config; ///< `driverConfig`, default {}

    /// upstream's provider key and error-message name: `<pluginKey>:<driverKey>`.
    [[nodiscard]] std::string provider_key() const { return plugin_key + ":" + driver_key; }
};

namespace detail {

/// upstream's key pattern for driver and provider keys: `^[a-z0-9][a-z0-9._-]*$`.
[[nodiscard]] inline bool is_driver_key(std::string_view k) noexcept {
    if (k.empty()) return false;
    auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
    if (!alnum(k.front())) return false;
    for (char c : k)
        if (!alnum(c) && c != '.' && c != '_' && c != '-') return false;
    return true;
}


/// A non-empty string member, or nullopt (upstream's readString).
[[nodiscard]] inline std::optional<std::string> read_string(boost::json::object const* o, std::string_view key) {
    if (o == nullptr) return std::nullopt;
    auto const* v = o->if_contains(key);
    if (v == nullptr || !v->is_string() || v->get_string().empty()) return std::nullopt;
    return std::string(v->get_string());
}

/// `config.timeoutMs` as an RPC timeout, when it is a positive integer.
[[nodiscard]] inline std::optional<std::chrono::milliseconds> rpc_timeout_of(boost::json::object const& config) {
    auto const* v = config.if_contains("timeoutMs");
    if (v == nullptr) return std::nullopt;
    if (v->is_int64() && v->get_int64() > 0) return std::chrono::milliseconds(v->get_int64());
    if (v->is_uint64() && v->get_uint64() > 0) return std::chrono::milliseconds(static_cast<long long>(v->get_uint64()));
    if (v->is_double() && v->get_double() >= 1) return std::chrono::milliseconds(static_cast<long long>(v->get_double()));
    return std::nullopt;
}

/// upstream's parseExpiresAt: an instant JavaScript's Date accepts, else null (an invalid value is
/// dropped, not an error). Accepts ISO-8601 with `Z`, a `±HH:MM` offset, or a bare date.
[[nodiscard]] inline std::optional<timestamp> parse_expires_at(boost::json::value const* v) noexcept {
    if (v == nullptr || !v->is_string()) return std::nullopt;
    std::string s(v->get_string());
    try {
        if (s.size() == 10) return parse_iso8601(s + "T00:00:00Z");
        if (s.size() > 6) {
            char const sign = s[s.size() - 6];
            if ((sign == '+' || sign == '-') && s[s.size() - 3] == ':') {
                int const h = std::stoi(s.substr(s.size() - 5, 2));
                int const m = std::stoi(s.substr(s.size() - 2, 2));
                auto const offset = std::chrono::minutes(h * 60 + m);
                auto const utc = parse_iso8601(s.substr(0, s.size() - 6) + "Z");
                return sign == '+' ? utc - offset : utc + offset;
            }
        }
        return parse_iso8601(s);
    } catch (...) {
        return std::nullopt;
    }
}

/// A signal name as Node reports it ("SIGTERM") as its number, or nullopt.
[[nodiscard]] inline std::optional<int> signal_number(std::string_view name) noexcept {
    struct entry {
        std::string_view name;
        int number;
    };
    static constexpr entry table[] = {{"SIGHUP", SIGHUP},   {"SIGINT", SIGINT},   {"SIGQUIT", SIGQUIT},
                                      {"SIGILL", SIGILL},   {"SIGABRT", SIGABRT}, {"SIGFPE", SIGFPE},
                                      {"SIGKILL", SIGKILL}, {"SIGSEGV", SIGSEGV}, {"SIGPIPE", SIGPIPE},
                                      {"SIGALRM", SIGALRM}, {"SIGTERM", SIGTERM}, {"SIGUSR1", SIGUSR1},
                                      {"SIGUSR2", SIGUSR2}, {"SIGBUS", SIGBUS},   {"SIGXCPU", SIGXCPU}};
    for (auto const& e : table)
        if (e.name == name) return e.number;
    return std::nullopt;
}

}  // namespace detail

/// Reads an environment's config as the `plugin` driver's.
/// @throws berth::error `Expected plugin environment config for driver "<d>".` when the environment
///         is not a plugin one; berth::parse_error naming the field and the value for a bad field.
[[nodiscard]] inline plugin_environment_config parse_plugin_environment_config(environment const& env) {
    if (env.driver != driver_kind::plugin)
        throw berth::error("Expected plugin environment config for driver \"" + std::string(to_string(env.driver)) +
                           "\".");
    plugin_environment_config c;
    auto const& o = env.config;
    auto const* pk = o.if_contains("pluginKey");
    if (pk == nullptr || !pk->is_string() || pk->get_string().empty())
        throw parse_error("environment.config.pluginKey", pk ? boost::json::serialize(*pk) : "(missing)",
                          "a non-empty plugin key is required");
    c.plugin_key = std::string(pk->get_string());
    auto const* dk = o.if_contains("driverKey");
    if (dk == nullptr || !dk->is_string() || !detail::is_driver_key(dk->get_string()))
        throw parse_error("environment.config.driverKey", dk ? boost::json::serialize(*dk) : "(missing)",
                          "expected a key matching ^[a-z0-9][a-z0-9._-]*$");
    c.driver_key = std::string(dk->get_string());
    if (auto const* dc = o.if_contains("driverConfig"); dc != nullptr && !dc->is_null()) {
        if (!dc->is_object())
            throw parse_error("environment.config.driverConfig", boost::json::serialize(*dc), "expected an object");
        c.driver_config = dc->get_object();
    }
    for (auto const& kv : o)
        if (kv.key() != "pluginKey" && kv.key() != "driverKey" && kv.key() != "driverConfig")
            throw parse_error("environment.config." + std::string(kv.key()), boost::json::serialize(kv.value()),
                              "not a plugin environment field (pluginKey, driverKey, driverConfig)");
    return c;
}

}  // namespace berth::plugins
