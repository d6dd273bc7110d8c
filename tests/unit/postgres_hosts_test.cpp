// postgres_store shared by several processes, as orchestrators on several hosts share one
// database: racing acquires on a capacity-2 environment, racing expiry sweeps, and faults (a
// backend killed, the server stopped and restarted mid-run, a statement timeout).
#ifdef BERTH_TEST_POSTGRES

#include <catch2/catch.hpp>

#include <berth/concepts/clock.hpp>
#include <berth/process/spawn.hpp>
#include <berth/stores/postgres.hpp>

#include "postgres_fixture.hpp"

#include <libpq-fe.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace berth;
namespace pg = berth::test::pg;

namespace {

/// Starts every command at once (popen), then reads each one's output to its end.
std::vector<std::string> run_all_at_once(std::vector<std::string> const& commands) {
    std::vector<FILE*> pipes;
    for (auto const& c : commands) {
        FILE* p = ::popen(c.c_str(), "r");
        REQUIRE(p != nullptr);
        pipes.push_back(p);
    }
    std::vector<std::string> out;
    for (FILE* p : pipes) {
        std::string text;
        char buf[4096];
        while (auto n = std::fread(buf, 1, sizeof buf, p)) text.append(buf, n);
        int const status = ::pclose(p);
        INFO(text);
        CHECK(status == 0);
        out.push_back(std::move(text));
    }
    return out;
}

std::vector<std::string> lines_of(std::vector<std::string> const& outputs) {
    std::vector<std::string> lines;
    for (auto const& o : outputs) {
        std::istringstream in(o);
        for (std::string l; std::getline(in, l);) lines.push_back(l);
    }
    return lines;
}

std::string first_word(std::string const& line) { return line.substr(0, line.find(' ')); }
std::string second_word(std::string const& line) {
    auto const a = line.find(' ');
    if (a == std::string::npos) return {};
    auto const b = line.find(' ', a + 1);
    return line.substr(a + 1, b == std::string::npos ? std::string::npos : b - a - 1);
}

std::string helper() { return BERTH_TEST_POSTGRES_HELPER; }

activity_event event_of(std::string id, environment_lease const& l, char const* action, timestamp now) {
    return activity_event{.id = std::move(id),
                          .company_id = l.company_id,
                          .actor_type = "system",
                          .actor_id = "test",
                          .action = action,
                          .entity_type = "environment_lease",
                          .entity_id = l.id,
                          .agent_id = std::nullopt,
                          .run_id = std::nullopt,
                          .details = {},
                          .created_at = now};
}

}  // namespace

TEST_CASE("postgres_store: 8 processes acquiring on one environment of capacity 2 never exceed it, and every "
          "stale epoch is refused",
          "[postgres_store][postgres_hosts]") {
    auto& server = pg::postgres_server::shared();
    pg::scratch_schema schema;
    auto store = postgres_store::open(schema.conninfo());
    system_clock clock;
    auto const env = store.create_environment(
        new_environment{.company_id = "company-race", .name = "shared", .config = json_object{{"maxActiveLeases", 2}}},
        clock.now());
    int const processes = 8, rounds = 12;
    std::vector<std::string> commands;
    for (int i = 0; i < processes; ++i)
        commands.push_back(helper() + " acquire '" + server.url(schema.name()) + "' " + env.id + " host-" +
                           std::to_string(i) + " " + std::to_string(rounds));
    auto const lines = lines_of(run_all_at_once(commands));

    std::map<std::string, int> counts;
    std::size_t max_active = 0;
    std::set<std::string> acquired, released, stale_refused;
    for (auto const& l : lines) {
        auto const w = first_word(l);
        ++counts[w];
        if (w == "active") max_active = std::max<std::size_t>(max_active, std::stoul(second_word(l)));
        if (w == "acquired") acquired.insert(second_word(l));
        if (w == "released") released.insert(second_word(l));
        if (w == "stale_refused") stale_refused.insert(second_word(l));
        INFO(l);
        CHECK((w == "acquired" || w == "active" || w == "released" || w == "refused" || w == "stale_refused"));
    }
    INFO("acquired " << counts["acquired"] << ", refused " << counts["refused"]);
    CHECK(counts["acquired"] + counts["refused"] == processes * rounds);
    CHECK(max_active <= 2);
    CHECK(!acquired.empty());
    CHECK(released == acquired);
    CHECK(stale_refused == acquired);

    // The database agrees: each acquired lease released once (epoch 2), no other lease, one
    // event per accepted move and none for a refused one.
    auto const all = store.list_leases(env.id, {});
    CHECK(all.size() == acquired.size());
    for (auto const& l : all) {
        INFO(l.id);
        CHECK(acquired.count(l.id) == 1);
        CHECK(l.status == lease_status::released);
        CHECK(l.epoch == 2);
    }
    auto const events = store.list_activity(activity_filter{.company_id = "company-race"});
    std::size_t acq_events = 0, rel_events = 0;
    for (auto const& e : events) {
        if (e.action == actions::lease_acquired) ++acq_events;
        if (e.action == actions::lease_released) ++rel_events;
    }
    CHECK(acq_events == acquired.size());
    CHECK(rel_events == acquired.size());
}

TEST_CASE("postgres_store: 4 processes sweeping the same expired leases end each exactly once",
          "[postgres_store][postgres_hosts]") {
    auto& server = pg::postgres_server::shared();
    pg::scratch_schema schema;
    auto store = postgres_store::open(schema.conninfo());
    system_clock clock;
    auto const start = clock.now();
    auto const env = store.ensure_local_environment("company-sweep", start);
    int const leases = 60;
    for (int i = 0; i < leases; ++i)
        store.acquire_lease(new_lease{.id = "lease-" + std::to_string(i),
                                      .company_id = "company-sweep",
                                      .environment_id = env.id,
                                      .expires_at = start + std::chrono::seconds(1)},
                            start, std::nullopt);
    auto const later = start + std::chrono::minutes(1);
    std::vector<std::string> commands;
    for (int i = 0; i < 4; ++i)
        commands.push_back(helper() + " sweep '" + server.url(schema.name()) + "' " +
                           std::to_string(later.value.time_since_epoch().count()));
    auto const lines = lines_of(run_all_at_once(commands));
    std::map<std::string, int> expired_by;
    for (auto const& l : lines) {
        INFO(l);
        CHECK((first_word(l) == "expired" || first_word(l) == "stale"));
        if (first_word(l) == "expired") ++expired_by[second_word(l)];
    }
    CHECK(expired_by.size() == static_cast<std::size_t>(leases));
    for (auto const& [id, n] : expired_by) {
        INFO(id);
        CHECK(n == 1);
    }
    for (auto const& l : store.list_leases(env.id, {})) {
        INFO(l.id);
        CHECK(l.status == lease_status::expired);
        CHECK(l.epoch == 2);
    }
    std::map<std::string, int> events;
    for (auto const& e : store.list_activity(activity_filter{.company_id = "company-sweep"}))
        if (e.action == actions::lease_expired) ++events[e.entity_id];
    CHECK(events.size() == static_cast<std::size_t>(leases));
    for (auto const& [id, n] : events) CHECK(n == 1);
}

TEST_CASE("postgres_store: a backend killed with pg_terminate_backend is replaced and the write lands once",
          "[postgres_store][postgres_faults]") {
    auto& server = pg::postgres_server::shared();
    pg::scratch_schema schema;
    auto store = postgres_store::open(schema.conninfo());
    system_clock clock;
    auto const env = store.ensure_local_environment("company-kill", clock.now());
    REQUIRE(store.stats().idle_connections >= 1);
    server.psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'berth' AND "
                "pid <> pg_backend_pid()");
    auto const now = clock.now();
    auto const lease = store.acquire_lease(new_lease{.id = "lease-k", .company_id = "company-kill", .environment_id = env.id},
                                           now, event_of("ev-k", environment_lease{.id = "lease-k", .company_id = "company-kill"},
                                                         actions::lease_acquired, now));
    CHECK(lease.epoch == 1);
    CHECK(store.stats().retries == 1);
    CHECK(store.list_leases(env.id, {}).size() == 1);
    CHECK(store.list_activity(activity_filter{.entity_id = "lease-k"}).size() == 1);

    // Killed again before a release: the release lands once, at epoch 2, with one event.
    server.psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'berth' AND "
                "pid <> pg_backend_pid()");
    auto const released = store.transition_lease(lease_transition{.id = "lease-k", .expected_epoch = 1}, clock.now(),
                                                 event_of("ev-k2", lease, actions::lease_released, clock.now()));
    CHECK(released.epoch == 2);
    CHECK(store.stats().retries == 2);
    CHECK(store.list_activity(activity_filter{.entity_id = "lease-k"}).size() == 2);
}

TEST_CASE("postgres_store: with the server stopped an operation fails clearly, and works again after a restart",
          "[postgres_store][postgres_faults]") {
    auto& server = pg::postgres_server::shared();
    pg::scratch_schema schema;
    auto store = postgres_store::open(schema.conninfo(),
                                      postgres_options{.connect_timeout = std::chrono::milliseconds(2000)});
    system_clock clock;
    auto const env = store.ensure_local_environment("company-stop", clock.now());
    server.stop();
    std::string message;
    store_errc code = store_errc::not_found;
    try {
        store.acquire_lease(new_lease{.id = "lease-s", .company_id = "company-stop", .environment_id = env.id},
                            clock.now(), std::nullopt);
    } catch (store_error const& e) {
        message = e.what();
        code = e.code();
    }
    server.start();
    INFO(message);
    CHECK(code == store_errc::backend_failure);
    CHECK(message.find("PostgreSQL store") != std::string::npos);
    CHECK(message.find(server.dir().string()) != std::string::npos);  // names the server it tried
    CHECK_FALSE(store.get_lease("lease-s"));                           // nothing written
    auto const lease = store.acquire_lease(
        new_lease{.id = "lease-s", .company_id = "company-stop", .environment_id = env.id}, clock.now(), std::nullopt);
    CHECK(lease.status == lease_status::active);
}

TEST_CASE("postgres_store: a server restart during a run of lease pairs never reports a write that did not land",
          "[postgres_store][postgres_faults]") {
    auto& server = pg::postgres_server::shared();
    pg::scratch_schema schema;
    auto store = postgres_store::open(schema.conninfo(),
                                      postgres_options{.connect_timeout = std::chrono::milliseconds(2000)});
    system_clock clock;
    auto const env = store.ensure_local_environment("company-restart", clock.now());
    std::atomic<bool> stop{false};
    std::vector<std::string> acquired, released;
    std::vector<std::string> errors;
    std::thread worker([&] {
        for (int i = 0; !stop; ++i) {
            std::string const id = "lease-" + std::to_string(i);
            std::optional<environment_lease> lease;
            try {
                lease = store.acquire_lease(
                    new_lease{.id = id, .company_id = "company-restart", .environment_id = env.id}, clock.now(),
                    std::nullopt);
                acquired.push_back(id);
            } catch (store_error const& e) {
                errors.push_back(e.what());
                std::this_thread::sleep_for(std::chrono::milliseconds(20));
                continue;
            }
            try {
                store.transition_lease(lease_transition{.id = id, .expected_epoch = lease->epoch}, clock.now(),
                                       std::nullopt);
                released.push_back(id);
            } catch (store_error const& e) {
                errors.push_back(e.what());
            }
        }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    server.stop("fast");
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    server.start();
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    stop = true;
    worker.join();
    INFO("acquired " << acquired.size() << ", released " << released.size() << ", errors " << errors.size());
    CHECK(acquired.size() > 2);
    CHECK_FALSE(errors.empty());  // the stop was seen
    for (auto const& e : errors) {
        INFO(e);
        CHECK(e.find("PostgreSQL store") != std::string::npos);
    }
    // Every reported success is in the database; a lease whose release failed is still active (left
    // to recovery), never silently released or lost.
    std::set<std::string> const rel(released.begin(), released.end());
    for (auto const& id : acquired) {
        auto const l = store.get_lease(id);
        INFO(id);
        REQUIRE(l);
        if (rel.count(id)) CHECK((l->status == lease_status::released && l->epoch == 2));
        else CHECK((l->status == lease_status::active || l->status == lease_status::released));
    }
}

TEST_CASE("postgres_store: a statement past statement_timeout is cancelled, reported, and leaves nothing behind",
          "[postgres_store][postgres_faults]") {
    pg::scratch_schema schema;
    auto store = postgres_store::open(schema.conninfo(),
                                      postgres_options{.statement_timeout = std::chrono::milliseconds(200)});
    system_clock clock;
    auto const env = store.ensure_local_environment("company-timeout", clock.now());
    // Another host holds the environment's row lock in an open transaction.
    PGconn* blocker = PQconnectdb(schema.conninfo().c_str());
    REQUIRE(PQstatus(blocker) == CONNECTION_OK);
    PQclear(PQexec(blocker, "BEGIN"));
    PQclear(PQexec(blocker, ("SELECT 1 FROM environments WHERE id = '" + env.id + "' FOR UPDATE").c_str()));
    std::string message;
    try {
        store.acquire_lease(new_lease{.id = "lease-t", .company_id = "company-timeout", .environment_id = env.id},
                            clock.now(), std::nullopt);
    } catch (store_error const& e) {
        message = e.what();
        CHECK(e.code() == store_errc::backend_failure);
    }
    PQclear(PQexec(blocker, "COMMIT"));
    PQfinish(blocker);
    INFO(message);
    CHECK(message.find("statement_timeout") != std::string::npos);
    CHECK_FALSE(store.get_lease("lease-t"));
    CHECK(store.acquire_lease(new_lease{.id = "lease-t", .company_id = "company-timeout", .environment_id = env.id},
                              clock.now(), std::nullopt)
              .epoch == 1);
}

#ifdef BERTH_RUN_EXE_WITH_POSTGRES
TEST_CASE("berth-run --db postgresql://... runs a command with its lease in the shared database",
          "[postgres_store][berth_run]") {
    auto& server = pg::postgres_server::shared();
    pg::scratch_schema schema;
    auto const url = server.url(schema.name());
    for (int i = 0; i < 2; ++i) {  // the second run finds the first one's environment and lease
        auto const r = berth::process::run({.program = BERTH_RUN_EXE_WITH_POSTGRES,
                                            .args = {"--db", url, "--company", "pg-demo", "--run",
                                                     "run-" + std::to_string(i), "--", "true"},
                                            .timeout = std::chrono::seconds(60)},
                                           {.inherit_sanitized_environment = true});
        INFO(r.stdout_text << r.stderr_text);
        CHECK(r.exit_code == 0);
        CHECK(r.stderr_text.find("host=127.0.0.1") != std::string::npos);  // names the server, not the URL
    }
    auto store = postgres_store::open(schema.conninfo());
    auto const env = store.ensure_local_environment("pg-demo", system_clock{}.now());
    auto const leases = store.list_leases(env.id, {});
    REQUIRE(leases.size() == 2);
    for (auto const& l : leases) CHECK(l.status == lease_status::released);
}
#endif

#endif  // BERTH_TEST_POSTGRES
