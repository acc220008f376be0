//! Bounds on reading request bodies: a deadline per body and a budget of body bytes held by
//! all requests in flight together.
//!
//! * **Body-read timeout.** A body must arrive completely within `body_read_timeout` of its
//!   head; a client that stalls or trickles is answered 408 and its connection closed.
//! * **In-flight budget.** Every request holds its body's size from the budget until its
//!   answer is ready (the handler works on the body, and what it decodes from it, until
//!   then). A body that declares its size (`Content-Length`) is charged before a byte is
//!   read; a chunked one as its chunks arrive. When the budget cannot cover a body, the
//!   request is answered 503 with `Retry-After` at once and its connection closed, so many
//!   large concurrent bodies slow clients down instead of exhausting memory.
//!
//! The per-request size limits (`--max-body-bytes`, `--max-checkpoint-body-bytes`) are
//! applied by the routers as before; a declared size over the largest of them is left to
//! them (answered 413 unread) and charges nothing.

use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{CONNECTION, CONTENT_LENGTH, RETRY_AFTER};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Body as _, Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use super::error::ApiError;

/// The budget is counted in units of this many bytes (the semaphore takes `u32` counts).
const UNIT: usize = 1024;

/// The bounds on request bodies the server applies.
#[derive(Debug)]
pub struct BodyGuard {
    read_timeout: Duration,
    budget: Arc<Semaphore>,
    budget_bytes: usize,
    /// Declared sizes above this are refused by the routers' limits without being read.
    largest_accepted: usize,
}

impl BodyGuard {
    /// A guard allowing `budget_bytes` of bodies in flight, each read within `read_timeout`.
    pub fn new(read_timeout: Duration, budget_bytes: usize, largest_accepted: usize) -> Self {
        let units = budget_bytes.div_ceil(UNIT).min(Semaphore::MAX_PERMITS);
        Self {
            read_timeout,
            budget: Arc::new(Semaphore::new(units)),
            budget_bytes,
            largest_accepted,
        }
    }

    /// Bytes of request bodies currently held by requests in flight.
    pub fn bytes_in_flight(&self) -> usize {
        let free = self.budget.available_permits();
        self.budget_bytes
            .div_ceil(UNIT)
            .min(Semaphore::MAX_PERMITS)
            .saturating_sub(free)
            .saturating_mul(UNIT)
    }

    fn try_charge(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        let units = u32::try_from(bytes.div_ceil(UNIT)).ok()?;
        self.budget.clone().try_acquire_many_owned(units).ok()
    }
}

/// Why a guarded body stopped early.
const FINE: u8 = 0;
const TIMED_OUT: u8 = 1;
const OVER_BUDGET: u8 = 2;

/// What a request's body charged and how its reading ended, shared by the body and the
/// middleware that answers for it.
#[derive(Debug, Default)]
struct Charge {
    held: Mutex<Option<OwnedSemaphorePermit>>,
    outcome: AtomicU8,
}

impl Charge {
    fn hold(&self, permit: OwnedSemaphorePermit) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        match held.as_mut() {
            Some(all) => all.merge(permit),
            None => *held = Some(permit),
        }
    }
}

/// A request body read under the guard: fails once its deadline passes, and charges the
/// budget chunk by chunk unless its whole size was charged up front.
struct GuardedBody {
    inner: Body,
    deadline: Pin<Box<Sleep>>,
    guard: Arc<BodyGuard>,
    charge: Arc<Charge>,
    /// Bytes already covered by the up-front charge.
    prepaid: usize,
    /// Bytes read so far.
    read: usize,
}

impl http_body::Body for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let before = this.read;
                    this.read += data.len();
                    let unpaid = this.read.saturating_sub(this.prepaid.max(before));
                    if unpaid > 0 {
                        match this.guard.try_charge(unpaid) {
                            Some(permit) => this.charge.hold(permit),
                            None => {
                                this.charge.outcome.store(OVER_BUDGET, Ordering::Relaxed);
                                return Poll::Ready(Some(Err(axum::Error::new(
                                    "the server's budget for request bodies is exhausted",
                                ))));
                            }
                        }
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => Poll::Ready(other),
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.charge.outcome.store(TIMED_OUT, Ordering::Relaxed);
                    Poll::Ready(Some(Err(axum::Error::new(
                        "the request body did not arrive within the body-read timeout",
                    ))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

fn declared_length(req: &Request) -> Option<usize> {
    req.headers()
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The middleware: wraps every request body in a `GuardedBody` and answers for it when it
/// timed out or the budget could not cover it.
pub async fn guard_bodies(
    State(guard): State<Arc<BodyGuard>>,
    req: Request,
    next: Next,
) -> Response {
    let checkpointer = req.uri().path().starts_with("/checkpointer");
    let declared = declared_length(&req);
    if declared == Some(0) || (declared.is_none() && req.body().is_end_stream()) {
        return next.run(req).await;
    }
    let charge = Arc::new(Charge::default());
    let mut prepaid = 0;
    if let Some(len) = declared.filter(|&n| n <= guard.largest_accepted) {
        match guard.try_charge(len) {
            Some(permit) => {
                charge.hold(permit);
                prepaid = len;
            }
            None => return refuse(&guard, checkpointer, OVER_BUDGET),
        }
    }
    let (parts, body) = req.into_parts();
    let body = GuardedBody {
        inner: body,
        deadline: Box::pin(tokio::time::sleep_until(
            Instant::now() + guard.read_timeout,
        )),
        guard: guard.clone(),
        charge: charge.clone(),
        prepaid,
        read: 0,
    };
    let resp = next.run(Request::from_parts(parts, Body::new(body))).await;
    match charge.outcome.load(Ordering::Relaxed) {
        FINE => resp,
        outcome => refuse(&guard, checkpointer, outcome),
    }
    // The charge is released here, when the answer is ready.
}

/// The answer for a body that timed out or did not fit the budget, in the envelope of the
/// surface it was sent to. The connection is closed: its body was not read to the end.
fn refuse(guard: &BodyGuard, checkpointer: bool, outcome: u8) -> Response {
    let (status, code, kind, message) = if outcome == TIMED_OUT {
        (
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            "TimeoutError",
            format!(
                "the request body did not arrive within {} ms",
                guard.read_timeout.as_millis()
            ),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "ConnectionError",
            format!(
                "the server holds its budget of {} bytes of request bodies in flight; retry \
                 shortly",
                guard.budget_bytes
            ),
        )
    };
    let mut resp = if checkpointer {
        crate::checkpointer::ProtoError::new(status, kind, message).into_response()
    } else {
        ApiError::new(status, code, message).into_response()
    };
    let headers = resp.headers_mut();
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_are_counted_in_whole_units_and_refused_past_the_budget() {
        let guard = BodyGuard::new(Duration::from_secs(1), 10 * UNIT, 10 * UNIT);
        let first = guard.try_charge(4 * UNIT + 1).expect("fits");
        assert_eq!(guard.bytes_in_flight(), 5 * UNIT);
        assert!(guard.try_charge(6 * UNIT).is_none());
        let second = guard.try_charge(5 * UNIT).expect("fits exactly");
        assert_eq!(guard.bytes_in_flight(), 10 * UNIT);
        drop(first);
        drop(second);
        assert_eq!(guard.bytes_in_flight(), 0);
    }
}
