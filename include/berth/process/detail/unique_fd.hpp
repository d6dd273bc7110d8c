#pragma once
// berth::process::detail::unique_fd — an owned file descriptor, closed exactly once — and the pipe
// and error helpers of the process layer. Every descriptor the process layer opens is O_CLOEXEC
// from birth (pipe2/open flags, never a later fcntl), so a process spawned concurrently by another
// thread cannot inherit it.

#include <berth/error.hpp>  // berth::process_error

#include <cerrno>        // errno
#include <string>        // std::string
#include <system_error>  // std::generic_category (a thread-safe strerror)
#include <utility>       // std::exchange

#include <fcntl.h>   // pipe2, fcntl, O_CLOEXEC, O_NONBLOCK
#include <unistd.h>  // close

namespace berth::process::detail {

class unique_fd {
public:
    unique_fd() noexcept = default;
    explicit unique_fd(int fd) noexcept : fd_(fd) {}
    unique_fd(unique_fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    unique_fd& operator=(unique_fd&& o) noexcept {
        if (this != &o) {
            reset();
            fd_ = std::exchange(o.fd_, -1);
        }
        return *this;
    }
    unique_fd(unique_fd const&) = delete;
    unique_fd& operator=(unique_fd const&) = delete;
    ~unique_fd() { reset(); }

    [[nodiscard]] int get() const noexcept { return fd_; }
    [[nodiscard]] explicit operator bool() const noexcept { return fd_ >= 0; }
    /// Closes the descriptor now. close() is not retried on EINTR: on Linux the descriptor is
    /// released even then, and retrying could close a descriptor another thread just opened.
    void reset() noexcept {
        if (fd_ >= 0) ::close(std::exchange(fd_, -1));
    }

private:
    int fd_ = -1;
};

/// The message of an errno value (std::generic_category is thread-safe where strerror is not).
[[nodiscard]] inline std::string errno_text(int err) { return std::generic_category().message(err); }

struct pipe_pair {
    unique_fd read;
    unique_fd write;
};

/// A pipe, both ends O_CLOEXEC. @throws berth::process_error naming `what` on failure (EMFILE...).
[[nodiscard]] inline pipe_pair make_pipe(char const* what) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0)
        throw process_error(std::string("cannot create the ") + what + " pipe: " + errno_text(errno));
    return {unique_fd(fds[0]), unique_fd(fds[1])};
}

/// Makes the parent's end of a pipe non-blocking. O_NONBLOCK belongs to the open file
/// description, and the two ends of a pipe are two descriptions, so the child's end stays blocking
/// (a child that reads a non-blocking stdin sees EAGAIN and often fails).
inline void set_nonblocking(unique_fd const& fd) {
    int const flags = ::fcntl(fd.get(), F_GETFL);
    if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK) != 0)
        throw process_error("cannot make a pipe non-blocking: " + errno_text(errno));
}

}  // namespace berth::process::detail
