// Reads what libblockwatch.so wrote to BLOCKWATCH_OUTPUT files: varint-length
// frames of blockwatch.wire.Frame (proto/blockwatch.proto), with the interned
// strings and stacks resolved, so a test asserts on names. Deliberately
// independent of the collector's decoder: these tests check the library's output
// against the .proto itself. The library ships return addresses and its module
// map; names come from the collector's symbolizer (libdw), as in a report, and
// from the Symbol frames the library still sends for code without a file.
#pragma once

#include <google/protobuf/io/coded_stream.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "collector/symbolizer.h"
#include "proto/blockwatch.pb.h"

namespace blockwatch::preload_test {

struct DecodedEvent {
  wire::Event event;
  std::string thread_name;
  std::string task;
  std::string allow_reason;
  std::vector<std::string> functions;  // symbolized stack, innermost first (inlined too)

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

// The functions at return address `pc`: innermost inlined first; the pc in hex
// when nothing names it.
inline std::vector<std::string> functions_at(uint64_t pc,
                                             const std::map<uint64_t, std::string>& symbols,
                                             const std::vector<wire::Module>& modules) {
  if (auto named = symbols.find(pc); named != symbols.end() && !named->second.empty()) {
    return {named->second};
  }
  for (auto module = modules.rbegin(); module != modules.rend(); ++module) {
    if (pc == 0 || pc - 1 < module->start() || pc - 1 >= module->end()) continue;
    const collector::Symbolization symbolized = collector::Symbolizer::shared().symbolize(
        {module->path(), module->build_id()}, pc - module->base() - 1);
    std::vector<std::string> functions;
    for (const collector::SymbolizedFrame& frame : symbolized.frames) {
      functions.push_back(frame.function);
    }
    if (!functions.empty()) return functions;
    break;
  }
  char hex[32];
  std::snprintf(hex, sizeof hex, "0x%llx", static_cast<unsigned long long>(pc));
  return {hex};
}

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
  std::vector<wire::Module> modules;
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
      case wire::Frame::kModules:
        modules.insert(modules.end(), frame.modules().modules().begin(),
                       frame.modules().modules().end());
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
        for (uint64_t pc : stacks[frame.event().stack()]) {
          for (std::string& function : functions_at(pc, symbols, modules)) {
            event.functions.push_back(std::move(function));
          }
        }
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
