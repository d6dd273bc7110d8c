#pragma once
// One command over one libssh channel: exec request, stdin written within the peer's window
// (so a large input and a large output cannot deadlock), stdout/stderr drained without blocking
// and bounded, the framing line stripped, the deadline enforced by killing the remote process
// group over a second channel, and the exit status or signal collected. Private to
// berth/drivers/ssh.hpp.

#include <berth/drivers/ssh/detail/session.hpp>  // channel_ptr, session_error
#include <berth/drivers/ssh/detail/shell.hpp>    // exec_text, frame_prefix
#include <berth/drivers/ssh/error.hpp>           // ssh_error, ssh_errc
#include <berth/model/command.hpp>               // berth::command, berth::command_result
#include <berth/process/signal_name.hpp>         // signal_number (exit-signal names)

#include <libssh/callbacks.h>  // ssh_channel_callbacks_struct, ssh_set_channel_callbacks
#include <libssh/libssh.h>     // ssh_channel_*

#include <algorithm>    // std::min, std::max, std::clamp
#include <chrono>       // std::chrono::steady_clock
#include <csignal>      // SIGTERM, ...
#include <cstdlib>      // std::strtol
#include <optional>     // std::optional
#include <string>       // std::string
#include <string_view>  // std::string_view

#include <poll.h>  // poll

namespace berth::detail::ssh {

/// The signal number of an SSH exit-signal name ("TERM", "KILL", ...), or nullopt.
[[nodiscard]] inline std::optional<int> signal_number(std::string_view name) noexcept {
    return berth::process::signal_number(name);
}

/// Raised when a channel could not be set up on a session (open or exec refused): nothing ran,
/// so the caller may retry on a fresh connection.
class channel_setup_error : public ssh_error {
public:
    using ssh_error::ssh_error;
};

/// Runs a short fixed command to completion on `s`, ignoring its output (the deadline kill).
/// Returns false when it could not be run.
inline bool run_quiet(ssh_session s, std::string const& line) noexcept {
    channel_ptr ch(ssh_channel_new(s));
    if (!ch || ssh_channel_open_session(ch.get()) != SSH_OK) return false;
    if (ssh_channel_request_exec(ch.get(), line.c_str()) != SSH_OK) return false;
    ssh_channel_send_eof(ch.get());
    char buf[256];
    for (int i = 0; i < 1000; ++i) {
        int const n = ssh_channel_read_timeout(ch.get(), buf, sizeof buf, 0, 2000);
        if (n <= 0) break;
    }
    return true;
}

struct run_params {
    std::chrono::milliseconds kill_grace{2000};
    std::chrono::milliseconds session_timeout{10000};  ///< the session's libssh timeout, restored after use
    std::string_view destination;  ///< for messages
};

/// Runs the command `text` describes on `s`: stdin = `text.stdin_prefix` then `cmd.stdin_data`.
/// @throws channel_setup_error when the channel or the exec request is refused (nothing ran).
/// @throws ssh_error connection_lost when the connection fails while the command runs;
///         invalid_command when the remote cwd does not exist.
/// @throws whatever `cmd.on_output` throws (the remote group is killed first).
inline command_result run_channel(ssh_session s, exec_text const& text, command const& cmd, run_params const& p) {
    using clock = std::chrono::steady_clock;
    auto const start = clock::now();
    command_result result;

    channel_ptr ch(ssh_channel_new(s));
    if (!ch) throw channel_setup_error(ssh_errc::channel_failed, "Could not create an SSH channel to " +
                                                                     std::string(p.destination));
    if (ssh_channel_open_session(ch.get()) != SSH_OK)
        throw channel_setup_error(ssh_errc::channel_failed, "Could not open an SSH channel to " +
                                                                std::string(p.destination) + ": " + session_error(s));

    struct exit_state {
        std::optional<std::string> signal;
        std::optional<int> status;
    } exit_info;
    ssh_channel_callbacks_struct callbacks{};
    ssh_callbacks_init(&callbacks);
    callbacks.userdata = &exit_info;
    callbacks.channel_exit_signal_function = [](ssh_session, ssh_channel, char const* sig, int, char const*,
                                                char const*, void* userdata) {
        if (sig != nullptr) static_cast<exit_state*>(userdata)->signal = std::string(sig);
    };
    callbacks.channel_exit_status_function = [](ssh_session, ssh_channel, int status, void* userdata) {
        static_cast<exit_state*>(userdata)->status = status;
    };
    ssh_set_channel_callbacks(ch.get(), &callbacks);

    if (ssh_channel_request_exec(ch.get(), text.command_line.c_str()) != SSH_OK)
        throw channel_setup_error(ssh_errc::channel_failed, "The SSH server " + std::string(p.destination) +
                                                                " refused to run a command: " + session_error(s));

    // stdin: our prefix, then the command's own data, then EOF.
    std::string_view const prefix = text.stdin_prefix;
    std::string_view const data = cmd.stdin_data ? std::string_view(*cmd.stdin_data) : std::string_view();
    std::size_t written = 0;
    std::size_t const to_write = prefix.size() + data.size();
    bool eof_sent = false;

    // stderr framing: the first line is ours (`\036berth:<pid>` or `\036berth:nocwd`).
    std::string frame;
    bool frame_done = false;
    std::optional<long> remote_pid;
    bool nocwd = false;

    auto deliver = [&](output_stream stream, std::string_view chunk) {
        auto& keep = stream == output_stream::stdout_stream ? result.stdout_text : result.stderr_text;
        auto& truncated = stream == output_stream::stdout_stream ? result.stdout_truncated : result.stderr_truncated;
        if (keep.size() < cmd.max_output_bytes) {
            auto const room = cmd.max_output_bytes - keep.size();
            keep.append(chunk.substr(0, room));
            if (chunk.size() > room) truncated = true;
        } else if (!chunk.empty()) {
            truncated = true;
        }
        if (cmd.on_output && !chunk.empty()) cmd.on_output(stream, chunk);
    };
    bool quiet = false;  // while waiting for the frame after on_output threw: deliver nothing
    auto on_stderr = [&](std::string_view chunk) {
        if (!frame_done) {
            auto const nl = chunk.find('\n');
            frame.append(chunk.substr(0, nl));
            bool const bad_prefix = frame.size() >= frame_prefix.size()
                                        ? frame.compare(0, frame_prefix.size(), frame_prefix) != 0
                                        : frame_prefix.compare(0, frame.size(), frame) != 0;
            if (nl == std::string_view::npos && !bad_prefix && frame.size() < 64) return;
            frame_done = true;
            if (!bad_prefix && nl != std::string_view::npos) {
                auto const value = std::string_view(frame).substr(frame_prefix.size());
                if (value == "nocwd") nocwd = true;  // reported after the loop
                else remote_pid = std::strtol(std::string(value).c_str(), nullptr, 10);
                chunk.remove_prefix(nl + 1);
            } else {
                // Not our line (the shell failed before it): it is the command's stderr.
                std::string const head = frame + (nl == std::string_view::npos ? "" : "\n");
                chunk.remove_prefix(nl == std::string_view::npos ? chunk.size() : nl + 1);
                if (!quiet) deliver(output_stream::stderr_stream, head);
            }
        }
        if (!quiet) deliver(output_stream::stderr_stream, chunk);
    };
    char buf[32768];
    // The frame line may still be in flight (stdout can overtake it): wait for it, briefly, when
    // the pid is needed and not known yet.
    auto await_frame = [&](std::chrono::milliseconds limit) {
        auto const until = clock::now() + limit;
        while (!frame_done && clock::now() < until && ssh_is_connected(s)) {
            int const n = ssh_channel_read_nonblocking(ch.get(), buf, sizeof buf, 1);
            if (n > 0) {
                on_stderr(std::string_view(buf, static_cast<std::size_t>(n)));
                continue;
            }
            if (n == SSH_ERROR || ssh_channel_is_eof(ch.get()) || ssh_channel_is_closed(ch.get())) break;
            pollfd pfd{ssh_get_fd(s), POLLIN, 0};
            ::poll(&pfd, 1, 20);
        }
    };

    auto kill_group = [&](char const* sig) {
        if (!remote_pid) await_frame(std::chrono::seconds(2));
        if (remote_pid && *remote_pid > 1) {
            auto const pid = std::to_string(*remote_pid);
            run_quiet(s, std::string("kill -") + sig + " -" + pid + " 2>/dev/null || kill -" + sig + " " + pid +
                             " 2>/dev/null; exit 0");
        } else {
            ssh_channel_request_send_signal(ch.get(), sig);
        }
    };

    bool has_deadline = cmd.timeout.count() > 0;
    auto const deadline = start + cmd.timeout;
    int kill_stage = 0;  // 0 running, 1 TERM sent, 2 KILL sent
    auto next_stage_at = deadline;
    // cmd.stop requested: the kill stages start now, as at a deadline, and the result says cancelled.
    auto notice_stop = [&] {
        if (kill_stage != 0 || result.cancelled || !cmd.stop.stop_requested()) return;
        result.cancelled = true;
        has_deadline = true;
        next_stage_at = clock::now();
    };
    int const idle_wait_ms = cmd.stop.stop_possible() ? 50 : 1000;  // how soon a stop is seen
    // At the deadline and at each grace after it: TERM, then KILL, then give up on the channel
    // (something outside the group holds it open). Returns false once given up.
    auto advance_kill_stage = [&]() -> bool {
        if (kill_stage == 0) {
            if (!result.cancelled) result.timed_out = true;
            kill_group("TERM");
            kill_stage = 1;
        } else if (kill_stage == 1) {
            kill_group("KILL");
            kill_stage = 2;
        } else {
            return false;
        }
        next_stage_at = clock::now() + p.kill_grace;
        return true;
    };
    auto lost = [&] {
        return ssh_error(ssh_errc::connection_lost, "The connection to " + std::string(p.destination) +
                                                        " was lost while running " + cmd.program + ": " +
                                                        session_error(s));
    };
    bool gave_up = false;

    try {
        for (;;) {
            // Write what the peer's window takes now; never block on a full window.
            while (written < to_write) {
                auto const window = ssh_channel_window_size(ch.get());
                if (window == 0) break;
                std::size_t n = std::min<std::size_t>({to_write - written, window, sizeof buf});
                std::string_view piece = written < prefix.size()
                                             ? prefix.substr(written, std::min(n, prefix.size() - written))
                                             : data.substr(written - prefix.size(), n);
                int const w = ssh_channel_write(ch.get(), piece.data(), static_cast<uint32_t>(piece.size()));
                if (w == SSH_ERROR) {
                    // The remote stopped reading stdin (it exited, or closed it): stop writing.
                    if (!ssh_is_connected(s)) break;
                    written = to_write;
                    break;
                }
                written += static_cast<std::size_t>(w);
                if (w == 0) break;
            }
            if (written >= to_write && !eof_sent) {
                ssh_channel_send_eof(ch.get());
                eof_sent = true;
            }

            bool got = false;
            for (int is_stderr = 1; is_stderr >= 0; --is_stderr) {  // stderr first: the frame line
                int const n = ssh_channel_read_nonblocking(ch.get(), buf, sizeof buf, is_stderr);
                if (n == SSH_ERROR || (n == SSH_EOF && !ssh_is_connected(s)))
                    throw ssh_error(ssh_errc::connection_lost, "The connection to " + std::string(p.destination) +
                                                                   " was lost while running " + cmd.program + ": " +
                                                                   session_error(s));
                if (n > 0) {
                    got = true;
                    if (is_stderr) on_stderr(std::string_view(buf, static_cast<std::size_t>(n)));
                    else deliver(output_stream::stdout_stream, std::string_view(buf, static_cast<std::size_t>(n)));
                }
            }
            if (got) continue;
            if (ssh_channel_is_eof(ch.get()) || ssh_channel_is_closed(ch.get())) break;
            if (!ssh_is_connected(s))
                throw ssh_error(ssh_errc::connection_lost, "The connection to " + std::string(p.destination) +
                                                               " was lost while running " + cmd.program + ": " +
                                                               session_error(s));

            notice_stop();
            auto const now = clock::now();
            if (has_deadline && now >= next_stage_at) {
                if (!advance_kill_stage()) {
                    gave_up = true;
                    break;
                }
                continue;
            }
            int wait_ms = 50;
            if (has_deadline) {
                auto const left = std::chrono::duration_cast<std::chrono::milliseconds>(next_stage_at - now).count();
                wait_ms = static_cast<int>(std::max<long long>(1, std::min<long long>(left + 1, wait_ms)));
            }
            pollfd pfd{ssh_get_fd(s), POLLIN, 0};
            ::poll(&pfd, 1, wait_ms);
        }
    } catch (ssh_error const&) {
        throw;
    } catch (...) {
        // on_output threw: stop the remote command before handing the exception on.
        quiet = true;
        kill_group("KILL");
        throw;
    }

    if (nocwd)
        throw ssh_error(ssh_errc::invalid_command, "The working directory " + cmd.cwd.value_or("") +
                                                       " does not exist on " + std::string(p.destination));
    if (!frame_done && !frame.empty()) deliver(output_stream::stderr_stream, frame);

    // exit-status / exit-signal follow the EOF; a command that closed its output but still runs sends
    // them only when it exits, so keep enforcing the deadline while waiting for them. libssh waits
    // up to the session's timeout per call: set it to the time left to the next kill stage.
    if (!gave_up) {
        auto const set_timeout = [&](std::chrono::milliseconds ms) {
            long const sec = static_cast<long>(ms.count() / 1000);
            long const usec = static_cast<long>((ms.count() % 1000) * 1000);
            ssh_options_set(s, SSH_OPTIONS_TIMEOUT, &sec);
            ssh_options_set(s, SSH_OPTIONS_TIMEOUT_USEC, &usec);
        };
        bool timeout_changed = false;
        try {
            while (!exit_info.status && !exit_info.signal && !ssh_channel_is_closed(ch.get())) {
                if (!ssh_is_connected(s)) throw lost();
                notice_stop();
                auto const now = clock::now();
                if (has_deadline && now >= next_stage_at) {
                    if (!advance_kill_stage()) break;
                    continue;
                }
                auto wait = std::chrono::milliseconds(idle_wait_ms);
                if (has_deadline)
                    wait = std::clamp(std::chrono::duration_cast<std::chrono::milliseconds>(next_stage_at - now) +
                                          std::chrono::milliseconds(1),
                                      std::chrono::milliseconds(1), wait);
                set_timeout(wait);
                timeout_changed = true;
                if (int const st = ssh_channel_get_exit_status(ch.get()); st >= 0 && !exit_info.signal)
                    exit_info.status = st;
            }
        } catch (...) {
            if (timeout_changed) set_timeout(p.session_timeout);
            throw;
        }
        if (timeout_changed) set_timeout(p.session_timeout);
    }
    if (exit_info.signal) {
        result.signal = signal_number(*exit_info.signal);
        if (!result.signal) result.exit_code = 128;  // a signal this table lacks: "killed"
    } else if (exit_info.status) {
        result.exit_code = *exit_info.status;
    } else if (!ssh_is_connected(s)) {
        throw lost();
    }
    if ((result.timed_out || result.cancelled) && !result.signal && !result.exit_code) result.signal = SIGKILL;
    result.duration = std::chrono::duration_cast<std::chrono::microseconds>(clock::now() - start);
    return result;
}

}  // namespace berth::detail::ssh
