// What berth's plugin worker host costs over the wire itself. The worker is the tests' SDK plugin
// (tests/plugins/test-plugin.mjs, run by node): the cost of a call is dominated by Node's side
// (readline, JSON.parse, the SDK's dispatch, JSON.stringify), which both sides pay.
//
//   ratio plugin_noop_call = berth / raw          (target <= 1.2)
//       a `health` call through worker_host::call (serialize, write, the calling thread reads and
//       parses the reply itself: it leads, no other call being in flight) against the same JSON
//       line written to a worker's stdin and its reply line read back by the calling thread (no
//       parsing).
//   ratio plugin_execute_true = berth / raw       (target <= 1.2)
//       an `environmentExecute` of `true` (the worker spawns it) through worker_host::call against
//       the same request line written raw.
//   ratio plugin_sandbox_execute_true = berth / raw   (target <= 1.2; with berth::sandbox only)
//       the same execute through berth::sandbox_driver<plugin_sandbox_provider<"bench">>::execute
//       (the driver's lease view, the provider's plugin resolution and params, the result read
//       back into a command_result) against the request line that provider sends, written raw.
//
// Each ratio comes from one loop that alternates a berth call and a raw exchange (so both see the
// same load) and times every call. The ratio is the median berth call over the median raw exchange
// (counter `berth_over_raw`): on a shared two-core machine one call in a few hundred waits
// milliseconds for a core, on either side, and a ratio of sums follows those few (the same code
// printed 0.49, 2.51 and 0.98 in three runs a minute apart). The ratio of the means is printed too,
// as `info <metric>_of_means`. The raw side talks to a second worker process started from the same
// script (worker_host owns its worker's pipes); both workers are warmed up before measuring.
//
// Needs the SDK the tests install (target berth_test_plugins); without it the ratios print n/a with
// the reason and the benchmark exits 0.

#include "bench_support.hpp"

#include <berth/plugins/detail/worker_process.hpp>
#include <berth/plugins/worker_host.hpp>
#include <berth/src.hpp>  // Boost.JSON's implementation: this executable's one TU
#ifdef BERTH_BENCH_PLUGIN_SANDBOX
#include <berth/drivers/sandbox/driver.hpp>
#include <berth/drivers/sandbox/plugin_provider.hpp>
#endif

#include <boost/json/serialize.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace {

namespace json = boost::json;
using namespace berth;

std::filesystem::path const plugin_dir = BERTH_TEST_PLUGIN_DIR;

std::optional<std::string> sdk_unavailable() {
    if (std::ifstream why{plugin_dir / "sdk-unavailable.txt"}) {
        std::stringstream s;
        s << why.rdbuf();
        return s.str();
    }
    if (!std::filesystem::exists(plugin_dir / "node_modules/@paperclipai/plugin-sdk/package.json"))
        return std::string("the SDK is not installed (build the berth_test_plugins target)");
    return std::nullopt;
}

berth::command worker_command() {
    return {.program = BERTH_TEST_NODE, .args = {(plugin_dir / "test-plugin.mjs").string()}};
}

/// A worker spoken to directly: write a line, read lines until the reply to that id.
class raw_worker {
public:
    raw_worker() {
        process::run_options run;
        run.base_environment = {{"PATH", "/usr/local/bin:/usr/bin:/bin"}, {"NODE_ENV", "production"}};
        w_ = plugins::detail::spawn_worker(worker_command(), run);
        (void)exchange(R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"manifest":{},"config":{}}})"
                       "\n",
                       R"({"jsonrpc":"2.0","id":1,)");
    }
    ~raw_worker() {
        w_.stdin_fd.reset();  // the SDK exits when its stdin closes
        ::kill(w_.pid, SIGKILL);
        ::waitpid(w_.pid, nullptr, 0);
    }
    raw_worker(raw_worker const&) = delete;
    raw_worker& operator=(raw_worker const&) = delete;

    /// Writes `line`, then reads until a line that starts with `reply_prefix`; returns its length.
    std::size_t exchange(std::string_view line, std::string_view reply_prefix) {
        for (std::string_view rest = line; !rest.empty();) {
            auto const n = ::write(w_.stdin_fd.get(), rest.data(), rest.size());
            if (n <= 0) throw std::runtime_error("raw worker: write failed");
            rest.remove_prefix(static_cast<std::size_t>(n));
        }
        for (;;) {
            auto const nl = buffer_.find('\n');
            if (nl != std::string::npos) {
                bool const done = std::string_view(buffer_).substr(0, reply_prefix.size()) == reply_prefix;
                buffer_.erase(0, nl + 1);
                if (done) return nl;
                continue;
            }
            char chunk[65536];
            auto const n = ::read(w_.stdout_fd.get(), chunk, sizeof chunk);
            if (n <= 0) throw std::runtime_error("raw worker: the worker closed its stdout");
            buffer_.append(chunk, static_cast<std::size_t>(n));
        }
    }

private:
    plugins::detail::worker_process w_;
    std::string buffer_;
};

/// The line worker_host writes for call `id` (same shape: the raw side sends the same bytes).
std::string request_line(std::int64_t id, std::string_view method, json::object const& params) {
    return R"({"jsonrpc":"2.0","id":)" + std::to_string(id) + R"(,"method":")" + std::string(method) +
           R"(","params":)" + json::serialize(params) + R"(,"paperclipInvocation":{"id":"berth-0-)" +
           std::to_string(id) + R"(","scope":)" +
           (params.contains("companyId") ? R"({"companyId":"c1"})" : std::string("{}")) + "}}\n";
}

json::object const noop_params{};
json::object const execute_params{{"driverKey", "bench"},
                                  {"companyId", "c1"},
                                  {"environmentId", "e1"},
                                  {"lease", json::object{{"providerLeaseId", "L"}}},
                                  {"command", "true"},
                                  {"args", json::array{}}};

/// Times `call` (berth's side) against the raw exchange of `method` with `params`, alternately.
template <class Call>
void paired_with(benchmark::State& state, Call&& call, std::string_view method, json::object const& params) {
    raw_worker raw;
    std::int64_t raw_id = 100;
    for (int i = 0; i < 50; ++i) {  // warm up both (V8's JIT, the page cache)
        call();
        ++raw_id;
        (void)raw.exchange(request_line(raw_id, method, params), R"({"jsonrpc":"2.0","id":)" + std::to_string(raw_id));
    }
    auto const [berth_times, raw_times] = berth::bench::time_alternately(
        state, call,
        [&] {
            ++raw_id;
            auto const line = request_line(raw_id, method, params);
            benchmark::DoNotOptimize(raw.exchange(line, R"({"jsonrpc":"2.0","id":)" + std::to_string(raw_id)));
        });
    if (raw_times.empty()) return;
    auto const sum = [](std::vector<double> const& v) { return std::accumulate(v.begin(), v.end(), 0.0); };
    state.counters["berth_over_raw"] = berth::bench::median(berth_times) / berth::bench::median(raw_times);
    state.counters["berth_over_raw_of_means"] = sum(berth_times) / sum(raw_times);
    state.counters["berth_median_us"] = berth::bench::median(berth_times) / 1e3;
    state.counters["raw_median_us"] = berth::bench::median(raw_times) / 1e3;
}

void paired(benchmark::State& state, std::string_view method, json::object const& params) {
    plugins::worker_options o;
    o.command = worker_command();
    o.plugin_id = "bench";
    plugins::worker_host host(std::move(o));
    paired_with(
        state,
        [&] {
            auto r = host.call(method, params);
            benchmark::DoNotOptimize(r);
        },
        method, params);
}

void paired_noop_call(benchmark::State& state) { paired(state, "health", noop_params); }
void paired_execute_true(benchmark::State& state) { paired(state, "environmentExecute", execute_params); }

#ifdef BERTH_BENCH_PLUGIN_SANDBOX
void paired_sandbox_execute_true(benchmark::State& state) {
    auto const registry = std::make_shared<plugins::registry>();
    plugins::worker_options o;
    o.command = worker_command();
    o.plugin_id = "bench";
    o.manifest = {{"id", "bench"},
                  {"environmentDrivers", json::array{json::object{{"driverKey", "bench"}, {"kind", "sandbox_provider"}}}}};
    registry->add(std::move(o));
    using provider = plugin_sandbox_provider<"bench">;
    sandbox_driver<provider> const driver{provider{registry}};
    environment env;
    env.id = "e1";
    env.company_id = "c1";
    env.driver = driver_kind::sandbox;
    env.config = {{"provider", "bench"}};
    json_object const metadata{{"driver", "sandbox"},
                               {"provider", "bench"},
                               {"sandboxConfig", json_object{{"provider", "bench"}}},
                               {"pluginId", "bench"},
                               {"pluginKey", "bench"},
                               {"sandboxProviderPlugin", true}};
    environment_lease lease;
    lease.id = "l1";
    lease.company_id = "c1";
    lease.environment_id = "e1";
    lease.provider = "bench";
    lease.provider_lease_id = "L";
    lease.metadata = metadata;
    command const cmd{.program = "true"};
    // What the provider sends for that execute (tests/unit/plugin_sandbox_test.cpp checks the fields).
    json::object const params{{"driverKey", "bench"},
                              {"companyId", "c1"},
                              {"environmentId", "e1"},
                              {"issueId", nullptr},
                              {"config", json::object{}},
                              {"lease", json::object{{"providerLeaseId", "L"}, {"metadata", metadata}, {"expiresAt", nullptr}}},
                              {"command", "true"},
                              {"args", json::array{}},
                              {"timeoutMs", cmd.timeout.count()}};
    paired_with(
        state,
        [&] {
            auto r = driver.execute(env, lease, cmd);
            benchmark::DoNotOptimize(r);
        },
        "environmentExecute", params);
    registry->stop_all();
}
#endif

}  // namespace

BENCHMARK(paired_noop_call)->UseRealTime()->MinTime(2.0)->Unit(benchmark::kMicrosecond);
BENCHMARK(paired_execute_true)->UseRealTime()->MinTime(2.0)->Unit(benchmark::kMicrosecond);
#ifdef BERTH_BENCH_PLUGIN_SANDBOX
BENCHMARK(paired_sandbox_execute_true)->UseRealTime()->MinTime(2.0)->Unit(benchmark::kMicrosecond);
#endif

int main(int argc, char** argv) {
    if (auto const why = sdk_unavailable()) {
        std::printf("ratio plugin_noop_call = n/a (skipped: %s)\n", why->c_str());
        std::printf("ratio plugin_execute_true = n/a (skipped: %s)\n", why->c_str());
#ifdef BERTH_BENCH_PLUGIN_SANDBOX
        std::printf("ratio plugin_sandbox_execute_true = n/a (skipped: %s)\n", why->c_str());
#endif
        return 0;
    }
    return berth::bench::run_and_report(
        argc, argv,
        {{.metric = "plugin_noop_call", .numerator = "paired_noop_call/min_time:2.000/real_time",
          .denominator = "", .target = 1.2, .counter = "berth_over_raw"},
         {.metric = "plugin_execute_true", .numerator = "paired_execute_true/min_time:2.000/real_time",
          .denominator = "", .target = 1.2, .counter = "berth_over_raw"},
#ifdef BERTH_BENCH_PLUGIN_SANDBOX
         {.metric = "plugin_sandbox_execute_true",
          .numerator = "paired_sandbox_execute_true/min_time:2.000/real_time", .denominator = "", .target = 1.2,
          .counter = "berth_over_raw"},
         {.metric = "plugin_sandbox_execute_true_of_means",
          .numerator = "paired_sandbox_execute_true/min_time:2.000/real_time", .denominator = "", .target = -1,
          .counter = "berth_over_raw_of_means"},
#endif
         {.metric = "plugin_noop_call_of_means", .numerator = "paired_noop_call/min_time:2.000/real_time",
          .denominator = "", .target = -1, .counter = "berth_over_raw_of_means"},
         {.metric = "plugin_execute_true_of_means", .numerator = "paired_execute_true/min_time:2.000/real_time",
          .denominator = "", .target = -1, .counter = "berth_over_raw_of_means"}});
}
