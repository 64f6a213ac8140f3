//! A deadline for receiving a request's body. actix bounds the time to receive the
//! head (`client_request_timeout`) but not the body: a client that announces a body and
//! trickles it (or sends nothing) would hold a connection and a worker slot forever.
//! This middleware ends the body with a timeout error once the deadline passes, which
//! the extractors answer with `408 request_timeout`; the connection is then closed.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::web::{self, Bytes};
use actix_web::{Error, HttpMessage};
use futures_util::Stream;

/// How long a request's body may take to arrive, from the moment its head was read.
#[derive(Debug, Clone, Copy)]
pub struct BodyReadTimeout(pub Duration);

/// The text of the error a late body ends with; the extractors recognise it.
pub const TIMED_OUT: &str = "the request body did not arrive in time";

struct Deadline {
    inner: Payload,
    sleep: Pin<Box<tokio::time::Sleep>>,
    expired: bool,
}

impl Stream for Deadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.expired {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = Pin::new(&mut self.inner).poll_next(cx) {
            return Poll::Ready(item);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.expired = true;
            return Poll::Ready(Some(Err(PayloadError::Io(io::Error::new(
                io::ErrorKind::TimedOut,
                TIMED_OUT,
            )))));
        }
        Poll::Pending
    }
}

pub async fn middleware(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    // HTTP/1.1: a request with neither Content-Length nor Transfer-Encoding has no body
    // (RFC 9112 §6.3), and neither has one of length 0: nothing to wait for, so no timer.
    let headers = req.headers();
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|length| length.as_bytes() != b"0");
    if !has_body {
        return next.call(req).await;
    }
    let timeout = req
        .app_data::<web::Data<BodyReadTimeout>>()
        .map(|t| t.0)
        .unwrap_or(Duration::from_secs(10));
    let inner = req.take_payload();
    let deadline = Deadline {
        inner,
        sleep: Box::pin(tokio::time::sleep(timeout)),
        expired: false,
    };
    req.set_payload(Payload::Stream {
        payload: Box::pin(deadline),
    });
    next.call(req).await
}

/// The answer to a body that missed the deadline.
pub fn request_timeout() -> crate::error::ApiError {
    crate::error::ApiError::new(crate::error::ErrorCode::RequestTimeout, TIMED_OUT)
}

/// Whether a body read failed on the deadline.
pub fn timed_out(error: &PayloadError) -> bool {
    matches!(error, PayloadError::Io(e) if e.kind() == io::ErrorKind::TimedOut)
}

/// Whether a body read (through actix's generic error) failed on the deadline.
pub fn timed_out_error(error: &Error) -> bool {
    error.as_error::<PayloadError>().is_some_and(timed_out)
}
