// Keeps blockwatch's own threads out of the dynamic loader across fork().
// dl_iterate_phdr holds the loader's write lock while it calls back, dladdr its
// load lock, and glibc does not reset those in a fork child: a fork that lands
// while our sender (or watchdog) is inside leaves the child's loader locked,
// and the child's new sender hangs at its first module scan (measured: every
// fork+exec child then waited the whole 1 s exit flush). So our threads enter
// the loader only through this gate, and a pthread_atfork prepare handler
// closes it and waits, bounded, until none of ours is inside.
//
// Not the hook path: used by our own threads only.
#pragma once

namespace blockwatch::interpose {

// Registers the atfork handlers (once; later calls do nothing). Not from a
// fork child's handler.
void loader_gate_install();

// RAII: while it lives, a fork waits for it to end (at most 200 ms, then forks
// anyway). Blocks while a fork is in progress.
class LoaderSection {
 public:
  LoaderSection();
  ~LoaderSection();
  LoaderSection(const LoaderSection&) = delete;
  LoaderSection& operator=(const LoaderSection&) = delete;
};

}  // namespace blockwatch::interpose
