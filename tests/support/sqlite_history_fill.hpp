#pragma once
// fill_sqlite_raw: the history of history_fill.hpp written into a sqlite_store's file with the raw
// C API, in one transaction: 100k leases and their 200k events take about a second, where the
// store's calls (a transaction each) would take a minute.

#include "history_fill.hpp"

#include <berth/model/enum_string.hpp>
#include <berth/stores/sqlite.hpp>

#include <sqlite3.h>

#include <stdexcept>
#include <string>

namespace berth::testing_support {

inline history fill_sqlite_raw(sqlite_store& store, std::string const& path, int leases) {
    history h;
    for (int c = 0; c < 10; ++c)
        h.environments.push_back(store.ensure_local_environment("company-" + std::to_string(c), history_start()));
    sqlite3* db = nullptr;
    if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) throw std::runtime_error("fill: cannot open " + path);
    sqlite3_busy_timeout(db, 5000);
    auto fail = [&](char const* what) {
        std::string const msg = std::string("fill: ") + what + ": " + sqlite3_errmsg(db);
        sqlite3_close(db);
        throw std::runtime_error(msg);
    };
    if (sqlite3_exec(db, "BEGIN", nullptr, nullptr, nullptr) != SQLITE_OK) fail("begin");
    sqlite3_stmt* ins = nullptr;
    sqlite3_stmt* ev = nullptr;
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO environment_leases (id, company_id, environment_id, heartbeat_run_id, "
                           "issue_id, status, lease_policy, provider, acquired_at, last_used_at, expires_at, "
                           "released_at, metadata, epoch, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, "
                           "'ephemeral', 'local', ?7, ?7, ?8, ?9, '{\"driver\":\"local\"}', ?10, ?7, ?7)",
                           -1, &ins, nullptr) != SQLITE_OK)
        fail("prepare lease insert");
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO activity_log (id, company_id, actor_type, actor_id, action, entity_type, "
                           "entity_id, agent_id, run_id, details, created_at) VALUES (?1, ?2, 'agent', 'agent-1', ?3, "
                           "'environment_lease', ?4, 'agent-1', ?5, "
                           "'{\"driver\":\"local\",\"leasePolicy\":\"ephemeral\"}', ?6)",
                           -1, &ev, nullptr) != SQLITE_OK)
        fail("prepare event insert");
    auto text = [](sqlite3_stmt* st, int i, std::string const& v) {
        sqlite3_bind_text(st, i, v.c_str(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    };
    auto event = [&](std::string const& company, std::string const& lease, std::string const& run, char const* action,
                     std::string const& at) {
        text(ev, 1, new_id()), text(ev, 2, company), text(ev, 3, action), text(ev, 4, lease), text(ev, 5, run);
        text(ev, 6, at);
        if (sqlite3_step(ev) != SQLITE_DONE) fail("event insert");
        sqlite3_reset(ev);
    };
    int const per_env = leases / 10;
    for (int i = 0; i < leases; ++i) {
        auto const& env = h.environments[static_cast<std::size_t>(i % 10)];
        int const k = i / 10;
        auto const at = history_start() + std::chrono::seconds(i);
        auto const status = history_status(k, per_env);
        std::string const id = new_id(), run = "run-" + std::to_string(i), t = to_iso8601(at);
        text(ins, 1, id), text(ins, 2, env.company_id), text(ins, 3, env.id), text(ins, 4, run);
        text(ins, 5, "issue-" + std::to_string(i % 1000));
        text(ins, 6, to_string(status.value_or(lease_status::active))), text(ins, 7, t);
        if (!status && k == per_env - 1) text(ins, 8, to_iso8601(at + std::chrono::hours(1)));
        else sqlite3_bind_null(ins, 8);
        if (status && *status != lease_status::retained) text(ins, 9, t);
        else sqlite3_bind_null(ins, 9);
        sqlite3_bind_int64(ins, 10, status ? 2 : 1);
        if (sqlite3_step(ins) != SQLITE_DONE) fail("lease insert");
        sqlite3_reset(ins);
        event(env.company_id, id, run, actions::lease_acquired, t);
        if (status) event(env.company_id, id, run, actions::lease_released, t);
        if (i == leases / 2) h.some_run = run, h.some_lease = id;
    }
    sqlite3_finalize(ins);
    sqlite3_finalize(ev);
    if (sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) fail("commit");
    sqlite3_close(db);
    h.end = history_start() + std::chrono::seconds(leases);
    return h;
}

}  // namespace berth::testing_support
