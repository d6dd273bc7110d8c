#pragma once
// Facts about other processes, read from Linux /proc (upstream asks `ps`, `lsof` and
// /proc/<pid>/cwd): is a pid alive, its command line, its cwd, its process group, and which
// process listens on a TCP port. Not a public API.

#include <cerrno>       // errno, EPERM
#include <csignal>      // kill
#include <cstddef>      // std::size_t
#include <cstdint>      // std::int64_t
#include <cstdio>       // std::sscanf
#include <filesystem>   // directory_iterator, read_symlink
#include <fstream>      // std::ifstream
#include <map>          // std::map
#include <optional>     // std::optional
#include <set>          // std::set
#include <string>       // std::string, std::getline
#include <system_error> // std::error_code

#include <fcntl.h>      // open, O_RDONLY, O_CLOEXEC
#include <sys/types.h>  // pid_t, ssize_t
#include <unistd.h>     // getpgid, read, close

namespace berth::services::detail {

/// kill(pid, 0): the process exists (EPERM: it exists but is not ours). A zombie counts as alive.
[[nodiscard]] inline bool pid_alive(std::int64_t pid) noexcept {
    if (pid <= 0) return false;
    return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

/// The rest of the open file `fd`, or nullopt on a read error. A /proc/<pid>/ file whose process
/// exits after the open fails its read with ESRCH, and libstdc++'s streams throw
/// std::ios_base::failure on that: every /proc read here goes through this instead.
[[nodiscard]] inline std::optional<std::string> read_all(int fd) {
    std::string out;
    char buf[4096];
    while (true) {
        ssize_t const n = ::read(fd, buf, sizeof buf);
        if (n > 0) out.append(buf, static_cast<std::size_t>(n));
        else if (n == 0) return out;
        else if (errno != EINTR) return std::nullopt;
    }
}

/// The whole of `path`, or nullopt when it cannot be opened or read (the process is gone).
[[nodiscard]] inline std::optional<std::string> read_proc_file(std::string const& path) {
    int const fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return std::nullopt;
    auto out = read_all(fd);
    ::close(fd);
    return out;
}

/// True when the process exists and is not a zombie (state Z in /proc/<pid>/stat).
[[nodiscard]] inline bool pid_running(std::int64_t pid) {
    if (!pid_alive(pid)) return false;
    auto const stat = read_proc_file("/proc/" + std::to_string(pid) + "/stat");
    if (!stat) return pid_alive(pid);  // unreadable: it may have just exited
    auto const close = stat->rfind(')');
    if (close == std::string::npos || close + 2 >= stat->size()) return true;
    return (*stat)[close + 2] != 'Z' && (*stat)[close + 2] != 'X';
}

/// `ps -o command=`: the command line with NULs as spaces ("" when unreadable).
[[nodiscard]] inline std::string command_line(std::int64_t pid) {
    auto s = read_proc_file("/proc/" + std::to_string(pid) + "/cmdline").value_or(std::string());
    while (!s.empty() && s.back() == '\0') s.pop_back();
    for (auto& c : s)
        if (c == '\0') c = ' ';
    return s;
}

/// The process's working directory, or nullopt when unreadable.
[[nodiscard]] inline std::optional<std::string> process_cwd(std::int64_t pid) {
    std::error_code ec;
    auto p = std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/cwd", ec);
    if (ec) return std::nullopt;
    return p.string();
}

/// The process group of `pid`, or nullopt.
[[nodiscard]] inline std::optional<std::int64_t> process_group(std::int64_t pid) noexcept {
    pid_t const g = ::getpgid(static_cast<pid_t>(pid));
    if (g < 0) return std::nullopt;
    return g;
}

/// Socket inodes listening on any TCP port of `ports` (IPv4 and IPv6), each with its port.
[[nodiscard]] inline std::map<std::string, std::int64_t> listening_inodes(std::set<std::int64_t> const& ports) {
    std::map<std::string, std::int64_t> out;
    for (char const* file : {"/proc/net/tcp", "/proc/net/tcp6"}) {
        std::ifstream in(file);
        std::string line;
        std::getline(in, line);  // header
        while (std::getline(in, line)) {
            // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
            char local[128], remote[128], state[8];
            unsigned long inode = 0;
            int n = std::sscanf(line.c_str(), " %*s %127s %127s %7s %*s %*s %*s %*s %*s %lu", local, remote, state,
                                &inode);
            if (n != 4 || std::string(state) != "0A") continue;  // 0A: LISTEN
            std::string const l(local);
            auto const colon = l.rfind(':');
            if (colon == std::string::npos) continue;
            auto const port = std::stol(l.substr(colon + 1), nullptr, 16);
            if (ports.contains(port)) out.emplace(std::to_string(inode), port);
        }
    }
    return out;
}

/// `lsof -nP -iTCP:<port> -sTCP:LISTEN -t` for many ports in one walk of /proc: for each port of
/// `ports` with a listener, a pid that holds the listening socket. (Only processes whose
/// /proc/<pid>/fd this process may read are seen.)
[[nodiscard]] inline std::map<std::int64_t, std::int64_t> port_owners(std::set<std::int64_t> const& ports) {
    std::map<std::int64_t, std::int64_t> owners;
    auto const inodes = listening_inodes(ports);
    if (inodes.empty()) return owners;
    std::set<std::int64_t> wanted;
    for (auto const& [inode, port] : inodes) wanted.insert(port);
    // Processes come and go while /proc is walked: every step takes an error_code (the range-for
    // form of directory_iterator throws from its increment).
    namespace fs = std::filesystem;
    std::error_code ec;
    for (fs::directory_iterator proc("/proc", ec), end; !ec && proc != end; proc.increment(ec)) {
        auto const name = proc->path().filename().string();
        if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
        std::error_code fec;
        for (fs::directory_iterator fd(proc->path() / "fd", fec); !fec && fd != end; fd.increment(fec)) {
            std::error_code lec;
            auto const target = fs::read_symlink(fd->path(), lec).string();
            if (lec || target.rfind("socket:[", 0) != 0) continue;
            auto const hit = inodes.find(target.substr(8, target.size() - 9));
            if (hit == inodes.end() || owners.contains(hit->second)) continue;
            owners.emplace(hit->second, std::stoll(name));
            if (owners.size() == wanted.size()) return owners;
        }
    }
    return owners;
}

/// `lsof -nP -iTCP:<port> -sTCP:LISTEN -t`: a pid that holds a socket listening on `port`, or nullopt.
[[nodiscard]] inline std::optional<std::int64_t> port_owner(std::int64_t port) {
    auto const owners = port_owners({port});
    if (owners.empty()) return std::nullopt;
    return owners.begin()->second;
}

/// `path` is `root` or inside it (lexically, after normalisation): never a sibling (`/a/bc` is
/// not inside `/a/b`).
[[nodiscard]] inline bool path_within(std::string const& path, std::string const& root) {
    auto norm = [](std::string const& s) {
        auto n = std::filesystem::path(s).lexically_normal().string();
        while (n.size() > 1 && n.back() == '/') n.pop_back();
        return n;
    };
    auto const p = norm(path);
    auto const r = norm(root);
    if (p == r) return true;
    if (r == "/") return !p.empty() && p.front() == '/';
    return p.size() > r.size() && p.compare(0, r.size(), r) == 0 && p[r.size()] == '/';
}

}  // namespace berth::services::detail
