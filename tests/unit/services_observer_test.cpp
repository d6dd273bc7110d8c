// The runtime service supervisor's progress and cancellation, with real processes
// (berth_test_http_server through `$SHELL -lc`): an observer (the supervisor's third template
// parameter) is told of each service's start and of its readiness wait, in order, with the wait's
// URL and timeout; a stop requested through service_context::stop ends a readiness wait or a
// runtime provision command at once, stops what was started, and leaves consistent rows.
#if BERTH_TEST_SERVICES
#include <catch2/catch.hpp>

#include "recording_observer.hpp"
#include "services_fixture.hpp"

#include <berth/orchestrator/observer.hpp>
#include <berth/services/ports.hpp>
#include <berth/services/supervisor.hpp>
#include <berth/stores/memory.hpp>

#include <chrono>
#include <fstream>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

using namespace berth;
using namespace berth::services;
using namespace berth::test::services;
using namespace std::chrono_literals;

namespace {

using berth::test::recording_observer;

// No observer unless one is asked for: the supervisor every caller already names reports nothing.
static_assert(std::is_same_v<supervisor<memory_store>, supervisor<memory_store, system_clock, no_observer>>);

template <class Store>
using observed = supervisor<Store, system_clock, recording_observer>;

std::string url_of(runtime_service_ref const& r) { return r.service.url.value_or("(none)"); }

}  // namespace

TEST_CASE("supervisor observer: each service's start and its readiness wait are reported in order, with the URL "
          "and timeout",
          "[services][observer]") {
    temp_dir d;
    memory_store store;
    recording_observer obs;
    observed<memory_store> sup{store, options(d), system_clock{}, obs};
    auto const svc = web("web", "--delay-ms 200");  // readiness: GET .../health, timeoutSec 10
    std::vector<runtime_service_config> const services{svc};

    auto const refs = sup.ensure_for_run("run-1", context(d.ws()), services);
    REQUIRE(refs.size() == 1);
    auto const url = url_of(refs[0]);
    REQUIRE(url.starts_with("http://127.0.0.1:"));
    CHECK(obs.events->all() ==
          std::vector<std::string>{"started service run-1 service web: " + svc.command,
                                   "started readiness run-1 waiting for service web: GET " + url + " (timeout 10 s)",
                                   "ended readiness ok ready",
                                   "ended service ok started pid " + *refs[0].service.provider_ref + " " + url});

    // A second run reuses it: a service step, no readiness wait.
    obs.events->clear();
    (void)sup.ensure_for_run("run-2", context(d.ws()), services);
    CHECK(obs.events->all() ==
          std::vector<std::string>{"started service run-2 service web: " + svc.command,
                                   "ended service ok reused pid " + *refs[0].service.provider_ref + " " + url});

    // A readiness failure ends both steps failed, with the error.
    obs.events->clear();
    auto bad = web("bad", "--health-status 500");
    bad.readiness->timeout_sec = 3;  // under load the server may take over 1 s to listen: "Connection refused", not HTTP 500
    std::vector<runtime_service_config> const bad_services{bad};
    CHECK_THROWS(sup.ensure_for_run("run-3", context(d.ws()), bad_services));
    auto const events = obs.events->all();
    REQUIRE(events.size() == 4);
    CHECK(events[0] == "started service run-3 service bad: " + bad.command);
    CHECK_THAT(events[1], Catch::StartsWith("started readiness run-3 waiting for service bad: GET http://127.0.0.1:") &&
                              Catch::EndsWith("/health (timeout 3 s)"));
    CHECK_THAT(events[2], Catch::StartsWith("ended readiness failed Failed to start runtime service \"bad\": "
                                            "Readiness check failed for ") &&
                              Catch::Contains("received HTTP 500"));
    CHECK_THAT(events[3], Catch::StartsWith("ended service failed Failed to start runtime service \"bad\""));
}

TEMPLATE_TEST_CASE("supervisor: a readiness wait cancelled through the stop token ends at once, stops what the run "
                   "started and leaves consistent rows",
                   "[services][cancel]", memory_fixture
#if BERTH_TEST_SQLITE
                   ,
                   sqlite_fixture
#endif
) {
    TestType f;
    recording_observer obs;
    observed<decltype(f.store)> sup{f.store, options(f.dir), system_clock{}, obs};
    // The first service is ready at once; the second never is (HTTP 500) within its 60 s.
    auto never = web("never", "--health-status 500");
    never.readiness->timeout_sec = 60;
    never.readiness->interval_ms = 1000;
    auto first = web("first");
    first.lifecycle = runtime_service_lifecycle::ephemeral;  // released with the run: stopped
    std::vector<runtime_service_config> const services{first, never};
    auto ctx = context(f.dir.ws());
    std::stop_source stop;
    ctx.stop = stop.get_token();

    std::chrono::steady_clock::time_point requested{};
    std::jthread canceller([&] {
        for (int i = 0; i < 1500 && !obs.events->has_prefix("started readiness run-1 waiting for service never"); ++i)
            std::this_thread::sleep_for(10ms);
        std::this_thread::sleep_for(500ms);  // well into the wait: probes have failed, the gap has grown
        requested = std::chrono::steady_clock::now();
        stop.request_stop();
    });
    std::string message;
    try {
        (void)sup.ensure_for_run("run-1", ctx, services);
    } catch (berth::error const& e) {
        message = e.what();
    }
    auto const ended = std::chrono::steady_clock::now();
    canceller.join();
    CHECK_THAT(message, Catch::StartsWith("Failed to start runtime service \"never\": cancelled while waiting for "
                                          "readiness of http://127.0.0.1:"));
    CHECK(ended - requested < 1s);

    // Nothing runs, nothing is registered or reserved, and no row says it runs.
    CHECK(sup.running().empty());
    CHECK(sup.registry().list().empty());
    auto const rows = f.store.list_runtime_services({});
    REQUIRE(rows.size() == 2);
    for (auto const& row : rows) {
        INFO(row.service_name);
        CHECK(row.status == runtime_service_status::stopped);
        CHECK(row.stopped_at);
        REQUIRE(row.provider_ref);
        CHECK(gone(*row.provider_ref));
        REQUIRE(row.port);
        CHECK_FALSE(port_reserver(f.dir.registry()).reserved_by_live_process(*row.port));
        if (row.service_name == "never") CHECK(row.health_status == runtime_service_health::unhealthy);
    }
    auto const events = obs.events->all();
    REQUIRE(events.size() >= 2);
    CHECK_THAT(events[events.size() - 2], Catch::StartsWith("ended readiness failed ") && Catch::Contains("cancelled"));
    CHECK_THAT(events.back(), Catch::StartsWith("ended service failed ") && Catch::Contains("cancelled"));

    // Once stopped, a later start is refused before anything runs.
    CHECK_THROWS_WITH(sup.ensure_for_run("run-2", ctx, services),
                      "Failed to start runtime service \"first\": cancelled before it started");
    CHECK(f.store.list_runtime_services({}).size() == 2);
}

TEST_CASE("supervisor: a runtime provision command cancelled through the stop token ends with its group",
          "[services][cancel]") {
    temp_dir d;
    memory_store store;
    supervisor sup{store, options(d)};
    auto ctx = context(d.ws());
    auto const pidfile = d.path / "provision.pid";
    ctx.workspace.runtime_provision_command = "echo $$ > '" + pidfile.string() + "'; exec sleep 30";
    std::stop_source stop;
    ctx.stop = stop.get_token();
    std::jthread canceller([&] {
        for (int i = 0; i < 1500 && !fs::exists(pidfile); ++i) std::this_thread::sleep_for(10ms);
        std::this_thread::sleep_for(100ms);
        stop.request_stop();
    });
    std::vector<runtime_service_config> const services{web("web")};
    auto const started = std::chrono::steady_clock::now();
    CHECK_THROWS_WITH(sup.ensure_for_run("run-1", ctx, services),
                      Catch::StartsWith("Failed to start runtime service \"web\": runtime provision command ") &&
                          Catch::Contains("\" cancelled"));
    CHECK(std::chrono::steady_clock::now() - started < 10s);  // not the 30 s of the command
    canceller.join();
    std::string pid;
    std::ifstream(pidfile) >> pid;
    REQUIRE_FALSE(pid.empty());
    CHECK(eventually([&] { return gone(pid); }));
    CHECK(sup.running().empty());
    for (auto const& row : store.list_runtime_services({})) CHECK(row.status != runtime_service_status::running);
}

TEST_CASE("supervisor observer: a runtime provision command is a provision step with its output as it comes, "
          "its failure with the error",
          "[services][observer]") {
    temp_dir d;
    memory_store store;
    recording_observer obs;
    observed<memory_store> sup{store, options(d), system_clock{}, obs};
    auto ctx = context(d.ws());
    ctx.workspace.runtime_provision_command = "echo preparing; echo prepared >&2";
    std::vector<runtime_service_config> const services{web("web")};
    (void)sup.ensure_for_run("run-1", ctx, services);
    auto const events = obs.events->all();
    REQUIRE(events.size() >= 6);
    CHECK(events[0] == "started service run-1 service web: " + services[0].command);
    CHECK(events[1] == "started provision run-1 runtime provision of " + d.ws() + ": " +
                           *ctx.workspace.runtime_provision_command);
    std::string out, err;
    std::size_t i = 2;
    for (; i < events.size() && events[i].starts_with("output provision "); ++i) out += events[i].substr(17);
    CHECK(out.find("preparing\n") != std::string::npos);
    CHECK(out.find("prepared\n") != std::string::npos);
    REQUIRE(i < events.size());
    CHECK(events[i] == "ended provision ok provisioned");
    CHECK(events.back().starts_with("ended service ok started pid "));

    // Another workspace whose provisioning fails: the step ends failed with the service's error.
    temp_dir other;
    fs::create_directories(other.ws());
    obs.events->clear();
    auto bad = context(other.ws(), "ew-2");
    bad.workspace.runtime_provision_command = "echo the real error >&2; exit 3";
    CHECK_THROWS(sup.ensure_for_run("run-2", bad, services));
    bool failed = false;
    for (auto const& e : obs.events->all())
        failed = failed || (e.starts_with("ended provision failed Failed to start runtime service \"web\": runtime "
                                          "provision command ") &&
                            e.find("exited with code 3 | stderr: the real error") != std::string::npos);
    CHECK(failed);
}
#endif
