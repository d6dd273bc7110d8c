#pragma once
//! @file
//! berth::run_scope — one run's lease as an RAII object: acquired on construction, released by
//! finish(outcome), and released as `failed` if the scope is unwound by an exception (or as
//! `cancelled` if it is destroyed without finish() for any other reason), so no path leaves the
//! lease `active`. While it lives, the lease is renewed (berth::lease_renewer, every third of its
//! TTL); a lease taken away meanwhile (reaped, released by another) makes lost() true, and
//! finish() reports it as an error instead of a release (docs/reliability.md).
//!
//! @code
//! berth::run_scope run{orch, {.company_id = "c1", .agent_id = "a1", .heartbeat_run_id = "r1"}};
//! run.realize("/srv/work");
//! auto r = run.execute({.program = "make", .args = {"test"}});
//! auto released = run.finish(r.exit_code == 0 ? berth::run_outcome::succeeded : berth::run_outcome::failed);
//! @endcode

#include <berth/orchestrator/run_types.hpp>
#include <berth/recovery/renewer.hpp>  // lease_renewer (the lease is renewed while the scope lives)

#include <exception>  // std::uncaught_exceptions
#include <memory>     // std::unique_ptr
#include <optional>   // std::optional
#include <stop_token> // std::stop_token
#include <string>     // std::string
#include <utility>    // std::move, std::exchange

namespace berth {

template <class Orchestrator>
class run_scope {
public:
    /// Acquires the run's lease. @throws what Orchestrator::acquire_for_run throws (nothing to release then).
    run_scope(Orchestrator const& orch, acquire_for_run_request const& request)
        : orch_(&orch),
          acquisition_(orch.acquire_for_run(request)),
          company_id_(request.company_id),
          agent_id_(request.agent_id),
          run_id_(request.heartbeat_run_id),
          uncaught_(std::uncaught_exceptions()),
          renewer_(std::make_unique<lease_renewer<Orchestrator>>(orch, acquisition_.lease)) {}

    /// As above, calling `on_lost` (from the renewal thread) if the lease is taken away while the
    /// scope holds it, so that the run can stop its command at once.
    run_scope(Orchestrator const& orch, acquire_for_run_request const& request,
              typename lease_renewer<Orchestrator>::lost_handler on_lost)
        : orch_(&orch),
          acquisition_(orch.acquire_for_run(request)),
          company_id_(request.company_id),
          agent_id_(request.agent_id),
          run_id_(request.heartbeat_run_id),
          uncaught_(std::uncaught_exceptions()),
          renewer_(std::make_unique<lease_renewer<Orchestrator>>(orch, acquisition_.lease, std::move(on_lost))) {}

    run_scope(run_scope const&) = delete;
    run_scope& operator=(run_scope const&) = delete;
    run_scope(run_scope&& o) noexcept
        : orch_(std::exchange(o.orch_, nullptr)),
          acquisition_(std::move(o.acquisition_)),
          realization_(std::move(o.realization_)),
          company_id_(std::move(o.company_id_)),
          agent_id_(std::move(o.agent_id_)),
          run_id_(std::move(o.run_id_)),
          uncaught_(o.uncaught_),
          renewer_(std::move(o.renewer_)) {}
    run_scope& operator=(run_scope&&) = delete;

    ~run_scope() {
        if (!orch_) return;
        bool const unwinding = std::uncaught_exceptions() > uncaught_;
        (void)finish(unwinding ? run_outcome::failed : run_outcome::cancelled,
                     unwinding ? "run_scope_unwound" : "run_scope_abandoned");
    }

    [[nodiscard]] berth::acquisition const& acquisition() const noexcept { return acquisition_; }
    [[nodiscard]] environment const& env() const noexcept { return acquisition_.env; }
    /// The lease as last seen (after realize, with its realization metadata).
    [[nodiscard]] environment_lease const& lease() const noexcept {
        return realization_ ? realization_->lease : acquisition_.lease;
    }
    [[nodiscard]] std::optional<berth::realization> const& realization() const noexcept { return realization_; }
    [[nodiscard]] bool finished() const noexcept { return orch_ == nullptr; }
    /// True when the lease was taken away while the scope held it (see the file comment).
    [[nodiscard]] bool lost() const { return renewer_ && renewer_->lost(); }

    /// Realizes the workspace (see run_orchestrator::realize_for_run); `stop` cancels provisioning.
    berth::realization const& realize(std::string workspace_cwd, std::optional<std::string> provision_command = {},
                                      std::stop_token stop = {}) {
        realization_ = orch_->realize_for_run(realize_for_run_request{
            .env = acquisition_.env,
            .lease = lease(),
            .workspace_cwd = std::move(workspace_cwd),
            .execution_workspace_mode = acquisition_.execution_workspace_mode,
            .provision_command = std::move(provision_command),
            .stop = std::move(stop),
        });
        return *realization_;
    }

    /// Realizes an execution workspace (local environments: a git worktree or the project's
    /// checkout, provisioned and recorded; see realize_for_run_request::workspace).
    berth::realization const& realize(realize_workspace_request workspace) {
        auto cwd = workspace.base.base_cwd;
        realization_ = orch_->realize_for_run(realize_for_run_request{
            .env = acquisition_.env,
            .lease = lease(),
            .workspace_cwd = std::move(cwd),
            .execution_workspace_mode = acquisition_.execution_workspace_mode,
            .provision_command = std::nullopt,
            .workspace = std::move(workspace),
        });
        return *realization_;
    }

    /// Executes in the environment; a command without a cwd runs in the realized workspace.
    [[nodiscard]] command_result execute(command cmd) const {
        if (!cmd.cwd && realization_) cmd.cwd = realization_->cwd;
        return orch_->execute(acquisition_.env, lease(), cmd);
    }

    /// Ends the run: releases its leases by policy. Idempotent: a second call returns an empty result.
    release_result finish(run_outcome outcome, std::optional<std::string> failure_reason = {}) noexcept {
        if (!orch_) return {};
        auto const* orch = std::exchange(orch_, nullptr);
        if (renewer_) renewer_->stop();  // joined: no renewal races the release
        auto result = orch->release_for_run(release_for_run_request{
            .company_id = company_id_,
            .agent_id = agent_id_,
            .heartbeat_run_id = run_id_,
            .outcome = outcome,
            .failure_reason = std::move(failure_reason),
        });
        // A lease taken away is no release: say so, so that the run does not report success.
        bool const released = [&] {
            for (auto const& l : result.released)
                if (l.id == acquisition_.lease.id) return true;
            return false;
        }();
        if (!released) {
            try {
                auto message = renewer_ && renewer_->lost()
                                   ? renewer_->lost_reason()
                                   : "Lease " + acquisition_.lease.id + " was no longer active when its run ended.";
                result.errors.push_back(lease_error{acquisition_.lease.id, environment_error_code::lease_release_failed,
                                                    std::move(message), nullptr});
            } catch (...) {
                // out of memory: the missing lease in `released` still tells
            }
        }
        return result;
    }

private:
    Orchestrator const* orch_;
    berth::acquisition acquisition_;
    std::optional<berth::realization> realization_;
    std::string company_id_;
    nullable<std::string> agent_id_;
    std::string run_id_;
    int uncaught_;
    std::unique_ptr<lease_renewer<Orchestrator>> renewer_;
};

}  // namespace berth
