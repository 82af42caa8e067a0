//! Guest standard output and error: kept in memory up to a cap, then written to the log
//! when the action ends. Writes past the cap are accepted and dropped, so a chatty
//! guest is never stopped by its own output.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// A capped in-memory output stream, shared between the WASI context and the host.
#[derive(Debug, Clone)]
pub(crate) struct CappedOutput {
    cap: usize,
    inner: Arc<Mutex<Captured>>,
}

#[derive(Debug, Default)]
struct Captured {
    bytes: Vec<u8>,
    dropped: u64,
}

impl CappedOutput {
    /// A stream that keeps at most `cap` bytes.
    pub(crate) fn new(cap: usize) -> Self {
        CappedOutput {
            cap,
            inner: Arc::default(),
        }
    }

    /// What was kept, and how many bytes were dropped past the cap.
    pub(crate) fn contents(&self) -> (Vec<u8>, u64) {
        match self.inner.lock() {
            Ok(c) => (c.bytes.clone(), c.dropped),
            Err(poisoned) => {
                let c = poisoned.into_inner();
                (c.bytes.clone(), c.dropped)
            }
        }
    }

    /// Appends what fits under the cap and counts the rest.
    pub(crate) fn push(&self, buf: &[u8]) {
        let mut c = match self.inner.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        let room = self.cap.saturating_sub(c.bytes.len());
        let kept = buf.len().min(room);
        c.bytes.extend_from_slice(&buf[..kept]);
        c.dropped += (buf.len() - kept) as u64;
    }
}

impl IsTerminal for CappedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for CappedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_up_to_the_cap_and_counts_the_rest() {
        let out = CappedOutput::new(4);
        out.push(b"abc");
        out.push(b"defg");
        assert_eq!(out.contents(), (b"abcd".to_vec(), 3));
    }
}
