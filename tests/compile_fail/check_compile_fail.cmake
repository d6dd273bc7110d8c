# cmake -DFLAGS_FILE=<berth_flags.cmake> -DSOURCE=<file.cpp> -DWORK_DIR=<dir> -P check_compile_fail.cmake
#
# Compiles SOURCE with berth::berth's flags and checks the outcome its header lines ask for (see
# CMakeLists.txt here). On any mismatch it prints the command and the whole diagnostic.
cmake_minimum_required(VERSION 3.25)
foreach(_v FLAGS_FILE SOURCE WORK_DIR)
  if(NOT DEFINED ${_v})
    message(FATAL_ERROR "check_compile_fail.cmake: -D${_v}=... is required")
  endif()
endforeach()
include(${FLAGS_FILE})

file(STRINGS ${SOURCE} _expect_errors REGEX "^// expect-error: ")
file(STRINGS ${SOURCE} _expect_success REGEX "^// expect-success")
list(TRANSFORM _expect_errors REPLACE "^// expect-error: " "")
if(_expect_errors AND _expect_success)
  message(FATAL_ERROR "${SOURCE}: has both '// expect-error:' and '// expect-success' lines")
elseif(NOT _expect_errors AND NOT _expect_success)
  message(FATAL_ERROR "${SOURCE}: needs '// expect-error: REGEX' line(s) or a '// expect-success' line")
endif()

# berth's own headers with -I; dependencies as system headers, as CMake does for imported targets.
# The compiler's implicit directories (/usr/include) must stay out: `-isystem /usr/include` breaks
# libstdc++'s #include_next <stdlib.h>.
set(_args ${BERTH_STD_FLAG} -fdiagnostics-color=never)
list(REMOVE_DUPLICATES BERTH_INCLUDES)
foreach(_dir IN LISTS BERTH_INCLUDES)
  if(_dir IN_LIST BERTH_IMPLICIT_INCLUDES)
    continue()
  elseif(_dir STREQUAL BERTH_OWN_INCLUDE)
    list(APPEND _args -I${_dir})
  else()
    list(APPEND _args -isystem ${_dir})
  endif()
endforeach()
if(NOT "-I${BERTH_OWN_INCLUDE}" IN_LIST _args)
  message(FATAL_ERROR "berth::berth's include directories lack ${BERTH_OWN_INCLUDE}: ${BERTH_INCLUDES}")
endif()
foreach(_def IN LISTS BERTH_DEFINES)
  list(APPEND _args -D${_def})
endforeach()
list(APPEND _args ${BERTH_OPTIONS})

get_filename_component(_name ${SOURCE} NAME_WE)
file(MAKE_DIRECTORY ${WORK_DIR})

# LC_ALL=C: GCC quotes with ‘…’ in a UTF-8 locale; the regexes are written with ASCII quotes.
macro(_berth_compile _what)
  set(_cmd ${BERTH_CXX} ${_args} ${ARGN} -c ${SOURCE} -o ${WORK_DIR}/${_name}.o)
  list(JOIN _cmd " " _cmd_text)
  message(STATUS "${_what}: ${_cmd_text}")
  execute_process(COMMAND ${CMAKE_COMMAND} -E env LC_ALL=C ${_cmd}
    RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _out)
endmacro()

if(_expect_success)
  _berth_compile("positive (must compile)")
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "${SOURCE} must compile, but the compiler failed (${_rc}):\n${_out}")
  endif()
  message(STATUS "OK: compiled")
  return()
endif()

file(READ ${SOURCE} _text)
string(FIND "${_text}" "BERTH_COMPILE_FAIL_CONTROL" _has_control)
if(NOT _has_control EQUAL -1)
  _berth_compile("control (must compile)" -DBERTH_COMPILE_FAIL_CONTROL)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "${SOURCE} with BERTH_COMPILE_FAIL_CONTROL must compile, so that the real "
                        "test fails only for the reason it names; the compiler failed (${_rc}):\n${_out}")
  endif()
endif()

_berth_compile("negative (must fail)")
if(_rc EQUAL 0)
  message(FATAL_ERROR "${SOURCE} compiled, but it must not (expected: ${_expect_errors})")
endif()
set(_unmatched)
foreach(_re IN LISTS _expect_errors)
  if(NOT _out MATCHES "${_re}")
    list(APPEND _unmatched "${_re}")
  endif()
endforeach()
if(_unmatched)
  list(JOIN _unmatched "\n  " _unmatched)
  message(FATAL_ERROR "${SOURCE} failed to compile as expected, but these regexes match nothing "
                      "in the diagnostic:\n  ${_unmatched}\n--- diagnostic ---\n${_out}")
endif()
list(LENGTH _expect_errors _n)
message(STATUS "OK: failed to compile; all ${_n} expected diagnostics found")
