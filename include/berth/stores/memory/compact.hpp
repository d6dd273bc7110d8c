#pragma once
//! @file
//! berth::detail::memory — how berth::memory_store keeps a lease or an event in ~1/3 of the bytes
//! of the public record (issue 22: a store of 10^6 past leases must fit in ~1.5 GB):
//!   - compact_text: an id or a free text in 24 bytes — a canonical UUID (what berth::new_id
//!     makes) packed into 16 bytes, a text of up to 16 bytes inline, a longer one on the heap;
//!   - text_pool: the values that repeat across rows (company, environment, provider, actor,
//!     action, entity type, driver and policy names, holder host) kept once, rows holding a
//!     pointer to the pooled copy.
//! Both convert back to the exact text they were made from, so the public records a store
//! returns are the ones it was given.


#include <compare>      // std::strong_ordering
#include <cstddef>      // std::size_t
#include <cstdint>      // std::uint64_t, std::uint8_t
#include <cstring>      // std::memcpy
#include <functional>   // std::hash
#include <optional>     // std::optional
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <unordered_set>  // std::unordered_set (the pool: its nodes never move)

namespace berth::detail::memory {

/// A text as compact_text compares and hashes it, without owning it: either a packed UUID or a
/// view of the characters (a text is packed exactly when it is a canonical lowercase UUID, so two
/// equal texts always have the same form).
struct compact_view {
    bool engaged = false;
    bool uuid = false;
    std::uint64_t hi = 0, lo = 0;  // the UUID's 128 bits, most significant first
    std::string_view text{};       // when !uuid

    /// The form of `s`.
    [[nodiscard]] static compact_view of(std::string_view s) noexcept {
        compact_view v{.engaged = true};
        if (pack_uuid(s, v.hi, v.lo)) v.uuid = true;
        else v.text = s;
        return v;
    }

    /// Writes the 36-character text of a packed UUID to `out`.
    static void format_uuid(std::uint64_t hi, std::uint64_t lo, char* out) noexcept {
        static constexpr char digits[] = "0123456789abcdef";
        int nibble = 0;
        for (int i = 0; i < 36; ++i) {
            if (i == 8 || i == 13 || i == 18 || i == 23) {
                out[i] = '-';
                continue;
            }
            std::uint64_t const word = nibble < 16 ? hi : lo;
            int const shift = 60 - 4 * (nibble % 16);
            out[i] = digits[(word >> shift) & 0xF];
            ++nibble;
        }
    }

    /// Calls `f` with the text as a std::string_view (a packed UUID formatted on the stack).
    template <class F>
    decltype(auto) with_text(F&& f) const {
        if (!uuid) return f(text);
        char buf[36];
        format_uuid(hi, lo, buf);
        return f(std::string_view(buf, 36));
    }

    [[nodiscard]] std::size_t hash() const noexcept {
        if (uuid) return std::hash<std::uint64_t>{}(hi ^ (lo * 0x9E3779B97F4A7C15ull));
        return std::hash<std::string_view>{}(text);
    }

    /// Equality of the texts (both engaged).
    friend bool operator==(compact_view const& a, compact_view const& b) noexcept {
        if (a.engaged != b.engaged) return false;
        if (a.uuid != b.uuid) return false;
        if (a.uuid) return a.hi == b.hi && a.lo == b.lo;
        return a.text == b.text;
    }

    /// The order of the texts, character by character (as std::string compares them).
    friend std::strong_ordering operator<=>(compact_view const& a, compact_view const& b) noexcept {
        if (a.uuid && b.uuid) {
            if (a.hi != b.hi) return a.hi <=> b.hi;
            return a.lo <=> b.lo;
        }
        return a.with_text([&](std::string_view x) {
            return b.with_text([&](std::string_view y) { return x.compare(y) <=> 0; });
        });
    }

    /// Whether `s` is a canonical lowercase UUID (8-4-4-4-12 hex digits); then its bits.
    static bool pack_uuid(std::string_view s, std::uint64_t& hi, std::uint64_t& lo) noexcept {
        if (s.size() != 36) return false;
        std::uint64_t words[2] = {0, 0};
        int nibble = 0;
        for (int i = 0; i < 36; ++i) {
            char const c = s[static_cast<std::size_t>(i)];
            if (i == 8 || i == 13 || i == 18 || i == 23) {
                if (c != '-') return false;
                continue;
            }
            std::uint64_t d;
            if (c >= '0' && c <= '9') d = static_cast<std::uint64_t>(c - '0');
            else if (c >= 'a' && c <= 'f') d = static_cast<std::uint64_t>(c - 'a' + 10);
            else return false;  // upper case is kept as text: it must come back as it was given
            words[nibble / 16] = (words[nibble / 16] << 4) | d;
            ++nibble;
        }
        hi = words[0];
        lo = words[1];
        return true;
    }
};

/// An optional text in 24 bytes (see the file comment). Not engaged = std::nullopt.
class compact_text {
public:
    compact_text() noexcept = default;
    explicit compact_text(std::string_view s) { assign(compact_view::of(s)); }
    explicit compact_text(compact_view const& v) { assign(v); }
    explicit compact_text(std::optional<std::string> const& s) {
        if (s) assign(compact_view::of(*s));
    }
    compact_text(compact_text const& o) { assign(o.view()); }
    compact_text(compact_text&& o) noexcept { steal(o); }
    compact_text& operator=(compact_text const& o) {
        if (this != &o) {
            compact_text copy(o);
            *this = std::move(copy);
        }
        return *this;
    }
    compact_text& operator=(compact_text&& o) noexcept {
        if (this != &o) {
            release();
            steal(o);
        }
        return *this;
    }
    ~compact_text() { release(); }

    [[nodiscard]] bool engaged() const noexcept { return kind_ != kind::none; }

    [[nodiscard]] compact_view view() const noexcept {
        switch (kind_) {
        case kind::none: return {};
        case kind::uuid: return {.engaged = true, .uuid = true, .hi = a_, .lo = b_};
        case kind::small: return {.engaged = true, .text = std::string_view(reinterpret_cast<char const*>(&a_), len_)};
        case kind::heap: return {.engaged = true, .text = std::string_view(reinterpret_cast<char const*>(a_), b_)};
        }
        return {};
    }

    /// The text (empty when not engaged).
    [[nodiscard]] std::string str() const {
        return view().with_text([](std::string_view s) { return std::string(s); });
    }
    [[nodiscard]] std::optional<std::string> optional_str() const {
        if (!engaged()) return std::nullopt;
        return str();
    }

    /// Whether this is `s` (nullopt matches only a text that is not engaged).
    [[nodiscard]] bool equals(std::optional<std::string> const& s) const noexcept {
        if (!s) return !engaged();
        return engaged() && view() == compact_view::of(*s);
    }
    [[nodiscard]] bool equals(std::string_view s) const noexcept {
        return engaged() && view() == compact_view::of(s);
    }

private:
    enum class kind : std::uint8_t { none, uuid, small, heap };

    void assign(compact_view const& v) {
        if (!v.engaged) return;
        if (v.uuid) {
            a_ = v.hi;
            b_ = v.lo;
            kind_ = kind::uuid;
        } else if (v.text.size() <= sizeof a_ + sizeof b_) {
            std::memcpy(&a_, v.text.data(), v.text.size());
            len_ = static_cast<std::uint8_t>(v.text.size());
            kind_ = kind::small;
        } else {
            char* p = new char[v.text.size()];
            std::memcpy(p, v.text.data(), v.text.size());
            a_ = reinterpret_cast<std::uint64_t>(p);
            b_ = v.text.size();
            kind_ = kind::heap;
        }
    }
    void steal(compact_text& o) noexcept {
        a_ = o.a_;
        b_ = o.b_;
        len_ = o.len_;
        kind_ = o.kind_;
        o.kind_ = kind::none;
    }
    void release() noexcept {
        if (kind_ == kind::heap) delete[] reinterpret_cast<char*>(a_);
        kind_ = kind::none;
    }

    // uuid: the two words; small: the characters; heap: a pointer (new char[]) and the length.
    std::uint64_t a_ = 0, b_ = 0;
    std::uint8_t len_ = 0;
    kind kind_ = kind::none;
};
static_assert(sizeof(compact_text) == 24);

/// Hash and equality of compact_text keys, transparent to compact_view and std::string_view.
struct compact_hash {
    using is_transparent = void;
    using is_avalanching = void;  // std::hash of a string / the multiplied words mix well enough
    std::size_t operator()(compact_text const& t) const noexcept { return t.view().hash(); }
    std::size_t operator()(compact_view const& v) const noexcept { return v.hash(); }
    std::size_t operator()(std::string_view s) const noexcept { return compact_view::of(s).hash(); }
};
struct compact_equal {
    using is_transparent = void;
    static compact_view v(compact_text const& t) noexcept { return t.view(); }
    static compact_view v(compact_view const& x) noexcept { return x; }
    static compact_view v(std::string_view s) noexcept { return compact_view::of(s); }
    template <class A, class B>
    bool operator()(A const& a, B const& b) const noexcept {
        return v(a) == v(b);
    }
};

/// Texts kept once per store: a row holds `pooled` (a pointer to the pool's copy; null = none).
/// The pool only grows — it is meant for values of which a store sees few distinct ones (company,
/// environment, driver and policy names, actors, actions, hosts), not for ids.
using pooled = std::string const*;

class text_pool {
public:
    /// The pooled copy of `s` (added when new).
    [[nodiscard]] pooled intern(std::string_view s) {
        if (auto const it = texts_.find(s); it != texts_.end()) return &*it;
        return &*texts_.emplace(s).first;
    }
    [[nodiscard]] pooled intern(std::optional<std::string> const& s) { return s ? intern(std::string_view(*s)) : nullptr; }

private:
    struct hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
    };
    std::unordered_set<std::string, hash, std::equal_to<>> texts_;  // nodes never move
};

[[nodiscard]] inline std::string_view text_of(pooled p) noexcept { return p ? std::string_view(*p) : std::string_view(); }
[[nodiscard]] inline std::optional<std::string> optional_of(pooled p) {
    if (!p) return std::nullopt;
    return *p;
}
/// Whether the pooled value is `s` (nullopt matches none).
[[nodiscard]] inline bool same(pooled p, std::optional<std::string> const& s) noexcept {
    if (!s) return p == nullptr;
    return p && *p == *s;
}

/// An optional timestamp in 8 bytes (std::optional<timestamp> takes 16): the least instant means none.
struct optional_time {
    static constexpr std::int64_t none = INT64_MIN;
    std::int64_t micros = none;
};

}  // namespace berth::detail::memory
