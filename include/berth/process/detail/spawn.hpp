#pragma once
// berth::process::detail — the spawn layer under process::run (process/spawn.hpp), shared with
// process::child (process/child.hpp) and the plugin worker (plugins/detail/worker_process.hpp):
// command checks, the child's environment block, vfork + exec, the running set, the wait loop.
// Included by spawn.hpp's definitions (impl/spawn.hpp) and by those two; not a public interface.

#include <berth/model/command.hpp>             // berth::command, berth::command_result
#include <berth/process/run_options.hpp>       // run_options

#include <berth/error.hpp>                     // berth::process_error
#include <berth/process/detail/resolve.hpp>    // check_working_directory, resolve_program, single_quoted
#include <berth/process/detail/sigpipe.hpp>    // write_without_sigpipe
#include <berth/process/detail/unique_fd.hpp>  // unique_fd, make_pipe, set_nonblocking, errno_text
#include <berth/process/environment.hpp>       // for_each_inheritable, environment_map

#include <algorithm>         // std::min, std::clamp
#include <array>             // std::array (the read buffer, the pollfd set)
#include <cerrno>            // errno, EINTR, EAGAIN
#include <chrono>            // std::chrono::steady_clock, ceil, duration_cast
#include <climits>           // INT_MAX
#include <csignal>           // kill, SIGTERM, SIGKILL, sigset_t, sigemptyset, sigfillset
#include <cstddef>           // std::size_t
#include <cstdint>           // std::uint64_t (the eventfd counter)
#include <cstring>           // std::strncmp
#include <initializer_list>  // the {&out, &err} loop
#include <mutex>             // std::mutex, std::lock_guard (the running set)
#include <set>               // std::set (the running set)
#include <optional>          // std::optional
#include <stop_token>        // std::stop_callback
#include <string>            // std::string, std::to_string
#include <string_view>       // std::string_view
#include <utility>           // std::move, std::exchange
#include <vector>            // std::vector

#include <fcntl.h>        // O_RDONLY
#include <poll.h>         // poll, pollfd, POLLIN, POLLOUT, POLLHUP, POLLERR
#include <sys/eventfd.h>  // eventfd (cancellation wakes the loop)
#include <spawn.h>        // posix_spawn, posix_spawnattr_*, posix_spawn_file_actions_*
#include <sys/prctl.h>    // prctl, PR_SET_PDEATHSIG
#include <sys/syscall.h>  // SYS_pidfd_open
#include <sys/types.h>    // pid_t
#include <sys/wait.h>     // waitpid, waitid, WIFEXITED, WEXITSTATUS, WIFSIGNALED, WTERMSIG
#include <unistd.h>       // syscall, read

namespace berth::process {
namespace detail {

using steady = std::chrono::steady_clock;

/// `t + d`, saturating at time_point::max() (a huge timeout must not overflow into the past).
[[nodiscard]] inline steady::time_point add_saturating(steady::time_point t, std::chrono::milliseconds d) noexcept {
    if (d.count() <= 0) return t;
    auto const room = std::chrono::duration_cast<std::chrono::milliseconds>(steady::time_point::max() - t);
    return d >= room ? steady::time_point::max() : t + std::chrono::duration_cast<steady::duration>(d);
}

[[nodiscard]] inline bool contains_nul(std::string const& s) noexcept { return s.find('\0') != std::string::npos; }

/// Rejects what exec cannot carry faithfully: C strings end at NUL, and an environment entry is
/// split at its first '='. Silently truncating an argument would run a different command.
inline void validate_command(command const& cmd) {
    if (contains_nul(cmd.program)) throw process_error("cannot run a program whose name contains a NUL byte");
    for (auto const& arg : cmd.args)
        if (contains_nul(arg))
            throw process_error("cannot run " + single_quoted(cmd.program) + ": an argument contains a NUL byte");
    if (cmd.cwd && contains_nul(*cmd.cwd))
        throw process_error("cannot run " + single_quoted(cmd.program) + ": the working directory contains a NUL byte");
}

inline void validate_env_entry(std::string const& program, std::string const& name, std::string const& value) {
    if (name.empty() || name.find('=') != std::string::npos || contains_nul(name))
        throw process_error("cannot run " + single_quoted(program) + ": invalid environment variable name " +
                            single_quoted(name));
    if (contains_nul(value))
        throw process_error("cannot run " + single_quoted(program) + ": the value of environment variable " +
                            single_quoted(name) + " contains a NUL byte");
}

/// The child's envp and the storage of the entries run() composes itself.
struct environment_block {
    std::vector<std::string> composed;  ///< `NAME=value` of base_environment and cmd.env
    std::vector<char*> envp;            ///< into `environ` and into `composed`; null-terminated
};

/// The child's environment: the inheritable part of `environ` (if asked), then `base`, then
/// `overrides`, each overriding the one before. Inherited entries are passed as the pointers
/// `environ` holds, not copied: building the environment costs no allocation per variable.
[[nodiscard]] inline environment_block make_environment_block(std::string const& program, run_options const& options,
                                                              environment_map const& overrides) {
    environment_map const& base = options.base_environment;
    environment_block block;
    block.composed.reserve(base.size() + overrides.size());

    // base with overrides on top: both maps are sorted by name, so one merge walk does it.
    auto compose = [&](auto const& entry) {
        validate_env_entry(program, entry.first, entry.second);
        std::string kv;
        kv.reserve(entry.first.size() + 1 + entry.second.size());
        kv.append(entry.first).append(1, '=').append(entry.second);
        block.composed.push_back(std::move(kv));
    };
    auto b = base.begin();
    auto o = overrides.begin();
    while (b != base.end() || o != overrides.end()) {
        if (o == overrides.end() || (b != base.end() && b->first < o->first)) {
            compose(*b++);
        } else {
            if (b != base.end() && b->first == o->first) ++b;  // overridden
            compose(*o++);
        }
    }

    if (options.inherit_sanitized_environment) {
        // A name set by either map is left out here. The maps are not transparent (their key
        // type is std::string), so a look-up costs a string; skip it when both maps are empty.
        auto set_by_maps = [&](std::string_view name) {
            if (base.empty() && overrides.empty()) return false;
            std::string const key(name);
            return base.count(key) != 0 || overrides.count(key) != 0;
        };
        for_each_inheritable([&](char* entry, std::string_view name) {
            if (!set_by_maps(name)) block.envp.push_back(entry);
        });
    }
    block.envp.reserve(block.envp.size() + block.composed.size() + 1);
    for (auto& kv : block.composed) block.envp.push_back(kv.data());
    block.envp.push_back(nullptr);
    return block;
}

/// The child's PATH value, or nullopt when its environment has none (same layering as above).
[[nodiscard]] inline std::optional<std::string_view> child_path_variable(run_options const& options,
                                                                         environment_map const& overrides) noexcept {
    if (auto it = overrides.find("PATH"); it != overrides.end()) return it->second;
    if (auto it = options.base_environment.find("PATH"); it != options.base_environment.end()) return it->second;
    if (options.inherit_sanitized_environment) {
        static_assert(!is_secret_env_name("PATH"), "PATH is inherited whenever the environment is");
        for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry)
            if (std::strncmp(*entry, "PATH=", 5) == 0) return std::string_view(*entry + 5);
    }
    return std::nullopt;
}

/// The path to spawn: only a program without '/' needs the child's PATH (and its look-up).
[[nodiscard]] inline std::string executable_for(command const& cmd, run_options const& options) {
    bool const searched = cmd.program.find('/') == std::string::npos;
    return resolve_program(cmd.program, searched ? child_path_variable(options, cmd.env) : std::nullopt, cmd.cwd);
}

/// argv: the program as given, then the arguments. posix_spawn takes `char* const[]` for historical
/// reasons; it does not write through the pointers.
[[nodiscard]] inline std::vector<char*> argv_of(command const& cmd) {
    std::vector<char*> argv;
    argv.reserve(cmd.args.size() + 2);
    argv.push_back(const_cast<char*>(cmd.program.c_str()));
    for (auto const& arg : cmd.args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    return argv;
}

inline void check_spawn_call(int err, char const* what) {
    if (err != 0) throw process_error(std::string(what) + " failed: " + errno_text(err));
}

/// posix_spawn_file_actions_t, destroyed on scope exit.
class spawn_file_actions {
public:
    spawn_file_actions() {
        check_spawn_call(::posix_spawn_file_actions_init(&actions_), "posix_spawn_file_actions_init");
    }
    ~spawn_file_actions() { ::posix_spawn_file_actions_destroy(&actions_); }
    spawn_file_actions(spawn_file_actions const&) = delete;
    spawn_file_actions& operator=(spawn_file_actions const&) = delete;

    /// dup2 also clears FD_CLOEXEC on `target`, so only the three standard descriptors survive exec.
    void dup2(int fd, int target) {
        check_spawn_call(::posix_spawn_file_actions_adddup2(&actions_, fd, target), "posix_spawn_file_actions_adddup2");
    }
    void open(int target, char const* path, int flags) {
        check_spawn_call(::posix_spawn_file_actions_addopen(&actions_, target, path, flags, 0),
                         "posix_spawn_file_actions_addopen");
    }
    void chdir(char const* dir) {
        check_spawn_call(::posix_spawn_file_actions_addchdir_np(&actions_, dir),
                         "posix_spawn_file_actions_addchdir_np");
    }
    [[nodiscard]] posix_spawn_file_actions_t const* get() const noexcept { return &actions_; }

private:
    posix_spawn_file_actions_t actions_;
};

/// posix_spawnattr_t for berth's children: a new process group led by the child, an empty signal
/// mask, and every signal at its default disposition (an application that ignores SIGPIPE or
/// SIGINT must not pass that on to `yes | head` or to a test runner).
class spawn_attributes {
public:
    spawn_attributes() {
        check_spawn_call(::posix_spawnattr_init(&attr_), "posix_spawnattr_init");
        sigset_t none;
        sigemptyset(&none);
        sigset_t all;
        sigfillset(&all);
        int const flags = POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
        int err = ::posix_spawnattr_setflags(&attr_, static_cast<short>(flags));
        if (err == 0) err = ::posix_spawnattr_setpgroup(&attr_, 0);  // 0: the child's own pid
        if (err == 0) err = ::posix_spawnattr_setsigmask(&attr_, &none);
        if (err == 0) err = ::posix_spawnattr_setsigdefault(&attr_, &all);
        if (err != 0) {
            ::posix_spawnattr_destroy(&attr_);
            check_spawn_call(err, "posix_spawnattr_set*");
        }
    }
    ~spawn_attributes() { ::posix_spawnattr_destroy(&attr_); }
    spawn_attributes(spawn_attributes const&) = delete;
    spawn_attributes& operator=(spawn_attributes const&) = delete;
    [[nodiscard]] posix_spawnattr_t const* get() const noexcept { return &attr_; }

private:
    posix_spawnattr_t attr_;
};

/// What the child does between vfork and exec (see vfork_spawn).
struct spawn_plan {
    char const* path;
    char* const* argv;
    char* const* envp;
    char const* cwd;  ///< nullptr: the caller's
    int stdin_fd;     ///< -1: /dev/null
    int stdout_fd;
    int stderr_fd;
    bool die_with_parent;
    pid_t parent;
};

/// `fd` onto `target` in the child; dup2 of a descriptor onto itself would keep its FD_CLOEXEC.
inline bool child_dup2(int fd, int target) noexcept {
    if (fd == target) return ::fcntl(fd, F_SETFD, 0) == 0;
    return ::dup2(fd, target) == target;
}

/// Starts `plan.path` as posix_spawn would (the child leads a new process group, has an empty
/// signal mask and every signal at its default disposition) and, when `plan.die_with_parent`,
/// with PR_SET_PDEATHSIG = SIGKILL, which posix_spawn cannot set: a child must not outlive the
/// thread that waits for it (a kill -9 of berth would otherwise leave `git worktree add`, or the
/// run's command, working on). vfork: the child borrows the parent's memory until exec, so it
/// only makes system calls, and every signal is blocked around the call so that no handler of
/// the parent runs on the child's side. Returns the pid, or -errno when the child could not exec.
[[gnu::noinline]] inline pid_t vfork_spawn(spawn_plan const& plan) noexcept {
    sigset_t all, old;
    sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &old);
    volatile int child_errno = 0;
    pid_t const pid = ::vfork();
    if (pid == 0) {
        struct sigaction dfl {};
        dfl.sa_handler = SIG_DFL;
        for (int sig = 1; sig < NSIG; ++sig)
            if (sig != SIGKILL && sig != SIGSTOP) ::sigaction(sig, &dfl, nullptr);  // 32, 33: glibc's, refused
        int err = 0;
        if (::setpgid(0, 0) != 0) err = errno;
        if (err == 0 && plan.die_with_parent) {
            if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) err = errno;
            else if (::getppid() != plan.parent) err = ESRCH;  // the parent died before the prctl
        }
        if (err == 0 && plan.cwd != nullptr && ::chdir(plan.cwd) != 0) err = errno;
        if (err == 0) {
            if (plan.stdin_fd >= 0) {
                if (!child_dup2(plan.stdin_fd, STDIN_FILENO)) err = errno;
            } else {
                int const null = ::open("/dev/null", O_RDONLY);  // not O_CLOEXEC: it becomes stdin
                if (null < 0) err = errno;
                else if (null != STDIN_FILENO) {
                    if (::dup2(null, STDIN_FILENO) != STDIN_FILENO) err = errno;
                    ::close(null);
                }
            }
        }
        if (err == 0 && !child_dup2(plan.stdout_fd, STDOUT_FILENO)) err = errno;
        if (err == 0 && !child_dup2(plan.stderr_fd, STDERR_FILENO)) err = errno;
        if (err == 0) {
            sigset_t none;
            sigemptyset(&none);
            ::sigprocmask(SIG_SETMASK, &none, nullptr);
            ::execve(plan.path, plan.argv, plan.envp);
            err = errno;
        }
        child_errno = err;
        ::_exit(127);
    }
    int const vfork_errno = errno;
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    if (pid < 0) return -vfork_errno;
    if (child_errno != 0) {
        while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
        }
        return -child_errno;
    }
    return pid;
}

/// The process groups of the children run() waits for in this process, for signal_running().
/// A child leaves the set before it is reaped, so a pid in the set never names another process.
struct running_set {
    std::mutex mutex;
    std::set<pid_t> groups;
};
inline running_set& running_children() {
    static running_set set;
    return set;
}

/// A started child that is not reaped yet. If run() leaves by an exception (a throwing on_output,
/// a failed poll), the destructor SIGKILLs the child's whole group and reaps the child, so no path
/// leaves a zombie or a runaway process group behind.
class child_process {
public:
    explicit child_process(pid_t pid) noexcept : pid_(pid) {
        try {
            std::lock_guard lock(running_children().mutex);
            running_children().groups.insert(pid_);
        } catch (...) {
            // Out of memory: this child just cannot be reached by signal_running().
        }
    }
    child_process(child_process const&) = delete;
    child_process& operator=(child_process const&) = delete;
    ~child_process() {
        if (pid_ <= 0) return;
        forget();
        signal_group(SIGKILL);
        while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
        }
    }

    [[nodiscard]] pid_t pid() const noexcept { return pid_; }

    /// Sends `sig` to the child's process group, and to the child itself in case it moved to
    /// another group (setpgid): the child must always get the SIGKILL, or run() could wait
    /// forever. The child is not reaped before the end of run(), so its pid stays reserved (as a
    /// pid and as a group id) and cannot name an unrelated process. ESRCH (nobody left in the
    /// group) is not an error.
    void signal_group(int sig) const noexcept {
        ::kill(-pid_, sig);
        ::kill(pid_, sig);
    }

    /// Whether the child has exited, without reaping it (WNOWAIT): the fallback when pidfd_open is
    /// unavailable (kernels before 5.3).
    [[nodiscard]] bool has_exited() const noexcept {
        siginfo_t info{};
        return ::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid_;
    }

    /// Reaps the child (blocking) and returns its wait status.
    /// @throws berth::process_error if the status was taken by someone else (SIGCHLD set to SIG_IGN
    ///         by the application, or a waitpid(-1) in another thread).
    int reap() {
        forget();
        int status = 0;
        pid_t r;
        while ((r = ::waitpid(pid_, &status, 0)) < 0 && errno == EINTR) {
        }
        int const err = errno;
        pid_t const pid = std::exchange(pid_, 0);
        if (r != pid)
            throw process_error("child process " + std::to_string(pid) + " could not be waited for (" +
                                errno_text(err) + "): its exit status was taken elsewhere (is SIGCHLD ignored?)");
        return status;
    }

private:
    void forget() noexcept {
        std::lock_guard lock(running_children().mutex);
        running_children().groups.erase(pid_);
    }

    pid_t pid_;
};

/// A pidfd for the child (Linux ≥ 5.3): poll() reports it readable once the child has exited, so the
/// deadline loop learns of the exit without polling or a SIGCHLD handler. Always O_CLOEXEC.
/// Invalid (and the loop falls back to waitid(WNOWAIT) checks) when the kernel lacks it.
[[nodiscard]] inline unique_fd open_pidfd(pid_t pid) noexcept {
#ifdef SYS_pidfd_open
    return unique_fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
#else
    (void)pid;
    return unique_fd();
#endif
}

/// One captured output stream: the parent's read end and the kept bytes.
struct output_capture {
    output_stream stream;
    unique_fd fd;
    std::size_t limit;
    std::string text{};
    bool truncated = false;

    /// Keeps the first `limit` bytes, flags the rest, and forwards every chunk to `on_output`.
    void consume(std::string_view chunk, command const& cmd) {
        std::size_t const room = limit - std::min(limit, text.size());
        if (chunk.size() > room) truncated = true;
        text.append(chunk.data(), std::min(room, chunk.size()));
        if (cmd.on_output) cmd.on_output(stream, chunk);
    }
};

/// Without a pidfd the loop wakes up this often to ask whether the child has exited.
inline constexpr int exit_check_interval_ms = 10;

/// Wakes run()'s poll loop when a command's stop is requested: writes to an eventfd in the poll set.
struct stop_wakeup {
    int fd;
    void operator()() const noexcept {
        std::uint64_t const one = 1;
        [[maybe_unused]] auto const n = ::write(fd, &one, sizeof one);
    }
};

/// How far the deadline handling has gone.
enum class kill_phase { none, terminated, killed, abandoned };

/// How run() learns that the child has exited.
enum class exit_watch {
    pidfd,    ///< a pidfd in the poll set; falls back to `polling` when pidfd_open fails
    polling,  ///< waitid(WNOWAIT) every exit_check_interval_ms (kernels before 5.3, seccomp
              ///< profiles that refuse pidfd_open); the tests force it to cover that path
};

/// run(), with the exit watch chosen by the caller.
inline command_result run_with(command const& cmd, run_options const& options, exit_watch watch) {

    // ---- checks that name the culprit, before anything runs ---------------------------------------
    validate_command(cmd);
    if (cmd.cwd) check_working_directory(cmd.program, *cmd.cwd);
    std::string const executable = executable_for(cmd, options);
    environment_block const environment = make_environment_block(cmd.program, options, cmd.env);
    std::vector<char*> const argv = argv_of(cmd);

    // ---- pipes and spawn ---------------------------------------------------------------------------
    output_capture out{output_stream::stdout_stream, {}, cmd.max_output_bytes};
    output_capture err{output_stream::stderr_stream, {}, cmd.max_output_bytes};
    pipe_pair out_pipe = make_pipe("stdout");
    pipe_pair err_pipe = make_pipe("stderr");
    pipe_pair in_pipe;
    if (cmd.stdin_data) in_pipe = make_pipe("stdin");

    spawn_plan const plan{.path = executable.c_str(),
                          .argv = argv.data(),
                          .envp = environment.envp.data(),
                          .cwd = cmd.cwd ? cmd.cwd->c_str() : nullptr,
                          .stdin_fd = cmd.stdin_data ? in_pipe.read.get() : -1,
                          .stdout_fd = out_pipe.write.get(),
                          .stderr_fd = err_pipe.write.get(),
                          .die_with_parent = options.die_with_parent,
                          .parent = ::getpid()};

    auto const start = steady::now();
    pid_t const pid = vfork_spawn(plan);
    if (pid < 0) {
        // The child reports what failed between vfork and exec (it has already been reaped): a
        // chdir that lost a race with rmdir, ENOEXEC, ETXTBSY, ...
        throw process_error("cannot run " + single_quoted(cmd.program) +
                            (executable != cmd.program ? " (" + single_quoted(executable) + ")" : std::string()) +
                            (cmd.cwd ? " in " + single_quoted(*cmd.cwd) : std::string()) + ": " + errno_text(-pid));
    }
    child_process child(pid);

    // Our copy of the child's stdin end goes now (the child must see EOF when we close ours).
    // Our copies of its output ends stay open until the child has exited: until then EOF cannot
    // arrive, so a command that ends normally wakes this thread once (the pidfd) instead of twice
    // (EOF on the pipes, then the exit) — measured 2 % of a whole `true` run. Once the child has
    // exited they are closed, and EOF follows at once unless a background process still holds a
    // pipe (then run() waits for it, see spawn.hpp).
    unique_fd out_write_end = std::move(out_pipe.write);
    unique_fd err_write_end = std::move(err_pipe.write);
    in_pipe.read.reset();
    // The read ends stay blocking: only this thread reads them, and only after poll() reported
    // them readable (data or EOF), so a read never blocks; that saves four fcntl calls per run.
    out.fd = std::move(out_pipe.read);
    err.fd = std::move(err_pipe.read);
    unique_fd in = std::move(in_pipe.write);
    std::string_view pending_input;
    if (in) {
        pending_input = *cmd.stdin_data;
        if (pending_input.empty())
            in.reset();  // EOF at once
        else
            set_nonblocking(in);
    }
    unique_fd pidfd = watch == exit_watch::pidfd ? open_pidfd(pid) : unique_fd();
    // Cancellation: an eventfd the stop callback writes to (from whichever thread requests stop).
    unique_fd stop_fd;
    std::optional<std::stop_callback<stop_wakeup>> on_stop;
    if (cmd.stop.stop_possible()) {
        stop_fd = unique_fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
        if (!stop_fd) throw process_error("eventfd failed while running " + single_quoted(cmd.program) + ": " + errno_text(errno));
        on_stop.emplace(cmd.stop, stop_wakeup{stop_fd.get()});
    }

    // ---- drain, feed and watch the deadline -----------------------------------------------------
    command_result result;
    bool exited = false;
    kill_phase phase = kill_phase::none;
    steady::time_point next_step = cmd.timeout.count() > 0 ? add_saturating(start, cmd.timeout)
                                                           : steady::time_point::max();
    std::array<char, 64 * 1024> buffer;  // one pipe's default capacity

    while (out.fd || err.fd || !exited) {
        auto const now = steady::now();
        if (now >= next_step) {
            switch (phase) {
                case kill_phase::none:
                    if (!result.cancelled) result.timed_out = true;
                    child.signal_group(SIGTERM);
                    in.reset();
                    phase = kill_phase::terminated;
                    next_step = add_saturating(now, options.kill_grace);
                    break;
                case kill_phase::terminated:
                    child.signal_group(SIGKILL);
                    phase = kill_phase::killed;
                    next_step = add_saturating(now, options.kill_grace);
                    break;
                case kill_phase::killed:
                    // One grace after SIGKILL a pipe is still open: a process outside the group (one
                    // that called setsid) holds it. Stop reading; the child itself got SIGKILL, and
                    // the loop now only waits for its exit.
                    out.fd.reset();
                    err.fd.reset();
                    phase = kill_phase::abandoned;
                    next_step = steady::time_point::max();
                    break;
                case kill_phase::abandoned: next_step = steady::time_point::max(); break;
            }
            continue;
        }

        std::array<pollfd, 5> fds{};
        std::size_t n = 0;
        auto watch = [&](unique_fd const& fd, short events) -> pollfd* {
            if (!fd) return nullptr;
            fds[n] = pollfd{fd.get(), events, 0};
            return &fds[n++];
        };
        pollfd* const out_poll = watch(out.fd, POLLIN);
        pollfd* const err_poll = watch(err.fd, POLLIN);
        pollfd* const in_poll = watch(in, POLLOUT);
        pollfd* const exit_poll = exited ? nullptr : watch(pidfd, POLLIN);
        pollfd* const stop_poll = phase == kill_phase::none && !result.cancelled ? watch(stop_fd, POLLIN) : nullptr;

        int timeout_ms = -1;
        if (next_step != steady::time_point::max())
            timeout_ms = static_cast<int>(std::clamp<long long>(
                std::chrono::ceil<std::chrono::milliseconds>(next_step - now).count(), 0, INT_MAX));
        if (!exited && !pidfd && (timeout_ms < 0 || timeout_ms > exit_check_interval_ms))
            timeout_ms = exit_check_interval_ms;

        if (::poll(fds.data(), n, timeout_ms) < 0) {
            if (errno == EINTR) continue;
            throw process_error("poll failed while running " + single_quoted(cmd.program) + ": " + errno_text(errno));
        }

        for (auto* capture : {&out, &err}) {
            pollfd const* p = capture == &out ? out_poll : err_poll;
            if (p == nullptr || (p->revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
            ssize_t const got = ::read(capture->fd.get(), buffer.data(), buffer.size());
            if (got > 0)
                capture->consume(std::string_view(buffer.data(), static_cast<std::size_t>(got)), cmd);
            else if (got == 0 || (errno != EAGAIN && errno != EINTR))
                capture->fd.reset();  // EOF: every writer is gone
        }

        if (in_poll != nullptr && (in_poll->revents & (POLLOUT | POLLERR | POLLHUP)) != 0) {
            std::size_t const chunk = std::min(pending_input.size(), buffer.size());
            ssize_t const put = write_without_sigpipe(in.get(), pending_input.data(), chunk);
            if (put > 0) {
                pending_input.remove_prefix(static_cast<std::size_t>(put));
                if (pending_input.empty()) in.reset();  // all written: the child sees EOF
            } else if (put < 0 && errno != EAGAIN && errno != EINTR) {
                in.reset();  // EPIPE: the child stopped reading; the rest is not wanted
            }
        }

        if (stop_poll != nullptr && (stop_poll->revents & POLLIN) != 0) {
            result.cancelled = true;
            next_step = steady::now();  // the kill sequence starts at the top of the loop
        }

        if (exit_poll != nullptr && (exit_poll->revents & POLLIN) != 0)
            exited = true;
        else if (!exited && !pidfd)
            exited = child.has_exited();
        if (exited) {
            out_write_end.reset();
            err_write_end.reset();
        }
    }

    // ---- reap and report ----------------------------------------------------------------------------
    int const status = child.reap();
    result.duration = std::chrono::duration_cast<std::chrono::microseconds>(steady::now() - start);
    if (WIFEXITED(status))
        result.exit_code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
        result.signal = WTERMSIG(status);
    result.stdout_text = std::move(out.text);
    result.stderr_text = std::move(err.text);
    result.stdout_truncated = out.truncated;
    result.stderr_truncated = err.truncated;
    return result;
}

}  // namespace detail
}  // namespace berth::process
