// Upstream's newest runtime-service semantics (issue 21), with real processes
// (berth_test_http_server through the shell) through the public API, on both stores: per-service
// desired states, a stopped row's id and port reused, adoption by port ownership, the
// provisioning status, the services given to the run's command, a supervisor restarted in the
// same process, and a 20-service workspace reused by 10 runs.
#if BERTH_TEST_SERVICES && BERTH_TEST_SQLITE
#include <catch2/catch.hpp>

#include "services_fixture.hpp"

#include <berth/model/ids.hpp>
#include <berth/process/child.hpp>
#include <berth/process/spawn.hpp>
#include <berth/services/desired_state.hpp>
#include <berth/services/detail/proc.hpp>
#include <berth/services/http_probe.hpp>
#include <berth/services/ports.hpp>
#include <berth/services/ready_comment.hpp>
#include <berth/services/run_environment.hpp>
#include <berth/services/supervisor.hpp>
#include <berth/stores/memory.hpp>
#include <berth/stores/sqlite.hpp>

#include <boost/json/parse.hpp>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <iterator>
#include <map>
#include <csignal>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace berth;
using namespace berth::services;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

using namespace berth::test::services;

std::vector<std::string> names_of(std::vector<runtime_service_ref> const& refs) {
    std::vector<std::string> out;
    for (auto const& r : refs) out.push_back(r.service.service_name);
    std::sort(out.begin(), out.end());
    return out;
}

std::string read_text(fs::path const& p) {
    std::ifstream in(p);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

TEMPLATE_TEST_CASE("services: a supervisor restarted in the same process adopts what the last one left running",
                   "[services][services-newest]", memory_fixture, sqlite_fixture) {
    // The bug (issues 15 and 21): reconcile_on_startup skipped every registry record naming this
    // pid, although no live supervisor held it: nothing was adopted, and the rows stayed `running`
    // with no supervisor at all.
    TestType f;
    auto const ctx = context(f.dir.ws());
    std::vector<runtime_service_config> const services{web("alpha"), web("beta")};
    std::vector<runtime_service_ref> first;
    {
        auto opts = sh_options(f.dir);
        opts.stop_on_destroy = false;
        supervisor a{f.store, opts};
        first = a.ensure_for_run("run-1", ctx, services);
    }
    REQUIRE(first.size() == 2);
    for (auto const& r : first) CHECK_FALSE(gone(*r.service.provider_ref));

    supervisor b{f.store, sh_options(f.dir)};
    auto const r = b.reconcile_on_startup();
    CHECK(r.reconciled == 2);
    CHECK(r.adopted == 2);
    CHECK(r.stopped == 0);
    CHECK(r.orphans_stopped == 0);
    for (auto const& s : first) {
        INFO(s.service.service_name);
        CHECK(b.find(s.service.id));
        CHECK(f.store.get_runtime_service(s.service.id)->status == runtime_service_status::running);
        CHECK(b.registry().find_by_runtime_service_id(s.service.id)->owner_pid == ::getpid());
    }
    // Supervised for real: a run reuses them, and a stop ends the processes.
    auto const again = b.ensure_for_run("run-2", ctx, services);
    CHECK(again[0].reused);
    CHECK(again[0].service.id == first[0].service.id);
    for (auto const& s : first) CHECK(b.stop(s.service.id));
    for (auto const& s : first) CHECK(gone(*s.service.provider_ref));

    // A second supervisor alive at the same time is not robbed: what `b` holds stays with `b`.
    auto const held = b.start_for_control(ctx, std::span(services).first(1));
    supervisor c{f.store, sh_options(f.dir)};
    auto const rc = c.reconcile_on_startup();
    CHECK(rc.adopted == 0);
    CHECK(rc.orphans_stopped == 0);
    CHECK(b.find(held[0].service.id));
    CHECK_FALSE(c.find(held[0].service.id));
    CHECK_FALSE(gone(*held[0].service.provider_ref));
}
TEST_CASE("services: desired-state patches keep manual, the aggregate follows the services", "[services][services-newest]") {
    workspace_runtime_states const none{};
    auto const all = desired_state_patch(none, 3, runtime_control_action::start);
    CHECK(all.desired_state == runtime_desired_state::running);
    CHECK(all.service_states == std::map<std::size_t, runtime_desired_state>{
                                    {0, runtime_desired_state::running},
                                    {1, runtime_desired_state::running},
                                    {2, runtime_desired_state::running}});
    workspace_runtime_states with_manual{.desired_state = runtime_desired_state::running,
                                         .service_states = {{1, runtime_desired_state::manual}}};
    auto const stop_one = desired_state_patch(with_manual, 3, runtime_control_action::stop, 0);
    CHECK(stop_one.service_states.at(0) == runtime_desired_state::stopped);
    CHECK(stop_one.service_states.at(1) == runtime_desired_state::manual);
    CHECK(stop_one.service_states.at(2) == runtime_desired_state::running);
    CHECK(stop_one.desired_state == runtime_desired_state::running);
    auto const stop_all = desired_state_patch(with_manual, 3, runtime_control_action::stop);
    CHECK(stop_all.service_states.at(1) == runtime_desired_state::manual);  // never changed
    CHECK(stop_all.desired_state == runtime_desired_state::manual);
    CHECK(desired_state_patch(with_manual, 3, runtime_control_action::start, 1).service_states.at(1) ==
          runtime_desired_state::manual);
    CHECK(desired_state_patch({}, 2, runtime_control_action::stop).desired_state == runtime_desired_state::stopped);
    CHECK_THROWS_WITH(desired_state_patch(none, 2, runtime_control_action::start, 2),
                      "Workspace runtime control: service index 2 is out of range (2 services)");

    // Read and written as upstream stores them in the workspace config.
    auto const config = boost::json::parse(R"({"desiredState": "running", "serviceStates": {"1": "manual", "0": "stopped"},
        "runtimeProvisionCommand": "  make deps ", "workspaceRuntime": {"services": [
        {"name": "a", "command": "x"}, {"name": "b", "command": "y", "desiredState": "running"}]}})").as_object();
    auto const runtime = parse_workspace_runtime(config);
    CHECK(runtime.states.desired_state == runtime_desired_state::running);
    CHECK(runtime.services[0].desired_state == runtime_desired_state::stopped);
    CHECK(runtime.services[1].desired_state == runtime_desired_state::manual);  // serviceStates wins
    CHECK(runtime.runtime_provision_command == "make deps");
    boost::json::object out;
    write_runtime_states(out, runtime.states);
    CHECK(read_runtime_states(out) == runtime.states);
    CHECK(parse_workspace_runtime(boost::json::parse(R"({"workspaceStrategy": {"runtimeProvisionCommand": "prep"}})")
                                      .as_object())
              .runtime_provision_command == "prep");
    CHECK_THROWS_WITH(read_runtime_states(boost::json::parse(R"({"serviceStates": {"0": "paused"}})").as_object()),
                      "Workspace runtime config: field \"serviceStates.0\" must be one of running, stopped, manual, "
                      "got \"paused\"");
    CHECK_THROWS_WITH(read_runtime_states(boost::json::parse(R"({"serviceStates": {"web": "running"}})").as_object()),
                      "Workspace runtime config: field \"serviceStates\" has a key that is not a service index, got \"web\"");
}

TEST_CASE("services: upstream's 90 s readiness default for dev servers", "[services][services-newest]") {
    auto timeout_of = [](std::string const& command, std::string const& readiness = R"({"type": "http"})") {
        auto const j = boost::json::object{{"command", command}, {"readiness", boost::json::parse(readiness)}};
        return parse_runtime_service(j).readiness->timeout_sec;
    };
    CHECK(timeout_of("pnpm dev") == 90);
    CHECK(timeout_of("npm run dev") == 90);
    CHECK(timeout_of("cd web && /usr/local/bin/yarn dev --port $PORT") == 90);
    CHECK(timeout_of("bun run dev") == 90);
    CHECK(timeout_of("pnpm build") == 30);
    CHECK(timeout_of("pnpm run develop") == 30);
    CHECK(timeout_of("./serve") == 30);
    CHECK(timeout_of("pnpm dev", R"({"type": "http", "timeoutSec": 5})") == 5);
}

TEMPLATE_TEST_CASE("services: manual services are left alone by runs, controls and restart follow serviceStates",
                   "[services][services-newest]", memory_fixture, sqlite_fixture) {
    TestType f;
    auto const ws = f.dir.ws();
    auto const config = boost::json::parse(R"({"desiredState": "running", "serviceStates": {"1": "manual"},
        "workspaceRuntime": {"services": [
          {"name": "api", "lifecycle": "shared", "command": ")" + server + R"(", "port": {"type": "auto"},
           "readiness": {"type": "http", "urlTemplate": "http://127.0.0.1:{{port}}/health"}},
          {"name": "storybook", "lifecycle": "shared", "command": ")" + server + R"(", "port": {"type": "auto"},
           "readiness": {"type": "http", "urlTemplate": "http://127.0.0.1:{{port}}/health"}},
          {"name": "worker", "lifecycle": "shared", "command": ")" + server + R"(", "port": {"type": "auto"},
           "readiness": {"type": "http", "urlTemplate": "http://127.0.0.1:{{port}}/health"}}]}})")
                            .as_object();
    auto const now = system_clock{}.now();
    auto const ew = f.store.create_execution_workspace({.company_id = "company-1",
                                                        .project_id = "project-1",
                                                        .project_workspace_id = "pw-1",
                                                        .name = "EW",
                                                        .cwd = ws,
                                                        .metadata = json_object{{"config", config}}},
                                                       now);
    auto const ctx = context(ws, ew.id);
    auto runtime_of_store = [&] {
        return parse_workspace_runtime(f.store.get_execution_workspace(ew.id)->metadata->at("config").as_object());
    };
    std::vector<runtime_service_ref> first;
    {
        supervisor sup{f.store, sh_options(f.dir)};
        auto runtime = runtime_of_store();
        first = sup.ensure_for_run("run-1", ctx, runtime.services);
        CHECK(names_of(first) == std::vector<std::string>{"api", "worker"});  // storybook is manual

        // Stop one service by index: its state becomes stopped, manual stays manual, the store has it.
        auto const stopped = sup.control(runtime_control_action::stop, ctx, runtime, 0);
        CHECK(stopped.stopped == 1);
        CHECK(stopped.persisted);
        CHECK(gone(*first[0].service.provider_ref));
        runtime = runtime_of_store();
        CHECK(runtime.states.service_states.at(0) == runtime_desired_state::stopped);
        CHECK(runtime.states.service_states.at(1) == runtime_desired_state::manual);
        CHECK(runtime.states.service_states.at(2) == runtime_desired_state::running);
        // A run now: api is stopped by desire, storybook manual, worker reused.
        auto const second = sup.ensure_for_run("run-2", ctx, runtime.services);
        REQUIRE(second.size() == 1);
        CHECK(second[0].service.service_name == "worker");
        CHECK(second[0].reused);

        // Start all: every service that is not manual; then the manual one by its index.
        auto const all = sup.control(runtime_control_action::start, ctx, runtime);
        CHECK(names_of(all.started) == std::vector<std::string>{"api", "worker"});
        runtime = runtime_of_store();
        CHECK(runtime.states.service_states.at(0) == runtime_desired_state::running);
        auto const manual = sup.control(runtime_control_action::start, ctx, runtime, 1);
        CHECK(names_of(manual.started) == std::vector<std::string>{"storybook"});
        CHECK(runtime_of_store().states.service_states.at(1) == runtime_desired_state::manual);
        CHECK(sup.running().size() == 3);
        sup.release_for_run("run-1");
        sup.release_for_run("run-2");
    }  // a server restart: every service stops with the supervisor

    // restart_desired_on_startup reads the workspace rows itself: api and worker, not the manual one.
    supervisor sup{f.store, sh_options(f.dir)};
    CHECK(sup.reconcile_on_startup().adopted == 0);
    auto const r = sup.restart_desired_on_startup("company-1");
    CHECK(r.restarted == 2);
    CHECK(r.failed == 0);
    CHECK(names_of(sup.running()) == std::vector<std::string>{"api", "worker"});
    for (auto const& s : sup.running()) {
        CHECK(s.service.execution_workspace_id == ew.id);
        CHECK_FALSE(s.service.started_by_run_id);
    }
    CHECK(sup.restart_desired_on_startup("company-1").restarted == 0);  // running ones are reused
    CHECK(sup.restart_desired_on_startup("company-2").restarted == 0);
}

TEMPLATE_TEST_CASE("services: a stopped row's id and port are reused by the next start of its reuse key",
                   "[services][services-newest]", memory_fixture, sqlite_fixture) {
    TestType f;
    supervisor sup{f.store, sh_options(f.dir)};
    auto const ctx = context(f.dir.ws());
    std::vector<runtime_service_config> const shared{web("web")};
    auto const first = sup.ensure_for_run("run-1", ctx, shared)[0].service;
    CHECK(sup.stop(first.id));
    CHECK(f.store.get_runtime_service(first.id)->status == runtime_service_status::stopped);
    auto const again = sup.ensure_for_run("run-2", ctx, shared)[0];
    CHECK_FALSE(again.reused);
    CHECK(again.service.id == first.id);
    CHECK(again.service.port == first.port);
    CHECK(again.service.provider_ref != first.provider_ref);
    CHECK(f.store.list_runtime_services({}).size() == 1);
    CHECK(f.store.get_runtime_service(first.id)->status == runtime_service_status::running);
    CHECK(again.service.created_at == f.store.get_runtime_service(first.id)->created_at);

    // The port is given back only when free: taken meanwhile, the id is still reused, the port is new.
    CHECK(sup.stop(first.id));
    // stop() returns once the group's leader is gone; the server it started may close a moment later.
    REQUIRE(eventually([&] { return !berth::services::detail::port_owner(*first.port); }));
    foreign_server squatter(f.dir.ws("elsewhere"), *first.port);
    auto const third = sup.ensure_for_run("run-3", ctx, shared)[0].service;
    CHECK(third.id == first.id);
    CHECK(third.port != first.port);
    CHECK(sup.stop(third.id));
}

TEMPLATE_TEST_CASE("services: an explicit port held by another workspace is refused with upstream's words",
                   "[services][services-newest]", memory_fixture, sqlite_fixture) {
    TestType f;
    supervisor sup{f.store, sh_options(f.dir)};
    auto const ws = f.dir.ws();
    auto const port = free_port(f.dir);
    auto const fixed = svc(R"({"name": "api", "lifecycle": "shared", "command": ")" + server + R"(", "port": )" + std::to_string(port) + "}");
    std::vector<runtime_service_config> const services{fixed};
    {
        foreign_server other(f.dir.ws("ws-b"), port);  // a sibling workspace, never inside this one
        auto const pid = std::to_string(other.child.pid());
        CHECK_THROWS_WITH(sup.ensure_for_run("run-1", context(ws), services),
                          "Runtime service \"api\" could not start because port " + std::to_string(port) +
                              " has a cross-workspace port conflict with pid " + pid + " (cwd: " + f.dir.ws("ws-b") +
                              "); requested workspace: " + ws +
                              ". Stop the other service or configure a different port.");
        CHECK_FALSE(gone(pid));  // never adopted, never ended
    }
    {
        // Inside this workspace's tree (a nested worktree) but another workspace's service: its
        // registry record names the process, so it is not adopted either.
        auto const nested = f.dir.ws("ws/nested");
        auto other_ctx = context(nested, "ew-nested");
        other_ctx.workspace.project_workspace_id = "pw-nested";
        auto const theirs = sup.start_for_control(other_ctx, services)[0].service;
        REQUIRE(eventually([&] { return berth::services::detail::port_owner(port).has_value(); }));
        CHECK_THROWS_WITH(sup.ensure_for_run("run-2", context(ws), services),
                          Catch::Contains("could not start because port " + std::to_string(port) +
                                          " is already in use by pid"));
        CHECK(sup.find(theirs.id));
        CHECK(sup.stop(theirs.id));
    }
}

TEMPLATE_TEST_CASE("services: a live service whose registry record is gone is adopted by its port, never another "
                   "workspace's", "[services][services-newest]", memory_fixture, sqlite_fixture) {
    TestType f;
    auto const ctx = context(f.dir.ws());
    std::vector<runtime_service_config> const services{web("alpha"), web("beta")};
    std::vector<runtime_service_ref> first;
    {
        auto opts = sh_options(f.dir);
        opts.stop_on_destroy = false;
        supervisor a{f.store, opts};
        first = a.ensure_for_run("run-1", ctx, services);
    }
    // The records vanish (a wiped registry directory); the processes and live rows stay.
    for (auto const& r : service_registry(f.dir.registry()).list()) service_registry(f.dir.registry()).remove(r.service_key);
    // A third live row of this workspace whose port another workspace's process holds.
    auto const port = free_port(f.dir);
    foreign_server other(f.dir.ws("ws-b"), port);
    auto stray = *f.store.get_runtime_service(first[0].service.id);
    stray.id = "stray";
    stray.service_name = "gamma";
    stray.port = port;
    stray.provider_ref = "1";
    f.store.upsert_runtime_service(stray, stray.updated_at);

    supervisor b{f.store, sh_options(f.dir)};
    auto const r = b.reconcile_on_startup();
    CHECK(r.reconciled == 3);
    CHECK(r.adopted == 2);
    CHECK(r.adopted_by_port == 2);
    CHECK(r.stopped == 1);
    CHECK(f.store.get_runtime_service("stray")->status == runtime_service_status::stopped);
    CHECK_FALSE(gone(std::to_string(other.child.pid())));  // another workspace's process: left alone
    for (auto const& s : first) {
        INFO(s.service.service_name);
        auto const adopted = b.find(s.service.id);
        REQUIRE(adopted);
        CHECK(adopted->service.port == s.service.port);
        CHECK(f.store.get_runtime_service(s.service.id)->status == runtime_service_status::running);
        CHECK(b.registry().find_by_runtime_service_id(s.service.id));  // the record is written again
    }
    // A run reuses them; a stop ends them (their groups: the shell's child listens).
    auto const again = b.ensure_for_run("run-2", ctx, services);
    CHECK(again[0].reused);
    for (auto const& s : first) CHECK(b.stop(s.service.id));
    for (auto const& s : first) CHECK(eventually([&] { return !berth::services::detail::port_owner(*s.service.port); }));

    // The start path too: an explicit-port service left running, its record removed.
    auto const fixed_port = free_port(f.dir);
    std::vector<runtime_service_config> const fixed{svc(R"({"name": "fixed", "lifecycle": "shared", "command": ")" + server +
                                                        R"(", "port": )" + std::to_string(fixed_port) + "}")};
    runtime_service_ref left;
    {
        auto opts = sh_options(f.dir);
        opts.stop_on_destroy = false;
        supervisor a{f.store, opts};
        left = a.ensure_for_run("run-3", ctx, fixed)[0];
    }
    REQUIRE(eventually([&] { return berth::services::detail::port_owner(fixed_port).has_value(); }));
    for (auto const& rec : service_registry(f.dir.registry()).list()) service_registry(f.dir.registry()).remove(rec.service_key);
    auto const adopted = b.ensure_for_run("run-4", ctx, fixed)[0];
    CHECK(adopted.reused);
    CHECK(adopted.service.id == left.service.id);
    CHECK(b.stop(adopted.service.id));
    CHECK(eventually([&] { return !berth::services::detail::port_owner(fixed_port); }));
}

TEMPLATE_TEST_CASE("services: the runtime provision command runs once per workspace, lazily, with a provisioning row",
                   "[services][services-newest]", memory_fixture, sqlite_fixture) {
    TestType f;
    supervisor sup{f.store, sh_options(f.dir)};
    auto ctx = context(f.dir.ws());
    auto const marker = fs::path(ctx.workspace.cwd) / "provisioned.txt";
    // Lazy: a run that starts nothing (its one service is manual) provisions nothing.
    ctx.workspace.runtime_provision_command = "echo early >> provisioned.txt";
    auto manual = web("api");
    manual.desired_state = runtime_desired_state::manual;
    CHECK(sup.ensure_for_run("run-0", ctx, std::vector{manual}).empty());
    CHECK_FALSE(fs::exists(marker));

    ctx.workspace.runtime_provision_command = "echo broken >&2; exit 4";
    std::vector<runtime_service_config> const services{web("api"), web("worker")};
    CHECK_THROWS_WITH(sup.ensure_for_run("run-1", ctx, services),
                      "Failed to start runtime service \"api\": runtime provision command \"echo broken >&2; exit 4\" "
                      "exited with code 4 | stderr: broken");
    auto const failed = f.store.list_runtime_services({.statuses = {runtime_service_status::failed}});
    REQUIRE(failed.size() == 1);
    CHECK(failed[0].health_status == runtime_service_health::unhealthy);

    // Retried on the next start; the row is `provisioning` while the command runs.
    ctx.workspace.runtime_provision_command = "sleep 0.3; echo once >> provisioned.txt";
    std::atomic<bool> seen{false}, done{false};
    std::thread watcher([&] {
        while (!done && !seen)
            if (!f.store.list_runtime_services({.statuses = {runtime_service_status::provisioning}}).empty()) seen = true;
            else std::this_thread::sleep_for(2ms);
    });
    auto const refs = sup.ensure_for_run("run-2", ctx, services);
    done = true;
    watcher.join();
    CHECK(seen);
    CHECK(refs.size() == 2);
    CHECK(read_text(marker) == "once\n");  // once for the workspace, not once per service
    auto const ops = f.store.list_operations({.company_id = "company-1"});
    CHECK(std::count_if(ops.begin(), ops.end(), [](auto const& o) {
              return o.phase == workspace_operation_phase::workspace_runtime_provision;
          }) == 2);  // the failure and the success
    CHECK(sup.ensure_for_run("run-3", ctx, std::span(services).first(1))[0].reused);
    CHECK(read_text(marker) == "once\n");
}

TEMPLATE_TEST_CASE("services: the run's command gets the services' URLs and ports, the ready summary names them",
                   "[services][services-newest]", memory_fixture, sqlite_fixture) {
    TestType f;
    supervisor sup{f.store, sh_options(f.dir)};
    auto const ctx = context(f.dir.ws());
    std::vector<runtime_service_config> const services{web("web-ui"), web("api")};
    auto const refs = sup.ensure_for_run("run-1", ctx, services);
    auto const env = service_environment(refs);
    auto const r = process::run(command{.program = "/bin/sh",
                                        .args = {"-c", "echo \"$BERTH_SERVICE_WEB_UI_URL $BERTH_SERVICE_API_PORT\""},
                                        .env = env},
                                {.inherit_sanitized_environment = true});
    CHECK(r.stdout_text == *refs[0].service.url + " " + std::to_string(*refs[1].service.port) + "\n");
    CHECK(http_get(env.at("BERTH_SERVICE_WEB_UI_URL"), 2s).ok());
    auto const summary = build_workspace_ready_comment(ctx.workspace, refs);
    CHECK_THAT(summary, Catch::Contains("- Service: web-ui: " + *refs[0].service.url + " (port " +
                                        std::to_string(*refs[0].service.port) +
                                        "; `$BERTH_SERVICE_WEB_UI_URL`, `$BERTH_SERVICE_WEB_UI_PORT`)"));
    sup.release_for_run("run-1");
}

TEMPLATE_TEST_CASE("services: a 20-service workspace started, reused by 10 runs, stopped, with no process left",
                   "[services][services-newest]", memory_fixture, sqlite_fixture) {
    TestType f;
    supervisor sup{f.store, sh_options(f.dir)};
    auto const ctx = context(f.dir.ws());
    std::vector<runtime_service_config> services;
    for (int i = 0; i < 20; ++i) services.push_back(web("svc-" + std::to_string(i)));
    std::set<std::string> ids, pids;
    for (int run = 0; run < 10; ++run) {
        auto const run_id = "run-" + std::to_string(run);
        auto const refs = sup.ensure_for_run(run_id, ctx, services);
        REQUIRE(refs.size() == 20);
        for (auto const& r : refs) {
            CHECK(r.reused == (run > 0));
            ids.insert(r.service.id);
            pids.insert(*r.service.provider_ref);
        }
        if (run % 2 == 1) sup.release_for_run(run_id);  // manual stop policy: they keep running
    }
    CHECK(ids.size() == 20);
    CHECK(pids.size() == 20);
    CHECK(sup.running().size() == 20);
    CHECK(sup.leases_of(*ids.begin()).size() == 5);
    CHECK(sup.stop_for_execution_workspace("ew-1") == 20);
    for (auto const& p : pids) CHECK(gone(p));
    CHECK(sup.running().empty());
    CHECK(service_registry(f.dir.registry()).list().empty());
    CHECK(f.store.list_runtime_services({.statuses = {runtime_service_status::running}}).empty());
    CHECK(f.store.list_runtime_services({}).size() == 20);
}
#endif
