//! The threads jq programs are compiled and run on: off the async runtime, with stacks large
//! enough for any program within [`super::limits`] (jaq's parser, compiler and evaluator
//! recurse once per nesting level and per term of a chain).
//!
//! One pool serves the process, as tokio's blocking pool does: threads are made when every
//! one is busy, up to [`MAX_THREADS`], and end after [`IDLE`] without work. A program that
//! never ends keeps its thread (jaq cannot be interrupted); its step has already ended
//! `timed_out` or `cancelled`, and the thread is free again if the program ever ends. Once
//! [`MAX_THREADS`] are stuck so, new programs wait for one.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Condvar, Mutex, OnceLock, PoisonError};
use std::time::Duration;

/// Stack of each thread: reserved address space, touched only as deep as a program goes.
const STACK: usize = 256 << 20;
/// Most threads at once.
pub(super) const MAX_THREADS: usize = 64;
/// An idle thread ends after this long.
const IDLE: Duration = Duration::from_secs(30);

type Job = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct Pool {
    state: Mutex<State>,
    work: Condvar,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    threads: usize,
    idle: usize,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(Pool::default)
}

impl Pool {
    fn submit(&'static self, job: Job) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.queue.push_back(job);
        if state.idle > 0 {
            // Woken after the lock is let go, so the thread does not wake into a held lock.
            drop(state);
            self.work.notify_one();
        } else if state.threads < MAX_THREADS {
            let spawned = std::thread::Builder::new()
                .name("octoflow-jq".to_owned())
                .stack_size(STACK)
                .spawn(move || self.serve());
            match spawned {
                Ok(_) => state.threads += 1,
                Err(error) => {
                    tracing::warn!(error = %error, "Cannot start a jq thread; the job waits for a busy one.");
                }
            }
        }
    }

    /// One thread: runs jobs until none came for [`IDLE`].
    fn serve(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(job) = state.queue.pop_front() {
                drop(state);
                // A panic is the job's: its sender is dropped, its caller hears of it.
                let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
                state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            state.idle += 1;
            let (next, waited) = self
                .work
                .wait_timeout(state, IDLE)
                .unwrap_or_else(PoisonError::into_inner);
            state = next;
            state.idle -= 1;
            if waited.timed_out() && state.queue.is_empty() {
                state.threads -= 1;
                return;
            }
        }
    }
}

/// Why a job gave no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Panicked;

/// Runs `f` on a jq thread and waits for it (a quick job: a compile).
pub(super) fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Panicked> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    pool().submit(Box::new(move || {
        let _ = tx.send(f());
    }));
    rx.recv().map_err(|_| Panicked)
}

/// Runs `f` on a jq thread; the answer, or `Panicked`. Dropping the future abandons the job
/// (its thread goes on until `f` returns).
pub(super) async fn run<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Panicked> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    pool().submit(Box::new(move || {
        let _ = tx.send(f());
    }));
    rx.await.map_err(|_| Panicked)
}
