#pragma once
//! @file
//! The errors of the workspace layer: a workspace could not be realized, provisioned or cleaned
//! up. Each names what failed (the command's label, the path, the field) and carries the
//! command's output where there was one.

#include <berth/error.hpp>  // berth::error

#include <optional>  // std::optional
#include <string>    // std::string
#include <utility>   // std::move
#include <vector>    // std::vector

namespace berth {

/// Realizing, provisioning or cleaning up an execution workspace failed.
class workspace_error : public error {
public:
    using error::error;
};

/// A git command exited non-zero (or could not be started). The message is upstream's:
/// `<label> failed: <stderr>\n<stdout>`, or `<label> failed with exit code <n>` without output.
class git_error : public workspace_error {
public:
    git_error(std::string const& message, std::vector<std::string> args, std::optional<int> exit_code,
              std::string stderr_text)
        : workspace_error(message),
          args_(std::move(args)),
          exit_code_(exit_code),
          stderr_(std::move(stderr_text)) {}
    /// git's arguments (without the program).
    [[nodiscard]] std::vector<std::string> const& args() const noexcept { return args_; }
    /// nullopt when git was killed by a signal or could not be started.
    [[nodiscard]] std::optional<int> exit_code() const noexcept { return exit_code_; }
    [[nodiscard]] std::string const& stderr_text() const noexcept { return stderr_; }

private:
    std::vector<std::string> args_;
    std::optional<int> exit_code_;
    std::string stderr_;
};

}  // namespace berth
