#pragma once
// Definitions of sqlite_store's berth::project_workspace_store members (declared and documented in
// berth/stores/sqlite.hpp, which includes this file at its end; not meant to be included alone).

#include <berth/model/ids.hpp>                 // new_id
#include <berth/model/project_workspace.hpp>   // project_workspace and its inputs
#include <berth/stores/sqlite/connection.hpp>  // connection, statement_scope
#include <berth/stores/sqlite/row.hpp>         // bind_record, column_list, ...

#include <string>       // std::string
#include <string_view>  // std::string_view

namespace berth::detail::sqlite {

inline constexpr table_ref project_workspaces_table{"project_workspaces", "project workspace"};

/// The statements of the project workspace family, built once from the record description.
struct project_workspace_statements {
    std::string cols = column_list<project_workspace>();
    std::string get = "SELECT " + cols + " FROM project_workspaces WHERE id = ?1";
    std::string insert =
        "INSERT INTO project_workspaces (" + cols + ") VALUES (" + placeholder_list<project_workspace>() + ")";
    std::string update = "UPDATE project_workspaces SET " + assignment_list<project_workspace>() + " WHERE id = ?1";
    // upstream's (company_id, project_id) index serves both lists (a prefix without the project).
    std::string list = "SELECT " + cols + " FROM project_workspaces WHERE company_id = ?1";
    std::string order = " ORDER BY is_primary DESC, created_at ASC, rowid ASC";
};

inline project_workspace_statements const& project_workspace_sql() {
    static project_workspace_statements const s;
    return s;
}

}  // namespace berth::detail::sqlite

namespace berth {

inline std::optional<project_workspace> sqlite_store::get_project_workspace(std::string_view id) {
    using namespace detail::sqlite;
    auto& s = *state_;
    return with_point_reader(s, [&](connection& c) {
        auto st = c.statement(project_workspace_sql().get);
        bind_text(st.get(), 1, id);
        return read_one<project_workspace>(st, project_workspaces_table, "reading a project workspace");
    });
}

inline std::vector<project_workspace> sqlite_store::list_project_workspaces(std::string_view company_id,
                                                                            project_workspace_filter const& filter) {
    using namespace detail::sqlite;
    auto& s = *state_;
    auto const& q = project_workspace_sql();
    std::string const sql = q.list + (filter.project_id ? " AND project_id = ?2" : "") + q.order;
    return with_reader(s, [&](connection& c) {
        auto st = c.statement(sql);
        bind_text(st.get(), 1, company_id);
        if (filter.project_id) bind_text(st.get(), 2, *filter.project_id);
        return read_all<project_workspace>(s, st, project_workspaces_table, "listing project workspaces");
    });
}

inline project_workspace sqlite_store::create_project_workspace(new_project_workspace const& input, timestamp now) {
    using namespace detail::sqlite;
    auto const w = make_project_workspace(input, new_id(), now);
    auto& s = *state_;
    with_writer(s, [&](connection& c) {
        auto st = c.statement(project_workspace_sql().insert);
        bind_record(st.get(), w);
        st.step("creating a project workspace");
    });
    return w;
}

inline std::optional<project_workspace> sqlite_store::update_project_workspace(std::string_view id,
                                                                               project_workspace_patch const& patch,
                                                                               timestamp now) {
    auto& s = *state_;
    auto const& q = detail::sqlite::project_workspace_sql();
    return detail::sqlite::patch_row<project_workspace>(s, q.get, q.update, detail::sqlite::project_workspaces_table,
                                                        id, patch, now, "a project workspace");
}

}  // namespace berth
