//! tokio_target: an unmodified tokio program for tokio_test.py. A default
//! multi-thread runtime (2 workers) whose worker threads and blocking-pool threads
//! share tokio's default name, `tokio-runtime-worker`, so a `--workers` name rule
//! selects both; only the stack tells them apart. Between idle periods (every
//! worker parked for longer than the stall threshold) it plants, in this order:
//!   (a) an async task locking a std::sync::Mutex that another thread holds until
//!       the task is about to lock it, then 30 ms more
//!       (std's futex mutex waits with syscall(SYS_futex));
//!   (b) an async task calling std::thread::sleep(20 ms) on a worker;
//!   (c) an async task running a 60 ms CPU loop (thread CPU time; one stall);
//!   (d) spawn_blocking jobs that sleep, fsync and busy-loop, and a sleep inside
//!       tokio::task::block_in_place (the worker hands its queue to a new worker
//!       and becomes a blocking thread): legitimate, must not be reported;
//!   (e) a task starting a plain std::thread without a name: it inherits the
//!       worker's name (`tokio-runtime-w`) but is a helper, not a worker; its
//!       20 ms sleep must not be reported.
//! Each planted function is #[inline(never)] with a name the test looks for in
//! stacks. argv[1]: a directory for the fsync job's scratch file.
//!
//! `tokio_target tasks multi|current`: task boundaries from the task-entry
//! probe (issue 9), on a one-worker multi-thread runtime or a current-thread
//! runtime driven by a thread named `tokio-ct`. Idle, then a burst of 200 tasks
//! of 0.5 ms CPU spawned at once (100 ms of back-to-back short tasks: no
//! stall), idle, then a busy queue: 20 short tasks, one 120 ms task
//! (planted_long_task: exactly one stall) and 20 short tasks, idle.

use std::arch::asm;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};
use std::thread;
use std::time::Duration;

// Longer than the test's 20 ms stall threshold, so a parked worker that is not
// recognised as idle would show up as a stall.
const IDLE: Duration = Duration::from_millis(100);
const LOCK_HELD: Duration = Duration::from_millis(30);
const WORKER_SLEEP: Duration = Duration::from_millis(20);
const CPU_LOOP: Duration = Duration::from_millis(60);
const POOL_SLEEP: Duration = Duration::from_millis(30);

static CONTENDED: Mutex<u64> = Mutex::new(0);
// Set by the task right before it locks CONTENDED: the holder keeps the lock
// until then, so the task waits however late a loaded machine runs it.
static ABOUT_TO_LOCK: AtomicBool = AtomicBool::new(false);

// Burns CPU for `duration` of this thread's CPU time: a number of rounds measured
// once at start (calibrate_spin), so that on a loaded machine it is still that
// much work, in more wall time, and the stall sampler (which needs the thread on
// a CPU) samples it while it runs. The loop reads no clock and calls nothing:
// the sampler walks frame pointers, and a sample taken in a callee's prologue or
// epilogue, or inside std code built without frame pointers, loses the caller's
// frame, so the planted function would be missing from the stall's stack. A
// newer rustc (a rustup toolchain) calls std's shared copies of generics even
// for `0..n` or `ptr::read_volatile` at opt-level 0; integer operators and an
// empty asm! (which keeps the state opaque) stay inline with any toolchain.
#[inline(always)]
fn spin(duration: Duration) -> u64 {
    let rounds = SPIN_ROUNDS_PER_MS.load(Ordering::Relaxed) * duration.as_millis() as u64;
    spin_rounds(rounds, 1)
}

#[inline(always)]
fn spin_rounds(rounds: u64, mut state: u64) -> u64 {
    let mut round: u64 = 0;
    while round < rounds {
        state ^= state << 13; // xorshift64
        state ^= state >> 7;
        state ^= state << 17;
        unsafe { asm!("/* {0} */", inout(reg) state) };
        round += 1;
    }
    state
}

static SPIN_ROUNDS_PER_MS: AtomicU64 = AtomicU64::new(0);
static SPIN_RESULT: AtomicU64 = AtomicU64::new(0); // keeps the calibration's work

// This thread's CPU time. std has no thread CPU clock; glibc's clock_gettime has.
#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}
extern "C" {
    fn clock_gettime(clock: i32, now: *mut Timespec) -> i32;
}
const CLOCK_THREAD_CPUTIME_ID: i32 = 3;

fn thread_cpu_ns() -> u64 {
    let mut now = Timespec { tv_sec: 0, tv_nsec: 0 };
    unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

// Measures the spin rounds per millisecond of CPU, over 10 ms of CPU.
fn calibrate_spin() {
    let start = thread_cpu_ns();
    let mut rounds: u64 = 0;
    let mut state: u64 = 1;
    let mut spent = 0;
    while spent < 10_000_000 {
        state = spin_rounds(20_000, state);
        rounds += 20_000;
        spent = thread_cpu_ns() - start;
    }
    SPIN_ROUNDS_PER_MS.store((rounds * 1_000_000 / spent).max(1), Ordering::Relaxed);
    SPIN_RESULT.store(state, Ordering::Relaxed);
}

/// (a) Blocks a worker on a contended std::sync::Mutex (a futex wait).
#[inline(never)]
fn planted_mutex_contention() -> u64 {
    ABOUT_TO_LOCK.store(true, Ordering::SeqCst);
    let guard = CONTENDED.lock().unwrap();
    *guard + 1
}

/// (b) Blocks a worker in nanosleep.
#[inline(never)]
fn planted_sleep_on_worker() {
    thread::sleep(WORKER_SLEEP);
}

/// (c) Keeps a worker busy for 60 ms: a stall.
#[inline(never)]
fn planted_cpu_loop_on_worker() -> u64 {
    spin(CPU_LOOP)
}

/// (d) Blocking-pool jobs: the place where blocking belongs.
#[inline(never)]
fn blocking_pool_sleep_job() {
    thread::sleep(POOL_SLEEP);
}

#[inline(never)]
fn blocking_pool_fsync_job(dir: &Path) {
    let path = dir.join(format!("tokio_target_fsync_{}", std::process::id()));
    let mut file = File::create(&path).expect("create scratch file");
    file.write_all(&[0u8; 64 * 1024]).expect("write scratch file");
    file.sync_all().expect("fsync scratch file");
    drop(file);
    let _ = std::fs::remove_file(&path);
}

#[inline(never)]
fn blocking_pool_cpu_job() -> u64 {
    spin(CPU_LOOP)
}

/// Runs on a worker thread, but inside block_in_place: tokio's sanctioned way.
#[inline(never)]
fn blocking_pool_in_place_job() {
    thread::sleep(POOL_SLEEP);
}

const SHORT_TASK: Duration = Duration::from_micros(500);
const LONG_TASK: Duration = Duration::from_millis(120);

#[inline(never)]
fn planted_short_task() -> u64 {
    spin_rounds(SPIN_ROUNDS_PER_MS.load(Ordering::Relaxed) * SHORT_TASK.as_micros() as u64 / 1000, 1)
}

#[inline(never)]
fn planted_long_task() -> u64 {
    spin(LONG_TASK)
}

async fn spawn_and_wait(tasks: Vec<fn() -> u64>) {
    let handles: Vec<_> = tasks.into_iter().map(|task| tokio::spawn(async move { task() })).collect();
    for handle in handles {
        handle.await.unwrap();
    }
}

async fn run_task_phases() {
    idle().await;
    spawn_and_wait(vec![planted_short_task as fn() -> u64; 200]).await;
    idle().await;
    let mut busy = vec![planted_short_task as fn() -> u64; 20];
    busy.push(planted_long_task);
    busy.extend(vec![planted_short_task as fn() -> u64; 20]);
    spawn_and_wait(busy).await;
    idle().await;
}

fn task_scenario(flavor: &str) {
    if flavor == "current" {
        let driver = thread::Builder::new()
            .name("tokio-ct".into())
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                    .expect("build tokio runtime");
                runtime.block_on(run_task_phases());
            })
            .expect("spawn the current-thread runtime's thread");
        driver.join().unwrap();
    } else {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_time()
            .build()
            .expect("build tokio runtime");
        runtime.block_on(run_task_phases());
    }
    println!("tokio_target: task phases done");
}

#[inline(never)]
fn helper_thread_inherited_name() {
    thread::sleep(Duration::from_millis(20));
}

async fn idle() {
    tokio::time::sleep(IDLE).await;
}

// (a): the holder is a plain thread (not a worker), so its own hold is not
// reported; the worker's task waits about 30 ms for it.
async fn phase_mutex_contention() {
    let (locked_tx, locked_rx) = mpsc::channel();
    let holder = thread::Builder::new()
        .name("lock-holder".into())
        .spawn(move || {
            let guard = CONTENDED.lock().unwrap();
            locked_tx.send(()).unwrap();
            while !ABOUT_TO_LOCK.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(1));
            }
            thread::sleep(LOCK_HELD);
            drop(guard);
        })
        .expect("spawn lock holder");
    locked_rx.recv().unwrap(); // the main thread is no worker: it may block
    tokio::spawn(async { planted_mutex_contention() }).await.unwrap();
    holder.join().unwrap();
}

async fn phase_blocking_pool(dir: PathBuf) {
    let jobs = vec![
        tokio::task::spawn_blocking(|| {
            blocking_pool_sleep_job();
        }),
        tokio::task::spawn_blocking(move || {
            blocking_pool_fsync_job(&dir);
        }),
        tokio::task::spawn_blocking(|| {
            blocking_pool_cpu_job();
        }),
    ];
    for job in jobs {
        job.await.unwrap();
    }
    tokio::spawn(async { tokio::task::block_in_place(blocking_pool_in_place_job) }).await.unwrap();
}

async fn run_phases(dir: PathBuf) {
    idle().await;
    phase_mutex_contention().await;
    idle().await;
    tokio::spawn(async { planted_sleep_on_worker() }).await.unwrap();
    idle().await;
    tokio::spawn(async { planted_cpu_loop_on_worker() }).await.unwrap();
    idle().await;
    phase_blocking_pool(dir).await;
    idle().await;
    // (e): started inside a task on a worker; joined here, on the main thread.
    let helper = tokio::spawn(async { thread::spawn(helper_thread_inherited_name) })
        .await
        .unwrap();
    helper.join().unwrap();
    idle().await;
}

fn main() {
    calibrate_spin();
    let args: Vec<String> = std::env::args().collect();
    if args.len() > 2 && args[1] == "tasks" {
        task_scenario(&args[2]);
        return;
    }
    let dir = std::env::args_os().nth(1).map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    // Default thread names: workers and blocking pool are both `tokio-runtime-worker`.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("build tokio runtime");
    runtime.block_on(run_phases(dir));
    drop(runtime);
    println!("tokio_target: all phases done");
}
