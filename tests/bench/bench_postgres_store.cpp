// postgres_store's write path against libpq's floor, on one PostgreSQL 15 server started by the
// test fixture (tests/support/postgres_fixture.hpp; fsync and synchronous_commit on, the defaults),
// all in one run so that the machine's speed cancels out:
//   (a) raw_pair: libpq directly, prepared, over the same unix socket, into a table berth created:
//       INSERT of a lease-sized row, then UPDATE of it (status, epoch, timestamps), two commits;
//   (b) lease_pair: berth's acquire_lease + transition_lease to released, each with the activity
//       event the orchestrator records (tests/bench/lease_pair.hpp);
//   (c) orchestrator_pair: run_orchestrator's acquire_for_run + release_for_run on postgres_store;
//   (d) concurrent_8: 8 processes (tests/support/postgres_helper.cpp) doing lease pairs at once for
//       a few seconds: with the floor's statements through libpq (rawpairs), with berth's own
//       statements and values through libpq (rawsame: the store's statement texts, pipelined as the
//       store sends them), then through berth (pairs).
// (a)-(c) run 5 times each, interleaved in random order (the defaults below; the command line
// overrides them): each pair leaves dead rows and WAL behind that the server cleans up later
// (autovacuum, checkpoints), which would otherwise fall on whichever benchmark runs next. Measured
// in a fixed order, the lease pair after the floor took 1.5 ms, alone 0.87 ms.
// Prints `ratio postgres_lease_pair = b / a (target <= 1.5)`, `ratio postgres_orchestrator_pair =
// c / a (target <= 3)`, `ratio postgres_concurrent_raw_over_berth` = floor / berth throughput and
// `ratio postgres_concurrent_same_over_berth` = same statements / berth throughput (target <= 1.25,
// i.e. berth >= 0.8x raw), and as `info` berth's absolute times beside upstream's (2.1 ms per lease
// pair, 8.5-10 ms per orchestrator pair, measured on this machine kind) and each client's CPU time
// per pair in (d).
//
//   build/tests/bench/bench_postgres_store

#include <berth/src.hpp>
#include <berth/berth.hpp>
#include <berth/drivers/local.hpp>
#include <berth/stores/postgres.hpp>

#include "bench_support.hpp"
#include "lease_pair.hpp"
#include "postgres_fixture.hpp"

#include <libpq-fe.h>

#include <cstdio>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

namespace pg = berth::test::pg;

pg::postgres_server& server() { return pg::postgres_server::shared(); }

/// One schema for the whole run, created by berth (its tables, indexes, constraints).
struct bench_schema {
    std::string name;
    std::string conninfo;
    std::string environment_id;
    std::string company = berth::new_id();
    bench_schema() {
        conninfo = server().fresh_schema(&name);
        auto store = berth::postgres_store::open(conninfo);
        environment_id = store.ensure_local_environment(company, berth::timestamp::from_micros(1767225600000000)).id;
    }
};

bench_schema& schema() {
    static bench_schema s;
    return s;
}

void check(PGresult* r, char const* what) {
    auto const st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        std::string const msg = std::string(what) + ": " + PQresultErrorMessage(r);
        PQclear(r);
        throw std::runtime_error(msg);
    }
    PQclear(r);
}

// (a) The floor: the same lease row berth writes (same columns, same values' shapes), prepared.
void raw_pair(benchmark::State& state) {
    auto& s = schema();
    PGconn* c = PQconnectdb(s.conninfo.c_str());
    if (PQstatus(c) != CONNECTION_OK) throw std::runtime_error(PQerrorMessage(c));
    check(PQprepare(c, "ins",
                    "INSERT INTO environment_leases (id, company_id, environment_id, execution_workspace_id, issue_id, "
                    "heartbeat_run_id, status, lease_policy, provider, provider_lease_id, acquired_at, last_used_at, "
                    "expires_at, released_at, failure_reason, cleanup_status, metadata, epoch, created_at, updated_at) "
                    "VALUES ($1, $2, $3, NULL, $4, $5, 'active', 'ephemeral', 'local', NULL, $6, $6, NULL, NULL, NULL, "
                    "NULL, $7, 1, $6, $6)",
                    0, nullptr),
          "prepare insert");
    check(PQprepare(c, "upd",
                    "UPDATE environment_leases SET status = 'released', epoch = epoch + 1, released_at = $2, "
                    "last_used_at = $2, updated_at = $2 WHERE id = $1 AND epoch = 1",
                    0, nullptr),
          "prepare update");
    std::string const metadata = R"({"driver":"local","executionWorkspaceMode":null})";
    auto now = berth::timestamp::from_micros(1767225600000000);
    for (auto _ : state) {
        now = now + std::chrono::microseconds(2);
        auto const id = berth::new_id(), issue = berth::bench::foreign_id(), run = berth::bench::foreign_id();
        auto const t = berth::to_iso8601(now), t2 = berth::to_iso8601(now + std::chrono::microseconds(1));
        char const* ins[] = {id.c_str(), s.company.c_str(), s.environment_id.c_str(), issue.c_str(), run.c_str(),
                             t.c_str(), metadata.c_str()};
        check(PQexecPrepared(c, "ins", 7, ins, nullptr, nullptr, 0), "insert");
        char const* upd[] = {id.c_str(), t2.c_str()};
        PGresult* r = PQexecPrepared(c, "upd", 2, upd, nullptr, nullptr, 0);
        if (std::string(PQcmdTuples(r)) != "1") state.SkipWithError("the UPDATE changed no row");
        check(r, "update");
    }
    PQfinish(c);
}

// (b) berth's lease pair, with its activity events.
void lease_pair(benchmark::State& state) {
    auto& s = schema();
    auto store = berth::postgres_store::open(s.conninfo);
    berth::bench::lease_pair_context c;
    c.company = s.company;
    c.environment_id = s.environment_id;
    for (auto _ : state) benchmark::DoNotOptimize(berth::bench::write_lease_pair(store, c));
}

// (c) The whole orchestrator pair on postgres_store.
void orchestrator_pair(benchmark::State& state) {
    using stack = berth::stack<berth::drivers<berth::local_driver>, berth::policies<berth::ephemeral>,
                               berth::postgres_store>;
    auto store = berth::postgres_store::open(schema().conninfo);
    berth::run_orchestrator<stack> orch{store, berth::local_driver{}};
    std::string const company = berth::new_id(), agent = berth::new_id();
    (void)orch.resolve_environment({.company_id = company});
    for (auto _ : state) {
        auto const run = berth::bench::foreign_id();
        auto const acq = orch.acquire_for_run(
            {.company_id = company, .agent_id = agent, .heartbeat_run_id = run, .issue_id = berth::bench::foreign_id()});
        auto const rel = orch.release_for_run({.company_id = company, .agent_id = agent, .heartbeat_run_id = run});
        if (rel.released.size() != 1 || !rel.errors.empty()) state.SkipWithError("release_for_run failed");
        benchmark::DoNotOptimize(acq.lease.epoch);
    }
}

struct concurrent_result {
    long pairs = 0;
    long cpu_us = 0;  ///< the 8 clients' CPU time together
};

/// Runs 8 helpers at once for `seconds` in `mode` (pairs | rawpairs | rawsame); what they did in total.
concurrent_result concurrent_pairs(char const* mode, double seconds, int round) {
    auto& s = schema();
    std::vector<FILE*> pipes;
    for (int i = 0; i < 8; ++i) {
        std::string const cmd = std::string(BERTH_BENCH_POSTGRES_HELPER) + " " + mode + " '" +
                                server().url(s.name) + "' " + s.environment_id + " " + mode + "-" +
                                std::to_string(round) + "-" + std::to_string(i) + " " + std::to_string(seconds);
        pipes.push_back(::popen(cmd.c_str(), "r"));
    }
    concurrent_result total;
    for (FILE* p : pipes) {
        char line[256] = {};
        long n = -1, cpu = -1;
        while (std::fgets(line, sizeof line, p)) {
            if (std::sscanf(line, "pairs %ld", &n) == 1) total.pairs += n;
            if (std::sscanf(line, "cpu_us %ld", &cpu) == 1) total.cpu_us += cpu;
        }
        if (::pclose(p) != 0 || n < 0 || cpu < 0)
            throw std::runtime_error(std::string("a helper failed in mode ") + mode);
    }
    return total;
}

// (d) Throughput of 8 processes: libpq with the floor's statements, libpq with berth's statements,
// then berth's lease pairs.
void concurrent_8(benchmark::State& state) {
    double const seconds = 2.0;
    concurrent_result raw, same, berth_pairs;
    int rounds = 0;
    static int round = 0;  // across repetitions too: the helpers' lease ids must not repeat
    auto add = [](concurrent_result& to, concurrent_result r) {
        to.pairs += r.pairs;
        to.cpu_us += r.cpu_us;
    };
    for (auto _ : state) {
        add(raw, concurrent_pairs("rawpairs", seconds, round));
        add(same, concurrent_pairs("rawsame", seconds, round));
        add(berth_pairs, concurrent_pairs("pairs", seconds, round));
        ++round;
        ++rounds;
    }
    auto per_s = [&](concurrent_result const& r) { return double(r.pairs) / (seconds * rounds); };
    auto cpu_per_pair = [](concurrent_result const& r) { return r.pairs > 0 ? double(r.cpu_us) / double(r.pairs) : -1; };
    state.counters["raw_pairs_per_s"] = per_s(raw);
    state.counters["same_pairs_per_s"] = per_s(same);
    state.counters["berth_pairs_per_s"] = per_s(berth_pairs);
    state.counters["raw_over_berth"] = berth_pairs.pairs > 0 ? double(raw.pairs) / double(berth_pairs.pairs) : 1e9;
    state.counters["same_over_berth"] = berth_pairs.pairs > 0 ? double(same.pairs) / double(berth_pairs.pairs) : 1e9;
    state.counters["raw_client_cpu_us"] = cpu_per_pair(raw);
    state.counters["same_client_cpu_us"] = cpu_per_pair(same);
    state.counters["berth_client_cpu_us"] = cpu_per_pair(berth_pairs);
}

}  // namespace

int main(int argc, char** argv) {
    if (!pg::available()) {
        std::puts("bench_postgres_store: needs root and PostgreSQL 15 (cmake/bootstrap.sh test installs it)");
        return 1;
    }
    benchmark::RegisterBenchmark("raw_pair", raw_pair)->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark("lease_pair", lease_pair)->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark("orchestrator_pair", orchestrator_pair)->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark("concurrent_8", concurrent_8)->Iterations(1)->Unit(benchmark::kMillisecond);
    // The defaults (see the top): 5 repetitions, interleaved; later arguments override them.
    std::vector<char*> args{argv[0]};
    std::string repetitions = "--benchmark_repetitions=5", interleave = "--benchmark_enable_random_interleaving=true";
    args.push_back(repetitions.data());
    args.push_back(interleave.data());
    for (int i = 1; i < argc; ++i) args.push_back(argv[i]);
    int args_count = static_cast<int>(args.size());
    args.push_back(nullptr);
    return berth::bench::run_and_report(
        args_count, args.data(),
        {{"postgres_lease_pair", "lease_pair", "raw_pair", 1.5},
         {"postgres_orchestrator_pair", "orchestrator_pair", "raw_pair", 3.0},
         {"postgres_concurrent_raw_over_berth", "concurrent_8/iterations:1", "", 1.25, 1e3, "raw_over_berth"},
         {"postgres_concurrent_same_over_berth", "concurrent_8/iterations:1", "", 1.25, 1e3, "same_over_berth"},
         {"postgres_lease_pair_ms (upstream 2.1 ms)", "lease_pair", "", -1, 1e6},
         {"postgres_orchestrator_pair_ms (upstream 8.5-10 ms)", "orchestrator_pair", "", -1, 1e6},
         {"postgres_raw_pair_ms", "raw_pair", "", -1, 1e6},
         {"postgres_concurrent_berth_pairs_per_s", "concurrent_8/iterations:1", "", -1, 1e3, "berth_pairs_per_s"},
         {"postgres_concurrent_raw_pairs_per_s", "concurrent_8/iterations:1", "", -1, 1e3, "raw_pairs_per_s"},
         {"postgres_concurrent_same_pairs_per_s", "concurrent_8/iterations:1", "", -1, 1e3, "same_pairs_per_s"},
         {"postgres_concurrent_berth_client_cpu_us_per_pair", "concurrent_8/iterations:1", "", -1, 1e3,
          "berth_client_cpu_us"},
         {"postgres_concurrent_same_client_cpu_us_per_pair", "concurrent_8/iterations:1", "", -1, 1e3,
          "same_client_cpu_us"},
         {"postgres_concurrent_raw_client_cpu_us_per_pair", "concurrent_8/iterations:1", "", -1, 1e3,
          "raw_client_cpu_us"}});
}
