// Uses the installed headers; prints "consumer ok" when the no-op hooks behave.
#include <cstdio>

#include "blockwatch/blockwatch.hpp"
#include "blockwatch/thread_pool.hpp"

int main() {
  blockwatch::WorkerScope worker;
  blockwatch::TaskScope task("consumer task");
  blockwatch::AllowBlocking allow("consumer reason");
  if (blockwatch::Active()) return 1;
  std::puts("consumer ok");
  return 0;
}
