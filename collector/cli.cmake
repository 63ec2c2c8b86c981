# The executables (collector engineer): `blockwatch` (run / report) and
# `blockwatchd`. The ingestion server and the report dispatch table live in
# blockwatch_cli_common; writers of other areas are linked when their targets exist.
add_library(blockwatch_cli_common STATIC
  ${CMAKE_CURRENT_LIST_DIR}/ingest.cc
  ${CMAKE_CURRENT_LIST_DIR}/report_writers.cc
  ${CMAKE_CURRENT_LIST_DIR}/cli_common.cc)
target_include_directories(blockwatch_cli_common PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(blockwatch_cli_common PUBLIC blockwatch_collector_core Boost::headers Threads::Threads)
if(TARGET blockwatch_report_formats)
  target_link_libraries(blockwatch_cli_common PUBLIC blockwatch_report_formats)
  target_compile_definitions(blockwatch_cli_common PUBLIC BLOCKWATCH_HAVE_FORMATS)
endif()
if(TARGET blockwatch_report_html)
  target_link_libraries(blockwatch_cli_common PUBLIC blockwatch_report_html)
  target_compile_definitions(blockwatch_cli_common PUBLIC BLOCKWATCH_HAVE_HTML)
endif()

add_executable(blockwatch_cli
  ${CMAKE_CURRENT_LIST_DIR}/cli_main.cc
  ${CMAKE_CURRENT_LIST_DIR}/cli_run.cc
  ${CMAKE_CURRENT_LIST_DIR}/cli_report.cc)
# The target `blockwatch` is the injected library; the CLI binary is still named
# blockwatch.
set_target_properties(blockwatch_cli PROPERTIES OUTPUT_NAME blockwatch)
target_link_libraries(blockwatch_cli PRIVATE blockwatch_cli_common)

add_executable(blockwatchd ${CMAKE_CURRENT_LIST_DIR}/blockwatchd.cc)
target_link_libraries(blockwatchd PRIVATE blockwatch_cli_common)
if(TARGET blockwatch_http)
  target_link_libraries(blockwatchd PRIVATE blockwatch_http)
  target_compile_definitions(blockwatchd PRIVATE BLOCKWATCH_HAVE_HTTP)
endif()
