#pragma once
// Definitions of berth/plugins/worker_host.hpp (included at its bottom; include that header instead).

#include <berth/plugins/worker_host.hpp>  // the declarations (a no-op when included from there)

#include <berth/plugins/detail/line_splitter.hpp>   // line_splitter
#include <berth/plugins/detail/worker_process.hpp>  // spawn_worker
#include <berth/process/detail/sigpipe.hpp>         // write_without_sigpipe
#include <berth/process/detail/unique_fd.hpp>       // unique_fd, set_nonblocking, errno_text
#include <berth/process/detail/spawn.hpp>             // open_pidfd

#include <boost/json/parse.hpp>      // boost::json::parse
#include <boost/json/serialize.hpp>  // boost::json::serialize
#include <boost/json/string.hpp>     // boost::json::string

#include <algorithm>  // std::min
#include <array>      // std::array
#include <cerrno>     // errno, EAGAIN, EINTR
#include <csignal>    // kill, SIGTERM, SIGKILL
#include <cstdlib>    // std::getenv
#include <cstring>    // sigabbrev_np
#include <deque>      // std::deque
#include <exception>  // std::exception, std::exception_ptr
#include <future>     // std::promise
#include <thread>     // std::thread
#include <utility>    // std::move, std::pair

#include <poll.h>      // poll
#include <sys/wait.h>  // waitid, waitpid, WIFEXITED, ...
#include <unistd.h>    // read

namespace berth::plugins {

namespace detail {

using steady = std::chrono::steady_clock;

/// upstream's formatWorkerFailureMessage: the message, then the tail of the worker's stderr.
[[nodiscard]] inline std::string with_stderr(std::string message, std::string_view excerpt) {
    while (!excerpt.empty() && (excerpt.back() == '\n' || excerpt.back() == ' ' || excerpt.back() == '\r' ||
                                excerpt.back() == '\t'))
        excerpt.remove_suffix(1);
    while (!excerpt.empty() && (excerpt.front() == '\n' || excerpt.front() == ' ' || excerpt.front() == '\r' ||
                                excerpt.front() == '\t'))
        excerpt.remove_prefix(1);
    if (excerpt.empty() || message.find(excerpt) != std::string::npos) return message;
    return message + "\n\nWorker stderr:\n" + std::string(excerpt);
}

/// Node's view of a wait status: `code=1, signal=null` or `code=null, signal=SIGKILL`.
[[nodiscard]] inline std::string exit_description(int status) {
    if (WIFEXITED(status)) return "code=" + std::to_string(WEXITSTATUS(status)) + ", signal=null";
    if (WIFSIGNALED(status)) {
        int const sig = WTERMSIG(status);
        char const* abbrev = nullptr;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
        abbrev = ::sigabbrev_np(sig);
#endif
        return "code=null, signal=" + (abbrev != nullptr ? "SIG" + std::string(abbrev) : std::to_string(sig));
    }
    return "code=null, signal=null";
}

/// The JSON text of a string.
[[nodiscard]] inline std::string quoted(std::string_view s) { return boost::json::serialize(boost::json::string(s)); }

/// upstream's deriveInvocationScope for the methods berth calls: `{companyId}` when the params
/// carry a non-empty one, else `{}`.
[[nodiscard]] inline std::string invocation_scope(boost::json::value const& params) {
    if (auto const* o = params.if_object())
        if (auto const* c = o->if_contains("companyId"))
            if (auto const* s = c->if_string()) {
                std::string_view v(*s);
                while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
                while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
                if (!v.empty()) return "{\"companyId\":" + quoted(v) + "}";
            }
    return "{}";
}

/// The worker's environment when the options give none: upstream's allow-list.
[[nodiscard]] inline process::environment_map default_worker_environment(std::string const& plugin_id) {
    auto env_or = [](char const* name, char const* fallback) -> std::string {
        char const* v = std::getenv(name);
        return v != nullptr ? v : fallback;
    };
    process::environment_map env;
    env["HOME"] = env_or("HOME", "");
    env["PATH"] = env_or("PATH", "/usr/local/bin:/usr/bin:/bin");
    env["NODE_PATH"] = env_or("NODE_PATH", "");
    env["PAPERCLIP_PLUGIN_ID"] = plugin_id;
    env["NODE_ENV"] = env_or("NODE_ENV", "production");
    env["TZ"] = env_or("TZ", "UTC");
    return env;
}

}  // namespace detail

// ---- state ---------------------------------------------------------------------------------------

/// One worker process and its reader thread. Fields marked (m) are guarded by the host's mutex_,
/// (r) by read_mutex.
struct worker_host::incarnation {
    explicit incarnation(std::size_t max_line_bytes) : out_lines(max_line_bytes) {}

    pid_t pid = 0;
    process::detail::unique_fd in;  ///< our end of its stdin, written under write_mutex
    std::mutex write_mutex;
    std::thread reader;
    bool exited = false;        ///< (m) reaped: pid may no longer be signalled
    bool initialized = false;   ///< (m)
    bool stopping = false;      ///< (m) stop() asked it to go: its exit is not a crash
    std::string stderr_excerpt; ///< (m)
    std::string broken;         ///< (m) why the host stopped it (a protocol violation), if it did
    std::string exit_message;   ///< (m) what its calls fail with once it exited
    std::condition_variable exit_cv;

    // Its stdout, read by the leading call or the reader thread (see the class comment). Set
    // before the worker is published and closed with the incarnation, so that a poll never sees
    // a descriptor number that was reused.
    process::detail::unique_fd out;    ///< our end of its stdout (non-blocking)
    process::detail::unique_fd pidfd;  ///< readable once it exited (none on kernels without pidfd_open)
    std::mutex read_mutex;             ///< held while reading stdout and handling its lines
    detail::line_splitter out_lines;   ///< (r)
    bool stdout_broken = false;        ///< (r) a line passed the bound: the rest is dropped
    std::atomic<bool> stdout_eof{false};
    std::vector<char> read_buffer = std::vector<char>(64 * 1024);  ///< (r)
    pending_call* leader = nullptr;    ///< (m) the call reading stdout now, if any
    bool thread_reads = true;          ///< (m) the reader thread reads stdout (no call led lately)
    std::uint64_t leads = 0;           ///< (m) how many times a call took the lead
    bool exit_seen = false;            ///< (m) it exited: nobody leads; the reader thread ends its calls

    /// Initialized, alive, and not being stopped for breaking the protocol. Caller holds mutex_.
    [[nodiscard]] bool usable() const noexcept { return initialized && !exited && broken.empty(); }

    /// Sends `sig` to the worker's group and to the worker, unless it was reaped. Caller holds mutex_.
    void signal_locked(int sig) const noexcept {
        if (exited || pid <= 0) return;
        ::kill(-pid, sig);
        ::kill(pid, sig);
    }
};

/// A call in flight: lives on the calling thread's stack, reachable from pending_ (under mutex_).
struct worker_host::pending_call {
    incarnation const* inc = nullptr;
    std::string_view method;
    bool wants_log = false;
    bool done = false;
    boost::json::value result;
    std::optional<rpc_error> error;
    std::deque<std::pair<std::string, std::string>> chunks;  ///< execute.log (stream, chunk)
    std::condition_variable cv;
};

// ---- construction --------------------------------------------------------------------------------

inline worker_host::worker_host(worker_options options) : options_(std::move(options)) {
    // The invocation id is opaque to the worker; it only has to name one call of this host.
    invocation_prefix_ = "berth-" + std::to_string(reinterpret_cast<std::uintptr_t>(this)) + "-";
}

inline worker_host::~worker_host() { stop(); }

inline bool worker_host::running() const {
    std::lock_guard lock(mutex_);
    return current_ && current_->usable();
}

inline worker_diagnostics worker_host::diagnostics() const {
    std::lock_guard lock(mutex_);
    worker_diagnostics d;
    if (current_ && !current_->exited) d.pid = current_->pid;
    d.starts = starts_;
    d.crashes = crashes_;
    d.malformed_lines = malformed_lines_;
    d.unmatched_responses = unmatched_responses_;
    d.calls_in_flight = pending_.size();
    return d;
}

// ---- lifecycle -----------------------------------------------------------------------------------

inline void worker_host::start() { (void)ensure_running(); }

inline std::shared_ptr<worker_host::incarnation> worker_host::ensure_running() {
    {
        std::lock_guard lock(mutex_);
        if (current_ && current_->usable()) return current_;
    }
    std::lock_guard life(lifecycle_);
    {
        std::lock_guard lock(mutex_);
        if (current_ && current_->usable()) return current_;
    }
    return start_locked();
}

inline void worker_host::join_reader(std::shared_ptr<incarnation> const& inc) noexcept {
    if (inc && inc->reader.joinable()) inc->reader.join();
}

inline std::shared_ptr<worker_host::incarnation> worker_host::start_locked() {
    // A previous worker that died (or failed to initialize) is reaped by its reader: join it.
    if (std::shared_ptr<incarnation> old = [&] {
            std::lock_guard lock(mutex_);
            return std::exchange(current_, nullptr);
        }()) {
        {
            std::lock_guard lock(mutex_);
            old->signal_locked(SIGKILL);
        }
        join_reader(old);
    }

    auto inc = std::make_shared<incarnation>(options_.max_line_bytes);
    std::promise<void> spawned;
    auto spawned_result = spawned.get_future();
    inc->reader = std::thread([this, raw = inc.get(), &spawned] {
        // Fork here, not in the caller's thread: the worker's parent-death signal is tied to the
        // thread that forked it, and this thread lives exactly as long as the worker.
        std::optional<detail::worker_process> w;
        try {
            process::run_options run;
            run.base_environment = options_.environment ? *options_.environment
                                                        : detail::default_worker_environment(options_.plugin_id);
            w = detail::spawn_worker(options_.command, run);
            process::detail::set_nonblocking(w->stdin_fd);
            process::detail::set_nonblocking(w->stdout_fd);
            process::detail::set_nonblocking(w->stderr_fd);
        } catch (...) {
            if (w) {
                ::kill(-w->pid, SIGKILL);
                ::kill(w->pid, SIGKILL);
                while (::waitpid(w->pid, nullptr, 0) < 0 && errno == EINTR) {
                }
            }
            spawned.set_exception(std::current_exception());
            return;
        }
        raw->pid = w->pid;
        raw->in = std::move(w->stdin_fd);
        raw->out = std::move(w->stdout_fd);
        raw->pidfd = process::detail::open_pidfd(w->pid);
        spawned.set_value();  // `spawned` dies with start_locked's frame: not touched again
        reader_loop(raw, std::move(w->stderr_fd));
    });
    try {
        spawned_result.get();
    } catch (std::exception const& e) {
        join_reader(inc);
        throw rpc_error(codes::worker_unavailable, std::string(methods::initialize),
                        "Worker initialize failed for \"" + options_.plugin_id +
                            "\": Worker process failed to start: " + e.what());
    }
    {
        std::lock_guard lock(mutex_);
        current_ = inc;
        ++starts_;
    }

    boost::json::object params;
    params["manifest"] = options_.manifest;
    params["config"] = options_.config;
    params["instanceInfo"] = boost::json::object{{"instanceId", options_.instance_id},
                                                 {"hostVersion", options_.host_version}};
    params["apiVersion"] = 1;
    params["databaseNamespace"] = nullptr;
    std::vector<std::string> supported;
    try {
        boost::json::value const reply = call_on(inc, methods::initialize, params, options_.initialize_timeout, {});
        auto const* o = reply.if_object();
        auto const* ok = o ? o->if_contains("ok") : nullptr;
        if (ok == nullptr || !ok->is_bool() || !ok->get_bool())
            throw berth::error("Worker initialize returned ok=false");
        if (auto const* list = o->if_contains("supportedMethods"); list && list->is_array())
            for (auto const& m : list->get_array())
                if (m.is_string()) supported.emplace_back(m.get_string());
    } catch (std::exception const& e) {
        {
            std::lock_guard lock(mutex_);
            inc->stopping = true;  // the host ends it: not a crash of its own
            inc->signal_locked(SIGKILL);
        }
        join_reader(inc);
        {
            std::lock_guard lock(mutex_);
            if (current_ == inc) current_.reset();
        }
        throw rpc_error(codes::worker_unavailable, std::string(methods::initialize),
                        "Worker initialize failed for \"" + options_.plugin_id + "\": " + e.what());
    }
    std::lock_guard lock(mutex_);
    inc->initialized = true;
    supported_methods_ = std::move(supported);
    return inc;
}

inline void worker_host::stop() noexcept {
    std::lock_guard life(lifecycle_);
    stop_locked();
}

inline void worker_host::stop_locked() noexcept {
    std::shared_ptr<incarnation> inc;
    {
        std::lock_guard lock(mutex_);
        inc = current_;
        if (!inc) return;
        inc->stopping = true;
    }
    auto wait_exit = [&](std::chrono::milliseconds d) {
        std::unique_lock lock(mutex_);
        return inc->exit_cv.wait_for(lock, d, [&] { return inc->exited; });
    };
    bool gone = wait_exit(std::chrono::milliseconds(0));
    if (!gone) {
        // 1. `shutdown`, racing the exit (the SDK exits right after it answers), then a short grace.
        try {
            (void)call_on(inc, methods::shutdown, boost::json::object{}, options_.shutdown_drain, {});
        } catch (...) {
        }
        gone = wait_exit(std::chrono::milliseconds(500));
    }
    if (!gone) {
        {
            std::lock_guard lock(mutex_);
            inc->signal_locked(SIGTERM);
        }
        gone = wait_exit(options_.sigterm_grace);
    }
    if (!gone) {
        std::lock_guard lock(mutex_);
        inc->signal_locked(SIGKILL);
    }
    join_reader(inc);
    std::lock_guard lock(mutex_);
    if (current_ == inc) current_.reset();
}

// ---- calls ---------------------------------------------------------------------------------------

inline boost::json::value worker_host::call(std::string_view method, boost::json::value const& params,
                                           call_options const& options) {
    auto timeout = options.timeout.value_or(options_.call_timeout);
    if (timeout.count() <= 0) timeout = options_.call_timeout;
    timeout = std::min(timeout, defaults::max_call_timeout);
    return call_on(ensure_running(), method, params, timeout, options);
}

inline bool worker_host::supports(std::string_view method) {
    (void)ensure_running();
    std::lock_guard lock(mutex_);
    for (auto const& m : supported_methods_)
        if (m == method) return true;
    return false;
}

inline std::vector<std::string> worker_host::supported_methods() {
    (void)ensure_running();
    std::lock_guard lock(mutex_);
    return supported_methods_;
}

namespace detail {

/// Writes all of `line` to the worker's stdin (non-blocking), waiting for room until `deadline`.
/// Returns 0 when all was written, else the errno (ETIMEDOUT when the deadline passed).
[[nodiscard]] inline int write_line(int fd, std::string_view line, steady::time_point deadline) noexcept {
    while (!line.empty()) {
        ssize_t const n = process::detail::write_without_sigpipe(fd, line.data(), line.size());
        if (n > 0) {
            line.remove_prefix(static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno != EAGAIN) return errno;
        auto const left = std::chrono::ceil<std::chrono::milliseconds>(deadline - steady::now()).count();
        if (left <= 0) return ETIMEDOUT;
        pollfd p{fd, POLLOUT, 0};
        if (::poll(&p, 1, static_cast<int>(std::min<long long>(left, 1 << 30))) < 0 && errno != EINTR) return errno;
    }
    return 0;
}

}  // namespace detail

inline boost::json::value worker_host::call_on(std::shared_ptr<incarnation> const& inc, std::string_view method,
                                              boost::json::value const& params, std::chrono::milliseconds timeout,
                                              call_options const& options) {
    auto deadline = detail::steady::now() + timeout;
    pending_call p;
    p.inc = inc.get();
    p.method = method;
    p.wants_log = static_cast<bool>(options.on_log);
    std::int64_t id = 0;
    auto not_running = [&] {
        return rpc_error(codes::worker_unavailable, std::string(method),
                         "Cannot call \"" + std::string(method) + "\" — worker for \"" + options_.plugin_id +
                             "\" is not running");
    };
    {
        std::lock_guard lock(mutex_);
        if (inc->exited)
            throw rpc_error(codes::worker_unavailable, std::string(method),
                            inc->exit_message.empty() ? not_running().what() : inc->exit_message);
        if (!inc->broken.empty()) throw rpc_error(codes::worker_unavailable, std::string(method), inc->broken);
        id = next_id_++;
        pending_.emplace(id, &p);
    }
    // However this call ends, no reader may reach `p` afterwards, and if nobody leads now (this
    // call led, or was handed the lead and leaves without taking it) another waiting call must.
    struct unregister {
        worker_host& host;
        incarnation& inc;
        pending_call& p;
        std::int64_t id;
        ~unregister() {
            std::lock_guard lock(host.mutex_);
            host.pending_.erase(id);
            host.give_up_lead_locked(inc, p);
        }
    } const unregister_on_exit{*this, *inc, p, id};

    std::string line;
    {
        std::string const body = boost::json::serialize(params);
        std::string const scope = detail::invocation_scope(params);
        line.reserve(body.size() + scope.size() + method.size() + 128);
        line.append(R"({"jsonrpc":"2.0","id":)").append(std::to_string(id));
        line.append(R"(,"method":)").append(detail::quoted(method));
        line.append(R"(,"params":)").append(body);
        line.append(R"(,"paperclipInvocation":{"id":")").append(invocation_prefix_).append(std::to_string(id));
        line.append(R"(","scope":)").append(scope).append("}}\n");
    }
    int werr = 0;
    {
        std::lock_guard w(inc->write_mutex);
        werr = detail::write_line(inc->in.get(), line, deadline);
        if (werr == ETIMEDOUT) {
            // Part of the line may be in the pipe: the stream is no longer framed. End the worker.
            std::lock_guard lock(mutex_);
            if (inc->broken.empty())
                inc->broken = "Worker for plugin \"" + options_.plugin_id + "\" did not read its input for " +
                              std::to_string(timeout.count()) + "ms; it was stopped";
            inc->signal_locked(SIGKILL);
        }
    }
    if (werr == ETIMEDOUT)
        throw rpc_error(codes::timeout, std::string(method),
                        "RPC call \"" + std::string(method) + "\" timed out after " + std::to_string(timeout.count()) +
                            "ms");
    auto send_failed = [&] {
        return rpc_error(codes::worker_unavailable, std::string(method),
                         "Failed to send \"" + std::string(method) + "\" to worker: " +
                             process::detail::errno_text(werr));
    };
    if (werr != 0 && werr != EPIPE) throw send_failed();
    // EPIPE: the worker closed its input, nearly always because it exited. Its exit status and
    // stderr say why, "Broken pipe" does not: wait a little for the reader to see the exit.
    if (werr == EPIPE) deadline = std::min(deadline, detail::steady::now() + std::chrono::seconds(2));

    auto timed_out = [&] {
        if (werr == EPIPE) return send_failed();
        return rpc_error(codes::timeout, std::string(method),
                         "RPC call \"" + std::string(method) + "\" timed out after " + std::to_string(timeout.count()) +
                             "ms");
    };
    std::unique_lock lock(mutex_);
    for (;;) {
        if (!p.chunks.empty()) {
            auto chunks = std::move(p.chunks);
            p.chunks.clear();
            lock.unlock();
            for (auto const& [stream, chunk] : chunks) options.on_log(stream, chunk);
            lock.lock();
            continue;
        }
        if (p.done) break;
        if (detail::steady::now() >= deadline) throw timed_out();
        if (inc->leader == nullptr && !inc->exit_seen) {
            // Nobody reads the worker's output: this thread does, until it has something for itself.
            inc->leader = &p;
            inc->thread_reads = false;
            ++inc->leads;
            lock.unlock();
            lead(*inc, p, deadline);
            lock.lock();
            give_up_lead_locked(*inc, p);
            continue;
        }
        if (p.cv.wait_until(lock, deadline) == std::cv_status::timeout && !p.done && p.chunks.empty())
            throw timed_out();
    }
    if (p.error) throw *p.error;
    return std::move(p.result);
}

inline void worker_host::give_up_lead_locked(incarnation& inc, pending_call const& p) noexcept {
    // mutex_ is held.
    if (inc.leader == &p) inc.leader = nullptr;
    if (inc.leader != nullptr || inc.exit_seen) return;
    // Hand the lead to one call of this worker still waiting (it takes it when it wakes).
    for (auto const& [id, q] : pending_)
        if (q != &p && q->inc == &inc && !q->done) {
            q->cv.notify_one();
            return;
        }
}

inline void worker_host::lead(incarnation& inc, pending_call& p, detail::steady::time_point deadline) noexcept {
    std::unique_lock reading(inc.read_mutex, std::defer_lock);
    try {
        reading.lock();
    } catch (...) {
        return;  // (cannot happen short of a bug; the caller waits and retries)
    }
    for (;;) {
        {
            // Only a line this thread reads, or the worker's exit (the pidfd wakes this poll), can
            // complete `p` while this thread holds read_mutex.
            std::lock_guard lock(mutex_);
            if (p.done || !p.chunks.empty() || inc.exit_seen) return;
        }
        auto const left = std::chrono::ceil<std::chrono::milliseconds>(deadline - detail::steady::now()).count();
        if (left <= 0) return;
        std::array<pollfd, 2> fds{};
        nfds_t n = 0;
        bool const eof = inc.stdout_eof.load();
        if (!eof) fds[n++] = pollfd{inc.out.get(), POLLIN, 0};
        int const pid_at = inc.pidfd ? static_cast<int>(n) : -1;
        if (inc.pidfd) fds[n++] = pollfd{inc.pidfd.get(), POLLIN, 0};
        // Without a pidfd the reader thread notices the exit (it polls every 10 ms): look at
        // exit_seen as often.
        int const wait_ms = static_cast<int>(std::min<long long>(left, inc.pidfd ? 1 << 30 : 10));
        int const ready = ::poll(fds.data(), n, wait_ms);
        if (ready <= 0) continue;  // a timeout, or EINTR
        if (!eof && (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0) read_stdout(inc);
        if (pid_at >= 0 && (fds[static_cast<std::size_t>(pid_at)].revents & POLLIN) != 0) {
            // It exited: the reader thread reads what is left and fails the calls still waiting.
            std::lock_guard lock(mutex_);
            inc.exit_seen = true;
            return;
        }
    }
}

// ---- the reader thread ---------------------------------------------------------------------------

namespace detail {
/// How long no call may have led before the reader thread reads the worker's stdout again.
inline constexpr std::chrono::milliseconds idle_read_period{20};
}  // namespace detail

inline void worker_host::stdout_data(incarnation& inc, std::string_view data) {
    // read_mutex is held.
    if (inc.stdout_broken) return;
    bool const ok = inc.out_lines.feed(data, [&](std::string_view line) { handle_line(inc, line); });
    // (handle_line never throws: a line it cannot handle is counted as malformed.)
    if (!ok) {
        inc.stdout_broken = true;
        std::string const why = "Worker process for plugin \"" + options_.plugin_id + "\" wrote a line longer than " +
                                std::to_string(options_.max_line_bytes) + " bytes; it was stopped";
        std::lock_guard lock(mutex_);
        if (inc.broken.empty()) inc.broken = why;
        fail_calls_of(inc, codes::worker_unavailable, why);
        inc.signal_locked(SIGKILL);
    }
}

inline void worker_host::read_stdout(incarnation& inc) noexcept {
    // read_mutex is held. Reads what the worker's stdout has now and handles its lines.
    if (inc.stdout_eof.load()) return;
    try {
        for (;;) {
            ssize_t const n = ::read(inc.out.get(), inc.read_buffer.data(), inc.read_buffer.size());
            if (n > 0) {
                stdout_data(inc, std::string_view(inc.read_buffer.data(), static_cast<std::size_t>(n)));
                // A short read emptied the pipe: the next poll says when there is more (saves a
                // read that would say EAGAIN on every reply).
                if (static_cast<std::size_t>(n) < inc.read_buffer.size()) return;
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && errno == EAGAIN) return;
            inc.stdout_eof = true;  // EOF (or a read error): nothing more will come
            return;
        }
    } catch (...) {
        // Out of memory while reading: end the worker rather than leave its calls hanging.
        inc.stdout_broken = true;
        std::lock_guard lock(mutex_);
        if (inc.broken.empty())
            inc.broken = "Worker host for plugin \"" + options_.plugin_id +
                         "\" failed to read the worker's output; it was stopped";
        inc.signal_locked(SIGKILL);
    }
}

inline void worker_host::reader_loop(incarnation* inc, process::detail::unique_fd err) {
    detail::line_splitter err_lines(64 * 1024);  // a longer stderr line is cut, not fatal
    std::array<char, 16 * 1024> buffer;

    auto on_stderr_line = [&](std::string_view line) {
        {
            std::lock_guard lock(mutex_);
            auto& ex = inc->stderr_excerpt;  // upstream's appendStderrExcerpt: the last 8000 chars
            if (!ex.empty()) ex.push_back('\n');
            ex.append(line);
            if (ex.size() > defaults::stderr_excerpt_chars) ex.erase(0, ex.size() - defaults::stderr_excerpt_chars);
        }
        if (options_.on_stderr) {
            try {
                options_.on_stderr(line);
            } catch (...) {
            }
        }
    };
    // Reads what stderr has now; closes it at EOF (or a read error).
    auto drain_stderr = [&] {
        for (;;) {
            ssize_t const n = ::read(err.get(), buffer.data(), buffer.size());
            if (n > 0) {
                err_lines.feed_truncating(std::string_view(buffer.data(), static_cast<std::size_t>(n)),
                                          on_stderr_line);
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && errno == EAGAIN) return;
            err.reset();
            return;
        }
    };
    auto has_exited = [&] {
        siginfo_t info{};
        return ::waitid(P_PID, static_cast<id_t>(inc->pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
               info.si_pid == inc->pid;
    };
    auto read_stdout_if_free = [&] {
        std::unique_lock reading(inc->read_mutex, std::try_to_lock);
        if (reading) read_stdout(*inc);  // (else a call took the lead: it reads)
    };

    try {
        bool exited = false;
        std::uint64_t leads_seen = 0;
        while (!exited) {
            bool watch_out = false;
            {
                std::lock_guard lock(mutex_);
                // No call led for a whole period and none leads: read stdout here again.
                if (!inc->thread_reads && inc->leader == nullptr && inc->leads == leads_seen)
                    inc->thread_reads = true;
                leads_seen = inc->leads;
                watch_out = inc->thread_reads && !inc->stdout_eof.load();
            }
            if (!err && !inc->pidfd && inc->stdout_eof.load()) {
                // Both pipes closed and no pidfd: wait for the exit itself.
                siginfo_t info{};
                while (::waitid(P_PID, static_cast<id_t>(inc->pid), &info, WEXITED | WNOWAIT) < 0 &&
                       errno == EINTR) {
                }
                break;
            }
            std::array<pollfd, 3> fds{};
            nfds_t n = 0;
            auto watch = [&](int fd) {
                fds[n] = pollfd{fd, POLLIN, 0};
                return static_cast<int>(n++);
            };
            int const out_at = watch_out ? watch(inc->out.get()) : -1;
            int const err_at = err ? watch(err.get()) : -1;
            int const pid_at = inc->pidfd ? watch(inc->pidfd.get()) : -1;
            int const timeout_ms = !inc->pidfd ? 10
                                   : !watch_out ? static_cast<int>(detail::idle_read_period.count())
                                                : -1;
            if (::poll(fds.data(), n, timeout_ms) < 0) {
                if (errno == EINTR) continue;
                // poll cannot fail here short of a bug; do not spin.
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
                continue;
            }
            auto ready = [&](int at) {
                return at >= 0 && (fds[static_cast<std::size_t>(at)].revents & (POLLIN | POLLHUP | POLLERR)) != 0;
            };
            if (ready(out_at)) read_stdout_if_free();
            if (ready(err_at)) drain_stderr();
            exited = pid_at >= 0 ? (fds[static_cast<std::size_t>(pid_at)].revents & POLLIN) != 0 : has_exited();
        }
        // It exited: no call leads from now on. What it wrote before is in the pipes (a
        // descendant may hold them open: read only what is there now).
        {
            std::lock_guard lock(mutex_);
            inc->exit_seen = true;
        }
        {
            std::lock_guard reading(inc->read_mutex);  // a leader lets go as soon as it sees the exit
            read_stdout(*inc);
            inc->out_lines.flush([&](std::string_view line) {
                if (!inc->stdout_broken) handle_line(*inc, line);
            });
        }
        if (err) drain_stderr();
        err_lines.flush(on_stderr_line);
    } catch (...) {
        // Out of memory while reading: end the worker rather than leave its calls hanging.
        std::lock_guard lock(mutex_);
        inc->exit_seen = true;
        if (inc->broken.empty())
            inc->broken = "Worker host for plugin \"" + options_.plugin_id +
                          "\" failed to read the worker's output; it was stopped";
        inc->signal_locked(SIGKILL);
    }

    std::lock_guard lock(mutex_);
    int status = 0;
    while (::waitpid(inc->pid, &status, 0) < 0 && errno == EINTR) {
    }
    worker_exited(*inc, status);
}

inline void worker_host::worker_exited(incarnation& inc, int status) {
    // mutex_ is held.
    inc.exited = true;
    if (!inc.stopping) ++crashes_;
    std::string const message =
        inc.broken.empty() ? detail::with_stderr("Worker process exited (" + detail::exit_description(status) + ")",
                                                 inc.stderr_excerpt)
                           : inc.broken;
    fail_calls_of(inc, codes::worker_unavailable, message);
    inc.exit_message = message;
    inc.exit_cv.notify_all();
}

inline void worker_host::fail_calls_of(incarnation const& inc, int code, std::string const& message) {
    // mutex_ is held.
    for (auto it = pending_.begin(); it != pending_.end();) {
        pending_call& p = *it->second;
        if (p.inc != &inc) {
            ++it;
            continue;
        }
        p.error.emplace(code, std::string(p.method), message);
        p.done = true;
        p.cv.notify_one();
        it = pending_.erase(it);
    }
}

inline void worker_host::handle_line(incarnation& inc, std::string_view line) noexcept try {
    boost::system::error_code ec;
    boost::json::value msg = boost::json::parse(line, ec);
    auto* o = ec ? nullptr : msg.if_object();
    auto const* version = o ? o->if_contains("jsonrpc") : nullptr;
    if (version == nullptr || !version->is_string() || version->get_string() != jsonrpc_version) {
        std::lock_guard lock(mutex_);
        ++malformed_lines_;
        return;
    }
    auto const* id = o->if_contains("id");
    auto const* method = o->if_contains("method");
    if (id != nullptr && (o->contains("result") || o->contains("error"))) {
        handle_response(*o);
    } else if (method != nullptr && method->is_string() && id != nullptr && !id->is_null()) {
        handle_worker_request(inc, *o);
    } else if (method != nullptr && method->is_string() && id == nullptr) {
        handle_notification(*o);
    } else {
        std::lock_guard lock(mutex_);
        ++malformed_lines_;
    }
} catch (...) {
    std::lock_guard lock(mutex_);
    ++malformed_lines_;
}

inline void worker_host::handle_response(boost::json::object& msg) {
    boost::json::value const& idv = msg.at("id");
    std::optional<std::int64_t> id;
    if (idv.is_int64())
        id = idv.get_int64();
    else if (idv.is_uint64() && idv.get_uint64() <= static_cast<std::uint64_t>(INT64_MAX))
        id = static_cast<std::int64_t>(idv.get_uint64());

    std::lock_guard lock(mutex_);
    auto it = id ? pending_.find(*id) : pending_.end();
    if (it == pending_.end()) {
        ++unmatched_responses_;
        return;
    }
    pending_call& p = *it->second;
    auto const* error = msg.if_contains("error");
    if (error != nullptr && !error->is_null()) {
        int code = codes::unknown;
        std::string message = "Unknown error";
        std::string data;
        if (auto const* e = error->if_object()) {
            if (auto const* c = e->if_contains("code")) {
                boost::system::error_code cec;
                auto const n = c->to_number<int>(cec);
                if (!cec) code = n;
            }
            if (auto const* m = e->if_contains("message"); m && m->is_string()) message = std::string(m->get_string());
            if (auto const* d = e->if_contains("data")) data = boost::json::serialize(*d);
        }
        p.error.emplace(code, std::string(p.method), message, std::move(data));
    } else if (auto* result = msg.if_contains("result")) {
        p.result = std::move(*result);
    }
    p.done = true;
    pending_.erase(it);
    p.cv.notify_one();
}

inline void worker_host::handle_worker_request(incarnation& inc, boost::json::object const& msg) {
    std::string const method(msg.at("method").get_string());
    std::string const id = boost::json::serialize(msg.at("id"));
    std::string reply;
    auto error_reply = [&](int code, std::string_view message) {
        return R"({"jsonrpc":"2.0","id":)" + id + R"(,"error":{"code":)" + std::to_string(code) +
               R"(,"message":)" + detail::quoted(message) + "}}\n";
    };
    auto const handler = options_.host_methods.find(method);
    if (handler == options_.host_methods.end()) {
        reply = error_reply(codes::method_not_found, "Host does not handle method \"" + method + "\"");
    } else {
        static boost::json::value const no_params;
        auto const* params = msg.if_contains("params");
        try {
            boost::json::value const result = handler->second(params ? *params : no_params);
            reply = R"({"jsonrpc":"2.0","id":)" + id + R"(,"result":)" + boost::json::serialize(result) + "}\n";
        } catch (rpc_error const& e) {
            // upstream keeps a plugin error code and maps anything else to INTERNAL_ERROR.
            bool const plugin_code = e.code() <= codes::worker_unavailable && e.code() >= codes::unknown;
            reply = error_reply(plugin_code ? e.code() : codes::internal_error, e.what());
        } catch (std::exception const& e) {
            reply = error_reply(codes::internal_error, e.what());
        } catch (...) {
            reply = error_reply(codes::internal_error, "host method failed");
        }
    }
    std::lock_guard w(inc.write_mutex);
    (void)detail::write_line(inc.in.get(), reply, detail::steady::now() + options_.call_timeout);
}

inline void worker_host::handle_notification(boost::json::object const& msg) {
    std::string_view const method = msg.at("method").get_string();
    static boost::json::value const no_params;
    auto const* params = msg.if_contains("params");
    if (method == execute_log_notification) {
        // Route by the invocation id the worker echoes; a chunk without one (or for a call that
        // has ended) is dropped, as upstream drops it.
        auto const* inv = msg.if_contains("paperclipInvocationId");
        auto const* p = params ? params->if_object() : nullptr;
        if (inv == nullptr || !inv->is_string() || p == nullptr) return;
        std::string_view iv = inv->get_string();
        if (iv.substr(0, invocation_prefix_.size()) != invocation_prefix_) return;
        iv.remove_prefix(invocation_prefix_.size());
        std::int64_t id = 0;
        for (char c : iv) {
            if (c < '0' || c > '9') return;
            id = id * 10 + (c - '0');
        }
        auto const* stream = p->if_contains("stream");
        auto const* chunk = p->if_contains("chunk");
        if (chunk == nullptr || !chunk->is_string()) return;
        std::lock_guard lock(mutex_);
        auto it = pending_.find(id);
        if (it == pending_.end() || !it->second->wants_log) return;
        it->second->chunks.emplace_back(stream && stream->is_string() ? std::string(stream->get_string()) : "stdout",
                                        std::string(chunk->get_string()));
        it->second->cv.notify_one();
        return;
    }
    if (options_.on_notification) {
        try {
            options_.on_notification(method, params ? *params : no_params);
        } catch (...) {
        }
    }
}

}  // namespace berth::plugins
