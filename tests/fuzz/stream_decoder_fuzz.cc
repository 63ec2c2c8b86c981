// libFuzzer target for the collector's wire stream decoder: arbitrary bytes, fed
// in pieces whose sizes come from the input itself, must never crash, hang or
// leak; a rejected stream must say why. Built with clang++ -fsanitize=fuzzer,address
// (tests/collector/CMakeLists.txt), run for a bounded time by ctest (label fuzz).
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "collector/stream_decoder.h"

namespace {

class TouchingHandler : public blockwatch::collector::StreamHandler {
 public:
  size_t bytes_seen = 0;
  void on_event(const blockwatch::wire::Event& event,
                const blockwatch::collector::EventRefs& refs) override {
    // Touch everything the decoder resolved so ASan sees any dangling reference.
    bytes_seen += refs.thread_name->size() + refs.task->size() + refs.allow_reason->size() +
                  refs.holder_name->size() + event.function().size();
    if (refs.stack != nullptr) {
      for (const auto& frame : refs.stack->frames) bytes_seen += frame.function.size();
    }
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  TouchingHandler handler;
  // The first byte picks socket mode or file mode and the feeding chunk size.
  bool allow_restart = size > 0 && (data[0] & 1);
  size_t chunk = size > 0 ? 1 + (data[0] >> 1) : 1;
  blockwatch::collector::StreamDecoder decoder(
      &handler, blockwatch::collector::StreamDecoder::Options{.allow_restart = allow_restart});
  const char* bytes = reinterpret_cast<const char*>(data);
  for (size_t offset = 0; offset < size; offset += chunk) {
    size_t n = size - offset < chunk ? size - offset : chunk;
    if (!decoder.feed(bytes + offset, n)) break;
  }
  if (!decoder.finish() && decoder.error().empty()) std::abort();
  return 0;
}
