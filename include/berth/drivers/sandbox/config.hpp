#pragma once
//! @file
//! berth::sandbox_config — the envelope of a sandbox environment's config (upstream §1.8,
//! `sandbox`: the `provider` key picks the schema), read by parse_sandbox_config with upstream's
//! rules and messages. The envelope is what the driver itself reads; every other key belongs to
//! the provider, which validates it (sandbox_provider::validate_config).
//!
//! | key                        | rule                                                    | message when broken |
//! |----------------------------|---------------------------------------------------------|---------------------|
//! | `provider`                 | string `^[a-z0-9][a-z0-9._-]*$`, default `fake`          | `Sandbox provider must match ^[a-z0-9][a-z0-9._-]*$ (got <v>).` |
//! | `reuseLease`               | boolean, default false                                  | `Sandbox reuseLease must be a boolean (got <v>).` |
//! | `timeoutMs`                | integer 1..86400000, optional                           | `Sandbox timeoutMs must be an integer from 1 to 86400000 (got <v>).` |
//! | `streamRunLogs`            | boolean, default true (only `false` opts out)           | `Sandbox streamRunLogs must be a boolean (got <v>).` |
//! | `streamAgentSessionOutput` | boolean, default false                                  | likewise |
//! | `archiveOnRelease`         | boolean, optional                                       | likewise |
//!
//! `leasePolicy`, `leaseTtlSeconds` and `maxActiveLeases` are read by the orchestrator and the
//! stores from every environment; they are accepted here and never reach the provider.
//! The provider's config is the rest, with `provider` stripped (upstream
//! stripSandboxProviderEnvelope) and the envelope's other keys kept (upstream passes them on).

#include <berth/drivers/sandbox/provider.hpp>  // sandbox_config_error
#include <berth/model/record.hpp>              // json_object

#include <boost/json/serialize.hpp>  // boost::json::serialize (values in messages)
#include <boost/json/value.hpp>      // boost::json::value

#include <array>        // std::array
#include <cstdint>      // std::int64_t
#include <optional>     // std::optional
#include <string>       // std::string
#include <string_view>  // std::string_view

namespace berth {

/// The provider upstream falls back to when a sandbox config names none.
inline constexpr std::string_view default_sandbox_provider = "fake";

/// The parsed envelope of a sandbox environment's config.
struct sandbox_config {
    std::string provider{default_sandbox_provider};
    bool reuse_lease = false;
    std::optional<std::int64_t> timeout_ms{};
    bool stream_run_logs = true;
    bool stream_agent_session_output = false;
    std::optional<bool> archive_on_release{};
    /// The provider's part: the config without `provider` and without the orchestrator's keys.
    json_object provider_config{};
};

/// Keys of the envelope (the driver's) and of the orchestrator; a strict provider schema accepts
/// them besides its own (sandbox_envelope_key).
inline constexpr std::array<std::string_view, 6> sandbox_envelope_keys{
    "provider", "reuseLease", "timeoutMs", "streamRunLogs", "streamAgentSessionOutput", "archiveOnRelease"};
inline constexpr std::array<std::string_view, 3> orchestrator_config_keys{"leasePolicy", "leaseTtlSeconds",
                                                                          "maxActiveLeases"};

/// Whether `key` is read by the driver or the orchestrator rather than by the provider.
[[nodiscard]] constexpr bool sandbox_envelope_key(std::string_view key) noexcept {
    for (auto k : sandbox_envelope_keys)
        if (k == key) return true;
    for (auto k : orchestrator_config_keys)
        if (k == key) return true;
    return false;
}

/// Whether `name` is a valid provider key (upstream `^[a-z0-9][a-z0-9._-]*$`).
[[nodiscard]] constexpr bool valid_sandbox_provider_name(std::string_view name) noexcept {
    if (name.empty()) return false;
    auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
    if (!alnum(name.front())) return false;
    for (char c : name)
        if (!alnum(c) && c != '.' && c != '_' && c != '-') return false;
    return true;
}
static_assert(valid_sandbox_provider_name("bubblewrap") && valid_sandbox_provider_name("e2b.v1_x-y"));
static_assert(!valid_sandbox_provider_name("") && !valid_sandbox_provider_name("-x") &&
              !valid_sandbox_provider_name("Bubblewrap") && !valid_sandbox_provider_name("a/b"));

namespace detail {
inline std::optional<bool> sandbox_bool(json_object const& config, char const* key) {
    auto const* v = config.if_contains(key);
    if (v == nullptr || v->is_null()) return std::nullopt;
    if (!v->is_bool())
        throw sandbox_config_error(key, std::string("Sandbox ") + key + " must be a boolean (got " +
                                            boost::json::serialize(*v) + ").");
    return v->get_bool();
}
}  // namespace detail

/// Reads and validates the envelope of a sandbox environment's config (the table in this file's
/// comment). Does not look at the provider's keys.
/// @throws berth::sandbox_config_error naming the first broken field.
/// @throws std::bad_alloc
[[nodiscard]] inline sandbox_config parse_sandbox_config(json_object const& config) {
    sandbox_config c;
    if (auto const* p = config.if_contains("provider"); p != nullptr && !p->is_null()) {
        if (!p->is_string() || !valid_sandbox_provider_name(std::string_view(p->get_string())))
            throw sandbox_config_error("provider", "Sandbox provider must match ^[a-z0-9][a-z0-9._-]*$ (got " +
                                                       boost::json::serialize(*p) + ").");
        c.provider = std::string(p->get_string());
    }
    c.reuse_lease = detail::sandbox_bool(config, "reuseLease").value_or(false);
    if (auto const* t = config.if_contains("timeoutMs"); t != nullptr && !t->is_null()) {
        std::optional<std::int64_t> n;
        if (t->is_int64()) n = t->get_int64();
        else if (t->is_uint64() && t->get_uint64() <= 86'400'000u) n = static_cast<std::int64_t>(t->get_uint64());
        if (!n || *n < 1 || *n > 86'400'000)
            throw sandbox_config_error("timeoutMs", "Sandbox timeoutMs must be an integer from 1 to 86400000 (got " +
                                                        boost::json::serialize(*t) + ").");
        c.timeout_ms = *n;
    }
    c.stream_run_logs = detail::sandbox_bool(config, "streamRunLogs").value_or(true);
    c.stream_agent_session_output = detail::sandbox_bool(config, "streamAgentSessionOutput").value_or(false);
    c.archive_on_release = detail::sandbox_bool(config, "archiveOnRelease");

    c.provider_config.reserve(config.size());
    for (auto const& kv : config) {
        if (kv.key() == "provider") continue;
        bool orchestrator_key = false;
        for (auto k : orchestrator_config_keys) orchestrator_key = orchestrator_key || kv.key() == k;
        if (!orchestrator_key) c.provider_config.emplace(kv.key(), kv.value());
    }
    return c;
}

/// Refuses every key of `config` that is neither the envelope's, the orchestrator's, nor in
/// `own` — upstream's strict provider schemas (`Unrecognized key(s) in object: '<k>'`).
/// @throws berth::sandbox_config_error naming the key.
template <std::size_t N>
void refuse_unknown_sandbox_keys(json_object const& config, std::array<std::string_view, N> const& own) {
    for (auto const& kv : config) {
        std::string_view const key(kv.key());
        bool known = sandbox_envelope_key(key);
        for (auto k : own) known = known || k == key;
        if (!known) throw sandbox_config_error(std::string(key), "Unrecognized key(s) in object: '" + std::string(key) + "'");
    }
}

}  // namespace berth
