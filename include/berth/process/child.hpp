#pragma once
//! @file
//! berth::process::child — start a long-lived program over posix_spawn and keep a handle on it:
//! the supervisor of runtime services (berth/services/) builds on it. Where process::run waits
//! for the end, start() returns as soon as the program runs.
//!
//! @code
//! auto c = berth::process::child::start({.program = "/bin/sh", .args = {"-lc", "exec my-server"}},
//!                                        {.base_environment = env});
//! read(c.stdout_fd(), ...);        // the caller drains the pipes (poll them with c.pidfd())
//! c.signal_group(SIGTERM);
//! int status = c.wait();
//! @endcode
//!
//! Guarantees, as for run(): the child leads its own process group (pid == group id), starts
//! with an empty signal mask and default dispositions, gets exactly the environment it is given
//! (`run_options`), stdin is /dev/null, stdout and stderr are pipes whose read ends (O_CLOEXEC)
//! the handle owns. A handle that is destroyed without wait() or detach() SIGKILLs the group and
//! reaps the child: no zombie and no runaway group by default.

#include <berth/model/command.hpp>    // berth::command
#include <berth/process/detail/spawn.hpp>  // the spawn layer's helpers (also under BERTH_SEPARATE_COMPILATION)
#include <berth/process/spawn.hpp>    // run_options

#include <csignal>   // kill
#include <optional>  // std::optional
#include <utility>   // std::exchange

#include <sys/types.h>  // pid_t

namespace berth::process {

class child {
public:
    /// Spawns `cmd.program` with `cmd.args` in `cmd.cwd` (stdin /dev/null; `cmd.timeout`,
    /// `cmd.stdin_data` and `cmd.on_output` are not used: the caller owns the pipes).
    /// @throws berth::process_error as run() does, before anything runs.
    [[nodiscard]] static child start(command const& cmd, run_options const& options = {});

    child(child&& o) noexcept
        : pid_(std::exchange(o.pid_, 0)), out_(std::move(o.out_)), err_(std::move(o.err_)), pidfd_(std::move(o.pidfd_)) {}
    child& operator=(child&&) = delete;
    child(child const&) = delete;
    child& operator=(child const&) = delete;
    ~child();

    /// The child's pid (also its process group id); 0 once reaped or detached.
    [[nodiscard]] pid_t pid() const noexcept { return pid_; }
    /// Read ends of the child's stdout and stderr (-1 once closed by close_output()).
    [[nodiscard]] int stdout_fd() const noexcept { return out_.get(); }
    [[nodiscard]] int stderr_fd() const noexcept { return err_.get(); }
    /// A pidfd (readable once the child exited), or -1 where the kernel has none.
    [[nodiscard]] int pidfd() const noexcept { return pidfd_.get(); }
    /// Hands over our read end of the child's stdout (the handle no longer closes it).
    [[nodiscard]] detail::unique_fd take_stdout() noexcept { return std::move(out_); }
    /// Hands over our read end of the child's stderr.
    [[nodiscard]] detail::unique_fd take_stderr() noexcept { return std::move(err_); }
    /// Hands over the pidfd.
    [[nodiscard]] detail::unique_fd take_pidfd() noexcept { return std::move(pidfd_); }
    /// Closes our read ends of the output pipes.
    void close_output() noexcept {
        out_.reset();
        err_.reset();
    }

    /// Sends `sig` to the child's process group and to the child. No-op once reaped or detached.
    void signal_group(int sig) const noexcept {
        if (pid_ <= 0) return;
        ::kill(-pid_, sig);
        ::kill(pid_, sig);
    }

    /// The wait status if the child has exited (and reaps it), else nullopt. Never blocks.
    [[nodiscard]] std::optional<int> try_wait() noexcept;
    /// Blocks until the child exits; returns its wait status.
    /// @throws berth::process_error when the status was taken elsewhere (SIGCHLD ignored).
    int wait();
    /// Gives up the handle: the child keeps running and is not killed at destruction (its pipes
    /// are closed). Returns its pid.
    pid_t detach() noexcept {
        close_output();
        pidfd_.reset();
        return std::exchange(pid_, 0);
    }

private:
    child(pid_t pid, detail::unique_fd out, detail::unique_fd err, detail::unique_fd pidfd) noexcept
        : pid_(pid), out_(std::move(out)), err_(std::move(err)), pidfd_(std::move(pidfd)) {}

    pid_t pid_ = 0;
    detail::unique_fd out_;
    detail::unique_fd err_;
    detail::unique_fd pidfd_;
};

// ---- definitions ---------------------------------------------------------------------------------

inline child child::start(command const& cmd, run_options const& options) {
    detail::validate_command(cmd);
    if (cmd.cwd) detail::check_working_directory(cmd.program, *cmd.cwd);
    std::string const executable = detail::executable_for(cmd, options);
    detail::environment_block const environment = detail::make_environment_block(cmd.program, options, cmd.env);
    std::vector<char*> const argv = detail::argv_of(cmd);

    detail::pipe_pair out = detail::make_pipe("stdout");
    detail::pipe_pair err = detail::make_pipe("stderr");
    detail::spawn_file_actions actions;
    if (cmd.cwd) actions.chdir(cmd.cwd->c_str());
    actions.open(STDIN_FILENO, "/dev/null", O_RDONLY);
    actions.dup2(out.write.get(), STDOUT_FILENO);
    actions.dup2(err.write.get(), STDERR_FILENO);
    detail::spawn_attributes attributes;
    pid_t pid = -1;
    if (int const e = ::posix_spawn(&pid, executable.c_str(), actions.get(), attributes.get(), argv.data(),
                                    environment.envp.data());
        e != 0)
        throw process_error("cannot run " + detail::single_quoted(cmd.program) +
                            (cmd.cwd ? " in " + detail::single_quoted(*cmd.cwd) : std::string()) + ": " +
                            detail::errno_text(e));
    return child(pid, std::move(out.read), std::move(err.read), detail::open_pidfd(pid));
}

inline child::~child() {
    if (pid_ <= 0) return;
    signal_group(SIGKILL);
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
}

inline std::optional<int> child::try_wait() noexcept {
    if (pid_ <= 0) return std::nullopt;
    int status = 0;
    pid_t const r = ::waitpid(pid_, &status, WNOHANG);
    if (r != pid_) return std::nullopt;
    pid_ = 0;
    return status;
}

inline int child::wait() {
    if (pid_ <= 0) throw process_error("child::wait: no child to wait for");
    int status = 0;
    pid_t r;
    while ((r = ::waitpid(pid_, &status, 0)) < 0 && errno == EINTR) {
    }
    int const e = errno;
    pid_t const pid = std::exchange(pid_, 0);
    if (r != pid)
        throw process_error("child process " + std::to_string(pid) + " could not be waited for (" +
                            detail::errno_text(e) + ")");
    return status;
}

}  // namespace berth::process
