// The built-in stack rules, as plain data shared by the collector
// (collector/classifier.cc) and the injected library
// (interpose/core/wait_classifier.cc), which apply them with the one matcher of
// common/stack_rule.h, so both decide "this wait is the executor's idle wait"
// from one table in one way.
//
// Patterns are glibc's POSIX ERE (regcomp): literals, `.`, `*`, `|`, `^`, `$`,
// `\b` (glibc supports it). builtin_rules_test.cc checks each on sample frame
// names.
#pragma once

#include <cstdint>
#include <string_view>

namespace blockwatch::builtin_rules {

enum class Section : uint8_t { kIdle, kNotWorker };

// One rule: a stack matches when one of `patterns` is found (regex search) in a
// frame's function name. max_depth 0 searches every frame; N > 0 only the N
// innermost frames that are not system frames (see below). `kinds` empty: any.
// `unless`: the rule does not apply to a stack where one of these is found in
// any frame (config.proto's `unless_frame`).
struct Rule {
  Section section;
  const char* const* patterns;
  int pattern_count;
  uint32_t max_depth;
  const char* const* kinds;
  int kind_count;
  const char* const* unless = nullptr;
  int unless_count = 0;
};

// Built-in task entries: functions an executor calls once per task, whose entry
// the injected library probes (interpose/probes/task_probes.h) so that every
// call starts a task. Demangled names without parameters or template
// arguments; every symbol whose demangled name (Rust: without the ::h<hash>) is
// this, or this followed by the function's own template arguments ("<...>",
// C++; "::<...>", Rust v0) and/or its parameters ("(...)"), is probed
// (common/task_entry.h). Boost.Asio: the
// scheduler runs at most one handler per do_run_one call (after its idle
// waits, which end the task before). tokio
// (both schedulers, and the blocking pool): raw::poll<T,S> is each future
// type's poll entry, called through the task vtable once per poll, so it is
// never inlined; a worker's run_task may poll several (LIFO-slot) tasks.
inline constexpr const char* kTaskEntries[] = {
    "boost::asio::detail::scheduler::do_run_one",
    "tokio::runtime::task::raw::poll",
};

// The condvar-pool rule's frame pattern when the config names none (`pool_wait`).
inline constexpr const char* kDefaultPoolWaitPattern =
    "ThreadPool::worker_main|ThreadPool::WorkerLoop|thread_pool.*worker|WorkerThread::Run|"
    "worker_loop";

inline constexpr const char* kAsioWaitFrames[] = {
    "boost::asio::detail::epoll_reactor::run",
    "boost::asio::detail::conditionally_enabled_event::wait",
    "boost::asio::detail::posix_event::wait", "boost::asio::detail::scheduler::do_wait_one"};
inline constexpr const char* kAsioSchedulerFrames[] = {"boost::asio::detail::scheduler::do_run_one",
                                                       "boost::asio::detail::scheduler::run\\b"};
// tokio 1.24: the worker's park (condvar or driver), the drivers, mio. A method
// of a type is `Type::method` in Rust's legacy mangling and `<Type>::method` in
// v0 (libiberty prints the impl's self type in brackets): `>?` takes both.
inline constexpr const char* kTokioParkFrames[] = {
    "tokio::runtime::park::",
    "tokio::runtime::scheduler::multi_thread::worker::Context>?::park",
    "tokio::runtime::scheduler::multi_thread::park::",
    "tokio::runtime::scheduler::current_thread::Context>?::park",
    "tokio::runtime::io::driver::Driver>?::turn",
    "tokio::runtime::time::Driver>?::park",
    "mio::poll::Poll>?::poll"};
inline constexpr const char* kLibuvFrames[] = {"^uv__io_poll", "^uv_run$", "^uv__epoll"};
// Nested event loops: an epoll wait (and a libuv idle rule's match) under one of
// these is not the thread's idle wait but blocks its loop. Node's execSync and
// spawnSync wait for the child on a private libuv loop (SyncProcessRunner ->
// uv_run -> uv__io_poll -> epoll_wait). The injected library reports epoll waits
// only with one of these on the stack (interpose/shims/sleep.cc); the libuv rule
// names them in `unless`.
inline constexpr const char* kNestedLoopFrames[] = {"^node::SyncProcessRunner::"};
inline constexpr const char* kPoolWaitFrames[] = {kDefaultPoolWaitPattern};
inline constexpr const char* kPoolWaitKinds[] = {"condvar", "futex"};
// tokio's blocking pool: its threads carry the workers' name. tokio also runs
// its workers as blocking-pool jobs, so the pool's loop is on every worker's
// stack: a worker is told apart by its scheduler loop, which pool jobs lack.
inline constexpr const char* kTokioBlockingPoolFrames[] = {
    "tokio::runtime::blocking::pool::Inner>?::run"};
inline constexpr const char* kTokioWorkerLoopFrames[] = {
    "tokio::runtime::scheduler::multi_thread::worker::run\\b"};
// A worker inside block_in_place has handed its scheduler to another thread:
// blocking there is what block_in_place is for.
inline constexpr const char* kTokioBlockInPlaceFrames[] = {
    "tokio::runtime::scheduler::multi_thread::worker::block_in_place",
    "tokio::task::blocking::block_in_place"};

template <typename T, int N>
constexpr int count_of(T (&)[N]) {
  return N;
}

// Index of the pool-wait rule in kRules: the collector substitutes a configured
// `pool_wait` pattern for its frames.
inline constexpr int kPoolWaitRuleIndex = 4;

inline constexpr Rule kRules[] = {
    {Section::kIdle, kAsioWaitFrames, count_of(kAsioWaitFrames), 0, nullptr, 0},
    {Section::kIdle, kAsioSchedulerFrames, count_of(kAsioSchedulerFrames), 1, nullptr, 0},
    {Section::kIdle, kTokioParkFrames, count_of(kTokioParkFrames), 0, nullptr, 0},
    {Section::kIdle, kLibuvFrames, count_of(kLibuvFrames), 1, nullptr, 0, kNestedLoopFrames,
     count_of(kNestedLoopFrames)},
    {Section::kIdle, kPoolWaitFrames, count_of(kPoolWaitFrames), 1, kPoolWaitKinds,
     count_of(kPoolWaitKinds)},
    {Section::kNotWorker, kTokioBlockingPoolFrames, count_of(kTokioBlockingPoolFrames), 0, nullptr,
     0, kTokioWorkerLoopFrames, count_of(kTokioWorkerLoopFrames)},
    {Section::kNotWorker, kTokioBlockInPlaceFrames, count_of(kTokioBlockInPlaceFrames), 0, nullptr,
     0},
};

// What max_depth rules skip: frames of these modules (basename prefixes) ...
inline constexpr const char* kSystemModulePrefixes[] = {
    "libc.so", "libc-", "libpthread", "ld-linux", "libblockwatch", "libstdc++", "libgcc_s"};
// ... and functions with these name prefixes (wait wrappers of libc, libstdc++,
// Rust std and parking_lot, and blockwatch's own).
inline constexpr const char* kSystemFunctionPrefixes[] = {"__",
                                                          "pthread_",
                                                          "std::condition_variable",
                                                          "std::__condvar",
                                                          "std::mutex::",
                                                          "std::unique_lock",
                                                          "std::lock_guard",
                                                          "std::scoped_lock",
                                                          "std::__mutex_base",
                                                          "std::timed_mutex",
                                                          "std::shared_mutex",
                                                          "std::this_thread::",
                                                          "std::sys::",
                                                          "std::thread::park",
                                                          "parking_lot::",
                                                          "parking_lot_core::",
                                                          "bw_",
                                                          "blockwatch::interpose::",
                                                          "void std::condition_variable::"};

// A frame max_depth rules skip: one of the modules or function prefixes above.
// `module` is an object's path or file name. A Rust v0 method is named after
// its type in brackets (`<parking_lot::raw_mutex::RawMutex>::lock_slow`): the
// prefixes apply inside the bracket. No allocation.
inline bool is_system_frame(std::string_view function, std::string_view module) {
  const size_t slash = module.rfind('/');
  if (slash != std::string_view::npos) module.remove_prefix(slash + 1);
  if (!function.empty() && function[0] == '<') function.remove_prefix(1);
  for (std::string_view prefix : kSystemModulePrefixes) {
    if (module.substr(0, prefix.size()) == prefix) return true;
  }
  for (std::string_view prefix : kSystemFunctionPrefixes) {
    if (function.substr(0, prefix.size()) == prefix) return true;
  }
  return false;
}

}  // namespace blockwatch::builtin_rules
