# Collector core (collector engineer): the stream decoder, and the libraries that
# turn decoded records into a Report (config, aggregation, rules, JSON and text
# writers, ingestion). Executables live in cli.cmake.
add_library(blockwatch_stream_decoder STATIC
  ${CMAKE_CURRENT_LIST_DIR}/stream_decoder.cc)
target_include_directories(blockwatch_stream_decoder PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(blockwatch_stream_decoder PUBLIC blockwatch_proto absl::flat_hash_map)

find_package(nlohmann_json 3 REQUIRED)

# Config, rules, aggregation and the JSON/text writers: everything that turns
# decoded records into a Report, with no I/O beyond reading config/report files.
add_library(blockwatch_collector_core STATIC
  ${CMAKE_CURRENT_LIST_DIR}/config.cc
  ${CMAKE_CURRENT_LIST_DIR}/classifier.cc
  ${CMAKE_CURRENT_LIST_DIR}/aggregate.cc
  ${CMAKE_CURRENT_LIST_DIR}/aggregate_stalls.cc
  ${CMAKE_CURRENT_LIST_DIR}/rules.cc
  ${CMAKE_CURRENT_LIST_DIR}/report_json.cc
  ${CMAKE_CURRENT_LIST_DIR}/report_text.cc)
target_include_directories(blockwatch_collector_core PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(blockwatch_collector_core PUBLIC
  blockwatch_stream_decoder blockwatch_proto blockwatch_common absl::flat_hash_map absl::flat_hash_set absl::hash
  PRIVATE nlohmann_json::nlohmann_json)
