// berth-run --sandbox PROVIDER: the run's sandbox environment (berth::sandbox_driver).
#pragma once

#include "options.hpp"  // options, die_usage

#include <berth/concepts/clock.hpp>  // system_clock
#include <berth/drivers/sandbox.hpp>

#include <boost/json/object.hpp>
#include <fmt/format.h>

#include <filesystem>
#include <optional>
#include <string>

namespace berth_run {

/// The drivers --sandbox can name (the providers this berth-run hosts).
using sandbox_driver = berth::sandbox_driver<berth::bubblewrap>;

inline boost::json::object sandbox_config_of(options const& o) {
    if (!sandbox_driver::hosts(*o.sandbox))
        die_usage(fmt::format("--sandbox {}: unknown provider (this berth-run has: bubblewrap)", *o.sandbox));
    boost::json::object config{{"provider", *o.sandbox}};
    if (o.reuse) {
        config["reuseLease"] = true;
        config["leasePolicy"] = berth::reuse_by_environment::name;
    }
    return config;
}

/// The execution workspace berth-run gives a directory: `berth-run:` and its absolute path.
inline std::string execution_workspace_of_cwd(std::string const& cwd) {
    return "berth-run:" + std::filesystem::absolute(cwd).lexically_normal().string();
}

/// The execution workspace of a --reuse run: --cwd's, or with --worktree the --issue's worktree of
/// --cwd (a kept sandbox is resumed by the next run of the same agent in the same execution
/// workspace). It must be known at acquire, before the worktree exists: so it is this name, not
/// the id of the worktree's execution workspace record (made when the worktree is realized).
inline std::optional<std::string> sandbox_execution_workspace_of(options const& o) {
    if (!o.reuse) return std::nullopt;
    if (o.worktree && o.issue) return execution_workspace_of_cwd(o.cwd) + "#worktree:" + *o.issue;
    return execution_workspace_of_cwd(o.cwd);
}

/// The id of the company's sandbox environment for this provider, created on first use.
template <class Store>
std::string sandbox_environment(Store& store, options const& o) {
    auto const config = sandbox_config_of(o);
    for (auto const& e : store.list_environments(o.company, {.driver = berth::driver_kind::sandbox}))
        if (e.config == config) return e.id;
    return store
        .create_environment({.company_id = o.company, .name = "sandbox " + *o.sandbox,
                             .driver = berth::driver_kind::sandbox, .config = config},
                            berth::system_clock{}.now())
        .id;
}

}  // namespace berth_run
