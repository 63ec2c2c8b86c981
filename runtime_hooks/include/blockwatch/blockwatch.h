/* blockwatch's public C API: how an executor tells blockwatch which threads are
 * workers, where tasks begin and end, and where blocking is allowed.
 *
 * The bw_* functions are defined by the injected library (libblockwatch.so, loaded
 * with LD_PRELOAD). They are declared weak here, so a program that uses this header
 * links and runs without blockwatch: the blockwatch_* inline wrappers below then
 * cost one load and one branch and do nothing. No library of ours is needed at link
 * time.
 *
 * Every function is cheap, never blocks, never allocates and may be called from any
 * thread. Strings passed in must stay valid until the matching end call (string
 * literals are the usual case); blockwatch copies them only when it records.
 */
#ifndef BLOCKWATCH_BLOCKWATCH_H
#define BLOCKWATCH_BLOCKWATCH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BLOCKWATCH_API_VERSION 1

/* The injected library defines BW_WEAK as empty before including this header, so
 * its definitions are strong; everyone else gets weak references. */
#ifndef BW_WEAK
#define BW_WEAK __attribute__((weak))
#endif

/* Kinds, as in proto/blockwatch.proto; bw_kind_name() gives the JSON report's name. */
enum bw_kind {
  BW_KIND_MUTEX = 1,
  BW_KIND_RWLOCK_READ = 2,
  BW_KIND_RWLOCK_WRITE = 3,
  BW_KIND_CONDVAR = 4,
  BW_KIND_SEMAPHORE = 5,
  BW_KIND_FUTEX = 6,
  BW_KIND_READ = 7,
  BW_KIND_WRITE = 8,
  BW_KIND_FSYNC = 9,
  BW_KIND_SLEEP = 10,
  BW_KIND_POLL = 11,
  BW_KIND_STALL = 12,
  BW_KIND_HANG = 13
};

/* Mark / unmark the calling thread as an executor worker (a thread that must not
 * block). Nests: a thread is a worker while marks outnumber unmarks. */
void bw_worker_begin(void) BW_WEAK;
void bw_worker_end(void) BW_WEAK;

/* A task (handler, job, loop turn) on the calling thread. `label` names it in
 * reports; NULL is allowed. Tasks nest; the innermost label is reported. */
void bw_task_begin(const char* label) BW_WEAK;
void bw_task_end(void) BW_WEAK;

/* A scope in which blocking is legitimate. Blocking inside it is still recorded,
 * marked allowed with `reason`, and never fails a run. Nests. */
void bw_allow_begin(const char* reason) BW_WEAK;
void bw_allow_end(void) BW_WEAK;

/* What an in-process observer (the GoogleTest listener) is told about each record.
 * Pointers are valid only during the callback. */
typedef struct bw_event_info {
  int kind; /* enum bw_kind */
  int64_t duration_ns;
  int tid;
  const char* thread_name;  /* never NULL */
  const char* task;         /* NULL outside a task */
  const char* allow_reason; /* NULL unless inside an allowed scope */
  const char* function;     /* the interposed call, e.g. "fsync" */
  size_t frame_count;
  const char* const* frames; /* symbolized, innermost first */
} bw_event_info;

typedef void (*bw_event_callback)(const bw_event_info* event, void* arg);

/* Register (or with NULL, remove) the one in-process observer. It is called on
 * blockwatch's own sender thread, once per record, after symbolization. Returns 0
 * on success. */
int bw_set_event_callback(bw_event_callback callback, void* arg) BW_WEAK;

/* Wait, at most `timeout_ms`, until every record taken before this call has been
 * passed to the callback and written out. Returns 0 when done, -1 on timeout.
 * Not for worker threads' hot paths. */
int bw_flush(int timeout_ms) BW_WEAK;

/* The report name of a kind ("mutex", "stall", ...; "unknown" for other numbers).
 * The returned string is static. */
const char* bw_kind_name(int kind) BW_WEAK;

/* 1 when the injected library is loaded and active in this process. */
int bw_active(void) BW_WEAK;

/* Inline wrappers: safe whether or not the library is preloaded. */
static inline void blockwatch_worker_begin(void) {
  if (bw_worker_begin) bw_worker_begin();
}
static inline void blockwatch_worker_end(void) {
  if (bw_worker_end) bw_worker_end();
}
static inline void blockwatch_task_begin(const char* label) {
  if (bw_task_begin) bw_task_begin(label);
}
static inline void blockwatch_task_end(void) {
  if (bw_task_end) bw_task_end();
}
static inline void blockwatch_allow_begin(const char* reason) {
  if (bw_allow_begin) bw_allow_begin(reason);
}
static inline void blockwatch_allow_end(void) {
  if (bw_allow_end) bw_allow_end();
}
static inline int blockwatch_active(void) { return bw_active ? bw_active() : 0; }
static inline int blockwatch_set_event_callback(bw_event_callback cb, void* arg) {
  return bw_set_event_callback ? bw_set_event_callback(cb, arg) : -1;
}
static inline int blockwatch_flush(int timeout_ms) { return bw_flush ? bw_flush(timeout_ms) : 0; }
static inline const char* blockwatch_kind_name(int kind) {
  return bw_kind_name ? bw_kind_name(kind) : "unknown";
}

#ifdef __cplusplus
}
#endif

#endif /* BLOCKWATCH_BLOCKWATCH_H */
