// The workspace tables in the SQLite store (migration 4): upstream's columns and indexes, every
// record member a column, a version-3 file migrated with its rows kept, and unreadable rows
// reported naming table, column and row. (The behaviour of both stores is the conformance kit's.)
#include <catch2/catch.hpp>

#if BERTH_TEST_SQLITE

#include "git_fixture.hpp"

#include <berth/concepts/clock.hpp>
#include <berth/stores/schema.hpp>
#include <berth/stores/sqlite.hpp>

#include <boost/mp11/algorithm.hpp>

#include <sqlite3.h>

#include <set>
#include <string>
#include <vector>

using namespace berth;

namespace {

/// A raw connection to look at (and tamper with) the file behind the store's back.
class raw {
public:
    explicit raw(std::string const& path) { REQUIRE(sqlite3_open(path.c_str(), &db_) == SQLITE_OK); }
    ~raw() { sqlite3_close(db_); }
    void exec(std::string const& sql) {
        char* err = nullptr;
        int const rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
        INFO(sql << ": " << (err ? err : ""));
        sqlite3_free(err);
        REQUIRE(rc == SQLITE_OK);
    }
    std::vector<std::string> column(std::string const& sql, int col = 0) {
        sqlite3_stmt* st = nullptr;
        REQUIRE(sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) == SQLITE_OK);
        std::vector<std::string> out;
        while (sqlite3_step(st) == SQLITE_ROW) {
            auto const* t = sqlite3_column_text(st, col);
            out.emplace_back(t ? reinterpret_cast<char const*>(t) : "");
        }
        sqlite3_finalize(st);
        return out;
    }

private:
    sqlite3* db_ = nullptr;
};

template <class R>
std::set<std::string> members_of() {
    std::set<std::string> names;
    boost::mp11::mp_for_each<record_members<R>>([&](auto D) { names.emplace(D.name); });
    return names;
}

}  // namespace

TEST_CASE("migration 4 creates upstream's execution_workspaces and workspace_operations", "[workspace][sqlite_store]") {
    test::temp_dir dir("berth-ws-db");
    auto const path = (dir / "berth.db").string();
    { auto store = sqlite_store::open(path); }
    raw db(path);
    CHECK(db.column("PRAGMA user_version") == std::vector<std::string>{std::to_string(sqlite_store::schema_version)});
    auto cols = [&](std::string const& t) {
        auto v = db.column("PRAGMA table_info(" + t + ")", 1);
        return std::set<std::string>(v.begin(), v.end());
    };
    CHECK(cols("execution_workspaces") ==
          std::set<std::string>{"id", "company_id", "project_id", "project_workspace_id", "source_issue_id", "mode",
                                "strategy_type", "name", "status", "cwd", "repo_url", "base_ref", "branch_name",
                                "provider_type", "provider_ref", "derived_from_execution_workspace_id", "last_used_at",
                                "opened_at", "closed_at", "cleanup_eligible_at", "cleanup_reason", "metadata",
                                "created_at", "updated_at"});
    CHECK(cols("workspace_operations") ==
          std::set<std::string>{"id", "company_id", "execution_workspace_id", "heartbeat_run_id", "issue_id", "phase",
                                "command", "cwd", "status", "exit_code", "log_store", "log_ref", "log_bytes",
                                "log_sha256", "log_compressed", "stdout_excerpt", "stderr_excerpt", "metadata",
                                "started_at", "finished_at", "created_at", "updated_at"});
    CHECK(cols("execution_workspaces") == members_of<execution_workspace>());
    CHECK(cols("workspace_operations") == members_of<workspace_operation>());
    auto const idx = db.column("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL");
    std::set<std::string> const have(idx.begin(), idx.end());
    for (auto const* name :
         {"execution_workspaces_company_project_status_idx", "execution_workspaces_company_project_workspace_status_idx",
          "execution_workspaces_company_source_issue_idx", "execution_workspaces_company_last_used_idx",
          "execution_workspaces_company_branch_idx", "workspace_operations_company_run_started_idx",
          "workspace_operations_company_workspace_started_idx",
          "workspace_operations_company_workspace_issue_started_idx"}) {
        INFO(name);
        CHECK(have.contains(name));
    }
    auto const ops_idx = db.column("SELECT sql FROM sqlite_master WHERE name = "
                                   "'workspace_operations_company_workspace_issue_started_idx'");
    REQUIRE(ops_idx.size() == 1);
    CHECK_THAT(ops_idx[0], Catch::Contains("company_id, execution_workspace_id, issue_id, started_at"));
}

TEST_CASE("a file from before migration 4 is migrated with its rows kept", "[workspace][sqlite_store]") {
    test::temp_dir dir("berth-ws-db");
    auto const path = (dir / "berth.db").string();
    {
        raw db(path);
        for (auto const& m : schema::migrations()) {
            if (m.version > 3) break;
            for (auto const& st : m.steps)
                if (schema::applies_to(st, schema::sqlite_dialect)) db.exec(schema::render(st, schema::sqlite_dialect));
        }
        db.exec("PRAGMA user_version = 3");
        db.exec("PRAGMA application_id = " + std::to_string(0x62657274));
        db.exec("INSERT INTO environments (id, company_id, name, driver, status, config, created_at, updated_at) "
                "VALUES ('env-1', 'c1', 'Local', 'local', 'active', '{}', '2026-01-01T00:00:00.000000Z', "
                "'2026-01-01T00:00:00.000000Z')");
    }
    auto store = sqlite_store::open(path);
    CHECK(store.get_environment("env-1"));
    auto const w = store.create_execution_workspace(
        {.company_id = "c1", .project_id = "p1", .name = "w"}, berth::system_clock{}.now());
    CHECK(store.get_execution_workspace(w.id));
    CHECK(raw(path).column("PRAGMA user_version") == std::vector<std::string>{std::to_string(sqlite_store::schema_version)});
}

TEST_CASE("unreadable workspace rows are reported, not silently read", "[workspace][sqlite_store]") {
    test::temp_dir dir("berth-ws-db");
    auto const path = (dir / "berth.db").string();
    std::vector<std::string> skipped;
    auto store = sqlite_store::open(path, {.on_unreadable_row = [&](store_error const& e) { skipped.push_back(e.what()); }});
    auto const op = store.begin_operation({.company_id = "c1"}, berth::system_clock{}.now());
    auto const good = store.begin_operation({.company_id = "c1"}, berth::system_clock{}.now());
    auto const w = store.create_execution_workspace({.company_id = "c1", .project_id = "p1", .name = "w"},
                                                    berth::system_clock{}.now());
    {
        raw db(path);
        db.exec("UPDATE workspace_operations SET log_compressed = 2 WHERE id = '" + op.id + "'");
        db.exec("UPDATE execution_workspaces SET strategy_type = 'teleport' WHERE id = '" + w.id + "'");
    }
    CHECK(store.list_operations({}).size() == 1);
    REQUIRE(skipped.size() == 1);
    CHECK_THAT(skipped[0], Catch::Contains("workspace_operations.log_compressed") && Catch::Contains(op.id));
    try {
        (void)store.get_execution_workspace(w.id);
        FAIL("no error");
    } catch (store_error const& e) {
        CHECK(e.code() == store_errc::corrupt_row);
        CHECK_THAT(e.what(), Catch::Contains("execution_workspaces.strategy_type") &&
                                 Catch::Contains("Unexpected execution workspace strategy type value: teleport"));
    }
    CHECK(store.get_operation(good.id));
}

#endif
