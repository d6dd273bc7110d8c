#pragma once
// The project workspace record (upstream table `project_workspaces`, packages/db/src/schema/
// project_workspaces.ts; every column, same names) with the inputs its store takes. A project
// workspace is a project's checkout or path; execution workspaces derive from it. berth keeps it
// because the runtime services read it: a project workspace's `metadata.runtimeConfig` holds
// `workspaceRuntime`, `desiredState` and `serviceStates` (upstream readProjectWorkspaceRuntimeConfig),
// which restartDesiredRuntimeServicesOnStartup reads (docs/services.md).

#include <berth/error.hpp>  // store_error (the shared validation below)
#include <berth/model/record.hpp>
#include <berth/model/time.hpp>

#include <optional>  // std::optional
#include <string>    // std::string
#include <utility>   // std::move

namespace berth {

/// One project workspace (upstream `project_workspaces`). `source_type` and `visibility` are
/// upstream's free text columns (defaults `local_path` and `default`); `is_primary` is an integer
/// 0/1 in the SQL stores, as `log_compressed` of workspace operations.
struct project_workspace {
    std::string id{};
    std::string company_id{};
    std::string project_id{};
    std::optional<std::string> repository_id{};
    std::string name{};
    std::string source_type = "local_path";
    std::optional<std::string> cwd{};
    std::optional<std::string> repo_url{};
    std::optional<std::string> repo_ref{};
    std::optional<std::string> default_ref{};
    std::string visibility = "default";
    std::optional<std::string> setup_command{};
    std::optional<std::string> cleanup_command{};
    std::optional<std::string> remote_provider{};
    std::optional<std::string> remote_workspace_ref{};
    std::optional<std::string> shared_workspace_key{};
    std::optional<json_object> metadata{};
    bool is_primary = false;
    timestamp created_at{};
    timestamp updated_at{};
};
BOOST_DESCRIBE_STRUCT(project_workspace, (),
                      (id, company_id, project_id, repository_id, name, source_type, cwd, repo_url, repo_ref,
                       default_ref, visibility, setup_command, cleanup_command, remote_provider, remote_workspace_ref,
                       shared_workspace_key, metadata, is_primary, created_at, updated_at))
template <> inline constexpr char const* record_name<project_workspace> = "project_workspace";

/// Input of project_workspace_store::create_project_workspace: the record without id and
/// timestamps (created_at = updated_at = now).
struct new_project_workspace {
    std::string company_id{};  ///< required
    std::string project_id{};  ///< required
    std::optional<std::string> repository_id{};
    std::string name{};                     ///< required
    std::string source_type = "local_path";  ///< required (not empty)
    std::optional<std::string> cwd{};
    std::optional<std::string> repo_url{};
    std::optional<std::string> repo_ref{};
    std::optional<std::string> default_ref{};
    std::string visibility = "default";  ///< required (not empty)
    std::optional<std::string> setup_command{};
    std::optional<std::string> cleanup_command{};
    std::optional<std::string> remote_provider{};
    std::optional<std::string> remote_workspace_ref{};
    std::optional<std::string> shared_workspace_key{};
    std::optional<json_object> metadata{};
    bool is_primary = false;
};

/// Input of project_workspace_store::update_project_workspace: each engaged member replaces the
/// stored one; for nullable columns an engaged nullopt sets null. Company and project are fixed.
struct project_workspace_patch {
    std::optional<std::string> name{};
    std::optional<std::optional<std::string>> cwd{};
    std::optional<std::optional<std::string>> repo_url{};
    std::optional<std::optional<std::string>> repo_ref{};
    std::optional<std::optional<std::string>> default_ref{};
    std::optional<std::optional<std::string>> setup_command{};
    std::optional<std::optional<std::string>> cleanup_command{};
    std::optional<std::optional<json_object>> metadata{};
    std::optional<bool> is_primary{};
};

/// Filter of project_workspace_store::list_project_workspaces (every engaged member must match).
struct project_workspace_filter {
    std::optional<std::string> project_id{};
};

/// The record create_project_workspace stores for `input`.
/// @throws store_error invalid_argument naming the empty field (company id, project id, name,
///         source type, visibility).
[[nodiscard]] inline project_workspace make_project_workspace(new_project_workspace const& input, std::string id,
                                                              timestamp now) {
    auto require = [](std::string const& value, char const* what) {
        if (value.empty())
            throw store_error(store_errc::invalid_argument, std::string("A project workspace needs ") + what + ".");
    };
    require(input.company_id, "a company id");
    require(input.project_id, "a project id");
    require(input.name, "a name");
    require(input.source_type, "a source type");
    require(input.visibility, "a visibility");
    return project_workspace{.id = std::move(id),
                             .company_id = input.company_id,
                             .project_id = input.project_id,
                             .repository_id = input.repository_id,
                             .name = input.name,
                             .source_type = input.source_type,
                             .cwd = input.cwd,
                             .repo_url = input.repo_url,
                             .repo_ref = input.repo_ref,
                             .default_ref = input.default_ref,
                             .visibility = input.visibility,
                             .setup_command = input.setup_command,
                             .cleanup_command = input.cleanup_command,
                             .remote_provider = input.remote_provider,
                             .remote_workspace_ref = input.remote_workspace_ref,
                             .shared_workspace_key = input.shared_workspace_key,
                             .metadata = input.metadata,
                             .is_primary = input.is_primary,
                             .created_at = now,
                             .updated_at = now};
}

/// Applies every engaged member of `patch` to `w`; updated_at = now.
/// @throws store_error invalid_argument for an empty name (`w` is unchanged then).
inline void apply_patch(project_workspace& w, project_workspace_patch const& patch, timestamp now) {
    if (patch.name && patch.name->empty())
        throw store_error(store_errc::invalid_argument, "A project workspace needs a name.");
    auto set = [](auto& member, auto const& value) {
        if (value) member = *value;
    };
    set(w.name, patch.name);
    set(w.cwd, patch.cwd);
    set(w.repo_url, patch.repo_url);
    set(w.repo_ref, patch.repo_ref);
    set(w.default_ref, patch.default_ref);
    set(w.setup_command, patch.setup_command);
    set(w.cleanup_command, patch.cleanup_command);
    set(w.metadata, patch.metadata);
    set(w.is_primary, patch.is_primary);
    w.updated_at = now;
}

}  // namespace berth
