#pragma once
// libssh sessions for the SSH driver: connect with TCP_NODELAY and TCP keepalive, verify the host
// key against the known hosts (strict by default), authenticate with a private key held in memory
// or read from a file. Private to berth/drivers/ssh.hpp; the only header besides
// detail/channel.hpp that includes libssh.

#include <berth/drivers/ssh/error.hpp>  // ssh_error, ssh_errc

#include <libssh/libssh.h>  // ssh_session, ssh_connect, ssh_session_is_known_server, ssh_pki_*

#include <chrono>       // std::chrono::milliseconds
#include <cstdlib>      // mkstemp, std::getenv
#include <memory>       // std::unique_ptr
#include <new>          // std::bad_alloc
#include <optional>     // std::optional
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <type_traits>  // std::remove_pointer_t

#include <netinet/in.h>   // IPPROTO_TCP
#include <netinet/tcp.h>  // TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT
#include <sys/socket.h>   // setsockopt, SO_KEEPALIVE
#include <unistd.h>       // write, close, unlink

namespace berth::detail::ssh {

struct session_deleter {
    void operator()(ssh_session s) const noexcept {
        if (ssh_is_connected(s)) ssh_disconnect(s);
        ssh_free(s);
    }
};
using session_ptr = std::unique_ptr<std::remove_pointer_t<ssh_session>, session_deleter>;

struct channel_deleter {
    void operator()(ssh_channel c) const noexcept {
        if (ssh_channel_is_open(c)) ssh_channel_close(c);
        ssh_channel_free(c);
    }
};
using channel_ptr = std::unique_ptr<std::remove_pointer_t<ssh_channel>, channel_deleter>;

struct key_deleter {
    void operator()(ssh_key k) const noexcept { ssh_key_free(k); }
};
using key_ptr = std::unique_ptr<std::remove_pointer_t<ssh_key>, key_deleter>;

/// Everything needed to open one authenticated session. `private_key` is secret: it is only ever
/// handed to libssh, never formatted into a message.
struct endpoint {
    std::string host;
    int port = 22;
    std::string username;
    std::optional<std::string> known_hosts_text;  ///< known_hosts content (the environment's knownHosts)
    std::optional<std::string> known_hosts_file;  ///< else this file; else libssh's defaults
    bool strict_host_key_checking = true;
    std::optional<std::string> private_key_file;
    std::string private_key;  ///< key text; wins over the file when non-empty
    std::string passphrase;
    std::chrono::milliseconds connect_timeout{10000};
    std::chrono::seconds keepalive_interval{30};

    /// `user@host:port`, the way every message names the destination.
    [[nodiscard]] std::string destination() const { return username + "@" + host + ":" + std::to_string(port); }
};

inline std::string session_error(ssh_session s) {
    char const* e = ssh_get_error(s);
    return (e != nullptr && *e != '\0') ? std::string(e) : std::string("unknown libssh error");
}

/// The server key's `SHA256:...` fingerprint, or "(unknown)".
inline std::string server_fingerprint(ssh_session s) {
    ssh_key raw = nullptr;
    if (ssh_get_server_publickey(s, &raw) != SSH_OK) return "(unknown)";
    key_ptr key(raw);
    unsigned char* hash = nullptr;
    size_t len = 0;
    if (ssh_get_publickey_hash(key.get(), SSH_PUBLICKEY_HASH_SHA256, &hash, &len) != 0) return "(unknown)";
    char* fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, len);
    ssh_clean_pubkey_hash(&hash);
    std::string out = std::string(ssh_key_type_to_char(ssh_key_type(key.get()))) + " " + (fp ? fp : "(unknown)");
    ssh_string_free_char(fp);
    return out;
}

/// A private temp file holding the known hosts text, removed when this goes away.
class known_hosts_file {
public:
    explicit known_hosts_file(std::string const& text) {
        char const* tmp = std::getenv("TMPDIR");
        path_ = std::string(tmp && *tmp ? tmp : "/tmp") + "/berth-known-hosts-XXXXXX";
        int const fd = ::mkstemp(path_.data());  // mode 0600
        if (fd < 0) throw ssh_error(ssh_errc::connect_failed, "Could not create a temporary known hosts file");
        std::string body = text;
        if (!body.empty() && body.back() != '\n') body += '\n';
        std::size_t off = 0;
        while (off < body.size()) {
            auto const n = ::write(fd, body.data() + off, body.size() - off);
            if (n <= 0) break;
            off += static_cast<std::size_t>(n);
        }
        ::close(fd);
    }
    known_hosts_file(known_hosts_file const&) = delete;
    known_hosts_file& operator=(known_hosts_file const&) = delete;
    ~known_hosts_file() { ::unlink(path_.c_str()); }
    [[nodiscard]] std::string const& path() const noexcept { return path_; }

private:
    std::string path_;
};

/// Opens, verifies and authenticates a session to `ep`.
/// @throws ssh_error connect_failed, host_key_unknown, host_key_changed, key_unreadable, auth_failed.
inline session_ptr connect(endpoint const& ep) {
    session_ptr s(ssh_new());
    if (!s) throw std::bad_alloc();
    auto const dest = ep.destination();
    int const port = ep.port;
    int const nodelay = 1;
    bool const process_config = false;  // never read ~/.ssh/config: the environment's config is the truth
    long const timeout_s = static_cast<long>(ep.connect_timeout.count() / 1000);
    long const timeout_us = static_cast<long>((ep.connect_timeout.count() % 1000) * 1000);
    std::optional<known_hosts_file> kh_tmp;
    if (ep.known_hosts_text) kh_tmp.emplace(*ep.known_hosts_text);
    std::optional<std::string> kh = kh_tmp ? std::optional<std::string>(kh_tmp->path()) : ep.known_hosts_file;

    if (ssh_options_set(s.get(), SSH_OPTIONS_HOST, ep.host.c_str()) != SSH_OK ||
        ssh_options_set(s.get(), SSH_OPTIONS_PORT, &port) != SSH_OK ||
        ssh_options_set(s.get(), SSH_OPTIONS_USER, ep.username.c_str()) != SSH_OK ||
        ssh_options_set(s.get(), SSH_OPTIONS_NODELAY, &nodelay) != SSH_OK ||
        ssh_options_set(s.get(), SSH_OPTIONS_PROCESS_CONFIG, &process_config) != SSH_OK ||
        ssh_options_set(s.get(), SSH_OPTIONS_TIMEOUT, &timeout_s) != SSH_OK ||
        ssh_options_set(s.get(), SSH_OPTIONS_TIMEOUT_USEC, &timeout_us) != SSH_OK)
        throw ssh_error(ssh_errc::connect_failed, "Could not set up an SSH session to " + dest + ": " +
                                                      session_error(s.get()));
    if (kh) {
        // Only the given known hosts count: not ~/.ssh/known_hosts, not /etc/ssh/ssh_known_hosts.
        if (ssh_options_set(s.get(), SSH_OPTIONS_KNOWNHOSTS, kh->c_str()) != SSH_OK ||
            ssh_options_set(s.get(), SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null") != SSH_OK)
            throw ssh_error(ssh_errc::connect_failed, "Could not set the known hosts of " + dest + ": " +
                                                          session_error(s.get()));
    }

    if (ssh_connect(s.get()) != SSH_OK)
        throw ssh_error(ssh_errc::connect_failed, "Could not connect to " + dest + ": " + session_error(s.get()));

    // TCP keepalive: a pooled session whose peer vanished errors out instead of hanging.
    if (int const fd = ssh_get_fd(s.get()); fd >= 0 && ep.keepalive_interval.count() > 0) {
        int const on = 1;
        int const idle = static_cast<int>(ep.keepalive_interval.count());
        int const intvl = idle < 10 ? idle : 10;
        int const cnt = 3;
        ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
        ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
        ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
        ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
    }

    switch (ssh_session_is_known_server(s.get())) {
        case SSH_KNOWN_HOSTS_OK: break;
        case SSH_KNOWN_HOSTS_CHANGED:
        case SSH_KNOWN_HOSTS_OTHER:
            // Refused whatever strictHostKeyChecking says: a contradicting key is never accepted.
            throw ssh_error(ssh_errc::host_key_changed,
                            "Host key verification failed for " + dest + ": the server presented " +
                                server_fingerprint(s.get()) +
                                ", which does not match the known hosts entry for this host (the key changed, or "
                                "someone is intercepting the connection); refusing to connect.");
        case SSH_KNOWN_HOSTS_UNKNOWN:
        case SSH_KNOWN_HOSTS_NOT_FOUND:
        case SSH_KNOWN_HOSTS_ERROR:
        default:
            if (ep.strict_host_key_checking)
                throw ssh_error(ssh_errc::host_key_unknown,
                                "Host key verification failed for " + dest + ": the server's key " +
                                    server_fingerprint(s.get()) +
                                    " is not in the known hosts (strictHostKeyChecking is on; add the host to "
                                    "knownHosts); refusing to connect.");
            break;
    }

    int rc = SSH_AUTH_ERROR;
    if (!ep.private_key.empty() || ep.private_key_file) {
        ssh_key raw = nullptr;
        char const* pass = ep.passphrase.empty() ? nullptr : ep.passphrase.c_str();
        int const imported = !ep.private_key.empty()
                                 ? ssh_pki_import_privkey_base64(ep.private_key.c_str(), pass, nullptr, nullptr, &raw)
                                 : ssh_pki_import_privkey_file(ep.private_key_file->c_str(), pass, nullptr, nullptr, &raw);
        if (imported != SSH_OK || raw == nullptr)
            throw ssh_error(ssh_errc::key_unreadable,
                            "Could not load the SSH private key for " + dest +
                                (ep.private_key.empty() ? " from " + *ep.private_key_file
                                                        : std::string(" (key text given in memory)")) +
                                ": not a readable private key, or a wrong passphrase.");
        key_ptr key(raw);
        rc = ssh_userauth_publickey(s.get(), nullptr, key.get());
    } else {
        rc = ssh_userauth_publickey_auto(s.get(), nullptr, nullptr);
    }
    if (rc != SSH_AUTH_SUCCESS)
        throw ssh_error(ssh_errc::auth_failed, "SSH authentication failed for " + dest +
                                                   ": the server did not accept the private key (" +
                                                   session_error(s.get()) + ").");
    return s;
}

}  // namespace berth::detail::ssh
