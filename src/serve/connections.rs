//! The accept loop of `promptctl serve`: hyper's HTTP/1 server over every accepted
//! connection, with bounds that hold against idle and slow clients.
//!
//! - A connection must send a request's headers within the header timeout. hyper's timer
//!   starts whenever the connection waits for a request head, so the same timeout closes a
//!   keep-alive connection idle between requests and a client trickling its headers.
//! - A request's body must arrive within the body timeout.
//! - At most `max_connections` are open at once, kept below the file-descriptor limit.
//!   At the limit, the oldest connection that can close without losing work (idle
//!   keep-alive, still sending its headers, or still sending a request body) is closed to
//!   make room for the new one; when every connection has a request being handled, new
//!   ones wait in the kernel's backlog.
//! - An accept error (out of descriptors, `EMFILE`) closes an idle connection and pauses
//!   the loop briefly; it never ends it.
//! - On shutdown the listener closes, connections with a request being handled finish
//!   it, the others close at once.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};

/// Descriptors kept aside from connections: stdio, the runtime, the database
/// connections (reads, `LISTEN`, the router, the run recorder), provider connections,
/// files.
const RESERVED_DESCRIPTORS: u64 = 32;

/// The largest default connection limit, whatever the descriptor limit.
const MAX_DEFAULT_CONNECTIONS: u64 = 10_000;

/// The read buffer hyper may grow for a request head (it answers 431 past it): 64 KiB,
/// against its default of about 400 KiB a connection. hyper reads in doubling chunks, so
/// a head may reach up to twice this before it is refused.
const READ_BUFFER: usize = 64 * 1024;

/// How long shutdown waits for the requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the accept loop pauses after a failed accept (out of descriptors).
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// The bounds of the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How long a connection may take to send a request's headers, and stay idle between
    /// keep-alive requests.
    pub header_timeout: Duration,
    /// How long a client may take to send a request's body.
    pub body_timeout: Duration,
    /// The most connections open at once.
    pub max_connections: usize,
}

/// The soft `RLIMIT_NOFILE` of the process (`None`: unlimited, and on systems without
/// one, such as Windows).
pub fn descriptor_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        rustix::process::getrlimit(rustix::process::Resource::Nofile).current
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// How many connections `descriptors` file descriptors allow: three quarters of them
/// less [`RESERVED_DESCRIPTORS`] (the rest is for the database, providers and files), at
/// least 1 and at most `u32::MAX` (what no descriptor limit at all gives).
pub fn connections_for(descriptors: Option<u64>) -> usize {
    let limit = descriptors.unwrap_or(u64::MAX);
    let allowed = limit
        .saturating_sub(RESERVED_DESCRIPTORS + limit / 4)
        .clamp(1, u64::from(u32::MAX));
    usize::try_from(allowed).unwrap_or(1)
}

/// The default connection limit: [`connections_for`] the soft descriptor limit, at most
/// 10,000.
pub fn default_max_connections() -> usize {
    connections_for(descriptor_limit()).min(MAX_DEFAULT_CONNECTIONS as usize)
}

/// One open connection.
#[derive(Default)]
struct Slot {
    /// Requests in flight.
    busy: AtomicUsize,
    /// Requests in flight whose body is still arriving.
    receiving: AtomicUsize,
    /// Asked to close.
    closing: AtomicBool,
    /// Wakes the connection's task to close.
    close: Notify,
}

/// A request in flight on its connection's slot.
struct Busy(Arc<Slot>);

impl Busy {
    fn enter(slot: &Arc<Slot>) -> Busy {
        slot.busy.fetch_add(1, Ordering::AcqRel);
        Busy(slot.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Slot {
    /// Whether closing the connection now loses no work: no request in flight, or one
    /// whose body is still arriving (a slow client, which closing stops).
    fn closable(&self) -> bool {
        self.receiving.load(Ordering::Acquire) > 0 || self.busy.load(Ordering::Acquire) == 0
    }
}

/// A request body that tells its connection's slot when it has all arrived (or was
/// dropped unread).
struct Tracked {
    body: Incoming,
    slot: Option<Arc<Slot>>,
}

impl Tracked {
    fn new(body: Incoming, slot: &Arc<Slot>) -> Tracked {
        let slot = (!hyper::body::Body::is_end_stream(&body)).then(|| {
            slot.receiving.fetch_add(1, Ordering::AcqRel);
            slot.clone()
        });
        Tracked { body, slot }
    }

    fn arrived(&mut self) {
        if let Some(slot) = self.slot.take() {
            slot.receiving.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.arrived();
    }
}

impl hyper::body::Body for Tracked {
    type Data = hyper::body::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.body).poll_frame(cx);
        if matches!(polled, std::task::Poll::Ready(None | Some(Err(_))))
            || hyper::body::Body::is_end_stream(&self.body)
        {
            self.arrived();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// The open connections, oldest first.
#[derive(Default)]
struct Table {
    open: Mutex<BTreeMap<u64, Arc<Slot>>>,
}

impl Table {
    fn insert(&self, id: u64, slot: Arc<Slot>) {
        if let Ok(mut open) = self.open.lock() {
            open.insert(id, slot);
        }
    }

    fn remove(&self, id: u64) {
        if let Ok(mut open) = self.open.lock() {
            open.remove(&id);
        }
    }

    /// Asks the oldest connection that can close without losing work ([`Slot::closable`])
    /// to close; false when there is none.
    fn make_room(&self) -> bool {
        let Ok(open) = self.open.lock() else {
            return false;
        };
        for slot in open.values() {
            if slot.closable() && !slot.closing.swap(true, Ordering::AcqRel) {
                slot.close.notify_one();
                return true;
            }
        }
        false
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` completes, then lets
/// the requests in flight finish (for at most 30 s).
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let router = router.layer(tower_http::timeout::RequestBodyDeadlineLayer::new(
        limits.body_timeout,
    ));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(READ_BUFFER)
        .keep_alive(true);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let table = Arc::new(Table::default());
    let (stop, stopped) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut next_id: u64 = 0;
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    accept_failed(&err, &table).await;
                    continue;
                }
            },
        };
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = admit(&permits, &table) => permit,
        };
        next_id += 1;
        let slot = Arc::new(Slot::default());
        table.insert(next_id, slot.clone());
        let connection = Connection {
            id: next_id,
            slot,
            table: table.clone(),
            stopped: stopped.clone(),
            _permit: permit,
        };
        tokio::spawn(connection.run(http.clone(), stream, router.clone()));
    }
    drop(listener);
    let _ = stop.send(true);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, permits.acquire_many(all)).await;
}

/// A permit for one more connection: at once below the limit; at the limit, after asking
/// the oldest idle connection to close, or after one closes by itself.
async fn admit(permits: &Arc<Semaphore>, table: &Table) -> OwnedSemaphorePermit {
    loop {
        if let Ok(permit) = permits.clone().try_acquire_owned() {
            return permit;
        }
        table.make_room();
        if let Ok(Ok(permit)) =
            tokio::time::timeout(Duration::from_millis(50), permits.clone().acquire_owned()).await
        {
            return permit;
        }
    }
}

/// After a failed accept: nothing for a connection the client dropped; otherwise (out of
/// descriptors or memory) close an idle connection and pause, so the loop never spins.
async fn accept_failed(err: &std::io::Error, table: &Table) {
    use std::io::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::ConnectionAborted
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionRefused
            | ErrorKind::Interrupted
    ) {
        return;
    }
    tracing::warn!(error = %err, "accept failed; closing an idle connection and pausing");
    table.make_room();
    tokio::time::sleep(ACCEPT_PAUSE).await;
}

/// One accepted connection and what it holds until it ends.
struct Connection {
    id: u64,
    slot: Arc<Slot>,
    table: Arc<Table>,
    stopped: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
}

impl Connection {
    /// Serves the connection until the client leaves, a timeout closes it, or it is asked
    /// to close (at the connection limit, or on shutdown): with no request in flight it
    /// closes at once; otherwise after the response in flight.
    async fn run(self, http: http1::Builder, stream: TcpStream, router: axum::Router) {
        let Connection {
            id,
            slot,
            table,
            mut stopped,
            _permit,
        } = self;
        let service = TowerToHyperService::new(router);
        let tracked_slot = slot.clone();
        let tracked = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let busy = Busy::enter(&tracked_slot);
            let request = request.map(|body| Tracked::new(body, &tracked_slot));
            let call = hyper::service::Service::call(&service, request);
            async move {
                let response = call.await;
                drop(busy);
                response
            }
        });
        let connection = http.serve_connection(TokioIo::new(stream), tracked);
        let mut connection = std::pin::pin!(connection);
        // Evicted at the limit: close unless a request is being handled. Shut down:
        // close unless a request is in flight at all.
        let asked = async {
            tokio::select! {
                () = slot.close.notified() => slot.closable(),
                _ = stopped.wait_for(|stop| *stop) => slot.busy.load(Ordering::Acquire) == 0,
            }
        };
        tokio::select! {
            _ = connection.as_mut() => {}
            close_now = asked => {
                if !close_now {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        }
        table.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_stay_below_the_descriptor_limit() {
        assert_eq!(connections_for(Some(256)), 160);
        assert_eq!(connections_for(Some(1024)), 736);
        assert_eq!(connections_for(Some(10)), 1);
        assert_eq!(connections_for(None), u32::MAX as usize);
    }
}
