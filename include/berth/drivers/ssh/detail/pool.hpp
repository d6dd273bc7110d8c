#pragma once
// The SSH driver's session pool: authenticated sessions kept per destination (host, port, user,
// and the known hosts and key they were verified and authenticated with) and reused across calls,
// one caller at a time per session. Private to berth/drivers/ssh.hpp.

#include <berth/drivers/ssh/detail/channel.hpp>  // channel_setup_error
#include <berth/drivers/ssh/detail/session.hpp>  // endpoint, session_ptr, connect

#include <chrono>      // std::chrono::steady_clock
#include <cstddef>     // std::size_t
#include <functional>  // std::hash
#include <map>         // std::map
#include <mutex>       // std::mutex, std::lock_guard
#include <string>       // std::string
#include <type_traits>  // std::is_void_v
#include <utility>      // std::move, std::pair
#include <vector>      // std::vector

namespace berth::detail::ssh {

/// Counters of a pool (for tests and monitoring).
struct pool_counters {
    std::size_t connections_opened = 0;  ///< sessions connected and authenticated
    std::size_t sessions_reused = 0;     ///< checkouts served from the pool
    std::size_t reconnects = 0;          ///< pooled sessions found dead and replaced
    std::size_t idle = 0;                ///< sessions in the pool now
};

class session_pool {
public:
    session_pool(std::size_t max_idle_per_key, std::chrono::seconds idle_timeout)
        : max_idle_(max_idle_per_key), idle_timeout_(idle_timeout) {}

    /// Calls `f(ssh_session, bool reused)` on a session to `ep`: a pooled one when available,
    /// else a new one. A pooled session whose channel setup fails (the connection died while it
    /// sat in the pool) is dropped and `f` retried once on a fresh connection. The session goes
    /// back to the pool afterwards if it is still connected.
    template <class F>
    auto with_session(endpoint const& ep, F&& f) -> decltype(f(static_cast<ssh_session>(nullptr))) {
        auto const key = key_of(ep);
        auto [session, reused] = checkout(key, ep);
        try {
            if constexpr (std::is_void_v<decltype(f(session.get()))>) {
                f(session.get());
                give_back(key, std::move(session));
                return;
            } else {
                auto r = f(session.get());
                give_back(key, std::move(session));
                return r;
            }
        } catch (channel_setup_error const&) {
            if (!reused) throw;
            session.reset();
            {
                std::lock_guard lock(mutex_);
                ++counters_.reconnects;
            }
            auto fresh = open(ep);
            if constexpr (std::is_void_v<decltype(f(fresh.get()))>) {
                f(fresh.get());
                give_back(key, std::move(fresh));
                return;
            } else {
                auto r = f(fresh.get());
                give_back(key, std::move(fresh));
                return r;
            }
        } catch (...) {
            if (session && ssh_is_connected(session.get())) give_back(key, std::move(session));
            throw;
        }
    }

    [[nodiscard]] pool_counters counters() const {
        std::lock_guard lock(mutex_);
        auto c = counters_;
        c.idle = 0;
        for (auto const& [k, v] : idle_) c.idle += v.size();
        return c;
    }

    /// Closes every pooled session.
    void clear() {
        std::map<std::string, std::vector<entry>> drop;
        std::lock_guard lock(mutex_);
        drop.swap(idle_);
    }

private:
    struct entry {
        session_ptr session;
        std::chrono::steady_clock::time_point last_used;
    };

    static std::string key_of(endpoint const& ep) {
        // The key text is hashed, never kept: the map key must not be a copy of the secret.
        auto const h = std::hash<std::string>{};
        return ep.host + '\x1f' + std::to_string(ep.port) + '\x1f' + ep.username + '\x1f' +
               (ep.strict_host_key_checking ? "strict" : "lax") + '\x1f' +
               std::to_string(h(ep.known_hosts_text.value_or("")) ^ (h(ep.known_hosts_file.value_or("")) << 1)) +
               '\x1f' +
               std::to_string(h(ep.private_key) ^ (h(ep.private_key_file.value_or("")) << 1) ^
                              (h(ep.passphrase) << 2));
    }

    session_ptr open(endpoint const& ep) {
        auto s = connect(ep);
        std::lock_guard lock(mutex_);
        ++counters_.connections_opened;
        return s;
    }

    std::pair<session_ptr, bool> checkout(std::string const& key, endpoint const& ep) {
        std::vector<entry> stale;  // closed outside the lock
        {
            std::lock_guard lock(mutex_);
            auto it = idle_.find(key);
            if (it != idle_.end()) {
                auto const now = std::chrono::steady_clock::now();
                while (!it->second.empty()) {
                    entry e = std::move(it->second.back());
                    it->second.pop_back();
                    if (!ssh_is_connected(e.session.get())) {
                        ++counters_.reconnects;  // found dead: replaced by the connection below
                        stale.push_back(std::move(e));
                        continue;
                    }
                    if (idle_timeout_.count() > 0 && now - e.last_used > idle_timeout_) {
                        stale.push_back(std::move(e));
                        continue;
                    }
                    ++counters_.sessions_reused;
                    return {std::move(e.session), true};
                }
            }
        }
        return {open(ep), false};
    }

    void give_back(std::string const& key, session_ptr s) {
        if (!s || !ssh_is_connected(s.get())) return;
        std::lock_guard lock(mutex_);
        auto& v = idle_[key];
        if (v.size() >= max_idle_) return;  // closed on return
        v.push_back(entry{std::move(s), std::chrono::steady_clock::now()});
    }

    mutable std::mutex mutex_;
    std::map<std::string, std::vector<entry>> idle_;
    pool_counters counters_{};
    std::size_t max_idle_;
    std::chrono::seconds idle_timeout_;
};

}  // namespace berth::detail::ssh
