#pragma once
//! @file
//! berth::process::run — run one program to completion (vfork + exec, as posix_spawn does), with its output captured
//! under a deadline. The process layer of berth: the local driver's execute is this function, and
//! other layers (workspace provisioning, service supervision) build on it.
//!
//! @code
//! auto r = berth::process::run({.program = "git", .args = {"status", "--short"}, .cwd = "/srv/repo",
//!                               .timeout = std::chrono::seconds(30)},
//!                              {.inherit_sanitized_environment = true});
//! if (r.exit_code == 0) use(r.stdout_text);
//! @endcode
//!
//! What run() guarantees, for every return and every exception after the child started:
//! - the child is reaped (no zombie) and every descriptor run() opened is closed;
//! - the child runs in its own process group (its pid is the group id), so a timeout reaches its
//!   descendants too;
//! - the child's environment is exactly: the parent's minus secrets if (and only if)
//!   `options.inherit_sanitized_environment`, then `options.base_environment`, then `cmd.env`,
//!   each layer overriding the one before: nothing is inherited implicitly;
//! - the child starts with an empty signal mask and every signal at its default disposition,
//!   whatever the embedding application did with its own;
//! - the child dies with the thread that runs it (`options.die_with_parent`, PR_SET_PDEATHSIG);
//! - no SIGCHLD handler, no helper thread: the calling thread polls the pipes and a pidfd for the
//!   child's exit (or, where pidfd_open is refused — kernels before 5.3, strict seccomp
//!   profiles — asks waitid(WNOWAIT) every 10 ms).
//!
//! Standard and POSIX headers only (no fmt, no JSON): see model/command.hpp for the types.

#include <berth/detail/config.hpp>        // BERTH_DECL, BERTH_SEPARATE_COMPILATION
#include <berth/model/command.hpp>        // berth::command, berth::command_result
#include <berth/process/run_options.hpp>  // run_options

#include <cstddef>  // std::size_t

namespace berth::process {

/// Runs `cmd` to completion and returns how it ended.
///
/// - The program: used as given when it contains '/' (relative to `cmd.cwd` when set), else looked
///   up in the child environment's PATH (the system default path when it has none), before
///   spawning. argv[0] is `cmd.program` as given; `cmd.args` follow unchanged (no shell).
/// - `cmd.cwd`: the child's working directory when set, else the caller's.
/// - stdin: `cmd.stdin_data` written through a pipe, interleaved with reading the output (a large
///   input and a large output cannot deadlock); the pipe is closed once all is written, or when
///   the child stops reading. /dev/null when `stdin_data` is nullopt.
/// - stdout and stderr: captured through pipes; each keeps its first `cmd.max_output_bytes` bytes
///   and sets `stdout_truncated`/`stderr_truncated` past that, but keeps draining, so the child
///   never blocks on a full pipe. Every chunk (including the ones past the limit) is passed to
///   `cmd.on_output`, in order per stream, from the calling thread.
/// - Deadline: `cmd.timeout` after the start (a non-positive timeout means none, as for Node's
///   execFile). When it passes: SIGTERM to the process group and stdin closed, SIGKILL after
///   `options.kill_grace`, `timed_out = true`.
/// - Cancellation: when `cmd.stop` is requested, the same as a deadline at that moment, with
///   `cancelled = true` instead (a stop requested before the spawn ends the child at once).
/// - run() returns once the child has exited and both output pipes are closed: a background
///   process that keeps the child's stdout open keeps run() waiting until the deadline (upstream's
///   behaviour, like Node waiting for `close`). Processes of the group that closed their output are
///   left alone when the child exits normally.
/// - Result: `exit_code` (normal exit) or `signal` (killed), `duration` from spawn to reap.
///
/// @throws berth::process_error before anything runs when the program is not found or not
///         executable, the working directory does not exist or is not a directory, a string holds a
///         NUL byte, or an environment name is empty or contains '='; the message names the
///         program and the culprit. Also when posix_spawn fails or the system runs out of
///         descriptors.
/// @throws whatever `cmd.on_output` throws; the child's process group is SIGKILLed and the child
///         reaped first.
/// @throws std::bad_alloc
/// Thread safety: safe to call from many threads at once (all state is local; every descriptor is
/// O_CLOEXEC, so concurrently spawned children do not inherit each other's pipes). It briefly
/// blocks SIGPIPE in the calling thread around stdin writes (see detail/sigpipe.hpp).
[[nodiscard]] BERTH_DECL command_result run(command const& cmd, run_options const& options = {});

/// Sends `sig` to the process group (and the process) of every child that a run() in this
/// process is waiting for right now, and returns how many there were. For an application that
/// handles SIGINT/SIGTERM itself (berth-run's signal thread): the run's command gets the signal
/// as it would from a terminal, although it runs in a process group of its own. Thread-safe;
/// not async-signal-safe (call it from a thread that sigwait()s, not from a handler).
BERTH_DECL std::size_t signal_running(int sig) noexcept;

}  // namespace berth::process

// The definitions: here in header-only mode, compiled once in <berth/src.hpp> under
// BERTH_SEPARATE_COMPILATION (berth/detail/config.hpp), so that a TU that only calls run() does
// not parse the spawn layer (process/detail/spawn.hpp).
#ifndef BERTH_SEPARATE_COMPILATION
#include <berth/process/impl/spawn.hpp>
#endif
