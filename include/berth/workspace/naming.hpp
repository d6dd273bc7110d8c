#pragma once
//! @file
//! Names of execution workspaces: the branch template, its rendering, and the sanitising of slugs,
//! branch names and configured paths (upstream sanitizeSlugPart, renderWorkspaceTemplate,
//! sanitizeBranchName, resolveConfiguredPath), plus berth's guard that a branch name is a single
//! safe path below the worktree parent directory.
//!
//! Everything here is pure text processing: no shell ever sees these strings (git gets them as
//! argv entries), and rendering is one pass, so a title that contains `{{...}}` is not expanded.

#include <berth/workspace/error.hpp>  // workspace_error

#include <cstdlib>      // std::getenv
#include <filesystem>   // std::filesystem::path
#include <optional>     // std::optional
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <utility>      // std::pair
#include <vector>       // std::vector

namespace berth {

/// The default branch template (upstream's).
inline constexpr char const* default_branch_template = "{{issue.identifier}}-{{slug}}";
/// The branch name used when sanitising leaves nothing (upstream `paperclip-work`).
inline constexpr char const* fallback_branch_name = "berth-work";
/// The longest branch name berth makes.
inline constexpr std::size_t max_branch_name_length = 120;

/// The variables a branch template can use (upstream renderWorkspaceTemplate's data).
struct template_variables {
    std::string issue_id{};
    std::string issue_identifier{};
    std::string issue_title{};
    std::string agent_id{};
    std::string agent_name{};
    std::string project_id{};
    std::string workspace_repo_ref{};
    std::string slug{};
};

/// Upstream sanitizeSlugPart: trimmed, lower-cased, each run of characters outside `[a-z0-9_-]`
/// replaced by `-`, runs of `-` collapsed, leading/trailing `-`/`_` removed; `fallback` if empty.
[[nodiscard]] inline std::string sanitize_slug_part(std::optional<std::string_view> value, std::string_view fallback) {
    std::string_view raw = value.value_or("");
    auto const b = raw.find_first_not_of(" \t\r\n\f\v");
    raw = b == std::string_view::npos ? std::string_view() : raw.substr(b, raw.find_last_not_of(" \t\r\n\f\v") - b + 1);
    std::string out;
    bool in_run = false;
    for (char ch : raw) {
        char c = (ch >= 'A' && ch <= 'Z') ? char(ch - 'A' + 'a') : ch;
        bool const keep = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
        if (keep && c != '-') {
            out += c;
            in_run = false;
        } else if (!in_run) {  // an invalid run or a '-' both become one '-'
            out += '-';
            in_run = true;
        }
    }
    auto const first = out.find_first_not_of("-_");
    if (first == std::string::npos) return std::string(fallback);
    return out.substr(first, out.find_last_not_of("-_") - first + 1);
}

/// The template variables of a realization (upstream renderWorkspaceTemplate): the slug is the
/// issue title's, else the identifier's (else the issue id's), else "issue".
[[nodiscard]] inline template_variables make_template_variables(std::optional<std::string> const& issue_id,
                                                                std::optional<std::string> const& issue_identifier,
                                                                std::optional<std::string> const& issue_title,
                                                                std::optional<std::string> const& agent_id,
                                                                std::string const& agent_name,
                                                                std::optional<std::string> const& project_id,
                                                                std::optional<std::string> const& repo_ref) {
    std::string const identifier = issue_identifier ? *issue_identifier : issue_id ? *issue_id : std::string("issue");
    template_variables v;
    v.issue_id = issue_id.value_or("");
    v.issue_identifier = issue_identifier.value_or("");
    v.issue_title = issue_title.value_or("");
    v.agent_id = agent_id.value_or("");
    v.agent_name = agent_name;
    v.project_id = project_id.value_or("");
    v.workspace_repo_ref = repo_ref.value_or("");
    v.slug = sanitize_slug_part(issue_title, sanitize_slug_part(identifier, "issue"));
    return v;
}

/// Upstream renderTemplate: every `{{ name }}` (optional spaces; name of `[A-Za-z0-9_.-]`) replaced
/// by the variable's value, an unknown name by nothing. One pass: values are not re-scanned.
[[nodiscard]] inline std::string render_workspace_template(std::string_view tmpl, template_variables const& v) {
    std::pair<std::string_view, std::string const*> const vars[] = {
        {"issue.id", &v.issue_id},       {"issue.identifier", &v.issue_identifier},
        {"issue.title", &v.issue_title}, {"agent.id", &v.agent_id},
        {"agent.name", &v.agent_name},   {"project.id", &v.project_id},
        {"workspace.repoRef", &v.workspace_repo_ref}, {"slug", &v.slug},
    };
    auto name_char = [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
               c == '-';
    };
    std::string out;
    std::size_t i = 0;
    while (i < tmpl.size()) {
        if (tmpl.compare(i, 2, "{{") == 0) {
            std::size_t j = i + 2;
            while (j < tmpl.size() && tmpl[j] == ' ') ++j;
            std::size_t const name_begin = j;
            while (j < tmpl.size() && name_char(tmpl[j])) ++j;
            std::size_t const name_end = j;
            while (j < tmpl.size() && tmpl[j] == ' ') ++j;
            if (name_end > name_begin && tmpl.compare(j, 2, "}}") == 0) {
                auto const name = tmpl.substr(name_begin, name_end - name_begin);
                for (auto const& [key, value] : vars)
                    if (key == name) out += *value;
                i = j + 2;
                continue;
            }
        }
        out += tmpl[i++];
    }
    return out;
}

/// Upstream sanitizeBranchName, then made a safe git ref and a safe relative path (berth):
///  1. (upstream) trim; each run outside `[A-Za-z0-9._/-]` → `-`; collapse `-`; trim leading and
///     trailing `-`, `/`, `.`;
///  2. (berth) runs of two or more dots → `-` (no `..` anywhere: not a path that climbs, and a
///     valid ref); each `/`-separated component loses leading dots and a trailing `.lock` or dot,
///     empty components are dropped (no `//`, no hidden directories);
///  3. (upstream) at most 120 characters, then trimmed again (berth) so the cut cannot leave a
///     trailing `/` or `.`; `berth-work` if nothing is left.
/// The result has no `..` component and does not start with `/`, so joined to a parent directory
/// it stays below it.
[[nodiscard]] inline std::string sanitize_branch_name(std::string_view value) {
    auto trim_chars = [](std::string const& s, std::string_view chars) {
        auto const b = s.find_first_not_of(chars);
        if (b == std::string::npos) return std::string();
        return s.substr(b, s.find_last_not_of(chars) - b + 1);
    };
    std::string s = trim_chars(std::string(value), " \t\r\n\f\v");
    std::string step1;
    bool in_run = false;
    for (char c : s) {
        bool const keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
                          c == '_' || c == '/' || c == '-';
        if (keep && c != '-') {
            step1 += c;
            in_run = false;
        } else if (!in_run) {
            step1 += '-';
            in_run = true;
        }
    }
    step1 = trim_chars(step1, "-/.");
    // 2. no `..`, per-component rules.
    std::string no_dots;
    for (std::size_t i = 0; i < step1.size();) {
        if (step1[i] == '.' && i + 1 < step1.size() && step1[i + 1] == '.') {
            while (i < step1.size() && step1[i] == '.') ++i;
            if (no_dots.empty() || no_dots.back() != '-') no_dots += '-';
        } else {
            no_dots += step1[i++];
        }
    }
    std::string joined;
    std::size_t start = 0;
    while (start <= no_dots.size()) {
        auto end = no_dots.find('/', start);
        if (end == std::string::npos) end = no_dots.size();
        std::string comp = no_dots.substr(start, end - start);
        auto const b = comp.find_first_not_of('.');
        comp = b == std::string::npos ? std::string() : comp.substr(b);
        while (comp.size() >= 5 && comp.compare(comp.size() - 5, 5, ".lock") == 0) comp.resize(comp.size() - 5);
        while (!comp.empty() && comp.back() == '.') comp.pop_back();
        if (!comp.empty()) (joined += joined.empty() ? "" : "/") += comp;
        start = end + 1;
    }
    if (joined.size() > max_branch_name_length) joined.resize(max_branch_name_length);
    joined = trim_chars(joined, "-/.");
    return joined.empty() ? std::string(fallback_branch_name) : joined;
}

/// Upstream resolveHomeAwarePath: `~` or `~/x` under $HOME.
[[nodiscard]] inline std::filesystem::path expand_home(std::string_view value) {
    if (value == "~" || value.starts_with("~/")) {
        char const* home = std::getenv("HOME");
        if (!home || !*home)
            throw workspace_error("Cannot expand \"" + std::string(value) + "\": HOME is not set.");
        return std::filesystem::path(home) / std::string(value.substr(value.size() == 1 ? 1 : 2));
    }
    return std::filesystem::path(std::string(value));
}

/// Where a configured worktree parent directory is (upstream resolveConfiguredPath, guarded):
/// an absolute path or one starting with `~` is taken as given (the explicit way to place
/// worktrees outside the repository); a relative one is resolved against the repository root and
/// must stay inside it.
/// @throws workspace_error naming the field `worktreeParentDir` and the value when a relative path
///         climbs out of the repository, or `~user` is used.
[[nodiscard]] inline std::filesystem::path resolve_worktree_parent_dir(std::string_view value,
                                                                       std::filesystem::path const& repo_root) {
    if (value.starts_with("~") && value != "~" && !value.starts_with("~/"))
        throw workspace_error("Unexpected workspaceStrategy.worktreeParentDir value: " + std::string(value) +
                              " (only ~ and ~/ are expanded; write the absolute path)");
    if (value.starts_with("~") || value.starts_with("/")) return expand_home(value).lexically_normal();
    auto const resolved = (repo_root / std::string(value)).lexically_normal();
    auto const rel = resolved.lexically_relative(repo_root.lexically_normal());
    if (rel.empty() || *rel.begin() == "..")
        throw workspace_error("Unexpected workspaceStrategy.worktreeParentDir value: " + std::string(value) +
                              " (a relative path must stay inside the repository " + repo_root.string() +
                              "; give an absolute path to place worktrees elsewhere)");
    return resolved;
}

/// Whether `child` is `parent` or below it, lexically (both absolute and normalised).
[[nodiscard]] inline bool path_is_within(std::filesystem::path const& child, std::filesystem::path const& parent) {
    auto const rel = child.lexically_normal().lexically_relative(parent.lexically_normal());
    return !rel.empty() && *rel.begin() != "..";
}

}  // namespace berth
