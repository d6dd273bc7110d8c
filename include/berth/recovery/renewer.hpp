#pragma once
//! @file
//! berth::lease_renewer — keeps one lease alive while its holder lives: the lease is renewed
//! (Orchestrator::renew_lease, fenced by the lease's epoch) every third of its TTL, until stop()
//! or destruction, or until the lease is taken away (reaped by an expiry sweep or a recovery,
//! released by someone else): then lost() is true and `on_lost` is told. run_scope owns one for
//! its lease; an application that drives the orchestrator itself can own one the same way
//! (docs/reliability.md).
//!
//! The renewals of every renewer of the process run on one background thread, started on first
//! use and stopped and joined when the process exits (a function-local static): registering a
//! lease costs a lock and a heap push, not a thread, so renewal adds next to nothing to a run.
//! A lease without an expiry needs no renewal and is not registered.
//!
//! @code
//! berth::lease_renewer renewer{orch, acq.lease, [&](std::string const& why) { stop_the_run(why); }};
//! ...
//! renewer.stop();                                  // no renewal runs after this returns
//! if (renewer.lost()) report(renewer.lost_reason());
//! @endcode
//!
//! Thread safety: every member may be called from any thread. `on_lost` runs on the renewal
//! thread, at most once; it must not stop or destroy a renewer (it would wait for itself).

#include <berth/error.hpp>        // store_error, store_errc
#include <berth/model/lease.hpp>  // environment_lease

#include <algorithm>           // std::max, std::push_heap, std::pop_heap, std::make_heap
#include <atomic>              // std::atomic
#include <chrono>              // std::chrono::steady_clock, milliseconds
#include <condition_variable>  // std::condition_variable
#include <cstdint>             // std::uint64_t
#include <exception>           // std::exception
#include <functional>          // std::function
#include <memory>              // std::shared_ptr
#include <mutex>               // std::mutex, std::unique_lock
#include <optional>            // std::optional
#include <string>              // std::string
#include <thread>              // std::thread
#include <utility>             // std::move
#include <vector>              // std::vector

namespace berth {

namespace detail::renewal {

using steady = std::chrono::steady_clock;

/// One registered lease. `renew` returns the interval to the next renewal, or nullopt when the
/// lease is gone (the entry is dropped).
struct entry {
    std::mutex mutex;  // held while renewing; stop() takes it to wait out a renewal in flight
    std::atomic<bool> stopped{false};
    std::function<std::optional<std::chrono::milliseconds>()> renew;
};

/// The process's renewal thread and its schedule (a min-heap of due times).
class service {
public:
    static service& instance() {
        static service s;
        return s;
    }
    service(service const&) = delete;
    service& operator=(service const&) = delete;
    ~service() {
        {
            std::lock_guard lock(mutex_);
            exiting_ = true;
        }
        wake_.notify_all();
        if (thread_.joinable()) thread_.join();
    }

    void add(std::shared_ptr<entry> e, std::chrono::milliseconds after) {
        std::lock_guard lock(mutex_);
        if (!thread_.joinable()) thread_ = std::thread([this] { loop(); });
        auto const at = steady::now() + after;
        schedule_.push_back({at, std::move(e)});
        std::push_heap(schedule_.begin(), schedule_.end(), later);
        // Wake the thread only if it sleeps past the new due time: in a stream of runs each new
        // lease is due after the one the thread waits for, so registering costs no thread switch
        // (a wake per run measured +15% on a run's lease pair on a loaded 2-core machine).
        if (at < wakes_at_) wake_.notify_all();
    }

    /// Takes `e` off the schedule (a renewal in flight is waited out by the caller, see stop()).
    void remove(entry const* e) {
        std::lock_guard lock(mutex_);
        auto const before = schedule_.size();
        std::erase_if(schedule_, [&](due const& d) { return d.e.get() == e; });
        if (schedule_.size() != before) std::make_heap(schedule_.begin(), schedule_.end(), later);
    }

private:
    struct due {
        steady::time_point at;
        std::shared_ptr<entry> e;
    };
    static bool later(due const& a, due const& b) { return a.at > b.at; }

    service() = default;

    void loop() {
        std::unique_lock lock(mutex_);
        while (!exiting_) {
            if (schedule_.empty()) {
                wakes_at_ = steady::time_point::max();
                wake_.wait(lock);
                continue;
            }
            // A lease removed while the thread sleeps is not a reason to wake it: it wakes at the
            // removed lease's due time, finds a later front, and sleeps again.
            auto const at = schedule_.front().at;
            if (steady::now() < at) {
                wakes_at_ = at;
                wake_.wait_until(lock, at);
                continue;
            }
            wakes_at_ = steady::time_point::min();  // awake: it looks at the schedule again before sleeping
            std::pop_heap(schedule_.begin(), schedule_.end(), later);
            auto next = std::move(schedule_.back());
            schedule_.pop_back();
            lock.unlock();
            std::optional<std::chrono::milliseconds> again;
            {
                std::lock_guard entry_lock(next.e->mutex);
                if (!next.e->stopped) again = next.e->renew();
            }
            lock.lock();
            if (again && !next.e->stopped) {
                next.at = steady::now() + *again;
                schedule_.push_back(std::move(next));
                std::push_heap(schedule_.begin(), schedule_.end(), later);
            }
        }
    }

    std::mutex mutex_;
    std::condition_variable wake_;
    std::vector<due> schedule_;
    bool exiting_ = false;
    steady::time_point wakes_at_ = steady::time_point::max();  // when the sleeping thread wakes by itself
    std::thread thread_;
};

}  // namespace detail::renewal

template <class Orchestrator>
class lease_renewer {
public:
    using lost_handler = std::function<void(std::string const& reason)>;

    /// Starts renewing `lease` (when it has an expiry). The orchestrator must outlive the renewer.
    lease_renewer(Orchestrator const& orch, environment_lease lease, lost_handler on_lost = {})
        : state_(std::make_shared<state>()) {
        state_->orch = &orch;
        state_->lease = std::move(lease);
        state_->on_lost = std::move(on_lost);
        if (!state_->lease.expires_at) return;
        entry_ = std::make_shared<detail::renewal::entry>();
        entry_->renew = [s = state_] { return renew(*s); };
        detail::renewal::service::instance().add(entry_, interval_of(state_->lease));
    }
    lease_renewer(lease_renewer const&) = delete;
    lease_renewer& operator=(lease_renewer const&) = delete;
    ~lease_renewer() { stop(); }

    /// Stops renewing; once it returns no renewal of this lease runs. Idempotent.
    void stop() noexcept {
        if (!entry_ || entry_->stopped) return;
        detail::renewal::service::instance().remove(entry_.get());
        std::lock_guard lock(entry_->mutex);  // waits for a renewal in flight
        entry_->stopped = true;
    }

    /// True once a renewal was refused because the lease is no longer held (stale epoch, not
    /// active any more, gone): the run must stop, and must not report success.
    [[nodiscard]] bool lost() const {
        std::lock_guard lock(state_->mutex);
        return state_->lost;
    }
    [[nodiscard]] std::string lost_reason() const {
        std::lock_guard lock(state_->mutex);
        return state_->lost_reason;
    }
    /// How many renewals succeeded.
    [[nodiscard]] std::uint64_t renewals() const {
        std::lock_guard lock(state_->mutex);
        return state_->renewals;
    }
    /// The lease as last renewed.
    [[nodiscard]] environment_lease lease() const {
        std::lock_guard lock(state_->mutex);
        return state_->lease;
    }

private:
    struct state {
        Orchestrator const* orch = nullptr;
        mutable std::mutex mutex;
        environment_lease lease;
        lost_handler on_lost;
        bool lost = false;
        std::string lost_reason;
        std::uint64_t renewals = 0;
    };

    /// A third of the lease's life as of its last write, at least 10 ms.
    static std::chrono::milliseconds interval_of(environment_lease const& l) {
        if (!l.expires_at) return std::chrono::hours(1);
        auto const ttl = std::chrono::duration_cast<std::chrono::milliseconds>(*l.expires_at - l.updated_at);
        return std::max(std::chrono::milliseconds(10), ttl / 3);
    }

    /// One renewal, on the renewal thread.
    static std::optional<std::chrono::milliseconds> renew(state& s) {
        environment_lease current;
        {
            std::lock_guard lock(s.mutex);
            current = s.lease;
        }
        std::string lost_why;
        try {
            auto renewed = s.orch->renew_lease(current);
            std::lock_guard lock(s.mutex);
            s.lease = std::move(renewed);
            ++s.renewals;
            return interval_of(s.lease);
        } catch (store_error const& e) {
            if (e.code() == store_errc::stale_epoch || e.code() == store_errc::illegal_transition ||
                e.code() == store_errc::not_found)
                lost_why = e.what();
            // Anything else (a busy or full database) is retried soon: the lease stays ours until
            // someone else moves it, and then the next renewal says so.
        } catch (std::exception const&) {
        }
        if (lost_why.empty()) return interval_of(current) / 4 + std::chrono::milliseconds(10);
        lost_handler handler;
        std::string reason;
        {
            std::lock_guard lock(s.mutex);
            s.lost = true;
            s.lost_reason = "Lease " + current.id + " was lost while its run held it: " + lost_why;
            handler = s.on_lost;
            reason = s.lost_reason;
        }
        if (handler) {
            try {
                handler(reason);
            } catch (...) {
                // The run learns of the loss through lost() as well.
            }
        }
        return std::nullopt;
    }

    std::shared_ptr<state> state_;
    std::shared_ptr<detail::renewal::entry> entry_;
};

}  // namespace berth
