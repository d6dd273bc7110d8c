#pragma once
//! @file
//! Signal names as upstream prints them: Node reports a child killed by a signal as `"SIGKILL"`,
//! so the seed's messages read `exit code null (signal SIGKILL)`, never a number. One table, used
//! wherever berth words a signal (provision and cleanup failures, runtime service exits, step
//! summaries) and read back where a transport gives names (SSH's exit-signal "KILL").
//!
//! A table rather than strsignal(3): strsignal gives a description ("Killed"), is not
//! thread-safe in every libc, and sigabbrev_np is glibc ≥ 2.32 only.
//!
//! Standard and POSIX headers only.

#include <csignal>      // SIGKILL, SIGTERM, ...
#include <optional>     // std::optional
#include <string>       // std::string, std::to_string
#include <string_view>  // std::string_view

namespace berth::process {

namespace detail {
struct signal_entry {
    std::string_view name;  ///< with the SIG prefix
    int number;
};
// The POSIX signals a process is commonly ended by; others are printed as their number.
inline constexpr signal_entry signal_table[] = {
    {"SIGHUP", SIGHUP},   {"SIGINT", SIGINT},   {"SIGQUIT", SIGQUIT}, {"SIGILL", SIGILL},   {"SIGTRAP", SIGTRAP},
    {"SIGABRT", SIGABRT}, {"SIGBUS", SIGBUS},   {"SIGFPE", SIGFPE},   {"SIGKILL", SIGKILL}, {"SIGUSR1", SIGUSR1},
    {"SIGSEGV", SIGSEGV}, {"SIGUSR2", SIGUSR2}, {"SIGPIPE", SIGPIPE}, {"SIGALRM", SIGALRM}, {"SIGTERM", SIGTERM},
    {"SIGCHLD", SIGCHLD}, {"SIGCONT", SIGCONT}, {"SIGSTOP", SIGSTOP}, {"SIGTSTP", SIGTSTP}, {"SIGTTIN", SIGTTIN},
    {"SIGTTOU", SIGTTOU}, {"SIGURG", SIGURG},   {"SIGXCPU", SIGXCPU}, {"SIGXFSZ", SIGXFSZ}, {"SIGVTALRM", SIGVTALRM},
    {"SIGPROF", SIGPROF}, {"SIGWINCH", SIGWINCH}, {"SIGSYS", SIGSYS}};
}  // namespace detail

/// `SIGKILL` for 9 and so on (as Node names a child's terminating signal); a signal outside the
/// table as its decimal number ("signal 40" still says what happened).
[[nodiscard]] inline std::string signal_name(int number) {
    for (auto const& e : detail::signal_table)
        if (e.number == number) return std::string(e.name);
    return std::to_string(number);
}

/// The number of a signal name, with or without the `SIG` prefix (`"SIGKILL"` as Node reports
/// it, `"KILL"` as an SSH exit-signal message carries it); nullopt for a name outside the table.
[[nodiscard]] constexpr std::optional<int> signal_number(std::string_view name) noexcept {
    if (name.starts_with("SIG")) name.remove_prefix(3);
    for (auto const& e : detail::signal_table)
        if (e.name.substr(3) == name) return e.number;
    return std::nullopt;
}

static_assert(signal_number("SIGKILL") == SIGKILL && signal_number("TERM") == SIGTERM && !signal_number("NOPE"));

}  // namespace berth::process
