# cmake -DNPM=... -DNODE=... -DDIR=... -DVERSION=... -P install_sdk.cmake
# Installs @paperclipai/plugin-sdk@VERSION into DIR/node_modules. Never fails the build: when it
# cannot install, it writes DIR/sdk-unavailable.txt with the reason (the tests print it and skip).
file(REMOVE ${DIR}/sdk-unavailable.txt)
set(_reason "")
if(NOT NODE OR NOT EXISTS "${NODE}")
  set(_reason "node is not installed (Debian: apt-get install nodejs)")
elseif(NOT NPM OR NOT EXISTS "${NPM}")
  set(_reason "npm is not installed (Debian: apt-get install npm)")
else()
  file(WRITE ${DIR}/package.json
    "{\n  \"name\": \"berth-test-plugins\",\n  \"private\": true,\n  \"type\": \"module\",\n"
    "  \"dependencies\": { \"@paperclipai/plugin-sdk\": \"${VERSION}\" }\n}\n")
  execute_process(
    COMMAND ${NPM} install --no-audit --no-fund --ignore-scripts --loglevel=error --fetch-retries=1
            --fetch-timeout=60000
    WORKING_DIRECTORY ${DIR}
    RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _err
    TIMEOUT 300)
  if(NOT _rc EQUAL 0)
    string(STRIP "${_err}\n${_out}" _log)
    set(_reason "npm install @paperclipai/plugin-sdk@${VERSION} failed (${_rc}); is the npm registry reachable?\n${_log}")
  elseif(NOT EXISTS ${DIR}/node_modules/@paperclipai/plugin-sdk/package.json)
    set(_reason "npm install succeeded but node_modules/@paperclipai/plugin-sdk is missing")
  endif()
endif()
if(_reason)
  file(WRITE ${DIR}/sdk-unavailable.txt "${_reason}\n")
  message(WARNING "plugin tests will be skipped: ${_reason}")
endif()
file(TOUCH ${DIR}/sdk.stamp)
