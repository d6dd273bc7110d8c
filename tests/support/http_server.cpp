// berth_test_http_server — the small HTTP server the runtime-service tests start as a real
// service (built by the project itself, so that a fresh machine needs no language runtime).
//
//   berth_test_http_server [--port N] [--delay-ms D] [--health-status CODE] [--stderr TEXT]
//                          [--ignore-term] [--exit-after-ms D]
//
// Listens on 127.0.0.1:N (default $PORT, else 0: the kernel chooses), after sleeping D ms.
// GET /health answers CODE (default 200) with "ok"; any other path answers 200 with its path.
// Prints "listening on <port>" on stdout once listening and TEXT (if given) on stderr at start.
// --ignore-term ignores SIGTERM (to test the SIGKILL after the grace); --exit-after-ms exits
// with status 3 after D ms. SIGPIPE is ignored, so it outlives a supervisor that closed its pipes.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

int main(int argc, char** argv) {
    int port = std::getenv("PORT") ? std::atoi(std::getenv("PORT")) : 0;
    int delay_ms = 0, health_status = 200, exit_after_ms = -1;
    bool ignore_term = false;
    std::string stderr_text;
    for (int i = 1; i < argc; ++i) {
        std::string const a = argv[i];
        auto next = [&]() -> char const* { return i + 1 < argc ? argv[++i] : ""; };
        if (a == "--port") port = std::atoi(next());
        else if (a == "--delay-ms") delay_ms = std::atoi(next());
        else if (a == "--health-status") health_status = std::atoi(next());
        else if (a == "--stderr") stderr_text = next();
        else if (a == "--ignore-term") ignore_term = true;
        else if (a == "--exit-after-ms") exit_after_ms = std::atoi(next());
        else {
            std::fprintf(stderr, "berth_test_http_server: unknown option %s\n", a.c_str());
            return 2;
        }
    }
    std::signal(SIGPIPE, SIG_IGN);
    if (ignore_term) std::signal(SIGTERM, SIG_IGN);
    if (!stderr_text.empty()) {
        std::fprintf(stderr, "%s\n", stderr_text.c_str());
        std::fflush(stderr);
    }
    if (exit_after_ms >= 0)
        std::thread([exit_after_ms] {
            std::this_thread::sleep_for(std::chrono::milliseconds(exit_after_ms));
            std::_Exit(3);
        }).detach();
    if (delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));

    int const s = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<unsigned short>(port));
    if (::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(s, 64) != 0) {
        std::fprintf(stderr, "berth_test_http_server: cannot listen on port %d: %s\n", port, std::strerror(errno));
        return 1;
    }
    socklen_t len = sizeof addr;
    ::getsockname(s, reinterpret_cast<sockaddr*>(&addr), &len);
    std::printf("listening on %d\n", ntohs(addr.sin_port));
    std::fflush(stdout);

    while (true) {
        int const c = ::accept(s, nullptr, nullptr);
        if (c < 0) continue;
        std::string req;
        char buf[4096];
        while (req.find("\r\n\r\n") == std::string::npos) {
            ssize_t const n = ::read(c, buf, sizeof buf);
            if (n <= 0) break;
            req.append(buf, static_cast<std::size_t>(n));
        }
        std::string path = "/";
        if (auto const sp = req.find(' '); sp != std::string::npos) {
            auto const sp2 = req.find(' ', sp + 1);
            path = req.substr(sp + 1, sp2 == std::string::npos ? std::string::npos : sp2 - sp - 1);
        }
        int const status = path == "/health" ? health_status : 200;
        std::string const body = path == "/health" ? "ok" : path;
        std::string const res = "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Length: " +
                                std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
        [[maybe_unused]] auto w = ::write(c, res.data(), res.size());
        ::close(c);
    }
}
