//! The limits of one render that fuel cannot see: memory, counted by a global allocator, and
//! the steps of work inside single instructions.
//!
//! minijinja's fuel bounds the instructions a template runs and charges the data most
//! operations produce, but one instruction can still make a value whose formatting or
//! serialization is exponentially large (`[l, l]` nested sixty times, a lazily doubled list
//! turned into a string). So the memory a render uses is measured where it is allocated:
//! every allocation made on a thread inside a [`Scope`] is added to that thread's live
//! bytes, every release subtracted. The patched minijinja (`vendor/minijinja/src/limits.rs`)
//! asks [`allocation_check`] at every instruction, before every allocation of a known size,
//! and for every item it formats, serializes or flattens; once the live bytes pass the
//! limit the answer stays no, and the render fails with out of fuel, which
//! [`Scope::exceeded`] tells apart from a runaway loop.
//!
//! The same questions bound time: a lazily doubled list is cheap to build and each of its
//! items costs a walk through every level of it, none of which uses fuel. Every question is
//! one step; a render gets [`MAX_STEPS`], ten times what its fuel allows it to visit, and
//! past them it stops as a runaway loop does.
//!
//! Outside a scope the allocator only reads one thread-local word before calling mimalloc,
//! which does the allocating: profiled on `serve`'s cached read, the allocator's share of
//! the server's time falls from about 8% with glibc's to under 6%, and the static (musl)
//! release binaries would otherwise get musl's, slower still. A render runs on one thread from start to end (it never awaits), so
//! per-thread counts are exactly its own.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};

use mimalloc::MiMalloc;
use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The steps (instructions, and items formatted, serialized, iterated or flattened) one
/// render may take.
pub const MAX_STEPS: u64 = 20_000_000;

/// The memory limit of one render unless [`set_limit`] changes it: 64 MiB.
pub const DEFAULT_LIMIT_BYTES: usize = 64 * 1024 * 1024;

static LIMIT_BYTES: AtomicUsize = AtomicUsize::new(DEFAULT_LIMIT_BYTES);

/// Sets the memory limit of every later render in this process (`[render]
/// memory_limit_mib`); a limit of 0 is taken as 1 byte.
pub fn set_limit(bytes: usize) {
    LIMIT_BYTES.store(bytes.max(1), Ordering::Relaxed);
}

/// The memory limit of a render, in bytes.
pub fn limit() -> usize {
    LIMIT_BYTES.load(Ordering::Relaxed)
}

thread_local! {
    /// The limit of the scope this thread is in; 0 outside any scope.
    static SCOPE_LIMIT: Cell<usize> = const { Cell::new(0) };
    /// Bytes allocated minus bytes released on this thread since the scope began.
    static LIVE: Cell<isize> = const { Cell::new(0) };
    /// Whether the live bytes passed the limit during the scope; it stays set.
    static EXCEEDED: Cell<bool> = const { Cell::new(false) };
    /// Steps taken since the scope began.
    static STEPS: Cell<u64> = const { Cell::new(0) };
}

/// mimalloc, counting what threads inside a [`Scope`] allocate.
pub struct CountingAllocator;

#[inline]
fn count(delta: isize) {
    // `try_with`: a thread being torn down may allocate after its locals are gone.
    let _ = SCOPE_LIMIT.try_with(|limit| {
        let limit = limit.get();
        if limit != 0 {
            let live = LIVE.get().saturating_add(delta);
            LIVE.set(live);
            if live > limit as isize {
                EXCEEDED.set(true);
            }
        }
    });
}

// SAFETY: every method forwards to `MiMalloc` with the caller's arguments unchanged; the
// counting touches only const-initialized thread-locals without destructors, which never
// allocate.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: forwarded as received.
        unsafe { MiMalloc.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: forwarded as received.
        unsafe { MiMalloc.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        // SAFETY: forwarded as received.
        unsafe { MiMalloc.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        // SAFETY: forwarded as received.
        unsafe { MiMalloc.realloc(ptr, layout, new_size) }
    }
}

/// The check minijinja consults: may the current render allocate `additional` more bytes?
/// Always yes outside a scope. Each question is one step of the scope.
pub fn allocation_check(additional: u64) -> bool {
    let limit = SCOPE_LIMIT.get();
    if limit == 0 {
        return true;
    }
    if EXCEEDED.get() {
        return false;
    }
    let steps = STEPS.get() + 1;
    STEPS.set(steps);
    if steps > STEP_ALLOWANCE.get()
        || CANCEL.with_borrow(|cancel| cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed)))
    {
        return false;
    }
    let additional = isize::try_from(additional).unwrap_or(isize::MAX);
    if LIVE.get().saturating_add(additional) > limit as isize {
        EXCEEDED.set(true);
        return false;
    }
    true
}

thread_local! {
    /// The steps the current scope may take.
    static STEP_ALLOWANCE: Cell<u64> = const { Cell::new(0) };
    /// Set by another thread to stop the work of the current scope (a newer edit in the
    /// language server).
    static CANCEL: RefCell<Option<Arc<AtomicBool>>> = const { RefCell::new(None) };
}

/// The accounting of one render (or of a group of renders, such as the tests of one file
/// in `check`) on this thread, from [`Scope::enter`] to drop. Scopes nest: an inner scope
/// gets no more steps than its outer one has left, and its steps and net allocations
/// count in the outer one.
pub struct Scope {
    outer_limit: usize,
    outer_live: isize,
    outer_exceeded: bool,
    outer_steps: u64,
    outer_allowance: u64,
    outer_cancel: Option<Arc<AtomicBool>>,
}

impl Scope {
    /// Starts the accounting of one render: [`MAX_STEPS`] and the process's memory limit.
    pub fn enter() -> Scope {
        Scope::with_steps(MAX_STEPS, None)
    }

    /// Starts an accounting of at most `steps`, stopped early when `cancel` is set (an
    /// inner scope inherits the outer one's flag when given none).
    pub fn with_steps(steps: u64, cancel: Option<Arc<AtomicBool>>) -> Scope {
        let outer_limit = SCOPE_LIMIT.get();
        let outer_steps = STEPS.get();
        let outer_allowance = STEP_ALLOWANCE.get();
        let allowance = if outer_limit == 0 {
            steps
        } else {
            steps.min(outer_allowance.saturating_sub(outer_steps))
        };
        let inherited = CANCEL.with_borrow(Clone::clone);
        let scope = Scope {
            outer_limit,
            outer_live: LIVE.get(),
            outer_exceeded: EXCEEDED.get(),
            outer_steps,
            outer_allowance,
            outer_cancel: inherited.clone(),
        };
        LIVE.set(0);
        STEPS.set(0);
        STEP_ALLOWANCE.set(allowance);
        EXCEEDED.set(false);
        SCOPE_LIMIT.set(limit());
        CANCEL.set(cancel.or(inherited));
        scope
    }

    /// Whether the render went over its memory limit.
    pub fn exceeded(&self) -> bool {
        EXCEEDED.get()
    }

    /// Whether the scope used all its steps, or was cancelled.
    pub fn exhausted(&self) -> bool {
        STEPS.get() >= STEP_ALLOWANCE.get()
            || CANCEL
                .with_borrow(|cancel| cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed)))
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let inner_live = LIVE.get();
        let inner_steps = STEPS.get();
        SCOPE_LIMIT.set(self.outer_limit);
        LIVE.set(self.outer_live.saturating_add(inner_live));
        EXCEEDED.set(self.outer_exceeded);
        STEPS.set(self.outer_steps.saturating_add(inner_steps));
        STEP_ALLOWANCE.set(self.outer_allowance);
        CANCEL.set(self.outer_cancel.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_counts_its_threads_allocations_and_stays_exceeded() {
        let scope = Scope::enter();
        assert!(allocation_check(0));
        assert!(
            !allocation_check(limit() as u64 + 1),
            "a known allocation over the limit"
        );
        assert!(scope.exceeded());
        assert!(!allocation_check(0), "once over, always over");
        drop(scope);
        assert!(
            allocation_check(u64::MAX),
            "outside a scope nothing is refused"
        );

        let scope = Scope::enter();
        let big = vec![0u8; limit() + 1];
        assert!(scope.exceeded(), "a real allocation over the limit is seen");
        drop(big);
        assert!(!allocation_check(0));
    }

    #[test]
    fn a_scope_runs_out_of_steps_without_passing_the_memory_limit() {
        let scope = Scope::enter();
        assert!((0..MAX_STEPS).all(|_| allocation_check(0)));
        assert!(!allocation_check(0));
        assert!(!scope.exceeded(), "out of steps is not out of memory");
        assert!(scope.exhausted());
    }

    #[test]
    fn an_inner_scope_gets_what_the_outer_one_has_left_and_its_cancel_flag() {
        let cancel = Arc::new(AtomicBool::new(false));
        let outer = Scope::with_steps(10, Some(cancel.clone()));
        assert!((0..4).all(|_| allocation_check(0)));
        {
            let inner = Scope::enter();
            assert!((0..6).all(|_| allocation_check(0)));
            assert!(!allocation_check(0), "the outer scope had six steps left");
            assert!(inner.exhausted());
        }
        assert!(
            outer.exhausted(),
            "the inner scope's steps count in the outer one"
        );
        drop(outer);

        let outer = Scope::with_steps(MAX_STEPS, Some(cancel.clone()));
        let inner = Scope::enter();
        assert!(allocation_check(0));
        cancel.store(true, Ordering::Relaxed);
        assert!(
            !allocation_check(0),
            "a cancelled outer scope stops the inner one"
        );
        drop(inner);
        assert!(outer.exhausted());
    }

    #[test]
    fn released_memory_is_given_back() {
        let scope = Scope::enter();
        for _ in 0..8 {
            let chunk = vec![1u8; limit() / 2];
            assert_eq!(chunk.len(), limit() / 2);
        }
        assert!(
            !scope.exceeded(),
            "eight halves, each freed, never live at once"
        );
    }
}
