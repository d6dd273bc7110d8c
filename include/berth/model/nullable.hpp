#pragma once
// berth::nullable<T>: an optional that must be spelled out. It has no default constructor, so a
// designated initializer that omits it does not compile: every call site has to decide between a
// value and std::nullopt (upstream's "required-but-nullable" agentId).

#include <optional>  // std::optional, std::nullopt_t
#include <utility>   // std::move

namespace berth {

template <class T>
class nullable {
public:
    nullable() = delete;
    nullable(std::nullopt_t) noexcept {}
    nullable(T v) : value_(std::move(v)) {}
    nullable(std::optional<T> v) : value_(std::move(v)) {}
    template <class U>
        requires std::is_constructible_v<T, U&&> && (!std::is_same_v<std::remove_cvref_t<U>, nullable>) &&
                 (!std::is_same_v<std::remove_cvref_t<U>, std::optional<T>>) &&
                 (!std::is_same_v<std::remove_cvref_t<U>, std::nullopt_t>)
    nullable(U&& v) : value_(T(std::forward<U>(v))) {}

    [[nodiscard]] std::optional<T> const& get() const noexcept { return value_; }
    operator std::optional<T> const&() const noexcept { return value_; }
    [[nodiscard]] bool has_value() const noexcept { return value_.has_value(); }
    [[nodiscard]] T const& operator*() const { return *value_; }
    [[nodiscard]] T const* operator->() const { return &*value_; }

private:
    std::optional<T> value_;
};

}  // namespace berth
