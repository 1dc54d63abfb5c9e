//! A process-wide allocation check (patch by promptctl, proposed upstream).
//!
//! Fuel bounds the work a template does, but some single operations allocate in
//! proportion to the logical size of a value rather than to the fuel they were
//! charged: formatting or serializing a lazily concatenated sequence, or a map
//! that refers to itself through shared values, visits `2^n` items after `n`
//! cheap instructions.  An embedder that measures the memory a render really
//! uses (for instance with a counting global allocator) installs a check here;
//! the engine consults it wherever it charges fuel and for every item it
//! formats, serializes or flattens, and stops the render (as out of fuel) when
//! the check says no.
use std::sync::OnceLock;

static CHECK: OnceLock<fn(u64) -> bool> = OnceLock::new();

/// Installs the allocation check.
///
/// The function is called with the number of bytes the engine is about to
/// allocate (`0` when it only asks whether the render may go on) and returns
/// `false` to stop the render.  It must be cheap: it runs for every
/// instruction.  Only the first installed check is kept; later calls return
/// `false`.
pub fn set_allocation_check(check: fn(u64) -> bool) -> bool {
    CHECK.set(check).is_ok() || CHECK.get() == Some(&check)
}

/// Whether `additional` more bytes may be allocated by the current render.
#[inline]
pub(crate) fn allocation_ok(additional: u64) -> bool {
    match CHECK.get() {
        Some(check) => check(additional),
        None => true,
    }
}

/// `iter`, ending early once the allocation check says no: every item pulled is one
/// question, so comparing or hashing two large values stays within the render's limits.
pub(crate) fn limited<I: Iterator>(iter: I) -> impl Iterator<Item = I::Item> {
    iter.take_while(|_| allocation_ok(0))
}

/// Runs `f`, a step of a recursion over a value (dropping, formatting, serializing or
/// comparing it), on a stack grown on the heap when little is left, so a value nested as
/// deep as the fuel allows cannot overflow the thread's stack.
#[inline]
pub(crate) fn deep<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(feature = "stacker")]
    {
        stacker::maybe_grow(64 * 1024, 1024 * 1024, f)
    }
    #[cfg(not(feature = "stacker"))]
    {
        f()
    }
}
