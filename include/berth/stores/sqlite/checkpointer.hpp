#pragma once
// berth::detail::sqlite::checkpointer — runs sqlite_store's WAL checkpoints on a thread of its own,
// so that a commit does not wait for them. Not a public API.
//
// Why: in WAL mode SQLite checkpoints in the commit that takes the WAL past `wal_autocheckpoint`
// pages: that commit copies the WAL's pages into the database file and fsyncs it, milliseconds on
// a virtual disk. A lease pair writes ~27 pages (the lease, upstream's indexes, two activity events
// and theirs), so every ~37th pair paid for a checkpoint: most of a pair's time under
// synchronous=NORMAL (docs/stores.md). Here the writer's WAL hook only signals this thread, which
// checkpoints PASSIVE-ly on its own connection while writers and readers go on. If the thread
// cannot keep up and the WAL reaches `backstop` times the threshold, the committing thread
// checkpoints itself (after the thread's current pass, if one is running), so the WAL stays bounded.

#include <berth/stores/sqlite/connection.hpp>

#include <sqlite3.h>  // sqlite3_wal_hook, sqlite3_wal_checkpoint_v2

#include <atomic>              // std::atomic
#include <chrono>              // std::chrono::milliseconds
#include <condition_variable>  // std::condition_variable_any
#include <cstdint>             // std::uint64_t
#include <memory>              // std::unique_ptr
#include <mutex>               // std::mutex, std::unique_lock
#include <stop_token>          // std::stop_token
#include <string>              // std::string
#include <thread>              // std::jthread

namespace berth::detail::sqlite {

class checkpointer {
public:
    static constexpr int backstop = 8;
    static constexpr int max_passes = 3;

    /// Opens its own connection to `path` (which must exist) and starts the thread.
    /// @throws store_error backend_failure when the connection cannot be opened; std::system_error
    ///         when the thread cannot be started.
    checkpointer(std::string const& path, std::chrono::milliseconds busy_timeout, int threshold_pages)
        : conn_(std::make_unique<connection>(path, false, busy_timeout)), threshold_(threshold_pages) {
        // A connection that has not read the database has not seen that it is in WAL mode, and its
        // checkpoint is a silent no-op (SQLITE_OK, nothing copied). One read opens its WAL.
        conn_->exec("SELECT count(*) FROM sqlite_master", "opening the checkpointer's WAL");
        thread_ = std::jthread([this](std::stop_token stop) { run(stop); });
    }

    checkpointer(checkpointer const&) = delete;
    checkpointer& operator=(checkpointer const&) = delete;
    ~checkpointer() = default;  // jthread: request_stop, then join (the wait below wakes on it)

    /// Makes `writer`'s commits signal this checkpointer instead of checkpointing themselves.
    /// `writer` must not commit after this object is destroyed.
    void install(sqlite3* writer) noexcept { sqlite3_wal_hook(writer, &checkpointer::on_commit, this); }

    /// Checkpoints run so far by this thread (for tests and diagnostics).
    [[nodiscard]] std::uint64_t completed() const noexcept { return completed_.load(std::memory_order_relaxed); }

private:
    // Runs on the writer's thread, after each commit.
    static int on_commit(void* self, sqlite3* db, char const* schema, int wal_pages) {
        auto& c = *static_cast<checkpointer*>(self);
        if (wal_pages >= c.threshold_ * backstop) {
            // The thread is behind (or blocked by a long reader): bound the WAL here, as SQLite would.
            // BUSY: the thread is in a pass. This writer waits for that pass to end (the thread starts
            // no other while the flag is up) and copies the rest itself: without the wait, a pass
            // slowed by a loaded disk let the writer append past the bound for as long as it lasted.
            if (sqlite3_wal_checkpoint_v2(db, schema, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr) == SQLITE_BUSY) {
                c.writer_waiting_.store(true, std::memory_order_release);
                {
                    std::lock_guard pass_over(c.pass_mutex_);
                }
                // Still BUSY only if another process is checkpointing: then the next commit retries.
                (void)sqlite3_wal_checkpoint_v2(db, schema, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
                c.writer_waiting_.store(false, std::memory_order_release);
            }
            c.signalled_at_ = 0;
        } else if (wal_pages >= c.threshold_ &&
                   (wal_pages < c.signalled_at_ || wal_pages - c.signalled_at_ >= c.threshold_)) {
            // Once per threshold of new frames, not per commit: a passive checkpoint copies only what
            // was committed before it started, so while writes go on the WAL stays past the
            // threshold, and a signal per commit cost the writer a futex wake per transaction.
            c.signalled_at_ = wal_pages;
            if (!c.pending_.exchange(true, std::memory_order_acq_rel)) {
                { std::lock_guard lk(c.mutex_); }  // pairs with the wait: the flag cannot be missed
                c.wake_.notify_one();
            }
        }
        return SQLITE_OK;  // a checkpoint's failure is not the commit's: the next signal retries
    }

    void run(std::stop_token stop) {
        while (!stop.stop_requested()) {
            {
                std::unique_lock lk(mutex_);
                if (!wake_.wait(lk, stop, [this] { return pending_.load(std::memory_order_acquire); })) break;
            }
            pending_.store(false, std::memory_order_release);
            // A few passes, until one finds the WAL fully copied: the writer appended frames during
            // the last pass, and the WAL starts over only once every frame is in the database, so
            // after a burst one more pass lets it start over. Under steady writes no pass catches
            // up; then the writer's backstop copies the last frames, and if it finds this thread
            // mid-pass it waits for that pass, during which the thread starts no other.
            for (int pass = 0; pass < max_passes && !stop.stop_requested(); ++pass) {
                std::lock_guard in_pass(pass_mutex_);
                if (writer_waiting_.load(std::memory_order_acquire)) break;
                int log = 0, copied = 0;
                if (sqlite3_wal_checkpoint_v2(conn_->handle(), "main", SQLITE_CHECKPOINT_PASSIVE, &log, &copied) !=
                    SQLITE_OK)
                    break;
                completed_.fetch_add(1, std::memory_order_relaxed);
                if (copied >= log) break;
            }
        }
    }

    std::unique_ptr<connection> conn_;  // used by the thread only
    int threshold_;
    int signalled_at_ = 0;  // WAL pages at the last signal; the writer's thread only
    std::atomic<bool> pending_{false};
    std::atomic<bool> writer_waiting_{false};  // the writer's backstop is waiting for the current pass
    std::mutex pass_mutex_;                    // held by the thread for each pass
    std::atomic<std::uint64_t> completed_{0};
    std::mutex mutex_;
    std::condition_variable_any wake_;
    std::jthread thread_;  // last: stopped and joined before the members it uses go
};

}  // namespace berth::detail::sqlite
