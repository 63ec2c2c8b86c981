// Task-entry rule matching (what task_probes_install_at_start probes): demangled
// names with or without parameters, Rust names without their hash, exact
// mangled names; nothing that only shares a prefix.
#include "interpose/probes/task_probes.h"

#include <gtest/gtest.h>

#include "interpose/transport/symbols.h"

namespace blockwatch::interpose {
namespace {

bool matches(const std::string& rule, const char* mangled) {
  return task_entry_rule_matches(rule, mangled, demangle_symbol(mangled));
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

}  // namespace
}  // namespace blockwatch::interpose
