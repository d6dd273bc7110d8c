#pragma once
//! @file
//! berth::ssh_error — what the SSH driver throws when the remote side cannot be reached, refuses
//! us, or goes away; and berth::ssh_config_error for an environment config it does not accept.
//! Both carry the facts as members (the code, the field), not only in the message, and neither
//! ever carries key material.

#include <berth/error.hpp>  // berth::error

#include <string>   // std::string
#include <utility>  // std::move

namespace berth {

/// Why an SSH operation failed.
enum class ssh_errc {
    connect_failed,      ///< TCP connect or the SSH handshake failed (refused, unreachable, timed out)
    host_key_unknown,    ///< strict host key checking and the host is not in the known hosts
    host_key_changed,    ///< the host presented a key other than the known one: refused
    auth_failed,         ///< the server did not accept the private key (or none was usable)
    key_unreadable,      ///< the private key file or text could not be loaded
    channel_failed,      ///< a channel or the exec request could not be opened on a live session
    connection_lost,     ///< the connection dropped while a command ran
    remote_failed,       ///< a berth-side remote step (mkdir/cd/pwd, sync) exited non-zero
    invalid_command,     ///< a command berth cannot send (bad env name, NUL byte, missing cwd)
    local_failed,        ///< a local step of workspace sync (git ls-files, tar) failed
};

[[nodiscard]] constexpr char const* to_string(ssh_errc c) noexcept {
    switch (c) {
        case ssh_errc::connect_failed: return "connect_failed";
        case ssh_errc::host_key_unknown: return "host_key_unknown";
        case ssh_errc::host_key_changed: return "host_key_changed";
        case ssh_errc::auth_failed: return "auth_failed";
        case ssh_errc::key_unreadable: return "key_unreadable";
        case ssh_errc::channel_failed: return "channel_failed";
        case ssh_errc::connection_lost: return "connection_lost";
        case ssh_errc::remote_failed: return "remote_failed";
        case ssh_errc::invalid_command: return "invalid_command";
        case ssh_errc::local_failed: return "local_failed";
    }
    return "unknown";
}

/// An SSH operation failed. The message names the destination (`user@host:port`) and the cause.
class ssh_error : public error {
public:
    ssh_error(ssh_errc code, std::string const& message) : error(message), code_(code) {}
    [[nodiscard]] ssh_errc code() const noexcept { return code_; }

private:
    ssh_errc code_;
};

/// An SSH environment config is not one berth accepts. The message is upstream's
/// (`SSH environments require a host.`, ...); `field()` names the offending key.
class ssh_config_error : public error {
public:
    ssh_config_error(std::string field, std::string const& message) : error(message), field_(std::move(field)) {}
    [[nodiscard]] std::string const& field() const noexcept { return field_; }

private:
    std::string field_;
};

}  // namespace berth
