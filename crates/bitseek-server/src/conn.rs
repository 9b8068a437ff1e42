//! Accepting and serving connections, with the limits that keep slow or hostile clients from
//! starving the others: a cap on open connections, a time limit for sending a request's head, and
//! a time limit for a connection that sits idle. (The body's time limit is checked where bodies
//! are read, in `routes::JsonBody`, so that it can answer 408 in the usual error shape.)
//!
//! hyper's own `header_read_timeout` starts its clock when the server begins waiting for a request,
//! so it cannot tell a kept-alive connection that is merely idle from one that is dribbling a
//! header; here each connection has a watchdog that can. A connection is in one of three states:
//!
//! - **idle** (no request in flight, no byte of a new one read): closed after `idle_timeout`;
//! - **head** (bytes of a request read, its head not yet complete): closed after `header_timeout`,
//!   counted from the first byte, however slowly the rest trickles in;
//! - **busy** (a request is being answered): no clock; a slow body is the extractor's business,
//!   and a long search or compaction is allowed to take its time.
//!
//! The idle clock restarts when a response is handed to hyper, so a client that does not read its
//! response is also cut off after `idle_timeout`.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::Limits;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tower_service::Service;

/// No time recorded (no byte of a new request read yet).
const NONE: u64 = u64::MAX;

/// What a connection's watchdog knows about it. Times are microseconds since `epoch`.
struct Watch {
    epoch: Instant,
    /// Requests handed to the router and not yet answered.
    busy: AtomicUsize,
    /// When the connection last became idle (accepted, or a response was handed back).
    idle_since: AtomicU64,
    /// When the first byte of the next request's head was read; [`NONE`] before that.
    head_since: AtomicU64,
    /// Wakes the watchdog when the state changes, so that its deadline is recomputed.
    changed: Notify,
}

impl Watch {
    fn new() -> Watch {
        Watch {
            epoch: Instant::now(),
            busy: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            head_since: AtomicU64::new(NONE),
            changed: Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// Bytes were read from the client.
    fn on_read(&self) {
        if self.busy.load(Ordering::Acquire) == 0 && self.head_since.load(Ordering::Acquire) == NONE
        {
            self.head_since.store(self.now(), Ordering::Release);
            self.changed.notify_one();
        }
    }

    /// A request's head is complete and goes to the router; the guard marks its end.
    fn begin(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(NONE, Ordering::Release);
        self.changed.notify_one();
        Busy(self.clone())
    }

    /// When the connection must be closed if nothing changes before then; `None` while busy.
    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        if self.busy.load(Ordering::Acquire) > 0 {
            return None;
        }
        let at = |since: u64, d: Duration| self.epoch + Duration::from_micros(since) + d;
        match self.head_since.load(Ordering::Acquire) {
            NONE => Some(at(
                self.idle_since.load(Ordering::Acquire),
                limits.idle_timeout,
            )),
            head => Some(at(head, limits.header_timeout)),
        }
    }

    /// Resolves when the connection has overstayed its state's time limit.
    async fn expired(&self, limits: &Limits) {
        loop {
            let changed = self.changed.notified();
            match self.deadline(limits) {
                Some(d) if Instant::now() >= d => return,
                Some(d) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(d.into()) => {}
                        _ = changed => {}
                    }
                }
                None => changed.await,
            }
        }
    }
}

/// One request in flight; dropping it (answered, or abandoned) may make the connection idle.
struct Busy(Arc<Watch>);

impl Drop for Busy {
    fn drop(&mut self) {
        let w = &self.0;
        w.idle_since.store(w.now(), Ordering::Release);
        w.busy.fetch_sub(1, Ordering::AcqRel);
        w.changed.notify_one();
    }
}

/// The client's socket, telling the watchdog when bytes arrive.
struct Watched {
    io: TcpStream,
    watch: Arc<Watch>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.watch.on_read();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Accepts connections on `listener` and serves `app` on each until `shutdown` resolves; then
/// stops accepting, lets every connection finish the request it is answering (idle ones close at
/// once) and returns when all are closed.
///
/// At most `max_connections` are served at once. Above that the server stops accepting: new
/// connections wait in the kernel's listen backlog (where a client sees only a slow connect) and
/// are taken in order as others close, instead of being accepted and dropped, which would turn a
/// brief overload into errors for well-behaved clients.
pub(crate) async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.header_read_timeout(None);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            accepted = accept(&listener, &slots) => accepted,
        };
        let (stream, slot) = accepted;
        let watch = Arc::new(Watch::new());
        let io = TokioIo::new(Watched {
            io: stream,
            watch: watch.clone(),
        });
        let router = app.clone();
        let conn_watch = watch.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let busy = conn_watch.begin();
            let mut router = router.clone();
            async move {
                let resp = router.call(req).await;
                drop(busy);
                resp
            }
        });
        let conn = graceful.watch(http.serve_connection(io, service));
        tokio::spawn(async move {
            tokio::select! {
                // Errors here are the client's (reset, garbage): nothing to tell anyone.
                _ = conn => {}
                _ = watch.expired(&limits) => {}
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// The next connection, once a slot is free. Errors from `accept` (a reset before it was taken;
/// out of file descriptors) are waited out rather than ending the server.
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> (TcpStream, tokio::sync::OwnedSemaphorePermit) {
    let slot = match slots.clone().acquire_owned().await {
        Ok(slot) => slot,
        // The semaphore is never closed.
        Err(_) => return std::future::pending().await,
    };
    loop {
        match listener.accept().await {
            Ok((stream, _)) => return (stream, slot),
            Err(e) => {
                eprintln!("bitseek-server: accepting a connection failed: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
