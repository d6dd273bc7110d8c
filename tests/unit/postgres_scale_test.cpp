// postgres_store at scale: every query the orchestrator and recovery issue is served by an index
// (EXPLAIN on a filled database, no sequential scan of berth's tables), a migration on a populated
// database completes, and every statement is classified by the key it reaches rows through
// (company, or a globally unique id) — what distributing the tables by company_id relies on
// (docs/stores.md, "Growing past one primary").
//
// Fill sizes keep ctest fast (20k leases, 100k events by default). The sizes:
//   BERTH_PG_SCALE_LEASES=1000000 BERTH_PG_SCALE_EVENTS=10000000 build/tests/berth_tests "[postgres_scale]"
// (a few minutes on two cores; the fill is generate_series inside the server).
#ifdef BERTH_TEST_POSTGRES

#include <catch2/catch.hpp>

#include <berth/stores/postgres.hpp>
#include <berth/testing/manual_clock.hpp>

#include "postgres_fixture.hpp"

#include <libpq-fe.h>

#include <algorithm>  // std::min

#include <cstdlib>
#include <string>
#include <vector>

using namespace berth;
namespace pg = berth::test::pg;

namespace {

long env_or(char const* name, long fallback) {
    char const* v = std::getenv(name);
    return v && *v ? std::atol(v) : fallback;
}

/// A libpq connection of the test's own, for SQL the store does not offer.
class raw {
public:
    explicit raw(std::string const& conninfo) : c_(PQconnectdb(conninfo.c_str())) {
        REQUIRE(PQstatus(c_) == CONNECTION_OK);
    }
    raw(raw const&) = delete;
    raw& operator=(raw const&) = delete;
    ~raw() { PQfinish(c_); }
    std::vector<std::string> query(std::string const& sql, std::vector<std::string> const& args = {}) {
        std::vector<char const*> v;
        for (auto const& a : args) v.push_back(a.c_str());
        PGresult* r = PQexecParams(c_, sql.c_str(), static_cast<int>(v.size()), nullptr, v.data(), nullptr, nullptr, 0);
        auto const st = PQresultStatus(r);
        INFO(sql);
        INFO(PQresultErrorMessage(r));
        REQUIRE((st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK));
        std::vector<std::string> rows;
        for (int i = 0; i < PQntuples(r); ++i) {
            std::string line;
            for (int j = 0; j < PQnfields(r); ++j) (line += j ? "|" : "") += PQgetvalue(r, i, j);
            rows.push_back(line);
        }
        PQclear(r);
        return rows;
    }
    void exec(std::string const& sql) {
        PGresult* r = PQexec(c_, sql.c_str());
        INFO(sql);
        INFO(PQresultErrorMessage(r));
        REQUIRE((PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK));
        PQclear(r);
    }

private:
    PGconn* c_;
};

/// Fills the schema: 1000 companies with a local environment each, `leases` leases (1 in 50
/// active, 1 in 100 with an expiry, 3 per run) and `events` activity events.
void fill(raw& db, long leases, long events) {
    db.exec("INSERT INTO environments (id, company_id, name, driver, status, config, created_at, updated_at) "
            "SELECT 'env-' || c, 'company-' || c, 'Local', 'local', 'active', '{}', now(), now() "
            "FROM generate_series(0, 999) c");
    db.exec("INSERT INTO environment_leases (id, company_id, environment_id, heartbeat_run_id, status, lease_policy, "
            "acquired_at, last_used_at, expires_at, epoch, created_at, updated_at) "
            "SELECT 'lease-' || i, 'company-' || (i % 1000), 'env-' || (i % 1000), 'run-' || (i / 3), "
            "CASE WHEN i % 50 = 0 THEN 'active' ELSE 'released' END, 'ephemeral', now(), now(), "
            "CASE WHEN i % 100 = 0 THEN now() - interval '1 hour' END, 1, now(), now() "
            "FROM generate_series(0, " + std::to_string(leases - 1) + ") i");
    db.exec("INSERT INTO activity_log (id, company_id, actor_type, actor_id, action, entity_type, entity_id, run_id, "
            "details, created_at) SELECT 'ev-' || i, 'company-' || (i % 1000), 'system', 'berth', "
            "'environment.lease_acquired', 'environment_lease', 'lease-' || (i % " + std::to_string(leases) +
            "), 'run-' || (i / 30), '{}', now() - (i || ' seconds')::interval FROM generate_series(0, " +
            std::to_string(events - 1) + ") i");
    db.exec("ANALYZE");
}

}  // namespace

TEST_CASE("postgres_store: every query of the orchestrator and of recovery uses an index on a filled database",
          "[postgres_store][postgres_scale]") {
    pg::scratch_schema schema;
    { auto store = postgres_store::open(schema.conninfo()); }
    raw db(schema.conninfo());
    fill(db, env_or("BERTH_PG_SCALE_LEASES", 20000), env_or("BERTH_PG_SCALE_EVENTS", 100000));
    detail::postgres::statements const q;
    std::string const t = "2026-01-01T00:00:00Z";
    struct probe {
        std::string what, sql;
        std::vector<std::string> args;
    };
    std::vector<std::string> lease_args{"lease-x", "company-7", "env-7"};
    std::vector<probe> probes{
        {"get_environment", q.get_env, {"env-7"}},
        {"ensure_local_environment (read)", q.get_local_env, {"company-7"}},
        {"get_lease", q.get_lease, {"lease-7"}},
        {"list_leases", q.list_env_leases + q.list_lease_order, {"env-7"}},
        {"list_leases (active)", q.list_env_leases + " AND status = 'active'" + q.list_lease_order, {"env-7"}},
        {"list_run_leases", q.run_leases, {"run-7"}},
        {"list_run_leases (active)", q.run_leases_with_status[detail::index(lease_status::active)], {"run-7"}},
        {"acquire: the environment's row lock", q.lock_env, {"env-7"}},
        {"resume: the environment's row lock", q.lock_lease_env, {"lease-7"}},
        {"transition (release)",
         q.transition[detail::index(lease_status::released)][0],
         {"lease-7", "released", t, t, "", "", "1"}},
        {"transition (resume)", q.transition[detail::index(lease_status::active)][0], {"lease-7", "active", t, "", "", "", "1"}},
        {"why a move failed", q.lease_state, {"lease-7"}},
        {"capacity count", q.env_facts, {"env-7"}},
        {"renew_lease", q.renew, {"lease-7", t, t, "1"}},
        {"release_leases_for_run", q.release_run, {"run-7", "released", t, t}},
        {"expiry sweep", q.expired, {t}},
        {"activity of a run", q.list_activity + " WHERE run_id = $1::text ORDER BY created_at ASC, row_seq ASC", {"run-7"}},
        {"activity of a lease (type and id)",
         q.list_activity + " WHERE entity_type = $1::text AND entity_id = $2::text ORDER BY created_at ASC, row_seq ASC",
         {"environment_lease", "lease-7"}},
        {"activity of a lease (id alone)",
         q.list_activity + " WHERE " + q.activity_entity_types + " AND entity_id = $1::text ORDER BY created_at ASC, row_seq ASC",
         {"lease-7"}},
        {"activity of a company", q.list_activity + " WHERE company_id = $1::text ORDER BY created_at ASC, row_seq ASC",
         {"company-7"}},
    };
    // The acquire statement: a lease's members, then environment and company ids.
    {
        environment_lease const l{.id = "lease-new", .company_id = "company-7", .environment_id = "env-7",
                                  .acquired_at = timestamp::from_micros(0), .last_used_at = timestamp::from_micros(0),
                                  .created_at = timestamp::from_micros(0), .updated_at = timestamp::from_micros(0)};
        auto p = detail::postgres::record_params(l);
        std::vector<std::string> args;
        for (auto const& a : p) args.push_back(a.value_or(""));
        args.push_back("env-7");
        args.push_back("company-7");
        probes.push_back({"acquire_lease", q.acquire[0], args});
    }
    for (auto const& p : probes) {
        // NULL-able parameters are passed as text; "" stands for a value the plan does not depend on.
        std::vector<std::string> args = p.args;
        for (auto& a : args)
            if (a.empty()) a = "x";
        auto sql = p.sql;
        // Parameters typed timestamptz / bigint need values of that type.
        auto const plan = db.query("EXPLAIN " + sql, [&] {
            std::vector<std::string> out;
            int i = 0;
            for (auto const& a : args) {
                ++i;
                auto const marker = "$" + std::to_string(i) + "::";
                auto const at = sql.find(marker);
                std::string v = a;
                if (at != std::string::npos) {
                    auto const type = sql.substr(at + marker.size(), 11);
                    if (type.starts_with("timestamptz") && v == "x") v = t;
                    if (type.starts_with("bigint") && v == "x") v = "1";
                    if (type.starts_with("jsonb") && v == "x") v = "{}";
                }
                out.push_back(v);
            }
            return out;
        }());
        std::string text;
        for (auto const& l : plan) (text += l) += '\n';
        INFO(p.what << "\n" << p.sql << "\n" << text);
        CHECK(text.find("Seq Scan on environment_leases") == std::string::npos);
        CHECK(text.find("Seq Scan on activity_log") == std::string::npos);
        CHECK(text.find("Seq Scan on environments") == std::string::npos);
    }
}

TEST_CASE("postgres_store: a page of a company's execution workspaces is read in index order, without a sort",
          "[postgres_store][postgres_scale]") {
    // The list orders by last_used_at DESC NULLS LAST, created_at DESC, then insertion order; an
    // index that stores a different NULL placement serves the filter but sorts the whole company
    // for every page (schema migration 12). The fill: 100 companies, 1 workspace in 10 never used.
    pg::scratch_schema schema;
    auto store = postgres_store::open(schema.conninfo());
    raw db(schema.conninfo());
    long const rows = env_or("BERTH_PG_SCALE_WORKSPACES", 200000);
    db.exec("INSERT INTO execution_workspaces (id, company_id, project_id, mode, strategy_type, name, status, "
            "last_used_at, opened_at, created_at, updated_at) SELECT 'ew-' || i, 'company-' || (i % 100), "
            "'project-' || (i % 7), 'isolated_workspace', 'git_worktree', 'ws ' || i, CASE WHEN i % 3 = 0 THEN "
            "'archived' ELSE 'active' END, CASE WHEN i % 10 = 0 THEN NULL ELSE now() - (i || ' seconds')::interval "
            "END, now(), now() - (i || ' seconds')::interval, now() FROM generate_series(0, " +
            std::to_string(rows - 1) + ") i");
    db.exec("ANALYZE execution_workspaces");

    struct variant {
        std::string what;
        execution_workspace_filter filter;
        std::vector<std::string> args;  // after the company
    };
    std::vector<variant> const variants{
        {"a company's page", {.limit = 50}, {}},
        {"a company's page by status", {.status = execution_workspace_status::active, .limit = 50}, {"active"}},
        {"a project's page by status",
         {.project_id = "project-3", .status = execution_workspace_status::active, .limit = 50},
         {"project-3", "active"}},
    };
    for (auto const& v : variants) {
        auto const before = store.statement_texts().size();
        auto const page = store.list_execution_workspaces("company-7", v.filter);
        REQUIRE(page.size() == 50);
        // A workspace never used comes last: the first page has used ones only, newest first.
        for (std::size_t i = 0; i < page.size(); ++i) {
            REQUIRE(page[i].last_used_at.has_value());
            if (i > 0) CHECK(*page[i - 1].last_used_at >= *page[i].last_used_at);
        }
        auto const texts = store.statement_texts();
        REQUIRE(texts.size() == before + 1);  // the variant's text, noted once
        std::vector<std::string> args{"company-7"};
        args.insert(args.end(), v.args.begin(), v.args.end());
        auto const plan = db.query("EXPLAIN " + texts.back(), args);
        std::string text;
        for (auto const& l : plan) (text += l) += '\n';
        INFO(v.what << "\n" << texts.back() << "\n" << text);
        CHECK(text.find("Seq Scan") == std::string::npos);
        CHECK(text.find("Sort") == std::string::npos);
        CHECK(text.find("Index Scan using execution_workspaces_company_") != std::string::npos);
    }
}

TEST_CASE("postgres_store: a database at schema version 1 with rows in it migrates to the current version",
          "[postgres_store][postgres_scale]") {
    pg::scratch_schema schema;
    raw db(schema.conninfo());
    for (auto const& m : schema::migrations()) {
        if (m.version > 1) break;
        for (auto const& st : m.steps)
            if (schema::applies_to(st, schema::postgres_dialect)) db.exec(schema::render(st, schema::postgres_dialect));
    }
    db.exec("CREATE TABLE berth_schema (version integer NOT NULL); INSERT INTO berth_schema VALUES (1)");
    // Version 1 has no epoch column: the fill without it.
    db.exec("INSERT INTO environments (id, company_id, name, driver, status, config, created_at, updated_at) "
            "SELECT 'env-' || c, 'company-' || c, 'Local', 'local', 'active', '{}', now(), now() "
            "FROM generate_series(0, 99) c");
    long const leases = env_or("BERTH_PG_SCALE_LEASES", 20000);
    db.exec("INSERT INTO environment_leases (id, company_id, environment_id, status, lease_policy, acquired_at, "
            "last_used_at, created_at, updated_at) SELECT 'lease-' || i, 'company-' || (i % 100), 'env-' || (i % 100), "
            "'released', 'ephemeral', now(), now(), now(), now() FROM generate_series(0, " +
            std::to_string(leases - 1) + ") i");
    auto store = postgres_store::open(schema.conninfo());
    CHECK(db.query("SELECT version FROM berth_schema") == std::vector<std::string>{std::to_string(schema::current_version)});
    CHECK(db.query("SELECT count(*), min(epoch), max(epoch) FROM environment_leases") ==
          std::vector<std::string>{std::to_string(leases) + "|1|1"});
    auto const got = store.get_lease("lease-5");
    REQUIRE(got);
    CHECK(got->epoch == 1);
    // A page holds at most default_list_limit leases (at the sizes an environment has 10,000).
    CHECK(store.list_leases("env-5", {}).size() ==
          std::min(static_cast<std::size_t>(leases / 100), default_list_limit));
}

TEST_CASE("postgres_store: every statement reaches rows through the company or a globally unique key",
          "[postgres_store][postgres_scale]") {
    // Distributing the tables by company_id (e.g. Citus) keeps a statement on one node when its
    // WHERE names the company; the others reach rows by a key unique across companies (a lease,
    // environment, event, service, workspace or operation id, a run id) or are the expiry sweep,
    // and run on every node. docs/stores.md lists both kinds; a new statement that is neither
    // fails here until it is classified there.
    pg::scratch_schema schema;
    auto store = postgres_store::open(schema.conninfo());
    testing::manual_clock clock;
    // Exercise the dynamic statements (list filters) so that statement_texts() has them.
    (void)store.list_environments("c", {.status = environment_status::active});
    (void)store.list_leases("e", {.status = lease_status::active});
    (void)store.list_activity({.company_id = "c", .run_id = "r"});
    (void)store.list_activity({.entity_id = "x"});
    (void)store.list_runtime_services({.company_id = "c", .statuses = {runtime_service_status::running}});
    (void)store.stop_runtime_services({.company_id = "c"}, clock.now());
    (void)store.list_execution_workspaces("c", {});
    (void)store.list_operations({.company_id = "c"});
    auto const texts = store.statement_texts();
    REQUIRE(texts.size() > 40);
    std::size_t by_company = 0, by_unique_key = 0;
    for (auto const& sql : texts) {
        INFO(sql);
        bool const company = sql.find("company_id = $") != std::string::npos ||
                             sql.find("company_id = (SELECT") != std::string::npos ||
                             sql.find("company_id = " "(SELECT company_id FROM cur)") != std::string::npos;
        bool const unique_key = sql.find("WHERE id = $1::text") != std::string::npos ||
                                sql.find("WHERE e.id = $1::text") != std::string::npos ||
                                sql.find("heartbeat_run_id = $1::text") != std::string::npos ||
                                sql.find("run_id = $") != std::string::npos || sql.find("entity_id = $") != std::string::npos ||
                                sql.find("ON CONFLICT (id)") != std::string::npos ||
                                sql.find("environment_id = $1::text") != std::string::npos ||
                                sql.find("id = ANY(") != std::string::npos ||
                                (sql.starts_with("INSERT INTO") && sql.find("company_id") != std::string::npos) ||
                                sql.find("expires_at <= $1") != std::string::npos ||
                                sql == "BEGIN" || sql == "COMMIT" || sql == "ROLLBACK";
        CHECK((company || unique_key));
        if (company) ++by_company;
        else ++by_unique_key;
    }
    INFO(by_company << " statements keyed by company, " << by_unique_key << " by a unique key");
    CHECK(by_company > 10);
}

#endif  // BERTH_TEST_POSTGRES
