#pragma once
//! @file
//! A memo of resolve_reuse_identity, so that a reuse hit (a run asking for a shared service that
//! is already running) does not render the templates and compute two SHA-256s every time.
//!
//! The identity is a pure function of the service definition, the context, the scope and `$HOME`
//! (resolve_configured_path expands `~`): the memo's key is all of them, written out field by
//! field (length-prefixed, so that no two inputs give one key), and compared byte for byte. A hit
//! is therefore exactly what resolve_reuse_identity would return; building and hashing the key
//! costs a few hundred nanoseconds, where the identity costs ≈ 3 µs (a dozen JSON objects, two
//! stable serialisations, two SHA-256s, a path normalisation; measured by
//! tests/bench/bench_services.cpp).
//!
//! Run-scoped identities (their scope id is the run's id, never asked for again) are computed and
//! not kept. The memo holds at most `capacity` identities and starts over when full: contexts
//! differ per issue, so a long-lived supervisor would otherwise keep every one it ever saw.
//!
//! Whoever adds an input to resolve_reuse_identity (a template datum of build_template_data, a
//! field of the config it reads) adds it to `write_key` too: tests/unit/services_identity_cache_test.cpp
//! checks each input known today changes the key.

#include <berth/services/config.hpp>    // runtime_service_config
#include <berth/services/context.hpp>   // service_context
#include <berth/services/identity.hpp>  // resolve_reuse_identity, reuse_identity, service_scope

#include <cstddef>        // std::size_t
#include <cstdint>        // std::uint64_t
#include <cstdlib>        // std::getenv
#include <functional>     // std::hash, std::equal_to
#include <memory>         // std::shared_ptr, std::make_shared
#include <mutex>          // std::mutex, std::lock_guard
#include <optional>       // std::optional
#include <string>         // std::string
#include <string_view>    // std::string_view
#include <unordered_map>  // std::unordered_map

namespace berth::services {

class reuse_identity_cache {
public:
    explicit reuse_identity_cache(std::size_t capacity = 256) : capacity_(capacity) {}

    /// resolve_reuse_identity(service, ctx, scope), remembered. Thread-safe; the identity is
    /// shared and immutable.
    [[nodiscard]] std::shared_ptr<reuse_identity const> get(runtime_service_config const& service,
                                                            service_context const& ctx, service_scope const& scope) {
        if (scope.type == runtime_service_scope_type::run || capacity_ == 0)
            return std::make_shared<reuse_identity const>(resolve_reuse_identity(service, ctx, scope));
        // One buffer per thread: after the first call a key costs no allocation.
        thread_local std::string key;
        key.clear();
        write_key(key, service, ctx, scope);
        {
            std::lock_guard lock(mutex_);
            if (auto it = memo_.find(std::string_view(key)); it != memo_.end()) return it->second;
        }
        auto id = std::make_shared<reuse_identity const>(resolve_reuse_identity(service, ctx, scope));
        std::lock_guard lock(mutex_);
        if (memo_.size() >= capacity_) memo_.clear();
        memo_.try_emplace(key, id);
        return id;
    }

    /// How many identities are kept now.
    [[nodiscard]] std::size_t size() const {
        std::lock_guard lock(mutex_);
        return memo_.size();
    }

    /// Every input of resolve_reuse_identity, appended to `out`: each string as its length and its
    /// bytes, each optional as a presence byte first.
    static void write_key(std::string& out, runtime_service_config const& service, service_context const& ctx,
                          service_scope const& scope) {
        auto num = [&](std::uint64_t v) { out.append(reinterpret_cast<char const*>(&v), sizeof v); };
        auto str = [&](std::string_view s) {
            num(s.size());
            out.append(s);
        };
        auto opt = [&](std::optional<std::string> const& s) {
            out += s ? '\1' : '\0';
            if (s) str(*s);
        };
        auto map = [&](std::map<std::string, std::string> const& m) {
            num(m.size());
            for (auto const& [k, v] : m) {
                str(k);
                str(v);
            }
        };
        // The service.
        str(service.name);
        str(service.command);
        str(service.cwd);
        num(static_cast<std::uint64_t>(service.lifecycle));
        num(static_cast<std::uint64_t>(service.port.mode));
        num(static_cast<std::uint64_t>(service.port.value));
        map(service.env);
        // The scope.
        num(static_cast<std::uint64_t>(scope.type));
        opt(scope.id);
        // The template data (build_template_data) and the base of relative paths.
        auto const& w = ctx.workspace;
        str(w.cwd);
        opt(w.branch_name);
        opt(w.worktree_path);
        opt(w.repo_url);
        opt(w.repo_ref);
        out += ctx.issue ? '\1' : '\0';
        if (ctx.issue) {
            str(ctx.issue->id);
            opt(ctx.issue->identifier);
            opt(ctx.issue->title);
        }
        opt(ctx.agent.id);
        str(ctx.agent.name);
        map(ctx.adapter_env);
        // `~` in a rendered cwd.
        char const* home = std::getenv("HOME");
        out += home ? '\1' : '\0';
        if (home) str(home);
    }

private:
    struct key_hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
    };

    std::size_t capacity_;
    mutable std::mutex mutex_;
    std::unordered_map<std::string, std::shared_ptr<reuse_identity const>, key_hash, std::equal_to<>> memo_;
};

}  // namespace berth::services
