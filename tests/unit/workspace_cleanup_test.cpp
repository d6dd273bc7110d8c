// workspace_runtime::cleanup and workspace_manager with real git: commands as warnings, worktree
// removal, the guarded branch delete, local_fs removal and its path guard, and the records
// (execution_workspaces, workspace_operations) in the memory and SQLite stores.
#include <catch2/catch.hpp>

#include "git_fixture.hpp"

#include <berth/stores/memory.hpp>
#include <berth/testing/manual_clock.hpp>
#include <berth/workspace.hpp>
#if BERTH_TEST_SQLITE
#include <berth/stores/sqlite.hpp>
#endif

#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>

using namespace berth;
namespace fs = std::filesystem;

namespace {

workspace_runtime test_runtime() {
    return workspace_runtime(workspace_runtime_options{.git = {.environment = test::git_test_env()},
                                                       .shell = "/bin/sh",
                                                       .command_environment = test::git_test_env()});
}

realize_workspace_request worktree_request(fs::path const& repo, std::string identifier = "ENG-1") {
    return {.base = {.base_cwd = repo.string(), .project_id = "proj-1"},
            .strategy = {.type = workspace_strategy_type::git_worktree},
            .issue = workspace_issue{.id = "issue-1", .identifier = identifier, .title = "Clean me"},
            .agent = {.id = "agent-1", .name = "coder", .company_id = "company-1"}};
}

bool branch_exists(fs::path const& repo, std::string const& b) {
    return !test::git(repo, {"branch", "--list", b}).empty();
}

}  // namespace

TEST_CASE("cleanup removes the worktree and the branch berth created", "[workspace]") {
    test::temp_dir dir("berth-ws");
    auto const repo = dir / "repo";
    test::make_repo(repo);
    auto rt = test_runtime();
    memory_store store;
    workspace_manager wm{store, rt};
    auto const ws = wm.realize(worktree_request(repo), {.company_id = "company-1", .heartbeat_run_id = "run-1"});
    REQUIRE(fs::exists(ws.realized.cwd));
    auto const before = rt.git().processes_started();
    auto const done = wm.cleanup(ws.record.id, {.heartbeat_run_id = "run-1", .cleanup_reason = "run finished", .held_lock = ws.realized.lock});
    CHECK(done.result.warnings.empty());
    CHECK(done.result.cleaned);
    CHECK(done.result.cleaned_path == ws.realized.cwd);
    CHECK_FALSE(fs::exists(ws.realized.cwd));
    CHECK_FALSE(branch_exists(repo, "ENG-1-clean-me"));
    CHECK(test::git(repo, {"worktree", "list"}).find("ENG-1") == std::string::npos);
    CHECK(rt.git().processes_started() - before == 3);  // rev-parse, worktree remove, branch -d
    CHECK(done.record.status == execution_workspace_status::archived);
    CHECK(done.record.closed_at);
    CHECK(done.record.cleanup_reason == "run finished");
    auto const ops = store.list_operations({.execution_workspace_id = ws.record.id});
    REQUIRE(ops.size() == 3);  // worktree add; worktree remove; branch -d
    CHECK(ops[1].phase == workspace_operation_phase::worktree_cleanup);
    CHECK(ops[1].command == "git worktree remove --force " + ws.realized.cwd);
    CHECK(ops[2].command == "git branch -d ENG-1-clean-me");
    CHECK(ops[2].status == workspace_operation_status::succeeded);
}

TEST_CASE("a branch whose tip moved, or that berth did not create, is kept with a warning", "[workspace]") {
    test::temp_dir dir("berth-ws");
    auto const repo = dir / "repo";
    test::make_repo(repo);
    auto rt = test_runtime();
    memory_store store;
    workspace_manager wm{store, rt};

    SECTION("a commit on the branch since creation") {
        auto const ws = wm.realize(worktree_request(repo), {.company_id = "company-1"});
        test::write_file(fs::path(ws.realized.cwd) / "work.txt", "agent work\n");
        test::git(ws.realized.cwd, {"add", "-A"});
        test::git(ws.realized.cwd, {"commit", "-q", "-m", "agent work"});
        auto const done = wm.cleanup(ws.record.id, {.held_lock = ws.realized.lock});
        CHECK_FALSE(fs::exists(ws.realized.cwd));  // the worktree goes (--force) ...
        CHECK(branch_exists(repo, "ENG-1-clean-me"));  // ... the work stays on its branch
        REQUIRE(done.result.warnings.size() == 1);
        CHECK_THAT(done.result.warnings[0], Catch::StartsWith("Skipped deleting branch \"ENG-1-clean-me\": its tip "
                                                              "moved since berth created it"));
        CHECK(done.record.status == execution_workspace_status::cleanup_failed);
    }
    SECTION("an existing branch that berth attached") {
        test::git(repo, {"branch", "ENG-1-clean-me"});
        auto const ws = wm.realize(worktree_request(repo), {.company_id = "company-1"});
        REQUIRE_FALSE(ws.realized.branch_created);
        auto const done = wm.cleanup(ws.record.id, {.held_lock = ws.realized.lock});
        CHECK(branch_exists(repo, "ENG-1-clean-me"));
        REQUIRE(done.result.warnings.size() == 1);
        CHECK_THAT(done.result.warnings[0], Catch::Contains("did not create it"));
    }
    SECTION("a workspace berth did not create is not touched beyond the worktree") {
        auto const ws = wm.realize(worktree_request(repo), {.company_id = "company-1"});
        auto md = *ws.record.metadata;
        md["createdByRuntime"] = false;
        store.update_execution_workspace(ws.record.id, {.metadata = std::optional(md)}, system_clock{}.now());
        auto const done = wm.cleanup(ws.record.id, {.held_lock = ws.realized.lock});
        CHECK(done.result.warnings.empty());
        CHECK(branch_exists(repo, "ENG-1-clean-me"));
    }
}

TEST_CASE("cleanup and teardown commands run with the cleanup environment, failures are warnings", "[workspace]") {
    test::temp_dir dir("berth-ws");
    auto const repo = dir / "repo";
    test::make_repo(repo);
    auto rt = test_runtime();
    memory_store store;
    workspace_manager wm{store, rt};
    auto req = worktree_request(repo);
    auto const log = (dir / "log.txt").string();
    req.strategy.cleanup_command = "echo \"cleanup $BERTH_WORKSPACE_BRANCH $BERTH_ISSUE_ID\" >> " + log;
    req.strategy.teardown_command = "echo teardown-failed >&2; exit 9";
    auto const ws = wm.realize(req, {.company_id = "company-1"});
    auto const done = wm.cleanup(ws.record.id, {.project_cleanup_command = "echo project >> " + log, .held_lock = ws.realized.lock});
    std::ifstream in(log);
    std::string l1, l2;
    std::getline(in, l1);
    std::getline(in, l2);
    CHECK(l1 == "cleanup ENG-1-clean-me issue-1");
    CHECK(l2 == "project");
    REQUIRE(done.result.warnings.size() == 1);
    CHECK(done.result.warnings[0] ==
          "Execution workspace cleanup command \"echo teardown-failed >&2; exit 9\" failed: teardown-failed");
    CHECK(done.result.cleaned);  // the worktree went anyway
    auto const ops = store.list_operations({.execution_workspace_id = ws.record.id});
    int teardowns = 0;
    for (auto const& op : ops)
        if (op.phase == workspace_operation_phase::workspace_teardown) {
            ++teardowns;
            CHECK(op.cwd == ws.realized.cwd);
        }
    CHECK(teardowns == 3);
    CHECK(ops.back().phase == workspace_operation_phase::worktree_cleanup);
}

TEST_CASE("local_fs directories berth created are removed, never one containing the project", "[workspace]") {
    test::temp_dir dir("berth-ws");
    auto rt = test_runtime();
    auto const project = dir / "project";
    fs::create_directories(project / "src");
    auto const scratch = dir / "scratch";
    test::write_file(scratch / "a/b.txt", "x");
    fs::create_directory_symlink(project, scratch / "link-to-project");
    execution_workspace w{};
    w.id = "ew-1";
    w.project_id = "proj-1";
    w.provider_type = workspace_provider_type::local_fs;
    w.cwd = scratch.string();
    w.metadata = json_object{{"createdByRuntime", true}};

    SECTION("removed, symlinks not followed") {
        auto const r = rt.cleanup({.workspace = w, .project_workspace_cwd = project.string()});
        CHECK(r.warnings.empty());
        CHECK(r.cleaned);
        CHECK_FALSE(fs::exists(scratch));
        CHECK(fs::exists(project / "src"));
    }
    SECTION("the project itself, or a parent of it, is refused") {
        for (auto const& p : {project, dir.path(), project / "."}) {
            w.cwd = p.string();
            auto const r = rt.cleanup({.workspace = w, .project_workspace_cwd = project.string()});
            REQUIRE(r.warnings.size() == 1);
            CHECK(r.warnings[0] == "Refusing to remove path \"" + p.string() +
                                       "\" because it contains the project workspace.");
            CHECK_FALSE(r.cleaned);
            CHECK(fs::exists(project / "src"));
        }
    }
    SECTION("not created by berth: left alone") {
        w.metadata = json_object{{"createdByRuntime", false}};
        auto const r = rt.cleanup({.workspace = w, .project_workspace_cwd = project.string()});
        CHECK(r.warnings.empty());
        CHECK_FALSE(r.cleaned);
        CHECK(fs::exists(scratch / "a/b.txt"));
    }
}

namespace {

/// The manager copies its clock; this one reads the test's manual clock.
struct clock_ref {
    berth::testing::manual_clock const* c;
    [[nodiscard]] timestamp now() const noexcept { return c->now(); }
};

template <class Store>
void check_records(Store& store) {
    test::temp_dir dir("berth-ws");
    auto const repo = dir / "repo";
    test::make_repo(repo);
    auto rt = test_runtime();
    berth::testing::manual_clock clock;
    workspace_manager wm{store, rt, clock_ref{&clock}};
    auto req = worktree_request(repo);
    req.strategy.provision_command = "echo provisioned; echo warn >&2";
    auto first = wm.realize(req, {.company_id = "company-1", .heartbeat_run_id = "run-1"});

    auto const rec = store.get_execution_workspace(first.record.id);
    REQUIRE(rec);
    CHECK(rec->company_id == "company-1");
    CHECK(rec->project_id == "proj-1");
    CHECK(rec->source_issue_id == "issue-1");
    CHECK(rec->mode == execution_workspace_mode::isolated_workspace);
    CHECK(rec->strategy_type == workspace_strategy_type::git_worktree);
    CHECK(rec->provider_type == workspace_provider_type::git_worktree);
    CHECK(rec->provider_ref == first.realized.worktree_path);
    CHECK(rec->branch_name == "ENG-1-clean-me");
    CHECK(rec->base_ref == "HEAD");
    CHECK(rec->status == execution_workspace_status::active);
    REQUIRE(rec->metadata);
    CHECK(rec->metadata->at("createdByRuntime") == true);
    CHECK(rec->metadata->at("branchCreatedByRuntime") == true);
    CHECK(rec->metadata->at("branchHeadSha") == test::git(repo, {"rev-parse", "HEAD"}).c_str());
    CHECK(rec->metadata->at("config").at("provisionCommand") == "echo provisioned; echo warn >&2");

    auto const ops = store.list_operations({.heartbeat_run_id = "run-1"});
    REQUIRE(ops.size() == 2);
    CHECK(ops[0].phase == workspace_operation_phase::worktree_prepare);
    CHECK(ops[0].command == "git worktree add -b ENG-1-clean-me " + *first.realized.worktree_path + " HEAD");
    CHECK(ops[0].cwd == repo.string());
    CHECK(ops[0].status == workspace_operation_status::succeeded);
    CHECK(ops[0].exit_code == 0);
    CHECK(ops[0].execution_workspace_id == first.record.id);  // attached after the record existed
    CHECK(ops[0].metadata->at("message") == ("Created git worktree at " + *first.realized.worktree_path + "\n").c_str());
    CHECK(ops[0].started_at == clock.now());
    CHECK(ops[0].finished_at == clock.now());
    CHECK(ops[1].phase == workspace_operation_phase::workspace_provision);
    CHECK(ops[1].command == "echo provisioned; echo warn >&2");
    CHECK(ops[1].cwd == first.realized.cwd);
    CHECK(ops[1].stdout_excerpt == "provisioned\n");
    CHECK(ops[1].stderr_excerpt == "warn\n");
    CHECK(ops[1].issue_id == "issue-1");
    CHECK(ops[1].company_id == "company-1");

    // Reuse: the same record, last used later; the operation says so. (run-1 ended: it lets go of
    // the worktree, or run-2 would wait for it.)
    first.realized.lock.reset();
    clock.advance(std::chrono::seconds(5));
    auto const again = wm.realize(req, {.company_id = "company-1", .heartbeat_run_id = "run-2"});
    CHECK(again.record.id == first.record.id);
    CHECK_FALSE(again.realized.created);
    CHECK(again.record.last_used_at == clock.now());
    CHECK(again.record.metadata->at("createdByRuntime") == true);  // kept from the first realization
    auto const ops2 = store.list_operations({.heartbeat_run_id = "run-2"});
    REQUIRE(ops2.size() == 2);
    CHECK(ops2[0].metadata->at("reused") == true);
    CHECK_FALSE(ops2[0].command);

    // A failing provision is stored failed with its exit code and output.
    auto bad = worktree_request(repo, "ENG-9");
    bad.strategy.provision_command = "echo broken >&2; exit 5";
    CHECK_THROWS_AS(wm.realize(bad, {.company_id = "company-1", .heartbeat_run_id = "run-3"}), workspace_error);
    auto const ops3 = store.list_operations({.heartbeat_run_id = "run-3"});
    REQUIRE(ops3.size() == 2);
    CHECK(ops3[1].status == workspace_operation_status::failed);
    CHECK(ops3[1].exit_code == 5);
    CHECK(ops3[1].stderr_excerpt == "broken\n");

    auto const done = wm.cleanup(first.record.id, {.heartbeat_run_id = "run-4", .held_lock = again.realized.lock});
    CHECK(done.result.cleaned);
    CHECK(store.get_execution_workspace(first.record.id)->status == execution_workspace_status::archived);
    auto const ops4 = store.list_operations({.heartbeat_run_id = "run-4"});
    REQUIRE(ops4.size() == 2);  // worktree remove, branch -d (resolving the repository is not an operation)
    CHECK(ops4[0].command == "git worktree remove --force " + first.realized.cwd);
    CHECK(ops4[1].command == "git branch -d ENG-1-clean-me");
}

}  // namespace

TEST_CASE("realization and cleanup are recorded in the memory store", "[workspace]") {
    memory_store store;
    check_records(store);
}

#if BERTH_TEST_SQLITE
TEST_CASE("realization and cleanup are recorded in the SQLite store", "[workspace]") {
    test::temp_dir dir("berth-ws-db");
    auto store = sqlite_store::open((dir / "berth.db").string());
    check_records(store);
}
#endif

TEST_CASE("operation excerpts keep the last 4 KiB on a character boundary", "[workspace]") {
    CHECK_FALSE(operation_excerpt(""));
    CHECK(operation_excerpt("abc") == "abc");
    std::string big(5000, 'a');
    big += "\xC3\xA9";  // é
    auto const e = operation_excerpt(big);
    REQUIRE(e);
    CHECK(e->size() <= operation_excerpt_bytes);
    CHECK(e->substr(e->size() - 2) == "\xC3\xA9");
    std::string cut = std::string(10, 'a') + std::string(4095, 'b');
    cut.insert(cut.size() - 4095, "\xC3\xA9");  // the cut lands inside é: it is dropped whole
    CHECK(operation_excerpt(cut)->front() == 'b');
}

TEST_CASE("cleanup of an already removed worktree and branch, and of a project_primary record", "[workspace]") {
    test::temp_dir dir("berth-ws");
    auto const repo = dir / "repo";
    test::make_repo(repo);
    auto rt = test_runtime();
    memory_store store;
    workspace_manager wm{store, rt};

    SECTION("worktree and branch already gone: cleaned, no warning") {
        auto const ws = wm.realize(worktree_request(repo), {.company_id = "company-1"});
        test::git(repo, {"worktree", "remove", "--force", ws.realized.cwd});
        test::git(repo, {"branch", "-D", "ENG-1-clean-me"});
        auto const done = wm.cleanup(ws.record.id, {.held_lock = ws.realized.lock});
        CHECK(done.result.cleaned);
        CHECK(done.result.warnings.empty());
        CHECK(done.record.status == execution_workspace_status::archived);
    }
    SECTION("project_primary: the checkout is never removed") {
        auto req = worktree_request(repo);
        req.strategy.type = workspace_strategy_type::project_primary;
        auto const ws = wm.realize(req, {.company_id = "company-1"});
        CHECK(ws.record.provider_type == workspace_provider_type::local_fs);
        CHECK(ws.record.metadata->at("createdByRuntime") == false);
        auto const done = wm.cleanup(ws.record.id, {.held_lock = ws.realized.lock});
        CHECK(fs::exists(repo / "README.md"));
        CHECK_FALSE(done.result.cleaned);
        CHECK(done.result.warnings.empty());
        CHECK(done.record.status == execution_workspace_status::archived);  // nothing failed
    }
    SECTION("an unknown record is not_found") {
        CHECK_THROWS_AS(wm.cleanup("no-such-workspace"), store_error);
    }
}
