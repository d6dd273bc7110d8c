#pragma once
// Writing to a pipe whose reader has gone raises SIGPIPE, whose default action kills the whole
// process — unacceptable in a library: a child that closes its stdin early (`head -c1`, a program
// that exits at once) must not take the application down.
//
// Options considered: (1) ignoring SIGPIPE process-wide changes the application's signal
// dispositions behind its back; (2) send(MSG_NOSIGNAL) needs a socketpair as the child's stdin,
// and some programs behave differently on a socket (isatty/fstat checks, splice); (3) chosen:
// SIGPIPE for a write on a pipe is a *thread-directed* signal, raised synchronously in the writing
// thread. So we block it in this thread around each write; if the write fails with EPIPE, we
// consume the pending SIGPIPE with a zero-timeout sigtimedwait (unless one was already pending
// before, which then is not ours to swallow) and restore the mask. Other threads and the
// application's dispositions are untouched. The child gets an empty signal mask at spawn
// (POSIX_SPAWN_SETSIGMASK), so this blocking never leaks into it.

#include <cerrno>    // errno, EPIPE, EINTR
#include <cstddef>   // std::size_t
#include <csignal>   // sigset_t, sigemptyset, sigaddset, sigpending, sigismember, sigtimedwait, SIGPIPE
#include <ctime>     // timespec

#include <pthread.h>  // pthread_sigmask
#include <unistd.h>   // write, ssize_t

namespace berth::process::detail {

/// write(2) that reports a closed reader as EPIPE and never lets SIGPIPE reach the process.
/// Preserves errno from the write. Thread-safe (it changes only the calling thread's mask).
inline ssize_t write_without_sigpipe(int fd, void const* data, std::size_t size) noexcept {
    sigset_t pipe_only;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    sigset_t old_mask;
    pthread_sigmask(SIG_BLOCK, &pipe_only, &old_mask);
    sigset_t pending;
    sigemptyset(&pending);
    sigpending(&pending);
    bool const already_pending = sigismember(&pending, SIGPIPE) == 1;

    ssize_t const written = ::write(fd, data, size);
    int const saved_errno = errno;

    if (written < 0 && saved_errno == EPIPE && !already_pending) {
        timespec const zero{0, 0};
        while (sigtimedwait(&pipe_only, nullptr, &zero) < 0 && errno == EINTR) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
    errno = saved_errno;
    return written;
}

}  // namespace berth::process::detail
