# What `cmake --install` and `cpack` ship, for the targets the component folders
# define (included last from the top-level CMakeLists.txt, so every target exists):
#   bin/blockwatch, bin/blockwatchd         the CLI and the long-lived collector
#   lib/blockwatch/libblockwatch.so         the injected library, where the CLI looks
#                                           (lib/ is CMAKE_INSTALL_LIBDIR)
#   include/blockwatch/, lib/cmake/blockwatch/, share/pkgconfig/blockwatch-hooks.pc
#                                           the runtime hooks (runtime_hooks/CMakeLists.txt,
#                                           component blockwatch_hooks)
#   share/doc/blockwatch/                   README
# The viewer needs no files at run time: the HTML report page is compiled into the
# CLI (collector/html.cmake). `cpack -G DEB` builds one Debian package of all of it
# with its library dependencies found by dpkg-shlibdeps (packages dpkg-dev, file).
include(GNUInstallDirs)

# The one place that decides where the injected library goes: the CLI is told the
# path relative to its own directory (collector/cli_run.cc, find_library), so
# `blockwatch run` finds it in any prefix, including a relocated one.
set(BLOCKWATCH_INSTALL_LIBRARY_DIR ${CMAKE_INSTALL_LIBDIR}/blockwatch)
file(RELATIVE_PATH blockwatch_library_dir_from_bin /prefix/${CMAKE_INSTALL_BINDIR}
  /prefix/${BLOCKWATCH_INSTALL_LIBRARY_DIR})
target_compile_definitions(blockwatch_cli PRIVATE
  BLOCKWATCH_LIBRARY_FROM_BINDIR="${blockwatch_library_dir_from_bin}/$<TARGET_FILE_NAME:blockwatch>")

install(TARGETS blockwatch_cli blockwatchd
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT blockwatch)
install(TARGETS blockwatch
  LIBRARY DESTINATION ${BLOCKWATCH_INSTALL_LIBRARY_DIR} COMPONENT blockwatch)
install(FILES ${PROJECT_SOURCE_DIR}/README.md
  DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT blockwatch)

set(CPACK_PACKAGE_NAME blockwatch)
set(CPACK_PACKAGE_VENDOR "blockwatch")
# Debian requires a Maintainer; whoever publishes the package sets a real one.
set(BLOCKWATCH_PACKAGE_MAINTAINER "blockwatch maintainers <blockwatch@localhost>"
  CACHE STRING "Maintainer field of the Debian package")
set(CPACK_PACKAGE_CONTACT "${BLOCKWATCH_PACKAGE_MAINTAINER}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
  "catch executor worker threads blocking and stalling (LD_PRELOAD)")
string(CONCAT CPACK_PACKAGE_DESCRIPTION
  "blockwatch preloads a library into a program and reports the calls that\n"
  "block its executor worker threads (locks, condition variables, sleeps, I/O)\n"
  "and the stalls of its tasks, with stacks. Includes the blockwatch CLI, the\n"
  "blockwatchd collector, the injected library, and the runtime hooks' headers\n"
  "with a CMake package and a pkg-config file.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION devel)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# Needed only to build against blockwatch::asio and blockwatch::gtest.
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "libboost-dev, libgtest-dev")
include(CPack)
