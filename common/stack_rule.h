// The one stack matcher: "does this rule match this stack?", for the injected
// library (idle waits, on its watchdog thread) and the collector (idle, allow,
// path and not_worker rules). Both build from this file, so depth limits,
// system-frame skipping, `unless_frame` and the regex dialect (POSIX ERE,
// glibc's regcomp, which both sides have and which needs no exceptions) can
// never differ between them.
//
// A rule matches a stack (innermost frame first) when:
//  - its kinds are empty or list the event's kind;
//  - one of its frame patterns is found (regex search) in a frame's function
//    name, or one of its file patterns in the frame's source file (collector
//    frames only: the library sees return addresses), and its module pattern
//    (if any) in that frame's module path. With max_depth N > 0 only the N
//    innermost physical frames that are not system frames (builtin_rules.h) are
//    searched, functions inlined into one sharing its depth; 0 searches every
//    frame;
//  - none of its unless patterns is found in any frame's function name.
//
// Compiling allocates (not for hook paths or signal handlers); matching calls
// regexec, which may allocate: watchdog thread or collector only.
#pragma once

#include <regex.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/builtin_rules.h"

namespace blockwatch::stack_rule {

// A rule as text: what config.proto's Rule and builtin_rules.h's Rule both say.
struct RuleText {
  std::vector<std::string> frames;  // alternatives; none: the rule matches nothing
  std::vector<std::string> files;   // source-file alternatives to `frames`
  std::string module;               // empty: any module
  std::vector<std::string> unless;
  std::vector<std::string> kinds;  // report names (common/kinds.h); empty: any
  uint32_t max_depth = 0;
};

// builtin_rules::kRules[index] as text; `pool_wait` replaces the pool rule's
// frames when not empty.
RuleText builtin_rule_text(int index, std::string_view pool_wait = {});

class CompiledRegex {
 public:
  CompiledRegex() = default;
  CompiledRegex(CompiledRegex&&) noexcept = default;
  CompiledRegex& operator=(CompiledRegex&&) noexcept = default;
  // The alternation of `patterns` as POSIX ERE; false with *error set when one
  // does not compile (the message names the pattern).
  bool compile(const std::vector<std::string>& patterns, std::string* error);
  bool compiled() const { return regex_ != nullptr; }
  bool search(const char* text) const;

 private:
  struct Free {
    void operator()(regex_t* regex) const;
  };
  std::unique_ptr<regex_t, Free> regex_;
};

class StackRule {
 public:
  bool compile(const RuleText& text, std::string* error);

  // The frame-pattern search on one function name; callers may cache it by name.
  bool function_matches(const char* function) const { return frame_.search(function); }

  // Frames: any type with `function` and `module` std::string members, and
  // optionally `file` (std::string) and `inlined` (bool: a function inlined
  // into the next frame). `function_matches` is called as
  // function_matches(frame) and answers this->function_matches(
  // frame.function.c_str()), perhaps from a cache.
  template <typename Frame, typename FunctionMatches>
  bool matches(std::string_view kind, const std::vector<Frame>& stack,
               FunctionMatches&& function_matches) const {
    if (!kind_listed(kind)) return false;
    uint32_t depth = 0;
    size_t physical = 0, counted = SIZE_MAX;  // physical index of this frame, of the last counted
    bool matched = false;
    for (const Frame& frame : stack) {
      const size_t this_physical = physical;
      if (!is_inlined(frame)) ++physical;
      if (max_depth_ > 0) {
        if (builtin_rules::is_system_frame(frame.function, frame.module)) continue;
        if (counted != this_physical) {
          counted = this_physical;
          if (++depth > max_depth_) break;
        }
      }
      if ((function_matches(frame) || file_matches(frame)) &&
          (!module_.compiled() || module_.search(frame.module.c_str()))) {
        matched = true;
        break;
      }
    }
    if (!matched || !unless_.compiled()) return matched;
    for (const Frame& frame : stack) {
      if (unless_.search(frame.function.c_str())) return false;
    }
    return true;
  }

  template <typename Frame>
  bool matches(std::string_view kind, const std::vector<Frame>& stack) const {
    return matches(kind, stack,
                   [this](const Frame& frame) { return function_matches(frame.function.c_str()); });
  }

 private:
  bool kind_listed(std::string_view kind) const;
  template <typename Frame>
  static bool is_inlined(const Frame& frame) {
    if constexpr (requires { frame.inlined; }) {
      return frame.inlined;
    } else {
      return false;
    }
  }
  template <typename Frame>
  bool file_matches(const Frame& frame) const {
    if constexpr (requires { frame.file; }) {
      return file_.compiled() && !frame.file.empty() && file_.search(frame.file.c_str());
    } else {
      return false;
    }
  }

  CompiledRegex frame_;
  CompiledRegex file_;
  CompiledRegex module_;
  CompiledRegex unless_;
  std::vector<std::string> kinds_;
  uint32_t max_depth_ = 0;
};

}  // namespace blockwatch::stack_rule
