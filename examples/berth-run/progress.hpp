// berth-run's progress lines on stderr: `[berth] <step>   <text>`, one before each long step starts
// and one when it ends. On a terminal the line of the step in progress shows its elapsed time,
// redrawn a few times a second; elsewhere (a pipe, a log, CI) every line is plain and printed once.
// --quiet prints none; --json keeps them on stderr and also records them for the JSON document.
//
// Every stderr line of berth-run goes through one reporter (under its mutex), so that a service's
// log line or a provisioning line never lands in the middle of the live elapsed-time line.
#pragma once

#include "options.hpp"  // output_mode

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <fmt/format.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include <unistd.h>  // isatty

namespace berth_run {

class reporter {
public:
    using clock = std::chrono::steady_clock;

    explicit reporter(output_mode mode, bool live = ::isatty(STDERR_FILENO) == 1)
        : mode_(mode), live_(live && mode != output_mode::quiet) {}
    reporter(reporter const&) = delete;
    reporter& operator=(reporter const&) = delete;
    ~reporter() { stop_ticker(); }

    [[nodiscard]] output_mode mode() const noexcept { return mode_; }

    /// A step that is done as soon as it is said (resolve, a release, a cleanup line).
    void note(std::string_view step, std::string text) {
        std::lock_guard lock(mutex_);
        record(step, text, std::nullopt);
        if (mode_ != output_mode::quiet) print_over_live(fmt::format("[berth] {:<8} {}\n", step, text));
    }

    /// A long step begins: its line is printed now. `live`: on a terminal, tick its elapsed time
    /// until end() (not for a step whose own output streams to the terminal meanwhile, such as
    /// the command). Steps do not nest.
    void begin(std::string_view step, std::string text, bool live = true) {
        stop_ticker();
        std::lock_guard lock(mutex_);
        current_ = running{std::string(step), std::move(text), clock::now()};
        if (mode_ == output_mode::quiet) return;
        if (live_ && live) {
            ticking_ = true;
            draw_live();
            ticker_ = std::thread([this] { tick(); });
        } else {
            std::fputs(fmt::format("[berth] {:<8} {}\n", current_->step, current_->text).c_str(), stderr);
        }
    }

    /// The long step begun last has ended: `text` says how, and its duration is added.
    void end(std::string text) {
        stop_ticker();
        std::lock_guard lock(mutex_);
        if (!current_) return;
        auto const elapsed = clock::now() - current_->started;
        record(current_->step, current_->text, std::pair{std::move(text), elapsed});
        auto const& done = steps_.back().as_object();
        if (mode_ != output_mode::quiet) {
            if (shown_live_) std::fputs(fmt::format("\r\033[K[berth] {:<8} {}\n", current_->step, current_->text).c_str(), stderr);
            std::fputs(fmt::format("[berth] {:<8} {} ({})\n", current_->step, done.at("result").as_string().c_str(),
                                   seconds(elapsed))
                           .c_str(),
                       stderr);
        }
        shown_live_ = false;
        current_.reset();
    }

    /// A long step failed: recorded with the error, so that --json shows where the run stopped.
    void fail(std::string const& why) {
        if (current_) end("failed: " + why);
    }

    /// Any other line for stderr (a service's log line, a provisioning line), kept apart from the
    /// live line. Shown in every mode but quiet.
    void line(std::string_view text) {
        std::lock_guard lock(mutex_);
        if (mode_ != output_mode::quiet) print_over_live(fmt::format("{}\n", text));
    }

    /// Text that must show whatever the mode (errors), on its own line.
    void always(std::string_view text) {
        std::lock_guard lock(mutex_);
        print_over_live(fmt::format("{}\n", text));
    }

    /// Every step said so far, for the JSON document:
    /// `{"step", "text", "result"?, "elapsed_ms"?, "at_ms"}` (at_ms: since berth-run started).
    [[nodiscard]] boost::json::array const& steps() const noexcept { return steps_; }

private:
    struct running {
        std::string step;
        std::string text;
        clock::time_point started;
    };

    static std::string seconds(clock::duration d) {
        auto const ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
        return ms < 1000 ? fmt::format("{} ms", ms) : fmt::format("{:.1f} s", double(ms) / 1000.0);
    }

    void record(std::string_view step, std::string const& text,
                std::optional<std::pair<std::string, clock::duration>> const& result) {
        boost::json::object o{{"step", step}, {"text", text}};
        if (result) {
            o["result"] = result->first;
            o["elapsed_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(result->second).count();
        }
        o["at_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - start_).count();
        steps_.push_back(std::move(o));
    }

    // Callers hold mutex_.
    void draw_live() {
        auto const elapsed = clock::now() - current_->started;
        std::fputs(fmt::format("\r\033[K[berth] {:<8} {} … {}", current_->step, current_->text, seconds(elapsed)).c_str(),
                   stderr);
        std::fflush(stderr);
        shown_live_ = true;
    }
    void print_over_live(std::string const& text) {
        if (shown_live_) std::fputs("\r\033[K", stderr);
        std::fputs(text.c_str(), stderr);
        if (shown_live_) draw_live();
        std::fflush(stderr);
    }

    void tick() {
        std::unique_lock lock(mutex_);
        while (ticking_) {
            wake_.wait_for(lock, std::chrono::milliseconds(200));
            if (ticking_ && current_) draw_live();
        }
    }
    void stop_ticker() {
        {
            std::lock_guard lock(mutex_);
            ticking_ = false;
        }
        wake_.notify_all();
        if (ticker_.joinable()) ticker_.join();
    }

    output_mode mode_;
    bool live_;
    clock::time_point start_ = clock::now();
    std::mutex mutex_;
    std::condition_variable wake_;
    std::thread ticker_;
    bool ticking_ = false;
    bool shown_live_ = false;  // the live line of current_ is on the screen (without its newline)
    std::optional<running> current_;
    boost::json::array steps_;
};

}  // namespace berth_run
