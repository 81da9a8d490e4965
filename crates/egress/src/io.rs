//! Byte counting on streams, and the per-sandbox byte budget.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes through the proxy over the sandbox's life, both directions.
#[derive(Debug)]
pub struct Budget {
    used: AtomicU64,
    max: Option<u64>,
    tripped: AtomicBool,
}

impl Budget {
    /// A budget of `max` bytes (`None`: unlimited).
    pub fn new(max: Option<u64>) -> Budget {
        Budget { used: AtomicU64::new(0), max, tripped: AtomicBool::new(false) }
    }

    /// Count `n` bytes; `false` once the total is past the limit.
    pub(crate) fn take(&self, n: usize) -> bool {
        let total = self.used.fetch_add(n as u64, Ordering::Relaxed).saturating_add(n as u64);
        match self.max {
            Some(max) if total > max => {
                self.tripped.store(true, Ordering::Relaxed);
                false
            }
            _ => true,
        }
    }

    /// Bytes left before the limit (`None`: unlimited).
    pub(crate) fn remaining(&self) -> Option<u64> {
        self.max.map(|max| max.saturating_sub(self.used.load(Ordering::Relaxed)))
    }

    fn exhausted(&self) -> bool {
        self.max.is_some_and(|max| self.used.load(Ordering::Relaxed) > max)
    }

    /// Whether the limit was hit (once true, stays true).
    pub fn tripped(&self) -> bool {
        self.tripped.load(Ordering::Relaxed)
    }
}

/// Read and written byte counters of one stream.
#[derive(Debug, Default)]
pub struct Counters {
    /// Bytes read from the stream.
    pub read: AtomicU64,
    /// Bytes written to the stream.
    pub written: AtomicU64,
}

impl Counters {
    /// (read, written) so far.
    pub fn get(&self) -> (u64, u64) {
        (self.read.load(Ordering::Relaxed), self.written.load(Ordering::Relaxed))
    }
}

fn over_budget() -> io::Error {
    io::Error::other("clawcage: [network] max_bytes reached")
}

/// A stream that counts its bytes and, with a budget, fails once it is spent.
pub struct Counted<T> {
    inner: T,
    counters: Arc<Counters>,
    budget: Option<Arc<Budget>>,
}

impl<T> Counted<T> {
    /// Wrap `inner`.
    pub fn new(inner: T, counters: Arc<Counters>, budget: Option<Arc<Budget>>) -> Counted<T> {
        Counted { inner, counters, budget }
    }

    /// The stream and its budget back (for a tunnel that counts by itself).
    pub fn into_parts(self) -> (T, Option<Arc<Budget>>) {
        (self.inner, self.budget)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.budget.as_ref().is_some_and(|b| b.exhausted()) {
            return Poll::Ready(Err(over_budget()));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        let n = buf.filled().len() - before;
        self.counters.read.fetch_add(n as u64, Ordering::Relaxed);
        if let Some(b) = &self.budget {
            if !b.take(n) {
                return Poll::Ready(Err(over_budget()));
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        if self.budget.as_ref().is_some_and(|b| b.exhausted()) {
            return Poll::Ready(Err(over_budget()));
        }
        let n = ready!(Pin::new(&mut self.inner).poll_write(cx, data))?;
        self.counters.written.fetch_add(n as u64, Ordering::Relaxed);
        if let Some(b) = &self.budget {
            if !b.take(n) {
                return Poll::Ready(Err(over_budget()));
            }
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
