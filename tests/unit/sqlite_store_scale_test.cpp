// sqlite_store with a long history (issue 22): every list and lookup the orchestrator, recovery,
// the supervisor or a dashboard makes is one index seek plus the rows it returns, checked on a
// file of 100k leases and 200k events two ways — SQLite's EXPLAIN QUERY PLAN of the store's own
// statement texts names the index and the columns it seeks, and the statements' virtual-machine
// steps (sqlite_statement_stats::vm_steps) stay the size of the page, not of the history.
#ifdef BERTH_TEST_SQLITE

#include <catch2/catch.hpp>

#include <berth/model/ids.hpp>
#include <berth/stores/sqlite.hpp>

#include "sqlite_history_fill.hpp"

#include <sqlite3.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

using namespace berth;
namespace fs = std::filesystem;

namespace {

class scale_dir {
public:
    scale_dir() {
        std::string tmpl = (fs::temp_directory_path() / "berth-scale-XXXXXX").string();
        REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
        path_ = tmpl;
    }
    scale_dir(scale_dir const&) = delete;
    scale_dir& operator=(scale_dir const&) = delete;
    ~scale_dir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    [[nodiscard]] std::string file(std::string const& name) const { return (path_ / name).string(); }

private:
    fs::path path_;
};

timestamp t0() { return testing_support::history_start(); }

/// A raw connection on the store's file, for the fill and for EXPLAIN QUERY PLAN.
class raw_db {
public:
    explicit raw_db(std::string const& path) {
        if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) throw std::runtime_error(sqlite3_errmsg(db_));
        sqlite3_busy_timeout(db_, 5000);
    }
    raw_db(raw_db const&) = delete;
    raw_db& operator=(raw_db const&) = delete;
    ~raw_db() { sqlite3_close(db_); }

    void exec(char const* sql) {
        char* err = nullptr;
        if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
            std::string msg = err ? err : "?";
            sqlite3_free(err);
            throw std::runtime_error(msg + " in " + sql);
        }
    }
    sqlite3_stmt* prepare(std::string const& sql) {
        sqlite3_stmt* st = nullptr;
        if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK)
            throw std::runtime_error(std::string(sqlite3_errmsg(db_)) + " in " + sql);
        return st;
    }
    /// SQLite's plan for `sql`, one line per step ("SEARCH environment_leases USING INDEX ...").
    std::string plan(std::string const& sql) {
        auto* st = prepare("EXPLAIN QUERY PLAN " + sql);
        std::string out;
        while (sqlite3_step(st) == SQLITE_ROW) {
            out += reinterpret_cast<char const*>(sqlite3_column_text(st, 3));
            out += '\n';
        }
        sqlite3_finalize(st);
        return out;
    }

private:
    sqlite3* db_ = nullptr;
};

/// VM steps `read` costs the store (over its cached statements).
template <class Read>
std::uint64_t steps_of(sqlite_store& store, Read&& read) {
    auto const before = store.statement_stats().vm_steps;
    read();
    return store.statement_stats().vm_steps - before;
}

}  // namespace

TEST_CASE("sqlite_store: with 100k past leases every list seeks the index that matches its filter",
          "[sqlite_store][store_scale]") {
    scale_dir dir;
    auto const path = dir.file("history.db");
    auto store = sqlite_store::open(path);
    constexpr int leases = 100'000;
    auto const h = testing_support::fill_sqlite_raw(store, path, leases);
    auto const& env = h.environments[3];
    raw_db db(path);
    detail::sqlite::statements const sql;
    auto const any = detail::sqlite::lease_query_status({});
    std::string const by_env_status =
        "USING INDEX environment_leases_company_environment_status_idx (company_id=? AND environment_id=? AND "
        "status=?)";
    std::string const by_env_status_after =
        "USING INDEX environment_leases_company_environment_status_idx (company_id=? AND environment_id=? AND "
        "status=? AND last_used_at<?)";

    {  // the plans (blocks, not SECTIONs: the fill runs once)
        // list_leases(env, {status}): the (company, environment, status, last_used_at, id) index
        // gives the rows in list order; no sort. This is the issue's bug: the planner took the
        // company's last-used index for the ORDER BY and tested environment and status row by row.
        for (std::size_t st = 1; st <= detail::lease_status_count; ++st) {
            auto const p = db.plan(sql.env_leases[st][0]);
            INFO(sql.env_leases[st][0] << "\n" << p);
            CHECK_THAT(p, Catch::Contains("SEARCH environment_leases " + by_env_status));
            CHECK_THAT(p, !Catch::Contains("TEMP B-TREE") && !Catch::Contains("SCAN environment_leases") &&
                              !Catch::Contains("last_used_idx"));
            auto const q = db.plan(sql.env_leases[st][1]);
            INFO(sql.env_leases[st][1] << "\n" << q);
            CHECK_THAT(q, Catch::Contains("SEARCH environment_leases " + by_env_status_after));
            CHECK_THAT(q, !Catch::Contains("TEMP B-TREE") && !Catch::Contains("SCAN environment_leases"));
        }
        // list_leases(env, {}): one range of that index per status, each in order and cut at the
        // limit, merged: six seeks, and only the merge sorts (at most six pages of rows).
        for (std::size_t c = 0; c < 2; ++c) {
            auto const p = db.plan(sql.env_leases[any][c]);
            INFO(sql.env_leases[any][c] << "\n" << p);
            std::size_t seeks = 0;
            for (auto pos = p.find(c ? by_env_status_after : by_env_status); pos != std::string::npos;
                 pos = p.find(c ? by_env_status_after : by_env_status, pos + 1))
                ++seeks;
            CHECK(seeks == detail::lease_status_count);
            CHECK_THAT(p, !Catch::Contains("SCAN environment_leases") && !Catch::Contains("last_used_idx"));
        }
        // list_run_leases: the run index (a run has a handful of leases; their sort is that size).
        for (std::size_t st = 0; st <= detail::lease_status_count; ++st)
            for (std::size_t c = 0; c < 2; ++c) {
                auto const p = db.plan(sql.run_leases[st][c]);
                INFO(sql.run_leases[st][c] << "\n" << p);
                CHECK_THAT(p, Catch::Contains("SEARCH environment_leases USING INDEX "
                                              "environment_leases_heartbeat_run_idx (heartbeat_run_id=?)"));
            }
        // The expiry sweep, the capacity count and the reuse-scope checks: berth's partial indexes
        // and the environment index's prefix.
        CHECK_THAT(db.plan(sql.expired), Catch::Contains("SEARCH environment_leases USING INDEX "
                                                         "environment_leases_active_expires_idx (expires_at") &&
                                             Catch::Contains("expires_at<?)"));
        CHECK_THAT(db.plan(sql.expired), !Catch::Contains("TEMP B-TREE"));
        CHECK_THAT(db.plan(sql.count_active),
                   Catch::Contains("SEARCH environment_leases USING COVERING INDEX "
                                   "environment_leases_company_environment_status_idx (company_id=? AND "
                                   "environment_id=? AND status=?)"));
        CHECK_THAT(db.plan(sql.reuse_scope_holder),
                   Catch::Contains("environment_leases_reuse_scope_active_idx (environment_id=? AND reuse_scope=?)"));
        CHECK_THAT(db.plan(sql.get_lease), Catch::Contains("sqlite_autoindex_environment_leases_1 (id=?)"));
        // Recovery's listing (issue 15): each arm of the union reads only its partial index (the
        // active leases of this host's holders, the active leases past expiry, pending_cleanup),
        // never the history; the outer query fetches the rows by rowid.
        {
            auto const p = db.plan(sql.recoverable);
            INFO(sql.recoverable << "\n" << p);
            CHECK_THAT(p, Catch::Contains("environment_leases_active_holder_idx (holder_host=?)"));
            CHECK_THAT(p, Catch::Contains("environment_leases_active_expires_idx (expires_at>? AND expires_at<?)"));
            CHECK_THAT(p, Catch::Contains("SCAN environment_leases USING INDEX environment_leases_pending_cleanup_idx"));
            CHECK_THAT(p, !Catch::Contains("environment_leases_company_environment_status_idx"));
        }
        // list_activity by company (a dashboard), by run, by entity (the lease's history).
        auto activity_plan = [&](activity_filter const& f) {
            auto const text = detail::sqlite::activity_list_sql(sql, f);
            auto p = db.plan(text);
            UNSCOPED_INFO(text << "\n" << p);
            return p;
        };
        auto const company = activity_plan({.company_id = "c"});
        CHECK_THAT(company, Catch::Contains("SEARCH activity_log USING INDEX activity_log_company_created_idx "
                                            "(company_id=?)"));
        // Ties on created_at are ordered by id in groups, never the company's whole log.
        CHECK_THAT(company, !Catch::Contains("USE TEMP B-TREE FOR ORDER BY"));
        auto const company_after = activity_plan({.company_id = "c", .after = activity_cursor{t0(), "x"}});
        CHECK_THAT(company_after, Catch::Contains("activity_log_company_created_idx (company_id=? AND created_at>?)"));
        CHECK_THAT(company_after, !Catch::Contains("USE TEMP B-TREE FOR ORDER BY"));
        CHECK_THAT(activity_plan({.company_id = "c", .run_id = "r"}),
                   Catch::Contains("activity_log_run_id_idx (run_id=?)"));
        CHECK_THAT(activity_plan({.run_id = "r"}), Catch::Contains("activity_log_run_id_idx (run_id=?)"));
        CHECK_THAT(activity_plan({.entity_id = "l"}), Catch::Contains("activity_log_entity_type_id_idx (entity_type=? AND entity_id=?)"));
        CHECK_THAT(activity_plan({.entity_type = "environment_lease", .entity_id = "l"}),
                   Catch::Contains("activity_log_entity_type_id_idx (entity_type=? AND entity_id=?)"));
        CHECK_THAT(activity_plan({.company_id = "c", .entity_id = "l"}),
                   Catch::Contains("activity_log_entity_type_id_idx (entity_type=? AND entity_id=?)"));
        // Every company's log, and one entity type's (schema 10): the created-order indexes give
        // the page in order, from the cursor on; no sort of the log.
        auto const everything = activity_plan({});
        CHECK_THAT(everything, Catch::Contains("SCAN activity_log USING INDEX activity_log_created_idx"));
        CHECK_THAT(everything, !Catch::Contains("TEMP B-TREE"));
        auto const everything_after = activity_plan({.after = activity_cursor{t0(), "x"}});
        CHECK_THAT(everything_after, Catch::Contains("SEARCH activity_log USING INDEX activity_log_created_idx (created_at>?)"));
        CHECK_THAT(everything_after, !Catch::Contains("TEMP B-TREE"));
        auto const of_type = activity_plan({.entity_type = "environment_lease"});
        CHECK_THAT(of_type, Catch::Contains("SEARCH activity_log USING INDEX activity_log_entity_type_created_idx "
                                            "(entity_type=?)"));
        CHECK_THAT(of_type, !Catch::Contains("TEMP B-TREE"));
        auto const of_type_after =
            activity_plan({.entity_type = "environment_lease", .after = activity_cursor{t0(), "x"}});
        CHECK_THAT(of_type_after, Catch::Contains("activity_log_entity_type_created_idx (entity_type=? AND created_at>?)"));
        CHECK_THAT(of_type_after, !Catch::Contains("TEMP B-TREE"));
    }

    {  // what the lists cost: their page, not the history
        // The same statements through the store. A page costs a few dozen VM steps per row it
        // visits; the environment's history here is 10,000 leases, so a scan of it would cost
        // hundreds of thousands.
        std::vector<environment_lease> page;
        CHECK(steps_of(store, [&] { page = store.list_leases(env.id, {.status = lease_status::active}); }) < 2'000);
        CHECK(page.size() == 3);
        CHECK(steps_of(store, [&] { page = store.list_leases(env.id, {.status = lease_status::retained}); }) < 2'000);
        CHECK(page.size() == 2);
        CHECK(steps_of(store, [&] { page = store.list_leases(env.id, {.limit = 20}); }) < 20'000);
        REQUIRE(page.size() == 20);
        CHECK(page.front().status == lease_status::active);
        auto const next = store.list_leases(env.id, {.limit = 20, .after = lease_cursor_of(page.back())});
        REQUIRE(next.size() == 20);
        CHECK(next.front().last_used_at < page.back().last_used_at);
        CHECK(steps_of(store, [&] {
                  page = store.list_leases(env.id, {.status = lease_status::released, .limit = 50,
                                                    .after = lease_cursor_of(next.back())});
              }) < 20'000);
        CHECK(page.size() == 50);
        CHECK(steps_of(store, [&] { page = store.list_run_leases(h.some_run, {.status = lease_status::active}); }) <
              2'000);
        CHECK(steps_of(store, [&] { page = store.list_expired_leases(t0() + std::chrono::hours(10'000)); }) < 2'000);
        CHECK(page.size() == 10);
        // No holder on another host, nothing pending: recovery reads the 10 expired leases only.
        CHECK(steps_of(store, [&] {
                  page = store.list_recoverable_leases("no-such-host", t0() + std::chrono::hours(10'000));
              }) < 2'000);
        CHECK(page.size() == 10);
        std::vector<activity_event> events;
        CHECK(steps_of(store, [&] { events = store.list_activity({.company_id = env.company_id, .limit = 50}); }) <
              20'000);
        REQUIRE(events.size() == 50);
        CHECK(steps_of(store, [&] {
                  events = store.list_activity(
                      {.company_id = env.company_id, .limit = 50, .after = activity_cursor_of(events.back())});
              }) < 20'000);
        CHECK(events.size() == 50);
        CHECK(steps_of(store, [&] { events = store.list_activity({.limit = 50}); }) < 20'000);
        REQUIRE(events.size() == 50);
        CHECK(steps_of(store, [&] {
                  events = store.list_activity({.limit = 50, .after = activity_cursor_of(events.back())});
              }) < 20'000);
        CHECK(events.size() == 50);
        CHECK(steps_of(store, [&] { events = store.list_activity({.entity_type = "environment_lease", .limit = 50}); }) <
              20'000);
        CHECK(events.size() == 50);
        CHECK(steps_of(store, [&] { events = store.list_activity({.run_id = h.some_run}); }) < 2'000);
        CHECK(events.size() == 2);
        CHECK(steps_of(store, [&] { events = store.list_activity({.entity_id = h.some_lease}); }) < 2'000);
        CHECK(events.size() == 2);
        // And the counter does see a walk of the history: the whole released list of one environment.
        CHECK(steps_of(store, [&] {
                  page = store.list_leases(env.id, {.status = lease_status::released, .limit = no_limit});
              }) > 100'000);
        CHECK(page.size() > 8'000);
    }
}

TEST_CASE("sqlite_store: with 100k execution workspaces and operations every list seeks its order's index",
          "[sqlite_store][store_scale]") {
    scale_dir dir;
    auto const path = dir.file("workspaces.db");
    auto store = sqlite_store::open(path);
    raw_db db(path);
    // 100k workspaces over 10 companies (the newest 3 of each active, the rest archived, every 7th
    // without a last_used_at) and one operation each, written raw in one transaction.
    db.exec(R"(BEGIN;
        WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 99999),
             t(i, at) AS (SELECT i, strftime('%Y-%m-%dT%H:%M:%S', '2026-01-01', '+' || i || ' seconds') || '.000000Z' FROM n)
        INSERT INTO execution_workspaces (id, company_id, project_id, source_issue_id, mode, strategy_type, name,
                                          status, cwd, branch_name, provider_type, last_used_at, opened_at,
                                          created_at, updated_at)
        SELECT printf('ew-%06d', i), 'company-' || (i % 10), 'project-' || (i % 3), 'issue-' || i, 'shared_workspace',
               'project_primary', 'ws-' || i, CASE WHEN i / 10 >= 9997 THEN 'active' ELSE 'archived' END,
               '/tmp/ws-' || i, 'branch-' || i, 'local_fs', CASE WHEN i % 7 = 0 THEN NULL ELSE at END, at, at, at
        FROM t;
        WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 99999),
             t(i, at) AS (SELECT i, strftime('%Y-%m-%dT%H:%M:%S', '2026-01-01', '+' || i || ' seconds') || '.000000Z' FROM n)
        INSERT INTO workspace_operations (id, company_id, execution_workspace_id, heartbeat_run_id, issue_id, phase,
                                          status, log_compressed, started_at, created_at, updated_at)
        SELECT printf('op-%06d', i), 'company-' || (i % 10), printf('ew-%06d', i), 'ws-run-' || i, 'issue-' || i,
               'worktree_prepare', 'succeeded', 0, at, at, at
        FROM t;
        COMMIT;)");
    detail::sqlite::statements const sql;
    using detail::sqlite::execution_workspace_list_sql;
    using detail::sqlite::operation_list_sql;
    // (Catch2 v2 matchers hold their operands by reference: each check spells its own.)

    {  // the plans: each seeks the index whose columns are the filter then the list order
        std::string const by_company = "USING INDEX execution_workspaces_company_last_used_idx (company_id=? AND ";
        CHECK_THAT(db.plan(execution_workspace_list_sql(sql, {}, false, false)),
                   Catch::Contains(by_company + "last_used_at>?)") && !Catch::Contains("TEMP B-TREE"));
        CHECK_THAT(db.plan(execution_workspace_list_sql(sql, {}, false, true)),
                   Catch::Contains(by_company + "last_used_at>? AND last_used_at<?)") && !Catch::Contains("TEMP B-TREE"));
        CHECK_THAT(db.plan(execution_workspace_list_sql(sql, {}, true, false)),
                   Catch::Contains(by_company + "last_used_at=?)") && !Catch::Contains("TEMP B-TREE"));
        CHECK_THAT(db.plan(execution_workspace_list_sql(sql, {}, true, true)),
                   Catch::Contains(by_company + "last_used_at=? AND created_at<?)") && !Catch::Contains("TEMP B-TREE"));
        CHECK_THAT(db.plan(execution_workspace_list_sql(sql, {.status = execution_workspace_status::active}, false, false)),
                   Catch::Contains("execution_workspaces_company_status_last_used_idx (company_id=? AND status=? AND "
                                   "last_used_at>?)") &&
                       !Catch::Contains("TEMP B-TREE"));
        CHECK_THAT(db.plan(execution_workspace_list_sql(
                       sql, {.project_id = "p", .status = execution_workspace_status::active}, true, true)),
                   Catch::Contains("execution_workspaces_company_project_status_idx (company_id=? AND project_id=? AND "
                                   "status=? AND last_used_at=? AND created_at<?)") &&
                       !Catch::Contains("TEMP B-TREE"));
        // The workspace manager's look-up of an active worktree by branch: a handful of rows.
        CHECK_THAT(db.plan(execution_workspace_list_sql(
                       sql, {.project_id = "p", .status = execution_workspace_status::active, .branch_name = "b"}, false,
                       false)),
                   Catch::Contains("(company_id=? AND branch_name=?)") ||
                       Catch::Contains("(company_id=? AND project_id=? AND status=? AND last_used_at>?)"));
        // What recover() reads for a dead run: its operations, by the run id alone.
        CHECK_THAT(db.plan(operation_list_sql(sql, {.heartbeat_run_id = "r", .limit = no_limit})),
                   Catch::Contains("workspace_operations_run_started_idx (heartbeat_run_id=?)") && !Catch::Contains("TEMP B-TREE"));
        CHECK_THAT(db.plan(operation_list_sql(sql, {.company_id = "c"})),
                   Catch::Contains("workspace_operations_company_started_idx (company_id=?)") && !Catch::Contains("TEMP B-TREE"));
        CHECK_THAT(db.plan(operation_list_sql(sql, {.company_id = "c", .after = "x"})),
                   Catch::Contains("workspace_operations_company_started_idx (company_id=? AND started_at>?)") && !Catch::Contains("TEMP B-TREE"));
        CHECK_THAT(db.plan(operation_list_sql(sql, {.company_id = "c", .heartbeat_run_id = "r"})),
                   Catch::Contains("workspace_operations_company_run_started_idx (company_id=? AND heartbeat_run_id=?)") &&
                       !Catch::Contains("TEMP B-TREE"));
        CHECK_THAT(db.plan(operation_list_sql(sql, {.company_id = "c", .execution_workspace_id = "w"})),
                   Catch::Contains("(company_id=? AND execution_workspace_id=?)") && !Catch::Contains("TEMP B-TREE"));
    }

    {  // what the lists cost: their page, not the company's 10,000 workspaces
        std::vector<execution_workspace> page;
        CHECK(steps_of(store, [&] { page = store.list_execution_workspaces("company-4", {.limit = 50}); }) < 20'000);
        REQUIRE(page.size() == 50);
        CHECK(page.front().id == "ew-099994");  // the newest (99,994 is not a multiple of 7: it has a last_used_at)
        CHECK(steps_of(store, [&] {
                  page = store.list_execution_workspaces("company-4", {.limit = 50, .after = page.back().id});
              }) < 20'000);
        CHECK(page.size() == 50);
        CHECK(steps_of(store, [&] {
                  page = store.list_execution_workspaces("company-4", {.status = execution_workspace_status::active});
              }) < 2'000);
        CHECK(page.size() == 3);
        std::vector<workspace_operation> ops;
        CHECK(steps_of(store, [&] { ops = store.list_operations({.heartbeat_run_id = "ws-run-50000", .limit = no_limit}); }) <
              2'000);
        REQUIRE(ops.size() == 1);
        CHECK(ops.front().execution_workspace_id == "ew-050000");
        CHECK(steps_of(store, [&] { ops = store.list_operations({.company_id = "company-4", .limit = 50}); }) < 20'000);
        REQUIRE(ops.size() == 50);
        CHECK(steps_of(store, [&] {
                  ops = store.list_operations({.company_id = "company-4", .limit = 50, .after = ops.back().id});
              }) < 20'000);
        CHECK(ops.size() == 50);
        CHECK(ops.front().id == "op-000504");
    }

    {  // paging walks the whole order once, across the null boundary: pages of 999 == one list
        auto const all = store.list_execution_workspaces("company-7", {.limit = no_limit});
        REQUIRE(all.size() == 10'000);
        std::vector<execution_workspace> paged;
        std::optional<std::string> after;
        for (;;) {
            auto const page = store.list_execution_workspaces("company-7", {.limit = 999, .after = after});
            if (page.empty()) break;
            paged.insert(paged.end(), page.begin(), page.end());
            after = page.back().id;
        }
        REQUIRE(paged.size() == all.size());
        bool same = true;
        for (std::size_t i = 0; i < all.size(); ++i) same = same && paged[i].id == all[i].id;
        CHECK(same);
        CHECK(all.front().last_used_at.has_value());
        CHECK(!all.back().last_used_at.has_value());
        CHECK(all.back().id == "ew-000007");  // the oldest without a last_used_at comes last
    }
}

#endif  // BERTH_TEST_SQLITE
