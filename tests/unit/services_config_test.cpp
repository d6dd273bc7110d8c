// Runtime services without processes: config parsing, templates, identity and keys, the base
// environment, the registry's path guard, adapter-managed normalisation and the ready summary.
#if BERTH_TEST_SERVICES
#include <catch2/catch.hpp>

#include <berth/services/adapter_managed.hpp>
#include <berth/services/config.hpp>
#include <berth/services/detail/proc.hpp>
#include <berth/services/identity.hpp>
#include <berth/services/identity_cache.hpp>
#include <berth/services/ready_comment.hpp>
#include <berth/services/run_environment.hpp>
#include <berth/services/registry.hpp>
#include <berth/services/template.hpp>
#include <berth/stores/memory.hpp>

#include <boost/json/parse.hpp>

#include <cstdlib>
#include <functional>
#include <map>
#include <string>
#include <vector>

using namespace berth;
using namespace berth::services;

namespace {

runtime_service_config parse_one(std::string const& json) { return parse_runtime_service(boost::json::parse(json)); }

/// The config_error `json` raises, as (service, field, message).
std::tuple<std::string, std::string, std::string> config_failure(std::string const& json) {
    try {
        (void)parse_runtime_services(boost::json::parse(json));
    } catch (config_error const& e) {
        return {e.service(), e.field(), e.what()};
    }
    FAIL("expected a config_error for " << json);
    return {};
}

service_context context() {
    service_context c;
    c.workspace.cwd = "/srv/ws";
    c.workspace.project_id = "project-1";
    c.workspace.project_workspace_id = "pw-1";
    c.workspace.execution_workspace_id = "ew-1";
    c.workspace.branch_name = "feature/x";
    c.agent = {.id = "agent-1", .name = "Ada", .company_id = "company-1"};
    c.issue = issue_ref{.id = "issue-1", .identifier = "PAP-7", .title = "Fix it"};
    c.adapter_env = {{"ADAPTER_VAR", "from-adapter"}};
    return c;
}

}  // namespace

TEST_CASE("service config: defaults and every field", "[services]") {
    auto const d = parse_one(R"({"command": "pnpm dev"})");
    CHECK(d.name == "service");
    CHECK(d.cwd == ".");
    CHECK(d.lifecycle == runtime_service_lifecycle::shared);
    CHECK(d.scope() == runtime_service_scope_type::run);  // the seed: no lifecycle given, scope run
    CHECK(d.stop_type() == stop_policy_type::manual);
    CHECK(d.port.mode == port_config::kind::none);
    CHECK_FALSE(d.readiness);
    CHECK(d.stop_policy_json.empty());
    CHECK(d.stop_policy.idle_seconds == 1800);

    auto const e = parse_one(R"({"name": "db", "command": "x", "lifecycle": "ephemeral"})");
    CHECK(e.scope() == runtime_service_scope_type::run);
    CHECK(e.stop_type() == stop_policy_type::on_run_finish);

    auto const f = parse_one(R"({"name": "web", "command": "pnpm dev", "cwd": "app/{{issue.identifier}}",
        "lifecycle": "shared", "reuseScope": "agent", "port": {"type": "auto", "envKey": "WEB_PORT"},
        "env": {"A": "{{port}}", "B": 3, "C": "c"}, "expose": {"urlTemplate": "http://127.0.0.1:{{port}}"},
        "readiness": {"type": "http", "urlTemplate": "http://127.0.0.1:{{port}}/health", "timeoutSec": 0, "intervalMs": 5},
        "stopPolicy": {"type": "idle_timeout", "idleSeconds": 0}, "unknownField": true})");
    CHECK(f.name == "web");
    CHECK(f.cwd == "app/{{issue.identifier}}");
    CHECK(f.scope() == runtime_service_scope_type::agent);
    CHECK(f.port.mode == port_config::kind::automatic);
    CHECK(f.port.env_key == "WEB_PORT");
    CHECK(f.env == std::map<std::string, std::string>{{"A", "{{port}}"}, {"C", "c"}});  // B: not a string, skipped
    REQUIRE(f.readiness);
    CHECK(f.readiness->timeout_sec == 1);    // at least 1
    CHECK(f.readiness->interval_ms == 100);  // at least 100
    CHECK(f.url_template() == "http://127.0.0.1:{{port}}");  // expose first
    CHECK(f.stop_type() == stop_policy_type::idle_timeout);
    CHECK(f.stop_policy.idle_seconds == 1);
    CHECK(f.stop_policy_json.at("type") == "idle_timeout");

    CHECK(parse_one(R"({"command": "x", "port": 4100})").port.value == 4100);
    auto const v = parse_one(R"({"command": "x", "port": {"value": 4200, "envKey": "P"}})");
    CHECK(v.port.mode == port_config::kind::fixed);
    CHECK(v.port.value == 4200);
    CHECK(v.port.env_key == "P");
    CHECK(parse_one(R"({"command": "x", "readiness": {"type": "http", "urlTemplate": "u"}})").url_template() == "u");
}

TEST_CASE("service config: without lifecycle a service is shared within its run, as the seed scopes it", "[services]") {
    // The seed's resolveServiceScopeId: reuseScope ?? (service.lifecycle === "shared" ? project_workspace : run),
    // read on the lifecycle as written; its lifecycle defaults to shared (so a reuse key, manual stop).
    auto const bare = parse_one(R"({"command": "x"})");
    CHECK(bare.lifecycle == runtime_service_lifecycle::shared);
    CHECK(bare.scope() == runtime_service_scope_type::run);
    CHECK(bare.stop_type() == stop_policy_type::manual);
    CHECK(resolve_scope(bare, context(), "run-9").id == "run-9");
    CHECK(parse_one(R"({"command": "x", "lifecycle": null})").scope() == runtime_service_scope_type::run);
    CHECK(parse_one(R"({"command": "x", "lifecycle": "shared"})").scope() == runtime_service_scope_type::project_workspace);
    CHECK(parse_one(R"({"command": "x", "lifecycle": "ephemeral"})").scope() == runtime_service_scope_type::run);
    CHECK(parse_one(R"({"command": "x", "reuseScope": "agent"})").scope() == runtime_service_scope_type::agent);
}

TEST_CASE("service config: the document shapes", "[services]") {
    CHECK(parse_runtime_services(boost::json::parse(R"({"workspaceRuntime": {"services": [{"command": "a"}]}})")).size() == 1);
    CHECK(parse_runtime_services(boost::json::parse(R"({"services": [{"command": "a"}, {"command": "b"}]})")).size() == 2);
    CHECK(parse_runtime_services(boost::json::parse(R"([{"command": "a"}])")).size() == 1);
    CHECK(parse_runtime_services(boost::json::parse(R"({"workspaceRuntime": {}})")).empty());
    CHECK(parse_runtime_services(boost::json::parse(R"({"other": 1})")).empty());
}

TEST_CASE("service config: bad values name the service, the field and the value", "[services]") {
    using Catch::Contains;
    auto [s1, f1, m1] = config_failure(R"([{"name": "web"}])");
    CHECK(s1 == "web");
    CHECK(f1 == "command");
    CHECK(m1 == "Runtime service \"web\" is missing command");  // upstream's message

    auto [s2, f2, m2] = config_failure(R"([{"name": "web", "command": "x", "lifecycle": "forever"}])");
    CHECK(f2 == "lifecycle");
    CHECK_THAT(m2, Contains("\"web\"") && Contains("lifecycle") && Contains("\"forever\""));

    auto [s3, f3, m3] = config_failure(R"([{"name": "web", "command": "x", "port": 70000}])");
    CHECK(f3 == "port");
    CHECK_THAT(m3, Contains("70000"));
    CHECK(std::get<1>(config_failure(R"([{"name": "w", "command": "x", "port": {"type": "random"}}])")) == "port.type");
    CHECK(std::get<1>(config_failure(R"([{"name": "w", "command": "x", "port": {"envKey": "P"}}])")) == "port");
    CHECK(std::get<1>(config_failure(R"([{"name": "w", "command": "x", "port": "4100"}])")) == "port");
    CHECK(std::get<1>(config_failure(R"([{"name": "w", "command": "x", "reuseScope": "galaxy"}])")) == "reuseScope");
    CHECK(std::get<1>(config_failure(R"([{"name": "w", "command": "x", "readiness": {"type": "tcp"}}])")) ==
          "readiness.type");
    CHECK(std::get<1>(config_failure(R"([{"name": "w", "command": "x", "readiness": {"type": "http", "timeoutSec": "5"}}])")) ==
          "readiness.timeoutSec");
    CHECK(std::get<1>(config_failure(R"([{"name": "w", "command": "x", "stopPolicy": {"type": "never"}}])")) ==
          "stopPolicy.type");
    CHECK(std::get<1>(config_failure(R"([{"name": "w", "command": "x", "stopPolicy": {"idleSeconds": 1.5}}])")) ==
          "stopPolicy.idleSeconds");
    CHECK(std::get<1>(config_failure(R"([{"name": "w", "command": "x", "env": []}])")) == "env");
    CHECK(std::get<1>(config_failure(R"([{"name": "w", "command": 5}])")) == "command");
    auto [s4, f4, m4] = config_failure(R"([{"command": "x"}, 7])");
    CHECK(s4 == "services[1]");
    CHECK_THAT(m4, Contains("services[1]") && Contains("7"));
    CHECK(std::get<1>(config_failure(R"({"services": {"command": "x"}})")) == "services");
}

TEST_CASE("service templates: paths, missing values and literal braces", "[services]") {
    boost::json::object const data{{"a", {{"b", "B"}, {"n", 7}, {"t", true}, {"o", {{"x", 1}}}}}, {"port", ""}};
    CHECK(render_template("x{{a.b}}y{{ a.n }}{{a.t}}", data) == "xBy7true");
    CHECK(render_template("{{a.o}}", data) == R"({"x":1})");
    CHECK(render_template("[{{missing}}][{{a.b.c}}][{{port}}]", data) == "[][][]");
    CHECK(render_template("{{ not closed", data) == "{{ not closed");
    CHECK(render_template("{{}} {{a b}} {{a.b}}", data) == "{{}} {{a b}} B");

    auto const ctx = context();
    auto const td = build_template_data(ctx, 4100);
    CHECK(render_template("{{workspace.cwd}} {{workspace.branchName}} {{issue.identifier}} {{agent.name}} {{port}} "
                          "{{workspace.env.ADAPTER_VAR}} [{{workspace.repoUrl}}]",
                          td) == "/srv/ws feature/x PAP-7 Ada 4100 from-adapter []");
    CHECK(render_template("[{{port}}]", build_template_data(ctx, std::nullopt)) == "[]");
}

TEST_CASE("service identity: stable serialisation, SHA-256, scopes and the reuse key", "[services]") {
    CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(stable_stringify(boost::json::parse(R"({"b": [2, {"z": null, "a": "x\"y"}], "a": 1})")) ==
          R"({"a":1,"b":[2,{"a":"x\"y","z":null}]})");

    auto ctx = context();
    auto svc = parse_one(R"({"name": "web", "lifecycle": "shared", "command": "serve", "env": {"E": "{{issue.identifier}}"}})");
    CHECK(resolve_scope(svc, ctx, "run-1").id == "pw-1");
    ctx.workspace.project_workspace_id.reset();
    CHECK(resolve_scope(svc, ctx, "run-1").id == "project-1");
    svc.reuse_scope = runtime_service_scope_type::execution_workspace;
    CHECK(resolve_scope(svc, ctx, "run-1").id == "ew-1");
    ctx.workspace.execution_workspace_id.reset();
    CHECK(resolve_scope(svc, ctx, "run-1").id == "/srv/ws");
    svc.reuse_scope = runtime_service_scope_type::agent;
    CHECK(resolve_scope(svc, ctx, "run-1").id == "agent-1");
    svc.reuse_scope = runtime_service_scope_type::run;
    CHECK(resolve_scope(svc, ctx, "run-1").id == "run-1");

    ctx = context();
    svc = parse_one(R"({"name": "web", "lifecycle": "shared", "command": "serve", "cwd": "app", "env": {"E": "{{issue.identifier}}"}})");
    auto const scope = resolve_scope(svc, ctx, "run-1");
    auto const id = resolve_reuse_identity(svc, ctx, scope);
    CHECK(id.service_cwd == "/srv/ws/app");
    CHECK(id.env == std::map<std::string, std::string>{{"E", "PAP-7"}});
    CHECK(id.env_fingerprint == sha256_hex(R"({"E":"PAP-7"})"));
    REQUIRE(id.reuse_key);
    CHECK(*id.reuse_key ==
          sha256_hex(R"({"command":"serve","cwd":"/srv/ws/app","env":{"E":"PAP-7"},"port":null,"scopeId":"pw-1",)"
                     R"("scopeType":"project_workspace","serviceName":"web"})"));
    CHECK(resolve_reuse_identity(svc, ctx, scope).reuse_key == id.reuse_key);  // deterministic

    auto other = ctx;
    other.issue->identifier = "PAP-8";
    CHECK(resolve_reuse_identity(svc, other, scope).reuse_key != id.reuse_key);  // rendered env differs
    auto with_port = svc;
    with_port.port = {port_config::kind::fixed, 4100, "PORT"};
    CHECK(resolve_reuse_identity(with_port, ctx, scope).reuse_key != id.reuse_key);
    auto with_auto = svc;
    with_auto.port.mode = port_config::kind::automatic;
    CHECK(resolve_reuse_identity(with_auto, ctx, scope).reuse_key == id.reuse_key);  // auto port: not identity
    CHECK(resolve_reuse_identity(svc, ctx, {runtime_service_scope_type::agent, "agent-1"}).reuse_key != id.reuse_key);
    auto eph = svc;
    eph.lifecycle = runtime_service_lifecycle::ephemeral;
    CHECK_FALSE(resolve_reuse_identity(eph, ctx, scope).reuse_key);

    CHECK(resolve_configured_path("../x/./y/", "/srv/ws") == "/srv/x/y");
    CHECK(resolve_configured_path("/abs", "/srv/ws") == "/abs");
    CHECK(resolve_configured_path("~/p", "/srv/ws") == (std::string(std::getenv("HOME")) + "/p"));
}

TEST_CASE("service identity memo: what resolve_reuse_identity returns, and every input counts", "[services]") {
    // Every template datum in the env and the cwd: an input the memo's key forgot would return the
    // base identity for the changed input, and the comparison with a fresh computation fails.
    auto const svc = parse_one(R"({"name": "web", "lifecycle": "shared", "command": "serve", "cwd": "{{workspace.branchName}}/app",
        "env": {"A": "{{workspace.cwd}} {{workspace.worktreePath}} {{workspace.repoUrl}} {{workspace.repoRef}}",
                "B": "{{workspace.env.ADAPTER_VAR}} {{issue.id}} {{issue.identifier}} {{issue.title}}",
                "C": "{{agent.id}} {{agent.name}} {{port}}"}})");
    auto const ctx = context();
    auto const scope = resolve_scope(svc, ctx, "run-1");
    auto same = [](reuse_identity const& a, reuse_identity const& b) {
        return a.service_cwd == b.service_cwd && a.env == b.env && a.env_fingerprint == b.env_fingerprint &&
               a.identity_port == b.identity_port && a.reuse_key == b.reuse_key;
    };

    reuse_identity_cache memo;
    auto const first = memo.get(svc, ctx, scope);
    CHECK(same(*first, resolve_reuse_identity(svc, ctx, scope)));
    CHECK(memo.get(svc, ctx, scope) == first);  // the same object: not computed again
    CHECK(memo.size() == 1);

    using change = std::function<void(runtime_service_config&, service_context&, service_scope&)>;
    std::vector<std::pair<std::string, change>> const changes{
        {"name", [](auto& s, auto&, auto&) { s.name = "api"; }},
        {"command", [](auto& s, auto&, auto&) { s.command = "serve --fast"; }},
        {"cwd", [](auto& s, auto&, auto&) { s.cwd = "other"; }},
        {"lifecycle", [](auto& s, auto&, auto&) { s.lifecycle = runtime_service_lifecycle::ephemeral; }},
        {"fixed port", [](auto& s, auto&, auto&) { s.port = {port_config::kind::fixed, 4100, "PORT"}; }},
        {"env template", [](auto& s, auto&, auto&) { s.env["D"] = "d"; }},
        {"scope type", [](auto&, auto&, auto& sc) { sc.type = runtime_service_scope_type::agent; }},
        {"scope id", [](auto&, auto&, auto& sc) { sc.id = "pw-2"; }},
        {"workspace cwd", [](auto&, auto& c, auto&) { c.workspace.cwd = "/srv/other"; }},
        {"branch", [](auto&, auto& c, auto&) { c.workspace.branch_name = "main"; }},
        {"worktree", [](auto&, auto& c, auto&) { c.workspace.worktree_path = "/wt"; }},
        {"repo url", [](auto&, auto& c, auto&) { c.workspace.repo_url = "https://x"; }},
        {"repo ref", [](auto&, auto& c, auto&) { c.workspace.repo_ref = "abc"; }},
        {"issue id", [](auto&, auto& c, auto&) { c.issue->id = "issue-2"; }},
        {"issue identifier", [](auto&, auto& c, auto&) { c.issue->identifier = "PAP-8"; }},
        {"issue title", [](auto&, auto& c, auto&) { c.issue->title = "Other"; }},
        {"no issue", [](auto&, auto& c, auto&) { c.issue.reset(); }},
        {"agent id", [](auto&, auto& c, auto&) { c.agent.id = "agent-2"; }},
        {"agent name", [](auto&, auto& c, auto&) { c.agent.name = "Bob"; }},
        {"adapter env", [](auto&, auto& c, auto&) { c.adapter_env["ADAPTER_VAR"] = "changed"; }},
    };
    for (auto const& [what, apply] : changes) {
        INFO(what);
        auto s = svc;
        auto c = ctx;
        auto sc = scope;
        apply(s, c, sc);
        auto const fresh = resolve_reuse_identity(s, c, sc);
        CHECK_FALSE(same(fresh, *first));  // the input matters to the identity
        CHECK(same(*memo.get(s, c, sc), fresh));
    }

    // `~` is $HOME's: a changed HOME is a changed identity.
    auto home_svc = svc;
    home_svc.cwd = "~/app";
    char const* old_home = std::getenv("HOME");
    std::string const saved = old_home ? old_home : "";
    ::setenv("HOME", "/home/one", 1);
    CHECK(memo.get(home_svc, ctx, scope)->service_cwd == "/home/one/app");
    ::setenv("HOME", "/home/two", 1);
    CHECK(memo.get(home_svc, ctx, scope)->service_cwd == "/home/two/app");
    if (old_home) ::setenv("HOME", saved.c_str(), 1);
    else ::unsetenv("HOME");

    // Run-scoped identities are not kept; a full memo starts over.
    reuse_identity_cache small(2);
    CHECK(same(*small.get(svc, ctx, {runtime_service_scope_type::run, "run-1"}),
               resolve_reuse_identity(svc, ctx, {runtime_service_scope_type::run, "run-1"})));
    CHECK(small.size() == 0);
    for (auto const* id : {"pw-1", "pw-2", "pw-3"}) (void)small.get(svc, ctx, {scope.type, id});
    CHECK(small.size() == 1);  // the third found it full, cleared it and kept itself
    CHECK(same(*small.get(svc, ctx, {scope.type, "pw-1"}), resolve_reuse_identity(svc, ctx, {scope.type, "pw-1"})));
}

TEST_CASE("service keys are sanitised and cannot leave the registry directory", "[services]") {
    auto const key = service_key({.service_name = "My Web/../App!", .cwd = "/srv", .command = "c",
                                  .env_fingerprint = "f", .port = std::nullopt, .scope = {}});
    CHECK(key.rfind("workspace-runtime-my-web-app-", 0) == 0);
    CHECK(key.size() == std::string("workspace-runtime-my-web-app-").size() + 24);
    CHECK(key.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_-") == std::string::npos);
    CHECK(service_key({.service_name = "web", .cwd = "/srv", .command = "c", .env_fingerprint = "f", .port = 1, .scope = {}}) !=
          service_key({.service_name = "web", .cwd = "/srv", .command = "c", .env_fingerprint = "f", .port = 2, .scope = {}}));
    CHECK(sanitize_slug("  ", "fallback") == "fallback");
    service_registry const reg("/tmp/berth-registry-guard");
    CHECK_THROWS_WITH(reg.file_for("../etc/passwd"), Catch::Contains("../etc/passwd"));
    CHECK_THROWS(reg.remove("a/b"));
    CHECK(reg.file_for("workspace-runtime-web-1") == "/tmp/berth-registry-guard/workspace-runtime-web-1.json");
    CHECK(stable_adapter_service_id("codex", "run-1", {}, "web", "given-id", std::nullopt, std::nullopt) == "given-id");
}

TEST_CASE("service paths: inside the workspace, never a sibling", "[services]") {
    using berth::services::detail::path_within;
    CHECK(path_within("/a/b", "/a/b"));
    CHECK(path_within("/a/b/c/", "/a/b"));
    CHECK(path_within("/a/b/c/../d", "/a/b/"));
    CHECK_FALSE(path_within("/a/bc", "/a/b"));
    CHECK_FALSE(path_within("/a/b/../c", "/a/b"));
    CHECK_FALSE(path_within("/a", "/a/b"));
}

TEST_CASE("service base environment: no secrets, no BERTH_ variables, the shell falls back", "[services]") {
    ::setenv("BERTH_TEST_INTERNAL", "x", 1);
    ::setenv("SVC_TEST_API_KEY", "secret", 1);
    ::setenv("SVC_TEST_PLAIN", "plain", 1);
    auto const env = service_base_environment();
    ::unsetenv("BERTH_TEST_INTERNAL");
    ::unsetenv("SVC_TEST_API_KEY");
    ::unsetenv("SVC_TEST_PLAIN");
    CHECK(env.count("SVC_TEST_PLAIN") == 1);
    CHECK(env.count("SVC_TEST_API_KEY") == 0);
    CHECK(env.count("BERTH_TEST_INTERNAL") == 0);

    std::string const saved = std::getenv("SHELL") ? std::getenv("SHELL") : "";
    ::setenv("SHELL", "  /bin/bash  ", 1);
    CHECK(resolve_shell() == "/bin/bash");
    ::setenv("SHELL", "/no/such/shell", 1);
    CHECK(resolve_shell() == "/bin/sh");
    ::setenv("SHELL", "", 1);
    CHECK(resolve_shell() == "/bin/sh");
    if (saved.empty()) ::unsetenv("SHELL");
    else ::setenv("SHELL", saved.c_str(), 1);
}

TEST_CASE("adapter-managed services: normalisation and persistence", "[services]") {
    auto const ctx = context();
    auto const now = timestamp::from_micros(1767225600000000);
    std::vector<adapter_service_report> reports(3);
    reports[0].service_name = "  preview  ";
    reports[0].url = "https://preview.example";
    reports[1].status = runtime_service_status::failed;
    reports[1].scope_type = runtime_service_scope_type::agent;
    reports[2].id = "report-id";
    reports[2].status = runtime_service_status::stopped;
    reports[2].lifecycle = runtime_service_lifecycle::shared;
    auto const refs = normalize_adapter_managed_services("codex", "run-1", ctx, reports, now);
    REQUIRE(refs.size() == 3);
    auto const& a = refs[0].service;
    CHECK(a.service_name == "preview");
    CHECK(a.provider == runtime_service_provider::adapter_managed);
    CHECK(a.scope_type == runtime_service_scope_type::run);
    CHECK(a.scope_id == "run-1");
    CHECK(a.status == runtime_service_status::running);
    CHECK(a.lifecycle == runtime_service_lifecycle::ephemeral);
    CHECK(a.health_status == runtime_service_health::healthy);
    CHECK_FALSE(a.stopped_at);
    CHECK(a.company_id == "company-1");
    CHECK(a.issue_id == "issue-1");
    CHECK(a.owner_agent_id == "agent-1");
    CHECK(a.started_by_run_id == "run-1");
    CHECK(a.id.rfind("codex-", 0) == 0);
    CHECK(a.id.size() == 6 + 32);
    CHECK(a.id == normalize_adapter_managed_services("codex", "run-1", ctx, reports, now)[0].service.id);  // stable
    CHECK(refs[1].service.service_name == "service");
    CHECK(refs[1].service.scope_id == "agent-1");
    CHECK(refs[1].service.health_status == runtime_service_health::unhealthy);
    CHECK(refs[1].service.stopped_at == now);
    CHECK(refs[2].service.id == "report-id");
    CHECK(refs[2].service.health_status == runtime_service_health::unknown);

    memory_store store;
    persist_adapter_managed_services(store, "codex", "run-1", ctx, reports, now);
    auto const later = now + std::chrono::minutes(5);
    auto const again = persist_adapter_managed_services(store, "codex", "run-1", ctx, reports, later);
    auto const row = store.get_runtime_service(a.id);
    REQUIRE(row);
    CHECK(row->started_at == now);    // kept
    CHECK(row->created_at == now);    // kept
    CHECK(row->last_used_at == later);
    CHECK(row->updated_at == later);
    CHECK(store.list_runtime_services({}).size() == 3);
}

TEST_CASE("workspace-ready summary", "[services]") {
    workspace_context w;
    w.strategy = "git_worktree";
    w.cwd = "/wt/PAP-7";
    w.branch_name = "PAP-7-fix";
    w.worktree_path = "/wt/PAP-7";
    std::vector<runtime_service_ref> refs(2);
    refs[0].service.service_name = "web";
    refs[0].service.url = "http://127.0.0.1:4100";
    refs[1].service.service_name = "worker";
    refs[1].reused = true;
    CHECK(build_workspace_ready_comment(w, refs) ==
          "## Workspace Ready\n\n- Strategy: `git_worktree`\n- Branch: `PAP-7-fix`\n- CWD: `/wt/PAP-7`\n"
          "- Service: web: http://127.0.0.1:4100 (`$BERTH_SERVICE_WEB_URL`)\n- Service: worker: running (reused)");
    refs[0].service.port = 4100;
    refs[1].service.service_name = "job-queue";
    refs[1].service.port = 4200;
    CHECK(build_workspace_ready_comment(w, refs) ==
          "## Workspace Ready\n\n- Strategy: `git_worktree`\n- Branch: `PAP-7-fix`\n- CWD: `/wt/PAP-7`\n"
          "- Service: web: http://127.0.0.1:4100 (port 4100; `$BERTH_SERVICE_WEB_URL`, `$BERTH_SERVICE_WEB_PORT`)\n"
          "- Service: job-queue: running (port 4200; `$BERTH_SERVICE_JOB_QUEUE_PORT`) (reused)");
    CHECK(service_environment(refs) ==
          std::map<std::string, std::string>{{"BERTH_SERVICE_JOB_QUEUE_PORT", "4200"},
                                             {"BERTH_SERVICE_WEB_PORT", "4100"},
                                             {"BERTH_SERVICE_WEB_URL", "http://127.0.0.1:4100"}});
    CHECK(service_env_prefix("") == "BERTH_SERVICE__");
    w.worktree_path = "/wt/other";
    w.branch_name.reset();
    CHECK(build_workspace_ready_comment(w, {}) ==
          "## Workspace Ready\n\n- Strategy: `git_worktree`\n- CWD: `/wt/PAP-7`\n- Worktree: `/wt/other`");
}
#endif
