#pragma once
//! @file
//! Upstream's plugin protocol as berth speaks it: the JSON-RPC 2.0 error codes, the plugin error
//! codes, the method names and the host's default timings. The values are upstream's
//! (`@paperclipai/plugin-sdk` `protocol.ts` and the server's `plugin-worker-manager.ts`), so that a
//! worker written with the SDK sees exactly what Paperclip's host sends it.
//!
//! Standard headers only: no JSON here.

#include <chrono>       // std::chrono::milliseconds
#include <cstddef>      // std::size_t
#include <string_view>  // std::string_view

namespace berth::plugins {

/// The JSON-RPC version every message carries.
inline constexpr std::string_view jsonrpc_version = "2.0";

/// Error codes: JSON-RPC 2.0's own, then the plugin codes upstream puts in the server-error range.
namespace codes {
inline constexpr int parse_error = -32700;
inline constexpr int invalid_request = -32600;
inline constexpr int method_not_found = -32601;
inline constexpr int invalid_params = -32602;
inline constexpr int internal_error = -32603;
/// The worker is not running or not reachable (it exited, it could not be started, its line broke
/// the protocol).
inline constexpr int worker_unavailable = -32000;
inline constexpr int capability_denied = -32001;
/// The worker's handler threw (the SDK's code for an untyped exception).
inline constexpr int worker_error = -32002;
/// No response within the call's timeout.
inline constexpr int timeout = -32003;
/// The worker does not implement the optional method (the SDK's `methodNotImplemented`).
inline constexpr int method_not_implemented = -32004;
inline constexpr int invocation_scope_denied = -32005;
inline constexpr int cross_tenant_config = -32006;
inline constexpr int unknown = -32099;
}  // namespace codes

/// upstream's name of a code ("WORKER_UNAVAILABLE", ...), or "UNKNOWN" for a code it does not name.
[[nodiscard]] constexpr std::string_view code_name(int code) noexcept {
    switch (code) {
        case codes::parse_error: return "PARSE_ERROR";
        case codes::invalid_request: return "INVALID_REQUEST";
        case codes::method_not_found: return "METHOD_NOT_FOUND";
        case codes::invalid_params: return "INVALID_PARAMS";
        case codes::internal_error: return "INTERNAL_ERROR";
        case codes::worker_unavailable: return "WORKER_UNAVAILABLE";
        case codes::capability_denied: return "CAPABILITY_DENIED";
        case codes::worker_error: return "WORKER_ERROR";
        case codes::timeout: return "TIMEOUT";
        case codes::method_not_implemented: return "METHOD_NOT_IMPLEMENTED";
        case codes::invocation_scope_denied: return "INVOCATION_SCOPE_DENIED";
        case codes::cross_tenant_config: return "CROSS_TENANT_CONFIG";
        default: return "UNKNOWN";
    }
}

/// Host→worker method names (the ones berth calls).
namespace methods {
inline constexpr std::string_view initialize = "initialize";
inline constexpr std::string_view health = "health";
inline constexpr std::string_view shutdown = "shutdown";
inline constexpr std::string_view environment_validate_config = "environmentValidateConfig";
inline constexpr std::string_view environment_probe = "environmentProbe";
inline constexpr std::string_view environment_acquire_lease = "environmentAcquireLease";
inline constexpr std::string_view environment_resume_lease = "environmentResumeLease";
inline constexpr std::string_view environment_release_lease = "environmentReleaseLease";
inline constexpr std::string_view environment_destroy_lease = "environmentDestroyLease";
inline constexpr std::string_view environment_realize_workspace = "environmentRealizeWorkspace";
inline constexpr std::string_view environment_execute = "environmentExecute";
inline constexpr std::string_view environment_sync_in = "environmentSyncIn";
inline constexpr std::string_view environment_sync_out = "environmentSyncOut";
}  // namespace methods

/// Worker→host notification that carries one output chunk of the execute call in flight
/// (`ctx.execution.log(stream, chunk)` in the SDK): `{stream, chunk}`, with the call's invocation
/// id in the envelope's `paperclipInvocationId`.
inline constexpr std::string_view execute_log_notification = "execute.log";
/// Worker→host notification of the SDK's `ctx.logger`: `{level, message, meta?}`.
inline constexpr std::string_view log_notification = "log";

/// The host's timings, as upstream's worker manager sets them.
namespace defaults {
/// A call's timeout when neither the call nor the host options give one (upstream's
/// DEFAULT_RPC_TIMEOUT_MS; the sandbox and plugin drivers pass `config.timeoutMs` instead).
inline constexpr std::chrono::milliseconds call_timeout{30'000};
/// No call waits longer than this, whatever it asks (upstream's MAX_RPC_TIMEOUT_MS, raised from 5
/// to 15 minutes upstream so that long plugin actions are not cut short).
inline constexpr std::chrono::milliseconds max_call_timeout{15 * 60 * 1'000};
/// The `initialize` call's timeout (upstream's INITIALIZE_TIMEOUT_MS).
inline constexpr std::chrono::milliseconds initialize_timeout{15'000};
/// How long stop() waits for `shutdown` and the exit that follows it (SHUTDOWN_DRAIN_MS).
inline constexpr std::chrono::milliseconds shutdown_drain{10'000};
/// From SIGTERM to SIGKILL (SIGTERM_GRACE_MS).
inline constexpr std::chrono::milliseconds sigterm_grace{5'000};
/// How much of the worker's stderr a failure message quotes (MAX_STDERR_EXCERPT_CHARS).
inline constexpr std::size_t stderr_excerpt_chars = 8'000;
/// The longest line berth reads from a worker. Upstream has no bound (a line is held in memory
/// until its newline); berth stops a worker that writes a longer one, and its calls fail.
inline constexpr std::size_t max_line_bytes = 64u << 20;
}  // namespace defaults

}  // namespace berth::plugins
