#pragma once
// Test fixtures for the workspace tests and the worktree benchmark: a temporary directory removed
// on destruction, and real git repositories in it (git run as an argv through berth::process,
// with a fixed identity and no global or system config, so the user's settings cannot change
// what the tests see).

#include <berth/process/spawn.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include <unistd.h>

namespace berth::test {

/// A directory under the system temp directory, removed with everything in it on destruction.
class temp_dir {
public:
    explicit temp_dir(std::string const& prefix = "berth-test") {
        std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
        if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
        // Canonical, so that paths git prints (symlinks resolved) compare equal to ours.
        path_ = std::filesystem::canonical(tmpl);
    }
    temp_dir(temp_dir const&) = delete;
    temp_dir& operator=(temp_dir const&) = delete;
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    [[nodiscard]] std::filesystem::path const& path() const noexcept { return path_; }
    [[nodiscard]] std::string str() const { return path_.string(); }
    [[nodiscard]] std::filesystem::path operator/(std::string const& rel) const { return path_ / rel; }

private:
    std::filesystem::path path_;
};

/// The environment the fixtures run git with: PATH and HOME only, git's global and system
/// config switched off, a fixed identity.
inline process::environment_map git_test_env() {
    process::environment_map env;
    if (char const* p = std::getenv("PATH")) env["PATH"] = p;
    env["HOME"] = "/nonexistent-berth-test-home";
    env["GIT_CONFIG_NOSYSTEM"] = "1";
    env["GIT_CONFIG_GLOBAL"] = "/dev/null";
    env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = "berth test";
    env["GIT_AUTHOR_EMAIL"] = env["GIT_COMMITTER_EMAIL"] = "test@berth.invalid";
    env["LC_ALL"] = "C";
    return env;
}

/// Runs git in `cwd`; throws with its stderr when it fails. Returns stdout.
inline std::string git(std::filesystem::path const& cwd, std::vector<std::string> args) {
    auto const r = process::run({.program = "git", .args = args, .cwd = cwd.string()},
                                {.base_environment = git_test_env()});
    if (r.exit_code != 0) {
        std::string shown = "git";
        for (auto const& a : args) shown += " " + a;
        throw std::runtime_error(shown + " failed in " + cwd.string() + ": " + r.stderr_text);
    }
    auto out = r.stdout_text;
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    return out;
}

inline void write_file(std::filesystem::path const& p, std::string const& text) {
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << text;
}

/// A new repository at `dir` on branch `main` with one commit of `files` files.
inline void make_repo(std::filesystem::path const& dir, int files = 3) {
    std::filesystem::create_directories(dir);
    git(dir, {"init", "-q", "-b", "main"});
    for (int i = 0; i < files; ++i) write_file(dir / ("src/file" + std::to_string(i) + ".txt"), std::to_string(i) + "\n");
    write_file(dir / "README.md", "test repository\n");
    git(dir, {"add", "-A"});
    git(dir, {"commit", "-q", "-m", "initial"});
}

}  // namespace berth::test
