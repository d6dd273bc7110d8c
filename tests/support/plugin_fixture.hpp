#pragma once
// Test plugin workers (tests/plugins/*.mjs), run with node against upstream's SDK installed by the
// build into BERTH_TEST_PLUGIN_DIR/node_modules. When the SDK could not be installed (npm cannot
// reach the registry), BERTH_REQUIRE_PLUGIN_SDK() says why and leaves the test case: the plugin
// tests are skipped, never faked.

#include <berth/model/command.hpp>

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

namespace berth::test {

/// Why the plugin workers cannot run here, or nullopt when they can.
inline std::optional<std::string> plugin_sdk_unavailable() {
    std::filesystem::path const dir = BERTH_TEST_PLUGIN_DIR;
    if (std::ifstream why{dir / "sdk-unavailable.txt"}) {
        std::stringstream s;
        s << why.rdbuf();
        return s.str();
    }
    if (!std::filesystem::exists(dir / "node_modules/@paperclipai/plugin-sdk/package.json"))
        return std::string("the SDK is not installed in ") + dir.string() + " (build the berth_test_plugins target)";
    if (std::string(BERTH_TEST_NODE).empty() || !std::filesystem::exists(BERTH_TEST_NODE))
        return std::string("node is not installed");
    return std::nullopt;
}

/// `node <dir>/<name>`: a test worker.
inline berth::command plugin_worker(std::string const& name) {
    return berth::command{.program = BERTH_TEST_NODE,
                          .args = {(std::filesystem::path(BERTH_TEST_PLUGIN_DIR) / name).string()}};
}

}  // namespace berth::test

#define BERTH_REQUIRE_PLUGIN_SDK()                                              \
    do {                                                                        \
        if (auto const why_ = ::berth::test::plugin_sdk_unavailable()) {        \
            WARN("plugin test skipped: " << *why_);                             \
            return;                                                             \
        }                                                                       \
    } while (false)
