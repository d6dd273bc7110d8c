#pragma once
// berth::timestamp — a UTC instant with microsecond resolution, written as ISO-8601
// ("2026-11-23T19:37:16.123456Z") in JSON, in fmt output and in the SQL stores.
//
// Why a type of our own: Boost.JSON finds conversions by ADL, and std::chrono types
// live in namespace std where we may not add overloads. The fixed-width text form
// sorts lexicographically in the same order as the instants, so stores can index it.

#include <berth/error.hpp>

#include <chrono>       // std::chrono::sys_time, microseconds
#include <cstdint>      // std::int64_t
#include <cstdio>       // std::snprintf
#include <string>       // std::string
#include <string_view>  // std::string_view

namespace berth {

struct timestamp {
    std::chrono::sys_time<std::chrono::microseconds> value{};

    static timestamp from_micros(std::int64_t us) noexcept {
        return timestamp{std::chrono::sys_time<std::chrono::microseconds>{std::chrono::microseconds{us}}};
    }
    [[nodiscard]] std::int64_t micros() const noexcept { return value.time_since_epoch().count(); }

    template <class Rep, class Period>
    [[nodiscard]] timestamp operator+(std::chrono::duration<Rep, Period> d) const noexcept {
        return timestamp{value + std::chrono::duration_cast<std::chrono::microseconds>(d)};
    }
    template <class Rep, class Period>
    [[nodiscard]] timestamp operator-(std::chrono::duration<Rep, Period> d) const noexcept {
        return timestamp{value - std::chrono::duration_cast<std::chrono::microseconds>(d)};
    }
    [[nodiscard]] std::chrono::microseconds operator-(timestamp other) const noexcept { return value - other.value; }

    friend bool operator==(timestamp, timestamp) = default;
    friend auto operator<=>(timestamp, timestamp) = default;
};

/// ISO-8601 UTC text with six fractional digits and a trailing `Z`.
[[nodiscard]] inline std::string to_iso8601(timestamp t) {
    using namespace std::chrono;
    auto const day = floor<days>(t.value);
    year_month_day const ymd{day};
    hh_mm_ss const hms{t.value - day};
    char buf[40];
    std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02ld:%02ld:%02ld.%06ldZ", int(ymd.year()), unsigned(ymd.month()),
                  unsigned(ymd.day()), long(hms.hours().count()), long(hms.minutes().count()),
                  long(hms.seconds().count()), long(hms.subseconds().count()));
    return buf;
}

namespace detail {
inline bool parse_digits(std::string_view s, std::size_t pos, std::size_t n, int& out) {
    if (pos + n > s.size()) return false;
    int v = 0;
    for (std::size_t i = 0; i < n; ++i) {
        char const c = s[pos + i];
        if (c < '0' || c > '9') return false;
        v = v * 10 + (c - '0');
    }
    out = v;
    return true;
}
}  // namespace detail

/// Parses what to_iso8601 writes; also accepts 0–9 fractional digits and a `+00:00` suffix.
/// @throws berth::parse_error naming `field` and the text when it is not such an instant.
[[nodiscard]] inline timestamp parse_iso8601(std::string_view s, std::string_view field = "timestamp") {
    using namespace std::chrono;
    int y{}, mo{}, d{}, h{}, mi{}, se{};
    bool ok = s.size() >= 20 && detail::parse_digits(s, 0, 4, y) && s[4] == '-' && detail::parse_digits(s, 5, 2, mo) &&
              s[7] == '-' && detail::parse_digits(s, 8, 2, d) && (s[10] == 'T' || s[10] == ' ') &&
              detail::parse_digits(s, 11, 2, h) && s[13] == ':' && detail::parse_digits(s, 14, 2, mi) &&
              s[16] == ':' && detail::parse_digits(s, 17, 2, se);
    std::int64_t frac_us = 0;
    std::size_t pos = 19;
    if (ok && pos < s.size() && s[pos] == '.') {
        ++pos;
        int digits = 0;
        while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
            if (digits < 6) frac_us = frac_us * 10 + (s[pos] - '0');
            ++digits;
            ++pos;
        }
        ok = digits > 0;
        for (int i = digits; i < 6; ++i) frac_us *= 10;
    }
    if (ok) {
        auto const rest = s.substr(pos);
        ok = rest == "Z" || rest == "+00:00" || rest == "+00";
    }
    year_month_day const ymd{year{y}, month{unsigned(mo)}, day{unsigned(d)}};
    if (!ok || !ymd.ok() || h > 23 || mi > 59 || se > 60)
        throw parse_error(std::string(field), std::string(s), "expected an ISO-8601 UTC timestamp");
    auto const tp = sys_days{ymd} + hours{h} + minutes{mi} + seconds{se} + microseconds{frac_us};
    return timestamp{time_point_cast<microseconds>(tp)};
}

}  // namespace berth
