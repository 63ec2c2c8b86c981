# The formats engineer's targets: report writers for the ecosystem's formats
# (pprof, folded stacks, JUnit XML) and the live HTTP endpoints (/metrics,
# /debug/pprof/block, the dashboard, Pyroscope push). Both libraries depend only on
# report_model.h, never on the collector core, so they build and test on their own.
find_package(ZLIB REQUIRED)

add_library(blockwatch_report_formats STATIC
  ${CMAKE_CURRENT_LIST_DIR}/report_pprof.cc
  ${CMAKE_CURRENT_LIST_DIR}/report_folded.cc
  ${CMAKE_CURRENT_LIST_DIR}/report_junit.cc)
target_include_directories(blockwatch_report_formats PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(blockwatch_report_formats PUBLIC blockwatch_common PRIVATE ZLIB::ZLIB)

add_library(blockwatch_http STATIC
  ${CMAKE_CURRENT_LIST_DIR}/http_server.cc
  ${CMAKE_CURRENT_LIST_DIR}/metrics.cc
  ${CMAKE_CURRENT_LIST_DIR}/pyroscope_push.cc)
target_include_directories(blockwatch_http PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(blockwatch_http PUBLIC blockwatch_report_formats Boost::headers Threads::Threads)
