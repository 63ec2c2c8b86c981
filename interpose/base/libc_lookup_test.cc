// libc_lookup finds the same definitions the loader's dlsym/dlvsym find in libc,
// default and explicit versions, and nothing for what libc does not define.
#include "interpose/base/libc_lookup.h"

#include <dlfcn.h>
#include <gtest/gtest.h>

namespace blockwatch::interpose {
namespace {

void* libc_handle() {
  static void* handle = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  return handle;
}

TEST(LibcLookup, DefaultVersionsMatchDlsym) {
  ASSERT_NE(libc_handle(), nullptr);
  for (const char* name :
       {"write", "read", "pthread_mutex_lock", "pthread_rwlock_wrlock", "sem_clockwait", "syscall",
        "epoll_wait", "usleep", "_exit", "pthread_cond_wait", "pthread_cond_timedwait"}) {
    void* expected = dlsym(libc_handle(), name);
    ASSERT_NE(expected, nullptr) << name;
    EXPECT_EQ(libc_lookup(name, nullptr), expected) << name;
  }
}

TEST(LibcLookup, ExplicitVersionsMatchDlvsym) {
  // pthread_cond_wait exists twice: the current ABI and the pre-NPTL one.
  for (const char* version : {"GLIBC_2.3.2", "GLIBC_2.2.5"}) {
    void* expected = dlvsym(libc_handle(), "pthread_cond_wait", version);
    ASSERT_NE(expected, nullptr) << version;
    EXPECT_EQ(libc_lookup("pthread_cond_wait", version), expected) << version;
  }
  EXPECT_NE(libc_lookup("pthread_cond_wait", "GLIBC_2.3.2"),
            libc_lookup("pthread_cond_wait", "GLIBC_2.2.5"));
}

TEST(LibcLookup, IfuncResolvesToTheSelectedImplementation) {
  // memcpy is an IFUNC in glibc: the answer is the implementation, as with dlsym.
  EXPECT_EQ(libc_lookup("memcpy", nullptr), dlsym(libc_handle(), "memcpy"));
}

TEST(LibcLookup, UnknownNamesAndVersionsAreNotFound) {
  EXPECT_EQ(libc_lookup("blockwatch_no_such_function", nullptr), nullptr);
  EXPECT_EQ(libc_lookup("write", "GLIBC_9.99"), nullptr);
  EXPECT_EQ(libc_lookup("", nullptr), nullptr);
}

}  // namespace
}  // namespace blockwatch::interpose
