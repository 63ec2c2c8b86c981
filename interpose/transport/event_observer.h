// The one in-process observer of records (bw_set_event_callback): its
// registration, and the handshake that lets a replacing thread wait until a call
// of the callback it replaced has returned. The sender thread calls it.
#pragma once

#include "blockwatch/blockwatch.h"

namespace blockwatch::interpose {

// Is a callback registered? One load.
bool event_observer_registered();

// Calls the registered callback (if any, still) with `info`. Sender thread only.
void event_observer_call(const bw_event_info& info);

// Registers `callback` (null: none) and, unless called on the sender thread
// itself (a callback replacing itself), waits up to 1 s for a call of the
// previous one to return. A replaced registration is kept, never freed: the
// sender may still hold it. Returns 0.
int event_observer_set(bw_event_callback callback, void* arg, bool on_sender_thread);

// A fork child: no call of the callback is in progress there.
void event_observer_after_fork_child();

}  // namespace blockwatch::interpose
