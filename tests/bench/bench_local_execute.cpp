// What berth's local execute costs over the bare system calls: `/bin/true` run by a raw
// posix_spawn + waitpid (no berth code, no pipes), against local_driver::execute of `/bin/true`
// as a user calls it (stdout and stderr captured through pipes, stdin /dev/null, a deadline, its
// own process group, the sanitised environment built from `environ` on every call).
//
//   ratio local_execute_true = berth / raw   (target <= 1.1)
//
// More rows, for reading the figures (not in the ratio line): the PATH lookup ("true" instead of
// "/bin/true"), the process layer alone with an empty environment (no sanitising, a smaller exec),
// and a paired run. The ratio line compares two benchmarks that run one after the other, so on a
// machine shared with other jobs a change of load between them moves it by ±10 %; the paired row
// alternates raw and berth calls in one loop (so both see the same load) and reports their ratio
// as the counter `berth_over_raw`.

#include "bench_support.hpp"

#include <berth/drivers/local.hpp>
#include <berth/process/spawn.hpp>
#include <berth/src.hpp>  // Boost.JSON's implementation: this executable's one TU

#include <chrono>  // std::chrono::steady_clock

#include <spawn.h>     // posix_spawn
#include <sys/wait.h>  // waitpid
#include <unistd.h>    // environ

namespace {

/// The baseline: no berth code, no pipes, the child inherits this process's stdio and environ.
int raw_spawn_true() {
    char* argv[] = {const_cast<char*>("/bin/true"), nullptr};
    pid_t pid = -1;
    if (::posix_spawn(&pid, "/bin/true", nullptr, nullptr, argv, environ) != 0) return -1;
    int status = 0;
    ::waitpid(pid, &status, 0);
    return status;
}

void raw_posix_spawn_true(benchmark::State& state) {
    for (auto _ : state) {
        int const status = raw_spawn_true();
        if (status != 0) {
            state.SkipWithError("posix_spawn of /bin/true failed");
            break;
        }
        benchmark::DoNotOptimize(status);
    }
}

berth::environment bench_env() {
    berth::environment e{};
    e.id = "env-bench";
    return e;
}

berth::environment_lease bench_lease() {
    berth::environment_lease l{};
    l.id = "lease-bench";
    return l;
}

void run_local_execute(benchmark::State& state, char const* program) {
    berth::local_driver const driver;
    auto const env = bench_env();
    auto const lease = bench_lease();
    berth::command const cmd{.program = program};
    for (auto _ : state) {
        auto r = driver.execute(env, lease, cmd);
        if (r.exit_code != 0) {
            state.SkipWithError("true did not exit 0");
            break;
        }
        benchmark::DoNotOptimize(r);
    }
}

void local_execute_true(benchmark::State& state) { run_local_execute(state, "/bin/true"); }
void local_execute_true_path_lookup(benchmark::State& state) { run_local_execute(state, "true"); }

void process_run_true_empty_env(benchmark::State& state) {
    berth::command const cmd{.program = "/bin/true"};
    for (auto _ : state) {
        auto r = berth::process::run(cmd);
        benchmark::DoNotOptimize(r);
    }
}

void paired_local_execute_over_raw(benchmark::State& state) {
    using clock = std::chrono::steady_clock;
    berth::local_driver const driver;
    auto const env = bench_env();
    auto const lease = bench_lease();
    berth::command const cmd{.program = "/bin/true"};
    clock::duration raw{}, berth{};
    bool berth_first = false;
    for (auto _ : state) {
        berth_first = !berth_first;  // alternate the order: neither side always runs first
        for (int side = 0; side < 2; ++side) {
            auto const t0 = clock::now();
            if ((side == 0) == berth_first) {
                auto r = driver.execute(env, lease, cmd);
                benchmark::DoNotOptimize(r);
                berth += clock::now() - t0;
            } else {
                benchmark::DoNotOptimize(raw_spawn_true());
                raw += clock::now() - t0;
            }
        }
    }
    if (raw.count() > 0) state.counters["berth_over_raw"] = double(berth.count()) / double(raw.count());
}

}  // namespace

BENCHMARK(raw_posix_spawn_true)->UseRealTime()->MinTime(1.0)->Unit(benchmark::kMicrosecond);
BENCHMARK(local_execute_true)->UseRealTime()->MinTime(1.0)->Unit(benchmark::kMicrosecond);
BENCHMARK(local_execute_true_path_lookup)->UseRealTime()->MinTime(1.0)->Unit(benchmark::kMicrosecond);
BENCHMARK(process_run_true_empty_env)->UseRealTime()->MinTime(1.0)->Unit(benchmark::kMicrosecond);
BENCHMARK(paired_local_execute_over_raw)->UseRealTime()->MinTime(2.0)->Unit(benchmark::kMicrosecond);

int main(int argc, char** argv) {
    return berth::bench::run_and_report(argc, argv,
                                        {{"local_execute_true", "local_execute_true/min_time:1.000/real_time",
                                          "raw_posix_spawn_true/min_time:1.000/real_time", 1.1}});
}
