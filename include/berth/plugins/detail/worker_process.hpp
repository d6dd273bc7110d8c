#pragma once
// berth::plugins::detail::worker_process — a plugin worker child with its three pipes, started so
// that it dies with the thread that started it.
//
// Why not process::child: a worker must not outlive its host, even when the host is SIGKILLed
// (no destructor runs then). PR_SET_PDEATHSIG does that, and posix_spawn has no way to set it, so
// this spawns with fork + execve. Between the two only async-signal-safe calls run (the child of a
// multi-threaded fork may not allocate): everything exec needs — the path, argv, envp — is built
// before fork, by the process layer's own helpers, so the checks and messages are the same as
// process::run's.
//
// PR_SET_PDEATHSIG fires when the *thread* that forked exits, not the process. The worker host
// therefore forks from its reader thread, which lives exactly as long as the worker.

#include <berth/error.hpp>                     // berth::process_error
#include <berth/model/command.hpp>             // berth::command
#include <berth/process/detail/unique_fd.hpp>  // unique_fd, make_pipe, errno_text
#include <berth/process/detail/spawn.hpp>      // the spawn layer's helpers (also under BERTH_SEPARATE_COMPILATION)
#include <berth/process/spawn.hpp>             // run_options

#include <cerrno>   // errno
#include <csignal>  // sigaction, sigprocmask, SIGKILL
#include <string>   // std::string
#include <utility>  // std::exchange
#include <vector>   // std::vector

#include <fcntl.h>      // open, O_RDONLY
#include <sys/prctl.h>  // prctl, PR_SET_PDEATHSIG
#include <sys/types.h>  // pid_t
#include <sys/wait.h>   // waitpid
#include <unistd.h>     // fork, execve, dup2, chdir, setpgid, getppid, _exit, read, write

namespace berth::plugins::detail {

using process::detail::unique_fd;

/// A started worker: its pid (also its process group) and our ends of its pipes.
struct worker_process {
    pid_t pid = 0;
    unique_fd stdin_fd;   ///< write end
    unique_fd stdout_fd;  ///< read end
    unique_fd stderr_fd;  ///< read end
};

/// Starts `cmd` (program, args, cwd, env) with piped stdin, stdout and stderr, in a process group
/// of its own, with an empty signal mask and default dispositions, and SIGKILL as its parent-death
/// signal (bound to the calling thread, see above).
/// @throws berth::process_error before anything runs, as process::run would (program not found,
///         bad cwd, NUL bytes), or when exec fails in the child (the message names the program).
[[nodiscard]] inline worker_process spawn_worker(command const& cmd, process::run_options const& options) {
    namespace pd = process::detail;
    pd::validate_command(cmd);
    if (cmd.cwd) pd::check_working_directory(cmd.program, *cmd.cwd);
    std::string const executable = pd::executable_for(cmd, options);
    pd::environment_block const environment = pd::make_environment_block(cmd.program, options, cmd.env);
    std::vector<char*> const argv = pd::argv_of(cmd);
    char const* const cwd = cmd.cwd ? cmd.cwd->c_str() : nullptr;

    pd::pipe_pair in = pd::make_pipe("stdin");
    pd::pipe_pair out = pd::make_pipe("stdout");
    pd::pipe_pair err = pd::make_pipe("stderr");
    pd::pipe_pair report = pd::make_pipe("exec status");  // CLOEXEC: EOF once exec succeeded
    pid_t const parent = ::getpid();

    pid_t const pid = ::fork();
    if (pid < 0) throw process_error("cannot start " + pd::single_quoted(cmd.program) + ": fork failed: " +
                                     pd::errno_text(errno));
    if (pid == 0) {
        // ---- child: async-signal-safe calls only --------------------------------------------------
        auto fail = [&](int stage) {
            int const e[2] = {stage, errno};
            [[maybe_unused]] auto const n = ::write(report.write.get(), e, sizeof e);
            ::_exit(127);
        };
        if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail(0);
        if (::getppid() != parent) ::_exit(127);  // the host died before prctl: nobody to serve
        ::setpgid(0, 0);
        struct sigaction dfl {};
        dfl.sa_handler = SIG_DFL;
        for (int s = 1; s < NSIG; ++s)
            if (s != SIGKILL && s != SIGSTOP) ::sigaction(s, &dfl, nullptr);
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        if (::dup2(in.read.get(), STDIN_FILENO) < 0 || ::dup2(out.write.get(), STDOUT_FILENO) < 0 ||
            ::dup2(err.write.get(), STDERR_FILENO) < 0)
            fail(1);
        if (cwd != nullptr && ::chdir(cwd) != 0) fail(2);
        ::execve(executable.c_str(), argv.data(), environment.envp.data());
        fail(3);
    }

    // ---- parent ----------------------------------------------------------------------------------
    report.write.reset();
    in.read.reset();
    out.write.reset();
    err.write.reset();
    int failure[2] = {0, 0};
    ssize_t got;
    while ((got = ::read(report.read.get(), failure, sizeof failure)) < 0 && errno == EINTR) {
    }
    if (got > 0) {
        while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
        }
        static constexpr char const* stages[] = {"prctl(PR_SET_PDEATHSIG)", "dup2", "chdir", "exec"};
        int const stage = failure[0] >= 0 && failure[0] < 4 ? failure[0] : 3;
        throw process_error("cannot run " + pd::single_quoted(cmd.program) +
                            (executable != cmd.program ? " (" + pd::single_quoted(executable) + ")" : std::string()) +
                            (cwd != nullptr ? " in " + pd::single_quoted(cwd) : std::string()) + ": " + stages[stage] +
                            " failed: " + pd::errno_text(failure[1]));
    }
    return worker_process{pid, std::move(in.write), std::move(out.read), std::move(err.read)};
}

}  // namespace berth::plugins::detail
