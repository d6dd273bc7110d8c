#pragma once
// Definitions of berth/process/spawn.hpp (included at its bottom in header-only mode, by
// <berth/src.hpp> under BERTH_SEPARATE_COMPILATION; include spawn.hpp instead).

#include <berth/detail/config.hpp>         // BERTH_DECL
#include <berth/process/spawn.hpp>         // the declarations (a no-op when included from there: #pragma once)
#include <berth/process/detail/spawn.hpp>  // run_with, running_children

#include <csignal>  // kill
#include <mutex>    // std::lock_guard

namespace berth::process {

BERTH_DECL std::size_t signal_running(int sig) noexcept {
    std::lock_guard lock(detail::running_children().mutex);
    for (pid_t const pid : detail::running_children().groups) {
        ::kill(-pid, sig);
        ::kill(pid, sig);
    }
    return detail::running_children().groups.size();
}

BERTH_DECL command_result run(command const& cmd, run_options const& options) {
    return detail::run_with(cmd, options, detail::exit_watch::pidfd);
}

}  // namespace berth::process
