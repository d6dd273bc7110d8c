#pragma once
// A command to execute in an environment and how it ended: the input and output of a driver's
// execute and, unchanged, of the process layer (berth/process/spawn.hpp). Standard headers only,
// so that the process layer can use these types without paying for JSON or Describe.

#include <chrono>       // std::chrono::milliseconds, std::chrono::microseconds
#include <cstddef>      // std::size_t
#include <functional>   // std::function
#include <map>          // std::map
#include <optional>     // std::optional
#include <stop_token>   // std::stop_token (cancelling a command)
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
    /// Cancels the command when stop is requested: its process group is ended as on a deadline
    /// (SIGTERM, then SIGKILL), and the result says `cancelled`. Honoured by the local and SSH
    /// drivers and by every caller of berth::process::run; a driver that cannot cancel ignores it.
    std::stop_token stop{};
};

/// How a command ended.
struct command_result {
    std::optional<int> exit_code{};    ///< nullopt when killed by a signal
    std::optional<int> signal{};       ///< the terminating signal number, if any
    bool timed_out = false;          ///< the deadline passed and berth killed the process group
    bool cancelled = false;          ///< `command::stop` was requested and berth killed the process group
    std::string stdout_text{};         ///< at most max_output_bytes (the first ones)
    std::string stderr_text{};
    bool stdout_truncated = false;
    bool stderr_truncated = false;
    std::chrono::microseconds duration{};
};

/// The last `n` non-blank lines of a command's output (at most `max_bytes`, cut at a line start), for
/// error messages: the end of stderr says why a command failed; its start is often noise (a login
/// shell's profile, progress lines).
[[nodiscard]] inline std::string last_lines(std::string_view text, std::size_t n = 20, std::size_t max_bytes = 4096) {
    std::vector<std::string_view> lines;
    while (!text.empty() && lines.size() < n) {
        while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ' || text.back() == '\t'))
            text.remove_suffix(1);
        if (text.empty()) break;
        auto const nl = text.find_last_of('\n');
        auto const line = nl == std::string_view::npos ? text : text.substr(nl + 1);
        if (line.find_first_not_of(" \t\r") != std::string_view::npos) lines.push_back(line);
        text = nl == std::string_view::npos ? std::string_view() : text.substr(0, nl);
    }
    std::string out;
    std::size_t bytes = 0;
    std::size_t taken = 0;
    for (auto const& l : lines) {  // newest first: keep the last lines within max_bytes
        if (taken > 0 && bytes + l.size() + 1 > max_bytes) break;
        bytes += l.size() + 1;
        ++taken;
    }
    for (std::size_t i = taken; i-- > 0;) out.append(lines[i]).append(i ? "\n" : "");
    return out;
}

}  // namespace berth
