//! The deployment's event channel, bounded whatever a handler does.
//!
//! Discrete events (a step or action started or finished, a suspension) are as many as
//! the plan has steps and actions. Progress is what a handler reports as often as it
//! likes, so it is coalesced: between two discrete events, the channel holds one
//! progress item whose report each new report replaces (latest wins); the receiver
//! reads the report when it reaches the item. Events keep their order, so a receiver
//! sees an action's progress before that action's end. However fast a handler reports
//! and however slowly the receiver reads, the channel holds no more than twice the
//! plan's events.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::mpsc;

use super::Event;

/// One progress report, `(step, done, total)`, that later reports replace until the
/// receiver takes it (`None` once taken).
type Report = Arc<Mutex<Option<(usize, u64, u64)>>>;

/// What the channel carries.
enum Item {
    Event(Event),
    Progress(Report),
}

/// The engine's end of the channel.
#[derive(Clone)]
pub(crate) struct EventSender {
    tx: mpsc::UnboundedSender<Item>,
    /// The progress item queued since the last discrete event, which new reports replace.
    open: Arc<Mutex<Option<Report>>>,
}

/// The deployment's end of the channel.
pub(crate) struct EventReceiver {
    rx: mpsc::UnboundedReceiver<Item>,
}

/// A new channel.
pub(crate) fn channel() -> (EventSender, EventReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    (
        EventSender {
            tx,
            open: Arc::default(),
        },
        EventReceiver { rx },
    )
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl EventSender {
    /// Sends a discrete event; later progress goes into a new item after it.
    pub(crate) fn send(&self, event: Event) {
        let mut open = lock(&self.open);
        *open = None;
        let _ = self.tx.send(Item::Event(event));
    }

    /// Reports progress: replaces the report of the item queued since the last discrete
    /// event while the receiver has not taken it, or queues a new one.
    pub(crate) fn progress(&self, step: usize, done: u64, total: u64) {
        let mut open = lock(&self.open);
        if let Some(report) = &*open {
            let mut waiting = lock(report);
            if waiting.is_some() {
                *waiting = Some((step, done, total));
                return;
            }
        }
        let report = Report::new(Mutex::new(Some((step, done, total))));
        let _ = self.tx.send(Item::Progress(report.clone()));
        *open = Some(report);
    }
}

impl EventReceiver {
    /// The next event; `None` once the sender is gone and everything was read.
    pub(crate) async fn recv(&mut self) -> Option<Event> {
        loop {
            match self.rx.recv().await? {
                Item::Event(event) => return Some(event),
                Item::Progress(report) => {
                    if let Some((step, done, total)) = lock(&report).take() {
                        return Some(Event::Progress { step, done, total });
                    }
                }
            }
        }
    }

    /// A channel whose sender is already gone.
    pub(crate) fn closed() -> EventReceiver {
        channel().1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::StepOutcome;
    use handrail_contract::Action;

    #[tokio::test]
    async fn a_million_progress_reports_wait_as_one_and_come_before_the_actions_end() {
        let (tx, mut rx) = channel();
        let started = Event::ActionStarted {
            step: 0,
            action: Action::Install,
        };
        let finished = Event::StepFinished {
            step: 0,
            outcome: StepOutcome::Succeeded,
        };
        tx.send(started.clone());
        for done in 0..1_000_000 {
            tx.progress(0, done, 1_000_000);
        }
        assert_eq!(rx.rx.len(), 2, "one start, one progress item");
        tx.send(finished.clone());
        tx.progress(1, 4, 10);
        let progress = |step, done, total| Some(Event::Progress { step, done, total });
        assert_eq!(rx.recv().await, Some(started));
        assert_eq!(rx.recv().await, progress(0, 999_999, 1_000_000));
        assert_eq!(rx.recv().await, Some(finished));
        assert_eq!(rx.recv().await, progress(1, 4, 10));
        // A report the receiver took is not replaced: the next one is an item of its own.
        tx.progress(1, 5, 10);
        tx.progress(1, 6, 10);
        drop(tx);
        assert_eq!(rx.recv().await, progress(1, 6, 10));
        assert_eq!(rx.recv().await, None);
    }
}
