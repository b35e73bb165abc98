# Finds every third-party library through pkg-config and stops with the Debian
# package to install when one is missing.
find_package(PkgConfig)
if(NOT PKG_CONFIG_FOUND)
  message(FATAL_ERROR "pkg-config not found: apt-get install pkg-config (or run deploy/install-deps.sh)")
endif()
find_package(Threads REQUIRED)

function(sp_require name module debpkg)
  pkg_check_modules(${name} QUIET IMPORTED_TARGET ${module})
  if(NOT ${name}_FOUND)
    message(FATAL_ERROR "${module} not found: apt-get install ${debpkg} (or run deploy/install-deps.sh)")
  endif()
endfunction()

sp_require(RDKAFKA rdkafka librdkafka-dev)
sp_require(PQ libpq libpq-dev)
sp_require(LMDB lmdb liblmdb-dev)
sp_require(JANSSON jansson libjansson-dev)
sp_require(LIBEVENT "libevent_core;libevent_extra;libevent_pthreads" libevent-dev)
sp_require(JWT libjwt libjwt-dev)
sp_require(ARGON2 libargon2 libargon2-dev)
sp_require(XXHASH libxxhash libxxhash-dev)
sp_require(OPENSSL libcrypto libssl-dev)
sp_require(CMOCKA cmocka libcmocka-dev)
sp_require(UTF8PROC libutf8proc libutf8proc-dev)
sp_require(VIPS vips libvips-dev)
# libwebpmux removes the metadata chunks libvips 8.14's webpsave writes despite strip.
sp_require(WEBPMUX libwebpmux libwebp-dev)

# libstemmer (Snowball) ships no pkg-config file: find its header and library directly.
find_path(STEMMER_INCLUDE libstemmer.h)
find_library(STEMMER_LIB stemmer)
if(NOT STEMMER_INCLUDE OR NOT STEMMER_LIB)
  message(FATAL_ERROR "libstemmer not found: apt-get install libstemmer-dev (or run deploy/install-deps.sh)")
endif()

# CRoaring (compressed bitmaps of the analytics view) ships a CMake package, no pkg-config.
find_package(roaring CONFIG QUIET)
if(NOT TARGET roaring::roaring)
  message(FATAL_ERROR "CRoaring not found: apt-get install libroaring-dev (or run deploy/install-deps.sh)")
endif()

# simdjson (the log's JSON parser, event-store/src/json_parse.cc) ships a CMake package.
find_package(simdjson CONFIG QUIET)
if(NOT TARGET simdjson::simdjson)
  message(FATAL_ERROR "simdjson not found: apt-get install libsimdjson-dev (or run deploy/install-deps.sh)")
endif()

# wslay (WebSocket framing under common/src/ws.c): Debian 12's libwslay-dev ships a CMake
# package (imported target wslay) and no libwslay.pc, so it is found like the two above.
find_package(wslay CONFIG QUIET)
if(NOT TARGET wslay)
  message(FATAL_ERROR "wslay not found: apt-get install libwslay-dev (or run deploy/install-deps.sh)")
endif()

# sp_add_test(NAME <name> SOURCES <files...> LIBS <targets...> LABEL unit|integration [TIMEOUT s])
function(sp_add_test)
  cmake_parse_arguments(T "" "NAME;LABEL;TIMEOUT" "SOURCES;LIBS" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE ${T_LIBS} PkgConfig::CMOCKA)
  add_test(NAME ${T_NAME} COMMAND ${T_NAME})
  set_tests_properties(${T_NAME} PROPERTIES TIMEOUT ${T_TIMEOUT} LABELS ${T_LABEL}
    ENVIRONMENT "SP_SOURCE_DIR=${SP_SOURCE_DIR};SP_BINARY_DIR=${CMAKE_BINARY_DIR}")
endfunction()
