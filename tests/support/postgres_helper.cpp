// A separate process sharing one PostgreSQL database with others, as an orchestrator on another
// host would: the multi-host tests (tests/unit/postgres_store_test.cpp) start several at once.
// Each prints one line per outcome on stdout; the test reads them all and checks the database.
//
//   acquire CONNINFO ENV_ID HOLDER ROUNDS   acquire (capacity may refuse), check the active count,
//                                           release, then replay the old epoch (must be refused)
//   sweep CONNINFO NOW_MICROS               expire every expired lease it can take
//   pairs CONNINFO ENV_ID HOLDER SECONDS    lease pairs (acquire + release) for a time (benchmark)
//   rawpairs CONNINFO ENV_ID HOLDER SECONDS the floor's INSERT + UPDATE through libpq directly (benchmark)
//   rawsame CONNINFO ENV_ID HOLDER SECONDS  berth's own statements for a pair, with the same values,
//                                           through libpq directly, pipelined as berth sends them (benchmark)
// The benchmark modes print `pairs N` and `cpu_us N` (this process's CPU time: the client's share).
#include <berth/src.hpp>
#include <berth/concepts/clock.hpp>
#include <berth/model/ids.hpp>
#include <berth/stores/postgres.hpp>

#include <libpq-fe.h>

#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace berth;

namespace {

activity_event event(std::string const& id, environment_lease const& lease, char const* action, std::string const& holder,
                     timestamp now) {
    return activity_event{.id = id,
                          .company_id = lease.company_id,
                          .actor_type = "system",
                          .actor_id = holder,
                          .action = action,
                          .entity_type = "environment_lease",
                          .entity_id = lease.id,
                          .agent_id = std::nullopt,
                          .run_id = lease.heartbeat_run_id,
                          .details = json_object{{"leaseId", lease.id}, {"holder", holder}},
                          .created_at = now};
}

void say(std::string const& line) {
    std::string l = line + "\n";
    std::fwrite(l.data(), 1, l.size(), stdout);
    std::fflush(stdout);
}

/// The benchmark modes' last lines: the pairs done and this process's CPU time (user + system).
void say_pairs(long n) {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    long const cpu_us = (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1000000L + u.ru_utime.tv_usec + u.ru_stime.tv_usec;
    say("pairs " + std::to_string(n));
    say("cpu_us " + std::to_string(cpu_us));
}

int acquire_rounds(std::string const& conninfo, std::string const& env_id, std::string const& holder, int rounds) {
    auto store = postgres_store::open(conninfo);
    system_clock clock;
    auto const env = store.get_environment(env_id);
    if (!env) return 3;
    for (int i = 0; i < rounds; ++i) {
        std::string const id = holder + "-" + std::to_string(i);
        auto const now = clock.now();
        environment_lease lease;
        try {
            lease = store.acquire_lease(new_lease{.id = id,
                                                  .company_id = env->company_id,
                                                  .environment_id = env_id,
                                                  .heartbeat_run_id = "run-" + holder,
                                                  .metadata = json_object{{"holder", holder}}},
                                        now,
                                        event("acq-" + id, environment_lease{.id = id, .company_id = env->company_id},
                                              actions::lease_acquired, holder, now));
        } catch (store_error const& e) {
            say(e.code() == store_errc::capacity_exceeded ? "refused " + id : "error " + id + " " + e.what());
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
            continue;
        }
        say("acquired " + id);
        auto const active = store.list_leases(env_id, lease_filter{.status = lease_status::active}).size();
        say("active " + std::to_string(active));
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        auto const released = store.transition_lease(lease_transition{.id = id, .expected_epoch = lease.epoch},
                                                     clock.now(),
                                                     event("rel-" + id, lease, actions::lease_released, holder, clock.now()));
        say("released " + id);
        // A holder that paused and comes back with its old epoch: the database must refuse it.
        try {
            store.transition_lease(lease_transition{.id = id, .expected_epoch = lease.epoch, .to = lease_status::failed},
                                   clock.now(), std::nullopt);
            say("STALE_ACCEPTED " + id);
        } catch (store_error const& e) {
            say(e.code() == store_errc::stale_epoch ? "stale_refused " + id
                                                     : "stale_wrong_error " + id + " " + e.what());
        }
        (void)released;
    }
    return 0;
}

int sweep(std::string const& conninfo, std::int64_t now_us) {
    auto store = postgres_store::open(conninfo);
    auto const now = timestamp::from_micros(now_us);
    for (auto const& lease : store.list_expired_leases(now)) {
        try {
            store.transition_lease(
                lease_transition{.id = lease.id, .expected_epoch = lease.epoch, .to = lease_status::expired,
                                 .failure_reason = "lease_expired"},
                now, event("exp-" + lease.id, lease, actions::lease_expired, "sweeper", now));
            say("expired " + lease.id);
        } catch (store_error const& e) {
            say(e.code() == store_errc::stale_epoch ? "stale " + lease.id : "error " + lease.id + " " + e.what());
        }
    }
    return 0;
}

/// Lease pairs for `seconds`: prints the count done.
int pairs(std::string const& conninfo, std::string const& env_id, std::string const& holder, double seconds) {
    auto store = postgres_store::open(conninfo);
    system_clock clock;
    auto const env = store.get_environment(env_id);
    if (!env) return 3;
    auto const end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    long n = 0;
    while (std::chrono::steady_clock::now() < end) {
        std::string const id = holder + "-" + std::to_string(n);
        auto const lease = store.acquire_lease(
            new_lease{.id = id, .company_id = env->company_id, .environment_id = env_id}, clock.now(), std::nullopt);
        store.transition_lease(lease_transition{.id = id, .expected_epoch = lease.epoch}, clock.now(), std::nullopt);
        ++n;
    }
    say_pairs(n);
    return 0;
}

/// The floor with the same two statement shapes: INSERT a lease-sized row, then UPDATE it, each
/// its own commit, prepared, through libpq directly.
int raw_pairs(std::string const& conninfo, std::string const& env_id, std::string const& holder, double seconds) {
    PGconn* c = PQconnectdb(conninfo.c_str());
    if (PQstatus(c) != CONNECTION_OK) return 3;
    auto ok = [&](PGresult* r) {
        bool const good = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
        if (!good) std::fprintf(stderr, "%s", PQresultErrorMessage(r));
        PQclear(r);
        return good;
    };
    if (!ok(PQprepare(c, "ins",
                      "INSERT INTO environment_leases (id, company_id, environment_id, execution_workspace_id, "
                      "issue_id, heartbeat_run_id, status, lease_policy, provider, provider_lease_id, acquired_at, "
                      "last_used_at, expires_at, released_at, failure_reason, cleanup_status, metadata, epoch, "
                      "created_at, updated_at) VALUES ($1, 'company', $2, NULL, NULL, NULL, 'active', 'ephemeral', "
                      "'local', NULL, now(), now(), NULL, NULL, NULL, NULL, NULL, 1, now(), now())",
                      0, nullptr)) ||
        !ok(PQprepare(c, "upd",
                      "UPDATE environment_leases SET status = 'released', epoch = epoch + 1, released_at = now(), "
                      "last_used_at = now(), updated_at = now() WHERE id = $1 AND epoch = 1",
                      0, nullptr)))
        return 4;
    auto const end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    long n = 0;
    while (std::chrono::steady_clock::now() < end) {
        std::string const id = holder + "-" + std::to_string(n);
        char const* ins[] = {id.c_str(), env_id.c_str()};
        char const* upd[] = {id.c_str()};
        if (!ok(PQexecPrepared(c, "ins", 2, ins, nullptr, nullptr, 0))) return 5;
        if (!ok(PQexecPrepared(c, "upd", 1, upd, nullptr, nullptr, 0))) return 5;
        ++n;
    }
    PQfinish(c);
    say_pairs(n);
    return 0;
}

/// What `pairs` sends, without berth: the store's own statement texts (the same generator builds
/// them: detail::postgres::statements), prepared once, the acquire's environment lock and insert
/// pipelined in one round trip and the release in another, with the parameter values berth binds
/// (built here by hand, in the store's column order). The difference to `pairs` is berth's own
/// code on the client: the records, the parameters, reading the returned rows.
int raw_same_pairs(std::string const& conninfo, std::string const& env_id, std::string const& holder, double seconds) {
    detail::postgres::statements const sql;
    std::string const& lock = sql.lock_env;
    std::string const& acquire = sql.acquire[0];
    std::string const& release = sql.transition[detail::index(lease_status::released)][0];
    std::vector<std::string> columns;
    {
        std::istringstream in(sql.lease_cols);
        for (std::string col; std::getline(in, col, ',');) columns.push_back(col.substr(col.find_first_not_of(' ')));
    }
    PGconn* c = PQconnectdb(conninfo.c_str());
    if (PQstatus(c) != CONNECTION_OK) return 3;
    auto ok = [&](PGresult* r) {
        bool const good = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK ||
                          PQresultStatus(r) == PGRES_PIPELINE_SYNC;
        if (!good) std::fprintf(stderr, "%s", PQresultErrorMessage(r));
        PQclear(r);
        return good;
    };
    // The company, read once as the store does not (it binds the caller's).
    PGresult* er = PQexecParams(c, "SELECT company_id FROM environments WHERE id = $1", 1, nullptr,
                                std::vector<char const*>{env_id.c_str()}.data(), nullptr, nullptr, 0);
    if (PQresultStatus(er) != PGRES_TUPLES_OK || PQntuples(er) != 1) return 3;
    std::string const company = PQgetvalue(er, 0, 0);
    PQclear(er);
    if (!ok(PQprepare(c, "lock", lock.c_str(), 0, nullptr)) || !ok(PQprepare(c, "acq", acquire.c_str(), 0, nullptr)) ||
        !ok(PQprepare(c, "rel", release.c_str(), 0, nullptr)))
        return 4;
    if (PQenterPipelineMode(c) != 1) return 4;
    system_clock clock;
    auto const end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    long n = 0;
    std::vector<std::string> values(columns.size() + 2);
    std::vector<char const*> ptrs(values.size());
    auto finish = [&](int statements) {  // every result of one pipelined batch, then its sync
        bool good = true;
        for (int i = 0; i < statements; ++i) {
            for (PGresult* r; (r = PQgetResult(c)) != nullptr;) good = ok(r) && good;
        }
        return ok(PQgetResult(c)) && good;
    };
    while (std::chrono::steady_clock::now() < end) {
        std::string const id = holder + "-" + std::to_string(n);
        std::string const now = to_iso8601(clock.now());
        for (std::size_t i = 0; i < columns.size(); ++i) {
            auto const& col = columns[i];
            char const* v = nullptr;
            if (col == "id") v = id.c_str();
            else if (col == "company_id") v = company.c_str();
            else if (col == "environment_id") v = env_id.c_str();
            else if (col == "status") v = "active";
            else if (col == "lease_policy") v = "ephemeral";
            else if (col == "acquired_at" || col == "last_used_at" || col == "created_at" || col == "updated_at")
                v = now.c_str();
            else if (col == "epoch") v = "1";
            else if (col == "execution_workspace_id" || col == "issue_id" || col == "heartbeat_run_id" ||
                     col == "provider" || col == "provider_lease_id" || col == "expires_at" || col == "released_at" ||
                     col == "failure_reason" || col == "cleanup_status" || col == "metadata" ||
                     col == "reuse_scope" || col == "driver_name" || col == "policy_name" || col == "holder_host" ||
                     col == "holder_pid" || col == "holder_start_time")
                v = nullptr;
            else
                throw std::runtime_error("rawsame: no value for the lease column " + col);
            ptrs[i] = v;
        }
        ptrs[columns.size()] = env_id.c_str();
        ptrs[columns.size() + 1] = company.c_str();
        char const* lock_args[] = {env_id.c_str()};
        if (PQsendQueryPrepared(c, "lock", 1, lock_args, nullptr, nullptr, 0) != 1 ||
            PQsendQueryPrepared(c, "acq", static_cast<int>(ptrs.size()), ptrs.data(), nullptr, nullptr, 0) != 1 ||
            PQpipelineSync(c) != 1 || !finish(2))
            return 5;
        std::string const later = to_iso8601(clock.now());
        char const* rel_args[] = {id.c_str(), "released", later.c_str(), later.c_str(), nullptr, nullptr, "1"};
        if (PQsendQueryPrepared(c, "rel", 7, rel_args, nullptr, nullptr, 0) != 1 || PQpipelineSync(c) != 1 ||
            !finish(1))
            return 5;
        ++n;
    }
    PQfinish(c);
    say_pairs(n);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::string const mode = argc > 1 ? argv[1] : "";
    try {
        if (mode == "acquire" && argc == 6) return acquire_rounds(argv[2], argv[3], argv[4], std::atoi(argv[5]));
        if (mode == "sweep" && argc == 4) return sweep(argv[2], std::atoll(argv[3]));
        if (mode == "pairs" && argc == 6) return pairs(argv[2], argv[3], argv[4], std::atof(argv[5]));
        if (mode == "rawpairs" && argc == 6) return raw_pairs(argv[2], argv[3], argv[4], std::atof(argv[5]));
        if (mode == "rawsame" && argc == 6) return raw_same_pairs(argv[2], argv[3], argv[4], std::atof(argv[5]));
    } catch (std::exception const& e) {
        std::fprintf(stderr, "berth_test_postgres_helper: %s\n", e.what());
        return 1;
    }
    std::fputs("usage: berth_test_postgres_helper acquire|sweep|pairs|rawpairs|rawsame ...\n", stderr);
    return 2;
}
