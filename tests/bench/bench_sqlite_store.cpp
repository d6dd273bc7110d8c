// sqlite_store's write path against SQLite's own floor, in one run, on files in a temp dir:
//   (a) raw_pair/<sync>: the raw C API, no berth: one INSERT of a lease-sized row and one UPDATE
//       of it (status, epoch, timestamps: the bytes change, or SQLite would skip the write), each
//       its own transaction, WAL, on a table with only its primary key;
//   (b) berth_lease_pair/<sync>: sqlite_store::acquire_lease + transition_lease to released, each
//       with its activity event, as the orchestrator calls them (and, for information, the same
//       pair without the events);
//   (c) orchestrator_pair/<sync>: the full run_orchestrator pair on that store — acquire_for_run
//       + release_for_run with the real local_driver, resolve and activity included;
// for synchronous=NORMAL and FULL. The targets (the project's decision on issue 19): under NORMAL,
// (b) against the same rows written with the raw C API into a database of berth's own schema
// (`ratio sqlite_lease_pair_normal_vs_same_schema_raw`, target <= 1.0: the store adds nothing to
// what SQLite needs for that schema); under FULL, (b) against the one-row floor (target <= 2.0);
// (c) against the floor, target <= 4 under NORMAL and <= 3 under FULL. Then, as `info` lines
// without a target: (b) against the one-row floor under NORMAL; (b) against the floor written
// through berth's WAL-coalescing VFS; the raw same-schema rows against the floor; (b) with
// SQLite's own WAL writes (coalesce_wal_writes = false), and (b) without its activity events.
// Last, `info sqlite_wal_frames_*`: the WAL frames (pages) a pair writes, floor and berth, counted
// with checkpoints off (wal_frames_per_pair): not a time, the quantity that bounds the ratios.
// The floor's lease id is berth::new_id (as the store's would be); run and issue ids are random
// v4 UUIDs as a caller brings them (bench::foreign_id), in every variant.
//
// Run: build-dir/tests/bench/bench_sqlite_store [--benchmark_min_time=0.5 --benchmark_repetitions=5
//      --benchmark_enable_random_interleaving=true] (ratios of medians, repetitions shuffled)

#include "bench_support.hpp"
#include "lease_pair.hpp"

#include <berth/berth.hpp>
#include <berth/drivers/local.hpp>
#include <berth/model/ids.hpp>
#include <berth/src.hpp>
#include <berth/stores/sqlite.hpp>
#include <berth/stores/sqlite/wal_coalescing_vfs.hpp>  // the floor through the same VFS, for information

#include <benchmark/benchmark.h>
#include <sqlite3.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

std::string const& bench_dir() {
    static std::string const dir = [] {
        std::string tmpl = (fs::temp_directory_path() / "berth-bench-sqlite-XXXXXX").string();
        if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
        return tmpl;
    }();
    return dir;
}

std::string fresh_file(std::string const& name) {
    auto const path = bench_dir() + "/" + name;
    for (auto const* suffix : {"", "-wal", "-shm"}) fs::remove(path + suffix);
    return path;
}

/// A benchmark's database, removed when the benchmark ends (declare it before the connection or
/// store, so that it goes after them). Removing a file drops its dirty pages, so the kernel does
/// not write back one benchmark's hundreds of MiB of WAL while the next one is measured.
struct bench_file {
    std::string path;
    explicit bench_file(std::string const& name) : path(fresh_file(name)) {}
    bench_file(bench_file const&) = delete;
    bench_file& operator=(bench_file const&) = delete;
    ~bench_file() {
        std::error_code ec;
        for (auto const* suffix : {"", "-wal", "-shm"}) fs::remove(path + suffix, ec);
    }
};

void check(int rc, sqlite3* db, char const* what) {
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
        throw std::runtime_error(std::string(what) + ": " + sqlite3_errmsg(db));
}

// (a) The floor: what any store must pay for two transactions that write a lease-sized row.
class raw_floor {
public:
    /// `wal_autocheckpoint` < 0: SQLite's default (1000 pages).
    raw_floor(std::string const& path, char const* synchronous, char const* vfs, int wal_autocheckpoint = -1) {
        check(sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs), db_, "open");
        check(sqlite3_exec(db_, "PRAGMA journal_mode = WAL", nullptr, nullptr, nullptr), db_, "wal");
        check(sqlite3_exec(db_, (std::string("PRAGMA synchronous = ") + synchronous).c_str(), nullptr, nullptr,
                           nullptr),
              db_, "synchronous");
        if (wal_autocheckpoint >= 0)
            check(sqlite3_exec(db_, ("PRAGMA wal_autocheckpoint = " + std::to_string(wal_autocheckpoint)).c_str(),
                               nullptr, nullptr, nullptr),
                  db_, "wal_autocheckpoint");
        check(sqlite3_exec(db_,
                           "CREATE TABLE leases (id TEXT PRIMARY KEY NOT NULL, company_id TEXT NOT NULL, "
                           "environment_id TEXT NOT NULL, execution_workspace_id TEXT, issue_id TEXT, "
                           "heartbeat_run_id TEXT, "
                           "status TEXT NOT NULL, lease_policy TEXT NOT NULL, provider TEXT, provider_lease_id TEXT, "
                           "acquired_at TEXT NOT NULL, last_used_at TEXT NOT NULL, expires_at TEXT, released_at TEXT, "
                           "failure_reason TEXT, cleanup_status TEXT, metadata TEXT, epoch INTEGER NOT NULL, "
                           "created_at TEXT NOT NULL, updated_at TEXT NOT NULL)",
                           nullptr, nullptr, nullptr),
              db_, "create");
        check(sqlite3_prepare_v2(db_,
                                 "INSERT INTO leases VALUES (?1, ?2, ?3, NULL, ?4, ?5, 'active', 'ephemeral', 'local', "
                                 "NULL, "
                                 "?6, ?6, NULL, NULL, NULL, NULL, ?7, 1, ?6, ?6)",
                                 -1, &ins_, nullptr),
              db_, "prepare insert");
        check(sqlite3_prepare_v2(db_,
                                 "UPDATE leases SET status = 'released', epoch = epoch + 1, released_at = ?2, "
                                 "last_used_at = ?2, updated_at = ?2 WHERE id = ?1",
                                 -1, &upd_, nullptr),
              db_, "prepare update");
    }
    raw_floor(raw_floor const&) = delete;
    raw_floor& operator=(raw_floor const&) = delete;
    ~raw_floor() {
        sqlite3_finalize(ins_);
        sqlite3_finalize(upd_);
        sqlite3_close(db_);
    }

    /// One INSERT and one UPDATE, each its own transaction. False when the UPDATE changed no row.
    bool write_pair() {
        now_ = now_ + std::chrono::microseconds(1);
        auto const id = berth::new_id(), run = berth::bench::foreign_id(), issue = berth::bench::foreign_id();
        auto const t = berth::to_iso8601(now_);
        sqlite3_bind_text(ins_, 1, id.c_str(), -1, SQLITE_STATIC);
        sqlite3_bind_text(ins_, 2, company_.c_str(), -1, SQLITE_STATIC);
        sqlite3_bind_text(ins_, 3, env_.c_str(), -1, SQLITE_STATIC);
        sqlite3_bind_text(ins_, 4, issue.c_str(), -1, SQLITE_STATIC);
        sqlite3_bind_text(ins_, 5, run.c_str(), -1, SQLITE_STATIC);
        sqlite3_bind_text(ins_, 6, t.c_str(), -1, SQLITE_STATIC);
        sqlite3_bind_text(ins_, 7, metadata_.c_str(), -1, SQLITE_STATIC);
        check(sqlite3_step(ins_), db_, "insert");
        sqlite3_reset(ins_);
        auto const t2 = berth::to_iso8601(now_ + std::chrono::microseconds(1));
        sqlite3_bind_text(upd_, 1, id.c_str(), -1, SQLITE_STATIC);
        sqlite3_bind_text(upd_, 2, t2.c_str(), -1, SQLITE_STATIC);
        check(sqlite3_step(upd_), db_, "update");
        bool const changed = sqlite3_changes(db_) == 1;
        sqlite3_reset(upd_);
        return changed;
    }

private:
    sqlite3* db_ = nullptr;
    sqlite3_stmt* ins_ = nullptr;
    sqlite3_stmt* upd_ = nullptr;
    std::string const company_ = berth::new_id(), env_ = berth::new_id();
    std::string const metadata_ = R"({"driver":"local","executionWorkspaceMode":null})";
    berth::timestamp now_ = berth::timestamp::from_micros(1767225600000000);
};

void raw_pair(benchmark::State& state, char const* synchronous, char const* vfs) {
    bench_file const file(std::string("raw-") + synchronous + (vfs ? "-coalesced" : "") + ".db");
    raw_floor floor(file.path, synchronous, vfs);
    for (auto _ : state)
        if (!floor.write_pair()) state.SkipWithError("the UPDATE changed no row");
}

// For information, and not a time: the WAL frames (pages) a pair writes, counted with checkpoints
// off — the floor's, berth's lease pair's, and berth's without its activity events. A pair's cost
// is mostly per page (B-tree edits, the WAL checksum, the copy into the page cache, the
// checkpoint), so this is what bounds the time ratios.
void wal_frames_per_pair(benchmark::State& state) {
    constexpr int warm_up = 200, counted = 200;
    auto wal_size = [](std::string const& path) { return double(fs::file_size(path + "-wal")); };
    // A frame is a 24-byte header and a page; the page size is the WAL header's bytes 8–11 (big
    // endian), so that the count stays right for a database with another page size.
    auto frame = [](std::string const& path) {
        unsigned char header[12] = {};
        std::FILE* f = std::fopen((path + "-wal").c_str(), "rb");
        if (!f) throw std::runtime_error("cannot open " + path + "-wal");
        auto const got = std::fread(header, 1, sizeof header, f);
        std::fclose(f);
        if (got != sizeof header) throw std::runtime_error(path + "-wal has no header");
        auto const page = (std::uint32_t{header[8]} << 24) | (std::uint32_t{header[9]} << 16) |
                          (std::uint32_t{header[10]} << 8) | std::uint32_t{header[11]};
        return double(page + 24);
    };
    double floor_frames = 0, berth_frames = 0, bare_frames = 0;
    for (auto _ : state) {
        {
            bench_file const file("frames-floor.db");
            raw_floor floor(file.path, "NORMAL", nullptr, 0);
            for (int i = 0; i < warm_up; ++i) floor.write_pair();
            auto const before = wal_size(file.path);
            for (int i = 0; i < counted; ++i) floor.write_pair();
            floor_frames = (wal_size(file.path) - before) / frame(file.path) / counted;
        }
        for (bool const with_activity : {true, false}) {
            bench_file const file(with_activity ? "frames-berth.db" : "frames-berth-bare.db");
            auto store = berth::sqlite_store::open(file.path, berth::sqlite_options{.wal_autocheckpoint = 0});
            berth::bench::lease_pair_context c;
            c.environment_id = store.ensure_local_environment(c.company, c.now).id;
            for (int i = 0; i < warm_up; ++i) berth::bench::write_lease_pair(store, c, with_activity);
            auto const before = wal_size(file.path);
            for (int i = 0; i < counted; ++i) berth::bench::write_lease_pair(store, c, with_activity);
            (with_activity ? berth_frames : bare_frames) = (wal_size(file.path) - before) / frame(file.path) / counted;
        }
    }
    state.counters["floor"] = floor_frames;
    state.counters["berth"] = berth_frames;
    state.counters["berth_without_activity"] = bare_frames;
    state.counters["berth_over_floor"] = berth_frames / floor_frames;
}

// For information: the same rows as (b) written with the raw C API into a database that
// sqlite_store created (upstream's indexes, berth's constraints), default VFS: what SQLite itself
// needs for this schema, so that (b) / this is the store's own overhead.
void raw_schema_pair(benchmark::State& state) {
    bench_file const file("raw-schema-normal.db");
    berth::bench::lease_pair_context c;
    c.environment_id = berth::sqlite_store::open(file.path).ensure_local_environment(c.company, c.now).id;
    sqlite3* db = nullptr;
    check(sqlite3_open(file.path.c_str(), &db), db, "open");
    check(sqlite3_exec(db, "PRAGMA synchronous = NORMAL", nullptr, nullptr, nullptr), db, "synchronous");
    auto prepare = [&](char const* sql) {
        sqlite3_stmt* st = nullptr;
        check(sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, nullptr), db, sql);
        return st;
    };
    auto exec = [&](sqlite3_stmt* st, char const* what) {
        check(sqlite3_step(st), db, what);
        sqlite3_reset(st);
    };
    sqlite3_stmt* begin = prepare("BEGIN IMMEDIATE");
    sqlite3_stmt* commit = prepare("COMMIT");
    sqlite3_stmt* ins = prepare(
        "INSERT INTO environment_leases (id, company_id, environment_id, execution_workspace_id, issue_id, "
        "heartbeat_run_id, status, lease_policy, provider, provider_lease_id, acquired_at, last_used_at, expires_at, "
        "released_at, failure_reason, cleanup_status, metadata, epoch, created_at, updated_at) VALUES (?1, ?2, ?3, "
        "NULL, ?4, ?5, 'active', 'ephemeral', 'local', NULL, ?6, ?6, NULL, NULL, NULL, NULL, ?7, 1, ?6, ?6)");
    sqlite3_stmt* upd = prepare(
        "UPDATE environment_leases SET status = 'released', epoch = epoch + 1, released_at = ?2, last_used_at = ?2, "
        "updated_at = ?2 WHERE id = ?1 AND epoch = 1");
    sqlite3_stmt* ev = prepare(
        "INSERT INTO activity_log (id, company_id, actor_type, actor_id, action, entity_type, entity_id, agent_id, "
        "run_id, details, created_at) VALUES (?1, ?2, 'agent', ?3, ?4, 'environment_lease', ?5, ?3, ?6, ?7, ?8)");
    std::string const metadata = R"({"driver":"local","executionWorkspaceMode":null})";
    std::string const acquired = R"({"environmentId":")" + c.environment_id +
                                 R"(","driver":"local","leasePolicy":"ephemeral","provider":"local",)"
                                 R"("executionWorkspaceId":null,"issueId":"00000000-0000-4000-8000-000000000000"})";
    std::string const released = acquired.substr(0, acquired.size() - 1) +
                                 R"(,"status":"released","cleanupStatus":null,"failureReason":null})";
    auto bind = [](sqlite3_stmt* st, int i, std::string const& v) {
        sqlite3_bind_text(st, i, v.c_str(), static_cast<int>(v.size()), SQLITE_STATIC);
    };
    for (auto _ : state) {
        c.now = c.now + std::chrono::microseconds(1);
        auto const id = berth::new_id(), run = berth::bench::foreign_id(), issue = berth::bench::foreign_id();
        auto const t = berth::to_iso8601(c.now);
        auto const e1 = berth::new_id(), e2 = berth::new_id();
        exec(begin, "begin");
        bind(ins, 1, id), bind(ins, 2, c.company), bind(ins, 3, c.environment_id), bind(ins, 4, issue);
        bind(ins, 5, run), bind(ins, 6, t), bind(ins, 7, metadata);
        exec(ins, "insert lease");
        bind(ev, 1, e1), bind(ev, 2, c.company), bind(ev, 3, c.agent), bind(ev, 5, id), bind(ev, 6, run);
        sqlite3_bind_text(ev, 4, "environment.lease_acquired", -1, SQLITE_STATIC);
        bind(ev, 7, acquired), bind(ev, 8, t);
        exec(ev, "insert event");
        exec(commit, "commit");
        auto const t2 = berth::to_iso8601(c.now + std::chrono::microseconds(1));
        exec(begin, "begin");
        bind(upd, 1, id), bind(upd, 2, t2);
        exec(upd, "update lease");
        if (sqlite3_changes(db) != 1) state.SkipWithError("the UPDATE changed no row");
        bind(ev, 1, e2), bind(ev, 7, released), bind(ev, 8, t2);
        sqlite3_bind_text(ev, 4, "environment.lease_released", -1, SQLITE_STATIC);
        exec(ev, "insert event");
        exec(commit, "commit");
    }
    for (auto* st : {begin, commit, ins, upd, ev}) sqlite3_finalize(st);
    sqlite3_close(db);
}

// (b) berth's lease pair, with the activity events the orchestrator records.
void berth_lease_pair(benchmark::State& state, berth::sqlite_synchronous synchronous, char const* name,
                      bool with_activity, bool background_checkpoints, bool coalesce) {
    bench_file const file(std::string("berth-") + name + (with_activity ? "" : "-bare") +
                          (background_checkpoints ? "" : "-in-commit") + (coalesce ? "" : "-plain") + ".db");
    auto store = berth::sqlite_store::open(file.path, berth::sqlite_options{.synchronous = synchronous,
                                                                            .checkpoint_in_background = background_checkpoints,
                                                                            .coalesce_wal_writes = coalesce});
    berth::bench::lease_pair_context c;
    c.environment_id = store.ensure_local_environment(c.company, c.now).id;
    for (auto _ : state) benchmark::DoNotOptimize(berth::bench::write_lease_pair(store, c, with_activity));
}

// (c) The whole orchestrator pair: what a run pays for its lease, end to end.
void orchestrator_pair(benchmark::State& state, berth::sqlite_synchronous synchronous, char const* name) {
    using stack = berth::stack<berth::drivers<berth::local_driver>, berth::policies<berth::ephemeral>,
                               berth::sqlite_store>;
    bench_file const file(std::string("orchestrator-") + name + ".db");
    auto store = berth::sqlite_store::open(file.path, berth::sqlite_options{.synchronous = synchronous});
    berth::run_orchestrator<stack> orch{store, berth::local_driver{}};
    std::string const company = berth::new_id(), agent = berth::new_id();
    (void)orch.resolve_environment({.company_id = company});  // the local environment exists, as after a first run
    for (auto _ : state) {
        auto const run = berth::bench::foreign_id();
        auto const acq = orch.acquire_for_run(
            {.company_id = company, .agent_id = agent, .heartbeat_run_id = run, .issue_id = berth::bench::foreign_id()});
        auto const rel = orch.release_for_run({.company_id = company, .agent_id = agent, .heartbeat_run_id = run});
        if (rel.released.size() != 1 || !rel.errors.empty()) state.SkipWithError("release_for_run failed");
        benchmark::DoNotOptimize(acq.lease.epoch);
    }
}

// Reads from several threads at once: the store's reader pool lets them run in parallel (WAL
// readers take no lock against each other), where one connection behind a mutex would serialise
// them. Compare items_per_second of threads:1 and threads:2 (the machine has 2 cores).
berth::sqlite_store* shared_store = nullptr;
std::vector<std::string> shared_ids;

void berth_get_lease(benchmark::State& state) {
    if (state.thread_index() == 0 && !shared_store) {
        static auto store = berth::sqlite_store::open(fresh_file("berth-reads.db"));
        auto const now = berth::timestamp::from_micros(1767225600000000);
        auto const env = store.ensure_local_environment("company", now);
        for (int i = 0; i < 1000; ++i)
            shared_ids.push_back(
                store.acquire_lease(berth::new_lease{.id = berth::new_id(), .company_id = "company",
                                                     .environment_id = env.id},
                                    now, std::nullopt)
                    .id);
        shared_store = &store;
    }
    std::size_t i = static_cast<std::size_t>(state.thread_index()) * 7919;
    for (auto _ : state) {  // the loop's start is a barrier: thread 0's setup is done
        auto lease = shared_store->get_lease(shared_ids[i++ % shared_ids.size()]);
        benchmark::DoNotOptimize(lease);
    }
    state.SetItemsProcessed(state.iterations());
}

}  // namespace

int main(int argc, char** argv) {
    using berth::sqlite_synchronous;
    char const* const berth_vfs = berth::detail::sqlite::wal_coalescing_vfs();
    benchmark::RegisterBenchmark("raw_pair/normal", raw_pair, "NORMAL", nullptr)->Unit(benchmark::kMicrosecond);
    // Informational: the floor written through berth's WAL-coalescing VFS, and berth without it,
    // to show how much of the ratio is that VFS and how much is the store's own work.
    benchmark::RegisterBenchmark("raw_pair_coalesced/normal", raw_pair, "NORMAL", berth_vfs)
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark("raw_schema_pair/normal", raw_schema_pair)->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark("berth_lease_pair_plain_wal_writes/normal", berth_lease_pair,
                                 sqlite_synchronous::normal, "normal", true, true, false)
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark("berth_lease_pair/normal", berth_lease_pair, sqlite_synchronous::normal, "normal",
                                 true, true, true)
        ->Unit(benchmark::kMicrosecond);
    // Informational: the same pair without activity events, to show what the audit trail costs.
    benchmark::RegisterBenchmark("berth_lease_pair_without_activity/normal", berth_lease_pair,
                                 sqlite_synchronous::normal, "normal", false, true, true)
        ->Unit(benchmark::kMicrosecond);
    // Informational: SQLite's own checkpointing, in the commit that crosses the threshold.
    benchmark::RegisterBenchmark("berth_lease_pair_in_commit_checkpoint/normal", berth_lease_pair,
                                 sqlite_synchronous::normal, "normal", true, false, true)
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark("orchestrator_pair/normal", orchestrator_pair, sqlite_synchronous::normal, "normal")
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark("raw_pair/full", raw_pair, "FULL", nullptr)->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark("berth_lease_pair/full", berth_lease_pair, sqlite_synchronous::full, "full", true, true, true)
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark("orchestrator_pair/full", orchestrator_pair, sqlite_synchronous::full, "full")
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark("wal_frames_per_pair", wal_frames_per_pair)->Iterations(1)->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark("berth_get_lease", berth_get_lease)
        ->Threads(1)
        ->Threads(2)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
    int const rc = berth::bench::run_and_report(
        argc, argv,
        {{"sqlite_lease_pair_normal_vs_same_schema_raw", "berth_lease_pair/normal", "raw_schema_pair/normal", 1.0},
         {"sqlite_lease_pair_full", "berth_lease_pair/full", "raw_pair/full", 2.0},
         {"sqlite_orchestrator_pair_normal", "orchestrator_pair/normal", "raw_pair/normal", 4.0},
         {"sqlite_orchestrator_pair_full", "orchestrator_pair/full", "raw_pair/full", 3.0},
         {"sqlite_lease_pair_normal", "berth_lease_pair/normal", "raw_pair/normal", -1},
         {"sqlite_lease_pair_normal_vs_coalesced_floor", "berth_lease_pair/normal", "raw_pair_coalesced/normal", -1},
         {"sqlite_same_schema_raw_vs_floor_normal", "raw_schema_pair/normal", "raw_pair/normal", -1},
         {"sqlite_lease_pair_normal_plain_wal_writes", "berth_lease_pair_plain_wal_writes/normal", "raw_pair/normal",
          -1},
         {"sqlite_lease_pair_without_activity_normal", "berth_lease_pair_without_activity/normal", "raw_pair/normal",
          -1},
         {"sqlite_wal_frames_per_pair_floor", "wal_frames_per_pair/iterations:1", "", -1, 1e3, "floor"},
         {"sqlite_wal_frames_per_pair_berth", "wal_frames_per_pair/iterations:1", "", -1, 1e3, "berth"},
         {"sqlite_wal_frames_per_pair_berth_without_activity", "wal_frames_per_pair/iterations:1", "", -1, 1e3,
          "berth_without_activity"},
         {"sqlite_wal_frames_berth_over_floor", "wal_frames_per_pair/iterations:1", "", -1, 1e3, "berth_over_floor"}});
    std::error_code ec;
    fs::remove_all(bench_dir(), ec);
    return rc;
}
