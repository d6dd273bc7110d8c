#!/usr/bin/env bash
# berth's quick start: install what is missing, configure, build, then run the demo or the tests.
# This is the one script behind the README's two commands and behind CI (.ci/run):
#
#   bash cmake/bootstrap.sh demo [-- COMMAND [ARGS...] | -- BERTH-RUN-OPTIONS -- COMMAND...]
#   bash cmake/bootstrap.sh test [-- CTEST-ARGS...]
#
# Target: a fresh Debian 12 machine with git, cmake and g++, run as root (apt). Every step checks
# before it acts, so running it again only rebuilds what changed.
set -euo pipefail

# ---- package lists: the single place to edit -----------------------------------------------------
# Debian 12 (bookworm) package names; each one exists in bookworm or bookworm-security.
# NEVER add libboost-dev: that is Boost 1.74, which conflicts with libboost1.81-dev and lacks Describe.
base_packages=(cmake g++ git)
demo_packages=(libboost1.81-dev libfmt-dev libsqlite3-dev libssl-dev libcli11-dev ninja-build ccache)
# python3-matplotlib: the performance report's chart (tests/bench/perf_report.py) and its test.
test_packages=(catch2 libbenchmark-dev sqlite3 python3-matplotlib)
# Needed by the SSH driver, the PostgreSQL store and the sandbox driver (later issues). Small, so
# `test` installs them now and CI images stay stable when those tests land.
later_test_packages=(openssh-server openssh-client libssh-dev libpq-dev bubblewrap postgresql)

usage() {
    cat <<'EOF'
usage: bash cmake/bootstrap.sh demo [-- ARGS...]
       bash cmake/bootstrap.sh test [-- CTEST-ARGS...]
       bash cmake/bootstrap.sh --help

demo  installs what is missing, builds berth-run, and runs one command through berth's lifecycle.
      ARGS is a command (`demo -- ls -la`), or berth-run's own options followed by `-- COMMAND`
      (`demo -- --company acme -- ls`). Without ARGS it runs a short shell command.
test  installs what is missing (the test tools too), builds everything, compiles each public header
      on its own (VERIFY_INTERFACE_HEADER_SETS), runs ctest; the exit code
      is ctest's. CTEST-ARGS are added to the ctest line (e.g. `test -- -R package`).

Steps: packages (apt-get, only when something is missing; needs root) -> configure (only when not
configured yet; Ninja, ccache) -> build -> run. `demo` configures the CMake preset "demo" in
build-demo/ (no tests, no benchmarks: Catch2 and Google Benchmark are not needed); `test` the preset
"default" in build/. The two build trees live side by side, so either command works after the other.

Environment:
  BERTH_BOOTSTRAP_DRY_RUN=1           print the commands instead of running them
  BERTH_BOOTSTRAP_ASSUME_MISSING=...  treat these packages as not installed (tests the apt path)
  BERTH_BOOTSTRAP_JOBS=N              parallel jobs for build and ctest (default: nproc)
  BERTH_BOOTSTRAP_BUILD_DIR=DIR       build tree instead of the preset's (always configured afresh)
  BERTH_BOOTSTRAP_CMAKE_ARGS="..."    extra configure arguments, e.g. the CI test's
                                      -DCMAKE_DISABLE_FIND_PACKAGE_Catch2=ON (always configures)
EOF
}

step() { printf '==> %s\n' "$*"; }
die() { printf 'bootstrap: error: %s\n' "$*" >&2; exit 1; }

dry_run="${BERTH_BOOTSTRAP_DRY_RUN:-0}"
# Runs a command, or only shows it in a dry run. The command is always echoed so that the log says
# exactly what ran.
run() {
    printf '    $'
    printf ' %q' "$@"
    printf '\n'
    if [[ "$dry_run" != 1 ]]; then
        "$@"
    fi
}

# ---- arguments --------------------------------------------------------------------------------------
mode="${1:-}"
case "$mode" in
    -h | --help | help) usage; exit 0 ;;
    demo | test) shift ;;
    "") usage >&2; exit 2 ;;
    *) printf 'bootstrap: unknown mode: %s\n\n' "$mode" >&2; usage >&2; exit 2 ;;
esac
extra_args=()
if [[ $# -gt 0 ]]; then
    [[ "$1" == "--" ]] || die "arguments after '$mode' must follow '--' (see --help)"
    shift
    extra_args=("$@")
fi

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
jobs="${BERTH_BOOTSTRAP_JOBS:-$(nproc)}"

# ---- 1. packages ------------------------------------------------------------------------------------
wanted=("${base_packages[@]}" "${demo_packages[@]}")
if [[ "$mode" == test ]]; then
    wanted+=("${test_packages[@]}" "${later_test_packages[@]}")
fi

read -r -a assume_missing <<<"${BERTH_BOOTSTRAP_ASSUME_MISSING:-}"
is_installed() {
    local p="$1" m
    for m in "${assume_missing[@]}"; do
        [[ "$m" == "$p" ]] && return 1
    done
    # `deinstall ok config-files` (removed, config kept) must count as missing, so match the full
    # status; a multi-arch package prints one status per architecture, hence the glob.
    [[ "$(dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null || true)" == *"install ok installed"* ]]
}

missing=()
for p in "${wanted[@]}"; do
    is_installed "$p" || missing+=("$p")
done

if [[ ${#missing[@]} -eq 0 ]]; then
    step "packages: all ${#wanted[@]} present"
else
    step "packages: ${#missing[@]} missing: ${missing[*]}"
    # libboost1.81-dev conflicts with the 1.74 headers; apt-get -y would remove them silently.
    # Better to stop and let the owner of the machine decide.
    if [[ " ${missing[*]} " == *" libboost1.81-dev "* ]]; then
        for old in libboost-dev libboost1.74-dev; do
            if is_installed "$old"; then
                die "$old (Boost 1.74) is installed and conflicts with libboost1.81-dev, which berth needs." \
                    "Remove it first: apt-get remove $old"
            fi
        done
    fi
    apt_install=(apt-get install -y --no-install-recommends "${missing[@]}")
    if [[ "$(id -u)" -ne 0 && "$dry_run" != 1 ]]; then
        die "missing packages and not root. Run this script with sudo (sudo bash cmake/bootstrap.sh $mode)," \
            "or install them yourself: sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive ${apt_install[*]}"
    fi
    command -v apt-get >/dev/null || [[ "$dry_run" == 1 ]] || die "apt-get not found: this script targets Debian 12"
    run apt-get update
    run env DEBIAN_FRONTEND=noninteractive "${apt_install[@]}"
fi

# Presets of version 6 need CMake 3.25 (Debian 12 has 3.25.1); say so rather than fail obscurely.
if [[ "$dry_run" != 1 ]]; then
    cmake_version="$(cmake --version | sed -n 's/^cmake version \([0-9.]*\).*/\1/p')"
    if [[ "$(printf '%s\n' 3.25 "$cmake_version" | sort -V | head -n1)" != 3.25 ]]; then
        die "CMake $cmake_version is too old: berth needs 3.25 or newer"
    fi
fi

# ---- 2. configure -----------------------------------------------------------------------------------
# Only when the preset's build tree does not exist yet or a previous configure did not finish. After
# that, Ninja re-runs CMake by itself whenever a CMakeLists.txt (or a globbed directory) changes.
# The demo has a preset and a build tree of its own: it must configure without the test-only
# packages, and a later `test` must still find its tests configured in build/.
if [[ "$mode" == demo ]]; then
    preset=demo
else
    preset=default
fi
build_dir="build"
[[ "$preset" == demo ]] && build_dir="build-demo"
read -r -a cmake_args <<<"${BERTH_BOOTSTRAP_CMAKE_ARGS:-}"
configure=(cmake --preset "$preset")
if [[ -n "${BERTH_BOOTSTRAP_BUILD_DIR:-}" ]]; then
    build_dir="$BERTH_BOOTSTRAP_BUILD_DIR"
    configure+=(-B "$build_dir")
fi
configure+=("${cmake_args[@]}")
if [[ -f "$build_dir/CMakeCache.txt" ]] && ! grep -qx 'CMAKE_GENERATOR:INTERNAL=Ninja' "$build_dir/CMakeCache.txt"; then
    die "$build_dir/ was configured with another generator than the preset's Ninja; remove it (rm -rf $build_dir) and rerun"
fi
if [[ -f "$build_dir/CMakeCache.txt" && -f "$build_dir/build.ninja" && -z "${BERTH_BOOTSTRAP_BUILD_DIR:-}${cmake_args[*]}" ]]; then
    step "configure: $build_dir/ is configured (Ninja regenerates it when CMake files change)"
else
    step "configure: cmake --preset $preset ($build_dir/, Ninja, ccache)"
    run "${configure[@]}"
fi

# ---- 3. build ---------------------------------------------------------------------------------------
if [[ "$mode" == demo ]]; then
    step "build: berth-run (-j$jobs)"
    run cmake --build "$build_dir" --target berth-run -j "$jobs"
else
    # all_verify_interface_header_sets compiles every public header on its own (CMake's
    # VERIFY_INTERFACE_HEADER_SETS); it is not part of `all`, and CI must catch a header that is
    # not self-contained.
    step "build: everything + header self-containment check (-j$jobs)"
    run cmake --build "$build_dir" -j "$jobs" --target all all_verify_interface_header_sets
fi

# ---- 4. run -----------------------------------------------------------------------------------------
if [[ "$mode" == demo ]]; then
    demo_args=("${extra_args[@]}")
    if [[ ${#demo_args[@]} -eq 0 ]]; then
        demo_args=(-- sh -c 'echo hello from berth; uname -a')
    elif [[ "${demo_args[0]}" != -* ]]; then
        # A bare command (`demo -- ls -la`): berth-run wants it after its own `--`.
        demo_args=(-- "${demo_args[@]}")
    fi
    step "demo: berth-run ${demo_args[*]}"
    if [[ "$dry_run" == 1 ]]; then
        run "$build_dir/examples/berth-run/berth-run" "${demo_args[@]}"
        exit 0
    fi
    exec "$build_dir/examples/berth-run/berth-run" "${demo_args[@]}"
fi

# Tests without a TIMEOUT of their own get 600 s; stdin is /dev/null so that nothing can wait on a
# terminal (CI has none).
step "test: ctest (-j$jobs)"
rc=0
run ctest --test-dir "$build_dir" -j "$jobs" --output-on-failure --timeout 600 "${extra_args[@]}" </dev/null || rc=$?
if [[ "$rc" -eq 0 ]]; then
    step "test: all passed"
else
    step "test: ctest failed (exit code $rc)"
fi
exit "$rc"
