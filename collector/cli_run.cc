// `blockwatch run [options] -- CMD [ARGS...]`: an in-process collector on a private
// Unix socket (a fresh 0700 directory), CMD started with the injected library
// preloaded, SIGINT/SIGTERM forwarded to it, every connected process's stream
// drained (bounded), then the reports. Exit status: CMD's, or 3 when CMD succeeded
// but a --fail-on rule was broken (2: blockwatch's own usage or setup error, found
// before CMD starts, or a report that could not be written after it succeeded).
// While CMD runs, a terminal's stderr shows a one-line live status.
#include <elf.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <mutex>
#include <string_view>
#include <thread>

#include "collector/cli.h"
#include "collector/cli_common.h"
#include "collector/ingest.h"
#include "collector/symbolizer.h"

namespace blockwatch::collector {

namespace {

volatile sig_atomic_t g_child_pid = 0;

// Async-signal-safe: kill() only.
void forward_signal(int signal_number) {
  if (g_child_pid > 0) ::kill(g_child_pid, signal_number);
}

bool is_file(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string self_dir() {
  char path[4096];
  ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
  if (n <= 0) return ".";
  std::string exe(path, static_cast<size_t>(n));
  return exe.substr(0, exe.rfind('/'));
}

// Where `cmake --install` puts the injected library, relative to this binary's
// directory: decided by cmake/install.cmake, which defines it for this target.
#ifndef BLOCKWATCH_LIBRARY_FROM_BINDIR
#error "BLOCKWATCH_LIBRARY_FROM_BINDIR comes from cmake/install.cmake"
#endif

// BLOCKWATCH_LIBRARY, else next to this binary, the build tree's interpose/, or the
// installed one (BLOCKWATCH_LIBRARY_FROM_BINDIR).
std::string find_library() {
  if (const char* env = std::getenv("BLOCKWATCH_LIBRARY"); env != nullptr && *env != '\0') {
    return env;
  }
  std::string dir = self_dir();
  for (const std::string& candidate :
       {dir + "/libblockwatch.so", dir + "/../interpose/libblockwatch.so",
        dir + "/" BLOCKWATCH_LIBRARY_FROM_BINDIR}) {
    if (is_file(candidate)) return candidate;
  }
  return "";
}

std::string find_in_path(const std::string& command) {
  if (command.find('/') != std::string::npos) return command;
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string candidate = dirs.substr(start, end - start) + "/" + command;
    if (::access(candidate.c_str(), X_OK) == 0 && is_file(candidate)) return candidate;
    start = end + 1;
  }
  return "";
}

// Warns when LD_PRELOAD cannot reach the program: a setuid/setgid binary (the
// loader ignores LD_PRELOAD) or a static one (no loader at all: no PT_INTERP).
void warn_if_preload_cannot_work(const std::string& command) {
  std::string path = find_in_path(command);
  if (path.empty()) return;  // exec will report it
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & (S_ISUID | S_ISGID)) != 0) {
    std::cerr << "blockwatch: warning: " << path
              << " is setuid/setgid: the loader ignores LD_PRELOAD, nothing will be recorded\n";
  }
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  Elf64_Ehdr header;
  bool elf64 = ::pread(fd, &header, sizeof header, 0) == sizeof header &&
               std::memcmp(header.e_ident, ELFMAG, SELFMAG) == 0 &&
               header.e_ident[EI_CLASS] == ELFCLASS64;
  bool has_interp = false;
  for (int i = 0; elf64 && i < header.e_phnum && i < 256; ++i) {
    Elf64_Phdr ph;
    off_t offset = static_cast<off_t>(header.e_phoff + i * sizeof ph);
    if (::pread(fd, &ph, sizeof ph, offset) != sizeof ph) break;
    has_interp |= ph.p_type == PT_INTERP;
  }
  ::close(fd);
  if (elf64 && !has_interp) {
    std::cerr
        << "blockwatch: warning: " << path
        << " is statically linked: LD_PRELOAD cannot load into it, nothing will be recorded\n";
  }
}

constexpr const char* kCmdPidVariable = "BLOCKWATCH_CMD_PID=";
constexpr int kCmdPidDigits = 10;  // zero-padded: room for any pid

// CMD's executable as the kernel will name it (/proc/PID/exe): the resolved path,
// or for a script the interpreter of its "#!" line (through `env NAME`). The
// library applies the rules before any `exe:` section to this executable and
// its forks only (BLOCKWATCH_EXE). "" when it cannot be resolved: then every
// process gets them, as without `blockwatch run`.
std::string command_executable(const std::string& command) {
  std::string path = find_in_path(command);
  for (int depth = 0; depth < 4 && !path.empty(); ++depth) {
    char resolved[PATH_MAX];
    if (::realpath(path.c_str(), resolved) == nullptr) return "";
    path = resolved;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return path;
    char head[256] = {};
    const ssize_t n = ::read(fd, head, sizeof head - 1);
    ::close(fd);
    if (n < 2 || head[0] != '#' || head[1] != '!') return path;
    std::string line(head + 2, static_cast<size_t>(n) - 2);
    line = line.substr(0, line.find('\n'));
    std::vector<std::string> words;
    for (size_t pos = 0; pos < line.size();) {
      const size_t start = line.find_first_not_of(" \t", pos);
      if (start == std::string::npos) break;
      const size_t end = line.find_first_of(" \t", start);
      words.push_back(line.substr(start, end == std::string::npos ? end : end - start));
      pos = end == std::string::npos ? line.size() : end;
    }
    if (words.empty()) return path;
    path = words[0];
    if (path.ends_with("/env") && words.size() > 1 && words[1][0] != '-') {
      path = find_in_path(words[1]);
    }
  }
  return path;
}

// The child's environment, built before fork(): after fork in a process with an
// I/O thread, only async-signal-safe calls are allowed (no setenv, no malloc).
std::vector<std::string> child_environment(const std::string& library,
                                           const std::string& socket_path,
                                           const Settings& settings,
                                           const std::string& command_exe) {
  std::vector<std::string> env;
  std::string preload = library;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry = *e;
    if (entry.rfind("LD_PRELOAD=", 0) == 0) {
      if (entry.size() > 11) preload = entry.substr(11) + ":" + library;
      continue;
    }
    for (const char* ours :
         {"BLOCKWATCH_COLLECTOR=", "BLOCKWATCH_WORKERS=", "BLOCKWATCH_THRESHOLD=",
          "BLOCKWATCH_STALL_THRESHOLD=", "BLOCKWATCH_POOL_WAIT=", "BLOCKWATCH_EXE=",
          "BLOCKWATCH_CMD_PID="}) {
      if (entry.rfind(ours, 0) == 0) entry.clear();
    }
    if (!entry.empty()) env.push_back(entry);
  }
  env.push_back("LD_PRELOAD=" + preload);
  env.push_back("BLOCKWATCH_COLLECTOR=unix:" + socket_path);
  if (!settings.workers.empty()) env.push_back("BLOCKWATCH_WORKERS=" + settings.workers);
  env.push_back("BLOCKWATCH_THRESHOLD=" + std::to_string(settings.threshold_ns) + "ns");
  env.push_back("BLOCKWATCH_STALL_THRESHOLD=" + std::to_string(settings.stall_threshold_ns) + "ns");
  // The library decides idle waits with the same rules as the collector
  // (common/stack_rule.h), so it must see the same pool_wait.
  if (!settings.rules.pool_wait().empty()) {
    env.push_back("BLOCKWATCH_POOL_WAIT=" + settings.rules.pool_wait());
  }
  // The config file's task entries, unless the environment names its own.
  if (getenv("BLOCKWATCH_TASK_ENTRY") == nullptr && settings.rules.task_entry_size() > 0) {
    std::string entries;
    for (const std::string& entry : settings.rules.task_entry()) {
      entries += (entries.empty() ? "" : ";") + entry;
    }
    env.push_back("BLOCKWATCH_TASK_ENTRY=" + entries);
  }
  if (!command_exe.empty()) env.push_back("BLOCKWATCH_EXE=" + command_exe);
  // CMD's pid, filled in by the forked child (exec_child): whatever image that
  // process runs (`env X=1 prog`, `nice prog`, a script's `exec prog`) is CMD too.
  env.push_back(std::string(kCmdPidVariable) + std::string(kCmdPidDigits, '0'));
  return env;
}

std::vector<char*> as_pointers(std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  pointers.reserve(strings.size() + 1);
  for (auto& s : strings) pointers.push_back(s.data());
  pointers.push_back(nullptr);
  return pointers;
}

// Writes the child's pid into its BLOCKWATCH_CMD_PID entry, in place (no
// allocation: this runs after fork). Async-signal-safe.
void fill_cmd_pid(char** envp) {
  const size_t prefix = std::strlen(kCmdPidVariable);
  for (char** entry = envp; *entry != nullptr; ++entry) {
    if (std::strncmp(*entry, kCmdPidVariable, prefix) != 0) continue;
    unsigned long pid = static_cast<unsigned long>(::getpid());
    char* digits = *entry + prefix;
    for (int i = kCmdPidDigits - 1; i >= 0; --i, pid /= 10) {
      digits[i] = static_cast<char>('0' + pid % 10);
    }
    return;
  }
}

// Runs in the forked child: async-signal-safe calls only.
[[noreturn]] void exec_child(char** argv, char** envp) {
  fill_cmd_pid(envp);
  ::execvpe(argv[0], argv, envp);
  const char message[] = "blockwatch: cannot run the command (exec failed)\n";
  ssize_t ignored = ::write(2, message, sizeof message - 1);
  (void)ignored;
  ::_exit(127);
}

int wait_for_child(pid_t child) {
  int status = 0;
  while (::waitpid(child, &status, 0) < 0) {
    if (errno != EINTR) return 1;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

// The one-line live status on stderr while CMD runs ("processes, events, stalls,
// dropped"), rewritten in place with \r about 4 times a second and erased by stop(),
// before the report. Only when stderr is a terminal (and TERM is not "dumb"), so
// logs and pipes never see it. A refresh takes a report() under the aggregator's
// mutex; when that gets slow (many hotspots) the refresh backs off to stay under
// about 5% of one core.
class LiveStatusLine {
 public:
  LiveStatusLine(Aggregator& aggregator, bool enabled) : aggregator_(aggregator) {
    if (enabled) thread_ = std::thread([this] { loop(); });
  }
  ~LiveStatusLine() { stop(); }
  LiveStatusLine(const LiveStatusLine&) = delete;
  LiveStatusLine& operator=(const LiveStatusLine&) = delete;

  static bool wanted() {
    const char* term = std::getenv("TERM");
    return ::isatty(STDERR_FILENO) == 1 && !(term != nullptr && std::string_view(term) == "dumb");
  }

  void stop() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
    write_stderr("\r\x1b[K");  // erase the status line
  }

 private:
  static void write_stderr(const std::string& text) {
    ssize_t ignored = ::write(STDERR_FILENO, text.data(), text.size());
    (void)ignored;
  }

  std::string status_text(std::chrono::steady_clock::duration elapsed) {
    Report snapshot;
    uint64_t events = 0;
    {
      std::lock_guard lock(aggregator_.mutex());
      snapshot = aggregator_.report();
      events = aggregator_.events();
    }
    char line[160];
    std::snprintf(line, sizeof line,
                  "blockwatch: %zu process%s, %llu events, %llu stalls, %llu dropped  [%.1fs]",
                  snapshot.processes.size(), snapshot.processes.size() == 1 ? "" : "es",
                  static_cast<unsigned long long>(events),
                  static_cast<unsigned long long>(snapshot.stalls),
                  static_cast<unsigned long long>(snapshot.dropped),
                  std::chrono::duration<double>(elapsed).count());
    // A line wider than the terminal wraps, and \r would then rewrite only its tail.
    std::string text = line;
    struct winsize size {};
    if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 1 &&
        text.size() >= size.ws_col) {
      text.resize(size.ws_col - 1u);
    }
    return "\r" + text + "\x1b[K";
  }

  void loop() {
    const auto started = std::chrono::steady_clock::now();
    auto interval = std::chrono::milliseconds(250);
    std::unique_lock lock(mutex_);
    while (!wake_.wait_for(lock, interval, [this] { return stopping_; })) {
      lock.unlock();
      auto before = std::chrono::steady_clock::now();
      write_stderr(status_text(before - started));
      auto took = std::chrono::steady_clock::now() - before;
      interval = std::max(std::chrono::milliseconds(250),
                          std::chrono::duration_cast<std::chrono::milliseconds>(took * 20));
      lock.lock();
    }
  }

  Aggregator& aggregator_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

void print_run_help() {
  std::cout << R"(usage: blockwatch run [options] -- CMD [ARGS...]

Runs CMD with the blockwatch library preloaded and an in-process collector, then
writes the hotspot report. Exit status: CMD's, or 3 when CMD succeeded but a
--fail-on rule was broken. Bad options, config or report paths (unknown format,
missing or unwritable directory) are found before CMD starts: exit 2, CMD not run.

options:
  --workers SEL           which threads are workers: main, name:REGEX (comma-separated),
                          in CMD's executable and its forks; exe:REGEX starts rules
                          for other programs CMD runs (docs/config.md)
  --threshold DUR         report blocking calls at least this long (0 = every call; 1ms)
  --stall-threshold DUR   report a task (or, where task boundaries are unknown, a
                          loop turn) running longer (0 = off)
  --config FILE           protobuf text config (docs/config.md)
  --report FILE           write a report; format by extension, repeatable:
                          .txt .json .html .pb.gz (pprof) .folded .xml (JUnit) .bwrec (raw)
  --fail-on RULE          any | blocking>=DUR | stall>=DUR | turn-stall>=DUR | kind:KIND |
                          path:NAME[>=DUR]   (stall: one task; turn-stall: a loop turn)
  --baseline FILE.json    hotspots in this earlier report do not fail the run
When stderr is a terminal, a live status line (processes, events, stalls, dropped)
is shown while CMD runs and erased before the report.
environment: BLOCKWATCH_LIBRARY (the library to preload), BLOCKWATCH_WORKERS,
  BLOCKWATCH_THRESHOLD, BLOCKWATCH_STALL_THRESHOLD, BLOCKWATCH_FAIL_ON (flags win),
  BLOCKWATCH_TASK_ENTRY (task-entry functions, ';'-separated; else the config's),
  BLOCKWATCH_PROBES=off (no task-entry probes).
)";
}

}  // namespace

int run_command(const std::vector<std::string>& args) {
  FlagSettings flags;
  std::string config_path, error;
  size_t i = 0;
  for (; i < args.size(); ++i) {
    if (args[i] == "--") {
      ++i;
      break;
    }
    if (args[i] == "--help" || args[i] == "-h") {
      print_run_help();
      return 0;
    }
    if (parse_common_flag(args, &i, &flags, &config_path, &error)) {
      if (!error.empty()) break;
      continue;
    }
    if (args[i].rfind("--", 0) == 0) {
      error = "unknown option " + args[i];
      break;
    }
    break;  // the command starts here
  }
  std::vector<std::string> command(args.begin() + static_cast<long>(std::min(i, args.size())),
                                   args.end());
  if (error.empty() && command.empty()) error = "no command given (blockwatch run -- CMD ...)";
  Pipeline pipeline;
  if (error.empty()) prepare_pipeline(flags, config_path, &pipeline, &error);
  // Before CMD starts: a report that cannot be written must not cost a whole run.
  if (error.empty()) check_report_paths(pipeline.settings.reports, true, &error);
  std::string library = find_library();
  if (error.empty() && library.empty()) {
    error = "cannot find libblockwatch.so next to blockwatch; set BLOCKWATCH_LIBRARY";
  }
  if (!error.empty()) {
    std::cerr << "blockwatch run: " << error << '\n';
    return 2;
  }
  return run_with_collector(command, library, pipeline);
}

namespace {

// A fresh 0700 directory (mkdtemp's mode) for the collector's socket, under
// TMPDIR; "" when it cannot be created (the reason printed).
std::string make_socket_dir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string dir_template =
      std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/blockwatch-XXXXXX";
  if (::mkdtemp(dir_template.data()) == nullptr) {
    std::cerr << "blockwatch run: cannot create a socket directory: " << std::strerror(errno)
              << '\n';
    return "";
  }
  return dir_template;
}

// Forks and execs CMD with `env`, forwards SIGINT/SIGTERM to it, and returns its
// exit status (128+N for signal N; 127 when it could not be started).
int run_child(const std::vector<std::string>& command, std::vector<std::string> env) {
  std::vector<std::string> argv = command;
  std::vector<char*> env_pointers = as_pointers(env), argv_pointers = as_pointers(argv);
  pid_t child = ::fork();
  if (child == 0) exec_child(argv_pointers.data(), env_pointers.data());
  if (child < 0) {
    std::cerr << "blockwatch run: fork failed: " << std::strerror(errno) << '\n';
    return 127;
  }
  g_child_pid = child;
  struct sigaction action {};
  action.sa_handler = forward_signal;
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);
  int status = wait_for_child(child);
  g_child_pid = 0;
  return status;
}

// Processes flush on exit; children of CMD may outlive it: waits for every open
// stream to end, at most 2 s after CMD exited, then closes the server (the
// streams it cut end once decoded: kStreamDrainTimeout at most) and stops the
// I/O thread.
void drain_and_stop(boost::asio::io_context& io,
                    boost::asio::executor_work_guard<boost::asio::io_context::executor_type>& work,
                    std::thread& io_thread, IngestServer& server) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (server.open_connections() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  boost::asio::post(io, [&server] { server.close(); });
  server.wait_until_ended(kStreamDrainTimeout);  // decoding what they sent
  work.reset();
  io.stop();
  io_thread.join();
}

// Writes the reports; returns the exit status of `blockwatch run`.
int report_run(const Pipeline& pipeline, Aggregator& aggregator, const IngestServer& server,
               bool record, int child_status) {
  Report report;
  {
    std::lock_guard lock(aggregator.mutex());
    report = aggregator.report();
  }
  finish_report(pipeline, &report);
  if (report.processes.empty()) {
    std::cerr << "blockwatch: warning: no process announced itself to the collector: the "
                 "library was not loaded (static or setuid binary?) or was disabled\n";
  }
  std::string raw = record ? server.recorded_streams() : std::string();
  const bool written = write_reports(pipeline, report, record ? &raw : nullptr);
  if (child_status != 0) return child_status;
  if (!written) return 2;  // checked writable before CMD started, yet the write failed
  return report.verdict.failed ? 3 : 0;
}

}  // namespace

int run_with_collector(const std::vector<std::string>& command, const std::string& library,
                       const Pipeline& pipeline) {
  warn_if_preload_cannot_work(command[0]);
  const std::string socket_dir = make_socket_dir();
  if (socket_dir.empty()) return 2;
  const std::string socket_path = socket_dir + "/collector.sock";

  bool record = false;
  for (const auto& path : pipeline.settings.reports) record |= path.ends_with(".bwrec");
  Aggregator aggregator(pipeline.classifier);
  boost::asio::io_context io;
  auto work = boost::asio::make_work_guard(io);
  IngestOptions ingest_options;
  ingest_options.symbolizer = &Symbolizer::shared();
  ingest_options.record_in_memory = record;
  IngestServer server(io, aggregator, ingest_options);
  std::string error;
  if (!server.listen_unix(socket_path, &error)) {
    std::cerr << "blockwatch run: " << error << '\n';
    ::rmdir(socket_dir.c_str());
    return 2;
  }
  std::thread io_thread([&io] { io.run(); });
  LiveStatusLine status_line(aggregator, LiveStatusLine::wanted());

  const int status = run_child(command, child_environment(library, socket_path, pipeline.settings,
                                                          command_executable(command[0])));
  drain_and_stop(io, work, io_thread, server);
  ::unlink(socket_path.c_str());
  ::rmdir(socket_dir.c_str());
  status_line.stop();
  return report_run(pipeline, aggregator, server, record, status);
}

}  // namespace blockwatch::collector
