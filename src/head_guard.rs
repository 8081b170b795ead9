//! A guard in front of actix-http's HTTP/1 parser, so that an oversized request head gets a
//! problem+json answer like every other refusal.
//!
//! actix-http answers a head it cannot take (over 32 KiB, more than 96 headers) with a bare
//! `431` of its own, written by its dispatcher before any request exists: no middleware sees it.
//! So the connection's bytes pass through [`HeadGuard`] first. It holds back the first request
//! head of a connection until the head is complete; if it is within [`MAX_HEAD_BYTES`],
//! [`MAX_URI_BYTES`] and [`MAX_HEADERS`] (all below actix-http's own limits) the head goes on
//! unchanged and the guard steps aside for the rest of the connection. If not, actix-http is
//! handed a small request of our own instead, for [`REJECTED_PATH`], whose handler answers the
//! refusal as problem+json (`431 /problems/request-header-too-large` or
//! `414 /problems/uri-too-long`) with `Connection: close`; what the client still sends is read
//! and discarded (up to [`DRAIN_BYTES`]) so that closing does not reset the connection before the
//! answer is read.
//!
//! Only the first request of a connection is guarded: telling where a later head starts on a
//! kept-alive connection would mean following every body's framing. A later oversized head gets
//! actix-http's bare 431 (README, "Security").

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Longest first request head passed on, in bytes (actix-http's own limit is 32 KiB).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Longest request line (method, URI, version) passed on, in bytes.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Most header fields passed on (actix-http's own limit is 96).
pub const MAX_HEADERS: usize = 64;
/// How much of a refused request the guard reads and discards before it gives up on the client.
const DRAIN_BYTES: usize = 4 * 1024 * 1024;

/// Where the stand-in request for a refused head goes; `{kind}` is one of [`Refusal::slug`].
pub const REJECTED_PATH: &str = "/_refused-request-head";

/// Why a first request head was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The head, or the number of its header fields, is over the limit.
    HeaderTooLarge,
    /// The request line is over the limit.
    UriTooLong,
}

impl Refusal {
    /// The path segment naming it in the stand-in request.
    pub fn slug(self) -> &'static str {
        match self {
            Refusal::HeaderTooLarge => "request-header-too-large",
            Refusal::UriTooLong => "uri-too-long",
        }
    }

    /// The refusal a stand-in request's path segment names.
    pub fn from_slug(slug: &str) -> Option<Self> {
        [Refusal::HeaderTooLarge, Refusal::UriTooLong]
            .into_iter()
            .find(|r| r.slug() == slug)
    }

    fn stand_in(self) -> Vec<u8> {
        format!(
            "GET {REJECTED_PATH}/{} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            self.slug()
        )
        .into_bytes()
    }
}

/// What a complete or partial first head amounts to.
fn judge(head: &[u8], complete: bool) -> Option<Refusal> {
    let line_end = head.windows(2).position(|w| w == b"\r\n");
    let line_len = line_end.unwrap_or(head.len());
    if line_len > MAX_URI_BYTES {
        return Some(Refusal::UriTooLong);
    }
    // Lines after the request line; a complete head ends with an empty one.
    let lines = head.windows(2).filter(|w| *w == b"\r\n").count();
    let fields = lines.saturating_sub(if complete { 2 } else { 1 });
    if head.len() > MAX_HEAD_BYTES || fields > MAX_HEADERS {
        return Some(Refusal::HeaderTooLarge);
    }
    None
}

enum State {
    /// Collecting the first request head.
    Head(Vec<u8>),
    /// Handing these bytes to actix-http, then `then`.
    Replay {
        bytes: Vec<u8>,
        at: usize,
        then: After,
    },
    /// Out of the way.
    Pass,
    /// Discarding what a refused client still sends; this much more at most.
    Drain(usize),
}

enum After {
    Pass,
    Drain,
}

/// A connection whose first request head is checked before actix-http reads it.
pub struct HeadGuard<T> {
    io: T,
    state: State,
}

impl<T> HeadGuard<T> {
    pub fn new(io: T) -> Self {
        Self {
            io,
            state: State::Head(Vec::new()),
        }
    }
}

impl<T: AsyncRead + Unpin> HeadGuard<T> {
    /// Reads from the connection until the first head is judged; `Ready(Ok(()))` once the state
    /// has moved on (or the client closed, leaving what it sent to actix-http).
    fn poll_head(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let State::Head(head) = &mut self.state else {
                return Poll::Ready(Ok(()));
            };
            let mut chunk = [0u8; 4096];
            let mut buf = ReadBuf::new(&mut chunk);
            match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
            let read = buf.filled();
            if read.is_empty() {
                // The client stopped mid-head: actix-http decides what that is.
                let bytes = std::mem::take(head);
                self.state = State::Replay {
                    bytes,
                    at: 0,
                    then: After::Pass,
                };
                return Poll::Ready(Ok(()));
            }
            let searched_from = head.len().saturating_sub(3);
            head.extend_from_slice(read);
            let end = head[searched_from..]
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map(|p| searched_from + p + 4);
            let judged = match end {
                Some(end) => judge(&head[..end], true),
                None => judge(head, false),
            };
            if let Some(refusal) = judged {
                tracing::info!(refusal = refusal.slug(), "refused a request head");
                self.state = State::Replay {
                    bytes: refusal.stand_in(),
                    at: 0,
                    then: After::Drain,
                };
                return Poll::Ready(Ok(()));
            }
            if end.is_some() {
                let bytes = std::mem::take(head);
                self.state = State::Replay {
                    bytes,
                    at: 0,
                    then: After::Pass,
                };
                return Poll::Ready(Ok(()));
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for HeadGuard<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::Head(_) => match this.poll_head(cx) {
                    Poll::Ready(Ok(())) => continue,
                    other => return other,
                },
                State::Replay { bytes, at, then } => {
                    let n = buf.remaining().min(bytes.len() - *at);
                    buf.put_slice(&bytes[*at..*at + n]);
                    *at += n;
                    if *at == bytes.len() {
                        this.state = match then {
                            After::Pass => State::Pass,
                            After::Drain => State::Drain(DRAIN_BYTES),
                        };
                    }
                    return Poll::Ready(Ok(()));
                }
                State::Pass => return Pin::new(&mut this.io).poll_read(cx, buf),
                State::Drain(left) => {
                    // actix-http has the whole stand-in request; give it nothing more, but keep
                    // the client's bytes flowing so that it reads the answer.
                    if *left == 0 {
                        return Poll::Ready(Ok(()));
                    }
                    let mut chunk = [0u8; 8192];
                    let mut sink = ReadBuf::new(&mut chunk);
                    match Pin::new(&mut this.io).poll_read(cx, &mut sink) {
                        Poll::Ready(Ok(())) if sink.filled().is_empty() => {
                            return Poll::Ready(Ok(()));
                        }
                        Poll::Ready(Ok(())) => *left = left.saturating_sub(sink.filled().len()),
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => return Poll::Pending,
                    }
                }
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for HeadGuard<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// The handler of the stand-in requests ([`REJECTED_PATH`]): the refusal as problem+json.
pub async fn refused(
    kind: actix_web::web::Path<String>,
) -> Result<actix_web::HttpResponse, crate::error::ApiError> {
    use crate::error::ApiError;
    Err(match Refusal::from_slug(&kind) {
        Some(Refusal::HeaderTooLarge) => ApiError::RequestHeaderTooLarge(format!(
            "the request head is over {MAX_HEAD_BYTES} bytes or {MAX_HEADERS} header fields"
        )),
        Some(Refusal::UriTooLong) => {
            ApiError::UriTooLong(format!("the request line is over {MAX_URI_BYTES} bytes"))
        }
        None => ApiError::NotFound("no such resource".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_within_the_limits_pass_and_others_are_refused_by_kind() {
        let ok = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(judge(ok, true), None);
        let long_uri = format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_URI_BYTES));
        assert_eq!(judge(long_uri.as_bytes(), false), Some(Refusal::UriTooLong));
        let big = format!("GET / HTTP/1.1\r\nX-Big: {}", "a".repeat(MAX_HEAD_BYTES));
        assert_eq!(judge(big.as_bytes(), false), Some(Refusal::HeaderTooLarge));
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert_eq!(judge(many.as_bytes(), true), Some(Refusal::HeaderTooLarge));
        let enough: String = (0..MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        let enough = format!("GET / HTTP/1.1\r\n{enough}\r\n");
        assert_eq!(judge(enough.as_bytes(), true), None);
    }

    #[test]
    fn slugs_name_their_refusal() {
        for r in [Refusal::HeaderTooLarge, Refusal::UriTooLong] {
            assert_eq!(Refusal::from_slug(r.slug()), Some(r));
        }
        assert_eq!(Refusal::from_slug("other"), None);
    }
}
