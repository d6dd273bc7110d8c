// Plugin-backed sandbox providers (upstream §2.3 steps 2 and 8): berth::plugin_sandbox_provider in
// berth::sandbox_driver, with real Node workers written with upstream's SDK
// (tests/plugins/sandbox-plugin.mjs), through the run orchestrator.
#include <catch2/catch.hpp>

#ifdef BERTH_TEST_SANDBOX

#include <berth/berth.hpp>
#include <berth/drivers/plugin.hpp>
#include <berth/drivers/sandbox.hpp>
#include <berth/stores/memory.hpp>
#include <berth/testing/manual_clock.hpp>

#include "plugin_fixture.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <unistd.h>  // mkdtemp

using namespace berth;
namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

using sbx_a = plugin_sandbox_provider<"sbx-a">;
using sbx_b = plugin_sandbox_provider<"sbx-b">;
using sbx_driver = sandbox_driver<sbx_a, sbx_b>;
using sbx_stack = stack<drivers<sbx_driver>, policies<ephemeral, reuse_by_environment>, memory_store,
                        testing::manual_clock>;

struct temp_dir {
    fs::path path;
    temp_dir() {
        std::string t = (fs::temp_directory_path() / "berth-sbx-XXXXXX").string();
        REQUIRE(::mkdtemp(t.data()) != nullptr);
        path = t;
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    temp_dir(temp_dir const&) = delete;
    temp_dir& operator=(temp_dir const&) = delete;
};

json::object sandbox_manifest(std::string const& plugin_key, std::string const& provider, json::object extra = {}) {
    json::object d{{"driverKey", provider}, {"kind", "sandbox_provider"}, {"displayName", "Test sandbox " + provider}};
    for (auto const& kv : extra) d[kv.key()] = kv.value();
    return json::object{{"id", plugin_key},
                        {"apiVersion", 1},
                        {"version", "0.0.1"},
                        {"environmentDrivers", json::array{std::move(d)}}};
}

/// Installs sandbox-plugin.mjs as plugin `key`, declaring sandbox provider `provider`, its sandboxes under `root`.
std::shared_ptr<plugins::worker_host> add_sandbox_plugin(plugins::registry& r, std::string const& key,
                                                         std::string const& provider, fs::path const& root,
                                                         json::object manifest_extra = {}, int fail_starts = 0) {
    plugins::worker_options o;
    o.command = test::plugin_worker("sandbox-plugin.mjs");
    o.command.env["BERTH_TEST_SBX_ROOT"] = root.string();
    if (fail_starts > 0) o.command.env["BERTH_TEST_SBX_FAIL_STARTS"] = std::to_string(fail_starts);
    o.plugin_id = key;
    o.manifest = sandbox_manifest(key, provider, std::move(manifest_extra));
    return r.add(std::move(o));
}

/// Every call a sandbox plugin received so far: [{method, params}].
json::array calls_of(fs::path const& root) {
    json::array out;
    std::ifstream in(root / "calls.jsonl");
    for (std::string line; std::getline(in, line);)
        if (!line.empty()) out.push_back(json::parse(line));
    return out;
}
std::vector<json::object> calls_named(fs::path const& root, std::string_view method) {
    std::vector<json::object> out;
    for (auto const& c : calls_of(root))
        if (c.as_object().at("method").as_string() == method) out.push_back(c.as_object().at("params").as_object());
    return out;
}
/// The sandboxes that exist now (directories under root/sandboxes).
std::set<std::string> live(fs::path const& root) {
    std::set<std::string> out;
    std::error_code ec;
    for (auto const& e : fs::directory_iterator(root / "sandboxes", ec)) out.insert(e.path().filename().string());
    return out;
}

nullable<std::string> agent(char const* a) { return nullable<std::string>(std::string(a)); }

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

struct fixture {
    temp_dir root_a, root_b;
    std::shared_ptr<plugins::registry> plugins = std::make_shared<plugins::registry>();
    std::shared_ptr<plugins::worker_host> worker_a =
        add_sandbox_plugin(*plugins, "berth.sbx-a", "sbx-a", root_a.path, json::object{{"supportsReusableLeases", true}});
    std::shared_ptr<plugins::worker_host> worker_b = add_sandbox_plugin(*plugins, "berth.sbx-b", "sbx-b", root_b.path);
    memory_store store;
    testing::manual_clock clock;
    run_orchestrator<sbx_stack> orch{store, clock, sbx_driver{sbx_a{plugins}, sbx_b{plugins}}};
    int runs = 0;

    ~fixture() { plugins->stop_all(); }

    environment make_env(json::object config) {
        return store.create_environment(new_environment{.company_id = "acme",
                                                        .name = "sbx-" + std::to_string(++runs),
                                                        .driver = driver_kind::sandbox,
                                                        .config = std::move(config)},
                                        clock.now());
    }
    acquisition acquire(environment const& env, nullable<std::string> who, std::optional<std::string> ew = "ew-1") {
        clock.advance(std::chrono::seconds(1));
        return orch.acquire_for_run({.company_id = "acme",
                                     .environment_id = env.id,
                                     .agent_id = std::move(who),
                                     .heartbeat_run_id = "run-" + std::to_string(++runs),
                                     .issue_id = "issue-1",
                                     .execution_workspace_id = std::move(ew)});
    }
    environment_lease end(acquisition const& a, run_outcome outcome = run_outcome::succeeded) {
        auto const r = orch.release_for_run({.company_id = "acme",
                                             .agent_id = nullable<std::string>(std::nullopt),
                                             .heartbeat_run_id = *a.lease.heartbeat_run_id,
                                             .outcome = outcome});
        REQUIRE(r.errors.empty());
        REQUIRE(r.released.size() == 1);
        return r.released[0];
    }
    environment_lease lease(std::string const& id) { return *store.get_lease(id); }
};

}  // namespace

TEST_CASE("plugin sandbox provider: a run's lifecycle through the orchestrator", "[plugins][plugin-sandbox]") {
    BERTH_REQUIRE_PLUGIN_SDK();
    fixture f;
    auto const env = f.make_env({{"provider", "sbx-a"}, {"region", "eu"}, {"timeoutMs", 20000}});
    auto const acq = f.orch.acquire_for_run({.company_id = "acme",
                                             .environment_id = env.id,
                                             .agent_id = agent("agent-1"),
                                             .heartbeat_run_id = "run-1",
                                             .issue_id = "issue-7",
                                             .execution_workspace_id = "ew-1",
                                             .execution_workspace_mode = "isolated_workspace",
                                             .adapter_type = "codex_local"});
    auto const& lease = acq.lease;
    CHECK(lease.provider == "sbx-a");
    REQUIRE(lease.provider_lease_id);
    auto const id = *lease.provider_lease_id;
    CHECK(id.rfind("sbx-a-", 0) == 0);
    CHECK(lease.lease_policy == lease_policy_kind::ephemeral);
    CHECK(live(f.root_a.path) == std::set<std::string>{id});
    auto const& md = *lease.metadata;
    CHECK(md.at("driver").as_string() == "sandbox");
    CHECK(md.at("provider").as_string() == "sbx-a");
    CHECK(md.at("pluginId").as_string() == "berth.sbx-a");
    CHECK(md.at("pluginKey").as_string() == "berth.sbx-a");
    CHECK(md.at("sandboxProviderPlugin").as_bool());
    CHECK(md.at("agentId").as_string() == "agent-1");
    CHECK(md.at("remoteCwd").as_string() == (f.root_a.path / "sandboxes" / id).string());
    CHECK(md.at("sandboxName").as_string() == id);

    // Upstream's acquire payload: the provider's config without `provider`, the optional fields present.
    auto const acquires = calls_named(f.root_a.path, "environmentAcquireLease");
    REQUIRE(acquires.size() == 1);
    json::object const expected{{"driverKey", "sbx-a"},
                                {"companyId", "acme"},
                                {"environmentId", env.id},
                                {"issueId", "issue-7"},
                                {"config", json::object{{"region", "eu"}, {"timeoutMs", 20000}}},
                                {"runId", "run-1"},
                                {"workspaceMode", "isolated_workspace"},
                                {"agentId", "agent-1"},
                                {"executionWorkspaceId", "ew-1"},
                                {"adapterType", "codex_local"}};
    INFO(json::serialize(acquires[0]));
    CHECK(acquires[0] == expected);
    CHECK(calls_named(f.root_b.path, "environmentAcquireLease").empty());  // the other plugin is not asked

    // Realize: the worker's environmentRealizeWorkspace gives the cwd; berth writes the record.
    auto const real = f.orch.realize_for_run({.env = acq.env, .lease = lease, .workspace_cwd = "/src/repo"});
    auto const sandbox_dir = f.root_a.path / "sandboxes" / id;
    CHECK(real.cwd == (sandbox_dir / "workspace").string());
    REQUIRE(real.target);
    CHECK(real.target->transport == "sandbox");
    CHECK(real.target->spec.at("providerKey").as_string() == "sbx-a");
    CHECK(real.target->spec.at("shellCommand").as_string() == "sh");
    auto const& record = real.lease.metadata->at("workspaceRealization").as_object();
    CHECK(record.at("provider").as_string() == "sbx-a");
    CHECK(record.at("cwd").as_string() == real.cwd);
    auto const realizes = calls_named(f.root_a.path, "environmentRealizeWorkspace");
    REQUIRE(realizes.size() == 1);
    CHECK(realizes[0].at("lease").as_object().at("providerLeaseId").as_string() == id);
    CHECK(realizes[0].at("workspace").as_object().at("localPath").as_string() == "/src/repo");

    // Execute, bridged to the worker, output streamed as it comes.
    std::string streamed;
    auto sink = [&](output_stream s, std::string_view c) {
        streamed += (s == output_stream::stdout_stream ? "1:" : "2:") + std::string(c);
    };
    auto const r = f.orch.execute(acq.env, real.lease,
                                  {.program = "sh",
                                   .args = {"-c", "pwd; echo \"$GREETING\" >&2; exit 3"},
                                   .env = {{"GREETING", "hi"}},
                                   .timeout = std::chrono::seconds(20),
                                   .on_output = sink});
    CHECK(r.exit_code == 3);
    CHECK(r.stdout_text == fs::canonical(sandbox_dir).string() + "\n");
    CHECK(r.stderr_text == "hi\n");
    CHECK_THAT(streamed, Catch::Contains("1:" + r.stdout_text) && Catch::Contains("2:hi\n"));
    streamed.clear();
    auto const chunks = f.orch.execute(acq.env, real.lease, {.program = "chunks", .args = {"a", "b", "c"}, .on_output = sink});
    CHECK(streamed == "1:a2:b1:c");
    CHECK(chunks.stdout_text == "ac");
    auto const executes = calls_named(f.root_a.path, "environmentExecute");
    REQUIRE(executes.size() == 2);
    CHECK(executes[0].at("lease").as_object().at("providerLeaseId").as_string() == id);
    CHECK(executes[0].at("lease").as_object().at("metadata").as_object().at("pluginKey").as_string() == "berth.sbx-a");
    CHECK(executes[0].at("timeoutMs").as_int64() == 20000);
    CHECK(executes[0].at("driverKey").as_string() == "sbx-a");
    CHECK(executes[0].at("issueId").as_string() == "issue-7");

    // Release through the worker: the sandbox is gone, cleanup success.
    auto const ended = f.end(acq);
    CHECK(ended.status == lease_status::released);
    CHECK(ended.cleanup_status == cleanup_status::success);
    CHECK(live(f.root_a.path).empty());
    auto const releases = calls_named(f.root_a.path, "environmentReleaseLease");
    REQUIRE(releases.size() == 1);
    CHECK(releases[0].at("providerLeaseId").as_string() == id);
    CHECK(releases[0].at("companyId").as_string() == "acme");
    CHECK(releases[0].at("environmentId").as_string() == env.id);
    CHECK(releases[0].at("config").as_object().at("region").as_string() == "eu");
    CHECK(releases[0].at("leaseMetadata").as_object().at("pluginId").as_string() == "berth.sbx-a");
}

TEST_CASE("plugin sandbox provider: an ad-hoc lease gets a fresh runId, null fields are omitted",
          "[plugins][plugin-sandbox]") {
    BERTH_REQUIRE_PLUGIN_SDK();
    fixture f;
    auto const env = f.make_env({{"provider", "sbx-b"}, {"expiresAt", "2030-01-02T03:04:05Z"}});
    sbx_driver const driver{sbx_a{f.plugins}, sbx_b{f.plugins}};
    auto const grant = driver.acquire({.env = env, .company_id = "acme", .agent_id = std::nullopt});
    CHECK(grant.expires_at == parse_iso8601("2030-01-02T03:04:05Z"));
    auto const acquires = calls_named(f.root_b.path, "environmentAcquireLease");
    REQUIRE(acquires.size() == 1);
    auto const& p = acquires[0];
    for (char const* absent : {"agentId", "executionWorkspaceId", "workspaceMode", "adapterType"}) {
        INFO(absent);
        CHECK_FALSE(p.contains(absent));
    }
    CHECK(p.at("issueId").is_null());
    CHECK(p.at("runId").as_string().size() == 36);  // a UUID
    CHECK_FALSE(grant.metadata.contains("agentId"));

    // An invalid expiresAt is dropped, not an error.
    auto const bad = f.make_env({{"provider", "sbx-b"}, {"expiresAt", "next tuesday"}});
    CHECK_FALSE(driver.acquire({.env = bad, .company_id = "acme", .agent_id = std::nullopt}).expires_at);
}

TEST_CASE("plugin sandbox provider: the four resolution states and upstream's messages", "[plugins][plugin-sandbox]") {
    BERTH_REQUIRE_PLUGIN_SDK();
    fixture f;
    auto const env = f.make_env({{"provider", "sbx-a"}});
    auto acquire_with = [&](sbx_driver const& d) {
        return error_of([&] { (void)d.acquire({.env = env, .company_id = "acme", .agent_id = std::nullopt}); });
    };

    SECTION("missing: no plugin declares the provider as a sandbox provider") {
        auto const none = std::make_shared<plugins::registry>();
        CHECK(acquire_with(sbx_driver{sbx_a{none}, sbx_b{none}}) ==
              "Sandbox provider \"sbx-a\" is not registered as a built-in provider and no matching plugin is available.");
        // A plugin that declares the key as an environment driver does not count.
        auto const other = std::make_shared<plugins::registry>();
        plugins::worker_options o;
        o.command = test::plugin_worker("sandbox-plugin.mjs");
        o.plugin_id = "berth.vm";
        o.manifest = sandbox_manifest("berth.vm", "sbx-a", json::object{{"kind", "environment_driver"}});
        other->add(std::move(o));
        try {
            (void)sbx_driver{sbx_a{other}, sbx_b{other}}.acquire({.env = env, .company_id = "acme", .agent_id = std::nullopt});
            FAIL("no exception");
        } catch (sandbox_config_error const& e) {
            CHECK(e.field() == "provider");
        }
    }
    SECTION("not ready: the plugin's status") {
        f.plugins->set_status("berth.sbx-a", "disabled");
        CHECK(acquire_with(sbx_driver{sbx_a{f.plugins}, sbx_b{f.plugins}}) ==
              "Sandbox provider \"sbx-a\" is installed via plugin \"berth.sbx-a\", but that plugin is currently "
              "disabled.");
        CHECK_FALSE(f.worker_a->running());
    }
    SECTION("worker unavailable: a worker that cannot start, the cause nested") {
        auto broken = std::make_shared<plugins::registry>();
        broken->add({.command = {.program = "/nonexistent/worker"},
                     .plugin_id = "berth.sbx-a",
                     .manifest = sandbox_manifest("berth.sbx-a", "sbx-a")});
        plugin_sandbox_options const quick{.worker_ready_timeout = std::chrono::milliseconds(50),
                                           .worker_ready_poll = std::chrono::milliseconds(10)};
        sbx_driver const d{sbx_a{broken, quick}, sbx_b{broken, quick}};
        try {
            (void)d.acquire({.env = env, .company_id = "acme", .agent_id = std::nullopt});
            FAIL("no exception");
        } catch (berth::error const& e) {
            CHECK(std::string(e.what()) ==
                  "Sandbox provider \"sbx-a\" is installed via plugin \"berth.sbx-a\", but its worker is not running.");
            try {
                std::rethrow_if_nested(e);
                FAIL("no nested cause");
            } catch (plugins::rpc_error const& cause) {
                CHECK(cause.worker_unavailable());
            }
        }
    }
    SECTION("no plugin host at all") {
        CHECK(acquire_with(sbx_driver{sbx_a{nullptr}, sbx_b{nullptr}}) ==
              "Sandbox provider \"sbx-a\" is installed, but sandbox plugin workers are unavailable in this server "
              "process.");
    }
    SECTION("through the orchestrator: the run error carries the message, probe reports it") {
        f.plugins->set_status("berth.sbx-a", "error");
        try {
            (void)f.orch.acquire_for_run({.company_id = "acme", .environment_id = env.id,
                                          .agent_id = std::nullopt, .heartbeat_run_id = "run-9"});
            FAIL("no exception");
        } catch (environment_run_error const& e) {
            CHECK_THAT(e.what(), Catch::Contains("is installed via plugin \"berth.sbx-a\", but that plugin is currently error."));
        }
        auto const p = f.orch.probe(env);
        CHECK_FALSE(p.ok);
        CHECK_THAT(p.summary, Catch::Contains("that plugin is currently error."));
    }
}

TEST_CASE("plugin sandbox provider: acquire waits for a worker that is slow to come up, up to the readiness timeout",
          "[plugins][plugin-sandbox]") {
    BERTH_REQUIRE_PLUGIN_SDK();
    // upstream's defaults
    CHECK(plugin_sandbox_options{}.worker_ready_timeout == std::chrono::milliseconds(5000));
    CHECK(plugin_sandbox_options{}.worker_ready_poll == std::chrono::milliseconds(100));

    temp_dir root;
    auto const plugins = std::make_shared<plugins::registry>();
    memory_store store;
    testing::manual_clock clock;
    auto const env = store.create_environment(new_environment{.company_id = "acme",
                                                              .name = "slow",
                                                              .driver = driver_kind::sandbox,
                                                              .config = {{"provider", "sbx-a"}}},
                                              clock.now());
    auto const started = std::chrono::steady_clock::now();
    auto elapsed = [&] { return std::chrono::steady_clock::now() - started; };

    SECTION("the worker comes up on its third start: acquire succeeds, with the default timings") {
        auto const worker = add_sandbox_plugin(*plugins, "berth.sbx-a", "sbx-a", root.path, {}, 2);
        sbx_driver const d{sbx_a{plugins}, sbx_b{plugins}};
        auto const grant = d.acquire({.env = env, .company_id = "acme", .agent_id = std::nullopt});
        CHECK(grant.provider_lease_id);
        CHECK(worker->diagnostics().starts == 3);
        CHECK(elapsed() >= std::chrono::milliseconds(200));  // two polls
        plugins->stop_all();
    }
    SECTION("the worker never comes up: worker unavailable after the readiness timeout") {
        auto const worker = add_sandbox_plugin(*plugins, "berth.sbx-a", "sbx-a", root.path, {}, 1000);
        plugin_sandbox_options const opts{.worker_ready_timeout = std::chrono::milliseconds(1500),
                                          .worker_ready_poll = std::chrono::milliseconds(100)};
        sbx_driver const d{sbx_a{plugins, opts}, sbx_b{plugins, opts}};
        CHECK(error_of([&] { (void)d.acquire({.env = env, .company_id = "acme", .agent_id = std::nullopt}); }) ==
              "Sandbox provider \"sbx-a\" is installed via plugin \"berth.sbx-a\", but its worker is not running.");
        CHECK(elapsed() >= std::chrono::milliseconds(1500));
        CHECK(elapsed() < std::chrono::milliseconds(10000));
        CHECK(worker->diagnostics().starts >= 2);  // it kept trying
        CHECK_FALSE(worker->running());
    }
}

TEST_CASE("plugin sandbox provider: a reusable provider keeps its sandbox between runs, a failed resume falls back "
          "to acquire",
          "[plugins][plugin-sandbox][sandbox-reuse]") {
    BERTH_REQUIRE_PLUGIN_SDK();
    fixture f;
    auto const env = f.make_env({{"provider", "sbx-a"}, {"reuseLease", true}, {"leasePolicy", "reuse_by_environment"}});

    auto const first = f.acquire(env, agent("agent-a"));
    REQUIRE(first.lease.metadata->contains(reusable_sandbox_lease_key));
    CHECK(first.lease.policy_name == "reuse_by_environment");
    auto const id = *first.lease.provider_lease_id;
    auto const r1 = f.orch.execute(first.env, first.lease, {.program = "sh", .args = {"-c", "echo kept > state.txt"}});
    REQUIRE(r1.exit_code == 0);
    auto const kept = f.end(first);
    CHECK(kept.status == lease_status::retained);
    CHECK(live(f.root_a.path) == std::set<std::string>{id});
    // Kept, and the worker is told of the run's end as upstream tells it: it keeps the sandbox.
    auto const kept_releases = calls_named(f.root_a.path, "environmentReleaseLease");
    REQUIRE(kept_releases.size() == 1);
    CHECK(kept_releases[0].at("providerLeaseId").as_string() == id);
    CHECK(kept_releases[0].at("leaseMetadata").as_object().contains(reusable_sandbox_lease_key));
    CHECK(kept.cleanup_status == cleanup_status::success);

    // The next run of the same agent and workspace resumes it: the file is still there.
    auto const second = f.acquire(env, agent("agent-a"));
    CHECK(second.lease.provider_lease_id == id);
    auto const resumes = calls_named(f.root_a.path, "environmentResumeLease");
    REQUIRE(resumes.size() == 1);
    CHECK(resumes[0].at("providerLeaseId").as_string() == id);
    CHECK(resumes[0].at("leaseMetadata").as_object().at("pluginKey").as_string() == "berth.sbx-a");
    CHECK(calls_named(f.root_a.path, "environmentAcquireLease").size() == 1);
    CHECK(f.orch.execute(second.env, second.lease, {.program = "cat", .args = {"state.txt"}}).stdout_text == "kept\n");
    CHECK(f.lease(first.lease.id).status == lease_status::released);
    CHECK(second.lease.metadata->at("resumedBy").is_number());

    // Another agent never gets it.
    auto const other = f.acquire(env, agent("agent-b"));
    CHECK(other.lease.provider_lease_id != id);
    CHECK(f.end(other).status == lease_status::retained);

    // The sandbox disappears behind berth's back: the worker's resume throws, the old lease is
    // destroyed through the worker (`resume_failed`) and a new sandbox is acquired.
    auto const kept2 = f.end(second);
    REQUIRE(kept2.status == lease_status::retained);
    fs::remove_all(f.root_a.path / "sandboxes" / id);
    auto const third = f.acquire(env, agent("agent-a"));
    REQUIRE(third.lease.provider_lease_id);
    CHECK(*third.lease.provider_lease_id != id);
    CHECK(calls_named(f.root_a.path, "environmentResumeLease").size() == 2);
    auto const destroys = calls_named(f.root_a.path, "environmentDestroyLease");
    REQUIRE(destroys.size() == 1);
    CHECK(destroys[0].at("providerLeaseId").as_string() == id);
    auto const old = f.lease(kept2.id);
    CHECK(old.status == lease_status::expired);
    CHECK(old.failure_reason == "resume_failed");
    CHECK(old.cleanup_status == cleanup_status::success);
    CHECK(calls_named(f.root_a.path, "environmentAcquireLease").size() == 3);

    // A failed run's kept sandbox is destroyed through the worker at release.
    auto const failed = f.end(third, run_outcome::failed);
    CHECK(failed.status == lease_status::failed);
    CHECK(live(f.root_a.path).count(*third.lease.provider_lease_id) == 0);

    // A resume that answers no provider lease id is refused (the orchestrator then acquires anew).
    auto empty = f.lease(other.lease.id);
    empty.metadata->at("sandboxConfig").as_object()["resumeEmpty"] = true;
    sbx_driver const d{sbx_a{f.plugins}, sbx_b{f.plugins}};
    CHECK_THAT(error_of([&] { (void)d.resume(env, empty); }), Catch::Contains("returned no provider lease id"));
}

TEST_CASE("plugin sandbox provider: the reuse gate reads the plugin's manifest", "[plugins][plugin-sandbox][sandbox-reuse]") {
    BERTH_REQUIRE_PLUGIN_SDK();
    fixture f;
    CHECK(sbx_a{f.plugins}.reusable_leases());
    CHECK_FALSE(sbx_b{f.plugins}.reusable_leases());  // its manifest does not offer reuse
    CHECK_FALSE(sbx_a{nullptr}.reusable_leases());

    SECTION("a provider that does not offer reuse: every run gets its own sandbox, released at the end") {
        auto const env =
            f.make_env({{"provider", "sbx-b"}, {"reuseLease", true}, {"leasePolicy", "reuse_by_environment"}});
        auto const first = f.acquire(env, agent("agent-a"));
        CHECK_FALSE(first.lease.metadata->contains(reusable_sandbox_lease_key));
        auto const ended = f.end(first);
        CHECK(ended.status == lease_status::released);
        CHECK(ended.cleanup_status == cleanup_status::success);
        CHECK(live(f.root_b.path).empty());
        auto const second = f.acquire(env, agent("agent-a"));
        CHECK(second.lease.provider_lease_id != first.lease.provider_lease_id);
        CHECK(calls_named(f.root_b.path, "environmentResumeLease").empty());
    }
    SECTION("sandboxCapabilities.reusableLeases wins over supportsReusableLeases") {
        temp_dir root;
        auto const r = std::make_shared<plugins::registry>();
        add_sandbox_plugin(*r, "berth.sbx-a", "sbx-a", root.path,
                           json::object{{"supportsReusableLeases", true},
                                        {"sandboxCapabilities", json::object{{"reusableLeases", false}}}});
        CHECK_FALSE(sbx_a{r}.reusable_leases());
    }
    SECTION("a run that does not pass the request's half of the gate (no agent) does not reuse") {
        auto const env =
            f.make_env({{"provider", "sbx-a"}, {"reuseLease", true}, {"leasePolicy", "reuse_by_environment"}});
        auto const a = f.acquire(env, nullable<std::string>(std::nullopt));
        CHECK_FALSE(a.lease.metadata->contains(reusable_sandbox_lease_key));
        CHECK(f.end(a).status == lease_status::released);
        CHECK(live(f.root_a.path).empty());
    }
}

TEST_CASE("plugin sandbox provider: a worker that crashes mid-call, a release that fails", "[plugins][plugin-sandbox]") {
    BERTH_REQUIRE_PLUGIN_SDK();
    fixture f;
    auto const env = f.make_env({{"provider", "sbx-b"}});
    auto const acq = f.acquire(env, agent("agent-1"));
    auto const id = *acq.lease.provider_lease_id;

    // The worker exits in the middle of environmentExecute: the call fails with the host's message.
    try {
        (void)f.orch.execute(acq.env, acq.lease, {.program = "crash"});
        FAIL("no exception");
    } catch (plugins::rpc_error const& e) {
        CHECK(e.worker_unavailable());
        CHECK_THAT(e.what(), Catch::Contains("Worker process exited (code=3"));
        CHECK_THAT(e.what(), Catch::Contains("sandbox worker crashing mid-call"));
    }
    CHECK(f.worker_b->diagnostics().crashes == 1);

    // The next call starts a new worker; the sandbox outlived the old one.
    auto const r = f.orch.execute(acq.env, acq.lease, {.program = "sh", .args = {"-c", "echo back"}});
    CHECK(r.stdout_text == "back\n");
    CHECK(f.worker_b->diagnostics().starts == 2);
    CHECK(f.end(acq).cleanup_status == cleanup_status::success);
    CHECK(live(f.root_b.path).empty());

    auto end_failing = [&](acquisition const& a) {
        auto const res = f.orch.release_for_run({.company_id = "acme",
                                                 .agent_id = nullable<std::string>(std::nullopt),
                                                 .heartbeat_run_id = *a.lease.heartbeat_run_id});
        REQUIRE(res.errors.size() == 1);
        CHECK(res.errors[0].code == environment_error_code::lease_cleanup_failed);
        REQUIRE(res.released.size() == 1);
        auto const stored = f.lease(a.lease.id);
        CHECK(stored.status == lease_status::released);
        CHECK(stored.cleanup_status == cleanup_status::failed);
        return res.errors[0].message;
    };
    SECTION("the worker throws in release: cleanup failed, the lease still ends") {
        auto const bad = f.make_env({{"provider", "sbx-b"}, {"failRelease", "cannot delete"}});
        CHECK(end_failing(f.acquire(bad, agent("agent-1"))) == "cannot delete");
    }
    SECTION("the plugin is disabled before release: cleanup failed, the lease still ends") {
        auto const a = f.acquire(env, agent("agent-1"));
        f.plugins->set_status("berth.sbx-b", "disabled");
        CHECK(end_failing(a) ==
              "Sandbox provider \"sbx-b\" is installed via plugin \"berth.sbx-b\", but that plugin is currently disabled.");
        CHECK(live(f.root_b.path).size() == 1);  // the sandbox is left for cleanup
    }
}

TEST_CASE("plugin sandbox provider: probe through the worker", "[plugins][plugin-sandbox]") {
    BERTH_REQUIRE_PLUGIN_SDK();
    fixture f;
    auto const env = f.make_env({{"provider", "sbx-a"}, {"region", "eu"}});
    auto const p = f.orch.probe(env);
    CHECK(p.ok);
    CHECK(p.summary == "sandbox provider sbx-a is ready");
    CHECK(p.details.at("provider").as_string() == "sbx-a");
    CHECK(p.details.at("pluginKey").as_string() == "berth.sbx-a");
    auto const probes = calls_named(f.root_a.path, "environmentProbe");
    REQUIRE(probes.size() == 1);
    CHECK(probes[0].at("companyId").as_string() == "acme");
    CHECK(probes[0].at("environmentId").as_string() == env.id);
    CHECK(probes[0].at("config").as_object() == json::object{{"region", "eu"}});
}

TEST_CASE("plugin sandbox providers and a plugin driver in one stack: each plugin resolved by its key",
          "[plugins][plugin-sandbox][plugin-driver]") {
    BERTH_REQUIRE_PLUGIN_SDK();
    using mixed_stack = stack<drivers<plugin_driver, sbx_driver>, policies<ephemeral>, memory_store, testing::manual_clock>;
    temp_dir root_a, root_b;
    auto const plugins = std::make_shared<plugins::registry>();
    auto const wa = add_sandbox_plugin(*plugins, "berth.sbx-a", "sbx-a", root_a.path);
    auto const wb = add_sandbox_plugin(*plugins, "berth.sbx-b", "sbx-b", root_b.path);
    plugins::worker_options vm;
    vm.command = test::plugin_worker("test-plugin.mjs");
    vm.plugin_id = "berth.test";
    vm.manifest = json::object{{"id", "berth.test"},
                               {"apiVersion", 1},
                               {"version", "0.0.1"},
                               {"environmentDrivers", json::array{json::object{{"driverKey", "vm"},
                                                                               {"kind", "environment_driver"},
                                                                               {"displayName", "Test VM"}}}}};
    auto const wvm = plugins->add(std::move(vm));
    memory_store store;
    testing::manual_clock clock;
    run_orchestrator<mixed_stack> orch{store, clock, plugin_driver{plugins}, sbx_driver{sbx_a{plugins}, sbx_b{plugins}}};
    auto make = [&](std::string name, driver_kind d, json::object config) {
        return store.create_environment(
            new_environment{.company_id = "acme", .name = std::move(name), .driver = d, .config = std::move(config)},
            clock.now());
    };
    auto const env_vm = make("vm", driver_kind::plugin,
                             json::object{{"pluginKey", "berth.test"}, {"driverKey", "vm"}, {"driverConfig", json::object{}}});
    auto const env_a = make("a", driver_kind::sandbox, {{"provider", "sbx-a"}});
    auto const env_b = make("b", driver_kind::sandbox, {{"provider", "sbx-b"}});

    std::vector<acquisition> acqs;
    int run = 0;
    for (auto const* env : {&env_vm, &env_a, &env_b})
        acqs.push_back(orch.acquire_for_run({.company_id = "acme",
                                             .environment_id = env->id,
                                             .agent_id = agent("agent-1"),
                                             .heartbeat_run_id = "run-" + std::to_string(++run)}));
    CHECK(acqs[0].lease.provider == "plugin:berth.test:vm");
    CHECK(acqs[1].lease.provider == "sbx-a");
    CHECK(acqs[2].lease.provider == "sbx-b");
    CHECK(acqs[1].lease.metadata->at("pluginKey").as_string() == "berth.sbx-a");
    CHECK(acqs[2].lease.metadata->at("pluginKey").as_string() == "berth.sbx-b");
    for (auto const& a : acqs) {
        auto const r = orch.execute(a.env, a.lease, {.program = "sh", .args = {"-c", "echo $PAPERCLIP_PLUGIN_ID"}});
        CHECK(r.stdout_text == a.lease.metadata->at("pluginKey").as_string().c_str() + std::string("\n"));
    }
    // Each sandbox plugin saw only its own provider's calls; three workers, one each.
    CHECK(calls_named(root_a.path, "environmentAcquireLease").size() == 1);
    CHECK(calls_named(root_a.path, "environmentAcquireLease")[0].at("driverKey").as_string() == "sbx-a");
    CHECK(calls_named(root_b.path, "environmentAcquireLease").size() == 1);
    CHECK(calls_named(root_b.path, "environmentAcquireLease")[0].at("driverKey").as_string() == "sbx-b");
    CHECK(wa->diagnostics().pid != wb->diagnostics().pid);
    CHECK(wa->diagnostics().pid != wvm->diagnostics().pid);
    for (int i = 1; i <= run; ++i) {
        auto const r = orch.release_for_run({.company_id = "acme",
                                             .agent_id = nullable<std::string>(std::nullopt),
                                             .heartbeat_run_id = "run-" + std::to_string(i)});
        CHECK(r.errors.empty());
        REQUIRE(r.released.size() == 1);
        CHECK(r.released[0].status == lease_status::released);
    }
    CHECK(live(root_a.path).empty());
    CHECK(live(root_b.path).empty());
    plugins->stop_all();
}

#endif  // BERTH_TEST_SANDBOX
