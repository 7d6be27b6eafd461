//! Graceful shutdown: on SIGTERM (or `/shutdown`) the proxy stops
//! accepting, asks every open HTTP connection to finish (HTTP/1: close
//! after the current response; HTTP/2: GOAWAY, in-flight streams complete)
//! and exits once they have, or when the grace period runs out.
//!
//! Every accept loop and every connection holds a [`Watch`]; the
//! [`Drain`] side signals them and waits until the last one is dropped.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::watch;

/// The signalling side, held by `run`.
pub struct Drain(std::sync::Arc<watch::Sender<bool>>);

/// Held by accept loops and connections; cheap to clone.
#[derive(Clone)]
pub struct Watch(watch::Receiver<bool>);

pub fn channel() -> (Drain, Watch) {
    let (tx, rx) = watch::channel(false);
    (Drain(std::sync::Arc::new(tx)), Watch(rx))
}

impl Drain {
    /// Signals every watcher, then waits (at most `grace`) for all of them
    /// to be dropped; true when they all were.
    pub async fn drain(self, grace: Duration) -> bool {
        self.0.send_replace(true);
        tokio::time::timeout(grace, self.0.closed()).await.is_ok()
    }

    /// Watchers still held (accept loops and open connections).
    pub(crate) fn watchers(&self) -> usize {
        self.0.receiver_count()
    }

    /// Counts the watchers from elsewhere (the count only: it holds no
    /// watch open).
    pub(crate) fn watcher_counter(&self) -> impl Fn() -> usize + Send + 'static {
        let tx = self.0.clone();
        move || tx.receiver_count()
    }
}

impl Watch {
    /// Completes once draining has begun (never, if the [`Drain`] was
    /// dropped without draining).
    pub async fn signaled(&mut self) {
        if self.0.wait_for(|draining| *draining).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// A watch that is never signaled (for tests and embedders that stop
    /// by dropping the task).
    pub fn never() -> Self {
        channel().1
    }
}

/// Runs a hyper connection to its end; once draining begins, asks it to
/// shut down gracefully (`shutdown` calls its `graceful_shutdown`) and
/// waits for that.
pub(crate) async fn serve<C, T>(conn: C, mut watch: Watch, shutdown: impl FnOnce(Pin<&mut C>)) -> T
where
    C: Future<Output = T>,
{
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        done = conn.as_mut() => return done,
        () = watch.signaled() => {}
    }
    shutdown(conn.as_mut());
    conn.await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn drains_when_the_last_watch_is_dropped_or_the_grace_runs_out() {
        let (drain, watch) = channel();
        let mut held = watch.clone();
        drop(watch);
        let conn = tokio::spawn(async move {
            held.signaled().await;
            tokio::time::sleep(Duration::from_secs(2)).await;
        });
        assert!(drain.drain(Duration::from_secs(5)).await);
        assert!(conn.is_finished());

        let (drain, watch) = channel();
        let stuck = tokio::spawn(async move {
            let _held = watch;
            std::future::pending::<()>().await
        });
        let started = tokio::time::Instant::now();
        assert!(!drain.drain(Duration::from_secs(5)).await);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        stuck.abort();
    }
}
