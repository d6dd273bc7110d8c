#pragma once
//! @file
//! berth::plugins::worker_host — runs one plugin worker (a Paperclip plugin written with
//! `@paperclipai/plugin-sdk`, or any program speaking the same protocol) and calls it, as
//! upstream's `PluginWorkerManager` does: newline-delimited JSON-RPC 2.0 over the worker's stdin
//! and stdout, `initialize` first, `shutdown` on stop.
//!
//! @code
//! berth::plugins::worker_host host({.command = {.program = "node", .args = {"worker.mjs"}},
//!                                   .plugin_id = "acme.sandbox", .manifest = manifest});
//! host.start();                                           // spawn + initialize
//! auto lease = host.call("environmentAcquireLease", params);
//! auto r = host.call("environmentExecute", exec_params,
//!                    {.on_log = [](std::string_view stream, std::string_view chunk) { ... }});
//! host.stop();                                            // shutdown, then SIGTERM, then SIGKILL
//! @endcode
//!
//! The protocol, as upstream's host speaks it:
//! - Requests `{"jsonrpc":"2.0","id":N,"method":M,"params":P,"paperclipInvocation":{"id":I,"scope":S}}`
//!   with increasing integer ids; responses are matched by id, in whatever order they come. The
//!   invocation id lets the worker tag what it sends while serving the call; the scope is
//!   `{companyId}` when the params carry one.
//! - `initialize` with `{manifest, config, instanceInfo, apiVersion: 1, databaseNamespace: null}`;
//!   the reply must say `ok: true`, and its `supportedMethods` is kept (supports()).
//! - An error response becomes an rpc_error with the worker's code and message.
//! - Worker→host requests are answered by `options.host_methods`; a method that is not there is
//!   refused with METHOD_NOT_FOUND `Host does not handle method "<m>"`, as upstream refuses a
//!   capability it does not grant.
//! - Notifications: `execute.log` chunks go to the call whose invocation id they carry (its
//!   `on_log`, on the calling thread, before the call returns); `log` and the others go to
//!   `options.on_notification`.
//! - A line that is not JSON-RPC is counted and dropped (upstream logs "unparseable message from
//!   worker"); a line longer than `max_line_bytes` stops the worker (its calls fail with
//!   WORKER_UNAVAILABLE) rather than growing memory without bound.
//! - A worker that exits fails every call in flight with WORKER_UNAVAILABLE
//!   `Worker process exited (code=C, signal=S)`, followed by the tail of its stderr; the next call
//!   starts a new worker (and initializes it) first.
//!
//! Threads: one reader thread per worker process, started with it and joined by the host (at
//! restart, stop() or destruction). It also forks the worker, so that the worker's parent-death
//! signal (SIGKILL) fires exactly when the host's reader goes away: a host that is killed takes its
//! workers with it. Every member function is safe to call from many threads at once; one worker
//! serves any number of concurrent calls.
//!
//! Who reads the worker's stdout (leader/follower): while calls are in flight, one of the calling
//! threads waiting for its reply (the leader) reads it and handles every line — its own reply, the
//! replies and chunks of the other calls (handed to their threads), worker→host requests and
//! notifications — so that a call's reply reaches its thread without a hand-off from another
//! thread. When the leader's call ends, another waiting call takes over. The reader thread always
//! watches stderr and the worker's exit, and reads stdout itself once no call has led for a while
//! (about 20 ms), so that what an idle worker writes is still handled.

#include <berth/model/command.hpp>             // berth::command
#include <berth/plugins/error.hpp>             // rpc_error
#include <berth/plugins/protocol.hpp>          // defaults, codes
#include <berth/process/detail/unique_fd.hpp>  // unique_fd
#include <berth/process/environment.hpp>       // environment_map

#include <boost/json/object.hpp>  // boost::json::object
#include <boost/json/value.hpp>   // boost::json::value

#include <atomic>              // std::atomic
#include <chrono>              // std::chrono::milliseconds
#include <condition_variable>  // std::condition_variable
#include <cstddef>             // std::size_t
#include <cstdint>             // std::int64_t, std::uint64_t
#include <functional>          // std::function
#include <map>                 // std::map
#include <memory>              // std::shared_ptr
#include <mutex>               // std::mutex
#include <optional>            // std::optional
#include <string>              // std::string
#include <string_view>         // std::string_view
#include <unordered_map>       // std::unordered_map
#include <vector>              // std::vector

#include <sys/types.h>  // pid_t

namespace berth::plugins {

/// Answers one worker→host request: takes the params, returns the result (or throws; an
/// rpc_error keeps its code, anything else becomes INTERNAL_ERROR with its message).
/// Runs on the thread reading the worker's output (the reader thread, or a calling thread while it
/// waits for its own reply): keep it short, and never call the same host from it.
using host_method = std::function<boost::json::value(boost::json::value const& params)>;

/// How to run and talk to one worker.
struct worker_options {
    /// The worker: `{.program = "node", .args = {"dist/worker.js"}}`, or any executable.
    /// `command.env` is set on top of the base environment below; `cwd` is honoured.
    berth::command command{};
    /// Names the worker in messages (upstream's plugin id, e.g. "acme.sandbox").
    std::string plugin_id = "plugin";
    /// Sent in `initialize` (upstream's PaperclipPluginManifestV1). Read by drivers to resolve
    /// `environmentDrivers`.
    boost::json::object manifest{};
    /// The plugin's instance config, sent in `initialize`.
    boost::json::object config{};
    /// `initialize`'s `instanceInfo`.
    std::string instance_id = "berth";
    std::string host_version = "berth";
    /// The worker's base environment. Upstream gives a worker only HOME, PATH, NODE_PATH, TZ
    /// (default UTC), NODE_ENV (default production) and PAPERCLIP_PLUGIN_ID, never the whole
    /// environment (no secrets); so does berth when this is nullopt (the default).
    std::optional<process::environment_map> environment{};

    /// A call's timeout unless the call gives its own; capped at defaults::max_call_timeout.
    std::chrono::milliseconds call_timeout = defaults::call_timeout;
    std::chrono::milliseconds initialize_timeout = defaults::initialize_timeout;
    std::chrono::milliseconds shutdown_drain = defaults::shutdown_drain;
    std::chrono::milliseconds sigterm_grace = defaults::sigterm_grace;
    std::size_t max_line_bytes = defaults::max_line_bytes;

    /// Worker→host methods the host grants, by name. Anything else: METHOD_NOT_FOUND.
    std::map<std::string, host_method, std::less<>> host_methods{};
    /// Notifications other than `execute.log` (`log`, `streams.*`, ...): method and params.
    /// Runs on the thread reading the worker's output (see host_method); must not block or call
    /// the host.
    std::function<void(std::string_view method, boost::json::value const& params)> on_notification{};
    /// Each line the worker writes to stderr (upstream logs them as `[plugin stderr] <line>`).
    /// Runs on the reader thread; must not block or call the host.
    std::function<void(std::string_view line)> on_stderr{};
};

/// Per-call options.
struct call_options {
    /// Overrides worker_options::call_timeout (capped at defaults::max_call_timeout).
    std::optional<std::chrono::milliseconds> timeout{};
    /// Receives the call's `execute.log` chunks (`stream` is "stdout" or "stderr"), in order, on
    /// the calling thread, before call() returns.
    std::function<void(std::string_view stream, std::string_view chunk)> on_log{};
};

/// Counters, for tests and diagnostics.
struct worker_diagnostics {
    std::optional<pid_t> pid;             ///< the running worker, if any
    std::uint64_t starts = 0;             ///< workers started (1 + restarts)
    std::uint64_t crashes = 0;            ///< workers that exited without stop()
    std::uint64_t malformed_lines = 0;    ///< lines dropped as not JSON-RPC
    std::uint64_t unmatched_responses = 0;  ///< responses for no call in flight (late, after a timeout)
    std::size_t calls_in_flight = 0;
};

class worker_host {
public:
    explicit worker_host(worker_options options);
    /// stop()s the worker.
    ~worker_host();
    worker_host(worker_host const&) = delete;
    worker_host& operator=(worker_host const&) = delete;

    /// Starts the worker and initializes it, unless one is running. call() does this itself.
    /// @throws rpc_error WORKER_UNAVAILABLE `Worker initialize failed for "<id>": <why>` when the
    ///         program cannot be run, exits, answers `ok: false` or an error, or does not answer
    ///         within initialize_timeout; the worker is killed then.
    void start();

    /// Stops the worker as upstream does: `shutdown` (waiting up to shutdown_drain for the reply
    /// and the exit), then SIGTERM to its process group, SIGKILL after sigterm_grace; then joins
    /// the reader. Calls in flight fail with WORKER_UNAVAILABLE. A later call starts a new worker.
    /// Never throws.
    void stop() noexcept;

    /// Calls `method` with `params` and returns the result.
    /// @throws rpc_error with the worker's code and message for an error response;
    ///         TIMEOUT `RPC call "<m>" timed out after <n>ms`; WORKER_UNAVAILABLE when the worker
    ///         exits before answering, or cannot be started.
    /// @throws whatever `options.on_log` throws (the call is abandoned; a late reply is dropped).
    boost::json::value call(std::string_view method, boost::json::value const& params,
                            call_options const& options = {});

    /// The worker's `health` (upstream's default reply is `{status: "ok"}`).
    boost::json::value health() { return call(methods::health, boost::json::object{}); }

    /// Whether the running worker listed `method` in `initialize`'s `supportedMethods`
    /// (starting the worker first if none is running).
    [[nodiscard]] bool supports(std::string_view method);
    /// `supportedMethods` of the running worker (starting it first if none is running).
    [[nodiscard]] std::vector<std::string> supported_methods();

    /// Whether a worker is running and initialized now.
    [[nodiscard]] bool running() const;
    [[nodiscard]] worker_diagnostics diagnostics() const;
    [[nodiscard]] worker_options const& options() const noexcept { return options_; }

private:
    struct incarnation;
    struct pending_call;

    std::shared_ptr<incarnation> ensure_running();
    std::shared_ptr<incarnation> start_locked();
    boost::json::value call_on(std::shared_ptr<incarnation> const& inc, std::string_view method,
                               boost::json::value const& params, std::chrono::milliseconds timeout,
                               call_options const& options);
    void reader_loop(incarnation* inc, process::detail::unique_fd err);
    void read_stdout(incarnation& inc) noexcept;
    void stdout_data(incarnation& inc, std::string_view data);
    void lead(incarnation& inc, pending_call& p, std::chrono::steady_clock::time_point deadline) noexcept;
    void give_up_lead_locked(incarnation& inc, pending_call const& p) noexcept;
    void handle_line(incarnation& inc, std::string_view line) noexcept;
    void handle_response(boost::json::object& msg);
    void handle_worker_request(incarnation& inc, boost::json::object const& msg);
    void handle_notification(boost::json::object const& msg);
    void worker_exited(incarnation& inc, int status);
    void fail_calls_of(incarnation const& inc, int code, std::string const& message);
    void stop_locked() noexcept;
    void join_reader(std::shared_ptr<incarnation> const& inc) noexcept;

    worker_options options_;
    std::string invocation_prefix_;

    mutable std::mutex lifecycle_;  ///< serializes start and stop
    mutable std::mutex mutex_;      ///< everything below
    std::shared_ptr<incarnation> current_;
    std::vector<std::string> supported_methods_;
    std::int64_t next_id_ = 1;
    std::unordered_map<std::int64_t, pending_call*> pending_;
    std::uint64_t starts_ = 0;
    std::uint64_t crashes_ = 0;
    std::uint64_t malformed_lines_ = 0;
    std::uint64_t unmatched_responses_ = 0;
};

}  // namespace berth::plugins

#include <berth/plugins/impl/worker_host.hpp>
