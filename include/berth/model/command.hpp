#pragma once
// A command to execute in an environment and how it ended: the input and output of a driver's
// execute and, unchanged, of the process layer (berth/process/spawn.hpp). Standard headers only,
// so that the process layer can use these types without paying for JSON or Describe.

#include <chrono>       // std::chrono::milliseconds, std::chrono::microseconds
#include <cstddef>      // std::size_t
#include <functional>   // std::function
#include <map>          // std::map
#include <optional>     // std::optional
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <vector>       // std::vector

namespace berth {

enum class output_stream { stdout_stream, stderr_stream };

/// A command to execute in an environment. `program` and `args` are passed as an argv: nothing is
/// re-split or interpreted by a shell unless `program` is one.
struct command {
    std::string program{};
    std::vector<std::string> args{};
    std::optional<std::string> cwd{};
    std::map<std::string, std::string> env{};  ///< added to (and overriding) the sanitised base env
    std::optional<std::string> stdin_data{};
    std::chrono::milliseconds timeout{std::chrono::minutes(15)};
    std::size_t max_output_bytes = std::size_t(1) << 20;  ///< per stream; the tail beyond is dropped
    /// Called with each chunk as it arrives, from the calling thread. May be empty.
    std::function<void(output_stream, std::string_view)> on_output{};
};

/// How a command ended.
struct command_result {
    std::optional<int> exit_code{};    ///< nullopt when killed by a signal
    std::optional<int> signal{};       ///< the terminating signal number, if any
    bool timed_out = false;          ///< the deadline passed and berth killed the process group
    std::string stdout_text{};         ///< at most max_output_bytes (the first ones)
    std::string stderr_text{};
    bool stdout_truncated = false;
    bool stderr_truncated = false;
    std::chrono::microseconds duration{};
};

}  // namespace berth
