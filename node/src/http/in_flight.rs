//! Counting requests in flight until their response body is fully sent — not just until the
//! handler returns — so a draining node waits for downloads that are still streaming.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use http_body::{Frame, SizeHint};

use super::AppState;

/// One request in flight; the count goes down when it is dropped.
pub struct InFlight(AppState);

impl InFlight {
    pub fn start(state: AppState) -> Self {
        state.in_flight.fetch_add(1, Ordering::AcqRel);
        Self(state)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that holds its request's [`InFlight`] until the last byte is sent or the
/// client goes away.
pub struct CountedBody {
    inner: Body,
    _in_flight: InFlight,
}

impl CountedBody {
    pub fn wrap(inner: Body, in_flight: InFlight) -> Body {
        Body::new(Self {
            inner,
            _in_flight: in_flight,
        })
    }
}

impl http_body::Body for CountedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
