// berth-run --plugin WORKER [--plugin-config JSON]: the run's plugin environment, served by a
// Paperclip plugin worker (written with @paperclipai/plugin-sdk, unchanged) through berth's
// worker host and the `plugin` driver.
#pragma once

#include "options.hpp"  // options, die_usage

#include <berth/concepts/clock.hpp>  // system_clock
#include <berth/drivers/plugin.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

namespace berth_run {

/// The worker's manifest: manifest.json beside WORKER when there is one (as a plugin package ships
/// it), else a minimal one naming the plugin after the file and declaring one driver, "default".
inline boost::json::object plugin_manifest_of(std::string const& worker) {
    auto const path = std::filesystem::path(worker).parent_path() / "manifest.json";
    if (std::ifstream in{path}) {
        std::stringstream text;
        text << in.rdbuf();
        boost::system::error_code ec;
        auto v = boost::json::parse(text.str(), ec);
        if (ec || !v.is_object() || !v.as_object().contains("id"))
            die_usage(fmt::format("--plugin {}: {} is not a plugin manifest (a JSON object with an \"id\")", worker,
                                  path.string()));
        return std::move(v.as_object());
    }
    return boost::json::object{
        {"id", "berth-run." + std::filesystem::path(worker).stem().string()},
        {"apiVersion", 1},
        {"version", "0.0.0"},
        {"environmentDrivers", boost::json::array{boost::json::object{{"driverKey", "default"},
                                                                      {"kind", "environment_driver"}}}}};
}

/// The manifest's first environment_driver key.
inline std::string plugin_driver_key_of(boost::json::object const& manifest, std::string const& worker) {
    if (auto const* list = manifest.if_contains("environmentDrivers"); list && list->is_array())
        for (auto const& d : list->get_array())
            if (auto const* o = d.if_object()) {
                auto const* kind = o->if_contains("kind");
                auto const* key = o->if_contains("driverKey");
                if (key && key->is_string() && (!kind || (kind->is_string() && kind->get_string() == "environment_driver")))
                    return std::string(key->get_string());
            }
    die_usage(fmt::format("--plugin {}: its manifest declares no environment driver (environmentDrivers[].kind "
                          "\"environment_driver\")",
                          worker));
}

/// --plugin-config as a JSON object (a usage error names the option and the value).
inline boost::json::object plugin_driver_config_of(options const& o) {
    if (!o.plugin_config) return {};
    boost::system::error_code ec;
    auto v = boost::json::parse(*o.plugin_config, ec);
    if (ec || !v.is_object())
        die_usage(fmt::format("--plugin-config {}: expected a JSON object{}", *o.plugin_config,
                              ec ? " (" + ec.message() + ")" : std::string()));
    return std::move(v.as_object());
}

/// The registry with --plugin's worker installed (empty without --plugin). The worker's stderr goes
/// to ours, line by line, unless berth-run is quiet.
inline std::shared_ptr<berth::plugins::registry> plugin_registry_of(options const& o) {
    auto registry = std::make_shared<berth::plugins::registry>();
    if (!o.plugin) return registry;
    auto const& worker = *o.plugin;
    auto const ext = std::filesystem::path(worker).extension().string();
    bool const script = ext == ".mjs" || ext == ".js" || ext == ".cjs";
    berth::plugins::worker_options w;
    w.command = script ? berth::command{.program = "node", .args = {worker}} : berth::command{.program = worker};
    w.manifest = plugin_manifest_of(worker);
    w.plugin_id = std::string(w.manifest.at("id").as_string());
    if (o.mode() == output_mode::normal)
        w.on_stderr = [](std::string_view line) {
            std::fprintf(stderr, "[plugin stderr] %.*s\n", static_cast<int>(line.size()), line.data());
        };
    registry->add(std::move(w));
    return registry;
}

/// The id of the company's plugin environment for this worker and driver config, created on first use.
template <class Store>
std::string plugin_environment(Store& store, options const& o) {
    auto const manifest = plugin_manifest_of(*o.plugin);
    auto const key = std::string(manifest.at("id").as_string());
    boost::json::object const config{{"pluginKey", key},
                                     {"driverKey", plugin_driver_key_of(manifest, *o.plugin)},
                                     {"driverConfig", plugin_driver_config_of(o)}};
    for (auto const& e : store.list_environments(o.company, {.driver = berth::driver_kind::plugin}))
        if (e.config == config) return e.id;
    return store
        .create_environment({.company_id = o.company, .name = "plugin " + key, .driver = berth::driver_kind::plugin,
                             .config = config},
                            berth::system_clock{}.now())
        .id;
}

}  // namespace berth_run
