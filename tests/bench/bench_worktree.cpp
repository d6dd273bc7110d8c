// What berth's git_worktree realization costs over git itself, on one repository (200 files in
// 10 directories) in one run:
//
//   raw_add             `git worktree add -b <b> <path> HEAD`, spawned directly (posix_spawn,
//                       output to /dev/null, no berth code); removal untimed
//   raw_add_remove      the same add, then `git worktree remove --force <path>`, both timed
//   berth_create        workspace_runtime::realize of a new git_worktree (default config: the base
//                       ref detected), every git command recorded as an operation in a
//                       memory_store; cleanup untimed
//   berth_create_cleanup realize, then workspace_runtime::cleanup (worktree remove, guarded
//                       branch delete), both timed and recorded
//   berth_reuse         realize of an existing worktree (reuse)
//
//   ratio worktree_create         = berth create / raw add                 (target <= 1.3)
//   ratio worktree_create_cleanup = berth create + cleanup / raw add + remove  (target <= 1.3)
//   ratio worktree_reuse          = berth reuse / raw add                  (target <= 0.3)
//
// The ratios come from the paired rows (paired_*: raw and berth alternating in one loop, the
// counter `berth_over_raw`), because on a shared machine the separate rows, run seconds apart,
// differ by more than the effect measured; the separate rows give the absolute times.
//
// Each berth row also reports the git processes per call (`git_per_create`, `git_per_cleanup`,
// `git_per_reuse`: the counter of the runtime's git_runner).
// Upstream (Paperclip) takes ≈336 ms to create and ≈268 ms to reuse on this machine kind, with
// 13–16 git processes per call.

#include "bench_support.hpp"
#include "git_fixture.hpp"

#include <berth/src.hpp>  // Boost.JSON's implementation: this executable's one TU
#include <berth/stores/memory.hpp>
#include <berth/workspace.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

namespace fs = std::filesystem;

/// The repository every benchmark works on, made once.
struct bench_repo {
    berth::test::temp_dir dir{"berth-bench-wt"};
    fs::path repo = dir / "repo";
    bench_repo() {
        fs::create_directories(repo);
        berth::test::git(repo, {"init", "-q", "-b", "main"});
        for (int d = 0; d < 10; ++d)
            for (int f = 0; f < 20; ++f)
                berth::test::write_file(repo / ("src/d" + std::to_string(d) + "/f" + std::to_string(f) + ".txt"),
                                        "line " + std::to_string(d) + " " + std::to_string(f) + "\n");
        berth::test::git(repo, {"add", "-A"});
        berth::test::git(repo, {"commit", "-q", "-m", "bench"});
    }
};

bench_repo& repo() {
    static bench_repo r;
    return r;
}

/// The floor: git spawned directly with this process's environment, output discarded.
int raw_git(std::vector<std::string> args, std::string const& cwd) {
    std::vector<std::string> full{"git", "-C", cwd};
    full.insert(full.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : full) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid = -1;
    int const rc = ::posix_spawnp(&pid, "git", &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) return -1;
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string worktree_path(int i) { return (repo().repo / ".berth/worktrees" / ("raw-" + std::to_string(i))).string(); }

void raw_add(benchmark::State& state) {
    auto const root = repo().repo.string();
    fs::create_directories(repo().repo / ".berth/worktrees");
    int i = 0;
    for (auto _ : state) {
        auto const path = worktree_path(i);
        auto const branch = "raw-" + std::to_string(i++);
        if (raw_git({"worktree", "add", "-b", branch, path, "HEAD"}, root) != 0) {
            state.SkipWithError("git worktree add failed");
            break;
        }
        state.PauseTiming();
        raw_git({"worktree", "remove", "--force", path}, root);
        raw_git({"branch", "-D", branch}, root);
        state.ResumeTiming();
    }
}

void raw_add_remove(benchmark::State& state) {
    auto const root = repo().repo.string();
    fs::create_directories(repo().repo / ".berth/worktrees");
    int i = 0;
    for (auto _ : state) {
        auto const path = worktree_path(i);
        auto const branch = "raw-" + std::to_string(i++);
        if (raw_git({"worktree", "add", "-b", branch, path, "HEAD"}, root) != 0 ||
            raw_git({"worktree", "remove", "--force", path}, root) != 0) {
            state.SkipWithError("git worktree add/remove failed");
            break;
        }
        state.PauseTiming();
        raw_git({"branch", "-D", branch}, root);
        state.ResumeTiming();
    }
}

berth::realize_workspace_request request_for(int i) {
    return {.base = {.base_cwd = repo().repo.string(), .project_id = "bench"},
            .strategy = {.type = berth::workspace_strategy_type::git_worktree},
            .issue = berth::workspace_issue{.id = "i", .identifier = "BENCH-" + std::to_string(i), .title = "run"},
            .agent = {.id = "a", .name = "bench", .company_id = "c"}};
}

berth::execution_workspace record_of(berth::realized_workspace const& ws) {
    berth::execution_workspace w{};
    w.id = "ew";
    w.project_id = "bench";
    w.provider_type = berth::workspace_provider_type::git_worktree;
    w.cwd = ws.cwd;
    w.provider_ref = ws.worktree_path;
    w.branch_name = ws.branch_name;
    w.metadata = berth::json_object{{"createdByRuntime", true},
                                    {"branchCreatedByRuntime", ws.branch_created},
                                    {"branchHeadSha", ws.branch_head_sha.value_or("")},
                                    {"repoRoot", ws.repo_root.value_or("")}};
    return w;
}

template <bool TimeCleanup>
void berth_create_impl(benchmark::State& state) {
    berth::workspace_runtime const rt;
    berth::memory_store store;
    berth::operation_recorder rec{store, {.company_id = "c"}};
    int i = 0;
    std::uint64_t calls = 0, create_git = 0, cleanup_git = 0;
    for (auto _ : state) {
        auto const g0 = rt.git().processes_started();
        auto const ws = rt.realize(request_for(i++), &rec);
        auto const g1 = rt.git().processes_started();
        if (!ws.created) {
            state.SkipWithError("not created");
            break;
        }
        if constexpr (!TimeCleanup) state.PauseTiming();
        auto const done = rt.cleanup({.workspace = record_of(ws), .project_workspace_cwd = repo().repo.string(), .held_lock = ws.lock}, &rec);
        if (!done.cleaned || !done.warnings.empty()) {
            state.SkipWithError(done.warnings.empty() ? "not cleaned" : done.warnings.front().c_str());
            break;
        }
        if constexpr (!TimeCleanup) state.ResumeTiming();
        create_git += g1 - g0;
        cleanup_git += rt.git().processes_started() - g1;
        ++calls;
    }
    if (calls > 0) {
        state.counters["git_per_create"] = double(create_git) / double(calls);
        state.counters["git_per_cleanup"] = double(cleanup_git) / double(calls);
    }
}

void berth_create(benchmark::State& state) { berth_create_impl<false>(state); }
void berth_create_cleanup(benchmark::State& state) { berth_create_impl<true>(state); }

void berth_reuse(benchmark::State& state) {
    berth::workspace_runtime const rt;
    berth::memory_store store;
    berth::operation_recorder rec{store, {.company_id = "c"}};
    auto first = rt.realize(request_for(1000000));
    first.lock.reset();  // reused below as by later runs, one at a time
    auto const start = rt.git().processes_started();
    std::uint64_t calls = 0;
    for (auto _ : state) {
        auto const ws = rt.realize(request_for(1000000), &rec);
        if (ws.created) {
            state.SkipWithError("not reused");
            break;
        }
        ++calls;
    }
    if (calls > 0) state.counters["git_per_reuse"] = double(rt.git().processes_started() - start) / double(calls);
    (void)rt.cleanup({.workspace = record_of(first), .project_workspace_cwd = repo().repo.string()});
}

/// Paired rows: each iteration runs the raw side and berth's side one after the other, in
/// both orders, timing each with a steady clock, so that both see the same machine load;
/// the counter `berth_over_raw` is the ratio of the sums (what the ratio lines print). A shared
/// machine moves the separate rows above by ±50 % from one run to the next; the pairs much less.
template <class Raw, class Berth>
void paired(benchmark::State& state, Raw raw, Berth berth) {
    using clock = std::chrono::steady_clock;
    clock::duration raw_t{}, berth_t{};
    int i = 0;
    // One untimed pair first (page cache, git's first-run work), then per iteration two pairs in
    // both orders (raw, berth, berth, raw), so that even one iteration is balanced.
    if (raw(i++) < clock::duration::zero() || berth(i++) < clock::duration::zero()) {
        state.SkipWithError("warm-up failed");
        return;
    }
    for (auto _ : state) {
        for (int step = 0; step < 4; ++step) {
            bool const is_berth = step == 1 || step == 2;
            auto const t = is_berth ? berth(i++) : raw(i++);
            if (t < clock::duration::zero()) {
                state.SkipWithError(is_berth ? "berth side failed" : "raw side failed");
                return;
            }
            (is_berth ? berth_t : raw_t) += t;
        }
    }
    if (raw_t.count() > 0) state.counters["berth_over_raw"] = double(berth_t.count()) / double(raw_t.count());
}

/// Times `f` (steady clock); negative when it reports failure.
template <class F>
std::chrono::steady_clock::duration timed(F&& f) {
    auto const t0 = std::chrono::steady_clock::now();
    bool const ok = f();
    auto const d = std::chrono::steady_clock::now() - t0;
    return ok ? d : std::chrono::steady_clock::duration(-1);
}

void paired_create(benchmark::State& state, bool with_cleanup) {
    berth::workspace_runtime const rt;
    berth::memory_store store;
    berth::operation_recorder rec{store, {.company_id = "c"}};
    auto const root = repo().repo.string();
    fs::create_directories(repo().repo / ".berth/worktrees");
    paired(
        state,
        [&](int i) {
            auto const path = worktree_path(i);
            auto const branch = "raw-" + std::to_string(i);
            auto const t = timed([&] {
                return raw_git({"worktree", "add", "-b", branch, path, "HEAD"}, root) == 0 &&
                       (!with_cleanup || raw_git({"worktree", "remove", "--force", path}, root) == 0);
            });
            if (!with_cleanup) raw_git({"worktree", "remove", "--force", path}, root);
            raw_git({"branch", "-D", branch}, root);
            return t;
        },
        [&](int i) {
            berth::realized_workspace ws;
            bool cleaned = false;
            auto const t = timed([&] {
                ws = rt.realize(request_for(100000 + i), &rec);
                if (with_cleanup)
                    cleaned = rt.cleanup({.workspace = record_of(ws), .project_workspace_cwd = root, .held_lock = ws.lock}, &rec).cleaned;
                return ws.created && (!with_cleanup || cleaned);
            });
            if (!with_cleanup) (void)rt.cleanup({.workspace = record_of(ws), .project_workspace_cwd = root, .held_lock = ws.lock}, &rec);
            return t;
        });
}

void paired_create_vs_add(benchmark::State& state) { paired_create(state, false); }
void paired_create_cleanup_vs_add_remove(benchmark::State& state) { paired_create(state, true); }

void paired_reuse_vs_add(benchmark::State& state) {
    berth::workspace_runtime const rt;
    auto const root = repo().repo.string();
    auto first = rt.realize(request_for(2000000));
    first.lock.reset();
    paired(
        state,
        [&](int i) {
            auto const path = worktree_path(i);
            auto const branch = "raw-" + std::to_string(i);
            auto const t = timed([&] { return raw_git({"worktree", "add", "-b", branch, path, "HEAD"}, root) == 0; });
            raw_git({"worktree", "remove", "--force", path}, root);
            raw_git({"branch", "-D", branch}, root);
            return t;
        },
        [&](int) { return timed([&] { return !rt.realize(request_for(2000000)).created; }); });
    (void)rt.cleanup({.workspace = record_of(first), .project_workspace_cwd = root});
}

}  // namespace

BENCHMARK(paired_create_vs_add)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(paired_create_cleanup_vs_add_remove)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(paired_reuse_vs_add)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(raw_add)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(berth_create)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(raw_add_remove)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(berth_create_cleanup)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(berth_reuse)->Unit(benchmark::kMillisecond)->UseRealTime();

int main(int argc, char** argv) {
    (void)repo();
    return berth::bench::run_and_report(
        argc, argv,
        {{"worktree_create", "paired_create_vs_add/real_time", "", 1.3, 1e3, "berth_over_raw"},
         {"worktree_create_cleanup", "paired_create_cleanup_vs_add_remove/real_time", "", 1.3, 1e3, "berth_over_raw"},
         {"worktree_reuse", "paired_reuse_vs_add/real_time", "", 0.3, 1e3, "berth_over_raw"}});
}
