// What a dead host leaves of its bubblewrap sandboxes, and how it goes (issue 17): a host killed
// while bwrap sets a sandbox up (before the sandbox's init arms --die-with-parent) leaves a sandbox
// running that nothing is tied to — destroy (which recovery calls for the host's lease) and
// reap_orphans kill it by the id every process of the sandbox carries; and a sandbox directory
// whose lease is gone or ended is removed by berth::reap_orphan_sandboxes, never one a live lease
// holds, one its maker may still record, or one of an environment another store owns.
#include <catch2/catch.hpp>

#ifdef BERTH_TEST_SANDBOX

#include <berth/drivers/sandbox.hpp>
#include <berth/orchestrator/run_orchestrator.hpp>
#include <berth/policies/ephemeral.hpp>
#include <berth/process/child.hpp>
#include <berth/stores/memory.hpp>
#include <berth/testing/manual_clock.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <csignal>
#include <sys/wait.h>
#include <unistd.h>

using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

std::string slurp(fs::path const& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// Command lines of the processes that contain `marker` (a sleep duration only one test uses).
std::vector<std::string> processes_matching(std::string const& marker) {
    std::vector<std::string> found;
    std::error_code ec;
    for (fs::directory_iterator e("/proc", ec), end; !ec && e != end; e.increment(ec)) {
        auto const name = e->path().filename().string();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        auto cmdline = slurp(e->path() / "cmdline");
        for (auto& c : cmdline)
            if (c == '\0') c = ' ';
        if (cmdline.find(marker) != std::string::npos) found.push_back(name + ": " + cmdline.substr(0, 200));
    }
    return found;
}

template <class P>
bool eventually(P pred, std::chrono::milliseconds limit) {
    auto const deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
        if (pred()) return true;
        std::this_thread::sleep_for(5ms);
    }
    return pred();
}

std::string unique_marker() {
    std::random_device rd;
    return "8" + std::to_string(100000 + rd() % 800000) + "." + std::to_string(rd() % 1000);
}

fs::path make_root() {
    std::string tmpl = (fs::temp_directory_path() / "berth-orphans-test-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    return tmpl;
}

struct temp_root {
    fs::path path = make_root();
    ~temp_root() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

/// The one `bwrap-*` sandbox directory under `state`, if there is one.
std::optional<std::string> sandbox_in(fs::path const& state) {
    std::error_code ec;
    for (fs::directory_iterator e(state, ec), end; !ec && e != end; e.increment(ec))
        if (e->path().filename().string().rfind("bwrap-", 0) == 0) return e->path().filename().string();
    return std::nullopt;
}

/// Rewrites the maker recorded in a sandbox's lease.json as a process that is gone.
void maker_gone(fs::path const& dir) {
    auto owner = boost::json::parse(slurp(dir / "lease.json")).as_object();
    owner["holderStartTime"] = 1;  // no process of this pid started at tick 1
    std::ofstream(dir / "lease.json", std::ios::trunc) << boost::json::serialize(owner);
}

}  // namespace

TEST_CASE("bubblewrap: a host killed -9 while bwrap sets the sandbox up leaves nothing once the sandbox is destroyed "
          "or reaped",
          "[sandbox][bubblewrap][sandbox-security]") {
    // The helper makes a sandbox, then runs `sleep <marker>` in it; it is killed at a different point
    // of bwrap's setup each time (the directory is renamed into place right before bwrap starts).
    for (int const delay_ms : {0, 1, 2, 4, 7, 12, 20, 35, 60, 100}) {
        temp_root root;
        auto const state = root.path / "state";
        auto const marker = unique_marker();
        auto helper = berth::process::child::start({.program = BERTH_TEST_SANDBOX_HELPER, .args = {state.string(), marker}});
        REQUIRE(eventually([&] { return sandbox_in(state).has_value(); }, 10s));
        std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
        ::kill(helper.pid(), SIGKILL);
        int const status = helper.wait();
        CHECK(WIFSIGNALED(status));
        auto const id = *sandbox_in(state);
        berth::bubblewrap const bw{{.state_root = state.string()}};
        INFO("killed " << delay_ms << " ms after the sandbox was made");
        if (delay_ms % 2 == 0) {
            bw.destroy({.provider_lease_id = id});
        } else {
            auto const reaped = bw.reap_orphans([](auto const&) { return false; });
            CHECK(reaped.removed == std::vector<std::string>{id});
            CHECK(reaped.errors.empty());
        }
        bool const gone = eventually([&] { return processes_matching(marker).empty(); }, 3s);
        for (auto const& p : processes_matching(marker)) UNSCOPED_INFO("left: " << p);
        CHECK(gone);
        CHECK(fs::is_empty(state));
    }
}

namespace {

using orphans_stack = berth::stack<berth::drivers<berth::sandbox_driver<berth::bubblewrap>>,
                                   berth::policies<berth::ephemeral, berth::reuse_by_environment>, berth::memory_store,
                                   berth::testing::manual_clock>;

struct orphans_fixture {
    temp_root root;
    berth::memory_store store;
    berth::testing::manual_clock clock;
    berth::bubblewrap bw{{.state_root = (root.path / "state").string()}};
    berth::run_orchestrator<orphans_stack> orch{store, clock, berth::sandbox_driver<berth::bubblewrap>{bw}};
    berth::environment env = store.create_environment(
        berth::new_environment{.company_id = "acme",
                               .name = "bwrap",
                               .driver = berth::driver_kind::sandbox,
                               .config = {{"provider", "bubblewrap"}, {"reuseLease", true},
                                          {"leasePolicy", "reuse_by_environment"}}},
        clock.now());
    int runs = 0;

    /// A successful run of `agent` in ew-1 (acquire, release): its sandbox is kept, its lease retained.
    berth::environment_lease kept(char const* agent) {
        auto const run_id = "run-" + std::to_string(++runs);
        auto const a = orch.acquire_for_run({.company_id = "acme",
                                             .environment_id = env.id,
                                             .agent_id = berth::nullable<std::string>(std::string(agent)),
                                             .heartbeat_run_id = run_id,
                                             .execution_workspace_id = "ew-1"});
        auto const r = orch.release_for_run(
            {.company_id = "acme", .agent_id = berth::nullable<std::string>(std::nullopt), .heartbeat_run_id = run_id});
        REQUIRE(r.released.size() == 1);
        REQUIRE(r.released[0].status == berth::lease_status::retained);
        return r.released[0];
    }
    /// A sandbox made by the provider for environment `env_id`, no lease recorded for it.
    std::string unrecorded(std::string const& env_id) {
        return *bw.acquire({.company_id = "acme", .environment_id = env_id, .run_id = "run-x"}).provider_lease_id;
    }
    fs::path dir(std::string const& id) const { return bw.lease_directory(id); }
};

}  // namespace

TEST_CASE("reap_orphan_sandboxes: sandboxes no live lease holds go, held and still-being-made ones stay",
          "[sandbox][bubblewrap][sandbox-reuse]") {
    orphans_fixture f;
    auto const held = f.kept("agent-a");       // retained: a later run resumes it
    // A lease that ended without its sandbox being deleted, in a process that is gone.
    auto const ended = f.kept("agent-b");
    REQUIRE(f.store.transition_lease({.id = ended.id, .expected_epoch = ended.epoch, .to = berth::lease_status::expired},
                                     f.clock.now(), std::nullopt)
                .status == berth::lease_status::expired);
    maker_gone(f.dir(*ended.provider_lease_id));
    auto const unrecorded = f.unrecorded(f.env.id);   // its maker died before recording a lease
    maker_gone(f.dir(unrecorded));
    auto const being_made = f.unrecorded(f.env.id);   // its maker (this process) may still record it
    auto const other_store = f.unrecorded("env-of-another-store");
    maker_gone(f.dir(other_store));
    // Made half-way by a process that is gone, and by one that runs (this one).
    auto const dead_making = f.root.path / "state" / ".making-999999999-1-0b5e6c1a";
    auto const live_making = f.root.path / "state" /
                             (".making-" + std::to_string(::getpid()) + "-" +
                              std::to_string(berth::process::pid_start_time(::getpid()).value_or(0)) + "-7f00aa11");
    fs::create_directories(dead_making / "home");
    fs::create_directories(live_making / "home");

    auto const& provider = f.orch.driver<berth::sandbox_driver<berth::bubblewrap>>().provider<berth::bubblewrap>();
    auto const reaped = berth::reap_orphan_sandboxes(f.orch, provider);
    CHECK(reaped.errors.empty());
    auto removed = reaped.removed;
    std::sort(removed.begin(), removed.end());
    std::vector<std::string> expected{*ended.provider_lease_id, unrecorded, dead_making.filename().string()};
    std::sort(expected.begin(), expected.end());
    CHECK(removed == expected);
    CHECK_FALSE(fs::exists(f.dir(*ended.provider_lease_id)));
    CHECK_FALSE(fs::exists(f.dir(unrecorded)));
    CHECK_FALSE(fs::exists(dead_making));
    CHECK(fs::exists(f.dir(*held.provider_lease_id)));
    CHECK(fs::exists(f.dir(being_made)));
    CHECK(fs::exists(f.dir(other_store)));
    CHECK(fs::exists(live_making));

    SECTION("once its maker has had time to record it, an unrecorded sandbox goes too") {
        auto const later = berth::reap_orphan_sandboxes(f.orch, provider, std::chrono::seconds(0));
        CHECK(later.removed == std::vector<std::string>{being_made});
        CHECK(fs::exists(f.dir(*held.provider_lease_id)));
    }
    SECTION("the kept sandbox is resumed afterwards: what it kept is still there") {
        auto const next = f.orch.acquire_for_run({.company_id = "acme",
                                                  .environment_id = f.env.id,
                                                  .agent_id = berth::nullable<std::string>(std::string("agent-a")),
                                                  .heartbeat_run_id = "run-after-reap",
                                                  .execution_workspace_id = "ew-1"});
        CHECK(next.lease.provider_lease_id == held.provider_lease_id);
    }
}

#endif  // BERTH_TEST_SANDBOX
