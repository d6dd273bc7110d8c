// berth-run's handling of SIGINT, SIGTERM, SIGHUP and SIGPIPE (docs/reliability.md), and an output
// writer that cannot stall the run:
//
// - The signals are blocked in every thread (before any thread starts) and taken by one thread
//   with sigwait, never by a handler. The first one is remembered; each is forwarded to the
//   process group of every command berth runs right now (process::signal_running), because the
//   command runs in a group of its own and a terminal's Ctrl-C never reaches it; after `grace`,
//   those groups get SIGKILL. The main thread then ends the run as `cancelled` (lease `expired`),
//   stops its services, cleans up its workspace by policy, and exits 128 + the signal.
// - A closed stdout/stderr (`berth-run -- yes | head -c 5`) is a write error EPIPE (SIGPIPE is
//   blocked, so nothing kills berth-run half-way through its release): the writer treats it as
//   SIGPIPE.
// - Output to a pipe is written without blocking past the run's deadline: a reader that stalls
//   (`| sleep 12`) cannot keep berth-run from enforcing --timeout; what it cannot take in time is
//   dropped.
#pragma once

#include <berth/process/spawn.hpp>  // process::signal_running

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstddef>
#include <mutex>
#include <optional>
#include <stop_token>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

namespace berth_run {

/// Requested on the first signal: ends the provisioning or the command that is running (its
/// group gets SIGTERM, then SIGKILL after a grace), so that the run ends without waiting for it.
inline std::stop_source& cancellation() {
    static std::stop_source source;
    return source;
}

/// Thrown at a step boundary once a signal arrived.
struct interrupted : std::runtime_error {
    int signal;
    explicit interrupted(int sig)
        : std::runtime_error("interrupted by signal " + std::to_string(sig)), signal(sig) {}
};

class interrupts {
public:
    /// Call first in main, before any thread exists (threads inherit the mask).
    explicit interrupts(std::chrono::milliseconds grace) : grace_(grace) {
        sigemptyset(&set_);
        for (int s : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) sigaddset(&set_, s);
        ::pthread_sigmask(SIG_BLOCK, &set_, nullptr);
        waiter_ = std::thread([this] { wait_loop(); });
        killer_ = std::thread([this] { kill_loop(); });
    }
    interrupts(interrupts const&) = delete;
    interrupts& operator=(interrupts const&) = delete;
    ~interrupts() {
        {
            std::lock_guard lock(mutex_);
            done_ = true;
        }
        wake_.notify_all();
        ::pthread_kill(waiter_.native_handle(), SIGTERM);  // ends its sigwait (blocked there: queued only for it)
        waiter_.join();
        killer_.join();
    }

    /// The first signal received, 0 when none.
    [[nodiscard]] int signal() const noexcept { return first_.load(); }

    /// Throws `interrupted` when a signal arrived: called between the run's steps.
    void check() const {
        if (int const s = first_.load()) throw interrupted(s);
    }

    /// As if `sig` had arrived (the writer's EPIPE).
    void raise(int sig) { on_signal(sig); }

    /// Marks the span in which the main thread waits for a driver's execute. A signal that came
    /// then and is not answered within three graces (an execute that cannot be interrupted: a
    /// driver that ignores command::stop, or an SSH host that stopped answering) ends berth-run with
    /// 128 + the signal: its lease stays `active` under a holder that is then dead, for the next
    /// recover() to end (docs/reliability.md).
    void executing(bool on) noexcept { executing_ = on; }

private:
    void wait_loop() {
        while (true) {
            int sig = 0;
            if (::sigwait(&set_, &sig) != 0) continue;
            {
                std::lock_guard lock(mutex_);
                if (done_) return;
            }
            on_signal(sig);
        }
    }

    void on_signal(int sig) {
        int expected = 0;
        first_.compare_exchange_strong(expected, sig);
        (void)berth::process::signal_running(sig);
        cancellation().request_stop();
        {
            std::lock_guard lock(mutex_);
            if (!kill_at_) kill_at_ = std::chrono::steady_clock::now() + grace_;
        }
        wake_.notify_all();
    }

    /// After the grace, the commands still running are killed.
    void kill_loop() {
        std::unique_lock lock(mutex_);
        while (!done_) {
            if (!kill_at_) {
                wake_.wait(lock);
                continue;
            }
            if (wake_.wait_until(lock, *kill_at_, [this] { return done_; })) return;
            lock.unlock();
            (void)berth::process::signal_running(SIGKILL);
            lock.lock();
            auto const now = std::chrono::steady_clock::now();
            if (!give_up_at_) give_up_at_ = now + 2 * grace_;
            if (executing_ && now >= *give_up_at_) ::_exit(128 + first_.load());
            kill_at_ = now + std::chrono::milliseconds(200);  // and later ones too
        }
    }

    std::chrono::milliseconds grace_;
    sigset_t set_{};
    std::atomic<int> first_{0};
    std::mutex mutex_;
    std::condition_variable wake_;
    bool done_ = false;
    std::optional<std::chrono::steady_clock::time_point> kill_at_;
    std::optional<std::chrono::steady_clock::time_point> give_up_at_;
    std::atomic<bool> executing_{false};
    std::thread waiter_;
    std::thread killer_;
};

/// Writes the command's output to berth-run's own stdout/stderr without ever blocking past a
/// deadline (see the file comment).
class output_writer {
public:
    explicit output_writer(interrupts& sig) : sig_(sig) {
        for (int fd : {STDOUT_FILENO, STDERR_FILENO}) {
            struct stat st {};
            if (::fstat(fd, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))) {
                int const flags = ::fcntl(fd, F_GETFL);
                if (flags >= 0 && ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0) saved_[fd] = flags;
            }
        }
    }
    output_writer(output_writer const&) = delete;
    output_writer& operator=(output_writer const&) = delete;
    ~output_writer() {
        for (int fd : {STDOUT_FILENO, STDERR_FILENO})
            if (saved_[fd] >= 0) (void)::fcntl(fd, F_SETFL, saved_[fd]);
    }

    /// Output written after this instant is dropped rather than waited for.
    void set_deadline(std::chrono::steady_clock::time_point t) { deadline_ = t; }
    [[nodiscard]] std::size_t dropped() const noexcept { return dropped_; }

    void write(int fd, std::string_view data) {
        while (!data.empty()) {
            if (sig_.signal() != 0 || closed_[fd]) {
                dropped_ += data.size();
                return;
            }
            auto const n = ::write(fd, data.data(), data.size());
            if (n > 0) {
                data.remove_prefix(static_cast<std::size_t>(n));
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && errno == EPIPE) {
                closed_[fd] = true;
                sig_.raise(SIGPIPE);
                continue;
            }
            if (n < 0 && errno == EAGAIN) {
                auto const left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline_ - std::chrono::steady_clock::now());
                if (left.count() <= 0) {
                    dropped_ += data.size();
                    return;
                }
                pollfd p{fd, POLLOUT, 0};
                // In slices, so that a signal is noticed while the reader stalls.
                (void)::poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 100)));
                continue;
            }
            dropped_ += data.size();  // another error: the output cannot be written
            return;
        }
    }

private:
    interrupts& sig_;
    int saved_[3] = {-1, -1, -1};
    bool closed_[3] = {false, false, false};
    std::chrono::steady_clock::time_point deadline_ = std::chrono::steady_clock::time_point::max();
    std::size_t dropped_ = 0;
};

}  // namespace berth_run
