#pragma once
// A real OpenSSH sshd for tests and benchmarks (recipe: ../shared/reference/toolchain.md §4a):
// private host and user keys made with ssh-keygen, a private config on a free loopback port,
// `/usr/sbin/sshd -D` started as a child and killed — with every session process it forked — when
// the fixture goes away. RAII; one object per server. Needs root (sshd's privilege separation) and
// the openssh-server / openssh-client packages (cmake/bootstrap.sh installs them).

#include <berth/model/command.hpp>
#include <berth/process/spawn.hpp>

#include <boost/json/object.hpp>

#include "proc_stat.hpp"

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

// Its own namespace: berth_tests is one program, and other fixtures (git_fixture.hpp) define
// berth::test::write_file etc. with other behaviour; same-named inline functions would be an ODR
// violation (the linker keeps one of them for every TU).
namespace berth::test::ssh {

/// A free TCP port on 127.0.0.1 (bound, read, closed: another process could take it meanwhile,
/// which on a test machine does not happen in practice).
inline int free_loopback_port() {
    int const fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(fd);
        throw std::runtime_error("free_loopback_port: bind failed");
    }
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
}

inline std::string read_file(std::filesystem::path const& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

inline void write_file(std::filesystem::path const& p, std::string const& text) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << text;
}

/// Runs a local helper program; throws with its stderr when it fails.
inline std::string run_checked(std::string program, std::vector<std::string> args) {
    auto const r = berth::process::run({.program = program, .args = std::move(args), .timeout = std::chrono::seconds(60)},
                                       {.inherit_sanitized_environment = true});
    if (r.exit_code != 0) throw std::runtime_error(program + " failed: " + r.stderr_text);
    return r.stdout_text;
}

class sshd_fixture {
public:
    sshd_fixture() {
        char tmpl[] = "/tmp/berth-sshd-XXXXXX";
        if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("sshd_fixture: mkdtemp failed");
        dir_ = tmpl;
        ::mkdir("/run/sshd", 0755);  // sshd's compiled-in privilege separation directory
        keygen("host_ed25519");
        keygen("other_host_ed25519");
        keygen("user_ed25519");
        keygen("stranger_ed25519");
        std::filesystem::copy_file(dir_ / "user_ed25519.pub", dir_ / "authorized_keys");
        ::chmod((dir_ / "authorized_keys").c_str(), 0600);
        port_ = free_loopback_port();
        auto const* pw = ::getpwuid(::geteuid());
        user_ = pw != nullptr ? pw->pw_name : "root";
        write_file(dir_ / "sshd_config", "Port " + std::to_string(port_) +
                                             "\nListenAddress 127.0.0.1\nHostKey " + (dir_ / "host_ed25519").string() +
                                             "\nPidFile " + (dir_ / "sshd.pid").string() +
                                             "\nAuthorizedKeysFile " + (dir_ / "authorized_keys").string() +
                                             "\nPermitRootLogin prohibit-password\nPubkeyAuthentication yes\n"
                                             "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
                                             "StrictModes no\nSetEnv SHLVL=1\nMaxSessions 100\n"
                                             "MaxStartups 100:30:200\nLogLevel VERBOSE\n");
        start();
    }
    sshd_fixture(sshd_fixture const&) = delete;
    sshd_fixture& operator=(sshd_fixture const&) = delete;
    ~sshd_fixture() {
        kill_all();
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }

    /// Starts the server (again, after kill_all) on the same port with the same keys.
    void start() {
        std::vector<std::string> args{"/usr/sbin/sshd", "-D", "-E", (dir_ / "sshd.log").string(), "-f",
                                      (dir_ / "sshd_config").string()};
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        char* envp[] = {const_cast<char*>("PATH=/usr/sbin:/usr/bin:/sbin:/bin"), nullptr};
        if (::posix_spawn(&pid_, argv[0], nullptr, nullptr, argv.data(), envp) != 0)
            throw std::runtime_error("sshd_fixture: cannot start /usr/sbin/sshd");
        for (int i = 0; i < 500; ++i) {  // up to 5 s until it listens
            if (accepts()) return;
            int status = 0;
            if (::waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                throw std::runtime_error("sshd_fixture: sshd exited: " + read_file(dir_ / "sshd.log"));
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        throw std::runtime_error("sshd_fixture: sshd does not listen on port " + std::to_string(port_));
    }

    /// SIGKILLs the listening server and every process it forked (the per-connection sshd
    /// processes run in sessions of their own, so killing the listener alone would not end them).
    void kill_all() {
        if (pid_ <= 0) return;
        for (pid_t p : descendants(pid_)) ::kill(p, SIGKILL);
        ::kill(pid_, SIGKILL);
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
    }

    [[nodiscard]] int port() const noexcept { return port_; }
    [[nodiscard]] std::string const& user() const noexcept { return user_; }
    [[nodiscard]] std::filesystem::path const& dir() const noexcept { return dir_; }
    [[nodiscard]] std::string user_key_path() const { return (dir_ / "user_ed25519").string(); }
    [[nodiscard]] std::string user_key_text() const { return read_file(dir_ / "user_ed25519"); }
    [[nodiscard]] std::string stranger_key_path() const { return (dir_ / "stranger_ed25519").string(); }
    /// A known_hosts line for this server's real host key.
    [[nodiscard]] std::string known_hosts() const { return known_hosts_line("host_ed25519.pub"); }
    /// A known_hosts line that names this server with another key (as after a key change).
    [[nodiscard]] std::string changed_known_hosts() const { return known_hosts_line("other_host_ed25519.pub"); }
    [[nodiscard]] std::string log() const { return read_file(dir_ / "sshd.log"); }

    /// An SSH environment config for this server.
    [[nodiscard]] boost::json::object config(std::string const& remote_workspace_path) const {
        return {{"host", "127.0.0.1"},
                {"port", port_},
                {"username", user_},
                {"remoteWorkspacePath", remote_workspace_path},
                {"knownHosts", known_hosts()}};
    }

private:
    void keygen(std::string const& name) {
        run_checked("ssh-keygen", {"-q", "-t", "ed25519", "-N", "", "-C", "berth-test", "-f", (dir_ / name).string()});
    }

    [[nodiscard]] std::string known_hosts_line(char const* pub) const {
        std::istringstream in(read_file(dir_ / pub));
        std::string type, key;
        in >> type >> key;
        return "[127.0.0.1]:" + std::to_string(port_) + " " + type + " " + key + "\n";
    }

    [[nodiscard]] bool accepts() const {
        int const fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(static_cast<uint16_t>(port_));
        bool const ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
        ::close(fd);
        return ok;
    }

    /// Every process below `root` in the process tree (from /proc/<pid>/stat).
    static std::vector<pid_t> descendants(pid_t root) {
        std::multimap<pid_t, pid_t> children;
        for_each_process([&](proc_stat const& s) { children.emplace(s.ppid, s.pid); });
        std::vector<pid_t> out;
        std::vector<pid_t> todo{root};
        while (!todo.empty()) {
            auto const p = todo.back();
            todo.pop_back();
            auto [b, e] = children.equal_range(p);
            for (auto it = b; it != e; ++it) {
                out.push_back(it->second);
                todo.push_back(it->second);
            }
        }
        return out;
    }

    std::filesystem::path dir_;
    int port_ = 0;
    std::string user_;
    pid_t pid_ = -1;
};

/// One server shared by the tests that do not kill it (started on first use, killed at exit).
inline sshd_fixture& shared_sshd() {
    static sshd_fixture server;
    return server;
}

}  // namespace berth::test::ssh
