//! A counting global allocator for the native view: how much heap `Policy::compile`
//! needs at its peak and how much the compiled policy keeps. Inside the VM only the
//! linear memory's size is visible, which is the peak (it never shrinks); these figures
//! say what of it is the policy and what is the compile's scratch.

// A global allocator is an `unsafe` trait; this one only forwards to the system
// allocator and counts.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

pub struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = CURRENT.fetch_add(by, Relaxed).saturating_add(by);
    PEAK.fetch_max(now, Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as received.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as received.
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as received.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                CURRENT.fetch_sub(layout.size() - new_size, Relaxed);
            }
        }
        new
    }
}

/// What a closure allocated: its peak above the heap it started from, and what it left
/// allocated (its result included), in bytes.
pub struct Usage {
    pub peak: usize,
    pub kept: usize,
}

pub fn measure<T>(work: impl FnOnce() -> T) -> (T, Usage) {
    let start = CURRENT.load(Relaxed);
    PEAK.store(start, Relaxed);
    let value = work();
    let usage = Usage {
        peak: PEAK.load(Relaxed).saturating_sub(start),
        kept: CURRENT.load(Relaxed).saturating_sub(start),
    };
    (value, usage)
}
