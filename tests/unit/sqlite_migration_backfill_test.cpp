// Migration 7's backfill (stores/schema.hpp): a file written before reuse scopes existed keeps, for
// each lease that held a reuse slot under migration 2's per-policy indexes, the scope key its
// policy now chooses — and only those leases. Checked on a version 1 file written by hand, as the
// first berth wrote it, opened (and so migrated to the current version) by sqlite_store.
#ifdef BERTH_TEST_SQLITE

#include <berth/error.hpp>
#include <berth/stores/sqlite.hpp>

#include "git_fixture.hpp"  // berth::test::temp_dir

#include <catch2/catch.hpp>

#include <sqlite3.h>

#include <optional>
#include <string>

namespace {

using berth::lease_status;
using berth::store_errc;
using berth::store_error;

berth::timestamp t0() { return berth::timestamp::from_micros(1767225600000000); }  // 2026-01-01T00:00:00Z

void exec(std::string const& path, std::string const& sql) {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    char* err = nullptr;
    int const rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    INFO((err ? err : ""));
    sqlite3_free(err);
    sqlite3_close(db);
    REQUIRE(rc == SQLITE_OK);
}

// Schema version 1: upstream's tables and indexes, no epoch, no reuse scope; migration 2 adds the
// per-policy reuse indexes that migration 7 replaces.
constexpr char const* version_1_schema = R"sql(
    PRAGMA journal_mode = WAL;
    CREATE TABLE environments (id TEXT PRIMARY KEY NOT NULL, company_id TEXT NOT NULL, name TEXT NOT NULL,
      description TEXT, driver TEXT NOT NULL DEFAULT 'local', status TEXT NOT NULL DEFAULT 'active',
      config TEXT NOT NULL DEFAULT '{}', metadata TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
    CREATE INDEX environments_company_status_idx ON environments (company_id, status);
    CREATE UNIQUE INDEX environments_company_driver_idx ON environments (company_id, driver) WHERE driver = 'local';
    CREATE INDEX environments_company_name_idx ON environments (company_id, name);
    CREATE TABLE environment_leases (id TEXT PRIMARY KEY NOT NULL, company_id TEXT NOT NULL,
      environment_id TEXT NOT NULL REFERENCES environments(id) ON DELETE CASCADE, execution_workspace_id TEXT,
      issue_id TEXT, heartbeat_run_id TEXT, status TEXT NOT NULL DEFAULT 'active',
      lease_policy TEXT NOT NULL DEFAULT 'ephemeral', provider TEXT, provider_lease_id TEXT,
      acquired_at TEXT NOT NULL, last_used_at TEXT NOT NULL, expires_at TEXT, released_at TEXT,
      failure_reason TEXT, cleanup_status TEXT, metadata TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
    CREATE INDEX environment_leases_company_environment_status_idx ON environment_leases (company_id, environment_id, status);
    CREATE INDEX environment_leases_company_execution_workspace_idx ON environment_leases (company_id, execution_workspace_id);
    CREATE INDEX environment_leases_company_issue_idx ON environment_leases (company_id, issue_id);
    CREATE INDEX environment_leases_heartbeat_run_idx ON environment_leases (heartbeat_run_id);
    CREATE INDEX environment_leases_company_last_used_idx ON environment_leases (company_id, last_used_at);
    CREATE INDEX environment_leases_provider_lease_idx ON environment_leases (provider_lease_id);
    CREATE TABLE activity_log (id TEXT PRIMARY KEY NOT NULL, company_id TEXT NOT NULL,
      actor_type TEXT NOT NULL DEFAULT 'system', actor_id TEXT NOT NULL, action TEXT NOT NULL,
      entity_type TEXT NOT NULL, entity_id TEXT NOT NULL, agent_id TEXT, run_id TEXT, details TEXT,
      created_at TEXT NOT NULL);
    CREATE INDEX activity_log_company_created_idx ON activity_log (company_id, created_at);
    CREATE INDEX activity_log_run_id_idx ON activity_log (run_id);
    CREATE INDEX activity_log_entity_type_id_idx ON activity_log (entity_type, entity_id);
    PRAGMA application_id = 1650815604;
    PRAGMA user_version = 1;
)sql";

std::string lease_row(char const* id, char const* env, char const* status, char const* policy, char const* workspace) {
    auto const ts = std::string("'2026-01-01T00:00:00.000000Z'");
    auto const released = std::string(status) == "active" ? std::string("NULL") : ts;
    return std::string("INSERT INTO environment_leases (id, company_id, environment_id, execution_workspace_id, "
                       "status, lease_policy, provider, acquired_at, last_used_at, released_at, created_at, "
                       "updated_at) VALUES ('") +
           id + "', 'c1', '" + env + "', " + (workspace ? "'" + std::string(workspace) + "'" : "NULL") + ", '" +
           status + "', '" + policy + "', 'fake', " + ts + ", " + ts + ", " + released + ", " + ts + ", " + ts + ");\n";
}

}  // namespace

TEST_CASE("sqlite migration 7 backfills reuse scopes of the active reuse leases only", "[sqlite_store][migration]") {
    berth::test::temp_dir dir{"berth-migration-7"};
    auto const path = (dir / "v1.db").string();
    std::string rows =
        "INSERT INTO environments VALUES ('e1', 'c1', 'box 1', NULL, 'sandbox', 'active', '{}', NULL, "
        "'2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z');\n"
        "INSERT INTO environments VALUES ('e2', 'c1', 'box 2', NULL, 'sandbox', 'active', '{}', NULL, "
        "'2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z');\n";
    rows += lease_row("env-active-1", "e1", "active", "reuse_by_environment", nullptr);
    rows += lease_row("env-active-2", "e2", "active", "reuse_by_environment", nullptr);  // another environment
    rows += lease_row("env-released", "e1", "released", "reuse_by_environment", nullptr);
    rows += lease_row("env-retained", "e1", "retained", "reuse_by_environment", nullptr);
    rows += lease_row("ws-active-a", "e1", "active", "reuse_by_execution_workspace", "ws-a");
    rows += lease_row("ws-active-b", "e1", "active", "reuse_by_execution_workspace", "ws-b");
    rows += lease_row("ws-active-none", "e1", "active", "reuse_by_execution_workspace", nullptr);
    rows += lease_row("ws-failed-a", "e1", "failed", "reuse_by_execution_workspace", "ws-a");
    rows += lease_row("ephemeral-active", "e1", "active", "ephemeral", "ws-a");
    rows += lease_row("retain-active", "e1", "active", "retain_on_failure", nullptr);
    exec(path, std::string(version_1_schema) + rows);

    auto store = berth::sqlite_store::open(path);  // migrates 1 → current
    auto scope_of = [&](char const* id) {
        auto const l = store.get_lease(id);
        REQUIRE(l);
        return l->reuse_scope;
    };
    using scope = std::optional<std::string>;
    CHECK(scope_of("env-active-1") == scope("environment"));
    CHECK(scope_of("env-active-2") == scope("environment"));
    CHECK(scope_of("ws-active-a") == scope("execution_workspace:ws-a"));
    CHECK(scope_of("ws-active-b") == scope("execution_workspace:ws-b"));
    // Held no slot before (ended, retained, no workspace, not a reuse policy): holds none now.
    for (auto const* id : {"env-released", "env-retained", "ws-active-none", "ws-failed-a", "ephemeral-active",
                           "retain-active"}) {
        INFO(id);
        CHECK(scope_of(id) == std::nullopt);
    }

    // The backfilled keys are enforced by the new (environment, reuse_scope) index: a second
    // active lease of a held scope is refused with conflict, a free one is not.
    auto lease = [](char const* id, char const* env, std::optional<std::string> s) {
        return berth::new_lease{.id = id, .company_id = "c1", .environment_id = env, .reuse_scope = std::move(s)};
    };
    for (auto const& [env, key] : {std::pair{"e1", "environment"}, std::pair{"e2", "environment"},
                                   std::pair{"e1", "execution_workspace:ws-a"}}) {
        INFO(env << " " << key);
        try {
            (void)store.acquire_lease(lease("second", env, std::string(key)), t0(), std::nullopt);
            FAIL("a second active lease of a backfilled scope was accepted");
        } catch (store_error const& e) {
            CHECK(e.code() == store_errc::conflict);
        }
    }
    CHECK(store.acquire_lease(lease("free", "e1", std::string("execution_workspace:ws-c")), t0(), std::nullopt)
              .reuse_scope == scope("execution_workspace:ws-c"));
    // Ending the backfilled lease frees its scope.
    auto const held = store.get_lease("env-active-1");
    (void)store.transition_lease({.id = held->id, .expected_epoch = held->epoch, .to = lease_status::released}, t0(),
                                 std::nullopt);
    CHECK(store.acquire_lease(lease("next", "e1", std::string("environment")), t0(), std::nullopt).reuse_scope ==
          scope("environment"));
}

#endif
