#pragma once
//! @file
//! The workspace-ready summary of a run (upstream buildWorkspaceReadyComment), as Markdown text:
//! strategy, branch, cwd, worktree, and one line per runtime service: its URL (else `running`), then
//! berth's addition — its port and the variables the run's command has it in
//! (run_environment.hpp) — and `(reused)` when reused.

#include <berth/services/context.hpp>          // workspace_context, runtime_service_ref
#include <berth/services/run_environment.hpp>  // service_env_prefix

#include <span>    // std::span
#include <string>  // std::string

namespace berth::services {

[[nodiscard]] inline std::string build_workspace_ready_comment(workspace_context const& w,
                                                               std::span<runtime_service_ref const> services) {
    std::string out = "## Workspace Ready\n\n";
    out += "- Strategy: `" + w.strategy + "`";
    if (w.branch_name && !w.branch_name->empty()) out += "\n- Branch: `" + *w.branch_name + "`";
    out += "\n- CWD: `" + w.cwd + "`";
    if (w.worktree_path && !w.worktree_path->empty() && *w.worktree_path != w.cwd)
        out += "\n- Worktree: `" + *w.worktree_path + "`";
    for (auto const& s : services) {
        auto const& r = s.service;
        out += "\n- Service: " + r.service_name + ": " + (r.url ? *r.url : std::string("running"));
        auto const prefix = service_env_prefix(r.service_name);
        if (r.port && r.url)
            out += " (port " + std::to_string(*r.port) + "; `$" + prefix + "_URL`, `$" + prefix + "_PORT`)";
        else if (r.port)
            out += " (port " + std::to_string(*r.port) + "; `$" + prefix + "_PORT`)";
        else if (r.url)
            out += " (`$" + prefix + "_URL`)";
        if (s.reused) out += " (reused)";
    }
    return out;
}

}  // namespace berth::services
