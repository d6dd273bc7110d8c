// berth::sandbox_driver over the fake provider (no processes): the provider concept, the config
// envelope and its messages, lease metadata, the reuse gate and scope record, release/resume/
// destroy by lease policy, realization, execution target and probe — against upstream §2.3.
#include <catch2/catch.hpp>

#ifdef BERTH_TEST_SANDBOX

#include <berth/drivers/sandbox/driver.hpp>
#include <berth/testing/fake_sandbox_provider.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <string>

using berth::testing::fake_sandbox_provider;
using fake_driver = berth::sandbox_driver<fake_sandbox_provider>;

namespace {

// A provider with only the required members plus an expiry, to see the driver's defaults.
struct plain_provider {
    using sandbox_provider_concept = berth::sandbox_provider_tag;
    static constexpr std::string_view name = "plain";
    static constexpr bool supports_reusable_leases = false;
    berth::sandbox_lease acquire(berth::sandbox_acquire_params const& p) const {
        return {.provider_lease_id = "plain-" + p.run_id,
                .metadata = {{"driver", "not-mine"}, {"zone", "eu"}},
                .expires_at = berth::timestamp{} + std::chrono::hours(1)};
    }
    void release(berth::sandbox_lease_params const&) const {}
};

// Claims reuse without resume/destroy: refused by provider_reuse_is_complete.
struct incomplete_reuse_provider {
    using sandbox_provider_concept = berth::sandbox_provider_tag;
    static constexpr std::string_view name = "incomplete";
    static constexpr bool supports_reusable_leases = true;
    berth::sandbox_lease acquire(berth::sandbox_acquire_params const&) const { return {}; }
    void release(berth::sandbox_lease_params const&) const {}
};

// A near miss: resume with the wrong return type is not the resume capability.
struct near_miss_provider : plain_provider {
    static constexpr std::string_view name = "near-miss";
    int resume(berth::sandbox_lease_params const&) const { return 0; }
};

}  // namespace

static_assert(berth::sandbox_provider<plain_provider> && berth::provider_reuse_is_complete<plain_provider>);
static_assert(berth::sandbox_provider<incomplete_reuse_provider> &&
              !berth::provider_reuse_is_complete<incomplete_reuse_provider>);
static_assert(!berth::provider_with_resume<near_miss_provider>);
static_assert(!berth::sandbox_provider<int>);
static_assert(berth::environment_driver<fake_driver> && berth::driver_with_resume<fake_driver> &&
              berth::driver_with_destroy<fake_driver> && berth::driver_with_realize_workspace<fake_driver> &&
              berth::driver_with_execute<fake_driver> && berth::driver_with_probe<fake_driver> &&
              berth::driver_with_execution_target<fake_driver>);
static_assert(fake_driver::family == berth::driver_kind::sandbox && fake_driver::name == std::string_view("sandbox"));
static_assert(fake_driver::claims_name("fake") && !fake_driver::claims_name("bubblewrap"));
static_assert(berth::driver_with_name_claim<fake_driver>);
static_assert(berth::sandbox_driver<fake_sandbox_provider, plain_provider>::hosts("plain") &&
              !berth::sandbox_driver<fake_sandbox_provider, plain_provider>::hosts("bubblewrap"));

namespace {

boost::json::object json(char const* text) { return boost::json::parse(text).as_object(); }

berth::environment sandbox_env(char const* config = R"({"provider": "fake"})") {
    berth::environment e{};
    e.id = "env-s";
    e.company_id = "company-1";
    e.name = "Sandbox";
    e.driver = berth::driver_kind::sandbox;
    e.config = json(config);
    return e;
}

berth::acquire_request request_for(berth::environment const& env, char const* agent = "agent-a",
                                   berth::lease_policy_kind policy = berth::lease_policy_kind::reuse_by_environment) {
    return berth::acquire_request{.env = env,
                                  .company_id = env.company_id,
                                  .agent_id = agent ? berth::nullable<std::string>(std::string(agent))
                                                    : berth::nullable<std::string>(std::nullopt),
                                  .issue_id = "issue-1",
                                  .heartbeat_run_id = "run-1",
                                  .execution_workspace_id = "ew-1",
                                  .execution_workspace_mode = "isolated_workspace",
                                  .lease_policy = policy};
}

// The lease the orchestrator would store for a grant.
berth::environment_lease lease_of(berth::acquire_request const& r, berth::lease_grant const& g,
                                  char const* id = "lease-1") {
    berth::environment_lease l{};
    l.id = id;
    l.company_id = r.company_id;
    l.environment_id = r.env.id;
    l.execution_workspace_id = r.execution_workspace_id;
    l.heartbeat_run_id = r.heartbeat_run_id;
    l.lease_policy = r.lease_policy;
    l.provider = g.provider;
    l.provider_lease_id = g.provider_lease_id;
    l.expires_at = g.expires_at;
    l.metadata = g.metadata;
    return l;
}

template <class F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (std::exception const& e) {
        return e.what();
    }
    return "(no error)";
}

}  // namespace

TEST_CASE("sandbox driver: an environment that is not a sandbox one is refused with upstream's message",
          "[sandbox][sandbox-driver]") {
    fake_driver d;
    auto env = sandbox_env();
    env.driver = berth::driver_kind::ssh;
    CHECK(error_of([&] { (void)d.acquire(request_for(env)); }) ==
          "Expected sandbox environment config for driver \"ssh\".");
    auto const p = d.probe(env);
    CHECK_FALSE(p.ok);
    CHECK(p.summary == "Expected sandbox environment config for driver \"ssh\".");
}

TEST_CASE("sandbox driver: config envelope errors name the field and value", "[sandbox][sandbox-driver]") {
    fake_driver d;
    auto field_of = [&](char const* config) {
        try {
            (void)d.acquire(request_for(sandbox_env(config)));
        } catch (berth::sandbox_config_error const& e) {
            return e.field() + ": " + e.what();
        }
        return std::string("(no error)");
    };
    CHECK(field_of(R"({"provider": "e2b"})") ==
          "provider: Sandbox provider \"e2b\" is not registered as a built-in provider and no matching plugin is "
          "available.");
    CHECK(field_of(R"({"provider": "Bad/Name"})") ==
          "provider: Sandbox provider must match ^[a-z0-9][a-z0-9._-]*$ (got \"Bad/Name\").");
    CHECK(field_of(R"({"provider": 7})") == "provider: Sandbox provider must match ^[a-z0-9][a-z0-9._-]*$ (got 7).");
    CHECK(field_of(R"({"provider": "fake", "reuseLease": "yes"})") ==
          "reuseLease: Sandbox reuseLease must be a boolean (got \"yes\").");
    CHECK(field_of(R"({"provider": "fake", "timeoutMs": 0})") ==
          "timeoutMs: Sandbox timeoutMs must be an integer from 1 to 86400000 (got 0).");
    CHECK(field_of(R"({"provider": "fake", "timeoutMs": 86400001})") ==
          "timeoutMs: Sandbox timeoutMs must be an integer from 1 to 86400000 (got 86400001).");
    CHECK(field_of(R"({"provider": "fake", "streamRunLogs": 1})") ==
          "streamRunLogs: Sandbox streamRunLogs must be a boolean (got 1).");
    // The fake's schema is strict, as upstream's: an unknown key is refused, naming it.
    CHECK(field_of(R"({"provider": "fake", "imagee": "x"})") == "imagee: Unrecognized key(s) in object: 'imagee'");
    CHECK(field_of(R"({"provider": "fake", "image": ""})") == "image: Fake sandbox image must be a non-empty string (got \"\").");
}

TEST_CASE("sandbox driver: a config without provider is upstream's built-in fake, the orchestrator's keys pass",
          "[sandbox][sandbox-driver]") {
    auto const c = berth::parse_sandbox_config(
        json(R"({"reuseLease": true, "leasePolicy": "reuse_by_environment", "leaseTtlSeconds": 60, "image": "x"})"));
    CHECK(c.provider == "fake");
    CHECK(c.reuse_lease);
    CHECK(c.stream_run_logs);
    CHECK_FALSE(c.stream_agent_session_output);
    // `provider` and the orchestrator's keys never reach the provider; the envelope's do.
    CHECK(boost::json::serialize(c.provider_config) == R"({"reuseLease":true,"image":"x"})");

    fake_driver d;
    auto const g = d.acquire(request_for(sandbox_env(R"({"leasePolicy": "ephemeral"})")));
    CHECK(g.provider == "fake");
}

TEST_CASE("sandbox driver: acquire records upstream's lease metadata and the provider's facts",
          "[sandbox][sandbox-driver]") {
    fake_sandbox_provider fake;
    fake_driver d{fake};
    auto const env = sandbox_env(R"({"provider": "fake", "image": "debian:12"})");
    auto const r = request_for(env, "agent-a", berth::lease_policy_kind::ephemeral);
    auto const g = d.acquire(r);
    REQUIRE(g.provider_lease_id);
    CHECK(g.provider == "fake");
    CHECK_FALSE(g.expires_at);
    auto const& md = g.metadata;
    CHECK(md.at("agentId") == "agent-a");
    CHECK(md.at("driver") == "sandbox");
    CHECK(md.at("executionWorkspaceMode") == "isolated_workspace");
    CHECK(md.at("provider") == "fake");
    CHECK(boost::json::serialize(md.at("sandboxConfig")) == R"({"image":"debian:12","provider":"fake"})");
    CHECK(md.at("remoteCwd") == "/workspace");  // the provider's facts, spread at the top level
    CHECK(md.at("shellCommand") == "bash");
    CHECK(md.if_contains(berth::reusable_sandbox_lease_key) == nullptr);  // ephemeral: no scope record
    auto const s = fake.shared_state()->find(*g.provider_lease_id);
    REQUIRE(s);
    CHECK(s->image == "debian:12");
    CHECK(s->run_id == "run-1");
    CHECK_FALSE(s->reusable);

    // Without an agent: no agentId key at all (upstream writes it only when known).
    auto const g2 = d.acquire(request_for(env, nullptr, berth::lease_policy_kind::ephemeral));
    CHECK(g2.metadata.if_contains("agentId") == nullptr);
}

TEST_CASE("sandbox driver: expiresAt comes from the provider, and provider metadata cannot override the driver's keys",
          "[sandbox][sandbox-driver]") {
    berth::sandbox_driver<plain_provider> d;
    auto const g = d.acquire(request_for(sandbox_env(R"({"provider": "plain"})")));
    REQUIRE(g.expires_at);
    CHECK(*g.expires_at == berth::timestamp{} + std::chrono::hours(1));
    CHECK(g.provider_lease_id == "plain-run-1");
    CHECK(g.metadata.at("driver") == "sandbox");
    CHECK(g.metadata.at("zone") == "eu");
    // plain_provider does not offer reuse: never a scope record, whatever the config asks.
    auto const g2 = d.acquire(request_for(sandbox_env(R"({"provider": "plain", "reuseLease": true})")));
    CHECK(g2.metadata.if_contains(berth::reusable_sandbox_lease_key) == nullptr);
}

TEST_CASE("sandbox driver: the reuse gate needs provider support, reuseLease, a run, a workspace, an agent and a reuse policy",
          "[sandbox][sandbox-driver][sandbox-reuse]") {
    fake_sandbox_provider fake;
    fake_driver d{fake};
    auto const env = sandbox_env(R"({"provider": "fake", "reuseLease": true})");
    auto reusable = [&](berth::acquire_request const& r) {
        auto const g = d.acquire(r);
        bool const has_scope = g.metadata.if_contains(berth::reusable_sandbox_lease_key) != nullptr;
        CHECK(has_scope == fake.shared_state()->find(*g.provider_lease_id)->reusable);
        CHECK(has_scope == d.reuse_scope(r).has_value());
        return has_scope;
    };
    CHECK(reusable(request_for(env)));

    auto no_run = request_for(env);  // an ad-hoc probe lease never reuses
    no_run.heartbeat_run_id.reset();
    CHECK_FALSE(reusable(no_run));
    auto no_ew = request_for(env);
    no_ew.execution_workspace_id.reset();
    CHECK_FALSE(reusable(no_ew));
    CHECK_FALSE(reusable(request_for(env, nullptr)));
    CHECK_FALSE(reusable(request_for(sandbox_env(R"({"provider": "fake"})"))));
    CHECK_FALSE(reusable(request_for(env, "agent-a", berth::lease_policy_kind::ephemeral)));
    CHECK(reusable(request_for(env, "agent-a", berth::lease_policy_kind::reuse_by_execution_workspace)));

    auto const g = d.acquire(request_for(env));
    auto const& scope = g.metadata.at(berth::reusable_sandbox_lease_key).as_object();
    CHECK(scope.at("version") == 1);
    CHECK(scope.at("companyId") == "company-1");
    CHECK(scope.at("environmentId") == "env-s");
    CHECK(scope.at("executionWorkspaceId") == "ew-1");
    CHECK(scope.at("agentId") == "agent-a");
    CHECK(scope.at("provider") == "fake");
    CHECK(scope.at("runtimeFingerprint").as_string().size() == 64);
    CHECK(scope.at("leaseFingerprint").as_string().size() == 64);
    // The fingerprint covers the provider config: another image is another fingerprint.
    auto const other = d.reuse_scope(request_for(sandbox_env(R"({"provider": "fake", "reuseLease": true, "image": "alpine"})")));
    REQUIRE(other);
    CHECK(other->at("leaseFingerprint") != scope.at("leaseFingerprint"));
    CHECK(d.reuse_scope(request_for(env))->at("leaseFingerprint") == scope.at("leaseFingerprint"));
}

TEST_CASE("sandbox reuse: candidates are judged as upstream (agent, workspace, status, scope, fingerprints)",
          "[sandbox][sandbox-reuse]") {
    fake_driver d;
    auto const env = sandbox_env(R"({"provider": "fake", "reuseLease": true})");
    auto const r = request_for(env);
    auto const expected = *d.reuse_scope(r);
    auto lease = lease_of(r, d.acquire(r));
    lease.status = berth::lease_status::released;
    lease.heartbeat_run_id = "run-0";
    using v = berth::sandbox_reuse_verdict;
    auto judge = [&](berth::environment_lease const& l, char const* run = "run-1") {
        return berth::judge_sandbox_reuse_candidate(expected, std::string(run), l);
    };
    CHECK(judge(lease) == v::reuse);
    auto retained = lease;
    retained.status = berth::lease_status::retained;
    CHECK(judge(retained) == v::reuse);

    auto active_other_run = lease;
    active_other_run.status = berth::lease_status::active;
    CHECK(judge(active_other_run) == v::skip);  // another run holds it
    CHECK(judge(active_other_run, "run-0") == v::reuse);

    for (auto s : {berth::lease_status::expired, berth::lease_status::failed, berth::lease_status::pending_cleanup}) {
        auto l = lease;
        l.status = s;
        CHECK(judge(l) == v::skip);
    }
    auto other_agent = lease;
    (*other_agent.metadata)["agentId"] = "agent-b";
    CHECK(judge(other_agent) == v::skip);  // never another agent's sandbox, never destroyed for it
    auto other_ew = lease;
    other_ew.execution_workspace_id = "ew-2";
    CHECK(judge(other_ew) == v::skip);
    auto ephemeral = lease;
    ephemeral.lease_policy = berth::lease_policy_kind::ephemeral;
    CHECK(judge(ephemeral) == v::skip);

    // Same agent and workspace, another config: a stale sandbox, destroyed when not in use.
    auto drifted = lease;
    (*drifted.metadata)[berth::reusable_sandbox_lease_key].as_object()["leaseFingerprint"] = "0000";
    CHECK(judge(drifted) == v::destroy);
    auto drifted_active = drifted;
    drifted_active.status = berth::lease_status::active;
    drifted_active.heartbeat_run_id = "run-1";
    CHECK(judge(drifted_active) == v::skip);
    auto no_record = lease;
    no_record.metadata->erase(berth::reusable_sandbox_lease_key);
    CHECK(judge(no_record) == v::destroy);
    auto other_provider = lease;
    (*other_provider.metadata)[berth::reusable_sandbox_lease_key].as_object()["provider"] = "e2b";
    CHECK(judge(other_provider) == v::destroy);

    // Another policy's lease is not a candidate (upstream lists reuse_by_environment leases only).
    auto by_ew = lease;
    by_ew.lease_policy = berth::lease_policy_kind::reuse_by_execution_workspace;
    CHECK(judge(by_ew) == v::skip);

    // A legacy record (no leaseFingerprint) matches on the runtime fingerprint only for an
    // active lease of the same run.
    auto legacy = lease;
    (*legacy.metadata)[berth::reusable_sandbox_lease_key].as_object().erase("leaseFingerprint");
    CHECK(judge(legacy) == v::destroy);
    legacy.status = berth::lease_status::active;
    legacy.heartbeat_run_id = "run-1";
    CHECK(judge(legacy) == v::reuse);
}

TEST_CASE("sandbox reuse: under reuse_by_execution_workspace every agent of the workspace shares the sandbox",
          "[sandbox][sandbox-reuse]") {
    fake_driver d;
    auto const env = sandbox_env(R"({"provider": "fake", "reuseLease": true})");
    auto const policy = berth::lease_policy_kind::reuse_by_execution_workspace;
    auto const ra = request_for(env, "agent-a", policy);
    auto lease = lease_of(ra, d.acquire(ra));
    lease.status = berth::lease_status::released;
    auto const rb = request_for(env, "agent-b", policy);
    auto const scope_b = *d.reuse_scope(rb);
    CHECK(scope_b.at("leasePolicy") == "reuse_by_execution_workspace");
    CHECK(berth::judge_sandbox_reuse_candidate(scope_b, rb.heartbeat_run_id, lease) == berth::sandbox_reuse_verdict::reuse);
    auto other_ew = request_for(env, "agent-b", policy);
    other_ew.execution_workspace_id = "ew-2";
    CHECK(berth::judge_sandbox_reuse_candidate(*d.reuse_scope(other_ew), other_ew.heartbeat_run_id, lease) ==
          berth::sandbox_reuse_verdict::skip);
    // An agent-scoped request never takes a workspace-scoped lease, nor the reverse.
    auto const agent_scoped = request_for(env, "agent-a");
    CHECK(berth::judge_sandbox_reuse_candidate(*d.reuse_scope(agent_scoped), agent_scoped.heartbeat_run_id, lease) ==
          berth::sandbox_reuse_verdict::skip);
}

TEST_CASE("sandbox driver: release by status and policy", "[sandbox][sandbox-driver][sandbox-reuse]") {
    fake_sandbox_provider fake;
    auto const state = fake.shared_state();
    fake_driver d{fake};
    auto const env = sandbox_env(R"({"provider": "fake", "reuseLease": true})");

    SECTION("an ephemeral lease's sandbox goes away; cleanup success") {
        auto const r = request_for(env, "agent-a", berth::lease_policy_kind::ephemeral);
        auto const l = lease_of(r, d.acquire(r));
        auto const out = d.release(env, l, berth::lease_status::released);
        CHECK(out.cleanup_status == berth::cleanup_status::success);
        CHECK_FALSE(out.failure_reason);
        CHECK(state->live().empty());
    }
    SECTION("a failed run's lease: failure reason adapter_or_run_failure") {
        auto const r = request_for(env, "agent-a", berth::lease_policy_kind::ephemeral);
        auto const l = lease_of(r, d.acquire(r));
        auto const out = d.release(env, l, berth::lease_status::failed);
        CHECK(out.cleanup_status == berth::cleanup_status::success);
        CHECK(out.failure_reason == "adapter_or_run_failure");
    }
    SECTION("a reusable lease's release keeps its sandbox; released expired, it is destroyed as lease_expired") {
        auto const r = request_for(env);
        auto const l = lease_of(r, d.acquire(r));
        CHECK(d.release(env, l, berth::lease_status::released).cleanup_status == berth::cleanup_status::success);
        CHECK(state->live().count(*l.provider_lease_id) == 1);
        CHECK(d.release(env, l, berth::lease_status::released).cleanup_status == berth::cleanup_status::success);
        CHECK(state->live().count(*l.provider_lease_id) == 1);
        auto const out = d.release(env, l, berth::lease_status::expired);
        CHECK(out.cleanup_status == berth::cleanup_status::success);
        CHECK(out.failure_reason == "lease_expired");
        CHECK(state->live().empty());
        CHECK(state->calls().back() == "destroy:" + *l.provider_lease_id);
    }
    SECTION("a reusable lease that ends failed is destroyed: a failed lease is never resumed, keeping it would leak") {
        auto const r = request_for(env);
        auto const l = lease_of(r, d.acquire(r));
        auto const out = d.release(env, l, berth::lease_status::failed);
        CHECK(out.cleanup_status == berth::cleanup_status::success);
        CHECK(out.failure_reason == "adapter_or_run_failure");
        CHECK(state->live().empty());
    }
    SECTION("retained (retain_on_failure) keeps the sandbox and calls nothing") {
        auto const r = request_for(env, "agent-a", berth::lease_policy_kind::retain_on_failure);
        auto const l = lease_of(r, d.acquire(r));
        auto const calls = state->calls().size();
        auto const out = d.release(env, l, berth::lease_status::retained);
        CHECK_FALSE(out.cleanup_status);
        CHECK(out.failure_reason == "adapter_or_run_failure");
        CHECK(state->calls().size() == calls);
        CHECK(state->live().count(*l.provider_lease_id) == 1);
    }
    SECTION("a provider failure propagates (the orchestrator records cleanup failed)") {
        auto const r = request_for(env, "agent-a", berth::lease_policy_kind::ephemeral);
        auto const l = lease_of(r, d.acquire(r));
        state->fail_next("release", "provider down");
        CHECK(error_of([&] { (void)d.release(env, l, berth::lease_status::released); }) == "provider down");
    }
    SECTION("release works from the lease's metadata after the environment's config changed") {
        auto const r = request_for(env, "agent-a", berth::lease_policy_kind::ephemeral);
        auto const l = lease_of(r, d.acquire(r));
        auto changed = env;
        changed.config = json(R"({"provider": "gone-provider"})");
        CHECK(d.release(changed, l, berth::lease_status::released).cleanup_status == berth::cleanup_status::success);
        CHECK(state->live().empty());
    }
}

TEST_CASE("sandbox driver: resume and destroy", "[sandbox][sandbox-driver][sandbox-reuse]") {
    fake_sandbox_provider fake;
    auto const state = fake.shared_state();
    fake_driver d{fake};
    auto const env = sandbox_env(R"({"provider": "fake", "reuseLease": true})");
    auto const r = request_for(env);
    auto const l = lease_of(r, d.acquire(r));
    (void)d.release(env, l, berth::lease_status::released);

    auto const g = d.resume(env, l);
    CHECK(g.provider_lease_id == l.provider_lease_id);
    CHECK(g.provider == "fake");
    CHECK(g.metadata.at("resumed") == true);  // the provider's facts are merged in
    CHECK(g.metadata.at(berth::reusable_sandbox_lease_key) == l.metadata->at(berth::reusable_sandbox_lease_key));
    CHECK(state->find(*l.provider_lease_id)->resumes == 1);

    state->fail_next("resume", "sandbox vanished");
    CHECK(error_of([&] { (void)d.resume(env, l); }) == "sandbox vanished");
    state->resume_without_id_next();
    CHECK(error_of([&] { (void)d.resume(env, l); }) ==
          "Sandbox provider \"fake\" returned no provider lease id when resuming lease \"lease-1\".");

    state->fail_next("destroy", "api 500");
    CHECK(error_of([&] { (void)d.destroy(env, l); }) == "api 500");
    CHECK(state->live().count(*l.provider_lease_id) == 1);
    auto const out = d.destroy(env, l);
    CHECK(out.cleanup_status == berth::cleanup_status::success);
    CHECK(state->live().empty());

    berth::sandbox_driver<plain_provider> plain;
    auto const pe = sandbox_env(R"({"provider": "plain"})");
    auto const pr = request_for(pe);
    auto const pl = lease_of(pr, plain.acquire(pr));
    CHECK(error_of([&] { (void)plain.resume(pe, pl); }) == "Sandbox provider \"plain\" does not support lease resume.");
}

TEST_CASE("sandbox driver: realization, execution and the execution target", "[sandbox][sandbox-driver]") {
    fake_sandbox_provider fake;
    fake_driver d{fake};
    auto const env = sandbox_env(R"({"provider": "fake", "timeoutMs": 5000, "streamRunLogs": false})");
    auto const r = request_for(env, "agent-a", berth::lease_policy_kind::ephemeral);
    auto const l = lease_of(r, d.acquire(r));

    auto const w = d.realize_workspace({.env = env, .lease = l, .local_path = "/srv/ew-1", .remote_path = std::nullopt,
                                        .mode = "isolated_workspace", .metadata = {}});
    CHECK(w.cwd == "/workspace");  // the lease's remoteCwd
    auto const& rec = w.metadata.at("workspaceRealization").as_object();
    CHECK(rec.at("version") == 1);
    CHECK(rec.at("driver") == "sandbox");
    CHECK(rec.at("transport") == "sandbox");
    CHECK(rec.at("provider") == "fake");
    CHECK(rec.at("sync") == "sandbox_archive_upload_download");
    CHECK(rec.at("cwd") == "/workspace");
    CHECK(rec.at("local").at("path") == "/srv/ew-1");
    CHECK(rec.at("remote").at("path") == "/workspace");
    CHECK(w.metadata.if_contains("sync") == nullptr);

    auto const res = d.execute(env, l, {.program = "echo", .args = {"hi"}});
    CHECK(res.stdout_text == "echo hi");

    auto const t = d.execution_target(env, l);
    CHECK(t.kind == "remote");
    CHECK(t.transport == "sandbox");
    CHECK(t.environment_id == "env-s");
    CHECK(t.lease_id == "lease-1");
    CHECK(t.remote_cwd == "/workspace");
    CHECK(boost::json::serialize(t.spec) ==
          R"({"providerKey":"fake","shellCommand":"bash","remoteCwd":"/workspace","timeoutMs":5000,)"
          R"("streamRunLogs":false,"streamAgentSessionOutput":false})");

    CHECK(d.supports_sync(env, l));
    (void)d.sync_in(env, l, "/srv/ew-1");
    auto unsupported = l;
    (*unsupported.metadata)["nativeFileSyncUnsupported"] = true;
    CHECK_FALSE(d.supports_sync(env, unsupported));

    // A provider without realize/execute: cwd = remoteCwd ?? remote path ?? local path.
    berth::sandbox_driver<plain_provider> plain;
    auto const pe = sandbox_env(R"({"provider": "plain"})");
    auto const pr = request_for(pe);
    auto const pl = lease_of(pr, plain.acquire(pr));
    auto const pw = plain.realize_workspace({.env = pe, .lease = pl, .local_path = "/srv/ew-1",
                                             .remote_path = std::nullopt, .mode = std::nullopt, .metadata = {}});
    CHECK(pw.cwd == "/srv/ew-1");
    CHECK(pw.metadata.at("workspaceRealization").at("sync") == "provider_defined");
    CHECK(error_of([&] { (void)plain.execute(pe, pl, {.program = "true"}); }) ==
          "Sandbox provider \"plain\" does not support direct command execution.");
    CHECK_FALSE(plain.supports_sync(pe, pl));
    CHECK(error_of([&] { (void)plain.sync_in(pe, pl, "/x"); }) ==
          "Environment driver \"sandbox\" does not support native file sync.");
    auto const pt = plain.execution_target(pe, pl);
    CHECK(pt.remote_cwd == berth::default_sandbox_remote_cwd);
    CHECK(pt.spec.at("shellCommand").is_null());
    CHECK(pt.spec.at("streamRunLogs") == true);  // upstream: on unless the config opts out
}

TEST_CASE("sandbox driver: probe", "[sandbox][sandbox-driver]") {
    fake_driver d;
    auto const ok = d.probe(sandbox_env(R"({"provider": "fake"})"));
    CHECK(ok.ok);
    CHECK(ok.summary == "Fake sandbox provider is ready.");
    CHECK(ok.details.at("provider") == "fake");
    CHECK(ok.details.at("image") == "ubuntu:24.04");
    auto const bad = d.probe(sandbox_env(R"({"provider": "nope"})"));
    CHECK_FALSE(bad.ok);
    CHECK(bad.summary ==
          "Sandbox provider \"nope\" is not registered as a built-in provider and no matching plugin is available.");
    berth::sandbox_driver<plain_provider> plain;
    CHECK(plain.probe(sandbox_env(R"({"provider": "plain"})")).summary == "Sandbox provider \"plain\" is ready.");
}

#endif  // BERTH_TEST_SANDBOX
