#pragma once
// Definitions of sqlite_store's berth::runtime_service_store members (declared and documented in
// berth/stores/sqlite.hpp, which includes this file at its end; not meant to be included alone).

#include <berth/error.hpp>
#include <berth/model/runtime_service.hpp>     // workspace_runtime_service, runtime_service_filter
#include <berth/stores/schema.hpp>             // live_runtime_services_predicate
#include <berth/stores/sqlite/connection.hpp>  // connection, statement_scope
#include <berth/stores/sqlite/row.hpp>         // bind_record, read_record, column_list, ...

#include <boost/json/array.hpp>      // boost::json::array (id and status lists bound as JSON)
#include <boost/json/serialize.hpp>  // serialize

#include <algorithm>    // std::ranges::all_of
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <vector>       // std::vector

namespace berth::detail::sqlite {

inline constexpr table_ref services_table{"workspace_runtime_services", "runtime service"};

/// The statements of the runtime service family, built once from the record description.
struct service_statements {
    std::string cols = column_list<workspace_runtime_service>();
    std::string get = "SELECT " + cols + " FROM workspace_runtime_services WHERE id = ?1";
    std::string owner = "SELECT company_id, created_at FROM workspace_runtime_services WHERE id = ?1";
    std::string insert = "INSERT INTO workspace_runtime_services (" + cols + ") VALUES (" +
                         placeholder_list<workspace_runtime_service>() + ")";
    std::string update =
        "UPDATE workspace_runtime_services SET " + assignment_list<workspace_runtime_service>() + " WHERE id = ?1";
};

inline service_statements const& service_sql() {
    static service_statements const s;
    return s;
}

/// ` WHERE ...` for a filter; parameters ?1..?7 (bind_service_filter binds them).
[[nodiscard]] inline std::string service_where(runtime_service_filter const& f, bool live_only) {
    std::string w;
    auto add = [&](std::string_view cond) { (w += w.empty() ? " WHERE " : " AND ") += cond; };
    if (f.company_id) add("company_id = ?1");
    if (f.provider) add("provider = ?2");
    if (!f.statuses.empty()) add("status IN (SELECT value FROM json_each(?3))");
    // The live-service index serves a filter on live statuses (the startup reconcile's) only if the
    // query states the index's predicate word for word; without it the reconcile read every row.
    bool const live = live_only || (!f.statuses.empty() && std::ranges::all_of(f.statuses, is_live_status));
    if (f.execution_workspace_id) add("execution_workspace_id = ?4");
    if (f.project_workspace_id) add("project_workspace_id = ?5");
    if (f.scope_type) add("scope_type = ?6");
    if (!f.ids.empty()) add("id IN (SELECT value FROM json_each(?7))");
    if (live) add(schema::live_runtime_services_predicate);
    return w;
}

/// Binds a filter's parameters; `json` holds the texts bound for ?3 and ?7 (they must outlive the step).
inline void bind_service_filter(sqlite3_stmt* st, runtime_service_filter const& f, std::string (&json)[2]) {
    if (f.company_id) bind_text(st, 1, *f.company_id);
    if (f.provider) bind_value(st, 2, *f.provider);
    if (!f.statuses.empty()) {
        boost::json::array a;
        for (auto s : f.statuses) a.emplace_back(to_string(s));
        json[0] = boost::json::serialize(a);
        bind_text(st, 3, json[0]);
    }
    if (f.execution_workspace_id) bind_text(st, 4, *f.execution_workspace_id);
    if (f.project_workspace_id) bind_text(st, 5, *f.project_workspace_id);
    if (f.scope_type) bind_value(st, 6, *f.scope_type);
    if (!f.ids.empty()) {
        boost::json::array a;
        for (auto const& id : f.ids) a.emplace_back(id);
        json[1] = boost::json::serialize(a);
        bind_text(st, 7, json[1]);
    }
}

}  // namespace berth::detail::sqlite

namespace berth {

inline std::optional<workspace_runtime_service> sqlite_store::get_runtime_service(std::string_view id) {
    using namespace detail::sqlite;
    auto& s = *state_;
    return with_reader(s, [&](connection& c) {
        auto st = c.statement(service_sql().get);
        bind_text(st.get(), 1, id);
        return read_one<workspace_runtime_service>(st, services_table, "reading a runtime service");
    });
}

inline workspace_runtime_service sqlite_store::upsert_runtime_service(workspace_runtime_service const& row,
                                                                      timestamp now) {
    using namespace detail::sqlite;
    if (row.id.empty()) throw store_error(store_errc::invalid_argument, "A runtime service needs an id.");
    if (row.company_id.empty())
        throw store_error(store_errc::invalid_argument, "Runtime service \"" + row.id + "\" needs a company id.");
    if (row.service_name.empty())
        throw store_error(store_errc::invalid_argument, "Runtime service \"" + row.id + "\" needs a service name.");
    auto& s = *state_;
    workspace_runtime_service stored = row;
    stored.updated_at = now;
    stored.created_at = now;
    with_writer(s, [&](connection& c) {
        bool exists = false;
        {
            auto st = c.statement(service_sql().owner);
            bind_text(st.get(), 1, row.id);
            if (st.step("reading a runtime service")) {
                exists = true;
                std::string const company(column_text(st.get(), 0));
                if (company != row.company_id)
                    throw store_error(store_errc::conflict, "Runtime service \"" + row.id +
                                                                "\" belongs to company \"" + company + "\", not \"" +
                                                                row.company_id + "\".");
                read_value(st.get(), 1, stored.created_at, column_ref{services_table, "created_at", st.get()});
            }
        }
        auto st = c.statement(exists ? service_sql().update : service_sql().insert);
        bind_record(st.get(), stored);
        st.step(exists ? "updating a runtime service" : "inserting a runtime service");
    });
    return stored;
}

inline std::vector<workspace_runtime_service> sqlite_store::list_runtime_services(
    runtime_service_filter const& filter) {
    using namespace detail::sqlite;
    auto& s = *state_;
    std::string where = service_where(filter, false);
    if (filter.after)
        (where += where.empty() ? " WHERE " : " AND ") +=
            row_after("workspace_runtime_services", "updated_at, created_at, rowid", "<");
    std::string const sql = "SELECT " + service_sql().cols + " FROM workspace_runtime_services" + where +
                            " ORDER BY updated_at DESC, created_at DESC, rowid DESC" + row_page_limit;
    return with_reader(s, [&](connection& c) {
        auto st = c.statement(sql);
        bind_row_page(st.get(), filter.limit, filter.after);
        std::string json[2];
        bind_service_filter(st.get(), filter, json);
        return read_all<workspace_runtime_service>(s, st, services_table, "listing runtime services");
    });
}

inline std::vector<std::string> sqlite_store::stop_runtime_services(runtime_service_filter const& filter,
                                                                    timestamp now) {
    using namespace detail::sqlite;
    auto& s = *state_;
    std::string const sql = "UPDATE workspace_runtime_services SET status = 'stopped', health_status = 'unknown', "
                            "stopped_at = ?8, last_used_at = ?8, updated_at = ?8" +
                            service_where(filter, true) + " RETURNING id";
    return with_writer(s, [&](connection& c) {
        auto st = c.statement(sql);
        std::string json[2];
        bind_service_filter(st.get(), filter, json);
        bind_value(st.get(), 8, now);
        std::vector<std::string> ids;
        while (st.step("stopping runtime services")) ids.emplace_back(column_text(st.get(), 0));
        return ids;
    });
}

}  // namespace berth
