// Workspace naming (berth/workspace/naming.hpp): upstream's slug, template and branch rules, and
// berth's guards that a branch is a safe path below the worktree parent directory.
#include <catch2/catch.hpp>

#include <berth/workspace/naming.hpp>

#include <filesystem>
#include <string>

using namespace berth;

TEST_CASE("sanitize_slug_part follows upstream sanitizeSlugPart", "[workspace]") {
    CHECK(sanitize_slug_part("  Fix the Login Page!  ", "x") == "fix-the-login-page");
    CHECK(sanitize_slug_part("a -- b __c__", "x") == "a-b-__c");
    CHECK(sanitize_slug_part("---", "fallback") == "fallback");
    CHECK(sanitize_slug_part(std::nullopt, "fallback") == "fallback");
    CHECK(sanitize_slug_part("Ünïcode ✓ title", "x") == "n-code-title");
}

TEST_CASE("render_workspace_template substitutes every upstream variable once", "[workspace]") {
    auto const v = make_template_variables(std::string("iss-1"), std::string("ENG-7"), std::string("Add Feature"),
                                           std::string("ag-1"), "coder", std::string("proj-1"), std::string("main"));
    CHECK(v.slug == "add-feature");
    CHECK(render_workspace_template(default_branch_template, v) == "ENG-7-add-feature");
    CHECK(render_workspace_template("{{ issue.id }}/{{issue.title}}/{{agent.id}}/{{agent.name}}/{{project.id}}/"
                                    "{{workspace.repoRef}}/{{nope}}/{{slug}}",
                                    v) == "iss-1/Add Feature/ag-1/coder/proj-1/main//add-feature");
    // Values are not re-scanned: a title holding a template expression stays text.
    auto const tricky = make_template_variables(std::string("i"), std::string("X-1"), std::string("{{agent.name}}"),
                                                std::nullopt, "SECRET-AGENT", std::nullopt, std::nullopt);
    CHECK(render_workspace_template("{{issue.title}}", tricky) == "{{agent.name}}");
    CHECK(render_workspace_template("{{ unterminated", tricky) == "{{ unterminated");
}

TEST_CASE("the slug falls back to the identifier, then the issue id, then 'issue'", "[workspace]") {
    CHECK(make_template_variables(std::string("i"), std::string("ENG-9"), std::nullopt, std::nullopt, "a", std::nullopt,
                                  std::nullopt)
              .slug == "eng-9");
    CHECK(make_template_variables(std::string("Issue-ID"), std::nullopt, std::string("!!!"), std::nullopt, "a",
                                  std::nullopt, std::nullopt)
              .slug == "issue-id");
    CHECK(make_template_variables(std::nullopt, std::nullopt, std::nullopt, std::nullopt, "a", std::nullopt,
                                  std::nullopt)
              .slug == "issue");
}

TEST_CASE("sanitize_branch_name keeps upstream's rules and makes a safe relative path", "[workspace]") {
    CHECK(sanitize_branch_name("  feature/ENG-1 fix it!  ") == "feature/ENG-1-fix-it");
    CHECK(sanitize_branch_name("--/.weird.-") == "weird");
    CHECK(sanitize_branch_name("") == fallback_branch_name);
    CHECK(sanitize_branch_name("$$$") == "berth-work");
    CHECK(sanitize_branch_name(std::string(500, 'a')).size() == max_branch_name_length);
    // berth: no `..`, no hidden or `.lock` components, no empty components.
    CHECK(sanitize_branch_name("a/../../etc/passwd") == "a/-/-/etc/passwd");
    CHECK(sanitize_branch_name("x/.hidden/y.lock/z.") == "x/hidden/y/z");
    CHECK(sanitize_branch_name("a//b") == "a/b");
    CHECK(sanitize_branch_name("../../../../tmp") == "tmp");
    // A cut at 120 never leaves a trailing slash or dot.
    auto const cut = sanitize_branch_name(std::string(119, 'b') + "/c");
    CHECK(cut == std::string(119, 'b'));
    for (auto const* raw : {"../x", "/abs/path", "a\nb", "a;rm -rf ~", "`id`$(id)", "..", "."}) {
        INFO(raw);
        auto const b = sanitize_branch_name(raw);
        CHECK_FALSE(b.empty());
        CHECK(b.front() != '/');
        CHECK(b.find("..") == std::string::npos);
        CHECK(path_is_within(std::filesystem::path("/p") / b, "/p"));
        CHECK(b.find_first_of(" ;`$()\n") == std::string::npos);
    }
}

TEST_CASE("a worktree parent dir outside the repository must be absolute and explicit", "[workspace]") {
    std::filesystem::path const repo = "/srv/repo";
    CHECK(resolve_worktree_parent_dir("wt", repo) == "/srv/repo/wt");
    CHECK(resolve_worktree_parent_dir("./a/../b", repo) == "/srv/repo/b");
    CHECK(resolve_worktree_parent_dir("/var/worktrees", repo) == "/var/worktrees");
    CHECK_THROWS_WITH(resolve_worktree_parent_dir("../outside", repo),
                      Catch::Contains("workspaceStrategy.worktreeParentDir value: ../outside") &&
                          Catch::Contains("absolute"));
    CHECK_THROWS_WITH(resolve_worktree_parent_dir("a/../../x", repo), Catch::Contains("a/../../x"));
    CHECK_THROWS_AS(resolve_worktree_parent_dir("~root/x", repo), workspace_error);
    if (char const* home = std::getenv("HOME"); home && *home)
        CHECK(resolve_worktree_parent_dir("~/wt", repo) == (std::filesystem::path(home) / "wt").lexically_normal());
}
