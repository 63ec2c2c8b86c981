# Collector core (collector engineer): the stream decoder, and the libraries that
# turn decoded records into a Report (config, aggregation, rules, JSON and text
# writers, ingestion). Executables live in cli.cmake.
add_library(blockwatch_stream_decoder STATIC
  ${CMAKE_CURRENT_LIST_DIR}/stream_decoder.cc)
target_include_directories(blockwatch_stream_decoder PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(blockwatch_stream_decoder PUBLIC blockwatch_proto absl::flat_hash_map)
blockwatch_sanitize(blockwatch_stream_decoder)
