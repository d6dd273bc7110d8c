// The orchestrator realizes execution workspaces for local environments: realize_for_run with a
// workspace request creates the git worktree (recorded: record + operations), the driver realizes
// and executes in it, and a failure is workspace_realization_failed.
#include <catch2/catch.hpp>

#include "git_fixture.hpp"

#include <berth/berth.hpp>
#include <berth/drivers/local.hpp>
#include <berth/stores/memory.hpp>
#include <berth/testing/manual_clock.hpp>

#include <filesystem>
#include <string>

using namespace berth;
namespace fs = std::filesystem;

namespace {

using local_stack = stack<drivers<local_driver>, policies<ephemeral>, memory_store, testing::manual_clock>;

realize_workspace_request worktree_request(fs::path const& repo) {
    return {.base = {.base_cwd = repo.string(), .project_id = "proj-1"},
            .strategy = {.type = workspace_strategy_type::git_worktree,
                         .provision_command = "echo ready > provisioned.txt"},
            .issue = workspace_issue{.id = "issue-1", .identifier = "ENG-42", .title = "Orchestrated"},
            .agent = {.id = "agent-1", .name = "coder", .company_id = "acme"}};
}

}  // namespace

TEST_CASE("realize_for_run on local realizes the execution workspace and runs in it", "[workspace][orchestrator]") {
    test::temp_dir dir("berth-ws");
    auto const repo = dir / "repo";
    test::make_repo(repo);
    memory_store store;
    testing::manual_clock clock;
    run_orchestrator<local_stack> orch{store, clock, local_driver{}};
    auto const acq = orch.acquire_for_run(
        {.company_id = "acme", .agent_id = std::string("agent-1"), .heartbeat_run_id = "run-1", .issue_id = "issue-1"});
    auto const r = orch.realize_for_run(
        {.env = acq.env, .lease = acq.lease, .workspace_cwd = repo.string(), .workspace = worktree_request(repo)});
    auto const expected = (repo / ".berth/worktrees/ENG-42-orchestrated").string();
    CHECK(r.cwd == expected);
    REQUIRE(r.workspace);
    CHECK(r.workspace->created);
    CHECK(fs::exists(expected + "/provisioned.txt"));
    REQUIRE(r.execution_workspace);
    CHECK(r.execution_workspace->company_id == "acme");
    CHECK(r.execution_workspace->provider_ref == expected);
    // The realization is kept on the lease and on the execution workspace (upstream step 4).
    CHECK(r.workspace_realization.at("cwd") == expected.c_str());
    CHECK(r.execution_workspace->metadata->at("workspaceRealization") == r.workspace_realization);
    CHECK(store.get_execution_workspace(r.execution_workspace->id)->metadata->contains("workspaceRealization"));
    auto const ops = store.list_operations({.heartbeat_run_id = "run-1"});
    REQUIRE(ops.size() == 2);
    CHECK(ops[0].phase == workspace_operation_phase::worktree_prepare);
    CHECK(ops[1].phase == workspace_operation_phase::workspace_provision);
    for (auto const& op : ops) CHECK(op.execution_workspace_id == r.execution_workspace->id);

    auto const out = orch.execute(acq.env, r.lease, {.program = "pwd", .cwd = r.cwd});
    CHECK(out.stdout_text == expected + "\n");

    SECTION("run_scope realizes the same way") {
        run_scope run{orch, {.company_id = "acme", .agent_id = std::string("agent-1"), .heartbeat_run_id = "run-2"}};
        auto req = worktree_request(repo);
        req.issue->identifier = "ENG-43";
        auto const& realized = run.realize(req);
        CHECK(realized.cwd == (repo / ".berth/worktrees/ENG-43-orchestrated").string());
        CHECK(run.execute({.program = "pwd"}).stdout_text == realized.cwd + "\n");
        (void)run.finish(run_outcome::succeeded);
    }
}

TEST_CASE("a workspace that cannot be realized is workspace_realization_failed", "[workspace][orchestrator]") {
    test::temp_dir dir("berth-ws");
    memory_store store;
    testing::manual_clock clock;
    run_orchestrator<local_stack> orch{store, clock, local_driver{}};
    auto const acq = orch.acquire_for_run({.company_id = "acme", .agent_id = std::nullopt, .heartbeat_run_id = "run-1"});
    try {
        (void)orch.realize_for_run({.env = acq.env,
                                    .lease = acq.lease,
                                    .workspace_cwd = dir.str(),
                                    .workspace = worktree_request(dir.path())});
        FAIL("realize_for_run did not throw");
    } catch (environment_run_error const& e) {
        CHECK(e.code() == environment_error_code::workspace_realization_failed);
        CHECK_THAT(e.what(), Catch::StartsWith("Failed to realize execution workspace for environment \"Local\" "
                                               "(local): Base cwd \"" + dir.str() + "\" is not inside a git repository"));
    }
    CHECK(store.list_execution_workspaces("acme", {}).empty());
}
