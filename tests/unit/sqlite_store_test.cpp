// berth::sqlite_store on real files: the schema and its migrations, strict row mapping, the
// SQLite-only guarantees (busy timeout, survival across processes, four racing processes), and
// the store conformance kit.
#ifdef BERTH_TEST_SQLITE

#include <catch2/catch.hpp>

#include <berth/model/format.hpp>
#include <berth/model/ids.hpp>
#include <berth/stores/sqlite.hpp>
#include <berth/stores/sqlite/wal_coalescing_vfs.hpp>  // the mechanism's rare paths, driven directly
#include <berth/testing/manual_clock.hpp>
#include <berth/testing/store_conformance.hpp>

#include <boost/json/parse.hpp>

#include <sqlite3.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

using namespace berth;
namespace fs = std::filesystem;

namespace {

/// A fresh directory under the system temp dir, removed with everything in it.
class temp_dir {
public:
    temp_dir() {
        std::string tmpl = (fs::temp_directory_path() / "berth-sqlite-XXXXXX").string();
        REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
        path_ = tmpl;
    }
    temp_dir(temp_dir const&) = delete;
    temp_dir& operator=(temp_dir const&) = delete;
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    [[nodiscard]] std::string file(std::string const& name) const { return (path_ / name).string(); }

private:
    fs::path path_;
};

/// Runs a program with arguments and extra environment variables; returns its exit status
/// (-1 when it could not start or died of a signal). Its output goes to `output_file` when given.
int run_program(std::vector<std::string> const& argv, std::map<std::string, std::string> const& env = {},
                std::string const& output_file = {}) {
    std::vector<std::string> env_strings;
    for (char** e = environ; *e; ++e) env_strings.emplace_back(*e);
    for (auto const& [k, v] : env) env_strings.push_back(k + "=" + v);
    std::vector<char*> envp, args;
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::vector<std::string> argv_copy = argv;
    for (auto& s : argv_copy) args.push_back(s.data());
    args.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    if (!output_file.empty()) {
        posix_spawn_file_actions_addopen(&actions, 1, output_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        posix_spawn_file_actions_adddup2(&actions, 1, 2);
    }
    pid_t pid = 0;
    int const rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) return -1;
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/// Starts this test binary on one hidden test case (a clean process: no SQLite state inherited
/// through fork). Returns the pid.
pid_t spawn_self(std::string const& test_name, std::map<std::string, std::string> const& env,
                 std::string const& output_file) {
    std::vector<std::string> env_strings;
    for (char** e = environ; *e; ++e) env_strings.emplace_back(*e);
    for (auto const& [k, v] : env) env_strings.push_back(k + "=" + v);
    std::vector<char*> envp;
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::string exe = fs::read_symlink("/proc/self/exe").string();
    std::string name = test_name;
    char* args[] = {exe.data(), name.data(), nullptr};
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, output_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    pid_t pid = 0;
    int const rc = posix_spawn(&pid, exe.c_str(), &actions, nullptr, args, envp.data());
    posix_spawn_file_actions_destroy(&actions);
    REQUIRE(rc == 0);
    return pid;
}

int wait_exit(pid_t pid) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string slurp(std::string const& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

/// The sqlite3 shell, as a person repairing a database by hand would use it.
bool have_sqlite3_shell() { return run_program({"sqlite3", "-version"}, {}, "/dev/null") == 0; }
void shell(std::string const& db, std::string const& sql) {
    INFO("sqlite3 " << db << " \"" << sql << "\"");
    REQUIRE(run_program({"sqlite3", db, sql}) == 0);
}

/// A raw connection for inspecting what the store wrote.
class raw_db {
public:
    explicit raw_db(std::string const& path) { REQUIRE(sqlite3_open(path.c_str(), &db_) == SQLITE_OK); }
    raw_db(raw_db const&) = delete;
    raw_db& operator=(raw_db const&) = delete;
    ~raw_db() { sqlite3_close(db_); }
    void exec(std::string const& sql) {
        char* err = nullptr;
        int const rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
        INFO(sql << ": " << (err ? err : ""));
        sqlite3_free(err);
        REQUIRE(rc == SQLITE_OK);
    }
    /// Every row of a query, each as its columns' text ("NULL" for null).
    std::vector<std::vector<std::string>> rows(std::string const& sql) {
        sqlite3_stmt* st = nullptr;
        INFO(sql);
        REQUIRE(sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) == SQLITE_OK);
        std::vector<std::vector<std::string>> out;
        while (sqlite3_step(st) == SQLITE_ROW) {
            std::vector<std::string> row;
            for (int i = 0; i < sqlite3_column_count(st); ++i) {
                auto const* t = sqlite3_column_text(st, i);
                row.emplace_back(t ? reinterpret_cast<char const*>(t) : "NULL");
            }
            out.push_back(std::move(row));
        }
        sqlite3_finalize(st);
        return out;
    }
    std::string value(std::string const& sql) {
        auto r = rows(sql);
        REQUIRE(r.size() == 1);
        return r[0][0];
    }
    [[nodiscard]] sqlite3* handle() const noexcept { return db_; }

private:
    sqlite3* db_ = nullptr;
};

timestamp t0() { return timestamp::from_micros(1767225600000000); }  // 2026-01-01T00:00:00Z

activity_event event_for(std::string const& lease_id, char const* action, timestamp now,
                         std::string const& company = "c1") {
    return activity_event{.id = new_id(),
                          .company_id = company,
                          .actor_type = "system",
                          .actor_id = "berth",
                          .action = action,
                          .entity_type = "environment_lease",
                          .entity_id = lease_id,
                          .agent_id = std::nullopt,
                          .run_id = std::nullopt,
                          .details = {},
                          .created_at = now};
}

environment make_env(sqlite_store& s, json_object config = {}, std::string const& company = "c1") {
    return s.create_environment(new_environment{.company_id = company,
                                                .name = "sandbox-" + new_id().substr(0, 8),
                                                .description = std::nullopt,
                                                .driver = driver_kind::sandbox,
                                                .status = environment_status::active,
                                                .config = std::move(config),
                                                .metadata = std::nullopt},
                                t0());
}

new_lease lease_on(environment const& env, std::string id = new_id()) {
    return new_lease{.id = std::move(id), .company_id = env.company_id, .environment_id = env.id};
}

template <class F>
store_errc code_of(F&& f) {
    try {
        f();
    } catch (store_error const& e) {
        return e.code();
    }
    FAIL("expected a store_error");
    return store_errc::backend_failure;
}

std::string message_of(auto&& f) {
    try {
        f();
    } catch (std::exception const& e) {
        return e.what();
    }
    return "(no exception)";
}

}  // namespace

// ---- the store conformance kit -------------------------------------------------------------------

namespace {
/// A fresh database file per check; reopen() is a second store object on the same file, so the
/// kit's races also contend through SQLite's lock, as two processes would.
struct sqlite_file {
    temp_dir dir;
    sqlite_store make() { return sqlite_store::open(dir.file("berth.db")); }
    sqlite_store reopen() { return sqlite_store::open(dir.file("berth.db")); }
};
/// The in-memory variant: one connection, every operation behind the store's mutex.
struct sqlite_in_memory {
    static sqlite_store make() { return sqlite_store::open(":memory:"); }
};
}  // namespace

BERTH_STORE_CONFORMANCE_TESTS(sqlite_file, "[sqlite_store]")
BERTH_STORE_CONFORMANCE_TESTS(sqlite_in_memory, "[sqlite_store]")

// ---- schema ------------------------------------------------------------------------------------

TEST_CASE("sqlite_store creates upstream's tables, columns and indexes plus berth's constraints",
          "[sqlite_store]") {
    temp_dir dir;
    auto const path = dir.file("berth.db");
    { auto store = sqlite_store::open(path); }
    raw_db db(path);
    CHECK(db.value("PRAGMA journal_mode") == "wal");
    CHECK(db.value("PRAGMA user_version") == std::to_string(sqlite_store::schema_version));
    CHECK(db.value("PRAGMA application_id") == std::to_string(0x62657274));

    auto columns = [&](std::string const& table) {
        std::vector<std::string> names;
        for (auto const& r : db.rows("PRAGMA table_info(" + table + ")")) names.push_back(r[1]);
        return names;
    };
    // Every described member of each record is a column of its table, in order (the row mapping
    // relies on it), and the columns carry upstream's names.
    auto members = [](auto record) {
        std::vector<std::string> names;
        boost::mp11::mp_for_each<record_members<decltype(record)>>([&](auto D) { names.emplace_back(D.name); });
        return names;
    };
    auto const env_cols = columns("environments");
    auto const lease_cols = columns("environment_leases");
    auto const activity_cols = columns("activity_log");
    CHECK(std::set(env_cols.begin(), env_cols.end()) ==
          std::set<std::string>{"id", "company_id", "name", "description", "driver", "status", "config", "metadata",
                                "created_at", "updated_at"});
    CHECK(std::set(lease_cols.begin(), lease_cols.end()) ==
          std::set<std::string>{"id", "company_id", "environment_id", "execution_workspace_id", "issue_id",
                                "heartbeat_run_id", "status", "lease_policy", "provider", "provider_lease_id",
                                "acquired_at", "last_used_at", "expires_at", "released_at", "failure_reason",
                                "cleanup_status", "metadata", "epoch", "created_at", "updated_at", "reuse_scope", "driver_name",
                                "policy_name", "holder_host", "holder_pid", "holder_start_time"});
    auto const em = members(environment{});
    CHECK(std::set(env_cols.begin(), env_cols.end()) == std::set<std::string>(em.begin(), em.end()));
    auto const lm = members(environment_lease{});
    CHECK(std::set(lease_cols.begin(), lease_cols.end()) == std::set<std::string>(lm.begin(), lm.end()));
    auto const am = members(activity_event{});
    CHECK(std::set(activity_cols.begin(), activity_cols.end()) == std::set<std::string>(am.begin(), am.end()));

    std::map<std::string, std::string> index_sql;
    for (auto const& r : db.rows("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"))
        index_sql[r[0]] = r[1];
    for (auto const* upstream :
         {"environments_company_status_idx", "environments_company_driver_idx", "environments_company_name_idx",
          "environment_leases_company_environment_status_idx", "environment_leases_company_execution_workspace_idx",
          "environment_leases_company_issue_idx", "environment_leases_heartbeat_run_idx",
          "environment_leases_company_last_used_idx", "environment_leases_provider_lease_idx"}) {
        INFO(upstream);
        CHECK(index_sql.count(upstream) == 1);
    }
    CHECK_THAT(index_sql["environments_company_driver_idx"],
               Catch::Contains("UNIQUE") && Catch::Contains("driver = 'local'"));
    CHECK_THAT(index_sql["environment_leases_reuse_scope_active_idx"],
               Catch::Contains("UNIQUE") && Catch::Contains("status = 'active'") && Catch::Contains("reuse_scope"));
    CHECK(index_sql.count("environment_leases_reuse_by_environment_active_idx") == 0);
    CHECK(index_sql.count("environment_leases_active_expires_idx") == 1);
}

TEST_CASE("sqlite_store refuses a file written by a newer berth, naming both versions", "[sqlite_store]") {
    temp_dir dir;
    auto const path = dir.file("newer.db");
    { auto store = sqlite_store::open(path); }
    // One past what this berth writes, whatever that is.
    auto const newer = std::to_string(sqlite_store::schema_version + 1);
    { raw_db(path).exec("PRAGMA user_version = " + newer); }
    try {
        auto store = sqlite_store::open(path);
        FAIL("opened a newer file");
    } catch (store_error const& e) {
        CHECK(e.code() == store_errc::schema_mismatch);
        CHECK_THAT(e.what(), Catch::Contains("schema version " + newer) && Catch::Contains("newer berth") &&
                                 Catch::Contains("up to " + std::to_string(sqlite_store::schema_version)) &&
                                 Catch::Contains(path));
    }
    // Nothing was written: the file still says so.
    CHECK(raw_db(path).value("PRAGMA user_version") == newer);
}

TEST_CASE("sqlite_store refuses a database that is not berth's", "[sqlite_store]") {
    temp_dir dir;
    auto const other = dir.file("other.db");
    { raw_db(other).exec("PRAGMA application_id = 42; CREATE TABLE t(x)"); }
    CHECK(code_of([&] { (void)sqlite_store::open(other); }) == store_errc::schema_mismatch);

    auto const lookalike = dir.file("lookalike.db");
    { raw_db(lookalike).exec("CREATE TABLE environments(id TEXT)"); }
    CHECK(code_of([&] { (void)sqlite_store::open(lookalike); }) == store_errc::schema_mismatch);

    auto const garbage = dir.file("garbage.db");
    { std::ofstream(garbage) << std::string(8192, 'x'); }
    CHECK(code_of([&] { (void)sqlite_store::open(garbage); }) == store_errc::backend_failure);
}

TEST_CASE("sqlite_store migrates a version 1 file written by hand", "[sqlite_store]") {
    temp_dir dir;
    auto const path = dir.file("v1.db");
    {
        // Schema version 1, as the first berth wrote it: upstream's tables and indexes, no epoch.
        raw_db db(path);
        db.exec(R"sql(
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
            INSERT INTO environments VALUES ('e1', 'c1', 'Local', NULL, 'local', 'active', '{}',
              '{"managedByBerth":true}', '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z');
            INSERT INTO environment_leases (id, company_id, environment_id, heartbeat_run_id, status, lease_policy,
              provider, acquired_at, last_used_at, created_at, updated_at)
              VALUES ('l1', 'c1', 'e1', 'run-1', 'active', 'ephemeral', 'local', '2026-01-01T00:00:00.000000Z',
              '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z');
            PRAGMA application_id = 1650815604;
            PRAGMA user_version = 1;
        )sql");
    }
    auto store = sqlite_store::open(path);
    auto const lease = store.get_lease("l1");
    REQUIRE(lease);
    CHECK(lease->epoch == 1);
    CHECK(lease->status == lease_status::active);
    CHECK(lease->heartbeat_run_id == "run-1");
    auto const released = store.transition_lease({.id = "l1", .expected_epoch = 1, .to = lease_status::released},
                                                 t0() + std::chrono::seconds(1), std::nullopt);
    CHECK(released.epoch == 2);
    CHECK(store.get_environment("e1")->metadata == json_object{{"managedByBerth", true}});

    raw_db db(path);
    CHECK(db.value("PRAGMA user_version") == std::to_string(sqlite_store::schema_version));
    CHECK(db.value("SELECT count(*) FROM sqlite_master WHERE "
                   "name = 'environment_leases_reuse_scope_active_idx'") == "1");
    CHECK_THAT(db.value("SELECT sql FROM sqlite_master WHERE name = 'environment_leases_heartbeat_run_idx'"),
               Catch::Contains("IS NOT NULL"));
}

TEST_CASE("sqlite_store leaves a file it cannot migrate untouched", "[sqlite_store]") {
    temp_dir dir;
    auto const path = dir.file("dup.db");
    { auto store = sqlite_store::open(path); }
    {
        // Back to version 1 with two active reuse_by_environment leases on one environment:
        // migration 2's unique index cannot be built.
        raw_db db(path);
        db.exec(R"sql(
            DROP INDEX environment_leases_reuse_scope_active_idx;
            DROP INDEX environment_leases_active_expires_idx;
            INSERT INTO environments (id, company_id, name, driver, created_at, updated_at)
              VALUES ('e1', 'c1', 'box', 'sandbox', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z');
            INSERT INTO environment_leases (id, company_id, environment_id, status, lease_policy, acquired_at,
              last_used_at, created_at, updated_at) VALUES
              ('a', 'c1', 'e1', 'active', 'reuse_by_environment', 'x', 'x', 'x', 'x'),
              ('b', 'c1', 'e1', 'active', 'reuse_by_environment', 'x', 'x', 'x', 'x');
            ALTER TABLE environment_leases DROP COLUMN epoch;
            ALTER TABLE environment_leases DROP COLUMN reuse_scope;
            ALTER TABLE environment_leases DROP COLUMN driver_name;
            ALTER TABLE environment_leases DROP COLUMN policy_name;
            PRAGMA user_version = 1;
        )sql");
    }
    auto const msg = message_of([&] { (void)sqlite_store::open(path); });
    CHECK_THAT(msg, Catch::Contains("schema version 2") && Catch::Contains("UNIQUE"));
    raw_db db(path);
    CHECK(db.value("PRAGMA user_version") == "1");
    CHECK(db.value("SELECT count(*) FROM pragma_table_info('environment_leases') WHERE name = 'epoch'") == "0");
}

// ---- row mapping -------------------------------------------------------------------------------

TEST_CASE("a row with an unknown enum string is a clear error, other rows still load", "[sqlite_store]") {
    if (!have_sqlite3_shell()) {
        WARN("the sqlite3 shell is not installed; skipped");
        return;
    }
    temp_dir dir;
    auto const path = dir.file("berth.db");
    std::vector<std::string> skipped;
    auto store = sqlite_store::open(
        path, sqlite_options{.on_unreadable_row = [&](store_error const& e) { skipped.push_back(e.what()); }});
    auto const env = make_env(store);
    store.acquire_lease(lease_on(env, "good"), t0(), std::nullopt);
    store.acquire_lease(lease_on(env, "bad"), t0(), std::nullopt);
    store.acquire_lease(lease_on(env, "bad-policy"), t0(), std::nullopt);

    shell(path, "UPDATE environment_leases SET status = 'bogus' WHERE id = 'bad'");
    shell(path, "UPDATE environment_leases SET lease_policy = 'reuse_forever' WHERE id = 'bad-policy'");

    try {
        (void)store.get_lease("bad");
        FAIL("read a bogus status");
    } catch (store_error const& e) {
        CHECK(e.code() == store_errc::corrupt_row);
        CHECK(std::string(e.what()) ==
              "environment_leases.status: Unexpected environment lease status value: bogus (lease bad)");
    }
    CHECK(message_of([&] { (void)store.get_lease("bad-policy"); }) ==
          "environment_leases.lease_policy: Unexpected environment lease policy value: reuse_forever "
          "(lease bad-policy)");
    REQUIRE(store.get_lease("good"));
    CHECK(store.get_lease("good")->status == lease_status::active);

    // Lists skip what they cannot read and report it. An environment's list in any status reads
    // one index range per status berth knows (docs/stores.md, "Growth, paging and retention"), so
    // a status it does not know is in none of them: that row is not read at all, where the run's
    // list (one range for the run) reads and reports it.
    auto const leases = store.list_leases(env.id, {});
    REQUIRE(leases.size() == 1);
    CHECK(leases[0].id == "good");
    REQUIRE(skipped.size() == 1);
    CHECK_THAT(skipped[0], Catch::Contains("(lease bad-policy)"));
    skipped.clear();
    shell(path, "UPDATE environment_leases SET heartbeat_run_id = 'run-x'");
    auto const run_leases = store.list_run_leases("run-x", {});
    REQUIRE(run_leases.size() == 1);
    REQUIRE(skipped.size() == 2);
    CHECK_THAT(skipped[0] + skipped[1], Catch::Contains("(lease bad)") && Catch::Contains("(lease bad-policy)"));

    // Writes to those rows fail the same way and change nothing.
    CHECK(code_of([&] {
              store.transition_lease({.id = "bad", .expected_epoch = 1, .to = lease_status::released}, t0(), std::nullopt);
          }) == store_errc::corrupt_row);
    auto ev = event_for("bad-policy", actions::lease_released, t0());
    CHECK(code_of([&] {
              store.transition_lease({.id = "bad-policy", .expected_epoch = 1, .to = lease_status::released}, t0(),
                                     ev);
          }) == store_errc::corrupt_row);
    raw_db db(path);
    CHECK(db.value("SELECT status || ' ' || epoch FROM environment_leases WHERE id = 'bad-policy'") == "active 1");
    CHECK(store.list_activity({}).empty());

    // Other columns: a timestamp that is not one, JSON that is not an object.
    shell(path, "UPDATE environment_leases SET expires_at = 'tomorrow' WHERE id = 'good'");
    CHECK_THAT(message_of([&] { (void)store.get_lease("good"); }),
               Catch::StartsWith("environment_leases.expires_at: Unexpected expires_at value: tomorrow"));
    shell(path, "UPDATE environment_leases SET expires_at = NULL, metadata = '[1,2]' WHERE id = 'good'");
    CHECK_THAT(message_of([&] { (void)store.get_lease("good"); }),
               Catch::StartsWith("environment_leases.metadata: Unexpected JSON value: [1,2]"));
    shell(path, "UPDATE environments SET driver = 'docker' WHERE id = '" + env.id + "'");
    CHECK(message_of([&] { (void)store.get_environment(env.id); }) ==
          "environments.driver: Unexpected environment driver value: docker (environment " + env.id + ")");
    CHECK(store.list_environments("c1", {}).empty());
}

// ---- lease rules SQLite enforces in its transactions --------------------------------------------

TEST_CASE("sqlite_store: one active lease per reuse scope", "[sqlite_store]") {
    auto store = sqlite_store::open(":memory:");
    auto const env = make_env(store);
    auto const env2 = make_env(store, {}, "other");
    auto scoped = [&](std::optional<std::string> scope, environment const& e) {
        auto nl = lease_on(e);
        nl.reuse_scope = std::move(scope);
        return nl;
    };
    auto const first = store.acquire_lease(scoped("environment", env), t0(), std::nullopt);
    auto const msg = message_of([&] { store.acquire_lease(scoped("environment", env), t0(), std::nullopt); });
    CHECK_THAT(msg, Catch::Contains("already has an active lease in reuse scope \"environment\"") &&
                        Catch::Contains(first.id));
    store.acquire_lease(scoped("environment", env2), t0(), std::nullopt);  // another environment: its own scope
    // Leases without a key have no scope.
    store.acquire_lease(scoped(std::nullopt, env), t0(), std::nullopt);
    store.acquire_lease(scoped(std::nullopt, env), t0(), std::nullopt);

    auto const ew1 = store.acquire_lease(scoped("workspace:ew-1", env), t0(), std::nullopt);
    store.acquire_lease(scoped("workspace:ew-2", env), t0(), std::nullopt);
    CHECK(code_of([&] { store.acquire_lease(scoped("workspace:ew-1", env), t0(), std::nullopt); }) ==
          store_errc::conflict);

    // Retained leases free their scope; resuming one while another holds it is refused.
    store.transition_lease({.id = ew1.id, .expected_epoch = 1, .to = lease_status::retained}, t0(), std::nullopt);
    auto const next = store.acquire_lease(scoped("workspace:ew-1", env), t0(), std::nullopt);
    CHECK_THAT(message_of([&] {
                   store.transition_lease({.id = ew1.id, .expected_epoch = 2, .to = lease_status::active}, t0(),
                                          std::nullopt);
               }),
               Catch::Contains("reuse scope \"workspace:ew-1\"") && Catch::Contains(next.id));
    CHECK(store.get_lease(ew1.id)->status == lease_status::retained);
    store.transition_lease({.id = next.id, .expected_epoch = 1, .to = lease_status::released}, t0(), std::nullopt);
    CHECK(store.transition_lease({.id = ew1.id, .expected_epoch = 2, .to = lease_status::active}, t0(), std::nullopt)
              .epoch == 3);
    CHECK(store.get_lease(ew1.id)->reuse_scope == "workspace:ew-1");
}

TEST_CASE("sqlite_store: capacity is checked in the acquire transaction", "[sqlite_store]") {
    auto store = sqlite_store::open(":memory:");
    auto const env = make_env(store, json_object{{"maxActiveLeases", 2}});
    auto const a = store.acquire_lease(lease_on(env), t0(), std::nullopt);
    store.acquire_lease(lease_on(env), t0(), std::nullopt);
    auto ev = event_for("third", actions::lease_acquired, t0());
    try {
        store.acquire_lease(lease_on(env, "third"), t0(), ev);
        FAIL("exceeded capacity");
    } catch (store_error const& e) {
        CHECK(e.code() == store_errc::capacity_exceeded);
        CHECK_THAT(e.what(), Catch::Contains("maxActiveLeases = 2") && Catch::Contains(env.name));
    }
    CHECK_FALSE(store.get_lease("third"));
    CHECK(store.list_activity({}).empty());
    // A retained lease does not count; resuming it past the limit is refused.
    store.transition_lease({.id = a.id, .expected_epoch = 1, .to = lease_status::retained}, t0(), std::nullopt);
    store.acquire_lease(lease_on(env), t0(), std::nullopt);
    CHECK(code_of([&] {
              store.transition_lease({.id = a.id, .expected_epoch = 2, .to = lease_status::active}, t0(), std::nullopt);
          }) == store_errc::capacity_exceeded);

    for (auto const& bad : {boost::json::value(0), boost::json::value(-1), boost::json::value("2"),
                            boost::json::value(1.5)}) {
        auto const env2 = make_env(store, json_object{{"maxActiveLeases", bad}});
        CHECK(code_of([&] { store.acquire_lease(lease_on(env2), t0(), std::nullopt); }) == store_errc::invalid_argument);
    }
    // A lease belongs to its environment's company.
    auto other = lease_on(env);
    other.company_id = "c2";
    CHECK(code_of([&] { store.acquire_lease(other, t0(), std::nullopt); }) == store_errc::invalid_argument);
}

TEST_CASE("sqlite_store: a failed operation leaves the database unchanged", "[sqlite_store]") {
    temp_dir dir;
    auto store = sqlite_store::open(dir.file("berth.db"));
    auto const env = make_env(store);
    auto ev = event_for("l1", actions::lease_acquired, t0());
    store.record_activity(ev);
    // The event id is taken: the lease is not inserted either.
    CHECK(code_of([&] { store.acquire_lease(lease_on(env, "l1"), t0(), ev); }) == store_errc::conflict);
    CHECK_FALSE(store.get_lease("l1"));
    store.acquire_lease(lease_on(env, "l1"), t0(), std::nullopt);
    // Same for a transition: the lease stays active at epoch 1.
    CHECK(code_of([&] {
              store.transition_lease({.id = "l1", .expected_epoch = 1, .to = lease_status::released}, t0(), ev);
          }) == store_errc::conflict);
    CHECK(store.get_lease("l1")->epoch == 1);
    CHECK(store.get_lease("l1")->status == lease_status::active);
    // A stale epoch writes neither the lease nor its event.
    auto ev2 = event_for("l1", actions::lease_released, t0());
    CHECK(code_of([&] {
              store.transition_lease({.id = "l1", .expected_epoch = 7, .to = lease_status::released}, t0(), ev2);
          }) == store_errc::stale_epoch);
    CHECK(store.list_activity({.entity_id = "l1"}).size() == 1);
    // Unknown environment.
    CHECK(code_of([&] { store.acquire_lease(new_lease{.id = "x", .company_id = "c1", .environment_id = "nope"}, t0(),
                                            std::nullopt); }) == store_errc::not_found);
}

TEST_CASE("sqlite_store waits for another writer up to its busy timeout, then fails cleanly", "[sqlite_store]") {
    temp_dir dir;
    auto const path = dir.file("busy.db");
    auto store = sqlite_store::open(path, sqlite_options{.busy_timeout = std::chrono::milliseconds(200)});
    auto const env = make_env(store);
    raw_db other(path);
    other.exec("BEGIN IMMEDIATE");
    auto const start = std::chrono::steady_clock::now();
    auto const msg = message_of([&] { store.acquire_lease(lease_on(env, "l1"), t0(), std::nullopt); });
    auto const waited = std::chrono::steady_clock::now() - start;
    CHECK_THAT(msg, Catch::Contains("busy timeout"));
    CHECK(waited >= std::chrono::milliseconds(150));
    CHECK(code_of([&] { store.acquire_lease(lease_on(env, "l1"), t0(), std::nullopt); }) == store_errc::backend_failure);
    // Readers are not blocked by a writer.
    CHECK(store.get_environment(env.id));
    other.exec("COMMIT");
    store.acquire_lease(lease_on(env, "l1"), t0(), std::nullopt);
    CHECK(store.get_lease("l1"));
}

TEST_CASE("sqlite_store keeps the WAL bounded: checkpoints in the background or in the commit", "[sqlite_store]") {
    temp_dir dir;
    // 100 pages = 400 KiB; 400 lease pairs with events write ~10k pages (~40 MiB) of WAL frames.
    auto wal_after_writes = [&](std::string const& name, sqlite_options options) {
        auto const path = dir.file(name);
        std::uintmax_t largest = 0;
        {
            auto store = sqlite_store::open(path, std::move(options));
            auto const env = make_env(store);
            for (int i = 0; i < 400; ++i) {
                auto const id = "l" + std::to_string(i);
                activity_event ev{.id = new_id(), .company_id = env.company_id, .actor_type = "system",
                                  .actor_id = "berth", .action = "environment.lease_acquired",
                                  .entity_type = "environment_lease", .entity_id = id, .created_at = t0()};
                auto const l = store.acquire_lease(lease_on(env, id), t0(), ev);
                ev.id = new_id();
                (void)store.transition_lease({.id = l.id, .expected_epoch = 1, .to = lease_status::released}, t0(), ev);
                if (i % 50 == 49) {
                    // Give a background checkpoint the moment a real workload's gaps would.
                    std::this_thread::sleep_for(std::chrono::milliseconds(20));
                    largest = std::max(largest, fs::file_size(path + "-wal"));
                }
            }
            largest = std::max(largest, fs::file_size(path + "-wal"));
            // Everything written is there, and a second store object reads it.
            CHECK(sqlite_store::open(path).list_leases(env.id, {.status = lease_status::released}).size() == 400);
            CHECK(store.list_activity({.limit = no_limit}).size() == 800);
        }
        return largest;
    };
    auto const bound = std::uintmax_t(8 * 100 * 4096) * 3 / 2;  // the backstop (8 x threshold), with slack
    CHECK(wal_after_writes("background.db", {.wal_autocheckpoint = 100, .checkpoint_in_background = true}) < bound);
    CHECK(wal_after_writes("in-commit.db", {.wal_autocheckpoint = 100, .checkpoint_in_background = false}) < bound);
    // The control: without checkpoints the WAL holds every frame, so the bound above means something.
    CHECK(wal_after_writes("never.db", {.wal_autocheckpoint = 0}) > 4 * bound);
}

TEST_CASE("sqlite_store's background checkpointer copies the WAL into the database file", "[sqlite_store]") {
    // The bug this guards: the checkpointer's own connection had never read the database, so it
    // did not know the file was in WAL mode and every checkpoint it ran was a silent no-op; the
    // writer's backstop (8 x the threshold) did all the work, inside commits.
    temp_dir dir;
    auto const path = dir.file("background-copy.db");
    auto store = sqlite_store::open(path, {.wal_autocheckpoint = 100, .checkpoint_in_background = true});
    auto const env = make_env(store);
    // Past the threshold (100 pages) and well short of the backstop (800): only the thread copies.
    int written = 0;
    while (fs::file_size(path + "-wal") < 200 * 4096) {
        auto const id = "l" + std::to_string(written++);
        auto const l = store.acquire_lease(lease_on(env, id), t0(), std::nullopt);
        (void)store.transition_lease({.id = l.id, .expected_epoch = 1, .to = lease_status::released}, t0(),
                                     std::nullopt);
    }
    REQUIRE(fs::file_size(path + "-wal") < 700 * 4096);
    // The database file alone (immutable=1 ignores the WAL) holds leases once a checkpoint ran.
    auto leases_in_database_file = [&]() -> long long {
        sqlite3* db = nullptr;
        auto const uri = "file:" + path + "?immutable=1";
        long long n = -1;
        if (sqlite3_open_v2(uri.c_str(), &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, nullptr) == SQLITE_OK) {
            sqlite3_stmt* st = nullptr;
            if (sqlite3_prepare_v2(db, "SELECT count(*) FROM environment_leases", -1, &st, nullptr) == SQLITE_OK &&
                sqlite3_step(st) == SQLITE_ROW)
                n = sqlite3_column_int64(st, 0);
            sqlite3_finalize(st);
        }
        sqlite3_close(db);
        return n;
    };
    auto const deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (leases_in_database_file() <= 0 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    auto const copied = leases_in_database_file();
    CHECK(copied > 0);
    CHECK(copied <= written);
    CHECK(store.list_leases(env.id, {.status = lease_status::released}).size() == static_cast<std::size_t>(written));
}

TEST_CASE("sqlite_store works in memory", "[sqlite_store]") {
    auto store = sqlite_store::open(":memory:");
    auto const env = store.ensure_local_environment("c1", t0());
    CHECK(store.ensure_local_environment("c1", t0()).id == env.id);
    auto const lease = store.acquire_lease(lease_on(env), t0(), std::nullopt);
    CHECK(store.list_leases(env.id, {}).size() == 1);
    CHECK(store.get_lease(lease.id)->epoch == 1);
}

// ---- processes ---------------------------------------------------------------------------------

// Child side of the tests below: started by spawn_self in a fresh process, parameters in the
// environment. Hidden (not run by default); does nothing when run without its parameters.
TEST_CASE("sqlite child: acquire a lease and exit", "[.][sqlite_child]") {
    char const* db = std::getenv("BERTH_SQLITE_CHILD_DB");
    if (!db) return;
    auto store = sqlite_store::open(db);
    auto const env = store.ensure_local_environment("c1", t0());
    auto ev = event_for("child-lease", actions::lease_acquired, t0());
    auto const lease = store.acquire_lease(lease_on(env, "child-lease"), t0(), ev);
    REQUIRE(lease.epoch == 1);
}

TEST_CASE("a lease acquired by one process is seen and released by the next", "[sqlite_store]") {
    temp_dir dir;
    auto const path = dir.file("berth.db");
    auto const log = dir.file("child.log");
    int const rc =
        wait_exit(spawn_self("sqlite child: acquire a lease and exit", {{"BERTH_SQLITE_CHILD_DB", path}}, log));
    INFO(slurp(log));
    REQUIRE(rc == 0);

    auto store = sqlite_store::open(path);
    auto const lease = store.get_lease("child-lease");
    REQUIRE(lease);
    CHECK(lease->status == lease_status::active);
    auto ev = event_for(lease->id, actions::lease_released, t0() + std::chrono::seconds(5));
    auto const released = store.transition_lease(
        {.id = lease->id, .expected_epoch = lease->epoch, .to = lease_status::released}, t0() + std::chrono::seconds(5),
        ev);
    CHECK(released.status == lease_status::released);
    CHECK(released.epoch == 2);
    auto const events = store.list_activity({.entity_id = "child-lease"});
    REQUIRE(events.size() == 2);
    CHECK(events[0].action == actions::lease_acquired);
    CHECK(events[1].action == actions::lease_released);
}

namespace {
struct race_counts {
    int acquired = 0, refused_capacity = 0, released = 0, reaped = 0, stale = 0, max_active_seen = 0;
};
}  // namespace

// One racer: acquire on the shared environment (capacity 2), sometimes reap another racer's lease
// with the epoch it read, then release its own lease with the epoch it holds. Writes its counts.
TEST_CASE("sqlite child: race", "[.][sqlite_child]") {
    char const* db = std::getenv("BERTH_SQLITE_CHILD_DB");
    if (!db) return;
    std::string const env_id = std::getenv("BERTH_SQLITE_CHILD_ENV");
    std::string const out = std::getenv("BERTH_SQLITE_CHILD_OUT");
    int const rounds = std::atoi(std::getenv("BERTH_SQLITE_CHILD_ROUNDS"));
    auto store = sqlite_store::open(db, sqlite_options{.busy_timeout = std::chrono::seconds(30)});
    race_counts n;
    testing::manual_clock clock;
    for (int i = 0; i < rounds; ++i) {
        clock.advance(std::chrono::milliseconds(1));
        auto const id = new_id();
        auto ev = event_for(id, actions::lease_acquired, clock.now());
        environment_lease mine;
        try {
            mine = store.acquire_lease(new_lease{.id = id, .company_id = "c1", .environment_id = env_id}, clock.now(),
                                       ev);
            ++n.acquired;
        } catch (store_error const& e) {
            REQUIRE(e.code() == store_errc::capacity_exceeded);
            ++n.refused_capacity;
            continue;
        }
        auto const active = store.list_leases(env_id, {.status = lease_status::active});
        n.max_active_seen = std::max<int>(n.max_active_seen, static_cast<int>(active.size()));
        REQUIRE(active.size() <= 2);
        if (i % 2 == 0) {
            for (auto const& other : active) {
                if (other.id == mine.id) continue;
                auto rev = event_for(other.id, actions::lease_expired, clock.now());
                try {
                    store.transition_lease({.id = other.id, .expected_epoch = other.epoch, .to = lease_status::expired,
                                            .failure_reason = "lease_expired"},
                                           clock.now(), rev);
                    ++n.reaped;
                } catch (store_error const& e) {
                    REQUIRE(e.code() == store_errc::stale_epoch);
                    ++n.stale;
                }
            }
        }
        auto rel = event_for(mine.id, actions::lease_released, clock.now());
        try {
            store.transition_lease({.id = mine.id, .expected_epoch = mine.epoch, .to = lease_status::released},
                                   clock.now(), rel);
            ++n.released;
        } catch (store_error const& e) {
            REQUIRE(e.code() == store_errc::stale_epoch);  // reaped by another racer meanwhile
            ++n.stale;
        }
    }
    std::ofstream(out) << n.acquired << ' ' << n.refused_capacity << ' ' << n.released << ' ' << n.reaped << ' '
                       << n.stale << ' ' << n.max_active_seen << '\n';
}

TEST_CASE("4 processes racing on one environment with maxActiveLeases = 2", "[sqlite_store]") {
    temp_dir dir;
    auto const path = dir.file("race.db");
    auto store = sqlite_store::open(path);
    auto const env = make_env(store, json_object{{"maxActiveLeases", 2}});
    int const rounds = 60;

    std::atomic<bool> done{false};
    std::atomic<std::size_t> max_active{0};
    std::thread watcher([&] {
        while (!done) {
            auto const n = store.list_leases(env.id, {.status = lease_status::active}).size();
            if (n > max_active) max_active = n;
        }
    });
    std::vector<pid_t> pids;
    for (int k = 0; k < 4; ++k)
        pids.push_back(spawn_self("sqlite child: race",
                                  {{"BERTH_SQLITE_CHILD_DB", path},
                                   {"BERTH_SQLITE_CHILD_ENV", env.id},
                                   {"BERTH_SQLITE_CHILD_OUT", dir.file("out" + std::to_string(k))},
                                   {"BERTH_SQLITE_CHILD_ROUNDS", std::to_string(rounds)}},
                                  dir.file("log" + std::to_string(k))));
    std::vector<int> codes;
    for (auto pid : pids) codes.push_back(wait_exit(pid));
    done = true;
    watcher.join();
    for (int k = 0; k < 4; ++k) {
        INFO("racer " << k << ":\n" << slurp(dir.file("log" + std::to_string(k))));
        REQUIRE(codes[k] == 0);
    }

    race_counts total;
    for (int k = 0; k < 4; ++k) {
        std::istringstream in(slurp(dir.file("out" + std::to_string(k))));
        race_counts n;
        in >> n.acquired >> n.refused_capacity >> n.released >> n.reaped >> n.stale >> n.max_active_seen;
        total.acquired += n.acquired;
        total.refused_capacity += n.refused_capacity;
        total.released += n.released;
        total.reaped += n.reaped;
        total.stale += n.stale;
        total.max_active_seen = std::max(total.max_active_seen, n.max_active_seen);
    }
    INFO("acquired " << total.acquired << ", refused " << total.refused_capacity << ", released " << total.released
                     << ", reaped " << total.reaped << ", stale " << total.stale);
    CHECK(total.acquired + total.refused_capacity == 4 * rounds);
    CHECK(total.acquired > 0);
    CHECK(max_active <= 2);
    CHECK(total.max_active_seen <= 2);

    // Every lease ended exactly once (no lost update, no double end), every refused write wrote
    // nothing: one acquire event and one end event per lease.
    auto const leases = store.list_leases(env.id, {.limit = no_limit});
    CHECK(static_cast<int>(leases.size()) == total.acquired);
    CHECK(total.released + total.reaped == total.acquired);
    // The owner of every reaped lease was refused when it tried to release it with its old epoch.
    CHECK(total.stale >= total.reaped);
    if (total.reaped == 0) WARN("no racer reaped another's lease in this run: the stale-epoch path was not raced");
    for (auto const& l : leases) {
        CHECK(l.epoch == 2);
        CHECK((l.status == lease_status::released || l.status == lease_status::expired));
    }
    CHECK(static_cast<int>(store.list_activity({.limit = no_limit}).size()) == 2 * total.acquired);
}

// ---- threads -----------------------------------------------------------------------------------

TEST_CASE("sqlite_store serves many threads: parallel reads, serialised writes", "[sqlite_store]") {
    temp_dir dir;
    auto store = sqlite_store::open(dir.file("threads.db"));
    auto const env = make_env(store, json_object{{"maxActiveLeases", 3}});
    std::atomic<int> acquired{0}, refused{0}, violations{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < 40; ++i) {
                try {
                    auto const l = store.acquire_lease(lease_on(env), t0(), std::nullopt);
                    ++acquired;
                    if (store.list_leases(env.id, {.status = lease_status::active}).size() > 3) ++violations;
                    store.transition_lease({.id = l.id, .expected_epoch = 1, .to = lease_status::released}, t0(),
                                           std::nullopt);
                } catch (store_error const& e) {
                    if (e.code() == store_errc::capacity_exceeded) ++refused;
                    else ++violations;
                }
            }
        });
    for (auto& t : threads) t.join();
    CHECK(violations == 0);
    CHECK(acquired + refused == 8 * 40);
    CHECK(static_cast<int>(store.list_leases(env.id, {.status = lease_status::released}).size()) == acquired);
}

// ---- WAL writes --------------------------------------------------------------------------------

namespace {
/// Counts, and on request fails, the write(2)s the unix VFS issues to one file, through SQLite's
/// own system-call override: what the store really asks of the kernel. One at a time.
class wal_write_probe {
public:
    wal_write_probe() : vfs_(sqlite3_vfs_find("unix")) {
        REQUIRE(vfs_);
        original_pwrite_ = vfs_->xGetSystemCall(vfs_, "pwrite");
        original_pwrite64_ = vfs_->xGetSystemCall(vfs_, "pwrite64");
        REQUIRE((original_pwrite_ || original_pwrite64_));
        if (original_pwrite_)
            REQUIRE(vfs_->xSetSystemCall(vfs_, "pwrite", reinterpret_cast<sqlite3_syscall_ptr>(&hook_pwrite)) ==
                    SQLITE_OK);
        if (original_pwrite64_)
            REQUIRE(vfs_->xSetSystemCall(vfs_, "pwrite64", reinterpret_cast<sqlite3_syscall_ptr>(&hook_pwrite64)) ==
                    SQLITE_OK);
    }
    wal_write_probe(wal_write_probe const&) = delete;
    wal_write_probe& operator=(wal_write_probe const&) = delete;
    ~wal_write_probe() {
        if (original_pwrite_) vfs_->xSetSystemCall(vfs_, "pwrite", nullptr);
        if (original_pwrite64_) vfs_->xSetSystemCall(vfs_, "pwrite64", nullptr);
        inode_ = 0;
        fail_with_ = 0;
    }
    /// Starts counting the writes to `path` (which must exist) from zero.
    void watch(std::string const& path) {
        struct stat st {};
        REQUIRE(::stat(path.c_str(), &st) == 0);
        inode_ = st.st_ino;
        writes_ = 0;
    }
    [[nodiscard]] int writes() const noexcept { return writes_; }
    /// Makes every write to the watched file fail with `error` (0: succeed again).
    void fail_with(int error) noexcept { fail_with_ = error; }

private:
    using pwrite_fn = ssize_t (*)(int, void const*, std::size_t, off_t);
    static bool watched(int fd) {
        struct stat st {};
        if (inode_ == 0 || ::fstat(fd, &st) != 0 || st.st_ino != inode_) return false;
        ++writes_;
        return true;
    }
    static ssize_t hook_pwrite(int fd, void const* buf, std::size_t n, off_t off) {
        if (watched(fd) && fail_with_ != 0) return errno = fail_with_, -1;
        return reinterpret_cast<pwrite_fn>(original_pwrite_)(fd, buf, n, off);
    }
    static ssize_t hook_pwrite64(int fd, void const* buf, std::size_t n, off_t off) {
        if (watched(fd) && fail_with_ != 0) return errno = fail_with_, -1;
        return reinterpret_cast<pwrite_fn>(original_pwrite64_)(fd, buf, n, off);
    }
    sqlite3_vfs* vfs_;
    static inline sqlite3_syscall_ptr original_pwrite_ = nullptr, original_pwrite64_ = nullptr;
    static inline std::atomic<ino_t> inode_{0};
    static inline std::atomic<int> writes_{0}, fail_with_{0};
};

/// What the kernel holds of a database at this instant — its file and its WAL, as a process crash
/// would leave them (the shared-memory index is rebuilt from the WAL by whoever opens it next).
std::string crash_image(std::string const& path, temp_dir const& into, int n) {
    auto const image = into.file("image-" + std::to_string(n) + ".db");
    fs::copy_file(path, image);
    if (fs::exists(path + "-wal")) fs::copy_file(path + "-wal", image + "-wal");
    return image;
}

/// Opens `path` with a raw connection, through the VFS named `vfs` (nullptr: the default one).
sqlite3* raw_open(std::string const& path, char const* vfs) {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs) == SQLITE_OK);
    return db;
}
std::string raw_value(sqlite3* db, std::string const& sql) {
    sqlite3_stmt* st = nullptr;
    INFO(sql);
    REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(st) == SQLITE_ROW);
    auto const* t = sqlite3_column_text(st, 0);
    std::string v = t ? reinterpret_cast<char const*>(t) : "NULL";
    sqlite3_finalize(st);
    return v;
}
void raw_exec(sqlite3* db, std::string const& sql) {
    char* err = nullptr;
    int const rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    INFO(sql << ": " << (err ? err : ""));
    sqlite3_free(err);
    REQUIRE(rc == SQLITE_OK);
}
}  // namespace

TEST_CASE("sqlite_store writes each transaction's WAL frames with one write(2)", "[sqlite_store][wal]") {
    temp_dir dir;
    wal_write_probe probe;
    auto writes_for_ten_acquires = [&](std::string const& name, bool coalesce) {
        auto const path = dir.file(name);
        auto store = sqlite_store::open(path, {.wal_autocheckpoint = 0, .coalesce_wal_writes = coalesce});
        auto const env = make_env(store);
        probe.watch(path + "-wal");
        for (int i = 0; i < 10; ++i)
            (void)store.acquire_lease(lease_on(env), t0(), event_for("l" + std::to_string(i), actions::lease_acquired, t0()));
        int const n = probe.writes();
        CHECK(store.list_leases(env.id, {}).size() == 10);
        return n;
    };
    CHECK(writes_for_ten_acquires("coalesced.db", true) == 10);
    // SQLite's own way, the control: two writes per frame, and each acquire writes several pages
    // (the lease row, its indexes, the event and its indexes).
    CHECK(writes_for_ten_acquires("plain.db", false) >= 10 * 2 * 6);
}

TEST_CASE("sqlite_store: what a process crash leaves after each commit holds every committed write",
          "[sqlite_store][wal]") {
    temp_dir dir, images;
    auto const path = dir.file("crash.db");
    auto store = sqlite_store::open(path, {.checkpoint_in_background = false});
    auto const env = make_env(store);
    // Larger than one write of the unix VFS (128 KiB) and than the shim's buffer (4 MiB).
    auto const big = make_env(store, json_object{{"blob", std::string(5u << 20, 'x')}});
    std::vector<std::string> ids;
    for (int i = 0; i < 60; ++i) {
        ids.push_back(new_id());
        auto const l = store.acquire_lease(lease_on(i % 2 ? env : big, ids.back()), t0(),
                                           event_for(ids.back(), actions::lease_acquired, t0()));
        if (i % 3 == 0)
            (void)store.transition_lease({.id = l.id, .expected_epoch = 1, .to = lease_status::released}, t0(),
                                         event_for(ids.back(), actions::lease_released, t0()));
        if (i % 10 != 9) continue;
        auto const image = crash_image(path, images, i);
        auto recovered = sqlite_store::open(image);
        CHECK(recovered.list_leases(env.id, {}).size() + recovered.list_leases(big.id, {}).size() == ids.size());
        CHECK(recovered.list_leases(env.id, {.status = lease_status::released}).size() +
                  recovered.list_leases(big.id, {.status = lease_status::released}).size() ==
              (ids.size() + 2) / 3);
        CHECK(recovered.get_environment(big.id)->config.at("blob").as_string().size() == (5u << 20));
        raw_db check(image);
        CHECK(check.value("PRAGMA integrity_check") == "ok");
    }
}

TEST_CASE("WAL coalescing: cache spills and pages rewritten within a transaction survive a crash",
          "[sqlite_store][wal]") {
    // The engine's rare paths, driven directly: a page cache of 8 pages makes SQLite spill frames
    // in the middle of the transaction, and updating the spilled rows rewrites frames (and then
    // their checksums) before the commit. Each commit must be whole in the crash image, and a
    // connection of the default VFS must read the same live file.
    temp_dir dir, images;
    auto const path = dir.file("spill.db");
    sqlite3* db = raw_open(path, detail::sqlite::wal_coalescing_vfs());
    raw_exec(db, "PRAGMA journal_mode = WAL");
    raw_exec(db, "PRAGMA cache_size = 8");
    raw_exec(db, "CREATE TABLE t (id INTEGER PRIMARY KEY, round INTEGER NOT NULL, v BLOB NOT NULL)");
    sqlite3* reader = raw_open(path, nullptr);
    for (int round = 1; round <= 6; ++round) {
        raw_exec(db, "BEGIN");
        raw_exec(db, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 400) "
                     "INSERT INTO t (round, v) SELECT " + std::to_string(round) + ", randomblob(300) FROM n");
        raw_exec(db, "UPDATE t SET v = randomblob(310), round = " + std::to_string(round));
        raw_exec(db, "UPDATE t SET v = randomblob(300) WHERE id % 2 = 0");
        raw_exec(db, "COMMIT");
        auto const expected = std::to_string(400 * round);
        CHECK(raw_value(reader, "SELECT count(*) FROM t WHERE round = " + std::to_string(round)) == expected);
        auto const image = crash_image(path, images, round);
        sqlite3* recovered = raw_open(image, nullptr);
        CHECK(raw_value(recovered, "PRAGMA integrity_check") == "ok");
        CHECK(raw_value(recovered, "SELECT count(*) FROM t WHERE round = " + std::to_string(round)) == expected);
        sqlite3_close(recovered);
    }
    sqlite3_close(reader);
    sqlite3_close(db);
}

TEST_CASE("sqlite_store: a WAL write that fails fails its operation and loses nothing", "[sqlite_store][wal]") {
    temp_dir dir;
    auto const path = dir.file("full.db");
    wal_write_probe probe;
    auto store = sqlite_store::open(path, {.checkpoint_in_background = false});
    auto const env = make_env(store);
    auto const kept = store.acquire_lease(lease_on(env), t0(), event_for("kept", actions::lease_acquired, t0()));
    probe.watch(path + "-wal");
    probe.fail_with(ENOSPC);
    auto const msg = message_of([&] {
        (void)store.acquire_lease(lease_on(env, "lost"), t0(), event_for("lost", actions::lease_acquired, t0()));
    });
    CHECK_THAT(msg, Catch::Contains("full"));
    CHECK(code_of([&] {
              (void)store.transition_lease({.id = kept.id, .expected_epoch = 1, .to = lease_status::released}, t0(),
                                           std::nullopt);
          }) == store_errc::backend_failure);
    CHECK(probe.writes() > 0);
    probe.fail_with(0);
    // Nothing of the failed transactions is visible, here or to another connection; the store goes on.
    CHECK_FALSE(store.get_lease("lost"));
    CHECK(store.get_lease(kept.id)->status == lease_status::active);
    CHECK(sqlite_store::open(path).list_activity({}).size() == 1);
    auto const again = store.acquire_lease(lease_on(env, "again"), t0(), std::nullopt);
    CHECK(store.transition_lease({.id = kept.id, .expected_epoch = 1, .to = lease_status::released}, t0(),
                                 std::nullopt)
              .epoch == 2);
    CHECK(sqlite_store::open(path).list_leases(env.id, {}).size() == 2);
    raw_db check(path);
    CHECK(check.value("PRAGMA integrity_check") == "ok");
    (void)again;
}

TEST_CASE("sqlite_store reuses its prepared statements for filters on enum columns too", "[sqlite_store]") {
    // The bug this guards: a status or driver filter was bound as a parameter (`status = ?2`).
    // SQLite reads such a bound value to decide whether a partial index applies (`WHERE status =
    // 'active' AND ...`, `WHERE driver = 'local'`), and then recompiles the statement each time
    // the parameter is bound again: every release_for_run paid a compile in list_run_leases.
    temp_dir dir;
    auto store = sqlite_store::open(dir.file("reuse.db"));
    auto const env = store.ensure_local_environment("c1", t0());
    auto lease = lease_on(env);
    lease.heartbeat_run_id = "run-1";
    (void)store.acquire_lease(lease, t0(), std::nullopt);
    auto const before = store.statement_stats();
    for (int i = 0; i < 5; ++i) {
        CHECK(store.list_run_leases("run-1", {.status = lease_status::active}).size() == 1);
        CHECK(store.list_run_leases("run-1", {.status = lease_status::released}).empty());
        CHECK(store.list_leases(env.id, {.status = lease_status::active}).size() == 1);
        CHECK(store.list_environments("c1", {.status = environment_status::active, .driver = driver_kind::local})
                  .size() == 1);
        CHECK(store.list_environments("c1", {.driver = driver_kind::ssh}).empty());
        CHECK(store.get_lease(lease.id).has_value());
    }
    auto const after = store.statement_stats();
    CHECK(after.recompiled == before.recompiled);
    CHECK(after.cached > before.cached);  // the filters' statements are in the cache
}

TEST_CASE("sqlite_store finds an entity's activity through the entity index, not by scanning the log",
          "[sqlite_store]") {
    // The bug this guards: upstream's index is (entity_type, entity_id), and an entity_id filter
    // alone cannot seek it, so SQLite scanned the whole index: 11 ms per lookup at 200k events.
    temp_dir dir;
    auto store = sqlite_store::open(dir.file("entity.db"));
    constexpr int events = 300;
    for (int i = 0; i < events; ++i)
        store.record_activity(activity_event{.id = new_id(), .company_id = "c1", .actor_type = "system",
                                             .actor_id = "berth", .action = "environment.lease_acquired",
                                             .entity_type = i % 3 == 0 ? "environment" : "environment_lease",
                                             .entity_id = "e" + std::to_string(i % 100),
                                             .run_id = "run-" + std::to_string(i % 7), .created_at = t0()});
    auto scanned_by = [&](activity_filter const& f, std::size_t expected) {
        auto const before = store.statement_stats().full_scan_steps;
        CHECK(store.list_activity(f).size() == expected);
        return store.statement_stats().full_scan_steps - before;
    };
    // e1 has events 1, 101, 201: types environment_lease, environment_lease, environment (201 % 3 == 0).
    CHECK(scanned_by({.entity_id = "e1"}, 3) < 10);
    CHECK(scanned_by({.entity_type = "environment", .entity_id = "e1"}, 1) < 10);
    CHECK(scanned_by({.company_id = "c1", .entity_id = "e1"}, 3) < 10);
    CHECK(scanned_by({.entity_id = "nobody"}, 0) < 10);
    // The counter does see scans: the unfiltered list steps past every row but the first.
    CHECK(scanned_by({}, events) >= events - 1);
}

TEST_CASE("sqlite_store's company-scoped reads and the startup reconcile seek an index, not a scan",
          "[sqlite_store]") {
    // The bug this guards: the supervisor's startup reconcile (local_process services in a live
    // status) read every row of workspace_runtime_services: berth's live-service index is
    // partial, and SQLite uses it only when the query states its predicate word for word.
    temp_dir dir;
    auto store = sqlite_store::open(dir.file("seek.db"));
    constexpr int n = 200;
    auto const env = store.ensure_local_environment("c1", t0());
    auto const nth = [](char const* prefix, int i) { return prefix + std::to_string(i); };
    for (int i = 0; i < n; ++i) {
        (void)store.upsert_runtime_service(
            workspace_runtime_service{.id = new_id(), .company_id = "c1", .project_id = nth("p", i % 5),
                                      .project_workspace_id = nth("pw", i % 10),
                                      .execution_workspace_id = nth("ew", i % 20), .service_name = nth("svc", i),
                                      .status = i < 3 ? runtime_service_status::running : runtime_service_status::stopped,
                                      .started_by_run_id = nth("run", i % 13), .started_at = t0(),
                                      .created_at = t0(), .updated_at = t0()},
            t0());
        (void)store.create_execution_workspace(
            new_execution_workspace{.company_id = "c1", .project_id = nth("p", i % 5),
                                    .source_issue_id = nth("i", i % 17), .name = nth("w", i),
                                    .branch_name = nth("b", i)},
            t0());
        (void)store.begin_operation(new_workspace_operation{.company_id = "c1",
                                                            .execution_workspace_id = nth("ew", i % 20),
                                                            .heartbeat_run_id = nth("run", i % 13),
                                                            .issue_id = nth("i", i % 17)},
                                    t0());
        auto lease = lease_on(env, nth("l", i));
        lease.heartbeat_run_id = nth("run", i % 13);
        (void)store.acquire_lease(lease, t0(), std::nullopt);
    }
    auto scanned_by = [&](auto&& read, std::size_t expected) {
        auto const before = store.statement_stats().full_scan_steps;
        CHECK(read().size() == expected);
        return store.statement_stats().full_scan_steps - before;
    };
    using rs = runtime_service_status;
    CHECK(scanned_by([&] {
              return store.list_runtime_services({.provider = runtime_service_provider::local_process,
                                                  .statuses = {rs::provisioning, rs::starting, rs::running}});
          }, 3) == 0);
    CHECK(scanned_by([&] { return store.list_runtime_services({.company_id = "c1", .execution_workspace_id = "ew3"}); },
                     10) == 0);
    CHECK(scanned_by([&] { return store.list_runtime_services({.company_id = "c1", .statuses = {rs::running}}); }, 3) ==
          0);
    CHECK(scanned_by([&] {
              return store.list_execution_workspaces(
                  "c1", {.project_id = "p1", .status = execution_workspace_status::active, .branch_name = "b6"});
          }, 1) == 0);
    CHECK(scanned_by([&] { return store.list_execution_workspaces("c1", {.source_issue_id = "i3"}); }, 12) == 0);
    CHECK(scanned_by([&] { return store.list_operations({.company_id = "c1", .heartbeat_run_id = "run3"}); }, 16) == 0);
    CHECK(scanned_by([&] { return store.list_operations({.company_id = "c1", .execution_workspace_id = "ew3"}); }, 10) ==
          0);
    CHECK(scanned_by([&] { return store.list_leases(env.id, {.status = lease_status::active}); }, n) == 0);
    CHECK(scanned_by([&] { return store.list_run_leases("run3", {}); }, 16) == 0);
    CHECK(scanned_by([&] { return store.list_expired_leases(t0()); }, 0) == 0);
    // Stopping a workspace's services without the company reads only the live rows, through the same index.
    CHECK(scanned_by([&] { return store.stop_runtime_services({.execution_workspace_id = "ew1"}, t0()); }, 1) <= 3);
}

#endif  // BERTH_TEST_SQLITE
