#pragma once
// Time-ordered (version 7) UUIDs for every id berth creates.

#include <atomic>   // std::atomic
#include <chrono>   // std::chrono::system_clock
#include <cstddef>  // std::size_t
#include <cstdint>  // std::uint64_t
#include <random>   // std::mt19937_64, std::random_device, std::seed_seq
#include <string>   // std::string

#include <pthread.h>  // pthread_atfork

namespace berth {

namespace detail {
/// One UUID engine per thread, seeded from the OS once: boost's default random_generator asks the
/// kernel for 16 bytes per id (a getrandom system call, a measurable share of a lease pair).
/// Ids must be unique, not unpredictable (nothing is authorised by knowing one), so a 64-bit
/// Mersenne Twister with 256 bits of OS entropy serves. A forked child would replay its parent's
/// sequence, so a fork handler bumps a generation and every engine reseeds when it sees a new one.
inline std::atomic<unsigned long>& fork_generation() noexcept {
    static std::atomic<unsigned long> generation{[] {
        ::pthread_atfork(nullptr, nullptr, [] { fork_generation().fetch_add(1, std::memory_order_relaxed); });
        return 1ul;
    }()};
    return generation;
}

struct id_engine {
    unsigned long generation = 0;  // 0: never seeded
    std::mt19937_64 engine;

    std::mt19937_64& get() {
        if (auto const now = fork_generation().load(std::memory_order_relaxed); now != generation) {
            std::random_device rd;
            std::seed_seq seq{rd(), rd(), rd(), rd(), rd(), rd(), rd(), rd()};
            engine.seed(seq);
            generation = now;
        }
        return engine;
    }
};
}  // namespace detail

/// A new UUID for a row berth creates: version 7 (RFC 9562), 36 lowercase characters. The first
/// 60 bits are the wall-clock time (48 bits of Unix milliseconds, then 12 bits of the millisecond's
/// fraction, RFC 9562's method 3); the last 62 are random. Thread-safe; distinct across threads and
/// forked processes.
///
/// Why time-ordered: every id is a key in a B-tree index (the primary keys, and the activity
/// log's entity index holds lease ids). Random ids put each insert on a random leaf page, so a
/// SQLite checkpoint or a PostgreSQL buffer flush writes one page per row; ids that grow with time
/// append to the same few pages. The cost: an id reveals when it was made, to the fraction of a
/// millisecond — as the row's created_at does.
[[nodiscard]] inline std::string new_id() {
    thread_local detail::id_engine state;
    auto& engine = state.get();
    auto const ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
    auto const since_epoch = static_cast<std::uint64_t>(ns < 0 ? 0 : ns);
    std::uint64_t const ms = since_epoch / 1'000'000;
    std::uint64_t const fraction = (since_epoch % 1'000'000) * 4096 / 1'000'000;  // 12 bits
    std::uint64_t const hi = (ms << 16) | 0x7000 | fraction;  // unix_ts_ms, version 7, rand_a = fraction
    std::uint64_t const lo = (engine() & ~(std::uint64_t{0x3} << 62)) | (std::uint64_t{0x2} << 62);  // variant 10
    static constexpr char hex[] = "0123456789abcdef";
    std::string id(36, '-');
    auto put = [&](std::uint64_t bits, int from, int to) {  // 16 nibbles into id[from, to), skipping dashes
        for (int i = to - 1; i >= from; --i) {
            if (i == 8 || i == 13 || i == 18 || i == 23) continue;
            id[static_cast<std::size_t>(i)] = hex[bits & 0xf];
            bits >>= 4;
        }
    };
    put(hi, 0, 18);   // 8-4-4: the first 16 hex digits
    put(lo, 19, 36);  // 4-12: the last 16
    return id;
}

}  // namespace berth
