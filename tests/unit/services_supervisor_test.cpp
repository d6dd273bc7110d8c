// The runtime service supervisor with real processes: berth_test_http_server (tests/support)
// started through `$SHELL -lc`, real process groups, signals, HTTP readiness, the on-disk registry
// and, for adoption across restarts, a second berth process (berth_test_services_helper) that
// is SIGKILLed.
#if BERTH_TEST_SERVICES
#include <catch2/catch.hpp>

#include "services_fixture.hpp"

#include <berth/model/ids.hpp>
#include <berth/process/child.hpp>
#include <berth/process/lease_processes.hpp>
#include <berth/services/ports.hpp>
#include <berth/services/supervisor.hpp>
#include <berth/stores/memory.hpp>
#if BERTH_TEST_SQLITE
#include <berth/stores/sqlite.hpp>
#endif

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

using namespace berth;
using namespace berth::services;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

using namespace berth::test::services;

runtime_service_config with(runtime_service_config c, std::string const& json_patch) {
    auto j = boost::json::parse(json_patch).as_object();
    if (auto* l = j.if_contains("lifecycle")) c.lifecycle = parse_enum<runtime_service_lifecycle>(l->as_string());
    if (auto* s = j.if_contains("stopPolicy")) {
        auto const parsed = parse_runtime_service(boost::json::object{{"command", "x"}, {"stopPolicy", *s}});
        c.stop_policy = parsed.stop_policy;
        c.stop_policy_json = parsed.stop_policy_json;
    }
    return c;
}

/// A service without a readiness check, exposing /health on its automatic port.
runtime_service_config exposed(std::string const& name, std::string const& server_args) {
    return parse_runtime_service(boost::json::parse(
        R"({"name": ")" + name + R"(", "lifecycle": "shared", "command": ")" + server + " " + server_args + R"(", "port": {"type": "auto"},
            "expose": {"urlTemplate": "http://127.0.0.1:{{port}}/health"}})"));
}

/// Starts `services` under a supervisor that leaves them running when it is destroyed (as a
/// process that ends does), and returns the first one's ref.
template <class Store>
runtime_service_ref left_running(Store& store, temp_dir const& d, service_context const& ctx,
                                 std::vector<runtime_service_config> const& services) {
    auto opts = options(d);
    opts.stop_on_destroy = false;
    supervisor a{store, opts};
    return a.ensure_for_run("run-1", ctx, services)[0];
}

/// A listening socket on 127.0.0.1 held by this process.
struct listener {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int port = 0;
    listener() {
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
        ::listen(fd, 4);
        socklen_t len = sizeof a;
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
        port = ntohs(a.sin_port);
    }
    ~listener() { ::close(fd); }
};

}  // namespace

TEST_CASE("supervisor: a service starts in its own group with its env, port, readiness, tails and logs", "[services]") {
    temp_dir d;
    log_sink logs;
    memory_store store;
    ::setenv("SVC_TEST_GITHUB_TOKEN", "do-not-pass", 1);
    ::setenv("BERTH_SVC_TEST_INTERNAL", "do-not-pass", 1);
    auto opts = options(d, &logs);
    opts.base_environment.reset();  // computed from this process's environment now
    supervisor sup{store, opts};
    ::unsetenv("SVC_TEST_GITHUB_TOKEN");
    ::unsetenv("BERTH_SVC_TEST_INTERNAL");

    auto svc = web();
    svc.command = "echo \"env=$GREETING|$ADAPTER_VAR|${SVC_TEST_GITHUB_TOKEN:-none}|${BERTH_SVC_TEST_INTERNAL:-none}|$WEB_PORT\"; "
                  "echo to-stderr >&2; exec " + server;
    svc.port.env_key = "WEB_PORT";
    svc.command += " --port \"$WEB_PORT\"";
    svc.env = {{"GREETING", "hi {{agent.name}} on {{port}}"}};
    auto ctx = context(d.ws());
    ctx.adapter_env = {{"ADAPTER_VAR", "adapter"}};
    std::vector<runtime_service_config> const services{svc};
    auto const refs = sup.ensure_for_run("run-1", ctx, services);
    REQUIRE(refs.size() == 1);
    auto const& r = refs[0].service;
    CHECK_FALSE(refs[0].reused);
    CHECK(r.status == runtime_service_status::running);
    CHECK(r.health_status == runtime_service_health::healthy);
    REQUIRE(r.port);
    CHECK(r.url == "http://127.0.0.1:" + std::to_string(*r.port) + "/health");
    CHECK(r.cwd == d.ws());
    CHECK(r.started_by_run_id == "run-1");
    CHECK(r.scope_type == runtime_service_scope_type::project_workspace);
    CHECK(r.scope_id == "pw-1");
    CHECK(r.reuse_key);
    REQUIRE(r.provider_ref);
    auto const pid = std::stoll(*r.provider_ref);
    CHECK(berth::services::detail::process_group(pid) == pid);  // its own process group
    CHECK(berth::services::detail::port_owner(*r.port) == pid);  // listening on the port it was given

    auto const p = std::to_string(*r.port);
    CHECK(eventually([&] { return logs.has("[service:web] env=hi Ada on " + p + "|adapter|none|none|" + p); }));
    CHECK(eventually([&] { return logs.has("[service:web] to-stderr"); }));
    CHECK(eventually([&] { return logs.has("[service:web] listening on " + p); }));
    auto const tails = sup.output_tails(r.id);
    REQUIRE(tails);
    CHECK_THAT(tails->second, Catch::Contains("to-stderr"));

    auto const row = store.get_runtime_service(r.id);
    REQUIRE(row);
    CHECK(row->status == runtime_service_status::running);
    CHECK(row->provider_ref == r.provider_ref);
    auto const rec = sup.registry().find_by_runtime_service_id(r.id);
    REQUIRE(rec);
    CHECK(rec->pid == pid);
    CHECK(rec->process_group_id == pid);
    CHECK(rec->owner_pid == ::getpid());
    CHECK(rec->port == r.port);
    CHECK(port_reserver(d.registry()).reserved_by_live_process(*r.port));

    CHECK(sup.stop(r.id));
    CHECK(gone(*r.provider_ref));
    CHECK(store.get_runtime_service(r.id)->status == runtime_service_status::stopped);
    CHECK(store.get_runtime_service(r.id)->health_status == runtime_service_health::unknown);
    CHECK(store.get_runtime_service(r.id)->stopped_at);
    CHECK_FALSE(sup.registry().find_by_runtime_service_id(r.id));
    CHECK_FALSE(port_reserver(d.registry()).reserved_by_live_process(*r.port));
    CHECK_FALSE(sup.stop(r.id));
}

TEST_CASE("supervisor: readiness failure kills the service and quotes its stderr", "[services]") {
    temp_dir d;
    memory_store store;
    supervisor sup{store, options(d)};
    auto svc = web("web", "--health-status 500 --stderr boom-on-stderr");
    // 3 s, not 1: on a loaded machine (the fresh-clone suite, 2 cores) the server was not yet
    // listening after 1 s, and the reason was "Connection refused" instead of its HTTP 500.
    svc.readiness->timeout_sec = 3;
    std::vector<runtime_service_config> const services{svc};
    std::string message;
    try {
        (void)sup.ensure_for_run("run-1", context(d.ws()), services);
    } catch (berth::error const& e) {
        message = e.what();
    }
    CHECK_THAT(message, Catch::StartsWith("Failed to start runtime service \"web\": Readiness check failed for "
                                          "http://127.0.0.1:") &&
                            Catch::Contains("/health: received HTTP 500") &&
                            Catch::EndsWith(" | stderr: boom-on-stderr"));
    auto const rows = store.list_runtime_services({});
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].status == runtime_service_status::stopped);
    CHECK(rows[0].health_status == runtime_service_health::unhealthy);
    CHECK(gone(*rows[0].provider_ref));
    CHECK(sup.registry().list().empty());
    CHECK(sup.running().empty());

    // A service that exits before it is ready fails at once, with its exit code.
    auto dying = web("dying");
    dying.command = "echo dying-now >&2; exit 3";
    std::vector<runtime_service_config> const dying_services{dying};
    CHECK_THROWS_WITH(sup.ensure_for_run("run-2", context(d.ws()), dying_services),
                      Catch::Contains("the service exited with code 3 before it became ready") &&
                          Catch::Contains("| stderr: dying-now"));
}

TEST_CASE("supervisor: an explicit port owned by another process is refused naming the owner", "[services]") {
    temp_dir d;
    memory_store store;
    supervisor sup{store, options(d)};
    listener taken;
    auto svc = parse_runtime_service(boost::json::parse(R"({"name": "api", "command": "sleep 30", "port": )" +
                                                        std::to_string(taken.port) + "}"));
    std::vector<runtime_service_config> const services{svc};
    // This process listens, outside the workspace: upstream's cross-workspace wording.
    CHECK_THROWS_WITH(sup.ensure_for_run("run-1", context(d.ws()), services),
                      "Runtime service \"api\" could not start because port " + std::to_string(taken.port) +
                          " has a cross-workspace port conflict with pid " + std::to_string(::getpid()) +
                          " (cwd: " + fs::read_symlink("/proc/self/cwd").string() + "); requested workspace: " +
                          d.ws() + ". Stop the other service or configure a different port.");
    CHECK(store.list_runtime_services({}).empty());
}

TEST_CASE("supervisor: reuse by key, leases, and the stop policies of release_for_run", "[services]") {
    temp_dir d;
    memory_store store;
    supervisor sup{store, options(d)};
    auto const ctx = context(d.ws());
    std::vector<runtime_service_config> const shared{web("shared")};
    auto const a = sup.ensure_for_run("run-a", ctx, shared);
    auto const b = sup.ensure_for_run("run-b", ctx, shared);
    REQUIRE(a.size() == 1);
    REQUIRE(b.size() == 1);
    CHECK_FALSE(a[0].reused);
    CHECK(b[0].reused);
    CHECK(b[0].service.id == a[0].service.id);
    CHECK(b[0].service.provider_ref == a[0].service.provider_ref);
    CHECK(sup.ensure_for_run("run-b", ctx, shared)[0].reused);  // the same run again: still one lease
    auto const leases = sup.leases_of(a[0].service.id);
    CHECK(std::set<std::string>{"run-a", "run-b"} == std::set<std::string>(leases.begin(), leases.end()));
    sup.release_for_run("run-a");
    sup.release_for_run("run-b");
    // shared + no stop policy = manual: keeps running without leases
    CHECK(sup.find(a[0].service.id));
    CHECK_FALSE(gone(*a[0].service.provider_ref));
    CHECK(sup.leases_of(a[0].service.id).empty());

    // ephemeral: never reused, stopped when its run ends
    std::vector<runtime_service_config> const eph{with(web("eph"), R"({"lifecycle": "ephemeral"})")};
    auto const e1 = sup.ensure_for_run("run-c", ctx, eph);
    auto const e2 = sup.ensure_for_run("run-d", ctx, eph);
    CHECK_FALSE(e2[0].reused);
    CHECK(e1[0].service.id != e2[0].service.id);
    CHECK_FALSE(e1[0].service.reuse_key);
    CHECK(e1[0].service.scope_type == runtime_service_scope_type::run);
    sup.release_for_run("run-c");
    CHECK(gone(*e1[0].service.provider_ref));
    CHECK(store.get_runtime_service(e1[0].service.id)->status == runtime_service_status::stopped);
    CHECK_FALSE(gone(*e2[0].service.provider_ref));

    // shared + on_run_finish: stopped when the last lease goes
    std::vector<runtime_service_config> const orf{with(web("orf"), R"({"stopPolicy": {"type": "on_run_finish"}})")};
    auto const o1 = sup.ensure_for_run("run-e", ctx, orf);
    auto const o2 = sup.ensure_for_run("run-f", ctx, orf);
    CHECK(o2[0].reused);
    sup.release_for_run("run-e");
    CHECK_FALSE(gone(*o1[0].service.provider_ref));  // run-f still holds it
    sup.release_for_run("run-f");
    CHECK(gone(*o1[0].service.provider_ref));
    CHECK(store.get_runtime_service(o1[0].service.id)->status == runtime_service_status::stopped);

    // shared + idle_timeout: stopped by the supervisor's timer once idle
    std::vector<runtime_service_config> const idle{
        with(web("idle"), R"({"stopPolicy": {"type": "idle_timeout", "idleSeconds": 1}})")};
    auto const i1 = sup.ensure_for_run("run-g", ctx, idle);
    sup.release_for_run("run-g");
    CHECK(sup.find(i1[0].service.id));
    CHECK(eventually([&] { return gone(*i1[0].service.provider_ref); }));
    CHECK(eventually([&] { return store.get_runtime_service(i1[0].service.id)->status == runtime_service_status::stopped; }));
    CHECK_FALSE(sup.find(i1[0].service.id));

    // the run's release also persisted last_used_at
    CHECK(store.get_runtime_service(a[0].service.id)->last_used_at);
}

TEST_CASE("supervisor: a service without lifecycle is reused within its run only (the seed's run scope)", "[services]") {
    temp_dir d;
    memory_store store;
    supervisor sup{store, options(d)};
    auto const ctx = context(d.ws());
    std::vector<runtime_service_config> const bare{svc(R"({"name": "bare", "command": ")" + server +
                                                       R"(", "port": {"type": "auto"},
        "readiness": {"type": "http", "urlTemplate": "http://127.0.0.1:{{port}}/health", "timeoutSec": 10}})")};
    auto const a = sup.ensure_for_run("run-bare-a", ctx, bare);
    auto const again = sup.ensure_for_run("run-bare-a", ctx, bare);
    auto const b = sup.ensure_for_run("run-bare-b", ctx, bare);
    REQUIRE(a.size() == 1);
    REQUIRE(b.size() == 1);
    CHECK(a[0].service.scope_type == runtime_service_scope_type::run);
    CHECK(a[0].service.scope_id == std::optional<std::string>("run-bare-a"));
    CHECK(again[0].reused);
    CHECK(again[0].service.id == a[0].service.id);
    CHECK_FALSE(b[0].reused);  // another run: its own process, not run-bare-a's
    CHECK(b[0].service.id != a[0].service.id);
    CHECK(b[0].service.provider_ref != a[0].service.provider_ref);
    CHECK(sup.stop(a[0].service.id));
    CHECK(sup.stop(b[0].service.id));
}

TEST_CASE("supervisor: a failed start releases the run's other services", "[services]") {
    temp_dir d;
    memory_store store;
    supervisor sup{store, options(d)};
    auto bad = web("bad");
    bad.command = "exit 7";
    std::vector<runtime_service_config> const services{with(web("first"), R"({"lifecycle": "ephemeral"})"), bad};
    CHECK_THROWS_WITH(sup.ensure_for_run("run-1", context(d.ws()), services), Catch::Contains("\"bad\""));
    CHECK(sup.running().empty());
    for (auto const& row : store.list_runtime_services({})) {
        INFO(row.service_name);
        CHECK(row.status == runtime_service_status::stopped);
        CHECK(gone(*row.provider_ref));
    }
}

TEST_CASE("supervisor: stop escalates to SIGKILL, a service that exits is recorded stopped or failed", "[services]") {
    temp_dir d;
    memory_store store;
    supervisor sup{store, options(d)};
    auto const ctx = context(d.ws());
    std::vector<runtime_service_config> const stubborn{web("stubborn", "--ignore-term")};
    auto const s = sup.ensure_for_run("run-1", ctx, stubborn);
    CHECK(sup.stop(s[0].service.id));
    CHECK(gone(*s[0].service.provider_ref));
    CHECK(store.get_runtime_service(s[0].service.id)->status == runtime_service_status::stopped);

    auto crash = parse_runtime_service(boost::json::parse(R"({"name": "crash", "command": "sleep 0.2; exit 3"})"));
    auto clean = parse_runtime_service(boost::json::parse(R"({"name": "clean", "command": "sleep 0.2; exit 0"})"));
    std::vector<runtime_service_config> const both{crash, clean};
    auto const c = sup.ensure_for_run("run-2", ctx, both);
    REQUIRE(c.size() == 2);
    CHECK(c[0].service.status == runtime_service_status::running);  // no readiness: running once spawned
    CHECK(eventually([&] { return store.get_runtime_service(c[0].service.id)->status == runtime_service_status::failed; }));
    CHECK(store.get_runtime_service(c[0].service.id)->health_status == runtime_service_health::unhealthy);
    CHECK(eventually([&] { return store.get_runtime_service(c[1].service.id)->status == runtime_service_status::stopped; }));
    CHECK(eventually([&] { return sup.running().empty(); }));
    CHECK(sup.registry().list().empty());
}

TEST_CASE("supervisor: stop by execution workspace (id or cwd inside, never a sibling) and by project workspace",
          "[services]") {
    temp_dir d;
    memory_store store;
    supervisor sup{store, options(d)};
    fs::create_directories(d.path / "ws" / "sub");
    fs::create_directories(d.path / "ws-sibling");
    auto ctx = context(d.ws());
    ctx.workspace.execution_workspace_id.reset();
    ctx.workspace.project_workspace_id = "pw-other";
    auto in_sub = web("in-sub");
    in_sub.cwd = "sub";
    auto sibling = web("sibling");
    sibling.cwd = (d.path / "ws-sibling").string();
    std::vector<runtime_service_config> const services{in_sub, sibling};
    auto const refs = sup.start_for_control(ctx, services);
    REQUIRE(refs.size() == 2);
    CHECK_FALSE(refs[0].service.started_by_run_id);  // manual control: no run
    CHECK(sup.leases_of(refs[0].service.id).empty());

    fs::create_directories(d.path / "ew-ws");
    auto ew_ctx = context((d.path / "ew-ws").string());
    std::vector<runtime_service_config> const by_id{with(web("by-id"), R"({"lifecycle": "ephemeral"})")};
    auto const ew = sup.ensure_for_run("run-1", ew_ctx, by_id);  // execution workspace ew-1

    CHECK(sup.stop_for_execution_workspace("ew-unrelated", d.ws()) == 1);
    CHECK(gone(*refs[0].service.provider_ref));
    CHECK_FALSE(gone(*refs[1].service.provider_ref));  // the sibling directory is not inside
    CHECK_FALSE(gone(*ew[0].service.provider_ref));
    CHECK(sup.stop_for_execution_workspace("ew-1") == 1);
    CHECK(gone(*ew[0].service.provider_ref));
    CHECK(store.get_runtime_service(ew[0].service.id)->status == runtime_service_status::stopped);

    CHECK(sup.stop_for_project_workspace("pw-1") == 0);
    CHECK(sup.stop_for_project_workspace("pw-other") == 1);
    CHECK(gone(*refs[1].service.provider_ref));
    CHECK(store.get_runtime_service(refs[1].service.id)->status == runtime_service_status::stopped);

    // persisted live rows are stopped too, even without a supervised process
    auto orphan_row = *store.get_runtime_service(ew[0].service.id);
    orphan_row.id = "persisted-only";
    orphan_row.status = runtime_service_status::running;
    store.upsert_runtime_service(orphan_row, orphan_row.updated_at);
    sup.stop_for_execution_workspace("ew-1");
    CHECK(store.get_runtime_service("persisted-only")->status == runtime_service_status::stopped);
}

TEST_CASE("supervisor: racing runs start a shared service once", "[services]") {
    temp_dir d;
    memory_store store;
    supervisor sup{store, options(d)};
    auto const ctx = context(d.ws());
    std::vector<runtime_service_config> const shared{web("raced", "--delay-ms 50")};
    std::vector<std::string> ids(4);
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < ids.size(); ++i)
        threads.emplace_back([&, i] { ids[i] = sup.ensure_for_run("run-" + std::to_string(i), ctx, shared)[0].service.id; });
    for (auto& t : threads) t.join();
    CHECK(std::set<std::string>(ids.begin(), ids.end()).size() == 1);
    CHECK(store.list_runtime_services({}).size() == 1);
    CHECK(sup.leases_of(ids[0]).size() == 4);
}

TEST_CASE("supervisor: a new supervisor adopts a live service from the registry instead of starting it twice",
          "[services]") {
    temp_dir d;
    memory_store store;
    auto const ctx = context(d.ws());
    std::vector<runtime_service_config> const shared{web("adoptable")};
    auto const first = left_running(store, d, ctx, shared);
    CHECK_FALSE(gone(*first.service.provider_ref));  // left running
    supervisor b{store, options(d)};
    auto const again = b.ensure_for_run("run-2", ctx, shared);
    CHECK(again[0].reused);
    CHECK(again[0].service.provider_ref == first.service.provider_ref);
    CHECK(again[0].service.port == first.service.port);
    CHECK(b.registry().find_by_runtime_service_id(again[0].service.id)->owner_pid == ::getpid());
    CHECK(b.stop(again[0].service.id));
    CHECK(gone(*first.service.provider_ref));
    // The service was this process's child, detached by `a`: `b` reaps it, no zombie is left
    // (the bug: it stayed a zombie of this process, which every later zombie check then saw).
    CHECK_FALSE(berth::services::detail::pid_alive(std::stoll(*first.service.provider_ref)));
}

TEST_CASE("supervisor: a left-running service still starting up is waited for and adopted, not started twice",
          "[services]") {
    // The hazard this guards (upstream's too): asked again before the first instance listened, the
    // supervisor found no listener, started a second instance and overwrote the registry record,
    // which left the first running and tracked by nothing.
    temp_dir d;
    memory_store store;
    auto const ctx = context(d.ws());
    std::vector<runtime_service_config> const slow{exposed("slow", "--delay-ms 1500")};
    auto const first = left_running(store, d, ctx, slow);  // no readiness check: returns at once
    // Not listening yet (it sleeps 1.5 s first); b waits for it up to health_timeout after its start.
    CHECK_FALSE(berth::services::detail::port_owner(*first.service.port));
    auto opts = options(d);
    opts.health_timeout = 5s;
    supervisor b{store, opts};
    auto const again = b.ensure_for_run("run-2", ctx, slow);
    CHECK(again[0].reused);
    CHECK(again[0].service.provider_ref == first.service.provider_ref);
    CHECK(again[0].service.port == first.service.port);
    CHECK(b.stop(again[0].service.id));
    CHECK(gone(*first.service.provider_ref));
}

TEST_CASE("supervisor: a left-running service that fails its health check is ended, not adopted, and reaped",
          "[services]") {
    temp_dir d;
    memory_store store;
    auto const ctx = context(d.ws());
    std::vector<runtime_service_config> const sick{exposed("sick", "--health-status 500")};
    auto const first = left_running(store, d, ctx, sick).service;
    auto const first_pid = *first.provider_ref;
    // No readiness check, so wait for the listener: adoption looks for it.
    REQUIRE(eventually([&] { return berth::services::detail::port_owner(*first.port).has_value(); }));
    CHECK_FALSE(gone(first_pid));
    supervisor b{store, options(d)};
    auto const again = b.ensure_for_run("run-2", ctx, sick);
    CHECK_FALSE(again[0].reused);
    CHECK(again[0].service.provider_ref != first_pid);
    CHECK(gone(first_pid));
    CHECK_FALSE(berth::services::detail::pid_alive(std::stoll(first_pid)));  // reaped, not a zombie of ours
}

TEST_CASE("registry: a stale record is removed, a dead pid with a live listener is re-pointed to it", "[services]") {
    temp_dir d;
    service_registry const reg(d.registry());
    auto dead = process::child::start(command{.program = "/bin/true"});
    auto const dead_pid = dead.pid();
    (void)dead.wait();
    registry_record rec{.service_key = "workspace-runtime-web-stale", .service_name = "web", .command = "serve",
                        .cwd = d.ws(), .env_fingerprint = "f", .pid = dead_pid};
    reg.write(rec);
    REQUIRE(reg.read(rec.service_key));
    adoption_query q{rec.service_key, "web", "serve", d.ws(), "f", std::nullopt};
    CHECK_FALSE(reg.find_adoptable(q));
    CHECK_FALSE(reg.read(rec.service_key));  // deleted

    // The shell died but the listener it started lives on in the record's process group.
    listener l;
    rec.service_key = "workspace-runtime-web-repoint";
    rec.port = l.port;
    rec.process_group_id = ::getpgrp();
    rec.cwd = fs::current_path().string();
    reg.write(rec);
    q.service_key = rec.service_key;
    q.cwd = rec.cwd;
    q.port = l.port;
    auto const adopted = reg.find_adoptable(q);
    REQUIRE(adopted);
    CHECK(adopted->pid == ::getpid());
    // ...but not when identity differs.
    q.env_fingerprint = "other";
    CHECK_FALSE(reg.find_adoptable(q));
}

TEST_CASE("/proc reads of a process that exits after the open report it gone and never throw", "[services]") {
    // The bug this guards: pid_running and command_line read /proc/<pid>/ with istreambuf_iterator.
    // When the process is reaped between the open and the read, the read fails with ESRCH and
    // libstdc++ throws std::ios_base::failure, out of the supervisor's stop and adoption paths.
    auto vanished = [] {
        auto c = process::child::start(command{.program = "/bin/sleep", .args = {"100"}});
        pid_t const pid = c.pid();
        auto const path = "/proc/" + std::to_string(pid) + "/stat";
        int const fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        std::ifstream stream(path);
        c.signal_group(SIGKILL);
        (void)c.wait();
        return std::tuple{pid, fd, std::move(stream)};
    };
    {
        auto [pid, fd, stream] = vanished();
        REQUIRE(fd >= 0);
        std::optional<std::string> read{"not read"};
        CHECK_NOTHROW(read = berth::services::detail::read_all(fd));
        CHECK_FALSE(read.has_value());
        ::close(fd);
        // The control: the stream form of the same read throws.
        CHECK_THROWS_AS(std::string((std::istreambuf_iterator<char>(stream)), std::istreambuf_iterator<char>()),
                        std::ios_base::failure);
        CHECK_FALSE(berth::services::detail::pid_running(pid));
        CHECK(berth::services::detail::command_line(pid).empty());
    }
    // A live process still reads whole.
    auto const self = berth::services::detail::read_proc_file("/proc/self/stat");
    REQUIRE(self);
    CHECK(self->starts_with(std::to_string(::getpid()) + " ("));
    CHECK(berth::services::detail::pid_running(::getpid()));
}

TEST_CASE("ports: two processes reserving at the same moment never get the same port", "[services]") {
    temp_dir d;
    auto const helper = std::string(BERTH_TEST_SERVICES_HELPER);
    std::vector<process::child> children;
    for (int i = 0; i < 3; ++i)
        children.push_back(process::child::start(
            command{.program = helper, .args = {"reserve-ports", d.registry().string(), "25"}}));
    // Every reserver stays alive until all three are done: a reservation ends with its process,
    // so a reserver that exited early would rightly hand its ports to the others.
    std::vector<std::int64_t> ports;
    for (auto& c : children) {
        std::string out;
        char buf[4096];
        while (out.find("done\n") == std::string::npos) {
            ssize_t const n = ::read(c.stdout_fd(), buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            out.append(buf, static_cast<std::size_t>(n));
        }
        CHECK(out.ends_with("done\n"));
        std::istringstream in(out);
        for (std::int64_t p; in >> p;) ports.push_back(p);
    }
    CHECK(ports.size() == 75);
    CHECK(std::set<std::int64_t>(ports.begin(), ports.end()).size() == ports.size());
    CHECK(port_reserver(d.registry()).reserved_by_live_process(ports.front()));
    for (auto& c : children) {
        c.signal_group(SIGKILL);
        (void)c.wait();
    }
    // The reservations outlive their (now dead) holders only as stale files: a live process may take them again.
    CHECK_FALSE(port_reserver(d.registry()).reserved_by_live_process(ports.front()));
}

#if BERTH_TEST_SQLITE
namespace {

/// berth_test_services_helper `own`: a second berth process supervising the services of `config`.
struct owner_process {
    process::child child;
    std::vector<std::tuple<std::string, std::string, std::int64_t>> services;  // id, pid, port

    owner_process(temp_dir const& d, std::string const& db, std::string const& config_json)
        : child(start(d, db, config_json)) {
        std::string out;
        char buf[4096];
        while (out.find("ready\n") == std::string::npos) {
            ssize_t const n = ::read(child.stdout_fd(), buf, sizeof buf);
            if (n <= 0) break;
            out.append(buf, static_cast<std::size_t>(n));
        }
        std::istringstream in(out);
        std::string word, id, pid;
        std::int64_t port;
        while (in >> word && word == "service" && in >> id >> pid >> port) services.emplace_back(id, pid, port);
    }
    static process::child start(temp_dir const& d, std::string const& db, std::string const& config_json) {
        auto const cfg = (d.path / ("config-" + new_id() + ".json")).string();
        std::ofstream(cfg) << config_json;
        return process::child::start(command{.program = BERTH_TEST_SERVICES_HELPER,
                                             .args = {"own", db, d.registry().string(), cfg, d.ws()}});
    }
    void sigkill() {
        child.signal_group(SIGKILL);  // its own group only: the services lead groups of their own
        (void)child.wait();
    }
};

std::string two_services_config() {
    return R"({"services": [
        {"name": "alpha", "lifecycle": "shared", "command": ")" + server + R"(", "port": {"type": "auto"},
         "readiness": {"type": "http", "urlTemplate": "http://127.0.0.1:{{port}}/health"}},
        {"name": "beta", "lifecycle": "shared", "command": ")" + server + R"(", "port": {"type": "auto"},
         "expose": {"urlTemplate": "http://127.0.0.1:{{port}}/health"}}]})";
}

}  // namespace

TEST_CASE("startup: reconcile adopts the services of a SIGKILLed owner and stops the rest", "[services]") {
    temp_dir d;
    auto const db = (d.path / "berth.db").string();
    owner_process owner(d, db, two_services_config());
    REQUIRE(owner.services.size() == 2);
    owner.sigkill();
    auto const [alpha_id, alpha_pid, alpha_port] = owner.services[0];
    auto const [beta_id, beta_pid, beta_port] = owner.services[1];
    CHECK_FALSE(gone(alpha_pid));  // survived its owner

    auto store = sqlite_store::open(db);
    // A row whose process vanished without a registry record (e.g. the machine rebooted).
    auto ghost = *store.get_runtime_service(alpha_id);
    ghost.id = "ghost";
    store.upsert_runtime_service(ghost, ghost.updated_at);
    // beta's process dies while nobody supervises it: its record is stale.
    ::kill(-static_cast<pid_t>(std::stoll(beta_pid)), SIGKILL);
    CHECK(eventually([&] { return gone(beta_pid); }));

    supervisor sup{store, options(d)};
    auto const r = sup.reconcile_on_startup();
    CHECK(r.reconciled == 3);
    CHECK(r.adopted == 1);
    CHECK(r.stopped == 2);
    auto const alpha = store.get_runtime_service(alpha_id);
    CHECK(alpha->status == runtime_service_status::running);
    CHECK(alpha->health_status == runtime_service_health::healthy);
    CHECK(alpha->provider_ref == alpha_pid);
    CHECK(sup.find(alpha_id));
    CHECK(store.get_runtime_service(beta_id)->status == runtime_service_status::stopped);
    CHECK(store.get_runtime_service("ghost")->status == runtime_service_status::stopped);
    CHECK_FALSE(sup.registry().find_by_runtime_service_id(beta_id));
    CHECK(sup.registry().find_by_runtime_service_id(alpha_id)->owner_pid == ::getpid());

    // The adopted service is supervised: reused by key, stopped through its process group.
    auto const ctx = [&] {
        auto c = context(d.ws());
        c.workspace.project_workspace_id = "pw-helper";
        c.workspace.project_id.reset();
        c.workspace.execution_workspace_id.reset();
        c.agent = {.id = "agent-helper", .name = "helper", .company_id = "company-helper"};
        return c;
    }();
    auto const services = parse_runtime_services(boost::json::parse(two_services_config()));
    auto const reused = sup.ensure_for_run("run-next", ctx, std::span(services).first(1));
    CHECK(reused[0].reused);
    CHECK(reused[0].service.id == alpha_id);
    CHECK(sup.stop(alpha_id));
    CHECK(gone(alpha_pid));
}

TEST_CASE("startup: no service process is left unowned after its owner is SIGKILLed (orphan check)", "[services]") {
    temp_dir d;
    auto const db = (d.path / "berth.db").string();
    owner_process owner(d, db, two_services_config());
    REQUIRE(owner.services.size() == 2);
    owner.sigkill();
    auto const [alpha_id, alpha_pid, alpha_port] = owner.services[0];
    auto const [beta_id, beta_pid, beta_port] = owner.services[1];
    auto store = sqlite_store::open(db);
    // beta's row was never persisted as live (the owner died between spawn and commit): only its
    // registry record and its process know about it.
    store.stop_runtime_services({.ids = {beta_id}}, store.get_runtime_service(beta_id)->updated_at);
    std::vector<std::string> const pids{alpha_pid, beta_pid};
    for (auto const& p : pids) CHECK_FALSE(gone(p));

    supervisor sup{store, options(d)};
    auto const r = sup.reconcile_on_startup();
    CHECK(r.adopted == 1);
    CHECK(r.orphans_stopped == 1);
    // Every process the dead owner started is now either supervised here or gone.
    std::set<std::string> owned;
    for (auto const& s : sup.running()) owned.insert(*s.service.provider_ref);
    for (auto const& p : pids) {
        INFO("pid " << p);
        CHECK((owned.contains(p) || gone(p)));
    }
    CHECK(owned.contains(alpha_pid));
    CHECK(gone(beta_pid));
    for (auto const& rec : sup.registry().list()) CHECK(rec.owner_pid == ::getpid());
}

TEST_CASE("startup: the ephemeral services of a SIGKILLed owner are ended with what they forked, not adopted, "
          "even without a registry record", "[services]") {
    temp_dir d;
    auto const db = (d.path / "berth.db").string();
    // Each service leaves a daemon outside its process group, as a dev server's watcher may.
    std::string const forks = "setsid sleep 300 </dev/null >/dev/null 2>&1 & exec sleep 300";
    owner_process owner(d, db,
                        R"({"services": [{"name": "kept", "command": ")" + forks + R"(", "lifecycle": "ephemeral"},
                                         {"name": "lost", "command": ")" + forks + R"(", "lifecycle": "ephemeral"}]})");
    REQUIRE(owner.services.size() == 2);
    owner.sigkill();
    auto const [kept_id, kept_pid, kept_port] = owner.services[0];
    auto const [lost_id, lost_pid, lost_port] = owner.services[1];
    auto const carriers = [](std::string const& id) {
        std::size_t n = 0;
        for (auto const& [value, pids] : process::scan_environments(services::service_variable).carrying)
            if (value.starts_with(id + " ")) n += pids.size();
        return n;
    };
    // Both survived their owner, each with its daemon.
    REQUIRE(eventually([&] { return carriers(kept_id) == 2 && carriers(lost_id) == 2; }));

    auto store = sqlite_store::open(db);
    supervisor sup{store, options(d)};
    // "lost": its registry record is gone (the next run has another $HOME, or the registry was wiped).
    auto const lost_record = sup.registry().find_by_runtime_service_id(lost_id);
    REQUIRE(lost_record);
    sup.registry().remove(lost_record->service_key);

    auto const r = sup.reconcile_on_startup();
    CHECK(r.adopted == 0);  // no later run can reuse an ephemeral service
    CHECK(r.stopped == 2);
    CHECK(sup.running().empty());
    CHECK(store.get_runtime_service(kept_id)->status == runtime_service_status::stopped);
    CHECK(store.get_runtime_service(lost_id)->status == runtime_service_status::stopped);
    CHECK(carriers(kept_id) == 0);
    CHECK(carriers(lost_id) == 0);
    CHECK(gone(kept_pid));
    CHECK(gone(lost_pid));
    CHECK(sup.registry().list().empty());
}

TEST_CASE("startup: a daemon left by the runtime provision command of a SIGKILLed owner is ended with its service",
          "[services]") {
    temp_dir d;
    auto const db = (d.path / "berth.db").string();
    owner_process owner(d, db, R"({"runtimeProvisionCommand": "setsid sleep 300 </dev/null >/dev/null 2>&1 &",
                                  "services": [{"name": "solo", "command": "exec sleep 300", "lifecycle": "ephemeral"}]})");
    REQUIRE(owner.services.size() == 1);
    owner.sigkill();
    auto const [id, pid, port] = owner.services[0];
    auto const carriers = [&] {
        std::size_t n = 0;
        for (auto const& [value, pids] : process::scan_environments(services::service_variable).carrying)
            if (value.starts_with(id + " ")) n += pids.size();
        return n;
    };
    // The service and the provision command's daemon both carry the service's row id.
    REQUIRE(eventually([&] { return carriers() == 2; }));

    auto store = sqlite_store::open(db);
    supervisor sup{store, options(d)};
    auto const r = sup.reconcile_on_startup();
    CHECK(r.stopped == 1);
    CHECK(carriers() == 0);
    CHECK(gone(pid));
}

TEST_CASE("startup: after the owner and its services are killed, reconcile stops the rows and restart_desired "
          "starts them again", "[services]") {
    temp_dir d;
    auto const db = (d.path / "berth.db").string();
    owner_process owner(d, db, two_services_config());
    REQUIRE(owner.services.size() == 2);
    owner.sigkill();
    for (auto const& [id, pid, port] : owner.services) {
        ::kill(-static_cast<pid_t>(std::stoll(pid)), SIGKILL);  // a reboot: nothing survives
        CHECK(eventually([&, p = pid] { return gone(p); }));
    }
    auto store = sqlite_store::open(db);
    supervisor sup{store, options(d)};
    auto const r = sup.reconcile_on_startup();
    CHECK(r.adopted == 0);
    CHECK(r.stopped == 2);
    CHECK(sup.registry().list().empty());
    // The workspace wants its services running (a project workspace row, as upstream keeps it).
    auto runtime_config = boost::json::parse(two_services_config()).as_object();
    store.create_project_workspace(
        {.company_id = "company-1",
         .project_id = "project-1",
         .name = "Primary",
         .cwd = d.ws(),
         .metadata = json_object{{"runtimeConfig", json_object{{"workspaceRuntime", runtime_config},
                                                               {"desiredState", "running"}}}}},
        system_clock{}.now());
    auto const restarted = sup.restart_desired_on_startup("company-1");
    CHECK(restarted.restarted == 2);
    CHECK(restarted.failed == 0);
    CHECK(sup.running().size() == 2);
    CHECK(store.list_runtime_services({.statuses = {runtime_service_status::running}}).size() == 2);
}

TEST_CASE("startup: restart_desired_on_startup starts the services of workspaces that want them running",
          "[services]") {
    temp_dir d;
    auto store = sqlite_store::open((d.path / "berth.db").string());
    supervisor sup{store, options(d)};
    // Three project workspaces of company-1: one wants its service running, one stopped, and one
    // wants a service running that cannot start.
    auto project_workspace = [&](std::string const& name, std::string const& command, std::string const& desired) {
        auto const runtime = boost::json::parse(R"({"desiredState": ")" + desired +
                                                R"(", "workspaceRuntime": {"services": [{"name": ")" + name +
                                                R"(", "lifecycle": "shared", "command": ")" + command + R"(", "port": {"type": "auto"},
            "readiness": {"type": "http", "urlTemplate": "http://127.0.0.1:{{port}}/health", "timeoutSec": 10}}]}})");
        return store.create_project_workspace({.company_id = "company-1",
                                               .project_id = "project-1",
                                               .name = name,
                                               .cwd = d.ws(name),
                                               .metadata = json_object{{"runtimeConfig", runtime}}},
                                              system_clock{}.now());
    };
    auto const wanted = project_workspace("wanted", server, "running");
    project_workspace("not-wanted", server, "stopped");
    project_workspace("broken", "exit 1", "running");
    auto const r = sup.restart_desired_on_startup("company-1");
    CHECK(r.restarted == 1);
    CHECK(r.failed == 1);
    auto const running = sup.running();
    REQUIRE(running.size() == 1);
    CHECK(running[0].service.service_name == "wanted");
    CHECK(running[0].service.project_workspace_id == wanted.id);
    CHECK_FALSE(running[0].service.started_by_run_id);
    // Again: the running one is reused, not restarted (the broken one fails again).
    auto const again = sup.restart_desired_on_startup("company-1");
    CHECK(again.restarted == 0);
    CHECK(again.failed == 1);
}
#endif
#endif
