#pragma once
// Checks done in the parent before spawning, so that a wrong program or working directory is an
// immediate berth::process_error that names it, instead of a child that exits 127 or a spawn
// error without context. posix_spawn (not posix_spawnp) then runs exactly the path found here.

#include <berth/error.hpp>                     // berth::process_error
#include <berth/process/detail/unique_fd.hpp>  // errno_text

#include <cerrno>       // errno, ENOENT
#include <cstddef>      // std::size_t
#include <optional>     // std::optional
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <utility>      // std::move

#include <fcntl.h>     // AT_FDCWD, AT_EACCESS
#include <sys/stat.h>  // stat, S_ISREG, S_ISDIR
#include <unistd.h>    // faccessat, confstr, X_OK

namespace berth::process::detail {

/// `'x'` for messages. (Not `quoted`: ADL would find std::quoted, a better match for std::string.)
[[nodiscard]] inline std::string single_quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

/// Where `path` is from the parent's point of view: the child resolves relative paths after its
/// chdir to `cwd`, so the parent must look at them under `cwd` too.
[[nodiscard]] inline std::string as_seen_by_child(std::string const& path, std::optional<std::string> const& cwd) {
    if (!cwd || path.empty() || path.front() == '/') return path;
    return *cwd + "/" + path;
}

enum class file_state { missing, not_regular, not_executable, ok };

[[nodiscard]] inline file_state executable_state(std::string const& path) noexcept {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return file_state::missing;
    if (!S_ISREG(st.st_mode)) return file_state::not_regular;
    // AT_EACCESS: the effective ids, which are the ones execve checks.
    if (::faccessat(AT_FDCWD, path.c_str(), X_OK, AT_EACCESS) != 0) return file_state::not_executable;
    return file_state::ok;
}

/// The child's PATH: `path_variable` (the child environment's PATH) if it has one, else the system
/// default (confstr(_CS_PATH), the one execvp falls back to).
[[nodiscard]] inline std::string search_path(std::optional<std::string_view> path_variable) {
    if (path_variable) return std::string(*path_variable);
    char buf[256];
    std::size_t const n = ::confstr(_CS_PATH, buf, sizeof buf);
    return (n > 0 && n <= sizeof buf) ? std::string(buf, n - 1) : std::string("/bin:/usr/bin");
}

/// The path posix_spawn must run for `program`: as given when it contains '/', else the first
/// executable regular file named `program` in the child's PATH (`path_variable`, nullopt when the
/// child has none; an empty PATH entry is the working directory, as for execvp).
/// @throws berth::process_error naming the program (and the PATH searched) when there is none.
[[nodiscard]] inline std::string resolve_program(std::string const& program,
                                                 std::optional<std::string_view> path_variable,
                                                 std::optional<std::string> const& cwd) {
    if (program.empty()) throw process_error("cannot run a command with an empty program name");
    if (program.find('/') != std::string::npos) {
        switch (executable_state(as_seen_by_child(program, cwd))) {
            case file_state::ok: return program;
            case file_state::missing:
                throw process_error("cannot run " + single_quoted(program) + ": no such file");
            case file_state::not_regular:
                throw process_error("cannot run " + single_quoted(program) + ": not a regular file");
            case file_state::not_executable:
                throw process_error("cannot run " + single_quoted(program) + ": not executable (permission denied)");
        }
    }
    std::string const path = search_path(path_variable);
    std::optional<std::string> not_executable;  // execvp reports EACCES only if nothing better is found
    std::string_view rest(path);
    while (true) {
        auto const colon = rest.find(':');
        std::string_view const dir = rest.substr(0, colon);
        std::string candidate = dir.empty() ? "./" + program : std::string(dir) + "/" + program;
        switch (executable_state(as_seen_by_child(candidate, cwd))) {
            case file_state::ok: return candidate;
            case file_state::not_executable:
                if (!not_executable) not_executable = std::move(candidate);
                break;
            case file_state::missing:
            case file_state::not_regular: break;
        }
        if (colon == std::string_view::npos) break;
        rest.remove_prefix(colon + 1);
    }
    if (not_executable)
        throw process_error("cannot run " + single_quoted(program) + ": " + single_quoted(*not_executable) +
                            " is not executable (permission denied)");
    throw process_error("cannot run " + single_quoted(program) + ": not found in PATH " + single_quoted(path));
}

/// @throws berth::process_error naming the directory when `cwd` is not an existing directory.
inline void check_working_directory(std::string const& program, std::string const& cwd) {
    struct stat st {};
    if (cwd.empty()) throw process_error("cannot run " + single_quoted(program) + ": the working directory is empty");
    if (::stat(cwd.c_str(), &st) != 0) {
        int const err = errno;
        throw process_error("cannot run " + single_quoted(program) + ": working directory " + single_quoted(cwd) +
                            (err == ENOENT ? std::string(" does not exist") : ": " + errno_text(err)));
    }
    if (!S_ISDIR(st.st_mode))
        throw process_error("cannot run " + single_quoted(program) + ": working directory " + single_quoted(cwd) +
                            " is not a directory");
}

}  // namespace berth::process::detail
