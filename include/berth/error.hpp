#pragma once
// The exception types every berth layer throws. Each carries the facts a caller needs to act
// on it (which field, which value, which lease) as members, not only in the message.
// Orchestrator errors (environment_run_error) live in orchestrator/error.hpp: they need the model.

#include <cstdint>    // std::uint64_t
#include <stdexcept>  // std::runtime_error
#include <string>     // std::string

namespace berth {

/// Base of every exception berth throws.
class error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// A value read from outside (a row, a JSON document, a CLI flag) is not one berth accepts.
/// The message follows upstream: `Unexpected <field> value: <value>`.
class parse_error : public error {
public:
    /// `note` (optional) is appended in parentheses: where the value was found or what was expected.
    parse_error(std::string field, std::string value, std::string const& note = {})
        : error("Unexpected " + field + " value: " + value + (note.empty() ? "" : " (" + note + ")")),
          field_(std::move(field)),
          value_(std::move(value)) {}
    [[nodiscard]] std::string const& field() const noexcept { return field_; }
    [[nodiscard]] std::string const& value() const noexcept { return value_; }

private:
    std::string field_;
    std::string value_;
};

/// Why a store refused an operation.
enum class store_errc {
    not_found,           ///< no row with that id
    illegal_transition,  ///< the lease status table forbids from → to
    stale_epoch,         ///< compare-and-set on the lease epoch failed: someone else moved the lease
    conflict,            ///< a uniqueness rule (one local environment per company, ...) was violated
    capacity_exceeded,   ///< the environment's maxActiveLeases is reached
    invalid_argument,    ///< a required field is empty or malformed
    corrupt_row,         ///< a stored row could not be read back (unknown enum string, bad JSON)
    schema_mismatch,     ///< the database was written by a newer berth
    backend_failure,     ///< the database itself failed (I/O, busy past the timeout, ...)
};

[[nodiscard]] constexpr char const* to_string(store_errc c) noexcept {
    switch (c) {
        case store_errc::not_found: return "not_found";
        case store_errc::illegal_transition: return "illegal_transition";
        case store_errc::stale_epoch: return "stale_epoch";
        case store_errc::conflict: return "conflict";
        case store_errc::capacity_exceeded: return "capacity_exceeded";
        case store_errc::invalid_argument: return "invalid_argument";
        case store_errc::corrupt_row: return "corrupt_row";
        case store_errc::schema_mismatch: return "schema_mismatch";
        case store_errc::backend_failure: return "backend_failure";
    }
    return "unknown";
}

/// A store refused or failed an operation; nothing was changed when this is thrown.
class store_error : public error {
public:
    store_error(store_errc code, std::string const& message) : error(message), code_(code) {}
    [[nodiscard]] store_errc code() const noexcept { return code_; }

private:
    store_errc code_;
};

/// Starting or supervising a child process failed (not: the child exited non-zero).
class process_error : public error {
public:
    using error::error;
};

}  // namespace berth
