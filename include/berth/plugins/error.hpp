#pragma once
//! @file
//! berth::plugins::rpc_error — a plugin call that failed, with the JSON-RPC error code and the
//! message exactly as upstream's host reports them: the worker's own error (its code and message,
//! e.g. WORKER_ERROR with the text the plugin threw), or the host's (WORKER_UNAVAILABLE with
//! `Worker process exited (code=1, signal=null)`, TIMEOUT with `RPC call "m" timed out after Nms`).

#include <berth/error.hpp>              // berth::error
#include <berth/plugins/protocol.hpp>  // codes, code_name

#include <string>   // std::string
#include <utility>  // std::move

namespace berth::plugins {

class rpc_error : public berth::error {
public:
    /// `data_json`: the error's `data` member as JSON text, empty when it had none.
    rpc_error(int code, std::string method, std::string const& message, std::string data_json = {})
        : berth::error(message), code_(code), method_(std::move(method)), data_json_(std::move(data_json)) {}

    /// The JSON-RPC error code (berth::plugins::codes).
    [[nodiscard]] int code() const noexcept { return code_; }
    /// The method of the call that failed.
    [[nodiscard]] std::string const& method() const noexcept { return method_; }
    /// The error's `data`, serialized; empty when the worker sent none.
    [[nodiscard]] std::string const& data_json() const noexcept { return data_json_; }

    /// The worker is not running: it exited, could not be started or broke the protocol.
    [[nodiscard]] bool worker_unavailable() const noexcept { return code_ == codes::worker_unavailable; }
    [[nodiscard]] bool timed_out() const noexcept { return code_ == codes::timeout; }
    /// The worker does not implement the method (METHOD_NOT_IMPLEMENTED or METHOD_NOT_FOUND).
    [[nodiscard]] bool not_implemented() const noexcept {
        return code_ == codes::method_not_implemented || code_ == codes::method_not_found;
    }

private:
    int code_;
    std::string method_;
    std::string data_json_;
};

}  // namespace berth::plugins
