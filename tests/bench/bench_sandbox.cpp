// What berth's sandbox costs over bubblewrap itself, and what reuse saves.
//
//   ratio sandbox_execute_true = sandbox_driver::execute(/bin/true) / raw bwrap (target <= 1.2)
//     raw: posix_spawn of `bwrap` with the very argv and environment berth builds for the command
//     (bubblewrap::bwrap_args / sandbox_environment), no pipes, waitpid — no berth code. berth: the
//     driver's execute as a user calls it (lease metadata, config parse, argv built, output captured
//     through pipes under a deadline, own process group).
//   ratio sandbox_execute_true_paired = the same, alternating both in one loop (same load)
//   ratio sandbox_resume_vs_fresh = resume of a kept reusable sandbox / a fresh acquire + realize
//     (target <= 0.2)
//   ratio orchestrator_resume_vs_fresh = the same through the orchestrator (memory store):
//     acquire_for_run + realize_for_run of a run that resumes the sandbox its agent's previous run
//     kept (policy reuse_by_environment: candidate search, resume, hand-over of the kept lease) /
//     those of a run that gets a fresh sandbox (policy ephemeral). Only those two calls are timed
//     (manual time: not the release of each run, nor Google Benchmark's pause/resume). (target <= 0.2)
//   info orchestrator_floor_vs_fresh = the same acquire_for_run + realize_for_run with the fake
//     provider (sandboxes are records in memory: no filesystem, no bwrap) / the fresh bubblewrap run:
//     what the orchestrator and the memory store cost any acquire + realize, resumed or not (the
//     store's lease row and activity event, the environment read, the run's active-lease check,
//     the realization written back, the lease holder). orchestrator_resume_vs_fresh cannot go under
//     this floor; info orchestrator_fake_resume_vs_fake_fresh says what resuming adds to it.

#include "bench_support.hpp"

#include <berth/drivers/sandbox.hpp>
#include <berth/orchestrator/run_orchestrator.hpp>
#include <berth/policies/ephemeral.hpp>
#include <berth/stores/memory.hpp>
#include <berth/testing/fake_sandbox_provider.hpp>
#include <berth/src.hpp>  // Boost.JSON's implementation: this executable's one TU

#include <boost/json/parse.hpp>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include <spawn.h>     // posix_spawn
#include <sys/wait.h>  // waitpid
#include <unistd.h>    // mkdtemp

namespace {

namespace fs = std::filesystem;

/// A state root, a workspace, the driver and one realized lease, for the whole process.
struct bench_world {
    fs::path root;
    berth::bubblewrap bw;
    berth::sandbox_driver<berth::bubblewrap> driver;
    berth::environment env;
    berth::acquire_request request;
    berth::environment_lease lease;

    bench_world()
        : root(make_root()),
          bw({.state_root = (root / "state").string()}),
          driver(bw),
          env(make_env()),
          request{.env = env,
                  .company_id = env.company_id,
                  .agent_id = std::string("agent-bench"),
                  .heartbeat_run_id = "run-bench",
                  .execution_workspace_id = "ew-bench",
                  .lease_policy = berth::lease_policy_kind::reuse_by_environment} {
        fs::create_directories(root / "ws");
        lease = open();
    }
    static berth::environment make_env() {
        berth::environment e{};
        e.id = "env-bench";
        e.company_id = "company-bench";
        e.name = "bench";
        e.driver = berth::driver_kind::sandbox;
        e.config = boost::json::parse(R"({"provider": "bubblewrap", "reuseLease": true})").as_object();
        return e;
    }
    ~bench_world() {
        std::error_code ec;
        fs::remove_all(root, ec);
    }

    static fs::path make_root() {
        std::string tmpl = (fs::temp_directory_path() / "berth-bench-sandbox-XXXXXX").string();
        if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
        return tmpl;
    }

    /// acquire + realize, as the orchestrator does them for a fresh sandbox.
    berth::environment_lease open() const {
        auto const g = driver.acquire(request);
        berth::environment_lease l{};
        l.id = "lease-bench";
        l.company_id = env.company_id;
        l.environment_id = env.id;
        l.execution_workspace_id = request.execution_workspace_id;
        l.heartbeat_run_id = request.heartbeat_run_id;
        l.lease_policy = request.lease_policy;
        l.provider = g.provider;
        l.provider_lease_id = g.provider_lease_id;
        l.metadata = g.metadata;
        auto const w = driver.realize_workspace({.env = env, .lease = l, .local_path = (root / "ws").string(),
                                                 .remote_path = std::nullopt, .mode = std::nullopt, .metadata = {}});
        (*l.metadata)["workspaceRealization"] = w.metadata.at("workspaceRealization");
        return l;
    }
};

bench_world& world() {
    static bench_world w;
    return w;
}

/// The raw baseline: bwrap spawned with berth's own argv and environment for /bin/true.
struct raw_bwrap {
    std::vector<std::string> args;
    std::vector<std::string> env;
    std::vector<char*> argv;
    std::vector<char*> envp;
    std::string exe;

    raw_bwrap() {
        auto& w = world();
        berth::sandbox_lease_params const params{.provider_lease_id = w.lease.provider_lease_id,
                                                 .lease_metadata = *w.lease.metadata,
                                                 .config = berth::parse_sandbox_config(w.env.config).provider_config,
                                                 .lease_id = w.lease.id};
        berth::command const cmd{.program = "/bin/true"};
        exe = w.bw.bwrap_executable();
        args.push_back(exe);
        for (auto& a : w.bw.bwrap_args(params, cmd)) args.push_back(a);
        for (auto const& [k, v] : w.bw.sandbox_environment(w.bw.parse_config(params.config), cmd)) env.push_back(k + "=" + v);
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        for (auto& e : env) envp.push_back(e.data());
        envp.push_back(nullptr);
    }
    int run() const {
        pid_t pid = -1;
        if (::posix_spawn(&pid, exe.c_str(), nullptr, nullptr, argv.data(), envp.data()) != 0) return -1;
        int status = 0;
        ::waitpid(pid, &status, 0);
        return status;
    }
};

void raw_bwrap_true(benchmark::State& state) {
    raw_bwrap const raw;
    for (auto _ : state) {
        int const status = raw.run();
        if (status != 0) {
            state.SkipWithError("raw bwrap /bin/true failed");
            break;
        }
        benchmark::DoNotOptimize(status);
    }
}

void sandbox_execute_true(benchmark::State& state) {
    auto& w = world();
    berth::command const cmd{.program = "/bin/true"};
    for (auto _ : state) {
        auto r = w.driver.execute(w.env, w.lease, cmd);
        if (r.exit_code != 0) {
            state.SkipWithError(("sandboxed /bin/true failed: " + r.stderr_text).c_str());
            break;
        }
        benchmark::DoNotOptimize(r);
    }
}

void sandbox_execute_true_paired(benchmark::State& state) {
    auto& w = world();
    raw_bwrap const raw;
    berth::command const cmd{.program = "/bin/true"};
    std::chrono::nanoseconds raw_total{}, berth_total{};
    for (auto _ : state) {
        auto const t0 = std::chrono::steady_clock::now();
        int const status = raw.run();
        auto const t1 = std::chrono::steady_clock::now();
        auto r = w.driver.execute(w.env, w.lease, cmd);
        auto const t2 = std::chrono::steady_clock::now();
        if (status != 0 || r.exit_code != 0) {
            state.SkipWithError("bwrap /bin/true failed");
            break;
        }
        raw_total += t1 - t0;
        berth_total += t2 - t1;
    }
    if (raw_total.count() > 0)
        state.counters["berth_over_raw"] = static_cast<double>(berth_total.count()) / static_cast<double>(raw_total.count());
}

void sandbox_fresh_acquire_realize(benchmark::State& state) {
    auto& w = world();
    for (auto _ : state) {
        auto l = w.open();
        state.PauseTiming();
        (void)w.driver.destroy(w.env, l);
        state.ResumeTiming();
    }
}

void sandbox_resume_reusable(benchmark::State& state) {
    auto& w = world();
    (void)w.driver.release(w.env, w.lease, berth::lease_status::released);  // kept: reusable
    for (auto _ : state) {
        auto g = w.driver.resume(w.env, w.lease);
        benchmark::DoNotOptimize(g);
    }
}

template <class Driver>
using orch_stack = berth::stack<berth::drivers<Driver>, berth::policies<berth::ephemeral, berth::reuse_by_environment>,
                                berth::memory_store>;
using fake_driver = berth::sandbox_driver<berth::testing::fake_sandbox_provider>;

/// A memory store with one sandbox environment of `provider` and `policy`, and an orchestrator over it.
template <class Driver>
struct orch_world {
    berth::memory_store store;
    berth::run_orchestrator<orch_stack<Driver>> orch;
    berth::environment env;
    std::string ws;
    unsigned long runs = 0;

    orch_world(Driver driver, char const* provider, char const* policy)
        : orch(store, std::move(driver)),
          env(store.create_environment(
              {.company_id = "company-bench",
               .name = std::string("bench-") + policy,
               .driver = berth::driver_kind::sandbox,
               .config = {{"provider", provider}, {"reuseLease", true}, {"leasePolicy", policy}}},
              berth::system_clock{}.now())),
          ws((world().root / "ws").string()) {}

    /// acquire_for_run + realize_for_run of a new run of the bench agent (timed by hand), then its
    /// release (not timed).
    void run(benchmark::State& state) {
        auto const run_id = "run-" + std::to_string(++runs);
        berth::acquire_for_run_request const req{.company_id = env.company_id,
                                                 .environment_id = env.id,
                                                 .agent_id = std::string("agent-bench"),
                                                 .heartbeat_run_id = run_id,
                                                 .execution_workspace_id = "ew-orch-bench"};
        auto const t0 = std::chrono::steady_clock::now();
        auto a = orch.acquire_for_run(req);
        auto r = orch.realize_for_run({.env = std::move(a.env), .lease = std::move(a.lease), .workspace_cwd = ws});
        auto const t1 = std::chrono::steady_clock::now();
        benchmark::DoNotOptimize(r);
        state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
        auto const rel = orch.release_for_run({.company_id = env.company_id,
                                               .agent_id = std::string("agent-bench"),
                                               .heartbeat_run_id = run_id});
        if (!rel.errors.empty() || rel.released.size() != 1) state.SkipWithError("release_for_run failed");
    }
    /// Every run after the first resumed the agent's one sandbox (kept at the end).
    void check_resumed(benchmark::State& state) {
        if (store.list_leases(env.id, {.status = berth::lease_status::retained}).size() != 1)
            state.SkipWithError("the runs did not resume one kept sandbox");
    }
};

void orchestrator_fresh_acquire_realize(benchmark::State& state) {
    orch_world<berth::sandbox_driver<berth::bubblewrap>> w(world().driver, "bubblewrap", "ephemeral");
    for (auto _ : state) w.run(state);
}

void orchestrator_resume_acquire_realize(benchmark::State& state) {
    orch_world<berth::sandbox_driver<berth::bubblewrap>> w(world().driver, "bubblewrap", "reuse_by_environment");
    for (auto _ : state) w.run(state);
    w.check_resumed(state);  // the kept sandbox goes with the world's state root
}

void orchestrator_fake_fresh_acquire_realize(benchmark::State& state) {
    orch_world<fake_driver> w(fake_driver{berth::testing::fake_sandbox_provider{}}, "fake", "ephemeral");
    for (auto _ : state) w.run(state);
}

void orchestrator_fake_resume_acquire_realize(benchmark::State& state) {
    orch_world<fake_driver> w(fake_driver{berth::testing::fake_sandbox_provider{}}, "fake", "reuse_by_environment");
    for (auto _ : state) w.run(state);
    w.check_resumed(state);
}

}  // namespace

BENCHMARK(raw_bwrap_true)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(sandbox_execute_true)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(sandbox_execute_true_paired)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(sandbox_fresh_acquire_realize)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(sandbox_resume_reusable)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(orchestrator_fresh_acquire_realize)->Unit(benchmark::kMicrosecond)->UseManualTime();
BENCHMARK(orchestrator_resume_acquire_realize)->Unit(benchmark::kMicrosecond)->UseManualTime();
BENCHMARK(orchestrator_fake_fresh_acquire_realize)->Unit(benchmark::kMicrosecond)->UseManualTime();
BENCHMARK(orchestrator_fake_resume_acquire_realize)->Unit(benchmark::kMicrosecond)->UseManualTime();

int main(int argc, char** argv) {
    return berth::bench::run_and_report(
        argc, argv,
        {
            {.metric = "sandbox_execute_true", .numerator = "sandbox_execute_true/real_time",
             .denominator = "raw_bwrap_true/real_time", .target = 1.2},
            {.metric = "sandbox_execute_true_paired", .numerator = "sandbox_execute_true_paired/real_time",
             .denominator = "", .target = 1.2, .counter = "berth_over_raw"},
            {.metric = "sandbox_resume_vs_fresh", .numerator = "sandbox_resume_reusable/real_time",
             .denominator = "sandbox_fresh_acquire_realize/real_time", .target = 0.2},
            {.metric = "orchestrator_resume_vs_fresh", .numerator = "orchestrator_resume_acquire_realize/manual_time",
             .denominator = "orchestrator_fresh_acquire_realize/manual_time", .target = 0.2},
            {.metric = "orchestrator_floor_vs_fresh", .numerator = "orchestrator_fake_fresh_acquire_realize/manual_time",
             .denominator = "orchestrator_fresh_acquire_realize/manual_time", .target = -1},
            {.metric = "orchestrator_fake_resume_vs_fake_fresh",
             .numerator = "orchestrator_fake_resume_acquire_realize/manual_time",
             .denominator = "orchestrator_fake_fresh_acquire_realize/manual_time", .target = -1},
            {.metric = "raw_bwrap_true_us", .numerator = "raw_bwrap_true/real_time", .denominator = "", .target = -1},
            {.metric = "sandbox_fresh_acquire_realize_us", .numerator = "sandbox_fresh_acquire_realize/real_time",
             .denominator = "", .target = -1},
            {.metric = "sandbox_resume_us", .numerator = "sandbox_resume_reusable/real_time", .denominator = "",
             .target = -1},
            {.metric = "orchestrator_fresh_acquire_realize_us", .numerator = "orchestrator_fresh_acquire_realize/manual_time",
             .denominator = "", .target = -1},
            {.metric = "orchestrator_resume_acquire_realize_us",
             .numerator = "orchestrator_resume_acquire_realize/manual_time", .denominator = "", .target = -1},
        });
}
