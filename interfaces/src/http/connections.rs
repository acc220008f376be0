//! Accepting and serving connections with bounds on time and count.
//!
//! `axum::serve` keeps a connection as long as the client likes and accepts as many as the
//! kernel hands over, so idle or slow clients could hold every file descriptor (issue 11).
//! This accept loop drives hyper's HTTP/1 connections itself and adds:
//!
//! * a **connection limit**: at most `max_connections` are served at once; beyond it the loop
//!   stops accepting until one closes, so waiting clients queue in the kernel's backlog
//!   instead of costing descriptors, and are served as soon as a slot frees;
//! * a **header-read timeout**: from connecting, and from the first byte of each later
//!   request, the client has this long to send the complete request head;
//! * an **idle timeout**: a kept-alive connection with no request in flight is closed after
//!   this long without a new request starting.
//!
//! Both timeouts are enforced by [`TimedIo`], which sees every read of the connection, and
//! the per-connection [`Activity`], which the service marks busy while a request is in
//! flight (hyper's own header timer starts when a connection goes idle, so it cannot tell
//! the two apart). Reading the body is bounded separately, per request (`body_guard`).
//!
//! A connection closed while its client may still be sending a body the server did not read
//! (a refused upload: 401, 408, 413, 503) is closed *lingering*: the server sends FIN after
//! the answer and reads and discards for up to [`LINGER`] before closing, because closing a
//! socket with unread data makes the kernel send a reset that can destroy the answer before
//! the client reads it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::extract::Request;
use axum::response::Response;
use futures::task::AtomicWaker;
use http_body::Body as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

/// The time and count bounds of the accept loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// How long a client has to send a complete request head, counted from connecting or
    /// from the first byte of the request.
    pub header_read_timeout: Duration,
    /// How long a kept-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
}

/// Where a connection is in its request cycle.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for the head of a request whose first byte arrived (or for the first request
    /// of a new connection) since the instant given.
    ReadingHead(Instant),
    /// Kept alive without a request since the instant given.
    Idle(Instant),
    /// Requests in flight: the handler and the body guard bound this time, not the
    /// connection.
    Busy(usize),
}

/// How long a connection closed with a request body left unread keeps reading and
/// discarding before it is closed.
pub const LINGER: Duration = Duration::from_secs(5);

/// The request cycle of one connection, shared by its I/O and its service.
#[derive(Debug)]
pub struct Activity {
    limits: ConnectionLimits,
    phase: Mutex<Phase>,
    /// The last request's body was dropped before its end.
    body_left_unread: AtomicBool,
    /// The socket's reader, waiting without a deadline while busy: woken when the last
    /// request finishes, so the idle deadline starts to count.
    idle_waker: AtomicWaker,
}

impl Activity {
    fn new(limits: ConnectionLimits) -> Self {
        Self {
            limits,
            phase: Mutex::new(Phase::ReadingHead(Instant::now())),
            body_left_unread: AtomicBool::new(false),
            idle_waker: AtomicWaker::new(),
        }
    }

    fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes arrived: on an idle connection they start the head of the next request.
    fn bytes_read(&self) {
        let mut phase = self.phase();
        if let Phase::Idle(_) = *phase {
            *phase = Phase::ReadingHead(Instant::now());
        }
    }

    /// A request head was read and handed to the service.
    fn request_started(&self) {
        // hyper drained or read the previous body if it starts another request.
        self.body_left_unread.store(false, Ordering::Relaxed);
        let mut phase = self.phase();
        *phase = match *phase {
            Phase::Busy(n) => Phase::Busy(n + 1),
            _ => Phase::Busy(1),
        };
    }

    /// A response was sent (or dropped); the last one makes the connection idle.
    fn request_finished(&self) {
        {
            let mut phase = self.phase();
            *phase = match *phase {
                Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
                _ => Phase::Idle(Instant::now()),
            };
        }
        self.idle_waker.wake();
    }

    /// When the connection times out unless a request starts, and which timeout that is.
    fn deadline(&self) -> Option<(Instant, &'static str)> {
        match *self.phase() {
            Phase::ReadingHead(since) => Some((
                since + self.limits.header_read_timeout,
                "the request head was not complete within the header-read timeout",
            )),
            Phase::Idle(since) => Some((
                since + self.limits.idle_timeout,
                "the kept-alive connection was idle past the idle timeout",
            )),
            Phase::Busy(_) => None,
        }
    }
}

/// A connection's socket that fails its reads once `Activity::deadline` passes, which
/// makes hyper close the connection. It holds the connection's slot until the socket is
/// closed (after lingering, if it lingers).
pub struct TimedIo {
    /// `None` only once dropped.
    stream: Option<TcpStream>,
    activity: Arc<Activity>,
    timer: Pin<Box<Sleep>>,
    armed_for: Option<Instant>,
    slot: Option<OwnedSemaphorePermit>,
}

impl TimedIo {
    fn new(stream: TcpStream, activity: Arc<Activity>, slot: OwnedSemaphorePermit) -> Self {
        Self {
            stream: Some(stream),
            activity,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            armed_for: None,
            slot: Some(slot),
        }
    }

    fn stream(&mut self) -> io::Result<&mut TcpStream> {
        self.stream
            .as_mut()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }
}

impl Drop for TimedIo {
    fn drop(&mut self) {
        let Some(stream) = self.stream.take() else {
            return;
        };
        if !self.activity.body_left_unread.load(Ordering::Relaxed) {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(linger(stream, self.slot.take()));
        }
    }
}

/// Ends the answer with FIN, then reads and discards what the client still sends (for at
/// most [`LINGER`]) so that closing does not reset the connection under the answer.
async fn linger(mut stream: TcpStream, _slot: Option<OwnedSemaphorePermit>) {
    if stream.shutdown().await.is_err() {
        return;
    }
    let mut sink = vec![0u8; 16 * 1024];
    let _ = tokio::time::timeout(LINGER, async {
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

impl AsyncRead for TimedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(this.stream()?).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.activity.bytes_read();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let Some((deadline, why)) = this.activity.deadline() else {
                    this.activity.idle_waker.register(cx.waker());
                    // The request may have finished since the phase was read.
                    if this.activity.deadline().is_some() {
                        cx.waker().wake_by_ref();
                    }
                    return Poll::Pending;
                };
                if this.armed_for != Some(deadline) {
                    this.timer.as_mut().reset(deadline);
                    this.armed_for = Some(deadline);
                }
                match this.timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, why)))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl AsyncWrite for TimedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.stream()?).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.stream()?).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.as_ref().is_some_and(|s| s.is_write_vectored())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.stream()?).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.stream()?).poll_shutdown(cx)
    }
}

/// A request body that tells the connection when it is dropped before its end.
struct WatchedBody {
    inner: Incoming,
    activity: Arc<Activity>,
    ended: bool,
}

impl http_body::Body for WatchedBody {
    type Data = axum::body::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            self.ended = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for WatchedBody {
    fn drop(&mut self) {
        if !self.ended && !self.inner.is_end_stream() {
            self.activity
                .body_left_unread
                .store(true, Ordering::Relaxed);
        }
    }
}

/// Marks the connection idle again when the response (body included) is done with.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// A response body that holds its request's [`InFlight`] mark until hyper drops it.
struct TrackedBody {
    inner: Body,
    _in_flight: InFlight,
}

impl http_body::Body for TrackedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Accepts connections on `listener` and serves `app` on each within `limits` until
/// `shutdown` resolves; then stops accepting, lets every connection finish its request in
/// flight (idle ones close at once) and returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    // `TimedIo` enforces the head and idle timeouts; hyper's own header timer would start
    // whenever a connection goes idle and so merge the two.
    builder.timer(TokioTimer::new()).header_read_timeout(None);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let activity = Arc::new(Activity::new(limits));
        let io = TokioIo::new(TimedIo::new(stream, activity.clone(), slot));
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            activity.request_started();
            let in_flight = InFlight(activity.clone());
            req.extensions_mut().insert(ConnectInfo(remote));
            let activity = activity.clone();
            let req = req.map(|inner| {
                Body::new(WatchedBody {
                    inner,
                    activity,
                    ended: false,
                })
            });
            let app = app.clone();
            async move {
                let resp: Response = app.oneshot(req).await?;
                Ok::<_, std::convert::Infallible>(resp.map(|inner| TrackedBody {
                    inner,
                    _in_flight: in_flight,
                }))
            }
        });
        let conn = graceful.watch(builder.serve_connection(io, service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%remote, error = %e, "connection closed with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Handles a failed `accept`: a client that gave up before being accepted is nothing; out
/// of descriptors or memory, pause briefly so the loop does not spin while connections
/// close.
async fn accept_failed(e: &io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    ) {
        return;
    }
    tracing::warn!(error = %e, "accept failed; pausing 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Descriptors kept for everything but client connections: the listener, the database
/// pool, SQLite's files, logs.
const RESERVED_DESCRIPTORS: u64 = 128;

/// The connection limit the process's descriptor limit can carry. Raises the soft limit
/// (towards the hard one) when `wanted` connections need more; when even the hard limit is
/// too low, serves fewer connections and says so, because running out of descriptors
/// would stop the server from accepting anything, `/health` included.
pub fn fit_descriptor_limit(wanted: usize) -> usize {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let needed = (wanted as u64).saturating_add(RESERVED_DESCRIPTORS);
        let limit = getrlimit(Resource::Nofile);
        let soft = limit.current.unwrap_or(u64::MAX);
        if soft >= needed {
            return wanted;
        }
        let hard = limit.maximum.unwrap_or(u64::MAX);
        let raised = needed.min(hard);
        let available = match setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(raised),
                maximum: limit.maximum,
            },
        ) {
            Ok(()) => raised,
            Err(_) => soft,
        };
        if available >= needed {
            tracing::info!(descriptors = available, "raised the open-file limit");
            return wanted;
        }
        let fitted = usize::try_from(available.saturating_sub(RESERVED_DESCRIPTORS))
            .unwrap_or(usize::MAX)
            .max(1);
        tracing::warn!(
            wanted,
            serving = fitted,
            descriptors = available,
            "the open-file limit cannot carry --max-connections; serving fewer connections \
             (raise `ulimit -n` to serve more)"
        );
        fitted
    }
    #[cfg(not(unix))]
    {
        wanted
    }
}
