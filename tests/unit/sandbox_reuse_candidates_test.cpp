// Reusable sandboxes through the orchestrator, the candidate rules of upstream §2.3 that
// sandbox_reuse_orchestrator_test.cpp does not reach (issue 17): every mismatching kept sandbox
// of the scope is destroyed at acquire (not only the newest), and the scope record's adapterType
// comes from the run (acquire_for_run_request::adapter_type; null when the caller does not say).
#include <catch2/catch.hpp>

#ifdef BERTH_TEST_SANDBOX

#include <berth/drivers/sandbox.hpp>
#include <berth/orchestrator/run_orchestrator.hpp>
#include <berth/policies/ephemeral.hpp>
#include <berth/stores/memory.hpp>
#include <berth/testing/fake_sandbox_provider.hpp>
#include <berth/testing/manual_clock.hpp>

#include <algorithm>
#include <string>
#include <vector>

using namespace berth;

namespace {

using testing::fake_sandbox_provider;
using candidates_stack = stack<drivers<sandbox_driver<fake_sandbox_provider>>, policies<ephemeral, reuse_by_environment>,
                               memory_store, testing::manual_clock>;

bool called(std::vector<std::string> const& calls, std::string const& call) {
    return std::find(calls.begin(), calls.end(), call) != calls.end();
}
long count_prefix(std::vector<std::string> const& calls, std::string const& prefix) {
    return std::count_if(calls.begin(), calls.end(), [&](auto const& c) { return c.rfind(prefix, 0) == 0; });
}

struct candidates_fixture {
    memory_store store;
    testing::manual_clock clock;
    fake_sandbox_provider fake;
    std::shared_ptr<fake_sandbox_provider::state> state = fake.shared_state();
    run_orchestrator<candidates_stack> orch{store, clock, sandbox_driver<fake_sandbox_provider>{fake}};
    json_object config{{"provider", "fake"}, {"reuseLease", true}, {"leasePolicy", "reuse_by_environment"}};
    environment env = store.create_environment(
        new_environment{.company_id = "acme", .name = "sandbox", .driver = driver_kind::sandbox, .config = config},
        clock.now());
    int runs = 0;

    acquisition acquire(std::optional<std::string> adapter = std::nullopt) {
        clock.advance(std::chrono::seconds(1));  // newest first is by last_used_at
        return orch.acquire_for_run({.company_id = "acme",
                                     .environment_id = env.id,
                                     .agent_id = nullable<std::string>(std::string("agent-a")),
                                     .heartbeat_run_id = "run-" + std::to_string(++runs),
                                     .issue_id = "issue-1",
                                     .execution_workspace_id = "ew-1",
                                     .adapter_type = std::move(adapter)});
    }
    environment_lease end(acquisition const& a) {
        auto const r = orch.release_for_run({.company_id = "acme",
                                             .agent_id = nullable<std::string>(std::nullopt),
                                             .heartbeat_run_id = *a.lease.heartbeat_run_id});
        REQUIRE(r.errors.empty());
        REQUIRE(r.released.size() == 1);
        return r.released[0];
    }
    environment_lease lease(std::string const& id) { return *store.get_lease(id); }

    /// A second kept sandbox of `like`'s scope (agent-a, ew-1), as a store written by another
    /// application or an older berth may hold (berth's own runs keep one per scope: a resume ends
    /// the kept lease). Its record is `like`'s, with `leaseFingerprint` replaced when given. It is
    /// made older than `like` (newest first is by last_used_at).
    environment_lease second_kept(environment_lease const& like, std::optional<std::string> fingerprint) {
        auto const sandbox = fake.acquire({.company_id = "acme",
                                           .environment_id = env.id,
                                           .run_id = "run-old",
                                           .agent_id = std::string("agent-a"),
                                           .execution_workspace_id = std::string("ew-1"),
                                           .reusable = true});
        json_object md = *like.metadata;
        if (fingerprint) md[reusable_sandbox_lease_key].as_object()["leaseFingerprint"] = *fingerprint;
        auto const acquired = store.acquire_lease(new_lease{.id = new_id(),
                                                            .company_id = "acme",
                                                            .environment_id = env.id,
                                                            .execution_workspace_id = std::string("ew-1"),
                                                            .heartbeat_run_id = std::string("run-old"),
                                                            .lease_policy = lease_policy_kind::reuse_by_environment,
                                                            .provider = std::string("fake"),
                                                            .provider_lease_id = sandbox.provider_lease_id,
                                                            .metadata = std::move(md),
                                                            .driver_name = like.driver_name,
                                                            .policy_name = like.policy_name},
                                                  clock.now() - std::chrono::hours(1), std::nullopt);
        return store.transition_lease({.id = acquired.id, .expected_epoch = acquired.epoch, .to = lease_status::retained},
                                      clock.now() - std::chrono::hours(1), std::nullopt);
    }
};

}  // namespace

TEST_CASE("sandbox reuse candidates: every mismatching kept sandbox of the scope is destroyed at acquire",
          "[sandbox][sandbox-reuse][orchestrator]") {
    candidates_fixture f;
    auto const newest = f.end(f.acquire());
    REQUIRE(newest.status == lease_status::retained);

    SECTION("both mismatch (the config changed): both destroyed, a new sandbox acquired") {
        auto const older = f.second_kept(newest, std::nullopt);
        REQUIRE(older.status == lease_status::retained);
        REQUIRE(f.state->live().size() == 2);
        json_object changed = f.config;
        changed["image"] = "alpine";
        REQUIRE(f.store.update_environment(f.env.id, {.config = changed}, f.clock.now()));

        auto const next = f.acquire();
        CHECK(count_prefix(f.state->calls(), "resume:") == 0);
        for (auto const& kept : {newest, older}) {
            CHECK(called(f.state->calls(), "destroy:" + *kept.provider_lease_id));
            auto const l = f.lease(kept.id);
            CHECK(l.status == lease_status::expired);
            CHECK(l.cleanup_status == cleanup_status::success);
            CHECK(l.failure_reason == "lease_fingerprint_mismatch");
        }
        CHECK(f.state->live() == std::set<std::string>{*next.lease.provider_lease_id});
    }
    SECTION("the newest matches, an older one does not: the newest resumed, the older destroyed") {
        auto const older = f.second_kept(newest, std::string("0000-stale-fingerprint"));
        auto const next = f.acquire();
        CHECK(next.lease.provider_lease_id == newest.provider_lease_id);
        CHECK(called(f.state->calls(), "resume:" + *newest.provider_lease_id));
        CHECK(called(f.state->calls(), "destroy:" + *older.provider_lease_id));
        CHECK(f.lease(older.id).status == lease_status::expired);
        CHECK(f.lease(older.id).failure_reason == "lease_fingerprint_mismatch");
        CHECK(f.lease(newest.id).status == lease_status::released);  // handed over
        CHECK(f.state->live() == std::set<std::string>{*newest.provider_lease_id});
    }
    SECTION("two match: the newest is resumed, the older one is left kept") {
        auto const older = f.second_kept(newest, std::nullopt);
        auto const next = f.acquire();
        CHECK(next.lease.provider_lease_id == newest.provider_lease_id);
        CHECK(count_prefix(f.state->calls(), "destroy:") == 0);
        CHECK(f.lease(older.id).status == lease_status::retained);
    }
}

TEST_CASE("sandbox reuse candidates: the scope record's adapterType is the run's, and another adapter does not resume",
          "[sandbox][sandbox-reuse][orchestrator]") {
    candidates_fixture f;
    SECTION("none given: null, as upstream") {
        auto const a = f.acquire();
        CHECK(a.lease.metadata->at(reusable_sandbox_lease_key).at("adapterType").is_null());
        auto const kept = f.end(a);
        // A run that names an adapter is not the same scope: the kept sandbox is destroyed.
        auto const b = f.acquire(std::string("codex_local"));
        CHECK(b.lease.provider_lease_id != kept.provider_lease_id);
        CHECK(f.lease(kept.id).failure_reason == "lease_fingerprint_mismatch");
    }
    SECTION("given: recorded, resumed by the same adapter, destroyed for another") {
        auto const a = f.acquire(std::string("claude_local"));
        CHECK(a.lease.metadata->at(reusable_sandbox_lease_key).at("adapterType") == "claude_local");
        auto const kept = f.end(a);
        auto const same = f.acquire(std::string("claude_local"));
        CHECK(same.lease.provider_lease_id == kept.provider_lease_id);
        CHECK(same.lease.metadata->at(reusable_sandbox_lease_key).at("adapterType") == "claude_local");
        auto const kept2 = f.end(same);
        auto const other = f.acquire(std::string("codex_local"));
        CHECK(other.lease.provider_lease_id != kept2.provider_lease_id);
        CHECK(other.lease.metadata->at(reusable_sandbox_lease_key).at("adapterType") == "codex_local");
        auto const old = f.lease(kept2.id);
        CHECK(old.status == lease_status::expired);
        CHECK(old.failure_reason == "lease_fingerprint_mismatch");
        CHECK(f.state->live() == std::set<std::string>{*other.lease.provider_lease_id});
    }
}

#endif  // BERTH_TEST_SANDBOX
