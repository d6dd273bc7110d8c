// berth-run --ssh USER@HOST:PORT:/PATH: the SSH environment of the run.
#pragma once

#include "options.hpp"  // options, die_usage

#include <berth/drivers/ssh.hpp>
#include <berth/concepts/clock.hpp>  // system_clock

#include <boost/json/object.hpp>
#include <fmt/format.h>

#include <optional>
#include <string>

namespace berth_run {

/// `user@host:port:/path` (or `user@host:/path`) as an SSH environment config; parse_ssh_config
/// checks it with upstream's messages. A bad spec is a usage error, found before --db is opened.
inline boost::json::object ssh_config_of(std::string const& spec) {
    auto const at = spec.find('@');
    auto const path = spec.find(":/");
    if (at == std::string::npos || path == std::string::npos || path < at)
        die_usage(fmt::format("--ssh: expected USER@HOST:PORT:/PATH, got {}", spec));
    auto host = spec.substr(at + 1, path - at - 1);
    boost::json::object config{{"username", spec.substr(0, at)}, {"remoteWorkspacePath", spec.substr(path + 1)}};
    if (auto const colon = host.rfind(':'); colon != std::string::npos) {
        config["port"] = host.substr(colon + 1);
        host.resize(colon);
    }
    config["host"] = host;
    try {
        config["port"] = berth::parse_ssh_config(config).port;
    } catch (berth::ssh_config_error const& e) {
        die_usage(fmt::format("--ssh {}: {}", spec, e.what()));
    }
    return config;
}

/// The id of the company's SSH environment for this config, created on first use.
template <class Store>
std::string ssh_environment(Store& store, options const& o) {
    auto const config = ssh_config_of(*o.ssh);
    for (auto const& e : store.list_environments(o.company, {.driver = berth::driver_kind::ssh}))
        if (e.config == config) return e.id;
    return store
        .create_environment({.company_id = o.company, .name = "ssh " + *o.ssh, .driver = berth::driver_kind::ssh,
                             .config = config},
                            berth::system_clock{}.now())
        .id;
}

inline berth::ssh_driver_options ssh_driver_options_of(options const& o) {
    berth::ssh_driver_options ssh_options;
    if (o.identity) ssh_options.identity = berth::ssh_identity{.private_key_file = *o.identity};
    ssh_options.known_hosts_file = o.known_hosts;
    return ssh_options;
}

}  // namespace berth_run
