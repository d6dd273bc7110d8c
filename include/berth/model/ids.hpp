#pragma once
// Random (version 4) UUIDs for every id berth creates.

#include <boost/uuid/random_generator.hpp>  // basic_random_generator
#include <boost/uuid/uuid_io.hpp>           // to_string

#include <atomic>  // std::atomic
#include <random>  // std::mt19937_64, std::random_device, std::seed_seq
#include <string>  // std::string

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
[[nodiscard]] inline std::string new_id() {
    thread_local detail::id_engine state;
    boost::uuids::basic_random_generator<std::mt19937_64> gen(state.get());
    return boost::uuids::to_string(gen());
}

}  // namespace berth
