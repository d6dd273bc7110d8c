#pragma once
// A store with a long history, for the tests and the benchmark of issue 22 (a year of runs must
// not slow today's run): N past leases over 10 companies' local environments, most ended
// (released, then some failed or expired), and per environment the newest 5 still holding — 3
// active (the newest expiring in an hour) and 2 retained — each lease with its acquire and end
// events as the orchestrator writes them. Lease k of an environment is used at
// history_start + (k * 10 + company) seconds, so the timestamps interleave like real traffic.
//
// fill_through_api writes through any store's public API (memory_store: about 2 µs a lease);
// fill_sqlite_raw (sqlite_history_fill.hpp) writes the same rows into a sqlite_store's file with
// the raw C API in one transaction (the store's own calls take a transaction per write).

#include <berth/model/activity.hpp>
#include <berth/model/environment.hpp>
#include <berth/model/ids.hpp>
#include <berth/model/lease.hpp>
#include <berth/model/workspace.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace berth::testing_support {

inline timestamp history_start() { return timestamp::from_micros(1767225600000000); }  // 2026-01-01

struct history {
    std::vector<environment> environments;  ///< one per company, company i at index i
    std::string some_run;                   ///< the run of one ended lease in the middle
    std::string some_lease;                 ///< that lease
    timestamp end;                          ///< just after the newest lease's last use
};

/// The status lease k (of `per_env`) of an environment ends in (nullopt: still active).
inline std::optional<lease_status> history_status(int k, int per_env) {
    if (k >= per_env - 3) return std::nullopt;
    if (k >= per_env - 5) return lease_status::retained;
    if (k % 17 == 0) return lease_status::failed;
    if (k % 23 == 0) return lease_status::expired;
    return lease_status::released;
}

inline activity_event history_event(std::string const& company, std::string const& lease, std::string const& run,
                                    char const* action, timestamp at) {
    return activity_event{.id = new_id(),
                          .company_id = company,
                          .actor_type = "agent",
                          .actor_id = "agent-1",
                          .action = action,
                          .entity_type = "environment_lease",
                          .entity_id = lease,
                          .agent_id = "agent-1",
                          .run_id = run,
                          .details = json_object{{"driver", "local"}, {"leasePolicy", "ephemeral"}},
                          .created_at = at};
}

/// Fills `store` (empty) through its public API.
template <class Store>
history fill_through_api(Store& store, int leases) {
    history h;
    for (int c = 0; c < 10; ++c)
        h.environments.push_back(store.ensure_local_environment("company-" + std::to_string(c), history_start()));
    int const per_env = leases / 10;
    for (int i = 0; i < leases; ++i) {
        auto const& env = h.environments[static_cast<std::size_t>(i % 10)];
        int const k = i / 10;
        auto const at = history_start() + std::chrono::seconds(i);
        auto const status = history_status(k, per_env);
        std::string const id = new_id(), run = "run-" + std::to_string(i);
        std::optional<timestamp> expires;
        if (!status && k == per_env - 1) expires = at + std::chrono::hours(1);
        store.acquire_lease(new_lease{.id = id,
                                      .company_id = env.company_id,
                                      .environment_id = env.id,
                                      .issue_id = "issue-" + std::to_string(i % 1000),
                                      .heartbeat_run_id = run,
                                      .provider = "local",
                                      .expires_at = expires,
                                      .metadata = json_object{{"driver", "local"}}},
                            at, history_event(env.company_id, id, run, actions::lease_acquired, at));
        if (status)
            store.transition_lease(lease_transition{.id = id, .expected_epoch = 1, .to = *status}, at,
                                   history_event(env.company_id, id, run, actions::lease_released, at));
        if (i == leases / 2) h.some_run = run, h.some_lease = id;
    }
    h.end = history_start() + std::chrono::seconds(leases);
    return h;
}

/// The execution workspaces and operations of a long history: `count` workspaces over the 10
/// companies, one a second from history_start, each with one worktree_prepare operation of its
/// own run ("ws-run-<i>"). All but the newest 3 of each company are archived; every 7th never
/// had a last_used_at (a null sorts last in the list order).
struct workspace_history {
    std::string some_run;        ///< the run of one operation in the middle
    std::string some_workspace;  ///< that operation's workspace
};

/// Whether workspace i (of `count`, company i % 10) is one of its company's newest 3.
inline bool workspace_is_recent(int i, int count) { return i / 10 >= count / 10 - 3; }

inline new_execution_workspace history_workspace(int i, int count) {
    return new_execution_workspace{
        .company_id = "company-" + std::to_string(i % 10),
        .project_id = "project-" + std::to_string(i % 3),
        .source_issue_id = "issue-" + std::to_string(i),
        .name = "ws-" + std::to_string(i),
        .status = workspace_is_recent(i, count) ? execution_workspace_status::active : execution_workspace_status::archived,
        .cwd = "/tmp/ws-" + std::to_string(i),
        .branch_name = "branch-" + std::to_string(i)};
}

/// Fills `store` with the workspace history through its public API (a store modelling
/// execution_workspace_store and operation_store).
template <class Store>
workspace_history fill_workspaces_through_api(Store& store, int count) {
    workspace_history h;
    for (int i = 0; i < count; ++i) {
        auto const at = history_start() + std::chrono::seconds(i);
        auto const w = store.create_execution_workspace(history_workspace(i, count), at);
        if (i % 7 == 0) store.update_execution_workspace(w.id, {.last_used_at = std::make_optional(std::optional<timestamp>{})}, at);
        auto const run = "ws-run-" + std::to_string(i);
        store.begin_operation({.company_id = w.company_id,
                               .execution_workspace_id = w.id,
                               .heartbeat_run_id = run,
                               .issue_id = w.source_issue_id,
                               .command = "git worktree add"},
                              at);
        if (i == count / 2) h.some_run = run, h.some_workspace = w.id;
    }
    return h;
}

}  // namespace berth::testing_support
