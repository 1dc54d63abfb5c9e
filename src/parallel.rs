//! Running independent work on every core, results in input order.
//!
//! Parsing prompt files and checking prompts dominate `check` on large repositories and
//! each item is independent, so both spread over the machine's cores with scoped threads.

/// Fewer items than this run on the calling thread, unless they are large.
const MIN_ITEMS: usize = 64;

/// Items together at least this large (by the caller's measure, in bytes) are spread over
/// the cores however few they are: ten prompt files of a thousand test cases each take
/// about 20 ms each to parse.
const MIN_BYTES: usize = 256 * 1024;

/// `f` over `items` on every core; results come back in the order of `items`. Small inputs
/// run on the calling thread. A panic in `f` is re-raised on the caller.
pub fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    map_sized(items, |_| 0, f)
}

/// [`map`] for items whose work grows with their `size` in bytes (files to parse): few
/// items run on every core too when they are large together.
pub fn map_sized<T: Sync, R: Send>(
    items: &[T],
    size: impl Fn(&T) -> usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let small = items.len() < MIN_ITEMS && items.iter().map(size).sum::<usize>() < MIN_BYTES;
    if threads < 2 || items.len() < 2 || small {
        return items.iter().map(&f).collect();
    }
    let chunk_size = items.len().div_ceil(threads);
    let f = &f;
    let mut chunks = items.chunks(chunk_size);
    // The calling thread takes the first chunk: one thread (and its allocator heap) fewer.
    let first = chunks.next().unwrap_or_default();
    std::thread::scope(|scope| {
        // A thread the system refuses (address space or process limits) leaves its chunk
        // to the calling thread: slower, never a panic.
        let handles: Vec<_> = chunks
            .map(|chunk| {
                let spawned = std::thread::Builder::new()
                    .spawn_scoped(scope, move || chunk.iter().map(f).collect::<Vec<R>>());
                (chunk, spawned.ok())
            })
            .collect();
        let mut results: Vec<R> = first.iter().map(f).collect();
        for (chunk, handle) in handles {
            match handle.map(|h| h.join()) {
                Some(Ok(done)) => results.extend(done),
                Some(Err(panic)) => std::panic::resume_unwind(panic),
                None => results.extend(chunk.iter().map(f)),
            }
        }
        results
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_order_on_large_inputs() {
        let items: Vec<u32> = (0..1000).collect();
        let doubled = super::map(&items, |x| x * 2);
        assert_eq!(doubled, items.iter().map(|x| x * 2).collect::<Vec<_>>());
    }

    #[test]
    fn few_large_items_keep_their_order() {
        let items: Vec<Vec<u8>> = (0..10u8).map(|n| vec![n; 100_000]).collect();
        let firsts = super::map_sized(&items, Vec::len, |item| item[0]);
        assert_eq!(firsts, (0..10u8).collect::<Vec<_>>());
    }
}
