// berth::plugin_driver (upstream §2.4) with a real Node worker written with upstream's SDK
// (tests/plugins/test-plugin.mjs), alone and through the run orchestrator.
#include <berth/berth.hpp>
#include <berth/drivers/plugin.hpp>
#include <berth/stores/memory.hpp>
#include <berth/testing/manual_clock.hpp>

#include "plugin_fixture.hpp"

#include <catch2/catch.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <chrono>
#include <string>
#include <vector>

using namespace berth;
namespace json = boost::json;

namespace {

using plugin_stack = stack<drivers<plugin_driver>, policies<ephemeral>, memory_store, testing::manual_clock>;

json::object manifest(std::string const& id = "berth.test") {
    return json::object{{"id", id},
                        {"apiVersion", 1},
                        {"version", "0.0.1"},
                        {"environmentDrivers",
                         json::array{json::object{{"driverKey", "vm"}, {"kind", "environment_driver"},
                                                  {"displayName", "Test VM"}}}}};
}

std::shared_ptr<plugins::registry> registry_with(std::string const& worker = "test-plugin.mjs",
                                                 std::string const& key = "berth.test") {
    auto r = std::make_shared<plugins::registry>();
    plugins::worker_options o;
    o.command = test::plugin_worker(worker);
    o.plugin_id = key;
    o.manifest = manifest(key);
    r->add(std::move(o));
    return r;
}

json::object plugin_config(std::string key = "berth.test", std::string driver = "vm", json::object config = {}) {
    return json::object{{"pluginKey", key}, {"driverKey", driver}, {"driverConfig", config}};
}

struct fixture {
    std::shared_ptr<plugins::registry> plugins = registry_with();
    plugin_driver driver{plugins};
    memory_store store;
    testing::manual_clock clock;
    run_orchestrator<plugin_stack> orch{store, clock, driver};

    environment make_env(json::object config = plugin_config()) {
        return store.create_environment(new_environment{.company_id = "acme",
                                                        .name = "vm-box",
                                                        .driver = driver_kind::plugin,
                                                        .config = std::move(config)},
                                        clock.now());
    }

    /// Every call the worker received so far: [{method, params}].
    json::array worker_calls(environment const& env, environment_lease const& lease) {
        auto const r = driver.execute(env, lease, {.program = "calls"});
        return json::parse(r.stdout_text).as_array();
    }

    static json::object const* last(json::array const& calls, std::string_view method) {
        json::object const* found = nullptr;
        for (auto const& c : calls)
            if (c.as_object().at("method").as_string() == method) found = &c.as_object().at("params").as_object();
        return found;
    }
};

template <class F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (std::exception const& e) {
        return e.what();
    }
    FAIL("no exception");
    return {};
}

}  // namespace

TEST_CASE("plugin driver: a run's lease lifecycle through the orchestrator", "[plugins][plugin-driver]") {
    BERTH_REQUIRE_PLUGIN_SDK();
    fixture f;
    auto const env = f.make_env(plugin_config("berth.test", "vm", json::object{{"size", "small"}}));
    auto const acq = f.orch.acquire_for_run({.company_id = "acme",
                                             .environment_id = env.id,
                                             .agent_id = std::string("agent-1"),
                                             .heartbeat_run_id = "run-1",
                                             .issue_id = "issue-7",
                                             .execution_workspace_id = "ew-1",
                                             .execution_workspace_mode = "isolated_workspace",
                                             .adapter_type = "claude_local"});
    CHECK(acq.lease.provider == "plugin:berth.test:vm");
    CHECK(acq.lease.provider_lease_id == "lease-run-1");
    CHECK(acq.lease.lease_policy == lease_policy_kind::ephemeral);
    // The worker grants no expiry: the environment's default TTL bounds the lease (issue 15).
    REQUIRE(acq.lease.expires_at);
    CHECK(*acq.lease.expires_at - acq.lease.acquired_at == std::chrono::seconds(detail::default_lease_ttl_seconds));
    auto const& md = *acq.lease.metadata;
    CHECK(md.at("pluginKey").as_string() == "berth.test");
    CHECK(md.at("pluginId").as_string() == "berth.test");
    CHECK(md.at("driverKey").as_string() == "vm");
    CHECK(md.at("driver").as_string() == "plugin");
    CHECK(md.at("agentId").as_string() == "agent-1");
    CHECK(md.at("providerMetadata").as_object().at("remoteCwd").as_string() == "/work");

    // The worker got upstream's acquire payload.
    auto calls = f.worker_calls(env, acq.lease);
    auto const* acquire = fixture::last(calls, "environmentAcquireLease");
    REQUIRE(acquire);
    CHECK(json::serialize(*acquire) ==
          json::serialize(json::object{{"driverKey", "vm"},
                                       {"companyId", "acme"},
                                       {"environmentId", env.id},
                                       {"issueId", "issue-7"},
                                       {"config", json::object{{"size", "small"}}},
                                       {"runId", "run-1"},
                                       {"workspaceMode", "isolated_workspace"},
                                       {"agentId", "agent-1"},
                                       {"executionWorkspaceId", "ew-1"},
                                       {"adapterType", "claude_local"}}));

    // No realize from the orchestrator: the cwd is the workspace's, the worker is not asked.
    auto const real = f.orch.realize_for_run({.env = acq.env, .lease = acq.lease, .workspace_cwd = "/w"});
    CHECK(real.cwd == "/w");
    CHECK(real.target->transport == "plugin");
    CHECK(real.target->remote_cwd == "/work");

    // Execute, streamed, through the orchestrator (fenced by the lease).
    std::string streamed;
    auto const r = f.orch.execute(acq.env, real.lease,
                                  {.program = "sh",
                                   .args = {"-c", "echo out; echo err >&2; exit 3"},
                                   .env = {{"GREETING", "hi"}},
                                   .on_output = [&](output_stream s, std::string_view c) {
                                       streamed += (s == output_stream::stdout_stream ? "1:" : "2:") + std::string(c);
                                   }});
    CHECK(r.exit_code == 3);
    CHECK(r.stdout_text == "out\n");
    CHECK(r.stderr_text == "err\n");
    CHECK_THAT(streamed, Catch::Contains("1:out\n") && Catch::Contains("2:err\n"));

    auto const released = f.orch.release_for_run({.company_id = "acme", .agent_id = std::string("agent-1"),
                                                  .heartbeat_run_id = "run-1"});
    REQUIRE(released.errors.empty());
    REQUIRE(released.released.size() == 1);
    CHECK(released.released[0].status == lease_status::released);

    calls = f.worker_calls(env, acq.lease);
    CHECK(fixture::last(calls, "environmentRealizeWorkspace") == nullptr);
    auto const* release = fixture::last(calls, "environmentReleaseLease");
    REQUIRE(release);
    CHECK(release->at("providerLeaseId").as_string() == "lease-run-1");
    CHECK(release->at("config").as_object().at("size").as_string() == "small");
    CHECK(release->at("leaseMetadata").as_object().at("pluginKey").as_string() == "berth.test");
    auto const* execute = fixture::last(calls, "environmentExecute");
    REQUIRE(execute);
    CHECK(execute->at("lease").as_object().at("providerLeaseId").as_string() == "lease-run-1");
}

TEST_CASE("plugin driver: a null agent and workspace are omitted from the payload, runId is fresh",
          "[plugins][plugin-driver]") {
    BERTH_REQUIRE_PLUGIN_SDK();
    fixture f;
    auto const env = f.make_env();
    auto const grant = f.driver.acquire({.env = env, .company_id = "acme", .agent_id = std::nullopt});
    environment_lease lease{.id = "l1", .company_id = "acme", .environment_id = env.id,
                            .provider = grant.provider, .provider_lease_id = grant.provider_lease_id,
                            .metadata = grant.metadata};
    auto const calls = f.worker_calls(env, lease);
    auto const* acquire = fixture::last(calls, "environmentAcquireLease");
    REQUIRE(acquire);
    CHECK_FALSE(acquire->contains("agentId"));
    CHECK_FALSE(acquire->contains("executionWorkspaceId"));
    CHECK_FALSE(acquire->contains("workspaceMode"));
    CHECK_FALSE(acquire->contains("adapterType"));
    CHECK(acquire->at("issueId").is_null());
    auto const run_id = std::string(acquire->at("runId").as_string());
    CHECK(run_id.size() == 36);  // a UUID
    CHECK(grant.provider_lease_id == "lease-" + run_id);
    CHECK_FALSE(grant.metadata.contains("agentId"));
}

TEST_CASE("plugin driver: expiresAt is parsed, an invalid one is null", "[plugins][plugin-driver]") {
    BERTH_REQUIRE_PLUGIN_SDK();
    fixture f;
    auto expiring = [&](json::value v) {
        auto const env = f.make_env(plugin_config("berth.test", "vm", json::object{{"expiresAt", v}}));
        return f.driver.acquire({.env = env, .company_id = "acme", .agent_id = std::nullopt}).expires_at;
    };
    CHECK(expiring("2030-01-02T03:04:05.678Z") == parse_iso8601("2030-01-02T03:04:05.678Z"));
    CHECK(expiring("2030-01-02T05:04:05+02:00") == parse_iso8601("2030-01-02T03:04:05Z"));
    CHECK_FALSE(expiring("next tuesday"));
    CHECK_FALSE(expiring(nullptr));

    auto const minimal = registry_with("minimal-plugin.mjs");
    plugin_driver d{minimal};
    auto const env = f.make_env();
    auto const g = d.acquire({.env = env, .company_id = "acme", .agent_id = std::nullopt});
    CHECK_FALSE(g.expires_at);  // "not a date"
    CHECK_FALSE(g.provider_lease_id);
}

TEST_CASE("plugin driver: resolution errors are upstream's", "[plugins][plugin-driver]") {
    BERTH_REQUIRE_PLUGIN_SDK();
    fixture f;
    auto acquire = [&](json::object config) {
        return error_of([&] {
            (void)f.driver.acquire({.env = f.make_env(std::move(config)), .company_id = "acme", .agent_id = std::nullopt});
        });
    };
    CHECK(acquire(plugin_config("nope", "vm")) == "Plugin environment driver \"nope:vm\" is not ready.");
    CHECK(acquire(plugin_config("berth.test", "tpu")) ==
          "Plugin \"berth.test\" does not declare environment driver \"tpu\".");
    CHECK_THAT(acquire(json::object{{"pluginKey", "berth.test"}, {"driverKey", "Bad Key"}}),
               Catch::StartsWith("Unexpected environment.config.driverKey value: \"Bad Key\""));

    f.plugins->set_status("berth.test", "disabled");
    CHECK(acquire(plugin_config()) == "Plugin environment driver \"berth.test:vm\" is not ready.");

    SECTION("a worker that cannot start: no running worker, with the cause nested") {
        auto broken = std::make_shared<plugins::registry>();
        broken->add({.command = {.program = "/nonexistent/worker"}, .plugin_id = "berth.test", .manifest = manifest()});
        plugin_driver d{broken};
        try {
            (void)d.acquire({.env = f.make_env(), .company_id = "acme", .agent_id = std::nullopt});
            FAIL("no exception");
        } catch (berth::error const& e) {
            CHECK(std::string(e.what()) == "Plugin environment driver \"berth.test:vm\" has no running worker.");
            try {
                std::rethrow_if_nested(e);
                FAIL("no nested cause");
            } catch (plugins::rpc_error const& cause) {
                CHECK(cause.worker_unavailable());
            }
        }
    }
    SECTION("through the orchestrator: the run error carries the message") {
        auto const env = f.make_env(plugin_config("nope", "vm"));
        try {
            (void)f.orch.acquire_for_run({.company_id = "acme", .environment_id = env.id,
                                          .agent_id = std::nullopt, .heartbeat_run_id = "run-9"});
            FAIL("no exception");
        } catch (environment_run_error const& e) {
            CHECK_THAT(e.what(), Catch::Contains("Plugin environment driver \"nope:vm\" is not ready."));
        }
    }
}

TEST_CASE("plugin driver: release, resume and destroy resolve the plugin from the lease", "[plugins][plugin-driver]") {
    BERTH_REQUIRE_PLUGIN_SDK();
    fixture f;
    auto const env = f.make_env(plugin_config("berth.test", "vm", json::object{{"size", "small"}}));
    auto const grant = f.driver.acquire({.env = env, .company_id = "acme", .agent_id = std::string("a1")});
    environment_lease lease{.id = "l1", .company_id = "acme", .environment_id = env.id,
                            .provider = grant.provider, .provider_lease_id = grant.provider_lease_id,
                            .metadata = grant.metadata};

    SECTION("the environment now names another plugin: the lease's plugin is used, with config {}") {
        auto moved = env;
        moved.config = plugin_config("other.plugin", "vm", json::object{{"size", "huge"}});
        (void)f.driver.release(moved, lease, lease_status::released);
        auto const calls1 = f.worker_calls(env, lease);
        auto const* release = fixture::last(calls1, "environmentReleaseLease");
        REQUIRE(release);
        CHECK(release->at("config").as_object().empty());
        CHECK(release->at("driverKey").as_string() == "vm");
    }
    SECTION("no driver key anywhere") {
        auto local = env;
        local.driver = driver_kind::local;
        local.config = {};
        auto bare = lease;
        bare.metadata = json::object{{"pluginKey", "berth.test"}};
        CHECK(error_of([&] { (void)f.driver.release(local, bare, lease_status::released); }) ==
              "Plugin environment driver \"berth.test:unknown\" is missing a driver key.");
    }
    SECTION("resume") {
        auto const resumed = f.driver.resume(env, lease);
        CHECK(resumed.provider_lease_id == lease.provider_lease_id);
        CHECK(resumed.provider == "plugin:berth.test:vm");
        auto const calls2 = f.worker_calls(env, lease);
        auto const* resume = fixture::last(calls2, "environmentResumeLease");
        REQUIRE(resume);
        CHECK(resume->at("providerLeaseId").as_string() == *lease.provider_lease_id);

        auto no_id = lease;
        no_id.provider_lease_id.reset();
        CHECK(error_of([&] { (void)f.driver.resume(env, no_id); }) ==
              "Plugin environment lease \"l1\" does not have a provider lease id to resume.");
        auto gone = lease;
        gone.provider_lease_id = "gone-1";
        CHECK(error_of([&] { (void)f.driver.resume(env, gone); }) == "cannot resume gone-1");
    }
    SECTION("destroy: the worker is told, the reason is lease_destroyed") {
        auto const out = f.driver.destroy(env, lease);
        CHECK(out.failure_reason == "lease_destroyed");
        auto const calls = f.worker_calls(env, lease);
        CHECK(fixture::last(calls, "environmentDestroyLease"));
    }
    SECTION("a worker without release: its METHOD_NOT_IMPLEMENTED reaches the caller") {
        plugin_driver d{registry_with("minimal-plugin.mjs")};
        try {
            (void)d.release(env, lease, lease_status::released);
            FAIL("no exception");
        } catch (plugins::rpc_error const& e) {
            CHECK(e.code() == plugins::codes::method_not_implemented);
        }
    }
}

TEST_CASE("plugin driver: probe, realize on the worker, sync when advertised", "[plugins][plugin-driver]") {
    BERTH_REQUIRE_PLUGIN_SDK();
    fixture f;
    auto const env = f.make_env();
    auto const p = f.orch.probe(env);
    CHECK(p.ok);
    CHECK(p.summary == "probed vm");
    auto const bad = f.orch.probe(f.make_env(plugin_config("nope", "vm")));
    CHECK_FALSE(bad.ok);
    CHECK(bad.summary == "Plugin environment driver \"nope:vm\" is not ready.");

    auto const grant = f.driver.acquire({.env = env, .company_id = "acme", .agent_id = std::nullopt});
    environment_lease lease{.id = "l1", .company_id = "acme", .environment_id = env.id,
                            .provider = grant.provider, .provider_lease_id = grant.provider_lease_id,
                            .metadata = grant.metadata};
    auto const w = f.driver.realize_on_worker({.env = env, .lease = lease, .local_path = "/src"});
    CHECK(w.cwd == "/work/realized");
    CHECK(w.metadata.at("realizedWith").as_object().at("localPath").as_string() == "/src");

    CHECK(f.driver.supports_sync(env, lease));
    auto job = lease;
    job.metadata->at("providerMetadata").as_object()["backend"] = "job";
    CHECK_FALSE(f.driver.supports_sync(env, job));
    json::array ops{json::object{{"operationId", "op1"}, {"files", json::array{}}}};
    CHECK(f.driver.sync_in(env, lease, ops).as_object().at("ok").as_bool());
    CHECK(f.driver.sync_out(env, lease, ops).as_object().at("ok").as_bool());
    auto const calls3 = f.worker_calls(env, lease);
    auto const* sync = fixture::last(calls3, "environmentSyncIn");
    REQUIRE(sync);
    CHECK(sync->at("operations").as_array().size() == 1);

    plugin_driver minimal{registry_with("minimal-plugin.mjs")};
    CHECK_FALSE(minimal.supports_sync(env, lease));
}
