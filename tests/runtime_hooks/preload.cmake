# Preload-tier tests of runtime_hooks/ (label preload). They need the injected
# library (target `blockwatch`, interpose/) and the stream decoder (collector/);
# until both exist the programs are not built and no test is registered.
add_executable(runtime_hooks_preload_labels_program
  ${CMAKE_CURRENT_LIST_DIR}/preload_labels_program.cc)
target_link_libraries(runtime_hooks_preload_labels_program PRIVATE
  blockwatch::asio Boost::headers Threads::Threads)

add_executable(runtime_hooks_preload_gtest_program
  ${CMAKE_CURRENT_LIST_DIR}/preload_gtest_program.cc)
target_link_libraries(runtime_hooks_preload_gtest_program PRIVATE
  blockwatch::asio blockwatch::gtest GTest::gtest_main Threads::Threads)

if(TARGET blockwatch AND TARGET blockwatch_stream_decoder)
  add_executable(runtime_hooks_preload_test ${CMAKE_CURRENT_LIST_DIR}/preload_check_test.cc)
  target_link_libraries(runtime_hooks_preload_test PRIVATE
    blockwatch_stream_decoder blockwatch_symbolizer GTest::gtest GTest::gtest_main Threads::Threads)
  target_compile_definitions(runtime_hooks_preload_test PRIVATE
    BW_TEST_LIBRARY="$<TARGET_FILE:blockwatch>"
    BW_TEST_LABELS_PROGRAM="$<TARGET_FILE:runtime_hooks_preload_labels_program>"
    BW_TEST_GTEST_PROGRAM="$<TARGET_FILE:runtime_hooks_preload_gtest_program>"
    BW_TEST_DEMO_PROGRAM="$<TARGET_FILE:demo_service>")
  # Stalls are checked once the library has its watchdog; until then that test
  # reports itself skipped.
  file(GLOB watchdog_sources ${PROJECT_SOURCE_DIR}/interpose/*watchdog*.cc)
  if(watchdog_sources)
    target_compile_definitions(runtime_hooks_preload_test PRIVATE BW_TEST_EXPECT_STALLS)
  endif()
  # With the CLI built, the demo is also checked end to end through its JSON report.
  find_package(nlohmann_json QUIET)
  if(TARGET blockwatch_cli AND TARGET nlohmann_json::nlohmann_json)
    target_compile_definitions(runtime_hooks_preload_test PRIVATE
      BW_TEST_CLI="$<TARGET_FILE:blockwatch_cli>"
      BW_TEST_DEMO_CONFIG="${PROJECT_SOURCE_DIR}/examples/demo.bwconfig")
    target_link_libraries(runtime_hooks_preload_test PRIVATE nlohmann_json::nlohmann_json)
    add_dependencies(runtime_hooks_preload_test blockwatch_cli)
  endif()
  # The checker runs the programs; make sure they are built with it.
  add_dependencies(runtime_hooks_preload_test blockwatch runtime_hooks_preload_labels_program
    runtime_hooks_preload_gtest_program demo_service)
  add_test(NAME runtime_hooks_preload_test COMMAND runtime_hooks_preload_test)
  set_tests_properties(runtime_hooks_preload_test PROPERTIES LABELS preload TIMEOUT 120)
endif()
