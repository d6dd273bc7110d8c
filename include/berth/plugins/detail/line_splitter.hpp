#pragma once
// berth::plugins::detail::line_splitter — cuts a byte stream into newline-delimited lines with a
// bound on the length of one line, as Node's readline does for the worker protocol (a trailing
// "\r" is dropped too, readline's crlfDelay: Infinity).

#include <cstddef>      // std::size_t
#include <string>       // std::string
#include <string_view>  // std::string_view

namespace berth::plugins::detail {

class line_splitter {
public:
    explicit line_splitter(std::size_t max_line_bytes) : max_(max_line_bytes) {}

    /// Passes every complete line of `data` (with what came before) to `sink`. Returns false,
    /// having passed nothing more, once a line grows past the bound: the stream is not framed
    /// any more and the caller stops reading it.
    template <class Sink>
    bool feed(std::string_view data, Sink&& sink) {
        while (!data.empty()) {
            auto const nl = data.find('\n');
            if (nl == std::string_view::npos) {
                if (partial_.size() + data.size() > max_) return false;
                partial_.append(data);
                return true;
            }
            if (partial_.empty()) {
                if (nl > max_) return false;
                emit(data.substr(0, nl), sink);
            } else {
                if (partial_.size() + nl > max_) return false;
                partial_.append(data.substr(0, nl));
                emit(partial_, sink);
                partial_.clear();
            }
            data.remove_prefix(nl + 1);
        }
        return true;
    }

    /// Like feed(), but a line past the bound is cut there and passed on (for stderr, which only
    /// feeds a log).
    template <class Sink>
    void feed_truncating(std::string_view data, Sink&& sink) {
        while (!data.empty()) {
            auto const nl = data.find('\n');
            std::string_view const piece = data.substr(0, nl);
            std::size_t const room = max_ > partial_.size() ? max_ - partial_.size() : 0;
            partial_.append(piece.substr(0, room));
            if (nl == std::string_view::npos) return;
            emit(partial_, sink);
            partial_.clear();
            data.remove_prefix(nl + 1);
        }
    }

    /// Passes the last line if the stream ended without a newline.
    template <class Sink>
    void flush(Sink&& sink) {
        if (!partial_.empty()) emit(partial_, sink);
        partial_.clear();
    }

private:
    template <class Sink>
    static void emit(std::string_view line, Sink& sink) {
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        bool blank = true;
        for (char c : line)
            if (c != ' ' && c != '\t') {
                blank = false;
                break;
            }
        if (!blank) sink(line);
    }

    std::size_t max_;
    std::string partial_;
};

}  // namespace berth::plugins::detail
