// berth::plugins::worker_host against real Node workers written with upstream's SDK
// (tests/plugins/*.mjs). Skipped, with the reason, when the SDK could not be installed.
#include <berth/plugins/worker_host.hpp>

#include "plugin_fixture.hpp"
#include "proc_stat.hpp"

#include <catch2/catch.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

using namespace berth;
using namespace berth::plugins;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {

worker_options test_worker(std::string const& name = "test-plugin.mjs") {
    worker_options o;
    o.command = test::plugin_worker(name);
    o.plugin_id = "berth.test";
    o.manifest = json::object{{"id", "berth.test"}, {"apiVersion", 1}, {"version", "0.0.1"}};
    return o;
}

json::object exec(std::string command, std::vector<std::string> args = {}) {
    json::array a;
    for (auto& s : args) a.emplace_back(s);
    return json::object{{"driverKey", "test"}, {"companyId", "c1"}, {"environmentId", "e1"},
                        {"lease", json::object{{"providerLeaseId", "L"}}}, {"command", command}, {"args", a}};
}

std::string str(json::value const& v, char const* key) { return std::string(v.as_object().at(key).as_string()); }

template <class F>
rpc_error catch_rpc(F&& f) {
    try {
        f();
    } catch (rpc_error const& e) {
        return e;
    }
    FAIL("no rpc_error thrown");
    throw;  // unreachable
}

bool process_gone(pid_t pid) {
    for (int i = 0; i < 500; ++i) {
        if (::kill(pid, 0) != 0) return true;
        auto const stat = test::read_stat("/proc/" + std::to_string(pid));
        if (!stat || stat->state == 'Z') return true;  // dead, waiting for init to reap it
        std::this_thread::sleep_for(10ms);
    }
    return false;
}

}  // namespace

TEST_CASE("plugin host: initialize reads supportedMethods, health and calls answer", "[plugins]") {
    BERTH_REQUIRE_PLUGIN_SDK();
    worker_host host(test_worker());
    host.start();
    CHECK(host.running());
    CHECK(host.supports("environmentExecute"));
    CHECK(host.supports("environmentSyncIn"));
    CHECK_FALSE(host.supports("environmentStartInteractiveSetup"));
    CHECK(str(host.health(), "status") == "ok");

    auto const probe = host.call("environmentProbe", json::object{{"driverKey", "k"}, {"config", json::object{}}});
    CHECK(str(probe, "summary") == "probed k");

    SECTION("execute streams its chunks to the caller, in order, before the result") {
        std::vector<std::string> seen;
        auto const r = host.call("environmentExecute", exec("chunks", {"a", "B", "c", "D"}),
                                 {.on_log = [&](std::string_view stream, std::string_view chunk) {
                                     seen.push_back(std::string(stream) + ":" + std::string(chunk));
                                 }});
        CHECK(seen == std::vector<std::string>{"stdout:a", "stderr:B", "stdout:c", "stderr:D"});
        CHECK(str(r, "stdout") == "ac");
    }
    SECTION("a real command runs in the worker") {
        std::string out;
        auto const r = host.call("environmentExecute", exec("sh", {"-c", "echo one; echo two >&2; exit 4"}),
                                 {.on_log = [&](std::string_view s, std::string_view c) {
                                     if (s == "stdout") out += c;
                                 }});
        CHECK(r.as_object().at("exitCode").as_int64() == 4);
        CHECK(str(r, "stdout") == "one\n");
        CHECK(str(r, "stderr") == "two\n");
        CHECK(out == "one\n");
    }
    SECTION("the request carries the invocation scope of its companyId") {
        (void)host.call("environmentExecute", exec("true"));
        auto const calls = json::parse(str(host.call("environmentExecute", exec("calls")), "stdout")).as_array();
        REQUIRE(calls.size() == 3);  // probe, then the two executes
        CHECK(calls[1].as_object().at("method").as_string() == "environmentExecute");
        CHECK(calls[1].as_object().at("params").as_object().at("companyId").as_string() == "c1");
    }
    host.stop();
    CHECK_FALSE(host.running());
}

TEST_CASE("plugin host: worker errors keep their code and message", "[plugins]") {
    BERTH_REQUIRE_PLUGIN_SDK();
    worker_host host(test_worker());
    auto const thrown = catch_rpc([&] { (void)host.call("environmentExecute", exec("throw", {"no sandbox left"})); });
    CHECK(thrown.code() == codes::worker_error);
    CHECK(std::string(thrown.what()) == "no sandbox left");
    CHECK(thrown.method() == "environmentExecute");

    worker_host minimal(test_worker("minimal-plugin.mjs"));
    CHECK_FALSE(minimal.supports("environmentReleaseLease"));
    auto const missing = catch_rpc([&] {
        (void)minimal.call("environmentReleaseLease", json::object{{"providerLeaseId", nullptr}});
    });
    CHECK(missing.code() == codes::method_not_implemented);
    CHECK(missing.not_implemented());
    CHECK(std::string(missing.what()) == "environmentReleaseLease is not implemented by this plugin");

    auto const unknown = catch_rpc([&] { (void)minimal.call("noSuchMethod", json::object{}); });
    CHECK(unknown.code() == codes::method_not_found);
}

TEST_CASE("plugin host: worker-to-host requests are refused unless granted", "[plugins]") {
    BERTH_REQUIRE_PLUGIN_SDK();
    SECTION("not granted: METHOD_NOT_FOUND, as upstream's host answers") {
        worker_host host(test_worker());
        auto const r = host.call("environmentExecute", exec("ask-host"));
        auto const reply = json::parse(str(r, "stdout")).as_object();
        CHECK(reply.at("code").as_int64() == codes::method_not_found);
        CHECK(reply.at("message").as_string() == "Host does not handle method \"config.get\"");
    }
    SECTION("granted: the host method's result goes back to the worker") {
        auto o = test_worker();
        o.host_methods["config.get"] = [](json::value const&) -> json::value { return json::object{{"k", "v"}}; };
        worker_host host(std::move(o));
        auto const reply = json::parse(str(host.call("environmentExecute", exec("ask-host")), "stdout")).as_object();
        CHECK(json::serialize(reply.at("ok")) == R"({"k":"v"})");
    }
    SECTION("a granted method that throws: INTERNAL_ERROR with its message") {
        auto o = test_worker();
        o.host_methods["config.get"] = [](json::value const&) -> json::value { throw std::runtime_error("no config"); };
        worker_host host(std::move(o));
        auto const reply = json::parse(str(host.call("environmentExecute", exec("ask-host")), "stdout")).as_object();
        CHECK(reply.at("code").as_int64() == codes::internal_error);
        CHECK(reply.at("message").as_string() == "no config");
    }
}

TEST_CASE("plugin host: a worker that crashes mid-call fails its calls and restarts on the next", "[plugins]") {
    BERTH_REQUIRE_PLUGIN_SDK();
    worker_host host(test_worker());
    host.start();
    pid_t const first = *host.diagnostics().pid;

    // A second call is in flight when the worker dies: it fails too, cleanly.
    std::optional<rpc_error> other;
    std::thread slow([&] {
        try {
            (void)host.call("environmentExecute", exec("sleep", {"10000"}));
        } catch (rpc_error const& e) {
            other = e;
        }
    });
    while (host.diagnostics().calls_in_flight < 1) std::this_thread::sleep_for(1ms);
    auto const crash = catch_rpc([&] { (void)host.call("environmentExecute", exec("crash", {"mid-call"})); });
    slow.join();

    CHECK(crash.code() == codes::worker_unavailable);
    CHECK(crash.worker_unavailable());
    CHECK_THAT(crash.what(), Catch::StartsWith("Worker process exited (code=3, signal=null)"));
    CHECK_THAT(crash.what(), Catch::Contains("\n\nWorker stderr:\nabout to crash in mid-call"));
    REQUIRE(other);
    CHECK(other->code() == codes::worker_unavailable);
    CHECK(std::string(other->what()) == crash.what());
    CHECK_FALSE(host.running());
    CHECK(host.diagnostics().crashes == 1);
    CHECK(host.diagnostics().calls_in_flight == 0);

    // The next call starts (and initializes) a new worker.
    CHECK(str(host.health(), "status") == "ok");
    CHECK(host.running());
    CHECK(*host.diagnostics().pid != first);
    CHECK(host.diagnostics().starts == 2);
}

TEST_CASE("plugin host: a slow worker against the call's timeout", "[plugins]") {
    BERTH_REQUIRE_PLUGIN_SDK();
    worker_host host(test_worker());
    host.start();
    auto const t0 = std::chrono::steady_clock::now();
    auto const e =
        catch_rpc([&] { (void)host.call("environmentExecute", exec("sleep", {"700"}), {.timeout = 100ms}); });
    auto const waited = std::chrono::steady_clock::now() - t0;
    CHECK(e.code() == codes::timeout);
    CHECK(e.timed_out());
    CHECK(std::string(e.what()) == "RPC call \"environmentExecute\" timed out after 100ms");
    CHECK(waited >= 100ms);
    CHECK(waited < 600ms);
    CHECK(host.diagnostics().calls_in_flight == 0);

    // The worker is still there and serves; its late answer is dropped as unmatched.
    CHECK(str(host.call("environmentExecute", exec("sleep", {"10"})), "stdout") == "slept 10");
    for (int i = 0; i < 200 && host.diagnostics().unmatched_responses == 0; ++i) std::this_thread::sleep_for(10ms);
    CHECK(host.diagnostics().unmatched_responses == 1);
    CHECK(host.diagnostics().starts == 1);

    SECTION("the host's default timeout applies when the call gives none") {
        auto o = test_worker();
        o.call_timeout = 150ms;
        worker_host quick(std::move(o));
        CHECK(catch_rpc([&] { (void)quick.call("environmentExecute", exec("sleep", {"2000"})); }).timed_out());
    }
}

TEST_CASE("plugin host: lines that are not JSON-RPC never break the host", "[plugins]") {
    BERTH_REQUIRE_PLUGIN_SDK();
    auto o = test_worker();
    o.max_line_bytes = 4096;
    worker_host host(std::move(o));
    auto const r = host.call("environmentExecute", exec("garbage"));
    CHECK(str(r, "stdout") == "after garbage");
    auto const d = host.diagnostics();
    CHECK(d.malformed_lines == 3);       // not JSON, jsonrpc 1.0, an array; blank lines are ignored
    CHECK(d.unmatched_responses == 1);   // id 999999
    CHECK(host.running());

    SECTION("a line past max_line_bytes stops the worker; the next call starts a new one") {
        auto const e = catch_rpc([&] { (void)host.call("environmentExecute", exec("garbage", {"10000"})); });
        CHECK(e.code() == codes::worker_unavailable);
        CHECK(std::string(e.what()) ==
              "Worker process for plugin \"berth.test\" wrote a line longer than 4096 bytes; it was stopped");
        CHECK(str(host.health(), "status") == "ok");
        CHECK(host.diagnostics().starts == 2);
    }
}

TEST_CASE("plugin host: a worker's stderr is passed on by lines and quoted when it dies", "[plugins]") {
    BERTH_REQUIRE_PLUGIN_SDK();
    auto o = test_worker();
    std::mutex m;
    std::vector<std::string> lines;
    o.on_stderr = [&](std::string_view line) {
        std::lock_guard lock(m);
        lines.emplace_back(line);
    };
    worker_host host(std::move(o));
    CHECK(str(host.call("environmentExecute", exec("stderr")), "stdout") == "wrote to stderr");
    for (int i = 0; i < 200; ++i) {
        {
            std::lock_guard lock(m);
            if (lines.size() >= 3) break;
        }
        std::this_thread::sleep_for(5ms);
    }
    {
        std::lock_guard lock(m);
        CHECK(lines == std::vector<std::string>{"stderr line 0", "stderr line 1", "stderr line 2"});
    }
    host.stop();  // the partial last line is passed on once the stream ends
    std::lock_guard lock(m);
    REQUIRE(lines.size() == 4);
    CHECK(lines[3] == "no newline at the end");
}

TEST_CASE("plugin host: one worker serves 16 concurrent executes", "[plugins]") {
    BERTH_REQUIRE_PLUGIN_SDK();
    worker_host host(test_worker());
    host.start();
    pid_t const pid = *host.diagnostics().pid;
    std::vector<std::thread> threads;
    std::vector<std::string> outs(16);
    std::vector<std::vector<std::string>> chunks(16);
    std::atomic<int> failures{0};
    auto const t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 16; ++i)
        threads.emplace_back([&, i] {
            try {
                // Each call streams its own chunks: none may reach another call.
                auto const me = "t" + std::to_string(i);
                auto const r = host.call("environmentExecute", exec("sh", {"-c", "sleep 0.3; echo " + me}),
                                         {.on_log = [&](std::string_view, std::string_view c) {
                                             chunks[i].emplace_back(c);
                                         }});
                outs[i] = str(r, "stdout");
            } catch (...) {
                ++failures;
            }
        });
    for (auto& t : threads) t.join();
    auto const took = std::chrono::steady_clock::now() - t0;
    CHECK(failures == 0);
    for (int i = 0; i < 16; ++i) {
        CHECK(outs[i] == "t" + std::to_string(i) + "\n");
        CHECK(chunks[i] == std::vector<std::string>{"t" + std::to_string(i) + "\n"});
    }
    CHECK(took < 16 * 300ms);  // they ran at once, not one after another
    CHECK(host.diagnostics().pid == pid);
    CHECK(host.diagnostics().starts == 1);
}

TEST_CASE("plugin host: stop escalates from shutdown to SIGTERM to SIGKILL", "[plugins]") {
    BERTH_REQUIRE_PLUGIN_SDK();
    SECTION("an SDK worker exits on shutdown") {
        worker_host host(test_worker());
        host.start();
        pid_t const pid = *host.diagnostics().pid;
        auto const t0 = std::chrono::steady_clock::now();
        host.stop();
        CHECK(std::chrono::steady_clock::now() - t0 < 2s);
        CHECK(::kill(pid, 0) != 0);  // reaped
        CHECK(host.diagnostics().crashes == 0);
    }
    SECTION("a worker that ignores shutdown and SIGTERM is killed") {
        auto o = test_worker("stubborn-worker.mjs");
        o.shutdown_drain = 200ms;
        o.sigterm_grace = 200ms;
        worker_host host(std::move(o));
        host.start();
        pid_t const pid = *host.diagnostics().pid;
        auto const t0 = std::chrono::steady_clock::now();
        host.stop();
        auto const took = std::chrono::steady_clock::now() - t0;
        CHECK(took >= 400ms);
        CHECK(took < 3s);
        CHECK(::kill(pid, 0) != 0);
    }
}

TEST_CASE("plugin host: workers that cannot start are reported", "[plugins]") {
    BERTH_REQUIRE_PLUGIN_SDK();
    SECTION("no such program") {
        worker_options o;
        o.plugin_id = "acme.missing";
        o.command = {.program = "/nonexistent/worker"};
        worker_host host(std::move(o));
        auto const e = catch_rpc([&] { host.start(); });
        CHECK(e.code() == codes::worker_unavailable);
        CHECK_THAT(e.what(), Catch::StartsWith("Worker initialize failed for \"acme.missing\": Worker process failed "
                                               "to start: cannot run '/nonexistent/worker'"));
    }
    SECTION("a worker that exits before answering initialize") {
        worker_options o;
        o.plugin_id = "acme.quits";
        o.command = {.program = "/bin/sh", .args = {"-c", "echo boom >&2; exit 2"}};
        worker_host host(std::move(o));
        auto const e = catch_rpc([&] { (void)host.call("health", json::object{}); });
        CHECK(e.code() == codes::worker_unavailable);
        CHECK(std::string(e.what()) ==
              "Worker initialize failed for \"acme.quits\": Worker process exited (code=2, signal=null)\n\n"
              "Worker stderr:\nboom");
        CHECK_FALSE(host.running());
    }
    SECTION("a worker that closes its input, then exits: the call reports the exit, not EPIPE") {
        worker_options o;
        o.plugin_id = "acme.closes";
        o.command = {.program = "/bin/sh",
                     .args = {"-c", R"(read l; echo '{"jsonrpc":"2.0","id":1,"result":{"ok":true}}'; )"
                                    R"(exec 0<&-; sleep 0.4; echo gone >&2; exit 3)"}};
        worker_host host(std::move(o));
        host.start();
        std::this_thread::sleep_for(150ms);  // the worker has closed its stdin: the next write gets EPIPE
        auto const e = catch_rpc([&] { (void)host.call("health", json::object{}); });
        CHECK(e.code() == codes::worker_unavailable);
        CHECK(std::string(e.what()) == "Worker process exited (code=3, signal=null)\n\nWorker stderr:\ngone");
    }
    SECTION("a worker that answers initialize with ok=false") {
        worker_options o;
        o.plugin_id = "acme.notok";
        o.command = {.program = "/bin/sh",
                     .args = {"-c", R"(read l; echo '{"jsonrpc":"2.0","id":1,"result":{"ok":false}}'; sleep 5)"}};
        worker_host host(std::move(o));
        auto const e = catch_rpc([&] { host.start(); });
        CHECK(std::string(e.what()) ==
              "Worker initialize failed for \"acme.notok\": Worker initialize returned ok=false");
    }
}

TEST_CASE("plugin host: the worker dies with its host", "[plugins]") {
    BERTH_REQUIRE_PLUGIN_SDK();
    // A host in another process, SIGKILLed: no destructor runs there, the worker must die anyway.
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    pid_t const child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        ::close(fds[0]);
        try {
            static worker_host host(test_worker());
            host.start();
            pid_t const worker = *host.diagnostics().pid;
            [[maybe_unused]] auto const n = ::write(fds[1], &worker, sizeof worker);
        } catch (...) {
        }
        for (;;) ::pause();
    }
    ::close(fds[1]);
    pid_t worker = 0;
    auto const got = ::read(fds[0], &worker, sizeof worker);
    ::close(fds[0]);
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    REQUIRE(got == sizeof worker);
    REQUIRE(worker > 0);
    CHECK(process_gone(worker));
}
