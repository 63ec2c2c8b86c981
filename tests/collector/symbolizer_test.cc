// The collector's symbolizer on real code: this test binary (built -O2 -g) names
// its own planted functions, with file:line and an inlined function's chain; the
// names come out demangled (C++, Rust v0 and legacy via asm labels); a file whose
// build-id is not the module's is reported, never used; a stripped copy gets its
// lines from a separate debug file found by build-id, or its names from its
// .gnu_debugdata (MiniDebugInfo); and the stream decoder puts all of it into a
// stack's frames.
#include "collector/symbolizer.h"

#include <elf.h>
#include <link.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "collector/demangle.h"
#include "collector/stream_decoder.h"
#include "tests/collector/wire_builder.h"

// Planted code. Return addresses are taken inside `capture`, which is called
// from `inlined_helper`, which is inlined into `outer`.
namespace planted {

__attribute__((noinline)) uintptr_t capture() {
  uintptr_t pc = reinterpret_cast<uintptr_t>(__builtin_return_address(0));
  asm volatile("" : "+r"(pc));
  return pc;
}

constexpr unsigned kInlinedCallLine = __LINE__ + 2;
static inline __attribute__((always_inline)) uintptr_t inlined_helper() {
  uintptr_t pc = capture();
  asm volatile("" : "+r"(pc)::"memory");
  return pc;
}

constexpr unsigned kOuterCallLine = __LINE__ + 2;
__attribute__((noinline)) uintptr_t outer(int) {
  uintptr_t pc = inlined_helper();
  asm volatile("" : "+r"(pc)::"memory");
  return pc;
}

}  // namespace planted

// Functions whose symbol-table names are Rust-mangled (v0 and legacy).
extern "C" __attribute__((noinline, used)) int rust_v0_function() __asm__(
    "_RNvMNtCs1234_7mycrate5modelNtB2_5Model5infer");
extern "C" __attribute__((noinline, used)) int rust_v0_function() {
  asm volatile("");
  return 1;
}
extern "C" __attribute__((noinline, used)) int rust_legacy_function() __asm__(
    "_ZN7mycrate4work17h0123456789abcdefE");
extern "C" __attribute__((noinline, used)) int rust_legacy_function() {
  asm volatile("");
  return 2;
}

namespace blockwatch::collector {
namespace {

// This executable as the wire would describe it: load bias, executable
// segment, build-id (from its PT_NOTE, in memory).
struct SelfModule {
  std::string path;
  uint64_t bias = 0;
  uint64_t start = 0, end = 0;
  std::string build_id;
};

SelfModule self_module() {
  SelfModule self;
  self.path = std::filesystem::read_symlink("/proc/self/exe").string();
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) {
        auto* out = static_cast<SelfModule*>(data);
        out->bias = info->dlpi_addr;
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const ElfW(Phdr)& ph = info->dlpi_phdr[i];
          if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X)) {
            out->start = info->dlpi_addr + ph.p_vaddr;
            out->end = out->start + ph.p_memsz;
          }
          if (ph.p_type != PT_NOTE) continue;
          const char* p = reinterpret_cast<const char*>(info->dlpi_addr + ph.p_vaddr);
          const char* end = p + ph.p_memsz;
          while (p + sizeof(ElfW(Nhdr)) <= end) {
            const auto* note = reinterpret_cast<const ElfW(Nhdr)*>(p);
            const char* name = p + sizeof(ElfW(Nhdr));
            const char* desc = name + ((note->n_namesz + 3) & ~3u);
            if (note->n_type == NT_GNU_BUILD_ID && note->n_namesz == 4 &&
                std::string(name, 3) == "GNU") {
              out->build_id.assign(desc, note->n_descsz);
            }
            p = desc + ((note->n_descsz + 3) & ~3u);
          }
        }
        return 1;  // the first object is the executable
      },
      &self);
  return self;
}

std::string base_name(const std::string& path) { return path.substr(path.rfind('/') + 1); }

TEST(Demangle, CppAndBothRustSchemes) {
  EXPECT_EQ(demangle("_ZN5model5InferEv"), "model::Infer()");
  EXPECT_EQ(demangle("_RNvNtNtCsjrHSEGnQ3l9_3std6thread9functions5sleep"),
            "std::thread::functions::sleep");
  EXPECT_EQ(demangle("_ZN3std6thread5sleep17h4ea1e0bd1f3d0f8eE"), "std::thread::sleep");
  EXPECT_EQ(demangle("_ZN4core3ptr85drop_in_place$LT$std..rt..lang_start$LT$$LP$$RP$$GT$..$u7b$$"
                     "u7b$closure$u7d$$u7d$$GT$17h0123456789abcdefE"),
            "core::ptr::drop_in_place<std::rt::lang_start<()>::{{closure}}>");
  // A function template's return type is left out: frames start with their scope.
  EXPECT_EQ(
      demangle(
          "_ZNSt11this_thread9sleep_forIlSt5ratioILl1ELl1000EEEEvRKNSt6chrono8durationIT_T0_EE"),
      "std::this_thread::sleep_for<long, std::ratio<1l, 1000l> >(std::chrono::duration<long, "
      "std::ratio<1l, 1000l> > const&)");
  EXPECT_EQ(demangle("_ZNK5model5Cache3getEv"), "model::Cache::get() const");
  EXPECT_EQ(demangle("_ZN5model5CacheC2Ev"), "model::Cache::Cache()");
  EXPECT_EQ(demangle("epoll_wait"), "epoll_wait");
  EXPECT_EQ(demangle("_Z"), "_Z");  // not a valid name: unchanged
}

TEST(Symbolizer, InlinedChainWithFileAndLine) {
  const SelfModule self = self_module();
  ASSERT_FALSE(self.build_id.empty()) << "the test binary has no build-id note";
  const uint64_t pc = planted::outer(1);
  Symbolizer symbolizer;
  Symbolization s = symbolizer.symbolize({self.path, self.build_id}, pc - self.bias - 1);
  ASSERT_EQ(s.frames.size(), 2u);
  EXPECT_FALSE(s.build_id_mismatch);
  EXPECT_FALSE(s.no_debug_info);
  EXPECT_EQ(s.frames[0].function, "planted::inlined_helper");
  EXPECT_TRUE(s.frames[0].inlined);
  EXPECT_EQ(base_name(s.frames[0].file), "symbolizer_test.cc");
  EXPECT_EQ(s.frames[0].line, planted::kInlinedCallLine);
  EXPECT_EQ(s.frames[1].function, "planted::outer(int)");
  EXPECT_FALSE(s.frames[1].inlined);
  EXPECT_EQ(s.frames[1].line, planted::kOuterCallLine);
  EXPECT_EQ(s.frames[1].function_line, planted::kOuterCallLine - 1);

  // The same address again comes from the cache; the module was opened once.
  Symbolization again = symbolizer.symbolize({self.path, self.build_id}, pc - self.bias - 1);
  ASSERT_EQ(again.frames.size(), 2u);
  EXPECT_EQ(again.frames[1].function, "planted::outer(int)");
  EXPECT_EQ(symbolizer.stats().modules_opened, 1u);
  EXPECT_EQ(symbolizer.stats().cache_hits, 1u);
}

TEST(Symbolizer, RustSymbolsAreDemangled) {
  const SelfModule self = self_module();
  Symbolizer symbolizer;
  auto name_at = [&](uintptr_t function) {
    Symbolization s = symbolizer.symbolize({self.path, self.build_id}, function - self.bias);
    return s.frames.empty() ? std::string("(none)") : s.frames.back().function;
  };
  EXPECT_EQ(name_at(reinterpret_cast<uintptr_t>(&rust_v0_function)),
            "<mycrate::model::Model>::infer");
  EXPECT_EQ(name_at(reinterpret_cast<uintptr_t>(&rust_legacy_function)), "mycrate::work");
}

TEST(Symbolizer, BuildIdMismatchIsReportedNotNamed) {
  const SelfModule self = self_module();
  const uint64_t pc = planted::outer(2);
  Symbolizer symbolizer(Symbolizer::Options{.use_debuginfod = false});
  Symbolization s =
      symbolizer.symbolize({self.path, std::string("\x01\x02\x03\x04", 4)}, pc - self.bias - 1);
  EXPECT_TRUE(s.build_id_mismatch);
  EXPECT_TRUE(s.frames.empty());

  // A file that is gone is not a mismatch: nothing is known.
  Symbolization gone =
      symbolizer.symbolize({"/nonexistent/blockwatch-test", self.build_id}, 0x1000);
  EXPECT_FALSE(gone.build_id_mismatch);
  EXPECT_TRUE(gone.frames.empty());
}

// A stream names the paths the collector opens: a FIFO (opening it would wait for a
// writer) or a device is never read.
TEST(Symbolizer, OnlyRegularFilesAreOpened) {
  const std::string fifo =
      (std::filesystem::temp_directory_path() / ("bw-fifo-" + std::to_string(getpid()))).string();
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  Symbolizer symbolizer(Symbolizer::Options{.use_debuginfod = false});
  EXPECT_TRUE(symbolizer.symbolize({fifo, ""}, 0x1000).frames.empty());
  EXPECT_TRUE(symbolizer.symbolize({"/dev/zero", ""}, 0x1000).frames.empty());
  EXPECT_TRUE(symbolizer.symbolize({"/proc/self", ""}, 0x1000).frames.empty());
  unlink(fifo.c_str());
}

// A fully stripped copy, with its debug info only in DEBUG_ROOT/.build-id/xx/yyyy.debug.
TEST(Symbolizer, SeparateDebugFileByBuildId) {
  const SelfModule self = self_module();
  const std::string hex = build_id_hex(self.build_id);
  ASSERT_GE(hex.size(), 4u);
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("bw-symbolizer-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir / ".build-id" / hex.substr(0, 2));
  const std::string stripped = (dir / "stripped").string();
  const std::string debug =
      (dir / ".build-id" / hex.substr(0, 2) / (hex.substr(2) + ".debug")).string();
  ASSERT_EQ(std::system(("objcopy --only-keep-debug '" + self.path + "' '" + debug + "'").c_str()),
            0);
  ASSERT_EQ(std::system(("strip --strip-all -o '" + stripped + "' '" + self.path + "'").c_str()),
            0);

  const uint64_t pc = planted::outer(3);
  Symbolizer plain(Symbolizer::Options{.use_debuginfod = false});
  Symbolization without = plain.symbolize({stripped, self.build_id}, pc - self.bias - 1);
  for (const auto& frame : without.frames) EXPECT_NE(frame.function, "planted::outer(int)");
  EXPECT_TRUE(without.no_debug_info);  // the report says why there is no file:line

  Symbolizer with_root(Symbolizer::Options{.debug_root = dir.string(), .use_debuginfod = false});
  Symbolization s = with_root.symbolize({stripped, self.build_id}, pc - self.bias - 1);
  ASSERT_EQ(s.frames.size(), 2u);
  EXPECT_EQ(s.frames[0].function, "planted::inlined_helper");
  EXPECT_EQ(s.frames[1].function, "planted::outer(int)");
  EXPECT_EQ(s.frames[1].line, planted::kOuterCallLine);
  EXPECT_FALSE(s.no_debug_info);
  std::filesystem::remove_all(dir);
}

// MiniDebugInfo (Fedora's recipe): a stripped copy carrying, in .gnu_debugdata, an
// xz-compressed ELF with just the function symbols .dynsym lacks. Names, no lines.
TEST(Symbolizer, MiniDebugInfoNamesAStrippedCopy) {
  const SelfModule self = self_module();
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("bw-minidebuginfo-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const std::string d = dir.string(), exe = self.path;
  const std::string script =
      "set -e; cd '" + d + "'; nm -D '" + exe +
      "' --format=posix --defined-only | awk '{print $1}' | sort > dynsyms; nm '" + exe +
      "' --format=posix --defined-only | awk '$2 ~ /^[Tt]$/ {print $1}' | sort > funcsyms; "
      "comm -13 dynsyms funcsyms > keep; objcopy --only-keep-debug '" + exe +
      "' mini; objcopy -S --remove-section .gdb_index --remove-section .comment "
      "--keep-symbols=keep mini; xz mini; strip --strip-all -o stripped '" + exe +
      "'; objcopy --add-section .gnu_debugdata=mini.xz stripped";
  ASSERT_EQ(std::system(script.c_str()), 0) << script;

  const uint64_t pc = planted::outer(5);
  Symbolizer symbolizer(Symbolizer::Options{.debug_root = d, .use_debuginfod = false});
  Symbolization s = symbolizer.symbolize({d + "/stripped", self.build_id}, pc - self.bias - 1);
  ASSERT_FALSE(s.frames.empty());
  EXPECT_EQ(s.frames.back().function, "planted::outer(int)");
  EXPECT_EQ(s.frames.back().line, 0u) << "MiniDebugInfo has symbols, not lines";
  std::filesystem::remove_all(dir);
}

// The decoder symbolizes a stack's pcs with the stream's Modules: the inlined
// chain becomes frames, and a module whose file changed is named as such.
TEST(Symbolizer, DecoderExpandsFramesAndFlagsMismatch) {
  const SelfModule self = self_module();
  const uint64_t pc = planted::outer(4);
  auto stream_with_build_id = [&](const std::string& build_id) {
    wire::Frame modules;
    wire::Module* m = modules.mutable_modules()->add_modules();
    m->set_path(self.path);
    m->set_base(self.bias);
    m->set_start(self.start);
    m->set_end(self.end);
    m->set_build_id(build_id);
    wire::Frame symbol;
    symbol.mutable_symbol()->set_pc(pc);
    symbol.mutable_symbol()->set_function("target_name");
    symbol.mutable_symbol()->set_module(self.path);
    symbol.mutable_symbol()->set_module_offset(pc - self.bias);
    testing::WireBuilder w;
    w.hello(1).frame(modules).string(1, "worker-0").frame(symbol).stack(7, {pc});
    w.event(wire::KIND_SLEEP, 5, 7, 1);
    return w.bytes;
  };
  Symbolizer symbolizer(Symbolizer::Options{.use_debuginfod = false});
  DecodedStream out;
  ASSERT_TRUE(decode_bytes(stream_with_build_id(self.build_id), &out, &symbolizer)) << out.error;
  ASSERT_EQ(out.events.size(), 1u);
  const auto& stack = out.events[0].stack;
  ASSERT_EQ(stack.size(), 2u);
  EXPECT_EQ(stack[0].function, "planted::inlined_helper");
  EXPECT_TRUE(stack[0].inlined);
  EXPECT_EQ(stack[0].pc, pc);
  EXPECT_EQ(stack[1].function, "planted::outer(int)");
  EXPECT_EQ(stack[1].line, planted::kOuterCallLine);
  EXPECT_EQ(stack[1].offset, pc - self.bias);

  DecodedStream changed;
  ASSERT_TRUE(decode_bytes(stream_with_build_id("\x05\x06\x07\x08"), &changed, &symbolizer));
  ASSERT_EQ(changed.events.size(), 1u);
  ASSERT_EQ(changed.events[0].stack.size(), 1u);
  EXPECT_EQ(changed.events[0].stack[0].function, kBuildIdMismatchFunction);
  EXPECT_TRUE(changed.events[0].stack[0].build_id_mismatch);
}

}  // namespace
}  // namespace blockwatch::collector
