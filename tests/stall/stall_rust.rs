// A Rust stall for stall_test (Stall.RustStackWithoutFramePointers): one worker
// thread runs a task whose loop reads the clock (libc's clock_gettime, the vDSO
// underneath), compiled with -C force-frame-pointers=no -C opt-level=2 by
// tests/stall/CMakeLists.txt. Only DWARF unwinding finds rust_clock_loop_site
// right below the clock frames and rust_clock_loop_caller below it.
//
// It marks its worker and task through the preloaded library's bw_* functions,
// looked up with dlsym (the program links nothing of blockwatch's; without the
// preload they are absent and the program just runs). std only: no crates.
use std::ffi::{c_void, CStr};
use std::os::raw::{c_char, c_int, c_long};

#[repr(C)]
struct Timespec {
    tv_sec: c_long,
    tv_nsec: c_long,
}

const CLOCK_MONOTONIC: c_int = 1;
const CLOCK_THREAD_CPUTIME_ID: c_int = 3;

extern "C" {
    fn clock_gettime(clock: c_int, now: *mut Timespec) -> c_int;
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
}

fn now_ns(clock: c_int) -> i64 {
    let mut now = Timespec { tv_sec: 0, tv_nsec: 0 };
    unsafe { clock_gettime(clock, &mut now) };
    now.tv_sec as i64 * 1_000_000_000 + now.tv_nsec as i64
}

/// Reads the monotonic clock until this thread used `cpu_ns` of CPU.
#[no_mangle]
#[inline(never)]
pub extern "C" fn rust_clock_loop_site(cpu_ns: i64) -> u64 {
    let end = now_ns(CLOCK_THREAD_CPUTIME_ID) + cpu_ns;
    let mut reads: u64 = 0;
    loop {
        let mut now = Timespec { tv_sec: 0, tv_nsec: 0 };
        unsafe { clock_gettime(CLOCK_MONOTONIC, &mut now) };
        reads = reads.wrapping_add(1 + (now.tv_nsec as u64 & 1));
        if reads % 4096 < 2 && now_ns(CLOCK_THREAD_CPUTIME_ID) >= end {
            return reads;
        }
    }
}

#[no_mangle]
#[inline(never)]
pub extern "C" fn rust_clock_loop_caller(cpu_ns: i64) -> u64 {
    rust_clock_loop_site(cpu_ns).wrapping_mul(3).wrapping_add(1)
}

/// The preloaded library's `name`, if it is there (RTLD_DEFAULT is null).
fn api(name: &CStr) -> *mut c_void {
    unsafe { dlsym(std::ptr::null_mut(), name.as_ptr()) }
}

fn call0(function: *mut c_void) {
    if !function.is_null() {
        let f: extern "C" fn() = unsafe { std::mem::transmute(function) };
        f();
    }
}

fn call_with_label(function: *mut c_void, label: &CStr) {
    if !function.is_null() {
        let f: extern "C" fn(*const c_char) = unsafe { std::mem::transmute(function) };
        f(label.as_ptr());
    }
}

fn main() {
    let worker = std::thread::spawn(|| {
        call0(api(CStr::from_bytes_with_nul(b"bw_worker_begin\0").unwrap()));
        call_with_label(
            api(CStr::from_bytes_with_nul(b"bw_task_begin\0").unwrap()),
            CStr::from_bytes_with_nul(b"rust_clock_loop\0").unwrap(),
        );
        let reads = rust_clock_loop_caller(100_000_000);
        call0(api(CStr::from_bytes_with_nul(b"bw_task_end\0").unwrap()));
        call0(api(CStr::from_bytes_with_nul(b"bw_worker_end\0").unwrap()));
        reads
    });
    let reads = worker.join().unwrap();
    println!("reads={}", reads > 0);
}
