# cmake -DMODE=<install|find_package|component_sqlite|component_postgres|component_services|component_ssh|component_testing|unknown_component|add_subdirectory> ... -P run_consumer.cmake
# (tests/package/CMakeLists.txt passes the other -D variables.) Prints every command it runs.
cmake_minimum_required(VERSION 3.25)
foreach(_v MODE WORK_DIR PREFIX BERTH_BUILD_DIR BERTH_SOURCE_DIR BERTH_VERSION CONSUMERS_DIR GENERATOR CXX)
  if(NOT DEFINED ${_v} OR "${${_v}}" STREQUAL "")
    message(FATAL_ERROR "run_consumer.cmake: -D${_v}=... is required")
  endif()
endforeach()

# Runs a command; on failure (or, with EXPECT_FAIL, on success) stops with its output.
# The output is left in ${OUT_VAR} when given.
function(_berth_run)
  cmake_parse_arguments(PARSE_ARGV 0 _a "EXPECT_FAIL" "OUT_VAR" "COMMAND")
  list(JOIN _a_COMMAND " " _text)
  message(STATUS "$ ${_text}")
  execute_process(COMMAND ${_a_COMMAND} RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _out)
  if(_a_EXPECT_FAIL AND _rc EQUAL 0)
    message(FATAL_ERROR "this must fail but succeeded:\n${_out}")
  elseif(NOT _a_EXPECT_FAIL AND NOT _rc EQUAL 0)
    message(FATAL_ERROR "failed (${_rc}):\n${_out}")
  endif()
  if(_a_OUT_VAR)
    set(${_a_OUT_VAR} "${_out}" PARENT_SCOPE)
  endif()
endfunction()

# Configures (from scratch), builds and runs one consumer project; checks what it prints.
function(_berth_consumer _name _source_dir _expect_output)
  set(_bin ${WORK_DIR}/${_name}-build)
  file(REMOVE_RECURSE ${_bin})
  set(_configure ${CMAKE_COMMAND} -S ${_source_dir} -B ${_bin} -G ${GENERATOR}
                 -DCMAKE_CXX_COMPILER=${CXX}
                 # The user package registry could hand find_package another berth: off.
                 -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF ${ARGN})
  if(MAKE_PROGRAM)
    list(APPEND _configure -DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM})
  endif()
  if(LAUNCHER)
    list(APPEND _configure -DCMAKE_CXX_COMPILER_LAUNCHER=${LAUNCHER})
  endif()
  _berth_run(COMMAND ${_configure})
  _berth_run(COMMAND ${CMAKE_COMMAND} --build ${_bin})
  _berth_run(COMMAND ${_bin}/consumer OUT_VAR _out)
  message(STATUS "consumer printed: ${_out}")
  if(NOT _out MATCHES "${_expect_output}")
    message(FATAL_ERROR "the consumer's output does not match '${_expect_output}'")
  endif()
  set(_bin ${_bin} PARENT_SCOPE)
endfunction()

# find_package must take berth from PREFIX, not from anywhere else on the machine.
function(_berth_check_found_in_prefix _bin)
  file(STRINGS ${_bin}/CMakeCache.txt _dir REGEX "^berth_DIR:")
  string(REGEX REPLACE "^berth_DIR:[A-Z]+=" "" _dir "${_dir}")
  string(FIND "${_dir}" "${PREFIX}/" _at)
  if(NOT _at EQUAL 0)
    message(FATAL_ERROR "find_package found berth in '${_dir}', not under ${PREFIX}")
  endif()
endfunction()

string(REPLACE "." "\\." _version_re "${BERTH_VERSION}")

if(MODE STREQUAL "install")
  file(REMOVE_RECURSE ${PREFIX})
  _berth_run(COMMAND ${CMAKE_COMMAND} --install ${BERTH_BUILD_DIR} --prefix ${PREFIX})
  file(GLOB_RECURSE _configs ${PREFIX}/*/berth-config.cmake)
  list(LENGTH _configs _n)
  if(NOT _n EQUAL 1)
    message(FATAL_ERROR "expected one berth-config.cmake under ${PREFIX}, found: ${_configs}")
  endif()
  get_filename_component(_cfg_dir ${_configs} DIRECTORY)
  foreach(_f berth-config-version.cmake berth-targets.cmake)
    if(NOT EXISTS ${_cfg_dir}/${_f})
      message(FATAL_ERROR "${_cfg_dir}/${_f} was not installed")
    endif()
  endforeach()
  if(NOT EXISTS ${PREFIX}/include/berth/berth.hpp OR NOT EXISTS ${PREFIX}/include/berth/src.hpp)
    message(FATAL_ERROR "the headers were not installed under ${PREFIX}/include")
  endif()
  # The installed package must be relocatable: no path into the source or build tree.
  file(GLOB _cmake_files ${_cfg_dir}/*.cmake)
  foreach(_f IN LISTS _cmake_files)
    file(READ ${_f} _text)
    foreach(_tree ${BERTH_SOURCE_DIR} ${BERTH_BUILD_DIR})
      string(FIND "${_text}" "${_tree}" _at)
      if(NOT _at EQUAL -1)
        message(FATAL_ERROR "${_f} refers to ${_tree}: the installed package is not relocatable")
      endif()
    endforeach()
  endforeach()
  # The core target links no optional library: libssh, SQLite and OpenSSL belong to their components.
  file(READ ${_cfg_dir}/berth-targets.cmake _core_targets)
  if(_core_targets MATCHES "INTERFACE_LINK_LIBRARIES \"[^\"]*(ssh|SQLite|OpenSSL)")
    message(FATAL_ERROR "berth-targets.cmake (berth::berth) links an optional library")
  endif()
  message(STATUS "installed into ${PREFIX} (config in ${_cfg_dir})")

elseif(MODE STREQUAL "find_package")
  _berth_consumer(find_package ${CONSUMERS_DIR}/consumer
    "find_package\\(berth ${_version_re}\\): lease status retained \\(retained\\)"
    -DCMAKE_PREFIX_PATH=${PREFIX} -DBERTH_VERSION_WANTED=${BERTH_VERSION})
  _berth_check_found_in_prefix(${_bin})

elseif(MODE STREQUAL "component_sqlite")
  _berth_consumer(component_sqlite ${CONSUMERS_DIR}/consumer "lease status retained"
    -DCMAKE_PREFIX_PATH=${PREFIX} -DBERTH_COMPONENT=sqlite)
  _berth_check_found_in_prefix(${_bin})

elseif(MODE STREQUAL "component_postgres")
  _berth_consumer(component_postgres ${CONSUMERS_DIR}/consumer "lease status retained"
    -DCMAKE_PREFIX_PATH=${PREFIX} -DBERTH_COMPONENT=postgres)
  _berth_check_found_in_prefix(${_bin})

elseif(MODE STREQUAL "component_services")
  _berth_consumer(component_services ${CONSUMERS_DIR}/consumer "lease status retained.*sha256\\(abc\\) = ba7816bf"
    -DCMAKE_PREFIX_PATH=${PREFIX} -DBERTH_COMPONENT=services)
  _berth_check_found_in_prefix(${_bin})

elseif(MODE STREQUAL "component_ssh")
  _berth_consumer(component_ssh ${CONSUMERS_DIR}/consumer "lease status retained"
    -DCMAKE_PREFIX_PATH=${PREFIX} -DBERTH_COMPONENT=ssh)
  _berth_check_found_in_prefix(${_bin})
  file(GLOB_RECURSE _ssh_targets ${PREFIX}/*/berth_ssh-targets.cmake)
  if(NOT _ssh_targets)
    message(FATAL_ERROR "berth_ssh-targets.cmake was not installed")
  endif()

elseif(MODE STREQUAL "component_testing")
  _berth_consumer(component_testing ${CONSUMERS_DIR}/consumer "All tests passed.*driver kit failures: 0"
    -DCMAKE_PREFIX_PATH=${PREFIX} -DBERTH_COMPONENT=testing)
  _berth_check_found_in_prefix(${_bin})
  # The core config must not need Catch2: only the testing component's file names it.
  file(GLOB_RECURSE _core_targets ${PREFIX}/*/berth-targets.cmake)
  file(READ ${_core_targets} _core_text)
  if(_core_text MATCHES "Catch2")
    message(FATAL_ERROR "berth-targets.cmake (berth::berth) names Catch2")
  endif()

elseif(MODE STREQUAL "unknown_component")
  set(_bin ${WORK_DIR}/unknown_component-build)
  file(REMOVE_RECURSE ${_bin})
  _berth_run(EXPECT_FAIL OUT_VAR _out COMMAND ${CMAKE_COMMAND} -S ${CONSUMERS_DIR}/consumer -B ${_bin}
    -G ${GENERATOR} -DCMAKE_CXX_COMPILER=${CXX} -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
    -DCMAKE_PREFIX_PATH=${PREFIX} -DBERTH_COMPONENT=nosuch)
  if(NOT _out MATCHES "berth has no component named 'nosuch'")
    message(FATAL_ERROR "find_package(berth COMPONENTS nosuch) failed, but without the "
                        "'no component named' message:\n${_out}")
  endif()
  message(STATUS "find_package(berth COMPONENTS nosuch) failed as it must")

elseif(MODE STREQUAL "add_subdirectory")
  _berth_consumer(add_subdirectory ${CONSUMERS_DIR}/subdir_consumer
    "add_subdirectory\\(berth\\): lease status retained \\(retained\\)"
    -DBERTH_SOURCE_DIR=${BERTH_SOURCE_DIR})

else()
  message(FATAL_ERROR "run_consumer.cmake: unknown MODE '${MODE}'")
endif()
