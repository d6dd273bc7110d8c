#pragma once
// berth::test::recording_observer — a run_observer for the tests that records every event as one
// line, in arrival order (thread-safe; copies share one log):
//   "started <step> <run id> <what>", "ended <step> ok <outcome>", "ended <step> failed <why>",
//   "output <step> <chunk>".
#include <berth/model/enum_string.hpp>     // berth::to_string
#include <berth/orchestrator/observer.hpp>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace berth::test {

struct recording_observer {
    using observer_concept = berth::observer_tag;
    struct log {
        std::mutex mutex;
        std::vector<std::string> lines;
        void add(std::string s) {
            std::lock_guard lock(mutex);
            lines.push_back(std::move(s));
        }
        std::vector<std::string> all() {
            std::lock_guard lock(mutex);
            return lines;
        }
        bool has_prefix(std::string const& p) {
            std::lock_guard lock(mutex);
            for (auto const& l : lines)
                if (l.starts_with(p)) return true;
            return false;
        }
        void clear() {
            std::lock_guard lock(mutex);
            lines.clear();
        }
    };
    std::shared_ptr<log> events = std::make_shared<log>();

    void on_step_started(berth::step_started const& s) const noexcept {
        events->add("started " + std::string(berth::to_string(s.step)) + " " + std::string(s.run_id) + " " +
                    std::string(s.what));
    }
    void on_step_ended(berth::step_ended const& e) const noexcept {
        events->add("ended " + std::string(berth::to_string(e.step)) + (e.ok ? " ok " : " failed ") +
                    std::string(e.outcome));
    }
    void on_step_output(berth::step_output const& o) const noexcept {
        events->add("output " + std::string(berth::to_string(o.step)) + " " + std::string(o.chunk));
    }
};
static_assert(berth::run_observer<recording_observer>);

}  // namespace berth::test
