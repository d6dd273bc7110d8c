#pragma once
// What the runtime-service tests share (tests/unit/services_*_test.cpp): a scratch directory that
// kills every process its registry names before it is removed, the stores, berth_test_http_server
// as a service definition, a workspace context, supervisor options, and waiting for an outcome.
// Real processes throughout; nothing here fakes a part.

#include <berth/model/command.hpp>  // command
#include <berth/model/ids.hpp>      // new_id
#include <berth/process/child.hpp>  // process::child (foreign_server)
#include <berth/services/config.hpp>
#include <berth/services/context.hpp>
#include <berth/services/detail/proc.hpp>  // pid_running, port_owner
#include <berth/services/ports.hpp>        // port_reserver
#include <berth/services/registry.hpp>     // service_registry
#include <berth/services/supervisor.hpp>   // supervisor_options
#include <berth/stores/memory.hpp>
#if BERTH_TEST_SQLITE
#include <berth/stores/sqlite.hpp>
#endif

#include <catch2/catch.hpp>

#include <boost/json/parse.hpp>

#include <signal.h>     // ::kill
#include <sys/types.h>  // pid_t

#include <chrono>
#include <csignal>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace berth::test::services {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

/// The HTTP test server (tests/support/http_server.cpp): `--port N` (else $PORT), GET /health.
inline std::string const server = BERTH_TEST_HTTP_SERVER;

/// A fresh directory for the registry, the database and the workspaces; every process a registry
/// record names is killed before it is removed, so a failing test leaves nothing behind.
struct temp_dir {
    fs::path path = fs::temp_directory_path() / ("berth-services-" + new_id());
    temp_dir() { fs::create_directories(path / "ws"); }
    temp_dir(temp_dir const&) = delete;
    temp_dir& operator=(temp_dir const&) = delete;
    ~temp_dir() {
        for (auto const& r : berth::services::service_registry(path / "registry").list())
            if (r.pid > 1) ::kill(-static_cast<pid_t>(r.pid), SIGKILL);
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    [[nodiscard]] fs::path registry() const { return path / "registry"; }
    /// A workspace directory under the scratch directory (made if missing).
    [[nodiscard]] std::string ws(std::string const& name = "ws") const {
        fs::create_directories(path / name);
        return (path / name).string();
    }
};

/// The stores a TEMPLATE_TEST_CASE runs on: `f.dir` and `f.store`.
struct memory_fixture {
    temp_dir dir;
    memory_store store;
};
#if BERTH_TEST_SQLITE
struct sqlite_fixture {
    temp_dir dir;
    sqlite_store store = sqlite_store::open((dir.path / "berth.db").string());
};
#endif

/// Log lines, collected from the supervisor's thread.
struct log_sink {
    std::mutex mutex;
    std::vector<std::string> lines;
    void add(std::string_view l) {
        std::lock_guard lock(mutex);
        lines.emplace_back(l);
    }
    bool has(std::string const& part) {
        std::lock_guard lock(mutex);
        for (auto const& l : lines)
            if (l.find(part) != std::string::npos) return true;
        return false;
    }
};

/// Waits (up to 15 s) for `pred`; the tests assert on the outcome, never on how long it took.
template <class P>
bool eventually(P pred) {
    auto const end = std::chrono::steady_clock::now() + 15s;
    while (std::chrono::steady_clock::now() < end) {
        if (pred()) return true;
        std::this_thread::sleep_for(5ms);
    }
    return pred();
}

/// The process of a service's `provider_ref` is gone (exited and reaped, or never was).
inline bool gone(std::string const& pid) { return !berth::services::detail::pid_running(std::stoll(pid)); }

/// A service definition from JSON.
inline berth::services::runtime_service_config svc(std::string const& json) {
    return berth::services::parse_runtime_service(boost::json::parse(json));
}

/// A shared service running the test server on an automatic port, with an HTTP readiness check;
/// `extra` is appended to the server's command line.
inline berth::services::runtime_service_config web(std::string const& name = "web", std::string const& extra = "") {
    return svc(R"({"name": ")" + name + R"(", "lifecycle": "shared", "command": ")" + server + " " + extra + R"(", "port": {"type": "auto"},
        "readiness": {"type": "http", "urlTemplate": "http://127.0.0.1:{{port}}/health", "timeoutSec": 10,
                      "intervalMs": 100}})");
}

/// A workspace of company-1: project-1, project workspace pw-1, execution workspace `ew`.
inline berth::services::service_context context(std::string cwd, std::string const& ew = "ew-1") {
    berth::services::service_context c;
    c.workspace.cwd = std::move(cwd);
    c.workspace.project_id = "project-1";
    c.workspace.project_workspace_id = "pw-1";
    c.workspace.execution_workspace_id = ew;
    c.agent = {.id = "agent-1", .name = "Ada", .company_id = "company-1"};
    c.issue = berth::services::issue_ref{.id = "issue-1", .identifier = "PAP-1", .title = "t"};
    return c;
}

/// Options for a supervisor on `d`'s registry with a short SIGKILL grace; services start through
/// the default shell (`$SHELL -lc`).
inline berth::services::supervisor_options options(temp_dir const& d, log_sink* logs = nullptr) {
    berth::services::supervisor_options o;
    o.registry_dir = d.registry();
    o.kill_grace = 300ms;
    if (logs) o.on_log = [logs](output_stream, std::string_view line) { logs->add(line); };
    return o;
}

/// options() with /bin/sh rather than a login $SHELL: for tests that measure berth, not the
/// machine's profile scripts, or start many services.
inline berth::services::supervisor_options sh_options(temp_dir const& d, log_sink* logs = nullptr) {
    auto o = options(d, logs);
    o.shell = "/bin/sh";
    return o;
}

/// A free port on 127.0.0.1 (the kernel's choice, released).
inline std::int64_t free_port(temp_dir const& d) {
    berth::services::port_reserver const r(d.registry());
    auto const p = r.reserve("test");
    r.release(p);
    return p;
}

/// berth_test_http_server started by the test itself (not by a supervisor) in `cwd`, on `port`.
struct foreign_server {
    process::child child;
    foreign_server(std::string const& cwd, std::int64_t port)
        : child(process::child::start(command{.program = server, .args = {"--port", std::to_string(port)}, .cwd = cwd})) {
        REQUIRE(eventually([&] { return berth::services::detail::port_owner(port).has_value(); }));
    }
    foreign_server(foreign_server const&) = delete;
    foreign_server& operator=(foreign_server const&) = delete;
    ~foreign_server() {
        child.signal_group(SIGKILL);
        (void)child.wait();
    }
};

}  // namespace berth::test::services
