#pragma once
// berth::environment_run_error — upstream's EnvironmentRunError: a code from the ten orchestrator
// codes, a message, and the environment/driver/provider it concerns, with the underlying cause.

#include <berth/error.hpp>
#include <berth/model/enums.hpp>

#include <exception>  // std::exception_ptr
#include <optional>   // std::optional
#include <string>     // std::string

namespace berth {

/// What an environment_run_error concerns (upstream's `details`).
struct environment_run_error_details {
    std::optional<std::string> environment_id{};
    std::optional<driver_kind> driver{};
    std::optional<std::string> provider{};
    std::exception_ptr cause{};
};

class environment_run_error : public error {
public:
    using details = environment_run_error_details;

    environment_run_error(environment_error_code code, std::string const& message, details d = {})
        : error(message), code_(code), details_(std::move(d)) {}

    [[nodiscard]] environment_error_code code() const noexcept { return code_; }
    [[nodiscard]] std::optional<std::string> const& environment_id() const noexcept { return details_.environment_id; }
    [[nodiscard]] std::optional<driver_kind> driver() const noexcept { return details_.driver; }
    [[nodiscard]] std::optional<std::string> const& provider() const noexcept { return details_.provider; }
    /// The exception that caused this one, if any (rethrow it to inspect).
    [[nodiscard]] std::exception_ptr cause() const noexcept { return details_.cause; }

private:
    environment_error_code code_{};
    details details_;
};

/// The message of an exception_ptr's exception ("unknown error" for non-std exceptions).
[[nodiscard]] inline std::string message_of(std::exception_ptr const& e) {
    if (!e) return {};
    try {
        std::rethrow_exception(e);
    } catch (std::exception const& ex) {
        return ex.what();
    } catch (...) {
        return "unknown error";
    }
}

}  // namespace berth
