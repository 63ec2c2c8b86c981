// For tests of a debuginfod server that never answers: libdebuginfod reads
// DEBUGINFOD_URLS once per process, so the test binary points it at a loopback
// socket that listens and never answers, then runs itself again (execv) with
// that environment. The listening socket is inherited by the new image; its
// number is in BW_TEST_LISTENER_FD. The cache is a fresh directory in
// DEBUGINFOD_CACHE_PATH, for the test to remove when done.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace blockwatch::testing {

// In the first image (DEBUGINFOD_URLS unset): sets the environment up and
// re-executes; returns only on failure (1). In the re-executed image: returns 0.
inline int reexec_with_silent_debuginfod(char** argv, const char* test_name) {
  if (getenv("DEBUGINFOD_URLS") != nullptr) return 0;
  const int listener = socket(AF_INET, SOCK_STREAM, 0);  // inherited by the exec'd image
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (listener < 0 || bind(listener, reinterpret_cast<sockaddr*>(&address), length) != 0 ||
      listen(listener, 16) != 0 ||
      getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    fprintf(stderr, "%s: loopback listener: ", test_name);
    perror("");
    return 1;
  }
  char cache[] = "/tmp/bw-debuginfod-cache-XXXXXX";
  if (mkdtemp(cache) == nullptr) return 1;
  setenv("DEBUGINFOD_URLS", ("http://127.0.0.1:" + std::to_string(ntohs(address.sin_port))).c_str(),
         1);
  setenv("DEBUGINFOD_CACHE_PATH", cache, 1);
  setenv("BW_TEST_LISTENER_FD", std::to_string(listener).c_str(), 1);
  execv("/proc/self/exe", argv);
  fprintf(stderr, "%s: re-exec: ", test_name);
  perror("");
  return 1;
}

}  // namespace blockwatch::testing
