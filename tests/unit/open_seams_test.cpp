// Open identity and policy-owned reuse, with types defined only in this file: several drivers of
// one family in a stack, selected by the environment's config; the orchestrator records which
// driver and policy hold a lease and releases it through them; a policy (not the store) decides
// reuse through the lease_policy hooks, and the store only keeps one active lease per scope key.

#include <catch2/catch.hpp>

#include <berth/orchestrator/run_orchestrator.hpp>
#include <berth/policies/ephemeral.hpp>
#include <berth/process/spawn.hpp>
#include <berth/policies/retain_on_failure.hpp>
#include <berth/stores/memory.hpp>
#include <berth/testing/fake_driver.hpp>
#include <berth/testing/manual_clock.hpp>

#include <algorithm>
#include <filesystem>
#include <string>

using namespace berth;

namespace {

using bubblewrap = testing::fake_driver<driver_kind::sandbox, "bubblewrap">;
using e2b = testing::fake_driver<driver_kind::sandbox, "e2b">;
using ssh_fake = testing::fake_driver<driver_kind::ssh>;

/// A reuse_by_environment-like policy written on the hooks alone: one active lease per
/// environment; a later run resumes the newest ended lease made from the same `image`.
struct reuse_same_image {
    using lease_policy_concept = lease_policy_tag;
    static constexpr std::string_view name = "reuse_same_image";
    static constexpr lease_policy_kind kind = lease_policy_kind::reuse_by_environment;
    lease_status status_for(run_outcome) const noexcept { return lease_status::released; }
    std::optional<timestamp> expires_at(environment const&, timestamp) const { return std::nullopt; }

    std::optional<std::string> reuse_scope(acquire_request const&) const { return "environment"; }
    static std::string image_of(environment const& env) {
        auto const* v = env.config.if_contains("image");
        return v && v->is_string() ? std::string(v->get_string()) : std::string("default");
    }
    std::optional<environment_lease> find_reusable(acquire_request const&,
                                                   std::vector<environment_lease> const& leases) const {
        for (auto const& l : leases)  // newest first
            if (l.status == lease_status::released && l.policy_name == name && l.metadata &&
                l.metadata->contains("image"))
                return l;
        return std::nullopt;
    }
    bool matches(acquire_request const& r, environment_lease const& candidate) const {
        return candidate.metadata->at("image") == image_of(r.env).c_str();
    }
    void stamp(acquire_request const& r, lease_grant& grant) const { grant.metadata["image"] = image_of(r.env); }
};
static_assert(policy_with_reuse<reuse_same_image> && policy_with_reuse_scope<reuse_same_image>);

using sandboxes = stack<drivers<bubblewrap, e2b, ssh_fake>, policies<ephemeral, retain_on_failure, reuse_same_image>,
                        memory_store, testing::manual_clock>;
static_assert(sandboxes::driver_names[0] == "bubblewrap" && sandboxes::driver_names[2] == "fake-ssh");

struct fixture {
    memory_store store;
    testing::manual_clock clock;
    bubblewrap bwrap;
    e2b cloud;
    ssh_fake ssh;
    run_orchestrator<sandboxes> orch{store, clock, bwrap, cloud, ssh};

    environment make_env(driver_kind d, json_object config) {
        return store.create_environment(
            new_environment{.company_id = "acme", .name = "box", .driver = d, .config = std::move(config)},
            clock.now());
    }
    acquisition acquire(environment const& env, std::string run) {
        return orch.acquire_for_run(
            {.company_id = "acme", .environment_id = env.id, .agent_id = std::nullopt, .heartbeat_run_id = run});
    }
    release_result release(std::string run) {
        return orch.release_for_run({.company_id = "acme", .agent_id = std::nullopt, .heartbeat_run_id = run});
    }
};

template <class F>
environment_run_error run_error_of(F&& f) {
    try {
        f();
    } catch (environment_run_error const& e) {
        return e;
    }
    FAIL("expected an environment_run_error");
    throw std::logic_error("unreachable");
}

bool called(std::vector<std::string> const& calls, std::string const& prefix) {
    return std::any_of(calls.begin(), calls.end(), [&](auto const& c) { return c.rfind(prefix, 0) == 0; });
}

}  // namespace

TEST_CASE("two sandbox drivers in one stack: the config's provider selects, the lease records it", "[open_seams]") {
    fixture f;
    auto const on_e2b = f.make_env(driver_kind::sandbox, {{"provider", "e2b"}});
    auto const on_bwrap = f.make_env(driver_kind::sandbox, {{"provider", "bubblewrap"}});
    auto const a = f.acquire(on_e2b, "run-1");
    auto const b = f.acquire(on_bwrap, "run-2");
    CHECK(a.lease.driver_name == "e2b");
    CHECK(b.lease.driver_name == "bubblewrap");
    CHECK(a.lease.policy_name == "ephemeral");
    CHECK(f.cloud.shared_state()->calls() == std::vector<std::string>{"acquire"});
    CHECK(f.bwrap.shared_state()->calls() == std::vector<std::string>{"acquire"});

    // The environment changes provider: the lease is still released by the driver that holds it.
    REQUIRE(f.store.update_environment(on_e2b.id, {.config = json_object{{"provider", "bubblewrap"}}}, f.clock.now()));
    CHECK(f.release("run-1").errors.empty());
    CHECK(called(f.cloud.shared_state()->calls(), "release:" + a.lease.id));
    CHECK_FALSE(called(f.bwrap.shared_state()->calls(), "release:"));
}

TEST_CASE("an environment no driver of the stack serves is refused before any lease is written", "[open_seams]") {
    fixture f;
    auto const unknown = f.make_env(driver_kind::sandbox, {{"provider", "docker"}});
    auto e = run_error_of([&] { (void)f.acquire(unknown, "run-1"); });
    CHECK(e.code() == environment_error_code::unsupported_environment);
    CHECK_THAT(e.what(), Catch::Contains("provider \"docker\"") && Catch::Contains("bubblewrap (sandbox)") &&
                             Catch::Contains("e2b (sandbox)"));

    auto const unnamed = f.make_env(driver_kind::sandbox, {});
    e = run_error_of([&] { (void)f.acquire(unnamed, "run-1"); });
    CHECK(e.code() == environment_error_code::unsupported_environment);
    CHECK_THAT(e.what(), Catch::Contains("names no provider") && Catch::Contains("2 drivers"));

    auto const plugin = f.make_env(driver_kind::plugin, {});
    e = run_error_of([&] { (void)f.acquire(plugin, "run-1"); });
    CHECK_THAT(e.what(), Catch::Contains("uses driver \"plugin\", which this orchestrator's stack does not include"));

    // A family with one driver needs no key; a key naming another driver of it is refused.
    auto const ssh = f.make_env(driver_kind::ssh, {});
    CHECK(f.acquire(ssh, "run-2").lease.driver_name == "fake-ssh");
    auto const ssh_other = f.make_env(driver_kind::ssh, {{"driver", "openssh"}});
    CHECK_THAT(run_error_of([&] { (void)f.acquire(ssh_other, "run-3"); }).what(),
               Catch::Contains("driver \"openssh\""));

    CHECK(f.store.list_run_leases("run-1", {}).empty());
    CHECK(f.store.list_run_leases("run-3", {}).empty());
    CHECK(f.bwrap.shared_state()->calls().empty());
    CHECK(f.cloud.shared_state()->calls().empty());
    CHECK_FALSE(f.orch.probe(unknown).ok);
    CHECK_THAT(f.orch.probe(unknown).summary, Catch::Contains("docker"));
}

TEST_CASE("the config's leasePolicy names a policy, the lease records it and is ended by it", "[open_seams]") {
    fixture f;
    auto const env = f.make_env(driver_kind::sandbox, {{"provider", "e2b"}, {"leasePolicy", "retain_on_failure"}});
    auto const a = f.acquire(env, "run-1");
    CHECK(a.lease.policy_name == "retain_on_failure");
    CHECK(a.lease.lease_policy == lease_policy_kind::retain_on_failure);
    auto const r = f.orch.release_for_run(
        {.company_id = "acme", .agent_id = std::nullopt, .heartbeat_run_id = "run-1", .outcome = run_outcome::failed});
    REQUIRE(r.released.size() == 1);
    CHECK(r.released[0].status == lease_status::retained);

    auto const bad = f.make_env(driver_kind::sandbox, {{"provider", "e2b"}, {"leasePolicy", "forever"}});
    auto const e = run_error_of([&] { (void)f.acquire(bad, "run-2"); });
    CHECK(e.code() == environment_error_code::lease_acquire_failed);
    CHECK_THAT(e.what(), Catch::Contains("\"forever\"") && Catch::Contains("reuse_same_image"));
}

TEST_CASE("a policy reuses through its hooks: resume on a match, destroy on a mismatch or a failed resume",
          "[open_seams]") {
    fixture f;
    auto const state = f.cloud.shared_state();
    auto const env =
        f.make_env(driver_kind::sandbox, {{"provider", "e2b"}, {"leasePolicy", "reuse_same_image"}, {"image", "a"}});

    auto const first = f.acquire(env, "run-1");
    CHECK(first.lease.reuse_scope == "environment");
    CHECK(first.lease.metadata->at("image") == "a");
    // One active lease per scope key: the store refuses a second, and the new provider side is undone.
    auto const busy = run_error_of([&] { (void)f.acquire(env, "run-2"); });
    CHECK(busy.code() == environment_error_code::lease_acquire_failed);
    CHECK_THAT(busy.what(), Catch::Contains("reuse scope \"environment\""));
    CHECK(state->live_provider_leases() == std::set<std::string>{*first.lease.provider_lease_id});
    REQUIRE(f.release("run-1").errors.empty());

    SECTION("same image: the provider side is resumed under a new lease") {
        auto const second = f.acquire(env, "run-3");
        CHECK(called(state->calls(), "resume:" + first.lease.id));
        CHECK(second.lease.id != first.lease.id);
        CHECK(second.lease.provider_lease_id == first.lease.provider_lease_id);
        CHECK(second.lease.metadata->at("image") == "a");
        auto const acquired = f.store.list_activity({.entity_id = second.lease.id});
        REQUIRE(acquired.size() == 1);
        CHECK(acquired[0].details.at("resumedLeaseId") == first.lease.id.c_str());
    }
    SECTION("another image: the old provider side is destroyed and a new one acquired") {
        REQUIRE(f.store.update_environment(
            env.id, {.config = json_object{{"provider", "e2b"}, {"leasePolicy", "reuse_same_image"}, {"image", "b"}}},
            f.clock.now()));
        auto const second = f.acquire(env, "run-3");
        CHECK(called(state->calls(), "destroy:" + first.lease.id));
        CHECK_FALSE(called(state->calls(), "resume:"));
        CHECK(second.lease.provider_lease_id != first.lease.provider_lease_id);
        CHECK(second.lease.metadata->at("image") == "b");
    }
    SECTION("a failed resume destroys the old provider side and acquires anew") {
        state->fail_next("resume", "sandbox is gone");
        auto const second = f.acquire(env, "run-3");
        CHECK(called(state->calls(), "resume:" + first.lease.id));
        CHECK(called(state->calls(), "destroy:" + first.lease.id));
        CHECK(second.lease.provider_lease_id != first.lease.provider_lease_id);
    }
}

namespace {

/// A plugin-family driver defined only here, with acquire, release and execute and nothing else.
struct gpu_pool {
    using driver_concept = driver_tag;
    static constexpr std::string_view name = "gpu-pool";
    static constexpr driver_kind family = driver_kind::plugin;
    std::shared_ptr<std::vector<command>> ran = std::make_shared<std::vector<command>>();
    lease_grant acquire(acquire_request const&) const { return {.provider = "gpu", .provider_lease_id = "gpu-1"}; }
    release_outcome release(environment const&, environment_lease const&, lease_status) const { return {}; }
    command_result execute(environment const&, environment_lease const&, command const& c) const {
        ran->push_back(c);
        return {.exit_code = 0};
    }
};
static_assert(environment_driver<gpu_pool> && !driver_with_realize_workspace<gpu_pool>);

}  // namespace

TEST_CASE("a driver without realize keeps the workspace's cwd and is provisioned through execute", "[open_seams]") {
    memory_store store;
    testing::manual_clock clock;
    gpu_pool gpu;
    run_orchestrator<stack<drivers<gpu_pool>, policies<ephemeral>, memory_store, testing::manual_clock>> orch{
        store, clock, gpu};
    auto const env = store.create_environment({.company_id = "acme", .name = "gpus", .driver = driver_kind::plugin},
                                              clock.now());
    auto const acq = orch.acquire_for_run(
        {.company_id = "acme", .environment_id = env.id, .agent_id = std::nullopt, .heartbeat_run_id = "run-1"});
    CHECK(acq.lease.driver_name == "gpu-pool");
    auto const r = orch.realize_for_run(
        {.env = acq.env, .lease = acq.lease, .workspace_cwd = "/w", .provision_command = "make deps"});
    CHECK(r.cwd == "/w");
    CHECK_FALSE(r.remote_cwd);
    CHECK(r.workspace_realization.empty());
    REQUIRE(gpu.ran->size() == 1);
    CHECK(gpu.ran->at(0).program == "bash");
    CHECK(gpu.ran->at(0).args == std::vector<std::string>{"-lc", "make deps"});
    CHECK(gpu.ran->at(0).cwd == std::optional<std::string>("/w"));
}

namespace {

/// An ssh-family driver defined only here whose execute runs the command for real on this machine,
/// so that a provision command can really be killed by a signal.
struct host_shell {
    using driver_concept = driver_tag;
    static constexpr std::string_view name = "host-shell";
    static constexpr driver_kind family = driver_kind::ssh;
    lease_grant acquire(acquire_request const&) const { return {.provider = "host"}; }
    release_outcome release(environment const&, environment_lease const&, lease_status) const { return {}; }
    workspace_realization realize_workspace(realize_request const& r) const {
        return {.cwd = r.local_path.value_or("/")};
    }
    command_result execute(environment const&, environment_lease const&, command const& c) const {
        return process::run(c, {.inherit_sanitized_environment = true});
    }
};

}  // namespace

TEST_CASE("a provision command killed by a signal is named as the seed names it (signal SIGKILL)", "[open_seams]") {
    memory_store store;
    testing::manual_clock clock;
    run_orchestrator<stack<drivers<host_shell>, policies<ephemeral>, memory_store, testing::manual_clock>> orch{
        store, clock, host_shell{}};
    auto const env = store.create_environment({.company_id = "acme", .name = "host", .driver = driver_kind::ssh},
                                              clock.now());
    auto const acq = orch.acquire_for_run({.company_id = "acme", .environment_id = env.id, .agent_id = std::nullopt,
                                           .heartbeat_run_id = "run-provision-signal"});
    auto const tmp = std::filesystem::temp_directory_path().string();
    auto provision = [&](std::string cmd) {
        return run_error_of([&] {
            (void)orch.realize_for_run(
                {.env = acq.env, .lease = acq.lease, .workspace_cwd = tmp, .provision_command = std::move(cmd)});
        });
    };
    std::string const prefix = "Failed to provision workspace for environment \"host\" (ssh): ";
    auto const killed = provision("kill -KILL $$");
    CHECK(killed.code() == environment_error_code::workspace_realization_failed);
    CHECK(std::string(killed.what()) == prefix + "exit code null (signal SIGKILL)");
    CHECK(std::string(provision("echo dying >&2; kill -TERM $$").what()) ==
          prefix + "exit code null (signal SIGTERM): dying");
    CHECK(std::string(provision("exit 4").what()) == prefix + "exit code 4");
}
