//! Request bodies the proxy sees in clear (plain HTTP, and terminated HTTPS
//! to secret-bound hosts), searched for secret placeholders.
//!
//! A body of known length up to [`BUFFER_MAX`] is read whole before anything
//! goes upstream ([`SecretTable::apply_body`](crate::SecretTable::apply_body)):
//! blocked, or with the bound secrets' values put in. Any other body streams
//! through [`Scanned`], which holds back the last `longest placeholder - 1`
//! bytes of what it has seen, so that no placeholder split across chunks
//! leaves whole: at the first foreign placeholder the body fails (the
//! upstream request is cut off incomplete) and `on_block` is told its name.
//! Streamed bodies toward a bound host keep their placeholders (their
//! length is fixed by then); only foreign ones are looked for.

use bytes::Bytes;
use http::HeaderMap;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

/// Bodies of a known length up to this are read whole and can have values put in.
pub const BUFFER_MAX: u64 = 1 << 20;

/// The error type of bodies the proxy sends on.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Called once, with the secret's name, when a foreign placeholder is found.
pub type OnBlock = Box<dyn FnOnce(String) + Send + Sync>;

/// A streaming body searched for foreign placeholders.
pub struct Scanned<B> {
    inner: B,
    foreign: Vec<(String, Vec<u8>)>,
    keep: usize,
    held: Vec<u8>,
    trailers: Option<HeaderMap>,
    ended: bool,
    on_block: Option<OnBlock>,
}

impl<B> Scanned<B> {
    /// Search `inner` for any of `foreign` (name, placeholder).
    pub fn new(inner: B, foreign: Vec<(String, Vec<u8>)>, on_block: OnBlock) -> Scanned<B> {
        let keep = foreign.iter().map(|(_, p)| p.len()).max().unwrap_or(1).saturating_sub(1);
        Scanned { inner, foreign, keep, held: Vec::new(), trailers: None, ended: false, on_block: Some(on_block) }
    }

    fn blocked(&mut self, name: String) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(f) = self.on_block.take() {
            f(name.clone());
        }
        self.held.clear();
        self.ended = true;
        Poll::Ready(Some(Err(format!("clawcage egress: the body carries the placeholder of secret {name:?}").into())))
    }

    fn found(&self, data: &[u8]) -> Option<String> {
        self.foreign.iter().find(|(_, p)| crate::secrets::find(data, p).is_some()).map(|(n, _)| n.clone())
    }
}

impl<B> HttpBody for Scanned<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if this.ended {
                if !this.held.is_empty() {
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from(std::mem::take(&mut this.held))))));
                }
                return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
            }
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                None => this.ended = true,
                Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        this.held.extend_from_slice(&data);
                        if let Some(name) = this.found(&this.held) {
                            return this.blocked(name);
                        }
                        if this.held.len() > this.keep {
                            let rest = this.held.split_off(this.held.len() - this.keep);
                            let out = std::mem::replace(&mut this.held, rest);
                            return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                        }
                    }
                    Err(frame) => {
                        if let Ok(t) = frame.into_trailers() {
                            let values: Vec<u8> = t.values().flat_map(|v| v.as_bytes().iter().copied()).collect();
                            if let Some(name) = this.found(&values) {
                                return this.blocked(name);
                            }
                            this.trailers = Some(t);
                        }
                        this.ended = true;
                    }
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended && self.held.is_empty() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        // The same bytes, only held back for a while.
        if self.ended {
            SizeHint::with_exact(self.held.len() as u64)
        } else {
            self.inner.size_hint()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use http_body_util::BodyExt;
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    /// A body that yields the given chunks.
    struct Chunks(VecDeque<Bytes>);

    impl HttpBody for Chunks {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
        }
    }

    /// (bytes that went on, whether it failed, the secret reported).
    fn scan(parts: &[&[u8]]) -> (Vec<u8>, bool, Option<String>) {
        let seen = Arc::new(Mutex::new(None));
        let s = seen.clone();
        let foreign = vec![("gh".to_string(), b"clawcage-secret-gh-0123".to_vec())];
        let inner = Chunks(parts.iter().map(|p| Bytes::copy_from_slice(p)).collect());
        let mut body = Scanned::new(inner, foreign, Box::new(move |n| *s.lock().unwrap() = Some(n)));
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut out = Vec::new();
        let failed = rt.block_on(async {
            while let Some(f) = body.frame().await {
                match f {
                    Ok(f) => out.extend_from_slice(f.data_ref().unwrap()),
                    Err(_) => return true,
                }
            }
            false
        });
        let blocked = seen.lock().unwrap().clone();
        (out, failed, blocked)
    }

    #[test]
    fn a_placeholder_split_across_chunks_never_leaves_whole() {
        let (out, failed, blocked) = scan(&[b"a=1&t=clawcage-se", b"cret-gh-01", b"23&b=2"]);
        assert!(failed);
        assert_eq!(blocked.as_deref(), Some("gh"));
        assert!(!out.windows(23).any(|w| w == b"clawcage-secret-gh-0123"), "{}", String::from_utf8_lossy(&out));
        // One byte at a time, too.
        let text = b"xx clawcage-secret-gh-0123 yy";
        let parts: Vec<&[u8]> = text.chunks(1).collect();
        let (out, failed, blocked) = scan(&parts);
        assert!(failed && blocked.is_some());
        assert!(out.len() < 3 + 23, "sent {:?}", String::from_utf8_lossy(&out));
    }

    #[test]
    fn clean_bodies_pass_unchanged_in_order() {
        let (out, failed, blocked) = scan(&[b"clawcage-secret-gh-", b"9999 and more", b"", b" end"]);
        assert_eq!(out, b"clawcage-secret-gh-9999 and more end");
        assert!(!failed);
        assert_eq!(blocked, None);
    }
}
