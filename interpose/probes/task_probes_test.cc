// Task-entry rule matching (what task_probes_install_at_start probes), on names
// as the library demangles them (libiberty): with or without parameters and a
// function's own template or generic arguments, Rust names without their hash,
// exact mangled names; nothing that only shares a prefix, no closure or member
// of a matching name.
#include "interpose/probes/task_probes.h"

#include <gtest/gtest.h>

#include "common/demangle.h"

namespace blockwatch::interpose {
namespace {

bool matches(const std::string& rule, const char* mangled) {
  return task_entry_rule_matches(rule, mangled, demangle::readable_name(mangled));
}

TEST(TaskEntryRule, AsioRunOneWithItsParameters) {
  const char* run_one =
      "_ZN5boost4asio6detail9scheduler10do_run_oneERNS1_27conditionally_enabled_mutex11scoped_"
      "lockERNS1_21scheduler_thread_infoERKNS_6system10error_codeE";
  EXPECT_TRUE(matches("boost::asio::detail::scheduler::do_run_one", run_one));
  EXPECT_TRUE(matches(run_one, run_one));  // the mangled name itself
  EXPECT_FALSE(matches("boost::asio::detail::scheduler::do_run", run_one));
  EXPECT_FALSE(matches("boost::asio::detail::scheduler::do_run_one_more", run_one));
}

TEST(TaskEntryRule, RustLegacyNamesWithoutTheirHash) {
  const char* poll = "_ZN5tokio7runtime4task3raw4poll17h0ab970e84bd5f5a5E";
  EXPECT_TRUE(matches("tokio::runtime::task::raw::poll", poll));
  EXPECT_FALSE(matches("tokio::runtime::task::raw::poll_future", poll));
  EXPECT_FALSE(matches("tokio::runtime::task::raw::poll",
                       "_ZN5tokio7runtime4task3raw15try_read_output17h0ab970e84bd5f5a5E"));
}

// Rust v0 (a newer toolchain's default): generic arguments follow as "::<...>".
// From the tokio 1.24 test program built with -Csymbol-mangling-version=v0.
TEST(TaskEntryRule, RustV0NamesWithTheirGenericArguments) {
  const char* poll =
      "_RINvNtNtNtCs1ILA6PXgi3j_5tokio7runtime4task3raw4pollINtNtCsgEmfK2I1SDS_4core3pin3PinINtNt"
      "CslNYArtu3iFV_5alloc5boxed3BoxNCNvCsd2KZw83CVpE_12tokio_target10run_phases0EEINtNtB1p_4syn"
      "c3ArcNtNtNtB6_9scheduler14current_thread6HandleEEB6_";
  EXPECT_TRUE(matches("tokio::runtime::task::raw::poll", poll));
  EXPECT_FALSE(matches("tokio::runtime::task::raw::pol", poll));
  // A closure inside a generic function is another function.
  const char* closure =
      "_RNCINvNtNtNtCs1ILA6PXgi3j_5tokio7runtime4task3raw4pollINtNtCsgEmfK2I1SDS_4core3pin3PinINtN"
      "tCslNYArtu3iFV_5alloc5boxed3BoxNCNvCsd2KZw83CVpE_12tokio_target10run_phases0EEINtNtB1r_4sy"
      "nc3ArcNtNtNtB8_9scheduler14current_thread6HandleEE0B8_";
  EXPECT_FALSE(matches("tokio::runtime::task::raw::poll", closure))
      << demangle::readable_name(closure);
  // Not generic: the plain v0 path.
  EXPECT_TRUE(
      matches("tokio::runtime::scheduler::multi_thread::worker::run",
              "_RNvNtNtNtNtCs1ILA6PXgi3j_5tokio7runtime9scheduler12multi_thread6worker3run"));
}

// C++: a function template's own arguments are part of what the rule names,
// a class template's are not (the rule names no member of it).
TEST(TaskEntryRule, CxxTemplates) {
  // void ns::run_one<int>(int)
  EXPECT_TRUE(matches("ns::run_one", "_ZN2ns7run_oneIiEEvT_"));
  // ns::Pool<int>::run()
  EXPECT_FALSE(matches("ns::Pool", "_ZN2ns4PoolIiE3runEv"));
  EXPECT_TRUE(matches("ns::Pool<int>::run", "_ZN2ns4PoolIiE3runEv"));
}

}  // namespace
}  // namespace blockwatch::interpose
