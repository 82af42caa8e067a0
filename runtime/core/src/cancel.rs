//! Cancellation that reaches the running action.
//!
//! One [`CancelToken`] per deployment. The engine checks it between actions; hosts pass it
//! into the running action (the WASM host's `is-cancelled` import and epoch interruption,
//! the native host's worker, a program run on a handler's behalf), so a cancel stops the
//! action that is running, not just the next one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// A cloneable, shareable cancel flag with an async wait.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let token = handrail::CancelToken::new();
/// let waiter = token.clone();
/// token.cancel();
/// waiter.cancelled().await; // returns at once: the token is already cancelled
/// assert!(waiter.is_cancelled());
/// # });
/// ```
#[derive(Debug, Clone, Default)]
pub struct CancelToken {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    flag: AtomicBool,
    notify: Notify,
}

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels: every clone sees it, every waiter wakes.
    pub fn cancel(&self) {
        self.inner.flag.store(true, Ordering::SeqCst);
        self.inner.notify.notify_waiters();
    }

    /// True once [`cancel`](Self::cancel) has been called on any clone.
    pub fn is_cancelled(&self) -> bool {
        self.inner.flag.load(Ordering::SeqCst)
    }

    /// Resolves once the token is cancelled.
    pub async fn cancelled(&self) {
        loop {
            let notified = self.inner.notify.notified();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}
