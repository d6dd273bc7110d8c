#pragma once
//! @file
//! berth::recover — the one call that puts right what interrupted runs left behind
//! (docs/reliability.md). Call it when an orchestrating process starts (berth-run does), and from
//! time to time in a long-lived one:
//!
//! 1. every `active` lease whose holder is dead (on this host: its pid no longer runs the process
//!    that acquired it, berth/recovery/holder.hpp) or whose expiry passed (any host) is ended
//!    through its driver (destroy, else release): `expired` with failure reason `holder_lost` or
//!    `lease_expired`, or `pending_cleanup` (cleanup `failed`) when the driver's cleanup fails;
//! 2. every `pending_cleanup` lease is retried the same way, until its cleanup succeeds;
//! 3. the execution workspaces of those runs that were to be removed when their run ended
//!    (realize_workspace_request::remove_when_run_ends) are cleaned up through the guarded cleanup
//!    (never a worktree a live run holds: workspace_lock), worktrees whose creation the dead run
//!    did not finish included; kept ones stay as they are;
//! 4. the runtime services are reconciled (`options.reconcile_services`, e.g. a supervisor's
//!    reconcile_on_startup): rows of dead processes are marked stopped, orphans adopted or stopped.
//!
//! Leases of live holders are left alone, whatever their age. Safe to run from several processes
//! at once: every lease move is a compare-and-set on its epoch (the loser sees stale_epoch, which
//! recover() does not count as an error).
//!
//! @code
//! auto report = berth::recover(orch, {.reconcile_services = [&] { (void)supervisor.reconcile_on_startup(); }});
//! @endcode

#include <berth/error.hpp>                // store_error, store_errc
#include <berth/orchestrator/error.hpp>   // message_of
#include <berth/model/lease.hpp>          // environment_lease
#include <berth/orchestrator/run_types.hpp>  // lease_error, release_result
#include <berth/process/proc.hpp>         // host_identity
#include <berth/recovery/holder.hpp>      // liveness_of_holder
#include <berth/workspace/manager.hpp>    // workspace_manager

#include <boost/json/value.hpp>  // boost::json::value

#include <exception>  // std::exception_ptr, std::current_exception
#include <functional> // std::function
#include <set>        // std::set
#include <string>     // std::string
#include <vector>     // std::vector

namespace berth {

struct recovery_options {
    /// Clean up the execution workspaces of the runs whose leases recovery ended (step 3).
    bool clean_workspaces = true;
    /// Step 4: reconciles the runtime services (nullptr: skipped). Exceptions are reported.
    std::function<void()> reconcile_services{};
};

/// What recover() did.
struct recovery_report {
    std::vector<environment_lease> ended{};        ///< leases moved (expired, or pending_cleanup)
    std::size_t holder_lost = 0;                   ///< of which, because the holder died
    std::size_t expired = 0;                       ///< of which, because the TTL passed
    std::size_t cleanup_retried = 0;               ///< pending_cleanup leases retried
    std::size_t left_alive = 0;                    ///< active leases of live holders, not touched
    std::vector<std::string> workspaces_cleaned{};  ///< paths removed
    std::vector<std::string> warnings{};
    std::vector<lease_error> errors{};
};

namespace detail::recovery {

[[nodiscard]] inline bool json_true(json_object const* o, std::string_view key) {
    if (!o) return false;
    auto const* v = o->if_contains(key);
    return v && v->is_bool() && v->get_bool();
}

[[nodiscard]] inline std::optional<std::string> json_string(json_object const* o, std::string_view key) {
    if (!o) return std::nullopt;
    auto const* v = o->if_contains(key);
    if (!v || !v->is_string()) return std::nullopt;
    return std::string(v->get_string());
}

/// Step 3 for one run: its execution workspaces that were to be removed at its end.
template <class Orchestrator>
void clean_run_workspaces(Orchestrator const& orch, std::string const& run_id, recovery_report& report) {
    using store_t = typename Orchestrator::store_type;
    // Only a stack whose driver manages execution workspaces (the local driver) has any.
    if constexpr (execution_workspace_store<store_t> && operation_store<store_t> &&
                  requires { orch.workspace_driver().workspaces(); }) {
        auto& store = orch.store();
        auto const& runtime = orch.workspace_driver().workspaces();
        workspace_manager<store_t, typename Orchestrator::clock_type> wm{store, runtime, orch.clock()};
        std::set<std::string> seen;
        for (auto const& op : store.list_operations({.heartbeat_run_id = run_id, .limit = no_limit})) {
            json_object const* md = op.metadata ? &*op.metadata : nullptr;
            if (op.execution_workspace_id) {
                if (!seen.insert(*op.execution_workspace_id).second) continue;
                auto const ew = store.get_execution_workspace(*op.execution_workspace_id);
                if (!ew || ew->status != execution_workspace_status::active) continue;
                json_object const* ew_md = ew->metadata ? &*ew->metadata : nullptr;
                if (!json_true(ew_md, "removeWhenRunEnds")) continue;  // kept (--keep): never removed
                auto const done = wm.cleanup(ew->id, {.heartbeat_run_id = run_id,
                                                      .cleanup_reason = "recovered: run " + run_id +
                                                                        " ended without cleaning up"});
                if (done.result.cleaned && done.result.cleaned_path)
                    report.workspaces_cleaned.push_back(*done.result.cleaned_path);
                for (auto const& w : done.result.warnings) report.warnings.push_back(w);
                continue;
            }
            // A worktree the run was creating (or provisioning) when it died: no record exists.
            if (op.phase != workspace_operation_phase::worktree_prepare || !json_true(md, "created")) continue;
            auto const path = json_string(md, "worktreePath");
            auto const repo = json_string(md, "repoRoot");
            if (!path || !repo || !seen.insert(*path).second) continue;
            (void)runtime.discard_unfinished(*repo, *path, report.warnings);
            if (!json_true(md, "removeWhenRunEnds")) continue;
            execution_workspace w{};
            w.id = "(unrecorded)";
            w.company_id = op.company_id;
            w.provider_type = workspace_provider_type::git_worktree;
            w.provider_ref = *path;
            w.cwd = *path;
            w.branch_name = json_string(md, "branchName");
            json_object wmd{{"createdByRuntime", true},
                            {"branchCreatedByRuntime", !json_true(md, "reusedExistingBranch")},
                            {"repoRoot", *repo}};
            if (auto sha = json_string(md, "baseSha")) wmd["branchHeadSha"] = *sha;
            w.metadata = std::move(wmd);
            auto const done = runtime.cleanup({.workspace = w, .project_workspace_cwd = *repo});
            if (done.cleaned) report.workspaces_cleaned.push_back(*path);
            for (auto const& warning : done.warnings) report.warnings.push_back(warning);
        }
    } else {
        (void)orch;
        (void)run_id;
        (void)report;
    }
}

}  // namespace detail::recovery

/// Step 3 alone, for one run that is known to be over (berth-run after its realization was
/// interrupted): removes what the run was to remove at its end, discards a worktree it did not
/// finish creating, keeps kept ones. Never touches a worktree another live run holds.
/// @throws store_error when the run's operations cannot be read.
template <class Orchestrator>
recovery_report clean_up_run_workspaces(Orchestrator const& orch, std::string const& run_id) {
    recovery_report report;
    detail::recovery::clean_run_workspaces(orch, run_id, report);
    return report;
}

/// Recovers what interrupted runs left behind (see the file comment). Never throws for a
/// lease's, a workspace's or the services' failure: they are reported, and a later call retries.
/// @throws store_error only when the leases to look at cannot even be listed.
template <class Orchestrator>
recovery_report recover(Orchestrator const& orch, recovery_options const& options = {}) {
    recovery_report report;
    auto& store = orch.store();
    auto const now = orch.clock().now();
    static_assert(requires { store.list_recoverable_leases(process::host_identity(), now); },
                  "berth::recover: the orchestrator's store has no list_recoverable_leases(holder_host, now) "
                  "(the active leases held on this host, those whose TTL passed, and the pending_cleanup ones; "
                  "see berth/stores/memory.hpp)");
    std::vector<environment_lease> const leases = store.list_recoverable_leases(process::host_identity(), now);
    std::set<std::string> runs;
    for (auto const& lease : leases) {
        std::string reason;
        if (lease.status == lease_status::pending_cleanup) {
            reason = lease.failure_reason.value_or("lease_expired");
            ++report.cleanup_retried;
        } else {
            auto const liveness = liveness_of_holder(lease);
            bool const expired = lease.expires_at && *lease.expires_at <= now;
            if (liveness == holder_liveness::dead) {
                reason = "holder_lost";
            } else if (expired) {
                reason = "lease_expired";
            } else {
                ++report.left_alive;
                continue;
            }
        }
        auto const r = orch.end_abandoned_lease(lease, reason);
        for (auto const& e : r.errors) {
            bool raced = false;
            try {
                if (e.error) std::rethrow_exception(e.error);
            } catch (store_error const& se) {
                raced = se.code() == store_errc::stale_epoch;  // another recovery or the holder was first
            } catch (...) {
            }
            if (!raced) report.errors.push_back(e);
        }
        for (auto const& l : r.released) {
            if (lease.status == lease_status::active) {
                if (reason == "holder_lost") ++report.holder_lost;
                else ++report.expired;
            }
            report.ended.push_back(l);
            if (l.heartbeat_run_id && l.status == lease_status::expired) runs.insert(*l.heartbeat_run_id);
        }
    }
    if (options.clean_workspaces) {
        for (auto const& run : runs) {
            try {
                detail::recovery::clean_run_workspaces(orch, run, report);
            } catch (...) {
                report.errors.push_back(lease_error{"*", environment_error_code::lease_cleanup_failed,
                                                    "Cleaning up the workspaces of run " + run + ": " +
                                                        message_of(std::current_exception()),
                                                    std::current_exception()});
            }
        }
    }
    if (options.reconcile_services) {
        try {
            options.reconcile_services();
        } catch (...) {
            report.errors.push_back(lease_error{"*", environment_error_code::lease_cleanup_failed,
                                                "Reconciling runtime services: " + message_of(std::current_exception()),
                                                std::current_exception()});
        }
    }
    return report;
}

}  // namespace berth
