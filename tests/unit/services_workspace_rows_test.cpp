// The workspace rows the runtime services read (issue 21): upstream's project workspace record in
// the memory, SQLite and PostgreSQL stores (berth::project_workspace_store; SQLite's migration), and
// restart_desired_on_startup reading the project and execution workspace rows from the store
// itself, with supervisor::control writing a project workspace's desired states where it reads
// them. Real processes (berth_test_http_server) through the public API, on both local stores.
#include <catch2/catch.hpp>

#include <berth/concepts/clock.hpp>
#include <berth/concepts/project_workspace_store.hpp>
#include <berth/model/ids.hpp>
#include <berth/stores/memory.hpp>
#include <berth/stores/schema.hpp>
#include <berth/testing/manual_clock.hpp>
#if BERTH_TEST_SQLITE
#include <berth/stores/sqlite.hpp>

#include <sqlite3.h>
#endif
#ifdef BERTH_TEST_POSTGRES
#include <berth/stores/postgres.hpp>

#include "postgres_fixture.hpp"
#endif
#if BERTH_TEST_SERVICES
#include "services_fixture.hpp"

#include <berth/services/desired_state.hpp>
#include <berth/services/supervisor.hpp>
#endif

#include <boost/json/parse.hpp>
#include <boost/mp11/algorithm.hpp>

#include <algorithm>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

using namespace berth;
using namespace std::chrono_literals;

namespace {

/// The project_workspace_store contract, on any store.
template <project_workspace_store Store>
void check_project_workspace_store(Store& store) {
    testing::manual_clock clock;
    auto const t0 = clock.now();
    auto const a = store.create_project_workspace({.company_id = "company-1",
                                                   .project_id = "project-1",
                                                   .name = "Checkout",
                                                   .cwd = "/srv/checkout",
                                                   .repo_url = "https://example.com/r.git",
                                                   .default_ref = "main",
                                                   .metadata = json_object{{"runtimeConfig", json_object{{"desiredState", "running"}}}}},
                                                  t0);
    CHECK_FALSE(a.id.empty());
    CHECK(a.source_type == "local_path");  // upstream's defaults
    CHECK(a.visibility == "default");
    CHECK_FALSE(a.is_primary);
    CHECK(a.created_at == t0);
    CHECK(a.updated_at == t0);
    auto const got = store.get_project_workspace(a.id);
    REQUIRE(got);
    CHECK(got->cwd == "/srv/checkout");
    CHECK(got->repo_url == "https://example.com/r.git");
    CHECK(got->default_ref == "main");
    CHECK_FALSE(got->repo_ref);
    REQUIRE(got->metadata);
    CHECK(got->metadata->at("runtimeConfig").at("desiredState") == "running");
    CHECK_FALSE(store.get_project_workspace("no-such-id"));

    // The list: the company's rows, primary first, then oldest first; a project filter.
    clock.advance(1s);
    auto const primary = store.create_project_workspace(
        {.company_id = "company-1", .project_id = "project-2", .name = "Primary", .is_primary = true}, clock.now());
    clock.advance(1s);
    auto const b = store.create_project_workspace(
        {.company_id = "company-1", .project_id = "project-1", .name = "Second", .source_type = "git_repo"},
        clock.now());
    store.create_project_workspace({.company_id = "company-2", .project_id = "project-1", .name = "Other"},
                                   clock.now());
    auto ids = [](std::vector<project_workspace> const& v) {
        std::vector<std::string> out;
        for (auto const& w : v) out.push_back(w.id);
        return out;
    };
    CHECK(ids(store.list_project_workspaces("company-1", {})) == std::vector<std::string>{primary.id, a.id, b.id});
    CHECK(ids(store.list_project_workspaces("company-1", {.project_id = "project-1"})) ==
          std::vector<std::string>{a.id, b.id});
    CHECK(store.list_project_workspaces("company-3", {}).empty());
    CHECK(store.get_project_workspace(b.id)->source_type == "git_repo");

    // Patches: engaged members only; an engaged nullopt clears; updated_at moves.
    clock.advance(1s);
    auto const patched = store.update_project_workspace(
        a.id, {.cwd = std::optional<std::string>{}, .default_ref = std::optional<std::string>("trunk"), .is_primary = true},
        clock.now());
    REQUIRE(patched);
    CHECK_FALSE(patched->cwd);
    CHECK(patched->default_ref == "trunk");
    CHECK(patched->repo_url == "https://example.com/r.git");
    CHECK(patched->is_primary);
    CHECK(patched->updated_at == clock.now());
    CHECK(patched->created_at == t0);
    auto const reread = store.get_project_workspace(a.id);
    REQUIRE(reread);
    CHECK_FALSE(reread->cwd);
    CHECK(reread->default_ref == "trunk");
    CHECK(reread->is_primary);
    CHECK(reread->updated_at == clock.now());
    CHECK_FALSE(store.update_project_workspace("no-such-id", {.name = "x"}, clock.now()));

    // Bad input: named, and nothing changes.
    CHECK_THROWS_WITH(store.create_project_workspace({.company_id = "", .project_id = "p", .name = "n"}, clock.now()),
                      "A project workspace needs a company id.");
    CHECK_THROWS_WITH(store.create_project_workspace({.company_id = "c", .project_id = "", .name = "n"}, clock.now()),
                      "A project workspace needs a project id.");
    CHECK_THROWS_WITH(store.create_project_workspace({.company_id = "c", .project_id = "p", .name = ""}, clock.now()),
                      "A project workspace needs a name.");
    CHECK_THROWS_WITH(
        store.create_project_workspace({.company_id = "c", .project_id = "p", .name = "n", .source_type = ""},
                                       clock.now()),
        "A project workspace needs a source type.");
    CHECK_THROWS_WITH(store.update_project_workspace(a.id, {.name = ""}, clock.now()),
                      "A project workspace needs a name.");
    CHECK(store.get_project_workspace(a.id)->name == "Checkout");
    CHECK(store.list_project_workspaces("c", {}).empty());
}

}  // namespace

TEST_CASE("project workspaces: memory_store keeps upstream's project workspace rows", "[project_workspace][services]") {
    memory_store store;
    check_project_workspace_store(store);
}

#if BERTH_TEST_SQLITE

namespace {

/// The migration that creates `project_workspaces` (its number is whatever was free when it landed).
int project_workspaces_migration() {
    for (auto const& m : schema::migrations())
        for (auto const& st : m.steps)
            if (auto const* t = std::get_if<schema::create_table>(&st); t && t->name == "project_workspaces")
                return m.version;
    return 0;
}

std::vector<std::string> column_of(std::string const& path, std::string const& sql, int col = 0) {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK);
    std::vector<std::string> out;
    while (sqlite3_step(st) == SQLITE_ROW) {
        auto const* t = sqlite3_column_text(st, col);
        out.emplace_back(t ? reinterpret_cast<char const*>(t) : "");
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
}

void exec(std::string const& path, std::string const& sql) {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    char* err = nullptr;
    int const rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    INFO(sql << ": " << (err ? err : ""));
    sqlite3_free(err);
    sqlite3_close(db);
    REQUIRE(rc == SQLITE_OK);
}

struct scratch {
    std::filesystem::path dir = std::filesystem::temp_directory_path() / ("berth-pw-" + new_id());
    scratch() { std::filesystem::create_directories(dir); }
    ~scratch() {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
    [[nodiscard]] std::string db() const { return (dir / "berth.db").string(); }
};

}  // namespace

TEST_CASE("project workspaces: sqlite_store keeps upstream's project workspace rows", "[project_workspace][services]") {
    scratch s;
    auto store = sqlite_store::open(s.db());
    check_project_workspace_store(store);
}

TEST_CASE("project workspaces: the SQLite table has upstream's columns and indexes", "[project_workspace][services]") {
    scratch s;
    { auto store = sqlite_store::open(s.db()); }
    REQUIRE(project_workspaces_migration() > 0);
    auto const cols = column_of(s.db(), "PRAGMA table_info(project_workspaces)", 1);
    std::set<std::string> const have(cols.begin(), cols.end());
    CHECK(have == std::set<std::string>{"id", "company_id", "project_id", "repository_id", "name", "source_type", "cwd",
                                        "repo_url", "repo_ref", "default_ref", "visibility", "setup_command",
                                        "cleanup_command", "remote_provider", "remote_workspace_ref",
                                        "shared_workspace_key", "metadata", "is_primary", "created_at", "updated_at"});
    std::set<std::string> members;
    boost::mp11::mp_for_each<record_members<project_workspace>>([&](auto D) { members.emplace(D.name); });
    CHECK(have == members);
    auto const idx = column_of(s.db(), "SELECT name FROM sqlite_master WHERE type = 'index' AND "
                                       "tbl_name = 'project_workspaces' AND sql IS NOT NULL");
    CHECK(std::set<std::string>(idx.begin(), idx.end()) ==
          std::set<std::string>{"project_workspaces_company_project_idx", "project_workspaces_company_repository_idx",
                                "project_workspaces_project_primary_idx", "project_workspaces_project_source_type_idx",
                                "project_workspaces_company_shared_key_idx", "project_workspaces_project_remote_ref_idx"});
    CHECK_THAT(column_of(s.db(), "SELECT sql FROM sqlite_master WHERE name = 'project_workspaces_project_remote_ref_idx'")
                   .at(0),
               Catch::Contains("UNIQUE") && Catch::Contains("project_id, remote_provider, remote_workspace_ref"));
    // The list seeks one of upstream's indexes that start with the company, never scans the table.
    auto const plan = column_of(s.db(),
                                "EXPLAIN QUERY PLAN SELECT id FROM project_workspaces WHERE company_id = 'c' "
                                "ORDER BY is_primary DESC, created_at ASC, rowid ASC",
                                3);
    REQUIRE_FALSE(plan.empty());
    CHECK_THAT(plan[0], Catch::Contains("SEARCH") && Catch::Contains("company_id=?"));
}

TEST_CASE("project workspaces: a SQLite file from before the project workspace migration keeps its rows",
          "[project_workspace][services]") {
    scratch s;
    int const before = project_workspaces_migration() - 1;
    REQUIRE(before >= 1);
    for (auto const& m : schema::migrations()) {
        if (m.version > before) break;
        for (auto const& st : m.steps)
            if (schema::applies_to(st, schema::sqlite_dialect)) exec(s.db(), schema::render(st, schema::sqlite_dialect));
    }
    exec(s.db(), "PRAGMA user_version = " + std::to_string(before));
    exec(s.db(), "PRAGMA application_id = " + std::to_string(0x62657274));
    exec(s.db(), "INSERT INTO execution_workspaces (id, company_id, project_id, mode, strategy_type, name, status, "
                 "provider_type, opened_at, created_at, updated_at) VALUES ('ew-old', 'company-1', 'project-1', "
                 "'shared_workspace', 'project_primary', 'Old', 'active', 'local_fs', '2026-01-01T00:00:00.000000Z', "
                 "'2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z')");
    auto store = sqlite_store::open(s.db());
    CHECK(column_of(s.db(), "PRAGMA user_version") == std::vector<std::string>{std::to_string(schema::current_version)});
    CHECK(store.get_execution_workspace("ew-old"));
    auto const w = store.create_project_workspace({.company_id = "company-1", .project_id = "project-1", .name = "P"},
                                                  system_clock{}.now());
    CHECK(store.get_project_workspace(w.id));
}

#endif  // BERTH_TEST_SQLITE

#ifdef BERTH_TEST_POSTGRES
TEST_CASE("project workspaces: postgres_store keeps upstream's project workspace rows",
          "[project_workspace][postgres_store]") {
    berth::test::pg::scratch_schema schema;
    auto store = postgres_store::open(schema.conninfo());
    check_project_workspace_store(store);
}
#endif

#if BERTH_TEST_SERVICES && BERTH_TEST_SQLITE

namespace {

using namespace berth::services;
using namespace berth::test::services;

/// A workspaceRuntime service entry (JSON) running the test server on an automatic port.
std::string service_json(std::string const& name) {
    return R"({"name": ")" + name + R"(", "lifecycle": "shared", "command": ")" + server + R"(", "port": {"type": "auto"},
        "readiness": {"type": "http", "urlTemplate": "http://127.0.0.1:{{port}}/health", "timeoutSec": 10,
                      "intervalMs": 100}})";
}

/// A workspace runtime config: `desired`, the services by name, and extra members (JSON text).
json_object runtime_config(std::string const& desired, std::vector<std::string> const& services,
                           std::string const& extra = "") {
    std::string list;
    for (auto const& s : services) list += (list.empty() ? "" : ", ") + service_json(s);
    return boost::json::parse(R"({"desiredState": ")" + desired + R"(", "workspaceRuntime": {"services": [)" + list +
                              "]}" + (extra.empty() ? "" : ", " + extra) + "}")
        .as_object();
}

std::vector<std::string> running_names(auto const& sup) {
    std::vector<std::string> out;
    for (auto const& r : sup.running()) out.push_back(r.service.service_name);
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace

TEMPLATE_TEST_CASE("services: restart_desired_on_startup reads the project and execution workspace rows itself",
                   "[services][project_workspace]", memory_fixture, sqlite_fixture) {
    TestType f;
    auto const now = system_clock{}.now();
    auto& store = f.store;
    // Project workspaces (config in metadata.runtimeConfig, upstream readProjectWorkspaceRuntimeConfig).
    auto const pw = store.create_project_workspace(
        {.company_id = "company-1",
         .project_id = "project-1",
         .name = "Checkout",
         .cwd = f.dir.ws("checkout"),
         .default_ref = "main",
         .metadata = json_object{{"runtimeConfig", runtime_config("running", {"api", "docs"},
                                                                  R"("serviceStates": {"1": "manual"})")}},
         .is_primary = true},
        now);
    store.create_project_workspace({.company_id = "company-1",
                                    .project_id = "project-1",
                                    .name = "Stopped",
                                    .cwd = f.dir.ws("stopped"),
                                    .metadata = json_object{{"runtimeConfig", runtime_config("stopped", {"idle"})}}},
                                   now);
    store.create_project_workspace({.company_id = "company-1",
                                    .project_id = "project-1",
                                    .name = "No cwd",
                                    .metadata = json_object{{"runtimeConfig", runtime_config("running", {"nowhere"})}}},
                                   now);
    store.create_project_workspace(
        {.company_id = "company-1",
         .project_id = "project-1",
         .name = "Unreadable",
         .cwd = f.dir.ws("unreadable"),
         .metadata = json_object{{"runtimeConfig",
                                  runtime_config("running", {"bad"}, R"("serviceStates": {"0": "paused"})")}}},
        now);
    store.create_project_workspace({.company_id = "company-2",
                                    .project_id = "project-9",
                                    .name = "Other company",
                                    .cwd = f.dir.ws("other"),
                                    .metadata = json_object{{"runtimeConfig", runtime_config("running", {"foreign"})}}},
                                   now);
    // Execution workspaces (config in metadata.config): an open one, and an archived one.
    auto const ew = store.create_execution_workspace({.company_id = "company-1",
                                                      .project_id = "project-1",
                                                      .project_workspace_id = pw.id,
                                                      .name = "Task",
                                                      .cwd = f.dir.ws("task"),
                                                      .metadata = json_object{{"config", runtime_config("running", {"worker"})}}},
                                                     now);
    store.create_execution_workspace({.company_id = "company-1",
                                      .project_id = "project-1",
                                      .name = "Done",
                                      .status = execution_workspace_status::archived,
                                      .cwd = f.dir.ws("done"),
                                      .metadata = json_object{{"config", runtime_config("running", {"archived"})}}},
                                     now);

    {
        supervisor sup{store, sh_options(f.dir)};
        auto const r = sup.restart_desired_on_startup("company-1");
        CHECK(r.restarted == 2);  // api (docs is manual) and worker
        CHECK(r.failed == 1);     // the unreadable config
        CHECK(running_names(sup) == std::vector<std::string>{"api", "worker"});
        for (auto const& s : sup.running()) {
            INFO(s.service.service_name);
            CHECK_FALSE(s.service.started_by_run_id);
            CHECK(s.service.company_id == "company-1");
            if (s.service.service_name == "api") {
                CHECK(s.service.project_workspace_id == pw.id);
                CHECK(s.service.scope_id == pw.id);
                CHECK_FALSE(s.service.execution_workspace_id);
                CHECK(s.service.cwd == f.dir.ws("checkout"));
            } else {
                CHECK(s.service.execution_workspace_id == ew.id);
                CHECK(s.service.project_workspace_id == pw.id);
                CHECK(s.service.cwd == f.dir.ws("task"));
            }
        }
        auto const again = sup.restart_desired_on_startup("company-1");  // running ones are reused
        CHECK(again.restarted == 0);
        CHECK(again.failed == 1);

        // A control on the project workspace writes its desired states where the restart reads them.
        service_context ctx;
        ctx.workspace.cwd = f.dir.ws("checkout");
        ctx.workspace.project_id = "project-1";
        ctx.workspace.project_workspace_id = pw.id;
        ctx.agent = {.id = std::nullopt, .name = "board", .company_id = "company-1"};
        auto runtime_of_store = [&] {
            return parse_workspace_runtime(
                store.get_project_workspace(pw.id)->metadata->at("runtimeConfig").as_object());
        };
        auto const stopped = sup.control(runtime_control_action::stop, ctx, runtime_of_store());
        CHECK(stopped.stopped == 1);
        CHECK(stopped.persisted);
        auto const after_stop = runtime_of_store();
        CHECK(after_stop.states.service_states.at(0) == runtime_desired_state::stopped);
        CHECK(after_stop.states.service_states.at(1) == runtime_desired_state::manual);
        CHECK(after_stop.states.desired_state == runtime_desired_state::manual);  // no service wants running
        CHECK(running_names(sup) == std::vector<std::string>{"worker"});
        // The rest of the project workspace's metadata is kept.
        CHECK(store.get_project_workspace(pw.id)->default_ref == "main");
        CHECK(sup.restart_desired_on_startup("company-1").restarted == 0);
        CHECK(running_names(sup) == std::vector<std::string>{"worker"});
    }  // a server restart: every service stops with the supervisor

    {
        supervisor sup{store, sh_options(f.dir)};
        auto const r = sup.restart_desired_on_startup("company-1");
        CHECK(r.restarted == 1);  // the project workspace is no longer `running`
        CHECK(running_names(sup) == std::vector<std::string>{"worker"});
        service_context ctx;
        ctx.workspace.cwd = f.dir.ws("checkout");
        ctx.workspace.project_id = "project-1";
        ctx.workspace.project_workspace_id = pw.id;
        ctx.agent = {.id = std::nullopt, .name = "board", .company_id = "company-1"};
        auto const runtime = parse_workspace_runtime(
            store.get_project_workspace(pw.id)->metadata->at("runtimeConfig").as_object());
        auto const started = sup.control(runtime_control_action::start, ctx, runtime, 0);
        CHECK(started.persisted);
        REQUIRE(started.started.size() == 1);
        CHECK(started.started[0].service.service_name == "api");
    }

    supervisor sup{store, sh_options(f.dir)};
    auto const r = sup.restart_desired_on_startup("company-1");
    CHECK(r.restarted == 2);
    CHECK(running_names(sup) == std::vector<std::string>{"api", "worker"});
    CHECK(sup.restart_desired_on_startup("company-2").restarted == 1);  // its own rows only
    CHECK(running_names(sup) == std::vector<std::string>{"api", "foreign", "worker"});
}

#endif  // BERTH_TEST_SERVICES && BERTH_TEST_SQLITE
