#pragma once
//! @file
//! berth::git_runner — the git CLI through berth::process::run: always an argv (`git` and its
//! arguments as separate strings, never a shell), in a given working directory, with a sanitised
//! environment, a deadline, and a count of the processes it started (the benchmark reports it).
//!
//! @code
//! berth::git_runner git;
//! auto root = git.check({"rev-parse", "--show-toplevel"}, "/srv/repo");   // upstream runGit
//! @endcode

#include <berth/model/command.hpp>        // command, command_result
#include <berth/process/environment.hpp>  // environment_map
#include <berth/process/spawn.hpp>        // process::run
#include <berth/workspace/error.hpp>      // git_error, workspace_error
#include <berth/workspace/options.hpp>    // git_options

#include <atomic>       // std::atomic
#include <chrono>       // std::chrono::milliseconds
#include <filesystem>   // std::filesystem::is_directory
#include <cstdint>      // std::uint64_t
#include <memory>       // std::shared_ptr
#include <optional>     // std::optional
#include <stop_token>   // std::stop_token (cancelling git)
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <system_error> // std::error_code
#include <utility>      // std::move
#include <vector>       // std::vector

namespace berth {

/// Upstream formatCommandForDisplay: the argv joined by spaces, each part that is not made of
/// `[A-Za-z0-9_./:-]` alone written as a JSON string. For operation records and messages only:
/// nothing ever runs this text.
[[nodiscard]] inline std::string format_command_for_display(std::string_view program,
                                                            std::vector<std::string> const& args) {
    auto plain = [](std::string_view s) {
        if (s.empty()) return false;
        for (char c : s) {
            bool const ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
                            c == '.' || c == '/' || c == ':' || c == '-';
            if (!ok) return false;
        }
        return true;
    };
    auto json_quoted = [](std::string_view s) {
        std::string out = "\"";
        for (char c : s) {
            switch (c) {
                case '"': out += "\\\""; break;
                case '\\': out += "\\\\"; break;
                case '\n': out += "\\n"; break;
                case '\r': out += "\\r"; break;
                case '\t': out += "\\t"; break;
                default:
                    if (static_cast<unsigned char>(c) < 0x20) {
                        static constexpr char hex[] = "0123456789abcdef";
                        out += "\\u00";
                        out += hex[(c >> 4) & 0xf];
                        out += hex[c & 0xf];
                    } else {
                        out += c;
                    }
            }
        }
        return out + "\"";
    };
    std::string out = plain(program) ? std::string(program) : json_quoted(program);
    for (auto const& a : args) (out += ' ') += plain(a) ? a : json_quoted(a);
    return out;
}

/// Runs git. Copies share one process counter. Thread-safe.
class git_runner {
public:
    git_runner() : git_runner(git_options{}) {}
    explicit git_runner(git_options options)
        : options_(std::move(options)), started_(std::make_shared<std::atomic<std::uint64_t>>(0)) {}

    [[nodiscard]] git_options const& options() const noexcept { return options_; }

    /// How many git processes this runner (and its copies) started.
    [[nodiscard]] std::uint64_t processes_started() const noexcept { return started_->load(); }

    /// Runs `git args...` in `cwd` and returns how it ended (a non-zero exit is a result). A stop
    /// request on `stop` ends git's process group (its hooks and helpers too): the result then
    /// says `cancelled`.
    /// @throws workspace_error `git is not available (...)` when the program cannot be found or
    ///         started (git missing from PATH), or `cwd` is not a directory, naming both.
    [[nodiscard]] command_result run(std::vector<std::string> const& args, std::string const& cwd,
                                     std::stop_token stop = {}) const {
        command cmd{.program = options_.program,
                    .args = args,
                    .cwd = cwd,
                    .env = {{"LC_ALL", "C"}, {"GIT_TERMINAL_PROMPT", "0"}},
                    .timeout = options_.timeout,
                    .stop = std::move(stop)};
        std::error_code ec;
        if (!std::filesystem::is_directory(cwd, ec))
            throw workspace_error("Cannot run \"" + format_command_for_display("git", args) + "\": the directory \"" +
                                  cwd + "\" does not exist or is not a directory.");
        process::run_options ro{.inherit_sanitized_environment = !options_.environment.has_value(),
                                .base_environment = options_.environment.value_or(process::environment_map{})};
        try {
            started_->fetch_add(1);
            return process::run(cmd, ro);
        } catch (process_error const& e) {
            throw workspace_error("git is not available to run \"" + format_command_for_display("git", args) +
                                  "\" in \"" + cwd + "\" (" + e.what() +
                                  "); install git or put it on the PATH berth runs it with.");
        }
    }

    /// Upstream runGit: runs git and returns its stdout, trimmed.
    /// @throws git_error `<label> failed: <stderr>\n<stdout>` (label: `failure_label`, else
    ///         `git <args>`) when git exits non-zero; workspace_error as run().
    std::string check(std::vector<std::string> const& args, std::string const& cwd,
                      std::optional<std::string> failure_label = std::nullopt) const {
        auto const r = run(args, cwd);
        if (r.exit_code == 0 && !r.timed_out) return trim(r.stdout_text);
        throw failure(args, r, failure_label);
    }

    /// The git_error for a failed run: upstream's message shape.
    [[nodiscard]] static git_error failure(std::vector<std::string> const& args, command_result const& r,
                                           std::optional<std::string> const& failure_label) {
        std::string label = failure_label ? *failure_label : "git";
        if (!failure_label)
            for (auto const& a : args) (label += ' ') += a;
        std::string details = trim(r.stderr_text);
        if (auto const out = trim(r.stdout_text); !out.empty()) details += (details.empty() ? "" : "\n") + out;
        if (r.timed_out) details = "timed out" + (details.empty() ? std::string() : ": " + details);
        if (r.cancelled) details = "cancelled" + (details.empty() ? std::string() : ": " + details);
        std::string const message =
            details.empty() ? label + " failed with exit code " + std::to_string(r.exit_code.value_or(-1))
                            : label + " failed: " + details;
        return git_error(message, args, r.exit_code, r.stderr_text);
    }

    /// `s` without leading and trailing whitespace.
    [[nodiscard]] static std::string trim(std::string_view s) {
        auto const b = s.find_first_not_of(" \t\r\n");
        if (b == std::string_view::npos) return {};
        auto const e = s.find_last_not_of(" \t\r\n");
        return std::string(s.substr(b, e - b + 1));
    }

private:
    git_options options_;
    std::shared_ptr<std::atomic<std::uint64_t>> started_;
};

}  // namespace berth
