// berth::plugins::worker_host's call path against real SDK workers: calls read the worker's
// output themselves while they wait (leader/follower), so these cases check what that must not
// lose — a worker that writes while no call is in flight, the lead passing on when the leading
// call times out or its on_log throws, and many calls from many threads at once.
#include <berth/plugins/worker_host.hpp>

#include "plugin_fixture.hpp"

#include <catch2/catch.hpp>

#include <boost/json/serialize.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace berth;
using namespace berth::plugins;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {

worker_options calls_worker() {
    worker_options o;
    o.command = test::plugin_worker("test-plugin.mjs");
    o.plugin_id = "berth.test";
    o.manifest = json::object{{"id", "berth.test"}, {"apiVersion", 1}, {"version", "0.0.1"}};
    return o;
}

json::object execute(std::string command, std::vector<std::string> args = {}) {
    json::array a;
    for (auto& s : args) a.emplace_back(s);
    return json::object{{"driverKey", "test"}, {"companyId", "c1"}, {"environmentId", "e1"},
                        {"lease", json::object{{"providerLeaseId", "L"}}}, {"command", command}, {"args", a}};
}

std::string stdout_of(json::value const& v) { return std::string(v.as_object().at("stdout").as_string()); }

void wait_for_in_flight(worker_host& host, std::size_t n) {
    for (int i = 0; i < 2000 && host.diagnostics().calls_in_flight < n; ++i) std::this_thread::sleep_for(1ms);
    REQUIRE(host.diagnostics().calls_in_flight >= n);
}

}  // namespace

TEST_CASE("plugin host calls: what a worker writes while no call is in flight is handled", "[plugins]") {
    BERTH_REQUIRE_PLUGIN_SDK();
    auto o = calls_worker();
    std::mutex m;
    std::vector<std::string> logs;
    std::atomic<int> asked{0};
    o.on_notification = [&](std::string_view method, json::value const& params) {
        auto const* message = method == "log" ? params.as_object().if_contains("message") : nullptr;
        if (message == nullptr || !message->is_string() ||
            !std::string_view(message->get_string()).starts_with("later"))
            return;
        std::lock_guard lock(m);
        logs.emplace_back(message->get_string());
    };
    o.host_methods["config.get"] = [&](json::value const&) -> json::value {
        ++asked;
        return json::object{{"k", "v"}};
    };
    worker_host host(std::move(o));
    CHECK(stdout_of(host.call("environmentExecute", execute("later", {"200"}))) == "later scheduled");
    CHECK(host.diagnostics().calls_in_flight == 0);

    // 200 ms later the worker logs, asks the host (a request only the host's reading answers), and
    // logs the answer; no call is in flight meanwhile.
    auto const expected = std::vector<std::string>{"later", R"(later config {"k":"v"})"};
    for (int i = 0; i < 500; ++i) {
        {
            std::lock_guard lock(m);
            if (logs.size() >= 2) break;
        }
        std::this_thread::sleep_for(10ms);
    }
    std::lock_guard lock(m);
    CHECK(logs == expected);
    CHECK(asked == 1);
    CHECK(host.diagnostics().calls_in_flight == 0);
}

TEST_CASE("plugin host calls: a call that times out while the others wait does not strand them",
          "[plugins]") {
    BERTH_REQUIRE_PLUGIN_SDK();
    worker_host host(calls_worker());
    host.start();
    // The first call leads (it reads the worker's output) and gives up after 100 ms; the second,
    // waiting behind it, must get its answer at about 400 ms all the same.
    std::optional<rpc_error> first;
    std::thread impatient([&] {
        try {
            (void)host.call("environmentExecute", execute("sleep", {"1500"}), {.timeout = 100ms});
        } catch (rpc_error const& e) {
            first = e;
        }
    });
    wait_for_in_flight(host, 1);
    auto const t0 = std::chrono::steady_clock::now();
    auto const r = host.call("environmentExecute", execute("sleep", {"400"}));
    auto const took = std::chrono::steady_clock::now() - t0;
    impatient.join();
    REQUIRE(first);
    CHECK(first->timed_out());
    CHECK(stdout_of(r) == "slept 400");
    CHECK(took < 1400ms);  // not the first call's 1500 ms, nor its deadline
    CHECK(host.diagnostics().starts == 1);
    CHECK(host.diagnostics().calls_in_flight == 0);
}

TEST_CASE("plugin host calls: a caller whose on_log throws leaves, the other calls go on", "[plugins]") {
    BERTH_REQUIRE_PLUGIN_SDK();
    worker_host host(calls_worker());
    host.start();
    std::optional<std::string> slow_out;
    std::thread slow([&] { slow_out = stdout_of(host.call("environmentExecute", execute("sleep", {"300"}))); });
    wait_for_in_flight(host, 1);
    CHECK_THROWS_WITH(host.call("environmentExecute", execute("chunks", {"a", "b"}),
                                {.on_log = [](std::string_view, std::string_view) {
                                    throw std::runtime_error("the caller gave up");
                                }}),
                      "the caller gave up");
    slow.join();
    CHECK(slow_out == "slept 300");
    CHECK(std::string(host.health().as_object().at("status").as_string()) == "ok");
    CHECK(host.diagnostics().calls_in_flight == 0);
    CHECK(host.diagnostics().starts == 1);
}

TEST_CASE("plugin host calls: many short calls from several threads all get their own answers", "[plugins]") {
    BERTH_REQUIRE_PLUGIN_SDK();
    worker_host host(calls_worker());
    host.start();
    std::atomic<int> wrong{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < 40; ++i) {
                try {
                    // Each answer names its call: a reply handed to the wrong caller shows.
                    auto const me = std::to_string(t) + "-" + std::to_string(i);
                    auto const r = host.call("environmentExecute", execute("chunks", {me}));
                    if (stdout_of(r) != me) ++wrong;
                    if (std::string(host.health().as_object().at("status").as_string()) != "ok") ++wrong;
                } catch (...) {
                    ++wrong;
                }
            }
        });
    for (auto& th : threads) th.join();
    CHECK(wrong == 0);
    CHECK(host.diagnostics().calls_in_flight == 0);
    CHECK(host.diagnostics().starts == 1);
}
