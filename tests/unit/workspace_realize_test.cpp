// workspace_runtime::realize with real git in temporary directories: project_primary, git_worktree
// creation (branch template, parent dir, base ref resolution), reuse, attach of an existing
// branch, provisioning, and bad input (non-repositories, git missing, hostile issue titles).
#include <catch2/catch.hpp>

#include "git_fixture.hpp"

#include <berth/workspace.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>
#include <vector>

using namespace berth;
namespace fs = std::filesystem;

namespace {

workspace_runtime test_runtime() {
    return workspace_runtime(workspace_runtime_options{.git = {.environment = test::git_test_env()},
                                                       .shell = "/bin/sh",
                                                       .command_environment = test::git_test_env()});
}

realize_workspace_request worktree_request(fs::path const& repo, std::string identifier = "ENG-1",
                                           std::string title = "Fix the bug") {
    return {.base = {.base_cwd = repo.string(), .project_id = "proj-1"},
            .strategy = {.type = workspace_strategy_type::git_worktree},
            .issue = workspace_issue{.id = "issue-1", .identifier = identifier, .title = title},
            .agent = {.id = "agent-1", .name = "coder", .company_id = "company-1"}};
}

std::string read(fs::path const& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

}  // namespace

TEST_CASE("project_primary: the workspace is the base cwd and nothing runs", "[workspace]") {
    test::temp_dir dir("berth-ws");
    auto rt = test_runtime();
    auto req = worktree_request(dir.path());
    req.strategy = {.type = workspace_strategy_type::project_primary, .provision_command = "touch provisioned"};
    auto const ws = rt.realize(req);
    CHECK(ws.strategy == workspace_strategy_type::project_primary);
    CHECK(ws.cwd == dir.str());
    CHECK_FALSE(ws.branch_name);
    CHECK_FALSE(ws.worktree_path);
    CHECK_FALSE(ws.created);
    CHECK(rt.git().processes_started() == 0);
    CHECK_FALSE(fs::exists(dir / "provisioned"));
}

TEST_CASE("git_worktree: a new worktree under <repo>/.berth/worktrees/<branch> on a new branch", "[workspace]") {
    test::temp_dir dir("berth-ws");
    auto const repo = dir / "repo";
    test::make_repo(repo);
    auto rt = test_runtime();
    auto const ws = rt.realize(worktree_request(repo));
    CHECK(ws.strategy == workspace_strategy_type::git_worktree);
    CHECK(ws.branch_name == "ENG-1-fix-the-bug");
    CHECK(ws.worktree_path == (repo / ".berth/worktrees/ENG-1-fix-the-bug").string());
    CHECK(ws.cwd == *ws.worktree_path);
    CHECK(ws.repo_root == repo.string());
    CHECK(ws.created);
    CHECK(ws.branch_created);
    CHECK(ws.base_ref == "HEAD");  // no origin, no configured ref
    CHECK(ws.branch_head_sha == test::git(repo, {"rev-parse", "HEAD"}));
    CHECK(fs::exists(*ws.worktree_path + "/README.md"));
    CHECK(test::git(*ws.worktree_path, {"rev-parse", "--abbrev-ref", "HEAD"}) == "ENG-1-fix-the-bug");
    // rev-parse, worktree add: no origin refs on disk, so no for-each-ref to detect a default branch.
    CHECK(rt.git().processes_started() == 2);
    // The default parent is excluded from the main checkout's status (once).
    CHECK(test::git(repo, {"status", "--porcelain"}).empty());
    (void)rt.realize(worktree_request(repo, "ENG-2"));
    auto const exclude = read(repo / ".git/info/exclude");
    CHECK(exclude.find("/.berth/") == exclude.rfind("/.berth/"));
}

TEST_CASE("git_worktree: template, parent dir and base ref from the strategy", "[workspace]") {
    test::temp_dir dir("berth-ws");
    auto const repo = dir / "repo";
    test::make_repo(repo);
    test::git(repo, {"checkout", "-q", "-b", "develop"});
    test::write_file(repo / "dev.txt", "dev\n");
    test::git(repo, {"add", "-A"});
    test::git(repo, {"commit", "-q", "-m", "dev"});
    test::git(repo, {"checkout", "-q", "main"});
    auto rt = test_runtime();
    auto req = worktree_request(repo);
    req.strategy.branch_template = "agents/{{agent.name}}/{{issue.identifier}}";
    req.strategy.worktree_parent_dir = "trees";
    req.strategy.base_ref = "develop";
    auto const ws = rt.realize(req);
    CHECK(ws.branch_name == "agents/coder/ENG-1");
    CHECK(ws.worktree_path == (repo / "trees/agents/coder/ENG-1").string());
    CHECK(ws.base_ref == "develop");
    CHECK(fs::exists(*ws.worktree_path + "/dev.txt"));
    CHECK(ws.branch_head_sha == test::git(repo, {"rev-parse", "develop"}));
    CHECK(rt.git().processes_started() == 2);  // the base ref is resolved in the first rev-parse

    SECTION("the repo ref is the base when the strategy names none") {
        auto r2 = worktree_request(repo, "ENG-2");
        r2.base.repo_ref = "develop";
        auto const w2 = rt.realize(r2);
        CHECK(w2.base_ref == "develop");
        CHECK(fs::exists(*w2.worktree_path + "/dev.txt"));
    }
    SECTION("a base ref that names no commit is a clear error") {
        auto r3 = worktree_request(repo, "ENG-3");
        r3.strategy.base_ref = "no-such-branch";
        CHECK_THROWS_WITH(rt.realize(r3), Catch::Contains("Base ref \"no-such-branch\" (workspaceStrategy.baseRef)") &&
                                              Catch::Contains(repo.string()));
        r3.strategy.base_ref = "--upload-pack=touch /tmp/x";
        CHECK_THROWS_WITH(rt.realize(r3), Catch::Contains("must not start with '-'"));
    }
}

TEST_CASE("git_worktree: the default branch is detected through origin", "[workspace]") {
    test::temp_dir dir("berth-ws");
    auto const upstream = dir / "upstream";
    test::make_repo(upstream);
    test::git(dir.path(), {"clone", "-q", upstream.string(), "clone"});
    auto const clone = dir / "clone";
    // A local commit on main that origin does not have: the start point is the local main.
    test::write_file(clone / "local.txt", "local\n");
    test::git(clone, {"add", "-A"});
    test::git(clone, {"commit", "-q", "-m", "local"});
    test::git(clone, {"checkout", "-q", "-b", "elsewhere", "HEAD~1"});
    auto rt = test_runtime();
    auto const ws = rt.realize(worktree_request(clone));
    CHECK(ws.base_ref == "main");
    CHECK(rt.git().processes_started() == 3);  // rev-parse, for-each-ref (origin's refs), worktree add
    CHECK(fs::exists(*ws.worktree_path + "/local.txt"));
    CHECK(ws.branch_head_sha == test::git(clone, {"rev-parse", "main"}));

    SECTION("without a local branch of that name, origin/<default>") {
        test::git(clone, {"branch", "-q", "-D", "main"});
        auto const w2 = rt.realize(worktree_request(clone, "ENG-2"));
        CHECK(w2.base_ref == "origin/main");
        CHECK_FALSE(fs::exists(*w2.worktree_path + "/local.txt"));
    }
}

TEST_CASE("git_worktree: an existing worktree is reused, a path that is not one is refused", "[workspace]") {
    test::temp_dir dir("berth-ws");
    auto const repo = dir / "repo";
    test::make_repo(repo);
    auto rt = test_runtime();
    auto req = worktree_request(repo);
    req.strategy.provision_command = "echo \"$BERTH_WORKSPACE_CREATED\" >> provisioned.txt";
    auto first = rt.realize(req);
    REQUIRE(first.created);
    first.lock.reset();  // the first run ended: the worktree is free to reuse
    auto const before = rt.git().processes_started();
    auto const again = rt.realize(req);
    CHECK_FALSE(again.created);
    CHECK_FALSE(again.branch_created);
    CHECK(again.cwd == first.cwd);
    CHECK(rt.git().processes_started() - before == 2);  // rev-parse in the base, rev-parse in the worktree
    CHECK(read(first.cwd + "/provisioned.txt") == "true\nfalse\n");  // provisioned again on reuse

    SECTION("a plain directory inside the repository is not a worktree") {
        auto r2 = worktree_request(repo, "ENG-2");
        fs::create_directories(repo / ".berth/worktrees/ENG-2-fix-the-bug");
        CHECK_THROWS_WITH(rt.realize(r2), "Configured worktree path \"" +
                                              (repo / ".berth/worktrees/ENG-2-fix-the-bug").string() +
                                              "\" already exists and is not a git worktree.");
    }
    SECTION("a worktree of another repository is not reused") {
        auto const other = dir / "other";
        test::make_repo(other);
        auto r3 = worktree_request(repo, "ENG-3");
        fs::create_directories(repo / ".berth/worktrees");
        test::git(other, {"worktree", "add", "-q", "-b", "x", (repo / ".berth/worktrees/ENG-3-fix-the-bug").string()});
        CHECK_THROWS_WITH(rt.realize(r3), Catch::Contains("already exists and is not a git worktree"));
    }
    SECTION("a symlink at the path is never followed") {
        auto r4 = worktree_request(repo, "ENG-4");
        fs::create_directory_symlink(first.cwd, repo / ".berth/worktrees/ENG-4-fix-the-bug");
        CHECK_THROWS_WITH(rt.realize(r4), Catch::Contains("already exists and is not a git worktree"));
    }
}

TEST_CASE("git_worktree: a branch that already exists is attached", "[workspace]") {
    test::temp_dir dir("berth-ws");
    auto const repo = dir / "repo";
    test::make_repo(repo);
    test::git(repo, {"branch", "ENG-5-fix-the-bug"});
    auto rt = test_runtime();
    auto const ws = rt.realize(worktree_request(repo, "ENG-5"));
    CHECK(ws.created);
    CHECK_FALSE(ws.branch_created);
    CHECK_FALSE(ws.branch_head_sha);
    CHECK(test::git(ws.cwd, {"rev-parse", "--abbrev-ref", "HEAD"}) == "ENG-5-fix-the-bug");
}

TEST_CASE("provisioning runs by the shell in the worktree with the BERTH_* variables", "[workspace]") {
    test::temp_dir dir("berth-ws");
    auto const repo = dir / "repo";
    test::make_repo(repo);
    auto rt = test_runtime();
    auto req = worktree_request(repo);
    req.base.source = workspace_source::task_session;
    req.base.repo_url = "https://example.invalid/repo.git";
    req.base.workspace_id = "pw-1";
    req.lease_id = "lease-ws-1";  // what recovery finds the provision command's stragglers by
    req.strategy.provision_command = "env | grep '^BERTH_' | sort > env.txt; pwd > pwd.txt";
    auto const ws = rt.realize(req);
    CHECK(git_runner::trim(read(ws.cwd + "/pwd.txt")) == ws.cwd);
    auto const env = read(ws.cwd + "/env.txt");
    for (auto const* line :
         {"BERTH_AGENT_ID=agent-1", "BERTH_AGENT_NAME=coder", "BERTH_COMPANY_ID=company-1", "BERTH_ISSUE_ID=issue-1",
          "BERTH_ISSUE_IDENTIFIER=ENG-1", "BERTH_ISSUE_TITLE=Fix the bug", "BERTH_PROJECT_ID=proj-1",
          "BERTH_PROJECT_WORKSPACE_ID=pw-1", "BERTH_WORKSPACE_BRANCH=ENG-1-fix-the-bug", "BERTH_WORKSPACE_CREATED=true",
          "BERTH_WORKSPACE_REPO_REF=", "BERTH_WORKSPACE_REPO_URL=https://example.invalid/repo.git",
          "BERTH_WORKSPACE_SOURCE=task_session", "BERTH_LEASE_ID=lease-ws-1"}) {
        INFO(line);
        CHECK(env.find(std::string(line) + "\n") != std::string::npos);
    }
    for (auto const* var : {"BERTH_WORKSPACE_CWD=", "BERTH_WORKSPACE_PATH=", "BERTH_WORKSPACE_WORKTREE_PATH="}) {
        INFO(var);
        CHECK(env.find(var + ws.cwd + "\n") != std::string::npos);
    }
    CHECK(env.find("BERTH_WORKSPACE_BASE_CWD=" + repo.string() + "\n") != std::string::npos);
    CHECK(env.find("BERTH_WORKSPACE_REPO_ROOT=" + repo.string() + "\n") != std::string::npos);

    SECTION("a failing provision command is an error with its label and output") {
        auto r2 = worktree_request(repo, "ENG-2");
        r2.strategy.provision_command = "echo to-stdout; echo to-stderr >&2; exit 3";
        CHECK_THROWS_WITH(rt.realize(r2), "Execution workspace provision command \"echo to-stdout; echo to-stderr >&2; "
                                          "exit 3\" failed: to-stderr\nto-stdout");
        auto r3 = worktree_request(repo, "ENG-3");
        r3.strategy.provision_command = "exit 4";
        CHECK_THROWS_WITH(rt.realize(r3), "Execution workspace provision command \"exit 4\" failed with exit code 4");
    }
}

TEST_CASE("a base cwd that is not a repository, or git missing from PATH, is a clear error", "[workspace]") {
    test::temp_dir dir("berth-ws");
    auto rt = test_runtime();
    CHECK_THROWS_WITH(rt.realize(worktree_request(dir.path())),
                      Catch::Contains("Base cwd \"" + dir.str() + "\" is not inside a git repository") &&
                          Catch::Contains("not a git repository"));
    CHECK_THROWS_WITH(rt.realize(worktree_request(dir / "missing")),
                      Catch::Contains("does not exist or is not a directory"));

    auto const repo = dir / "repo";
    test::make_repo(repo);
    auto env = test::git_test_env();
    env["PATH"] = (dir / "empty-bin").string();
    workspace_runtime no_git(workspace_runtime_options{.git = {.environment = env}});
    CHECK_THROWS_WITH(no_git.realize(worktree_request(repo)),
                      Catch::Contains("git is not available") && Catch::Contains("'git'") &&
                          Catch::Contains("PATH"));
}

TEST_CASE("hostile issue titles and identifiers never escape the worktree parent or reach a shell", "[workspace]") {
    test::temp_dir dir("berth-ws");
    auto const repo = dir / "repo";
    test::make_repo(repo);
    auto rt = test_runtime();
    auto const parent = repo / ".berth/worktrees";
    auto const marker = dir / "pwned";
    std::string const long_title(500, 'x');
    struct hostile {
        std::string identifier, title;
    };
    hostile const cases[] = {
        {"../../../escape", "../../../../tmp/evil"},
        {"/etc/passwd", "/absolute/title"},
        {"with spaces id", "a title with   spaces"},
        {"id;touch " + marker.string(), "$(touch " + marker.string() + ")`touch " + marker.string() + "`|&<>*?"},
        {"line\nbreak", "title\nwith\nnewlines\r\n"},
        {std::string(500, 'I'), long_title},
        {"..", "."},
        {"{{agent.name}}", "{{issue.title}}"},
    };
    int n = 0;
    for (auto const& h : cases) {
        INFO("identifier: " << h.identifier << " title: " << h.title);
        auto req = worktree_request(repo, h.identifier, h.title);
        // The provision command is the config's; the title reaches it only as a variable.
        req.strategy.provision_command = "printf '%s' \"$BERTH_ISSUE_TITLE\" > title.txt";
        req.strategy.branch_template = "{{issue.identifier}}-{{issue.title}}-" + std::to_string(n++);
        auto const ws = rt.realize(req);
        REQUIRE(ws.worktree_path);
        CHECK(path_is_within(fs::weakly_canonical(*ws.worktree_path), parent));
        CHECK(fs::weakly_canonical(*ws.worktree_path) != fs::weakly_canonical(parent));
        CHECK(ws.branch_name->size() <= max_branch_name_length);
        CHECK(read(ws.cwd + "/title.txt") == h.title);  // passed through unchanged, not interpreted
        CHECK_FALSE(fs::exists(marker));
    }
    // Nothing was created outside the parent directory.
    for (auto const& e : fs::directory_iterator(dir.path())) CHECK((e.path() == repo));
}

TEST_CASE("a worktree parent dir outside the repository is honoured only when absolute", "[workspace]") {
    test::temp_dir dir("berth-ws");
    auto const repo = dir / "repo";
    test::make_repo(repo);
    auto rt = test_runtime();
    auto req = worktree_request(repo);
    req.strategy.worktree_parent_dir = (dir / "elsewhere").string();
    auto const ws = rt.realize(req);
    CHECK(ws.worktree_path == (dir / "elsewhere/ENG-1-fix-the-bug").string());
    CHECK(fs::exists(*ws.worktree_path + "/README.md"));

    auto rel = worktree_request(repo, "ENG-2");
    rel.strategy.worktree_parent_dir = "../elsewhere";
    CHECK_THROWS_WITH(rt.realize(rel), Catch::Contains("Unexpected workspaceStrategy.worktreeParentDir value: "
                                                       "../elsewhere") &&
                                           Catch::Contains("give an absolute path"));
    CHECK_FALSE(fs::exists(dir / "elsewhere/ENG-2-fix-the-bug"));
}

TEST_CASE("workspace_strategy_from_json reads upstream's config and names bad fields", "[workspace]") {
    auto const s = workspace_strategy_from_json(json_object{
        {"workspaceStrategy", json_object{{"type", "git_worktree"},
                                          {"branchTemplate", "{{slug}}"},
                                          {"worktreeParentDir", "/wt"},
                                          {"baseRef", "main"},
                                          {"provisionCommand", "make"}}},
        {"teardownCommand", "make clean"}});
    CHECK(s.type == workspace_strategy_type::git_worktree);
    CHECK(s.branch_template == "{{slug}}");
    CHECK(s.worktree_parent_dir == "/wt");
    CHECK(s.base_ref == "main");
    CHECK(s.provision_command == "make");
    CHECK(s.teardown_command == "make clean");
    CHECK_FALSE(s.cleanup_command);
    CHECK(workspace_strategy_from_json({}).type == workspace_strategy_type::project_primary);
    CHECK_THROWS_WITH(workspace_strategy_from_json(json_object{{"workspaceStrategy", json_object{{"type", "teleport"}}}}),
                      "Unexpected execution workspace strategy type value: teleport");
    CHECK_THROWS_WITH(
        workspace_strategy_from_json(json_object{{"workspaceStrategy", json_object{{"baseRef", 42}}}}),
        "Unexpected workspaceStrategy.baseRef value: 42 (expected a string)");
    CHECK_THROWS_WITH(workspace_strategy_from_json(json_object{{"workspaceStrategy", "git_worktree"}}),
                      Catch::Contains("Unexpected workspaceStrategy value"));
}

TEST_CASE("git_worktree: loose remote-tracking refs are detected, not only packed ones", "[workspace]") {
    test::temp_dir dir("berth-ws");
    auto const repo = dir / "repo";
    test::make_repo(repo);
    test::git(repo, {"checkout", "-q", "-b", "other"});
    test::write_file(repo / "other.txt", "other\n");
    test::git(repo, {"add", "-A"});
    test::git(repo, {"commit", "-q", "-m", "other"});
    test::git(repo, {"update-ref", "refs/remotes/origin/master", "main"});  // loose, no packed-refs
    test::git(repo, {"branch", "-q", "-D", "main"});
    REQUIRE(fs::exists(repo / ".git/refs/remotes/origin/master"));  // loose
    REQUIRE(read(repo / ".git/packed-refs").find("refs/remotes/origin") == std::string::npos);
    auto rt = test_runtime();
    auto const ws = rt.realize(worktree_request(repo));
    CHECK(ws.base_ref == "origin/master");
    CHECK_FALSE(fs::exists(*ws.worktree_path + "/other.txt"));
}

namespace {

/// Sets variables in this process for one test and restores them (tests run one at a time; the
/// children read the environment at spawn).
struct scoped_env {
    std::vector<std::pair<std::string, std::optional<std::string>>> saved;
    explicit scoped_env(std::vector<std::pair<std::string, std::string>> const& vars) {
        for (auto const& [k, v] : vars) {
            char const* old = std::getenv(k.c_str());
            saved.emplace_back(k, old ? std::optional<std::string>(old) : std::nullopt);
            ::setenv(k.c_str(), v.c_str(), 1);
        }
    }
    ~scoped_env() {
        for (auto const& [k, v] : saved)
            if (v) ::setenv(k.c_str(), v->c_str(), 1);
            else ::unsetenv(k.c_str());
    }
};

bool has_line(std::string const& text, std::string const& line) {
    return ("\n" + text).find("\n" + line + "\n") != std::string::npos;
}
bool has_var(std::string const& text, std::string const& name) {
    return ("\n" + text).find("\n" + name + "=") != std::string::npos;
}

}  // namespace

TEST_CASE("provision and cleanup commands get the seed's environment, secrets stripped only on request", "[workspace]") {
    // The seed: provision gets {...process.env} plus its workspace variables (nothing dropped);
    // cleanup/teardown get sanitizeRuntimeServiceBaseEnv(process.env) (host variables, DATABASE_URL
    // and two npm auth settings dropped) plus theirs.
    scoped_env const vars({{"FID16_API_TOKEN", "tok-fid16"},
                           {"DATABASE_URL", "postgres://u:p@db/fid16"},
                           {"npm_config_tailscale_auth", "ts-fid16"},
                           {"BERTH_FID16_HOST_VAR", "host-fid16"},
                           {"BERTH_LEASE_ID", "lease-inherited-fid16"}});
    test::temp_dir dir("berth-ws");
    auto const repo = dir / "repo";
    test::make_repo(repo);
    auto const provision_env = [&](bool strip, std::string const& id) {
        workspace_runtime rt(workspace_runtime_options{.git = {.environment = test::git_test_env()},
                                                       .shell = "/bin/sh",
                                                       .strip_secret_environment = strip});
        auto req = worktree_request(repo, id);
        req.lease_id = "lease-env-" + id;
        req.strategy.provision_command = "env > env.txt";
        return read(rt.realize(req).cwd + "/env.txt");
    };

    auto const seeded = provision_env(false, "ENV-1");
    CHECK(has_line(seeded, "FID16_API_TOKEN=tok-fid16"));
    CHECK(has_line(seeded, "DATABASE_URL=postgres://u:p@db/fid16"));
    CHECK(has_line(seeded, "npm_config_tailscale_auth=ts-fid16"));
    CHECK(has_line(seeded, "BERTH_FID16_HOST_VAR=host-fid16"));
    CHECK(has_line(seeded, "BERTH_LEASE_ID=lease-env-ENV-1"));  // its own lease, never the inherited one
    CHECK(has_line(seeded, "BERTH_ISSUE_IDENTIFIER=ENV-1"));
    CHECK(has_var(seeded, "PATH"));

    auto const stripped = provision_env(true, "ENV-2");
    CHECK_FALSE(has_var(stripped, "FID16_API_TOKEN"));
    CHECK_FALSE(has_var(stripped, "DATABASE_URL"));
    CHECK(has_line(stripped, "BERTH_LEASE_ID=lease-env-ENV-2"));
    CHECK(has_var(stripped, "PATH"));

    auto const cleanup_env = [&](bool strip) {
        workspace_runtime rt(workspace_runtime_options{.git = {.environment = test::git_test_env()},
                                                       .shell = "/bin/sh",
                                                       .strip_secret_environment = strip});
        auto const scratch = dir / (strip ? "scratch-stripped" : "scratch");
        fs::create_directories(scratch);
        execution_workspace w{};
        w.id = "ew-env";
        w.project_id = "proj-1";
        w.provider_type = workspace_provider_type::local_fs;
        w.cwd = scratch.string();
        auto const out = (dir / (strip ? "cleanup-stripped.txt" : "cleanup.txt")).string();
        auto const r = rt.cleanup({.workspace = w, .cleanup_command = "env > " + out});
        CHECK(r.warnings.empty());
        return read(out);
    };
    auto const cleaned = cleanup_env(false);
    CHECK(has_line(cleaned, "FID16_API_TOKEN=tok-fid16"));  // the seed keeps it
    CHECK_FALSE(has_var(cleaned, "DATABASE_URL"));
    CHECK_FALSE(has_var(cleaned, "npm_config_tailscale_auth"));
    CHECK_FALSE(has_var(cleaned, "BERTH_FID16_HOST_VAR"));
    CHECK_FALSE(has_var(cleaned, "BERTH_LEASE_ID"));
    CHECK(has_line(cleaned, "BERTH_PROJECT_ID=proj-1"));
    CHECK_FALSE(has_var(cleanup_env(true), "FID16_API_TOKEN"));
}
