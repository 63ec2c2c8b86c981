//! tokio_target: an unmodified tokio program for tokio_test.py. A default
//! multi-thread runtime (2 workers) whose worker threads and blocking-pool threads
//! share tokio's default name, `tokio-runtime-worker`, so a `--workers` name rule
//! selects both; only the stack tells them apart. Between idle periods (every
//! worker parked for longer than the stall threshold) it plants, in this order:
//!   (a) an async task locking a std::sync::Mutex that another thread holds 30 ms
//!       (std's futex mutex waits with syscall(SYS_futex));
//!   (b) an async task calling std::thread::sleep(20 ms) on a worker;
//!   (c) an async task running a 60 ms CPU loop (one stall);
//!   (d) spawn_blocking jobs that sleep, fsync and busy-loop, and a sleep inside
//!       tokio::task::block_in_place (the worker hands its queue to a new worker
//!       and becomes a blocking thread): legitimate, must not be reported;
//!   (e) a task starting a plain std::thread without a name: it inherits the
//!       worker's name (`tokio-runtime-w`) but is a helper, not a worker; its
//!       20 ms sleep must not be reported.
//! Each planted function is #[inline(never)] with a name the test looks for in
//! stacks. argv[1]: a directory for the fsync job's scratch file.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

// Longer than the test's 20 ms stall threshold, so a parked worker that is not
// recognised as idle would show up as a stall.
const IDLE: Duration = Duration::from_millis(100);
const LOCK_HELD: Duration = Duration::from_millis(30);
const WORKER_SLEEP: Duration = Duration::from_millis(20);
const CPU_LOOP: Duration = Duration::from_millis(60);
const POOL_SLEEP: Duration = Duration::from_millis(30);

static CONTENDED: Mutex<u64> = Mutex::new(0);

// Burns CPU until `duration` has passed. Volatile accesses keep the arithmetic
// (std::hint::black_box is not stable in Debian's rustc 1.63).
#[inline(always)]
fn spin(duration: Duration) -> u64 {
    let start = Instant::now();
    let mut state: u64 = 1;
    while start.elapsed() < duration {
        for _ in 0..20_000 {
            let value = unsafe { std::ptr::read_volatile(&state) };
            let next = value.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            unsafe { std::ptr::write_volatile(&mut state, next) };
        }
    }
    state
}

/// (a) Blocks a worker on a contended std::sync::Mutex (a futex wait).
#[inline(never)]
fn planted_mutex_contention() -> u64 {
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

#[inline(never)]
fn helper_thread_inherited_name() {
    thread::sleep(Duration::from_millis(20));
}

async fn idle() {
    tokio::time::sleep(IDLE).await;
}

// (a): the holder is a plain thread (not a worker), so its own 30 ms hold is not
// reported; the worker's task waits for the rest of the 30 ms.
async fn phase_mutex_contention() {
    let (locked_tx, locked_rx) = mpsc::channel();
    let holder = thread::Builder::new()
        .name("lock-holder".into())
        .spawn(move || {
            let guard = CONTENDED.lock().unwrap();
            locked_tx.send(()).unwrap();
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
