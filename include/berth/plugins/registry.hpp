#pragma once
//! @file
//! berth::plugins::registry — the plugins an application has installed, each with its manifest and
//! its worker (upstream's plugin registry and worker manager, in one small thread-safe map). The
//! `plugin` driver and the plugin-backed sandbox providers resolve plugins here.
//!
//! @code
//! auto plugins = std::make_shared<berth::plugins::registry>();
//! plugins->add({.command = {.program = "node", .args = {"/opt/acme/dist/worker.js"}},
//!               .plugin_id = "acme.sandbox", .manifest = manifest});   // manifest.id = "acme.sandbox"
//! berth::plugin_driver driver{plugins};
//! @endcode

#include <berth/plugins/worker_host.hpp>  // worker_host, worker_options

#include <boost/json/object.hpp>  // boost::json::object

#include <map>          // std::map
#include <memory>       // std::shared_ptr
#include <mutex>        // std::mutex
#include <optional>     // std::optional
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <vector>       // std::vector

namespace berth::plugins {

/// One installed plugin.
struct installed_plugin {
    std::string id;      ///< upstream's `plugins.id` (a row id); berth uses the key unless told otherwise
    std::string key;     ///< upstream's `pluginKey`: the manifest's `id`
    std::string status;  ///< "ready" when usable; anything else makes drivers refuse it ("is not ready")
    std::shared_ptr<worker_host> worker;

    [[nodiscard]] boost::json::object const& manifest() const noexcept { return worker->options().manifest; }
    /// The manifest's `environmentDrivers[]` entry with this `driverKey`, or null.
    [[nodiscard]] boost::json::object const* declared_driver(std::string_view driver_key) const noexcept {
        auto const* list = manifest().if_contains("environmentDrivers");
        if (list == nullptr || !list->is_array()) return nullptr;
        for (auto const& d : list->get_array())
            if (auto const* o = d.if_object())
                if (auto const* k = o->if_contains("driverKey"); k && k->is_string() && k->get_string() == driver_key)
                    return o;
        return nullptr;
    }
};

class registry {
public:
    /// Installs a plugin: its key is `options.plugin_id` (upstream's manifest id), its id `id` when
    /// given, else the key. The worker starts on first use. Replaces a plugin with the same key.
    std::shared_ptr<worker_host> add(worker_options options, std::string status = "ready", std::string id = {}) {
        installed_plugin p;
        p.key = options.plugin_id;
        p.id = id.empty() ? p.key : std::move(id);
        p.status = std::move(status);
        p.worker = std::make_shared<worker_host>(std::move(options));
        std::lock_guard lock(mutex_);
        plugins_[p.key] = p;
        return p.worker;
    }

    /// Marks a plugin "ready", "disabled", "error", ... (upstream's plugin status).
    void set_status(std::string_view key, std::string status) {
        std::lock_guard lock(mutex_);
        if (auto it = plugins_.find(key); it != plugins_.end()) it->second.status = std::move(status);
    }

    [[nodiscard]] std::optional<installed_plugin> by_key(std::string_view key) const {
        std::lock_guard lock(mutex_);
        if (auto it = plugins_.find(key); it != plugins_.end()) return it->second;
        return std::nullopt;
    }

    [[nodiscard]] std::optional<installed_plugin> by_id(std::string_view id) const {
        std::lock_guard lock(mutex_);
        for (auto const& [key, p] : plugins_)
            if (p.id == id) return p;
        return std::nullopt;
    }

    /// The installed plugin whose manifest declares `driver_key` with `kind` (e.g. a sandbox provider
    /// key), whatever its status; nullopt when none does.
    [[nodiscard]] std::optional<installed_plugin> declaring(std::string_view driver_key, std::string_view kind) const {
        std::lock_guard lock(mutex_);
        for (auto const& [key, p] : plugins_)
            if (auto const* d = p.declared_driver(driver_key)) {
                auto const* k = d->if_contains("kind");
                std::string_view const declared =
                    k && k->is_string() ? std::string_view(k->get_string()) : std::string_view("environment_driver");
                if (declared == kind) return p;
            }
        return std::nullopt;
    }

    /// Stops every worker (each one `shutdown`, then SIGTERM, then SIGKILL).
    void stop_all() noexcept {
        std::vector<std::shared_ptr<worker_host>> workers;
        {
            std::lock_guard lock(mutex_);
            for (auto const& [key, p] : plugins_) workers.push_back(p.worker);
        }
        for (auto const& w : workers) w->stop();
    }

private:
    mutable std::mutex mutex_;
    std::map<std::string, installed_plugin, std::less<>> plugins_;
};

}  // namespace berth::plugins
