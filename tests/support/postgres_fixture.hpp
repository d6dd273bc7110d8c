#pragma once
// A real PostgreSQL 15 server for tests and benchmarks (recipe: ../shared/reference/toolchain.md
// §4b): a cluster made with `initdb` as the unprivileged `postgres` user in a temporary directory,
// `pg_ctl start` on a private unix socket in that directory and a free loopback port, stopped and
// removed when the fixture goes away. Needs root (to run the server as `postgres` through runuser)
// and Debian's postgresql package (cmake/bootstrap.sh installs it for `test`).
//
// One server per test process: postgres_server::shared() starts it on first use and stops it at
// exit. Each store gets a schema of its own (fresh_schema()), so tests never see each other's rows
// and no test pays for a server start. initdb runs once per machine into a template cluster that
// later processes copy (0.2 s instead of 1.3 s), so each ctest case stays fast.

#include <berth/process/spawn.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

namespace berth::test::pg {

inline constexpr char const* bin_dir = "/usr/lib/postgresql/15/bin";

/// A free TCP port on 127.0.0.1 (bound, read, closed).
inline int free_port() {
    int const fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(fd);
        throw std::runtime_error("postgres fixture: cannot bind a loopback port");
    }
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
}

/// Runs a program (as `postgres` when `as_postgres`); throws with its output when it fails.
inline std::string run(std::vector<std::string> argv, bool as_postgres, std::chrono::seconds timeout = std::chrono::seconds(60)) {
    if (as_postgres) argv.insert(argv.begin(), {"-u", "postgres", "--"});
    std::string const program = as_postgres ? "/usr/sbin/runuser" : argv.front();
    if (!as_postgres) argv.erase(argv.begin());
    auto const r = berth::process::run({.program = program, .args = argv, .timeout = timeout},
                                       {.inherit_sanitized_environment = true});
    if (r.exit_code != 0) {
        std::string line = program;
        for (auto const& a : argv) (line += ' ') += a;
        throw std::runtime_error("postgres fixture: `" + line + "` failed: " + r.stderr_text + r.stdout_text);
    }
    return r.stdout_text;
}

/// True when this machine can run the fixture (the binaries are there and we may switch user).
[[nodiscard]] inline bool available() {
    return std::filesystem::exists(std::string(bin_dir) + "/initdb") && ::geteuid() == 0 &&
           ::getpwnam("postgres") != nullptr;
}

class postgres_server {
public:
    postgres_server() {
        if (!available())
            throw std::runtime_error("postgres fixture: needs root and Debian's postgresql-15 (" +
                                     std::string(bin_dir) + ")");
        char tmpl[] = "/tmp/berth-pg-XXXXXX";
        if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("postgres fixture: mkdtemp failed");
        dir_ = tmpl;
        auto const* pw = ::getpwnam("postgres");
        if (::chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0)
            throw std::runtime_error("postgres fixture: cannot chown " + dir_.string());
        run({"/bin/cp", "-a", template_cluster().string(), (dir_ / "data").string()}, true);
        port_ = free_port();
        start();
    }
    postgres_server(postgres_server const&) = delete;
    postgres_server& operator=(postgres_server const&) = delete;
    ~postgres_server() {
        try {
            stop();
        } catch (...) {
        }
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }

    /// The process's server, started on first use, stopped at exit.
    static postgres_server& shared() {
        static postgres_server server;
        return server;
    }

    /// Starts the server (again, after stop()) on the same socket directory and port.
    void start() {
        run({std::string(bin_dir) + "/pg_ctl", "-D", (dir_ / "data").string(), "-l", (dir_ / "log").string(), "-w",
             "-t", "30", "-o",
             "-p " + std::to_string(port_) + " -k " + dir_.string() +
                 " -c listen_addresses=127.0.0.1 -c max_connections=200 -c shared_buffers=64MB",
             "start"},
            true);
        running_ = true;
    }

    /// Stops the server: `fast` rolls back open transactions and closes every connection.
    void stop(char const* mode = "fast") {
        if (!running_) return;
        running_ = false;
        run({std::string(bin_dir) + "/pg_ctl", "-D", (dir_ / "data").string(), "-m", mode, "-w", "stop"}, true);
    }

    /// libpq connection string for the unix socket (database `postgres`, user `postgres`).
    [[nodiscard]] std::string conninfo(std::string const& extra = {}) const {
        std::string s = "host=" + dir_.string() + " port=" + std::to_string(port_) + " dbname=postgres user=postgres";
        if (!extra.empty()) (s += ' ') += extra;
        return s;
    }
    /// The same server over TCP 127.0.0.1, as a URL.
    [[nodiscard]] std::string url(std::string const& schema = {}) const {
        std::string s = "postgresql://postgres@127.0.0.1:" + std::to_string(port_) + "/postgres";
        if (!schema.empty()) s += "?options=-csearch_path%3D" + schema;
        return s;
    }

    /// A new, empty schema, and a connection string whose search_path is that schema: a store
    /// opened with it sees only its own tables.
    [[nodiscard]] std::string fresh_schema(std::string* name_out = nullptr) {
        static std::atomic<int> counter{0};
        std::string const name = "t" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
        psql("CREATE SCHEMA " + name);
        if (name_out) *name_out = name;
        return conninfo_for(name);
    }
    [[nodiscard]] std::string conninfo_for(std::string const& schema) const {
        return conninfo("options='-c search_path=" + schema + "'");
    }
    void drop_schema(std::string const& name) { psql("DROP SCHEMA IF EXISTS " + name + " CASCADE"); }

    /// Runs SQL through psql (tab-separated, unaligned output, no headers); throws when it fails.
    std::string psql(std::string const& sql, std::string const& schema = {}) const {
        std::vector<std::string> argv{std::string(bin_dir) + "/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1",
                                      "-Atc", sql, "-h", dir_.string(), "-p", std::to_string(port_),
                                      "-U", "postgres", "-d", "postgres"};
        if (!schema.empty()) {
            argv.insert(argv.begin() + 5, {"-c", "SET search_path = " + schema});
        }
        return run(std::move(argv), false, std::chrono::seconds(600));
    }

    [[nodiscard]] int port() const noexcept { return port_; }
    [[nodiscard]] std::filesystem::path const& dir() const noexcept { return dir_; }
    [[nodiscard]] std::string log() const {
        std::ifstream in(dir_ / "log");
        std::ostringstream s;
        s << in.rdbuf();
        return s.str();
    }

private:
    /// An initdb'd cluster shared by every fixture on this machine, made once (atomically: made in
    /// a private directory, then renamed into place; a loser of that race removes its own).
    static std::filesystem::path template_cluster() {
        std::filesystem::path const path = "/tmp/berth-pg-template-15";
        if (std::filesystem::exists(path / "PG_VERSION")) return path;
        char tmpl[] = "/tmp/berth-pg-init-XXXXXX";
        if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("postgres fixture: mkdtemp failed");
        std::filesystem::path const work = tmpl;
        auto const* pw = ::getpwnam("postgres");
        if (::chown(work.c_str(), pw->pw_uid, pw->pw_gid) != 0)
            throw std::runtime_error("postgres fixture: cannot chown " + work.string());
        run({std::string(bin_dir) + "/initdb", "-D", (work / "data").string(), "-A", "trust", "-U", "postgres", "-E",
             "UTF8", "--locale=C.UTF-8", "--no-sync"},
            true, std::chrono::seconds(120));
        std::error_code ec;
        std::filesystem::rename(work / "data", path, ec);
        std::filesystem::remove_all(work, ec);
        if (!std::filesystem::exists(path / "PG_VERSION"))
            throw std::runtime_error("postgres fixture: cannot make the template cluster " + path.string());
        return path;
    }

    std::filesystem::path dir_;
    int port_ = 0;
    bool running_ = false;
};

/// A schema of the shared server for one test: created in the constructor, dropped after.
class scratch_schema {
public:
    scratch_schema() : conninfo_(postgres_server::shared().fresh_schema(&name_)) {}
    scratch_schema(scratch_schema const&) = delete;
    scratch_schema& operator=(scratch_schema const&) = delete;
    ~scratch_schema() {
        try {
            postgres_server::shared().drop_schema(name_);
        } catch (...) {
        }
    }
    [[nodiscard]] std::string const& conninfo() const noexcept { return conninfo_; }
    [[nodiscard]] std::string const& name() const noexcept { return name_; }

private:
    std::string name_;
    std::string conninfo_;
};

}  // namespace berth::test::pg
