#pragma once
// The POSIX shell text the SSH driver sends: quoting, environment names, and the remote command
// line of an execute. Private to the SSH driver (berth/drivers/ssh.hpp).
//
// How a command reaches the remote side without its environment values on any command line
// (upstream #10229/#13303 put them in the local `ssh` argv) and without re-splitting its
// arguments (upstream #13700):
//   - the exec request (the remote shell's `-c` argument, visible in the remote `ps`) holds only
//     fixed text, the quoted cwd, program and arguments — each argument single-quoted on its own;
//   - the variables travel over the channel as the first bytes of stdin: `export NAME='value'`
//     lines, then an end line carrying a random nonce; the remote shell reads them with its
//     `read` builtin (byte by byte from a pipe, so it never consumes the command's own stdin) and
//     evaluates them; the rest of the channel's stdin is the command's.
//   - after `cd`, the shell writes one framing line on stderr, `\036berth:<pid>` (its pid, which is
//     the session's process group: sshd runs each command in a new session), and then runs the
//     program as its last command. The driver strips that line and uses the pid to kill the group
//     at the deadline.
//   - no explicit `exec`: the remote shell runs the program the way `ssh host prog args` would. A
//     builtin of that shell (true, echo, printf, pwd, ...) runs as the builtin; anything else is
//     looked up in PATH and, since it is the last command, exec'd in place of the shell by bash
//     >= 5.1 and dash (so it keeps the shell's pid, and a signal that kills it is reported as the
//     SSH exit-signal). A shell that forks instead reports such a death as exit code 128+N. An
//     explicit `exec` would force an execve even for `true`: measured, it made a warm execute
//     ~1.4x the raw libssh exec of `true` instead of ~1.05x.

#include <berth/drivers/ssh/error.hpp>  // ssh_error, ssh_errc
#include <berth/model/command.hpp>      // berth::command
#include <berth/process/lease_processes.hpp>  // lease_variable

#include <cstdint>      // std::uint64_t
#include <random>       // std::random_device, std::mt19937_64
#include <string>       // std::string
#include <string_view>  // std::string_view

namespace berth::detail::ssh {

/// `s` as one single-quoted shell word: `it's` → `'it'\''s'`. Any byte but NUL survives intact
/// (newlines, `$`, backquotes, `;` are literal inside single quotes).
/// @throws ssh_error invalid_command when `s` holds a NUL byte (no shell word can carry one).
inline std::string shell_quote(std::string_view s, std::string_view what) {
    if (s.find('\0') != std::string_view::npos)
        throw ssh_error(ssh_errc::invalid_command, std::string(what) + " contains a NUL byte, which a remote command "
                                                                       "cannot carry");
    std::string out;
    out.reserve(s.size() + 2);
    out += '\'';
    for (char c : s) {
        if (c == '\'') out += "'\\''";
        else out += c;
    }
    out += '\'';
    return out;
}

/// A portable environment variable name: `[A-Za-z_][A-Za-z0-9_]*` (upstream's check).
[[nodiscard]] constexpr bool valid_env_name(std::string_view name) noexcept {
    if (name.empty()) return false;
    for (std::size_t i = 0; i < name.size(); ++i) {
        char const c = name[i];
        bool const alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        bool const digit = c >= '0' && c <= '9';
        if (!alpha && !(digit && i > 0)) return false;
    }
    return true;
}
static_assert(valid_env_name("PATH") && valid_env_name("_x1") && !valid_env_name("1X") && !valid_env_name("A-B") &&
              !valid_env_name("A=B") && !valid_env_name(""));

/// The framing line's prefix on stderr (the byte 036, RS, cannot start a line of ordinary text).
inline constexpr std::string_view frame_prefix = "\036berth:";

/// A fresh end-of-environment marker; 64 random bits, so no value line can equal it by chance
/// (and build_exec checks that none does).
inline std::string end_marker() {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    static constexpr char hex[] = "0123456789abcdef";
    std::uint64_t v = rng();
    std::string m = "__BERTH_END_";
    for (int i = 0; i < 16; ++i, v >>= 4) m += hex[v & 0xf];
    return m + "__";
}

/// What an execute sends: the exec request's command line and the bytes stdin starts with.
struct exec_text {
    std::string command_line;
    std::string stdin_prefix;
};

/// The variable every command run for a lease carries on the host (`BERTH_LEASE_ID=<lease id>`):
/// its descendants inherit it, so release finds them all, however they were detached.
using ::berth::process::lease_variable;

/// The remote command line and stdin prefix for `cmd`, run in `cwd` (empty: the login directory).
/// `source_profiles` sources the login profile files first (upstream's runSshCommand does).
/// A non-empty `lease_id` is exported as `BERTH_LEASE_ID` after cmd.env (so cmd.env cannot
/// override it); it is a lease id, not a secret, so it travels on the command line (no fork).
/// @throws ssh_error invalid_command for an invalid variable name or a NUL byte anywhere.
inline exec_text build_exec(command const& cmd, std::string_view cwd, bool source_profiles,
                            std::string_view lease_id = {}) {
    exec_text t;
    std::string& line = t.command_line;
    if (source_profiles)
        line += "for __berth_p in /etc/profile \"$HOME/.profile\" \"$HOME/.bash_profile\" \"$HOME/.zprofile\"; do "
                "[ -r \"$__berth_p\" ] && . \"$__berth_p\" >/dev/null 2>&1; done; unset __berth_p; ";
    if (!cmd.env.empty()) {
        std::string marker;
        for (;;) {
            marker = end_marker();
            t.stdin_prefix.clear();
            bool clash = false;
            for (auto const& [name, value] : cmd.env) {
                if (!valid_env_name(name))
                    throw ssh_error(ssh_errc::invalid_command, "Invalid SSH environment variable key: " + name);
                t.stdin_prefix += "export " + name + "=" + shell_quote(value, "the value of environment variable " + name) +
                                  "\n";
            }
            // A value line equal to the marker would end the block early: pick another marker.
            std::string_view rest = t.stdin_prefix;
            while (!rest.empty() && !clash) {
                auto const nl = rest.find('\n');
                clash = rest.substr(0, nl) == marker;
                rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
            }
            if (!clash) break;
        }
        t.stdin_prefix += marker + "\n";
        line += "__berth_s=; while IFS= read -r __berth_l; do [ \"$__berth_l\" = " + marker +
                " ] && break; __berth_s=\"$__berth_s$__berth_l\n\"; done; eval \"$__berth_s\"; unset __berth_s "
                "__berth_l; ";
    }
    if (!lease_id.empty())
        line += std::string(lease_variable) + "=" + shell_quote(lease_id, "the lease id") + "; export " +
                std::string(lease_variable) + "; ";
    if (!cwd.empty())
        line += "cd -- " + shell_quote(cwd, "the working directory") +
                " 2>/dev/null || { printf '\\036berth:nocwd\\n' >&2; exit 1; }; ";
    line += "printf '\\036berth:%s\\n' \"$$\" >&2; " + shell_quote(cmd.program, "the program");
    for (auto const& a : cmd.args) line += " " + shell_quote(a, "an argument of " + cmd.program);
    return t;
}

}  // namespace berth::detail::ssh
