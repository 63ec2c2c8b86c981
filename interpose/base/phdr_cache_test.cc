// The module copy against glibc's dl_iterate_phdr in the same process: the
// same modules in the same order, with the same program headers, names and
// counters; a callback's non-zero return ends the walk; nothing before a copy.
#include "interpose/base/phdr_cache.h"

#include <dlfcn.h>

#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace blockwatch::interpose {
namespace {

struct Module {
  std::string name;
  ElfW(Addr) address;
  std::vector<ElfW(Phdr)> phdrs;
  unsigned long long adds, subs;
};

int collect(dl_phdr_info* info, size_t, void* data) {
  static_cast<std::vector<Module>*>(data)->push_back(
      {info->dlpi_name, info->dlpi_addr,
       std::vector<ElfW(Phdr)>(info->dlpi_phdr, info->dlpi_phdr + info->dlpi_phnum),
       info->dlpi_adds, info->dlpi_subs});
  return 0;
}

std::vector<Module> from_copy() {
  std::vector<Module> modules;
  int result = -7;
  EXPECT_TRUE(phdr_cache_iterate(collect, &modules, &result));
  EXPECT_EQ(result, 0);
  return modules;
}

void expect_same(const std::vector<Module>& copy, const std::vector<Module>& glibc) {
  ASSERT_EQ(copy.size(), glibc.size());
  for (size_t i = 0; i < copy.size(); ++i) {
    EXPECT_EQ(copy[i].name, glibc[i].name);
    EXPECT_EQ(copy[i].address, glibc[i].address);
    ASSERT_EQ(copy[i].phdrs.size(), glibc[i].phdrs.size()) << glibc[i].name;
    EXPECT_EQ(std::memcmp(copy[i].phdrs.data(), glibc[i].phdrs.data(),
                          sizeof(ElfW(Phdr)) * glibc[i].phdrs.size()),
              0)
        << glibc[i].name;
    EXPECT_EQ(copy[i].adds + copy[i].subs, glibc[i].adds + glibc[i].subs);
  }
}

TEST(PhdrCache, NothingBeforeTheFirstCopyThenWhatGlibcSays) {
  int result = 0;
  EXPECT_FALSE(phdr_cache_iterate(collect, nullptr, &result));  // no copy yet
  ASSERT_TRUE(phdr_cache_refresh());
  std::vector<Module> glibc;
  dl_iterate_phdr(collect, &glibc);
  ASSERT_GT(glibc.size(), 3u);  // the test, libstdc++, libc, the vDSO, ld.so
  expect_same(from_copy(), glibc);
}

// A library loaded later is in the next copy, not in the one before; the
// copy's memory is its own, so it outlives what it was copied from.
TEST(PhdrCache, ALibraryLoadedLaterIsInTheNextCopy) {
  ASSERT_TRUE(phdr_cache_refresh());
  const size_t before = from_copy().size();
  void* library = dlopen("libresolv.so.2", RTLD_NOW);
  ASSERT_NE(library, nullptr) << dlerror();
  EXPECT_EQ(from_copy().size(), before);
  ASSERT_TRUE(phdr_cache_refresh());
  std::vector<Module> glibc;
  dl_iterate_phdr(collect, &glibc);
  const std::vector<Module> copy = from_copy();
  expect_same(copy, glibc);
  bool found = false;
  for (const Module& m : copy) found |= m.name.find("libresolv.so.2") != std::string::npos;
  EXPECT_TRUE(found);
  dlclose(library);
}

TEST(PhdrCache, ANonZeroReturnEndsTheWalkAndIsReturned) {
  ASSERT_TRUE(phdr_cache_refresh());
  int calls = 0;
  int result = 0;
  ASSERT_TRUE(phdr_cache_iterate(
      [](dl_phdr_info*, size_t, void* data) {
        ++*static_cast<int*>(data);
        return *static_cast<int*>(data) == 2 ? -5 : 0;
      },
      &calls, &result));
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(result, -5);
}

TEST(PhdrCache, ScopesNest) {
  EXPECT_FALSE(phdr_cache_in_scope());
  {
    PhdrCacheScope outer;
    {
      PhdrCacheScope inner;
      EXPECT_TRUE(phdr_cache_in_scope());
    }
    EXPECT_TRUE(phdr_cache_in_scope());
  }
  EXPECT_FALSE(phdr_cache_in_scope());
}

}  // namespace
}  // namespace blockwatch::interpose
