// demangle.h on real manglings: C++ (parameters kept, a template's return type
// dropped), Rust legacy (hash dropped, `$` escapes decoded), Rust v0 (crate
// disambiguators dropped, generics kept, methods as `<Type>::method`), and what
// must come back unchanged (C names, invalid manglings, C++ names over 1024
// characters).
#include "common/demangle.h"

#include <gtest/gtest.h>

#include <string>

namespace blockwatch::demangle {
namespace {

TEST(Demangle, Cxx) {
  EXPECT_EQ(readable_name("_ZN2ns1fEi"), "ns::f(int)");
  EXPECT_EQ(readable_name("_ZNK5model5Cache3getEv"), "model::Cache::get() const");
  EXPECT_EQ(readable_name("_ZN5model5CacheC2Ev"), "model::Cache::Cache()");
  EXPECT_EQ(readable_name("_ZNSt11this_thread9sleep_forIlSt5ratioILl1ELl1000EEEEvRKNSt6chrono8"
                          "durationIT_T0_EE"),
            "std::this_thread::sleep_for<long, std::ratio<1l, 1000l> >(std::chrono::duration<"
            "long, std::ratio<1l, 1000l> > const&)");
  EXPECT_EQ(rust_name("_ZN2ns1fEi"), "");
}

TEST(Demangle, RustLegacyWithoutHash) {
  EXPECT_EQ(readable_name("_ZN3std6thread5sleep17h4ea1e0bd1f3d0f8eE"), "std::thread::sleep");
  EXPECT_EQ(rust_name("_ZN3std6thread5sleep17h4ea1e0bd1f3d0f8eE"), "std::thread::sleep");
  EXPECT_EQ(readable_name("_ZN70_$LT$alloc..vec..Vec$LT$T$C$A$GT$$u20$as$u20$core..ops..drop.."
                          "Drop$GT$4drop17h8e4f0c2d9a1b3765E"),
            "<alloc::vec::Vec<T,A> as core::ops::drop::Drop>::drop");
  // Not a Rust hash: an Itanium C++ name.
  EXPECT_EQ(rust_name("_ZN3foo3barE"), "");
  EXPECT_EQ(readable_name("_ZN3foo3barE"), "foo::bar");
}

TEST(Demangle, RustV0) {
  EXPECT_EQ(readable_name("_RNvNtNtCsjrHSEGnQ3l9_3std6thread9functions5sleep"),
            "std::thread::functions::sleep");
  EXPECT_EQ(readable_name("_RNvMs2_NtNtCs1ILA6PXgi3j_5tokio7runtime4parkNtB5_16CachedParkThread"
                          "4park"),
            "<tokio::runtime::park::CachedParkThread>::park");
  EXPECT_EQ(readable_name("_RINvNtNtNtCs1ILA6PXgi3j_5tokio7runtime4task3raw4pollINtNtCsgEmfK2I1S"
                          "DS_4core3pin3PinINtNtCslNYArtu3iFV_5alloc5boxed3BoxNCNvCsd2KZw83CVpE_"
                          "12tokio_target10run_phases0EEINtNtB1p_4sync3ArcNtNtNtB6_9scheduler14cur"
                          "rent_thread6HandleEEB6_"),
            "tokio::runtime::task::raw::poll::<core::pin::Pin<alloc::boxed::Box<tokio_target::"
            "run_phases::{closure#0}>>, alloc::sync::Arc<tokio::runtime::scheduler::"
            "current_thread::Handle>>");
}

TEST(Demangle, OtherNamesUnchanged) {
  EXPECT_EQ(readable_name("epoll_wait"), "epoll_wait");
  EXPECT_EQ(readable_name("__libc_start_main"), "__libc_start_main");
  EXPECT_EQ(readable_name("_Z"), "_Z");
  EXPECT_EQ(readable_name("_R"), "_R");
  EXPECT_EQ(readable_name(""), "");
  EXPECT_EQ(rust_name("main"), "");
  // libiberty refuses C++ names over 1024 characters rather than parse them on
  // the stack (demangle.h's stack bound rests on it).
  std::string nested = "_ZN";
  while (nested.size() < 1000) nested += "5outer";
  EXPECT_EQ(readable_name((nested + "1fEv").c_str()).substr(0, 14), "outer::outer::");
  while (nested.size() <= 1024) nested += "5outer";
  nested += "1fEv";
  EXPECT_EQ(readable_name(nested.c_str()), nested);
}

}  // namespace
}  // namespace blockwatch::demangle
