// What preload_hardening_target (hardening_target.cc) and its driver
// (hardening_test.cc) agree on: scenario sizes and the worker rule.
#pragma once

namespace preload_target {

// signal_first_hook: threads whose first hooked call is in a signal handler.
inline constexpr int kFirstHookThreads = 20;
// A rule with a comma in its regex (issue 10, 7a) and a bound the DFA must build.
inline constexpr char kFirstHookRule[] = "name:(wq|xq)-[0-9]{1,4}";

}  // namespace preload_target
