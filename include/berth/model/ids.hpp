#pragma once
// Random (version 4) UUIDs for every id berth creates.

#include <atomic>   // std::atomic
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

/// A new random UUID in its 36-character text form. Thread-safe; distinct across threads and
/// across forked processes.
/// A random (version 4, RFC 9562 variant) UUID in its 36-character lowercase text form.
[[nodiscard]] inline std::string new_id() {
    thread_local detail::id_engine state;
    auto& engine = state.get();
    std::uint64_t hi = engine();
    std::uint64_t lo = engine();
    hi = (hi & ~std::uint64_t{0xf000}) | 0x4000;                          // version 4
    lo = (lo & ~(std::uint64_t{0xc} << 60)) | (std::uint64_t{0x8} << 60);  // variant 10xx
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
