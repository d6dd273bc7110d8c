#pragma once
// Definitions of postgres_store's berth::project_workspace_store members (declared and documented
// in berth/stores/postgres.hpp, which includes this file at its end; not meant to be included alone).
// Their fixed statements are in the store's statement set (impl/postgres_store.hpp).

#include <berth/model/ids.hpp>                // new_id
#include <berth/model/project_workspace.hpp>  // project_workspace and its inputs

#include <optional>     // std::optional
#include <string>       // std::string
#include <string_view>  // std::string_view

namespace berth::detail::postgres {

inline constexpr table_ref project_workspaces_table{"project_workspaces", "project workspace"};

}  // namespace berth::detail::postgres

namespace berth {

inline std::optional<project_workspace> postgres_store::get_project_workspace(std::string_view id) {
    using namespace detail::postgres;
    auto& s = *state_;
    return call(s, [&](connection& c) {
        return read_first<project_workspace>(c.run_one(s.sql.get_pw, {std::string(id)}, "reading a project workspace"),
                                             project_workspaces_table);
    });
}

inline std::vector<project_workspace> postgres_store::list_project_workspaces(std::string_view company_id,
                                                                              project_workspace_filter const& filter) {
    using namespace detail::postgres;
    auto& s = *state_;
    params args{std::string(company_id)};
    // upstream's (company_id, project_id) index serves both lists (a prefix without the project).
    std::string sql = "SELECT " + s.sql.pw_cols + " FROM project_workspaces WHERE company_id = $1::text";
    if (filter.project_id) {
        args.push_back(*filter.project_id);
        sql += " AND project_id = $2::text";
    }
    sql += " ORDER BY is_primary DESC, created_at ASC, " + std::string(seq) + " ASC";
    s.note_text(sql);
    return call(s, [&](connection& c) {
        return read_all<project_workspace>(s, c.run_one(sql, args, "listing project workspaces"),
                                           project_workspaces_table);
    });
}

inline project_workspace postgres_store::create_project_workspace(new_project_workspace const& input, timestamp now) {
    using namespace detail::postgres;
    auto const w = make_project_workspace(input, new_id(), now);
    auto& s = *state_;
    call(
        s,
        [&](connection& c) {
            c.run_one(s.sql.insert_pw, record_params(w), "creating a project workspace");
            return true;
        },
        [&](connection& c) -> std::optional<bool> {  // a retry after a lost connection: did the insert commit?
            if (c.run_one(s.sql.get_pw, {w.id}, "checking a project workspace").rows() > 0) return true;
            return std::nullopt;
        });
    return w;
}

inline std::optional<project_workspace> postgres_store::update_project_workspace(std::string_view id,
                                                                                 project_workspace_patch const& patch,
                                                                                 timestamp now) {
    using namespace detail::postgres;
    auto& s = *state_;
    return patch_row<project_workspace>(s, s.sql.lock_pw, s.sql.update_pw, project_workspaces_table, id,
                                        [&](project_workspace& w) { apply_patch(w, patch, now); },
                                        "a project workspace");
}

}  // namespace berth
