#pragma once
// /proc readers the tests share: a process's state, parent and group, and this process's zombies.

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>

#include <sys/types.h>
#include <unistd.h>

namespace berth::test {

/// Fields of /proc/<pid>/stat: the pid, and after the command name state, ppid, pgrp.
struct proc_stat {
    pid_t pid;
    char state;
    pid_t ppid;
    pid_t pgrp;
};

inline std::optional<proc_stat> read_stat(std::filesystem::path const& dir) {
    std::ifstream f(dir / "stat");
    std::string line;
    if (!std::getline(f, line)) return std::nullopt;
    auto const close = line.rfind(')');  // the command name may contain spaces and parentheses
    if (close == std::string::npos || close + 2 > line.size()) return std::nullopt;
    proc_stat s{};
    s.pid = static_cast<pid_t>(std::atol(line.c_str()));
    std::istringstream rest(line.substr(close + 2));
    rest >> s.state >> s.ppid >> s.pgrp;
    return rest ? std::optional<proc_stat>(s) : std::nullopt;
}

/// Calls `f(stat)` for every process in /proc (ones that vanish while read are skipped).
template <class F>
void for_each_process(F f) {
    std::error_code ec;  // the range-for form would throw from increment() as processes vanish
    for (std::filesystem::directory_iterator e("/proc", ec), end; !ec && e != end; e.increment(ec)) {
        auto const name = e->path().filename().string();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        if (auto s = read_stat(e->path())) f(*s);
    }
}

/// Zombie children of this process (a missed waitpid leaves one).
inline int zombie_children() {
    int n = 0;
    for_each_process([&](proc_stat const& s) { n += s.ppid == ::getpid() && s.state == 'Z'; });
    return n;
}

}  // namespace berth::test
