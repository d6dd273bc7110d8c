#pragma once
//! @file
//! berth::services::port_reserver — automatic ports (`port: {type: "auto"}`) that two berth
//! processes starting services at the same moment never share.
//!
//! Upstream's allocatePort binds 127.0.0.1:0 and closes the socket: the kernel's answer is free
//! *now*, and nothing stops a second process from getting the same answer before the first
//! service listens. berth keeps the kernel's choice but reserves it: under an exclusive flock on
//! `<registry dir>/ports.lock` it asks the kernel, refuses a port that a live reservation
//! (`<registry dir>/ports/<port>`, naming the reserving process) or a live registry record already
//! holds, and writes its reservation before the lock is released. A reservation lasts until
//! release() (the service stopped) or until the reserving process is gone.

#include <berth/error.hpp>                 // berth::error
#include <berth/services/detail/proc.hpp>  // pid_alive
#include <berth/services/registry.hpp>     // service_registry (ports of live records)

#include <cerrno>      // errno, EINTR
#include <cstdlib>     // std::atoll
#include <cstring>     // std::strerror
#include <iterator>    // std::istreambuf_iterator
#include <chrono>      // std::chrono::milliseconds
#include <cstdint>     // std::int64_t
#include <filesystem>  // std::filesystem
#include <optional>    // std::optional
#include <fstream>     // std::ifstream, std::ofstream
#include <set>         // std::set
#include <string>      // std::string
#include <thread>      // std::this_thread::sleep_for

#include <arpa/inet.h>   // htonl, ntohs, INADDR_LOOPBACK
#include <fcntl.h>       // open, O_CREAT, O_RDWR, O_CLOEXEC
#include <netinet/in.h>  // sockaddr_in
#include <sys/file.h>    // flock, LOCK_EX, LOCK_UN
#include <sys/socket.h>  // socket, bind, getsockname
#include <unistd.h>      // close, getpid

namespace berth::services {

class port_reserver {
public:
    explicit port_reserver(std::filesystem::path registry_dir) : dir_(std::move(registry_dir)) {}

    /// A port on 127.0.0.1 that is free and reserved for `holder` (a service key, for the record).
    /// @throws berth::error when the lock cannot be taken or no free port is found in 64 tries.
    [[nodiscard]] std::int64_t reserve(std::string const& holder) const {
        auto const guard = lock();
        std::set<std::int64_t> held;
        for (auto const& r : service_registry(dir_).list())
            if (r.port && detail::pid_alive(r.pid)) held.insert(*r.port);
        for (int attempt = 0; attempt < 64; ++attempt) {
            auto const port = kernel_port();
            if (held.contains(port) || reserved_by_live_process(port)) continue;
            write_reservation(port, holder);
            return port;
        }
        throw error("Failed to allocate port: 64 ports offered by the kernel were all reserved");
    }

    /// `port` reserved for `holder` when it is free now (nothing listens or can bind it on
    /// 127.0.0.1, no live reservation or registry record holds it), else nullopt: how a stopped
    /// service's port is given back to its next start. Waits up to 250 ms for a port that cannot be
    /// bound yet.
    /// @throws berth::error when the lock cannot be taken.
    [[nodiscard]] std::optional<std::int64_t> try_reserve(std::int64_t port, std::string const& holder) const {
        if (port <= 0 || port > 65535) return std::nullopt;
        auto const guard = lock();
        if (reserved_by_live_process(port)) return std::nullopt;
        for (auto const& r : service_registry(dir_).list())
            if (r.port == port && detail::pid_alive(r.pid)) return std::nullopt;
        // A service stopped a moment ago may still be closing its socket (its group's other
        // processes exit after the leader): give it a little time.
        for (int i = 0; !bindable(port); ++i) {
            if (i == 25) return std::nullopt;
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        write_reservation(port, holder);
        return port;
    }

private:
    struct lock_guard {
        int fd;
        explicit lock_guard(int f) : fd(f) {}
        lock_guard(lock_guard const&) = delete;
        lock_guard& operator=(lock_guard const&) = delete;
        ~lock_guard() {
            ::flock(fd, LOCK_UN);
            ::close(fd);
        }
    };

    /// The exclusive flock on `<dir>/ports.lock`, held until the guard goes.
    [[nodiscard]] lock_guard lock() const {
        std::error_code ec;
        std::filesystem::create_directories(dir_ / "ports", ec);
        auto const lock_path = (dir_ / "ports.lock").string();
        int const fd = ::open(lock_path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
        if (fd < 0) throw error("Cannot open the port lock " + lock_path + ": " + std::strerror(errno));
        while (::flock(fd, LOCK_EX) != 0)
            if (errno != EINTR) {
                int const e = errno;
                ::close(fd);
                throw error("Cannot lock " + lock_path + ": " + std::strerror(e));
            }
        return lock_guard{fd};
    }

    void write_reservation(std::int64_t port, std::string const& holder) const {
        std::ofstream out(file_for(port), std::ios::trunc);
        out << "{\"pid\":" << ::getpid() << ",\"holder\":\"" << holder << "\"}\n";
        if (!out) throw error("Cannot write the port reservation " + file_for(port).string());
    }

    /// Whether 127.0.0.1:`port` can be bound now by a server that sets SO_REUSEADDR, as Node's and
    /// most servers do (without it, the TIME_WAIT of the last health check would keep a just-stopped
    /// service's port from its next start).
    [[nodiscard]] static bool bindable(std::int64_t port) {
        int const s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0) return false;
        int one = 1;
        ::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = htons(static_cast<std::uint16_t>(port));
        bool const ok = ::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
        ::close(s);
        return ok;
    }

public:

    /// Drops the reservation of `port` (no error when there is none).
    void release(std::int64_t port) const {
        std::error_code ec;
        std::filesystem::remove(file_for(port), ec);
    }

    /// Whether a live process holds a reservation of `port`.
    [[nodiscard]] bool reserved_by_live_process(std::int64_t port) const {
        std::ifstream in(file_for(port));
        if (!in) return false;
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        auto const p = text.find("\"pid\":");
        if (p == std::string::npos) return false;
        return detail::pid_alive(std::atoll(text.c_str() + p + 6));
    }

private:
    [[nodiscard]] std::filesystem::path file_for(std::int64_t port) const {
        return dir_ / "ports" / std::to_string(port);
    }

    /// upstream allocatePort: bind 127.0.0.1:0, read the port, close.
    [[nodiscard]] static std::int64_t kernel_port() {
        int const s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0) throw error(std::string("Failed to allocate port: ") + std::strerror(errno));
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = 0;
        socklen_t len = sizeof addr;
        if (::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
            ::getsockname(s, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
            int const e = errno;
            ::close(s);
            throw error(std::string("Failed to allocate port: ") + std::strerror(e));
        }
        ::close(s);
        return ntohs(addr.sin_port);
    }

    std::filesystem::path dir_;
};

}  // namespace berth::services
