# Turns every ```cpp block of docs/reference.md (-DREFERENCE=) into one translation unit (-DOUTPUT=),
# so that the reference's snippets are compiled with the rest of the build and cannot rot:
#   - a block's `#include` lines are hoisted to the top (a header may not be included in a namespace);
#     `#line` makes the compiler's messages point at the block's lines in docs/reference.md;
#   - the rest of the block goes in `namespace reference_snippet_<N> { ... }`, so that blocks may
#     reuse names;
#   - a block whose first line is `// needs: a b` is compiled only when BERTH_SNIPPETS_HAVE_A and
#     _B are 1 (the components a, b: sqlite, services, ssh);
#   - a few standard headers every snippet may use (<cstdio>, <string>, ...) come first;
#   - main() prints how many blocks were compiled, which the test docs.reference_snippets checks.
cmake_minimum_required(VERSION 3.25)
file(READ "${REFERENCE}" text)
set(includes "")
set(bodies "")
set(count 0)
set(compiled_if "")
set(line_no 1)  # of the start of `text` in the file, for #line
while(TRUE)
  string(FIND "${text}" "```cpp\n" open)
  if(open EQUAL -1)
    break()
  endif()
  math(EXPR open "${open} + 7")
  string(SUBSTRING "${text}" 0 ${open} skipped)
  string(REGEX MATCHALL "\n" nls "${skipped}")
  list(LENGTH nls n)
  math(EXPR line_no "${line_no} + ${n}")
  string(SUBSTRING "${text}" ${open} -1 text)
  string(FIND "${text}" "```" close)
  string(SUBSTRING "${text}" 0 ${close} block)
  math(EXPR close "${close} + 3")
  string(SUBSTRING "${text}" ${close} -1 text)
  math(EXPR count "${count} + 1")
  set(block_line ${line_no})
  string(REGEX MATCHALL "\n" nls "${block}")
  list(LENGTH nls n)
  math(EXPR line_no "${line_no} + ${n}")

  set(guard "1")
  if(block MATCHES "^// needs: ([a-z ]+)\n")
    string(REPLACE " " ";" needs "${CMAKE_MATCH_1}")
    set(guard "")
    foreach(n IN LISTS needs)
      string(TOUPPER "${n}" n)
      list(APPEND guard "BERTH_SNIPPETS_HAVE_${n}")
    endforeach()
    list(JOIN guard " && " guard)
  endif()
  # Split off the #include lines, one line at a time (not through a CMake list: `;` and `[` in
  # C++ would confuse it). An #include line becomes an empty line in the body, so that #line
  # numbers stay right.
  set(inc "")
  set(body "")
  set(rest "${block}")
  while(NOT rest STREQUAL "")
    string(FIND "${rest}" "\n" nl)
    if(nl EQUAL -1)
      set(line "${rest}")
      set(rest "")
    else()
      string(SUBSTRING "${rest}" 0 ${nl} line)
      math(EXPR nl "${nl} + 1")
      string(SUBSTRING "${rest}" ${nl} -1 rest)
    endif()
    if(line MATCHES "^#include ")
      string(APPEND inc "${line}\n")
      string(APPEND body "\n")
    else()
      string(APPEND body "${line}\n")
    endif()
  endwhile()
  string(APPEND includes "#if ${guard}\n${inc}#endif\n")
  string(APPEND bodies "#if ${guard}\n#define BERTH_SNIPPET_${count}_COMPILED 1\nnamespace reference_snippet_${count} {\n#line ${block_line} \"${REFERENCE}\"\n${body}}  // namespace reference_snippet_${count}\n#endif\n\n")
  string(APPEND compiled_if "#ifdef BERTH_SNIPPET_${count}_COMPILED\n    ++compiled;\n#endif\n")
endwhile()

if(count EQUAL 0)
  message(FATAL_ERROR "${REFERENCE} has no ```cpp block")
endif()
set(out "// Generated from docs/reference.md by examples/reference_snippets.cmake. Do not edit.\n")
string(APPEND out "#include <chrono>\n#include <cstdio>\n#include <exception>\n#include <optional>\n#include <string>\n#include <string_view>\n#include <type_traits>\n#include <vector>\n\n")
string(APPEND out "${includes}\n#include <berth/src.hpp>\n\n${bodies}")
string(APPEND out "int main() {\n    int compiled = 0;\n${compiled_if}    std::printf(\"%d of ${count} reference snippets compiled\\n\", compiled);\n")
# With every component configured, every block must have been compiled.
string(APPEND out "#if BERTH_SNIPPETS_HAVE_SQLITE && BERTH_SNIPPETS_HAVE_SERVICES && BERTH_SNIPPETS_HAVE_SSH\n    if (compiled != ${count}) return 1;\n#endif\n    return compiled > 0 ? 0 : 1;\n}\n")
file(WRITE "${OUTPUT}.tmp" "${out}")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUTPUT}.tmp")
