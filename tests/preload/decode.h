// Reads what libblockwatch.so wrote to BLOCKWATCH_OUTPUT files: varint-length
// frames of blockwatch.wire.Frame (proto/blockwatch.proto), with the interned
// strings, symbols and stacks resolved, so a test asserts on names. Deliberately
// independent of the collector's decoder: these tests check the library's output
// against the .proto itself.
#pragma once

#include <google/protobuf/io/coded_stream.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "proto/blockwatch.pb.h"

namespace blockwatch::preload_test {

struct DecodedEvent {
  wire::Event event;
  std::string thread_name;
  std::string task;
  std::string allow_reason;
  std::vector<std::string> functions;  // symbolized stack, innermost first

  bool stack_contains(const std::string& function) const {
    for (const std::string& f : functions) {
      if (f.find(function) != std::string::npos) return true;
    }
    return false;
  }
};

struct DecodedStream {
  std::string path;
  bool has_hello = false;
  wire::Hello hello;
  std::vector<DecodedEvent> events;
  wire::Counters counters;
  bool has_goodbye = false;
  wire::Goodbye goodbye;
  std::string error;  // empty when the whole file decoded
};

inline DecodedStream decode_file(const std::string& path) {
  DecodedStream out;
  out.path = path;
  std::ifstream file(path, std::ios::binary);
  std::stringstream buffer;
  buffer << file.rdbuf();
  const std::string bytes = buffer.str();
  google::protobuf::io::CodedInputStream input(reinterpret_cast<const uint8_t*>(bytes.data()),
                                               static_cast<int>(bytes.size()));
  std::map<uint64_t, std::string> strings;
  std::map<uint64_t, std::string> symbols;
  std::map<uint64_t, std::vector<uint64_t>> stacks;
  while (input.CurrentPosition() < static_cast<int>(bytes.size())) {
    uint32_t size = 0;
    std::string frame_bytes;
    wire::Frame frame;
    if (!input.ReadVarint32(&size) || !input.ReadString(&frame_bytes, static_cast<int>(size)) ||
        !frame.ParseFromString(frame_bytes)) {
      out.error = "bad frame at offset " + std::to_string(input.CurrentPosition());
      break;
    }
    switch (frame.body_case()) {
      case wire::Frame::kHello:
        out.has_hello = true;
        out.hello = frame.hello();
        break;
      case wire::Frame::kString:
        strings[frame.string().id()] = frame.string().text();
        break;
      case wire::Frame::kSymbol:
        symbols[frame.symbol().pc()] = frame.symbol().function();
        break;
      case wire::Frame::kStack:
        stacks[frame.stack().id()].assign(frame.stack().pcs().begin(), frame.stack().pcs().end());
        break;
      case wire::Frame::kEvent: {
        DecodedEvent event;
        event.event = frame.event();
        event.thread_name = strings[frame.event().thread_name()];
        event.task = strings[frame.event().task()];
        event.allow_reason = strings[frame.event().allow_reason()];
        for (uint64_t pc : stacks[frame.event().stack()]) event.functions.push_back(symbols[pc]);
        out.events.push_back(std::move(event));
        break;
      }
      case wire::Frame::kCounters:
        out.counters = frame.counters();
        break;
      case wire::Frame::kGoodbye:
        out.has_goodbye = true;
        out.goodbye = frame.goodbye();
        break;
      default:
        break;
    }
  }
  return out;
}

// Every stream in `directory` (one file per process), in no particular order.
inline std::vector<DecodedStream> decode_directory(const std::string& directory) {
  std::vector<DecodedStream> streams;
  for (const auto& entry : std::filesystem::directory_iterator(directory)) {
    if (entry.is_regular_file()) streams.push_back(decode_file(entry.path().string()));
  }
  return streams;
}

}  // namespace blockwatch::preload_test
