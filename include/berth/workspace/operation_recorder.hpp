#pragma once
//! @file
//! berth::operation_recorder — records every git and workspace command of a realization or a
//! cleanup as a `workspace_operations` row (upstream WorkspaceOperationRecorder): inserted
//! `running` with its phase, command, cwd and metadata before the command starts, then finished
//! with its status, exit code, the last 4 KiB of stdout and stderr and finished_at.
//!
//! @code
//! berth::operation_recorder rec{store, {.company_id = "c1", .heartbeat_run_id = "run-1"}};
//! rt.realize(request, &rec);
//! rec.attach_execution_workspace(record.id);   // operations recorded before the record existed
//! @endcode

#include <berth/concepts/clock.hpp>            // clock, system_clock
#include <berth/concepts/operation_store.hpp>  // operation_store
#include <berth/model/workspace.hpp>           // workspace_operation and its inputs

#include <cstddef>      // std::size_t
#include <exception>    // std::exception
#include <functional>   // std::function
#include <mutex>        // std::mutex, std::lock_guard
#include <optional>     // std::optional
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <utility>      // std::move
#include <vector>       // std::vector

namespace berth {

/// Whom the operations of a recorder belong to.
struct operation_context {
    std::string company_id{};
    std::optional<std::string> execution_workspace_id{};
    std::optional<std::string> heartbeat_run_id{};
    std::optional<std::string> issue_id{};
};

/// What a recorded command did.
struct operation_outcome {
    workspace_operation_status status = workspace_operation_status::succeeded;
    std::optional<int> exit_code{};
    std::string stdout_text{};
    std::string stderr_text{};
    /// A line berth adds about the step ("Created git worktree at ..."), kept as metadata `message`.
    std::optional<std::string> system_message{};
};

/// The size of each output excerpt kept on an operation.
inline constexpr std::size_t operation_excerpt_bytes = 4096;

/// The last `operation_excerpt_bytes` of `text`, starting on a UTF-8 character boundary; nullopt
/// when empty.
[[nodiscard]] inline std::optional<std::string> operation_excerpt(std::string_view text) {
    if (text.empty()) return std::nullopt;
    if (text.size() <= operation_excerpt_bytes) return std::string(text);
    auto tail = text.substr(text.size() - operation_excerpt_bytes);
    while (!tail.empty() && (static_cast<unsigned char>(tail.front()) & 0xC0) == 0x80) tail.remove_prefix(1);
    return std::string(tail);
}

/// Stores operations in any berth::operation_store. Thread-safe; the store must outlive it.
class operation_recorder {
public:
    /// Timestamps from the wall clock (berth::system_clock).
    template <operation_store S>
    operation_recorder(S& store, operation_context context)
        : operation_recorder(store, std::move(context), [] { return system_clock{}.now(); }) {}

    /// Timestamps from `clk`, which must outlive the recorder (e.g. a testing::manual_clock).
    template <operation_store S, clock C>
    operation_recorder(S& store, operation_context context, C const& clk)
        : operation_recorder(store, std::move(context), [&clk] { return clk.now(); }) {}

    operation_recorder(operation_recorder const&) = delete;
    operation_recorder& operator=(operation_recorder const&) = delete;

    [[nodiscard]] operation_context context() const {
        std::lock_guard lock(mutex_);
        return context_;
    }

    /// Records one step: inserts it `running`, calls `run`, stores its outcome. When `run` throws,
    /// the operation is stored `failed` with the exception's message as its stderr excerpt and
    /// the exception propagates. Returns the stored operation.
    /// @throws store_error from the store; whatever `run` throws.
    workspace_operation record(workspace_operation_phase phase, std::optional<std::string> command, std::string cwd,
                               std::optional<json_object> metadata, std::function<operation_outcome()> const& run) {
        new_workspace_operation n;
        {
            std::lock_guard lock(mutex_);
            n = new_workspace_operation{.company_id = context_.company_id,
                                        .execution_workspace_id = context_.execution_workspace_id,
                                        .heartbeat_run_id = context_.heartbeat_run_id,
                                        .issue_id = context_.issue_id,
                                        .phase = phase,
                                        .command = std::move(command),
                                        .cwd = std::move(cwd),
                                        .metadata = metadata};
        }
        auto const started = begin_(n, now_());
        {
            std::lock_guard lock(mutex_);
            ids_.push_back(started.id);
        }
        operation_outcome outcome;
        try {
            outcome = run();
        } catch (std::exception const& e) {
            (void)update_(started.id, workspace_operation_patch{.status = workspace_operation_status::failed,
                                                                .stderr_excerpt = operation_excerpt(e.what()),
                                                                .finished_at = now_()},
                          now_());
            throw;
        }
        if (outcome.system_message) {
            if (!metadata) metadata = json_object{};
            (*metadata)["message"] = *outcome.system_message;
        }
        auto done = update_(started.id, workspace_operation_patch{.status = outcome.status,
                                                                  .exit_code = outcome.exit_code,
                                                                  .stdout_excerpt = operation_excerpt(outcome.stdout_text),
                                                                  .stderr_excerpt = operation_excerpt(outcome.stderr_text),
                                                                  .metadata = metadata,
                                                                  .finished_at = now_()},
                          now_());
        return done ? std::move(*done) : started;
    }

    /// Upstream attachExecutionWorkspaceId: sets the execution workspace of every operation this
    /// recorder stored so far, and of those it stores later.
    /// @throws store_error from the store.
    void attach_execution_workspace(std::string const& execution_workspace_id) {
        std::vector<std::string> ids;
        {
            std::lock_guard lock(mutex_);
            context_.execution_workspace_id = execution_workspace_id;
            ids = ids_;
        }
        for (auto const& id : ids)
            (void)update_(id, workspace_operation_patch{.execution_workspace_id = execution_workspace_id}, now_());
    }

    /// The ids of the operations this recorder stored, oldest first.
    [[nodiscard]] std::vector<std::string> operation_ids() const {
        std::lock_guard lock(mutex_);
        return ids_;
    }

private:
    template <operation_store S>
    operation_recorder(S& store, operation_context context, std::function<timestamp()> now)
        : context_(std::move(context)),
          now_(std::move(now)),
          begin_([&store](new_workspace_operation const& n, timestamp t) { return store.begin_operation(n, t); }),
          update_([&store](std::string const& id, workspace_operation_patch const& p, timestamp t) {
              return store.update_operation(id, p, t);
          }) {}

    mutable std::mutex mutex_;
    operation_context context_;
    std::vector<std::string> ids_;
    std::function<timestamp()> now_;
    std::function<workspace_operation(new_workspace_operation const&, timestamp)> begin_;
    std::function<std::optional<workspace_operation>(std::string const&, workspace_operation_patch const&, timestamp)>
        update_;
};

}  // namespace berth
