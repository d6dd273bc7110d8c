#pragma once
// Random (version 4) UUIDs for every id berth creates.

#include <boost/uuid/random_generator.hpp>  // random_generator
#include <boost/uuid/uuid_io.hpp>           // to_string

#include <string>  // std::string

namespace berth {

/// A new random UUID in its 36-character text form. Thread-safe.
[[nodiscard]] inline std::string new_id() {
    // One generator per thread: boost::uuids::random_generator is not thread-safe and seeding is
    // costly, so the per-thread instance is created once.
    thread_local boost::uuids::random_generator gen;
    return boost::uuids::to_string(gen());
}

}  // namespace berth
