// End to end with the real `node`: `blockwatch run --workers main -- node
// --perf-basic-prof ... script.js`, where a named JavaScript function calls
// child_process.execSync. Asserts that execSync's wait for its child (a
// private libuv loop's epoll wait) is reported as blocking on the main thread,
// with SyncProcessRunner in the stack and the JavaScript function named from
// node's perf map, while the main loop's own idle epoll wait is not reported.
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

namespace {

bool stack_has(const nlohmann::json& hotspot, const std::string& part,
               const std::string& module_suffix = "") {
  for (const auto& frame : hotspot["stack"]) {
    if (frame["function"].get<std::string>().find(part) == std::string::npos) continue;
    if (frame.value("module", std::string()).ends_with(module_suffix)) return true;
  }
  return false;
}

TEST(NodeEndToEnd, ExecSyncBlocksTheMainLoopAndNamesTheJavaScriptCaller) {
  if (std::system("command -v node >/dev/null 2>&1") != 0) GTEST_SKIP() << "node not installed";
  char dir_template[] = "/tmp/bw-node-XXXXXX";
  const std::string dir = ::mkdtemp(dir_template);
  // The first call lasts long enough for the watchdog to classify the call
  // site while it waits (its tick is up to 100 ms with stall detection off);
  // the three after it are the ones asserted. The timer makes the main loop
  // wait in epoll_wait, idle, for 300 ms.
  std::ofstream(dir + "/script.js") << R"(
const cp = require('child_process');
function runChildSync(seconds) { cp.execSync('sleep ' + seconds); }
runChildSync(0.5);
for (let i = 0; i < 3; i++) runChildSync(0.02);
setTimeout(() => {}, 300);
)";
  const std::string command =
      "cd " + dir + " && BLOCKWATCH_LIBRARY=" BLOCKWATCH_LIBRARY_PATH " " BLOCKWATCH_CLI_PATH
      " run --workers main --threshold 5ms --report run.json --report run.txt -- node "
      "--perf-basic-prof --interpreted-frames-native-stack script.js >/dev/null 2>err";
  const int raw = std::system(command.c_str());
  EXPECT_TRUE(WIFEXITED(raw) && WEXITSTATUS(raw) == 0);
  std::ifstream json_in(dir + "/run.json");
  ASSERT_TRUE(json_in) << "no report";
  const nlohmann::json report = nlohmann::json::parse(json_in);
  std::stringstream text;
  text << std::ifstream(dir + "/run.txt").rdbuf();
  for (const auto& process : report["processes"]) {
    ::unlink(("/tmp/perf-" + std::to_string(process["pid"].get<int>()) + ".map").c_str());
  }
  std::system(("rm -rf " + dir).c_str());

  int64_t exec_sync_waits = 0, longest = 0;
  bool javascript_named = false;
  for (const auto& h : report["hotspots"]) {
    if (h["kind"] != "poll") continue;
    // Only execSync's private loop: the main loop's epoll wait is idle.
    ASSERT_TRUE(stack_has(h, "node::SyncProcessRunner::")) << h.dump(1);
    EXPECT_EQ(h["threads"].size(), 1u);
    exec_sync_waits += h["count"].get<int64_t>();
    longest = std::max(longest, h["max_ns"].get<int64_t>());
    javascript_named = javascript_named || stack_has(h, "runChildSync", ".map");
  }
  EXPECT_GE(exec_sync_waits, 3) << report["hotspots"].dump(1);
  EXPECT_GE(longest, 15'000'000);
  EXPECT_TRUE(javascript_named) << "no perf-map frame names runChildSync";
  EXPECT_NE(text.str().find("node::SyncProcessRunner::"), std::string::npos) << text.str();
}

}  // namespace
