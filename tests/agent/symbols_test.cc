// Unit tests of the library's symbolization: a return address inside a known
// function, named as the library demangles it (libiberty, common/demangle.h:
// C++, Rust legacy without its hash, Rust v0), the module table and build ids,
// and BLOCKWATCH_OUTPUT file naming.
#include "interpose/transport/symbols.h"

#include <gtest/gtest.h>

#include "interpose/transport/output_channel.h"

namespace blockwatch::interpose {
namespace {

// Declared with Rust manglings (legacy, with `$` escapes and a hash; v0) and a
// C++ one, so the symbolizer's own tables name them through the demangler.
extern "C" __attribute__((noinline, used)) int rust_like_function(int x) __asm__(
    "_ZN4demo15Worker$LT$T$GT$3run17habcdef0123456789E");
extern "C" int rust_like_function(int x) { return x * 2 + 1; }
extern "C" __attribute__((noinline, used)) int rust_v0_function(int x) __asm__(
    "_RNvNtCs1234_4demo6worker3run");
extern "C" int rust_v0_function(int x) { return x * 3 + 1; }
extern "C" __attribute__((noinline, used)) int cxx_function(int x) __asm__("_ZN4demo4pollEi");
extern "C" int cxx_function(int x) { return x * 5 + 1; }

__attribute__((noinline)) uint64_t return_address_here() {
  return reinterpret_cast<uint64_t>(__builtin_return_address(0));
}
__attribute__((noinline)) uint64_t caller_of_return_address_here() {
  const uint64_t pc = return_address_here();
  asm volatile("" ::: "memory");  // keep the call from becoming a tail call
  return pc;
}

std::string symbolize(ElfSymbolizer& symbolizer, uint64_t pc) {
  static const auto modules = enumerate_modules();
  return symbolizer.symbolize_return_address(pc, find_module(modules, pc));
}

TEST(Symbolize, ReturnAddressInsideKnownFunction) {
  ElfSymbolizer symbolizer;
  const uint64_t pc = caller_of_return_address_here();
  EXPECT_NE(symbolize(symbolizer, pc).find("caller_of_return_address_here"), std::string::npos)
      << symbolize(symbolizer, pc);
  // One past the start of the Rust-like function: still inside it.
  const uint64_t rust_pc = reinterpret_cast<uint64_t>(&rust_like_function) + 2;
  EXPECT_EQ(symbolize(symbolizer, rust_pc), "demo::Worker<T>::run");
  const uint64_t v0_pc = reinterpret_cast<uint64_t>(&rust_v0_function) + 2;
  EXPECT_EQ(symbolize(symbolizer, v0_pc), "demo::worker::run");
  const uint64_t cxx_pc = reinterpret_cast<uint64_t>(&cxx_function) + 2;
  EXPECT_EQ(symbolize(symbolizer, cxx_pc), "demo::poll(int)");
  EXPECT_EQ(symbolize(symbolizer, 0), "");
  // A libc function, from .dynsym of a stripped library.
  EXPECT_EQ(symbolize(symbolizer, reinterpret_cast<uint64_t>(&getpid) + 2), "getpid");
}

// The symbolizer keeps no fd open: a program that closes every fd or reuses the
// numbers never has its files read, moved or closed by us.
TEST(Symbolize, KeepsNoFileDescriptorOpen) {
  ElfSymbolizer symbolizer;
  const int probe_before = dup(0);
  close(probe_before);
  symbolize(symbolizer, reinterpret_cast<uint64_t>(&getpid) + 2);
  symbolize(symbolizer, caller_of_return_address_here());
  const int probe_after = dup(0);
  close(probe_after);
  EXPECT_EQ(probe_after, probe_before);  // the lowest free fd did not move
}

TEST(Modules, MainProgramAndLibcWithBuildIds) {
  const auto modules = enumerate_modules();
  ASSERT_GE(modules.size(), 2u);
  const uint64_t own_pc = reinterpret_cast<uint64_t>(&rust_like_function);
  const ModuleInfo* own = find_module(modules, own_pc);
  ASSERT_NE(own, nullptr);
  EXPECT_NE(own->path.find("agent_symbols_test"), std::string::npos) << own->path;
  EXPECT_EQ(own->build_id.size(), 20u);  // Debian's gcc links with --build-id (sha1)
  EXPECT_LT(own->start, own->end);
  const ModuleInfo* libc = find_module(modules, reinterpret_cast<uint64_t>(&getpid));
  ASSERT_NE(libc, nullptr);
  EXPECT_NE(libc->path.find("libc.so"), std::string::npos) << libc->path;
  EXPECT_FALSE(libc->build_id.empty());
  EXPECT_EQ(find_module(modules, 8), nullptr);
  for (size_t i = 1; i < modules.size(); ++i) EXPECT_LE(modules[i - 1].start, modules[i].start);
  EXPECT_EQ(module_change_count(), module_change_count());
  EXPECT_GT(module_change_count(), 0u);
}

TEST(OutputFilePath, PidSubstitutionAndForkSuffix) {
  EXPECT_EQ(output_file_path("/tmp/bw-%p.out", 42, false), "/tmp/bw-42.out");
  EXPECT_EQ(output_file_path("/tmp/bw-%p.out", 42, true), "/tmp/bw-42.out");
  EXPECT_EQ(output_file_path("/tmp/bw.out", 42, false), "/tmp/bw.out");
  EXPECT_EQ(output_file_path("/tmp/bw.out", 42, true), "/tmp/bw.out.42");
  EXPECT_EQ(output_file_path("%p%p", 7, false), "77");
}

}  // namespace
}  // namespace blockwatch::interpose
