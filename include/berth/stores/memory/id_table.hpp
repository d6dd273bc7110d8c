#pragma once
//! @file
//! berth::detail::memory::id_table — the hash table berth::memory_store keys its rows and indexes
//! by: open addressing (Boost.Unordered's flat map: no node per entry, one probe group per lookup)
//! over keys that carry their hash, computed once when the key is made.
//!
//! Why the stored hash: an open-addressed table moves its slots when it grows and must hash every
//! key again. A 36-byte UUID key's characters live in their own heap block, so at 10^5 keys every
//! such re-hash is a cache miss; with the hash beside the text a rehash reads neither. Lookups take
//! a plain std::string_view (hashed then), or a `hashed_id<std::string_view>` whose hash the
//! caller already has, so that a check followed by an insert hashes once.

#include <boost/unordered/unordered_flat_map.hpp>
#include <boost/unordered/unordered_flat_set.hpp>

#include <cstddef>      // std::size_t
#include <functional>   // std::hash
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <utility>      // std::move

namespace berth::detail::memory {

[[nodiscard]] inline std::size_t hash_id(std::string_view id) noexcept { return std::hash<std::string_view>{}(id); }

/// An id and its hash_id. `Text` is std::string (the table owns the id) or std::string_view (the
/// id lives in a stored row that never moves).
template <class Text>
struct hashed_id {
    Text text;
    std::size_t hash;
};

[[nodiscard]] inline hashed_id<std::string_view> hashed(std::string_view id) noexcept { return {id, hash_id(id)}; }

struct hashed_id_hash {
    using is_transparent = void;
    // std::hash of a string mixes its bits well; Boost.Unordered then skips its own post-mix.
    using is_avalanching = void;
    template <class Text>
    std::size_t operator()(hashed_id<Text> const& k) const noexcept {
        return k.hash;
    }
    std::size_t operator()(std::string_view id) const noexcept { return hash_id(id); }
};

struct hashed_id_equal {
    using is_transparent = void;
    template <class A, class B>
    bool operator()(hashed_id<A> const& a, hashed_id<B> const& b) const noexcept {
        return a.hash == b.hash && std::string_view(a.text) == std::string_view(b.text);
    }
    template <class A, class B>
    bool operator()(A const& a, B const& b) const noexcept {
        return text_of(a) == text_of(b);
    }

private:
    static std::string_view text_of(std::string_view s) noexcept { return s; }
    template <class Text>
    static std::string_view text_of(hashed_id<Text> const& k) noexcept {
        return k.text;
    }
};

/// Id → V, owning its ids.
template <class V>
using id_table = boost::unordered_flat_map<hashed_id<std::string>, V, hashed_id_hash, hashed_id_equal>;

/// Id → V, keyed by a view of an id that lives in V's row (a row on the heap, which never moves
/// and goes with its entry).
template <class V>
using id_view_map = boost::unordered_flat_map<hashed_id<std::string_view>, V, hashed_id_hash, hashed_id_equal>;

/// A set of ids that live elsewhere (in rows that never move).
using id_view_set = boost::unordered_flat_set<hashed_id<std::string_view>, hashed_id_hash, hashed_id_equal>;

/// The entry for `key`, value-initialised when new. The reference lasts until `table` next grows.
template <class V>
V& entry(id_table<V>& table, hashed_id<std::string_view> key) {
    if (auto const it = table.find(key); it != table.end()) return it->second;
    return table.try_emplace(hashed_id<std::string>{std::string(key.text), key.hash}).first->second;
}

}  // namespace berth::detail::memory
