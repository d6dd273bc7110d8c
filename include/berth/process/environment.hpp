#pragma once
//! @file
//! The environment a child process sees: the parent's environment minus secrets.
//!
//! berth never lets a child inherit the parent's environment implicitly. The process layer
//! (spawn.hpp) passes exactly what it is told to: a map, and — only when asked with
//! `run_options::inherit_sanitized_environment` — the parent's environment minus secrets, which
//! is what `sanitized_environment()` returns. The local driver asks for it, with the command's own
//! `env` on top. The list of what counts as a secret is `secret_env_rules` below, in one place:
//!
//! | rule     | text (compared case-insensitively)                                        |
//! |----------|---------------------------------------------------------------------------|
//! | contains | TOKEN, SECRET, PASSWORD, PASSWD, PASSPHRASE, API_KEY, APIKEY, PRIVATE_KEY, |
//! |          | CREDENTIAL, ACCESS_KEY                                                     |
//! | prefix   | AWS_                                                                       |
//! | exact    | SSH_AUTH_SOCK, DATABASE_URL, NPM_CONFIG__AUTH, NPM_CONFIG_TAILSCALE_AUTH,  |
//! |          | NPM_CONFIG_AUTHENTICATED_PRIVATE                                           |
//!
//! The exact names are upstream's `sanitizeRuntimeServiceBaseEnv` removals (DATABASE_URL, the two
//! npm auth settings) plus the ssh-agent socket (it grants the use of the user's keys) and npm's
//! legacy `_auth`. Upstream also drops `PAPERCLIP_*`, the host application's own variables; an
//! application embedding berth that needs the same drops them before calling, or passes its own
//! map to berth::process::run.
//!
//! Matching is on the *name* only: a value is never inspected (a URL with a password in a variable
//! with an innocent name is not caught; name your variables).

#include <array>        // std::array
#include <bit>          // std::countr_zero
#include <cstddef>      // std::size_t
#include <cstdint>      // std::uint32_t
#include <map>          // std::map
#include <string>       // std::string
#include <string_view>  // std::string_view

#include <unistd.h>  // environ (declared with _GNU_SOURCE, which g++ defines)

namespace berth::process {

/// Name → value. The same type as `berth::command::env`, so a command's overrides merge directly.
using environment_map = std::map<std::string, std::string>;

/// How a secret rule matches a variable name.
enum class secret_match { contains, prefix, exact };

/// One rule of the secret list: a name matching it is dropped from sanitized_environment().
struct secret_env_rule {
    secret_match match;
    std::string_view text;  ///< upper case; names are compared case-insensitively
};

/// The secret list (see the table in this file's header comment). Upper case by convention; the
/// comparison folds ASCII case, so `github_token` and `Npm_Config__Auth` are caught as well.
inline constexpr std::array<secret_env_rule, 16> secret_env_rules{{
    {secret_match::contains, "TOKEN"},
    {secret_match::contains, "SECRET"},
    {secret_match::contains, "PASSWORD"},
    {secret_match::contains, "PASSWD"},
    {secret_match::contains, "PASSPHRASE"},
    {secret_match::contains, "API_KEY"},
    {secret_match::contains, "APIKEY"},
    {secret_match::contains, "PRIVATE_KEY"},
    {secret_match::contains, "CREDENTIAL"},
    {secret_match::contains, "ACCESS_KEY"},
    {secret_match::prefix, "AWS_"},
    {secret_match::exact, "SSH_AUTH_SOCK"},
    {secret_match::exact, "DATABASE_URL"},
    {secret_match::exact, "NPM_CONFIG__AUTH"},
    {secret_match::exact, "NPM_CONFIG_TAILSCALE_AUTH"},
    {secret_match::exact, "NPM_CONFIG_AUTHENTICATED_PRIVATE"},
}};

namespace detail {

[[nodiscard]] constexpr char ascii_upper(char c) noexcept { return (c >= 'a' && c <= 'z') ? char(c - 'a' + 'A') : c; }

/// `name[pos, pos + upper.size())` equals `upper`, ignoring ASCII case in `name`.
[[nodiscard]] constexpr bool equals_upper_at(std::string_view name, std::size_t pos, std::string_view upper) noexcept {
    if (pos > name.size() || name.size() - pos < upper.size()) return false;
    for (std::size_t i = 0; i < upper.size(); ++i)
        if (ascii_upper(name[pos + i]) != upper[i]) return false;
    return true;
}

}  // namespace detail

namespace detail {

/// For each (upper-case) letter, the `contains` rules that start with it, as a bit set of indices
/// into secret_env_rules. Most positions of a name start no rule: the scan below skips them with
/// one table look-up, and tries only the few rules that can match at the others.
inline constexpr std::array<std::uint32_t, 256> secret_rules_by_first_letter = [] {
    static_assert(secret_env_rules.size() <= 32, "the bit set holds 32 rules");
    std::array<std::uint32_t, 256> table{};
    for (std::size_t i = 0; i < secret_env_rules.size(); ++i)
        if (secret_env_rules[i].match == secret_match::contains)
            table[static_cast<unsigned char>(secret_env_rules[i].text.front())] |= std::uint32_t(1) << i;
    return table;
}();

}  // namespace detail

/// Whether an environment variable name is on the secret list (`secret_env_rules`).
/// Case-insensitive; pure; usable at compile time. (It runs for every variable of every command
/// the local driver executes, hence the first-letter table rather than one search per rule.)
[[nodiscard]] constexpr bool is_secret_env_name(std::string_view name) noexcept {
    for (auto const& rule : secret_env_rules) {
        if (rule.match == secret_match::exact && name.size() == rule.text.size() &&
            detail::equals_upper_at(name, 0, rule.text))
            return true;
        if (rule.match == secret_match::prefix && detail::equals_upper_at(name, 0, rule.text)) return true;
    }
    for (std::size_t pos = 0; pos < name.size(); ++pos) {
        std::uint32_t candidates =
            detail::secret_rules_by_first_letter[static_cast<unsigned char>(detail::ascii_upper(name[pos]))];
        while (candidates != 0) {
            auto const i = static_cast<std::size_t>(std::countr_zero(candidates));
            candidates &= candidates - 1;
            if (detail::equals_upper_at(name, pos, secret_env_rules[i].text)) return true;
        }
    }
    return false;
}

static_assert(is_secret_env_name("GITHUB_TOKEN") && is_secret_env_name("github_token"));
static_assert(is_secret_env_name("AWS_REGION") && is_secret_env_name("npm_config__auth"));
static_assert(is_secret_env_name("OPENAI_API_KEY") && is_secret_env_name("PGPASSWORD"));
static_assert(!is_secret_env_name("PATH") && !is_secret_env_name("HOME") && !is_secret_env_name("LANG"));
static_assert(!is_secret_env_name("SSH_AUTH_SOCKET_DIR") && !is_secret_env_name("XAWS_"),
              "exact and prefix rules must not behave like contains rules");
static_assert(is_secret_env_name("MY_PASSWD_FILE") && is_secret_env_name("x_passphrase") && !is_secret_env_name("PASS"),
              "rules sharing a first letter (PASSWORD, PASSWD, PASSPHRASE, PRIVATE_KEY) are all tried");

namespace detail {

/// Calls `f(entry, name)` for every entry of `environ` that the child may inherit: well-formed
/// (`NAME=value`, non-empty name) and not a secret. `entry` is the `NAME=value` C string itself.
/// The one definition of "inherited", shared by sanitized_environment() and process::run.
template <class F>
void for_each_inheritable(F&& f) {
    for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
        std::string_view const kv(*entry);
        auto const eq = kv.find('=');
        if (eq == std::string_view::npos || eq == 0) continue;
        auto const name = kv.substr(0, eq);
        if (is_secret_env_name(name)) continue;
        f(*entry, name);
    }
}

}  // namespace detail

/// The calling process's whole environment (read from `environ`), secrets included: what upstream
/// hands a workspace provision command (`{...process.env}`). Same rules for malformed entries and
/// duplicates as sanitized_environment(). Use it only where the seed does (see
/// docs/workspaces.md); everything else gets sanitized_environment().
/// @throws std::bad_alloc
[[nodiscard]] inline environment_map current_environment() {
    environment_map env;
    for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
        std::string_view const kv(*entry);
        auto const eq = kv.find('=');
        if (eq == std::string_view::npos || eq == 0) continue;
        env.emplace(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
    }
    return env;
}

/// The calling process's environment (read from `environ`) without the variables whose names are
/// secrets (is_secret_env_name). Entries without '=' or with an empty name are skipped; if a name
/// appears twice, the first one wins (as getenv does). process::run can use the same environment
/// without building this map (run_options::inherit_sanitized_environment).
///
/// Thread safety: safe to call from many threads at once. Like getenv, it must not race with
/// setenv/putenv/unsetenv in another thread (POSIX gives `environ` no lock).
/// @throws std::bad_alloc
[[nodiscard]] inline environment_map sanitized_environment() {
    environment_map env;
    detail::for_each_inheritable([&](char const* entry, std::string_view name) {
        env.emplace(std::string(name), std::string(entry + name.size() + 1));
    });
    return env;
}

}  // namespace berth::process
