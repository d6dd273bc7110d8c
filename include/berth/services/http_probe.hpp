#pragma once
//! @file
//! One HTTP GET with a deadline, over Boost.Beast: the readiness and health checks of runtime
//! services (upstream's `fetch(url)`; `response.ok` is a 2xx status). Only the services headers
//! include Beast; the core does not.
//!
//! Supports `http://host[:port][/path]` URLs (the services berth starts listen on plain HTTP on
//! this machine); any other scheme is reported as an error, not probed.

#include <boost/asio/connect.hpp>           // async_connect (through tcp_stream)
#include <boost/asio/io_context.hpp>        // io_context
#include <boost/asio/ip/tcp.hpp>            // tcp::resolver
#include <boost/beast/core/flat_buffer.hpp> // flat_buffer
#include <boost/beast/core/tcp_stream.hpp>  // tcp_stream
#include <boost/beast/http/empty_body.hpp>  // empty_body
#include <boost/beast/http/read.hpp>        // async_read
#include <boost/beast/http/string_body.hpp> // string_body
#include <boost/beast/http/write.hpp>       // async_write

#include <chrono>    // std::chrono::milliseconds
#include <optional>  // std::optional
#include <string>    // std::string

namespace berth::services {

/// How a probe ended: a status code, or why there is none.
struct http_probe_result {
    std::optional<int> status{};
    std::string error{};  ///< when there is no status
    [[nodiscard]] bool ok() const noexcept { return status && *status >= 200 && *status < 300; }
};

/// The parts of an `http://` URL.
struct http_url {
    std::string host;
    std::string port = "80";
    std::string target = "/";
};

/// Parses `http://host[:port][/path]`; nullopt for anything else.
[[nodiscard]] inline std::optional<http_url> parse_http_url(std::string const& url) {
    constexpr std::string_view scheme = "http://";
    if (url.rfind(scheme, 0) != 0) return std::nullopt;
    auto rest = std::string_view(url).substr(scheme.size());
    auto const slash = rest.find_first_of("/?");
    auto authority = rest.substr(0, slash);
    http_url u;
    if (slash != std::string_view::npos) {
        u.target = std::string(rest.substr(slash));
        if (u.target.front() == '?') u.target = "/" + u.target;
    }
    if (auto const at = authority.rfind('@'); at != std::string_view::npos) authority.remove_prefix(at + 1);
    if (!authority.empty() && authority.front() == '[') {  // [::1]:port
        auto const close = authority.find(']');
        if (close == std::string_view::npos) return std::nullopt;
        u.host = std::string(authority.substr(1, close - 1));
        if (close + 1 < authority.size() && authority[close + 1] == ':') u.port = std::string(authority.substr(close + 2));
    } else if (auto const colon = authority.rfind(':'); colon != std::string_view::npos) {
        u.host = std::string(authority.substr(0, colon));
        u.port = std::string(authority.substr(colon + 1));
    } else {
        u.host = std::string(authority);
    }
    if (u.host.empty() || u.port.empty() || u.port.find_first_not_of("0123456789") != std::string::npos)
        return std::nullopt;
    return u;
}

/// GET `url`, giving up after `timeout` (connect, write and read together).
[[nodiscard]] inline http_probe_result http_get(std::string const& url, std::chrono::milliseconds timeout) {
    namespace beast = boost::beast;
    namespace http = beast::http;
    using tcp = boost::asio::ip::tcp;
    auto const u = parse_http_url(url);
    if (!u) return {std::nullopt, "unsupported URL (berth probes http://host[:port]/path only)"};
    boost::asio::io_context ioc;
    tcp::resolver resolver(ioc);
    boost::system::error_code ec;
    auto const endpoints = resolver.resolve(u->host, u->port, ec);
    if (ec) return {std::nullopt, ec.message()};
    beast::tcp_stream stream(ioc);
    stream.expires_after(timeout);
    http::request<http::empty_body> req{http::verb::get, u->target, 11};
    req.set(http::field::host, u->host);
    req.set(http::field::user_agent, "berth");
    req.set(http::field::connection, "close");
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http_probe_result result;
    stream.async_connect(endpoints, [&](boost::system::error_code e, tcp::endpoint const&) {
        if (e) {
            result.error = e.message();
            return;
        }
        http::async_write(stream, req, [&](boost::system::error_code we, std::size_t) {
            if (we) {
                result.error = we.message();
                return;
            }
            http::async_read(stream, buffer, res, [&](boost::system::error_code re, std::size_t) {
                if (re) result.error = re.message();
                else result.status = static_cast<int>(res.result_int());
            });
        });
    });
    ioc.run();
    stream.socket().close(ec);
    if (!result.status && result.error.empty()) result.error = "no response";
    return result;
}

}  // namespace berth::services
