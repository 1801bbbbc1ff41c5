//! The workers of one node: claim queued runs with a lease, run them (the engine renews
//! their leases), hand back what an ended node left behind, and drain on shutdown.
//!
//! One dispatcher claims as many runs as there are free slots, then sleeps until the store
//! says work may have arrived or a slot frees. Runs a waiting caller started here (see
//! `slots`) arrive with their slot already taken, and run beside the claimed ones.
//!
//! Shutdown: stop claiming, let running runs go on for `shutdown_grace`, then cancel them and
//! wait until each has recorded its end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::FutureExt;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::Service;
use super::slots::HandOff;
use super::step_metrics::StepMetrics;
use crate::engine::{Observer, Observers};
use crate::store::{Run, RunStatus, StoreError};
use crate::tracker::TrackerWriter;

/// How long a dispatcher sleeps when the store sends no wake-up (a safety net only).
const IDLE_WAIT: Duration = Duration::from_secs(5);
/// How long the dispatcher waits for more slots to free before a claim of fewer than half.
const CLAIM_GATHER: Duration = Duration::from_millis(2);
/// Pause after a store error before claiming again.
const ERROR_PAUSE: Duration = Duration::from_secs(1);

pub(super) struct Workers {
    service: Service,
    tasks: JoinSet<()>,
}

impl Workers {
    pub(super) fn new(service: Service) -> Self {
        Self {
            service,
            tasks: JoinSet::new(),
        }
    }

    pub(super) async fn run(mut self, shutdown: CancellationToken) {
        let config = self.service.inner.config.clone();
        let lease = self.service.inner.engine.config().lease;
        let slots = self.service.inner.slots.clone();
        let batch = (config.workers / 2).max(1);
        let mut gathered = false;
        let mut started_here = slots.open_hand_off();
        let sweeper = tokio::spawn(sweep_expired(self.service.clone(), shutdown.clone()));
        let node = self.service.inner.engine.config().node.clone();
        tracing::info!(node = %node, workers = config.workers, "Workers started.");
        // Whether the queue may hold runs for this node: true until a claim comes back short
        // of what it asked for, then again once the store says work arrived (or after
        // `IDLE_WAIT`). A run ending or started here is no reason to look.
        let mut look = true;
        while !shutdown.is_cancelled() {
            while self.tasks.try_join_next().is_some() {}
            if !look {
                tokio::select! {
                    woken = self.service.store().wait_for_work(IDLE_WAIT) => {
                        look = true;
                        if let Err(error) = woken {
                            tracing::warn!(error = %crate::error::chain(&error), "Cannot wait for work; looking again shortly.");
                            tokio::time::sleep(ERROR_PAUSE).await;
                        }
                    }
                    Some(_) = self.tasks.join_next(), if !self.tasks.is_empty() => {}
                    Some(started) = started_here.recv() => self.spawn(started),
                    () = shutdown.cancelled() => break,
                }
                continue;
            }
            let mut free = slots.take_up_to(usize::MAX);
            if free.is_empty() {
                tokio::select! {
                    Some(_) = self.tasks.join_next(), if !self.tasks.is_empty() => {}
                    () = slots.freed() => {}
                    Some(started) = started_here.recv() => self.spawn(started),
                    () = shutdown.cancelled() => break,
                }
                continue;
            }
            // While runs are running and few slots are free, gather for a moment before
            // claiming: one claim (a store write) then serves several quick runs, and a slow
            // run delays the next claim by no more than `CLAIM_GATHER`.
            if free.len() < batch && !self.tasks.is_empty() && !gathered {
                gathered = true;
                drop(free);
                tokio::select! {
                    _ = self.tasks.join_next() => {}
                    () = tokio::time::sleep(CLAIM_GATHER) => {}
                    Some(started) = started_here.recv() => self.spawn(started),
                    () = shutdown.cancelled() => break,
                }
                continue;
            }
            gathered = false;
            let asked = Instant::now();
            let claimed = self
                .service
                .store()
                .claim(&node, u32::try_from(free.len()).unwrap_or(u32::MAX), lease)
                .await;
            match claimed {
                Ok(runs) => {
                    look = runs.len() == free.len();
                    if !runs.is_empty() {
                        metrics::histogram!("octoflow_claim_seconds")
                            .record(asked.elapsed().as_secs_f64());
                    }
                    // A claim returns at most as many runs as slots were taken for it.
                    for (run, slot) in runs.into_iter().zip(free.drain(..)) {
                        self.spawn(HandOff {
                            run,
                            slot,
                            recorded: true,
                        });
                    }
                }
                Err(error) => {
                    drop(free);
                    tracing::error!(error = %crate::error::chain(&error), "Cannot claim queued runs.");
                    tokio::select! {
                        () = tokio::time::sleep(ERROR_PAUSE) => {}
                        () = shutdown.cancelled() => break,
                    }
                }
            }
        }
        slots.close_hand_off();
        // Runs started here that were not picked up yet still run: they are recorded
        // running on this node.
        while let Ok(started) = started_here.try_recv() {
            self.spawn(started);
        }
        sweeper.abort();
        self.drain(config.shutdown_grace).await;
        tracing::info!(node = %node, "Workers stopped.");
    }

    fn spawn(&mut self, started: HandOff) {
        let HandOff {
            run,
            slot,
            recorded,
        } = started;
        let service = self.service.clone();
        let token = CancellationToken::new();
        {
            let mut local = service
                .inner
                .local
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            local.insert(run.id, token.clone());
        }
        service.inner.feed.open(run.id);
        self.tasks.spawn(async move {
            let id = run.id;
            let ended = execute(&service, run, recorded, token).await;
            service
                .inner
                .local
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&id);
            service.inner.feed.close(&id, ended);
            drop(slot);
        });
    }

    /// Lets running runs go on for `grace`, then cancels them and waits for their records.
    async fn drain(&mut self, grace: Duration) {
        if self.tasks.is_empty() {
            return;
        }
        tracing::info!(runs = self.tasks.len(), grace = ?grace, "Waiting for running runs to end.");
        let all_done = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, all_done).await.is_ok() {
            return;
        }
        let tokens: Vec<CancellationToken> = self
            .service
            .inner
            .local
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        tracing::warn!(
            runs = tokens.len(),
            "Cancelling the runs still running at shutdown."
        );
        for token in tokens {
            token.cancel();
        }
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Ends a claimed run that cannot run, `failed` with `message`, under its fence; a run
/// started here and not `recorded` yet is recorded first (it may have been meanwhile).
async fn fail_claimed(service: &Service, run: &Run, recorded: bool, message: &str) {
    let engine = &service.inner.engine;
    if !recorded
        && let Err(error) = service
            .store()
            .insert_owned(run, engine.config().lease)
            .await
        && !matches!(error, StoreError::Conflict { .. })
    {
        tracing::error!(run_id = %run.id, error = %crate::error::chain(&error), "Cannot record a run.");
    }
    match engine.end_failed(run, message).await {
        Ok(()) => service.run_ended_by_id(run.id),
        Err(error) => {
            tracing::error!(run_id = %run.id, error = %crate::error::chain(&error), "Cannot record a run's end.");
        }
    }
}

/// Runs one claimed run (or one started here, `recorded` or not yet) to its end (the engine
/// renews its lease meanwhile) and returns its final record, as stored; `None` when it
/// ended otherwise. A panic in the engine ends only this run, `failed`.
async fn execute(
    service: &Service,
    run: Run,
    recorded: bool,
    token: CancellationToken,
) -> Option<Run> {
    let inner = &service.inner;
    let id = run.id;
    let flow = match inner.catalog.by_name(&run.flow).await {
        Ok(flow) => flow,
        Err(reason) => {
            let message = format!("cannot run flow `{}`: {reason}", run.flow);
            fail_claimed(service, &run, recorded, &message).await;
            return None;
        }
    };
    let mut observers: Vec<Arc<dyn Observer>> = vec![
        Arc::new(inner.feed.observer(id)),
        Arc::new(StepMetrics::new(&flow.name)),
    ];
    if let Some(dir) = &inner.config.tracker_dir {
        observers.push(TrackerWriter::new(dir.clone(), &flow));
    }
    let observer: Arc<dyn Observer> = Arc::new(Observers(observers));
    let started = Instant::now();
    // The run as claimed, kept to end it should the engine panic; a deferred run shares it
    // with the engine as the record to write.
    let claimed = Arc::new(run);
    let (engine, observer) = (&inner.engine, Some(observer));
    let execution = async {
        if recorded {
            let run = Run::clone(&claimed);
            engine.execute(flow, run, token.clone(), observer).await
        } else {
            engine
                .execute_deferred(flow, claimed.clone(), token.clone(), observer)
                .await
        }
    };
    let result = std::panic::AssertUnwindSafe(execution).catch_unwind().await;
    inner.engine.callback_hub().forget(&id);
    match result {
        Ok(Ok(run)) => {
            service.run_ended(&run);
            metrics::counter!("octoflow_runs_finished_total", "flow" => run.flow.clone(), "status" => run.status.as_str())
                .increment(1);
            metrics::histogram!("octoflow_run_seconds", "flow" => run.flow.clone())
                .record(started.elapsed().as_secs_f64());
            return Some(run);
        }
        // The engine logged it: the run is another executor's now, or ended elsewhere.
        Ok(Err(StoreError::Fenced { .. })) => {}
        Ok(Err(error)) => {
            tracing::error!(run_id = %id, error = %crate::error::chain(&error), "Cannot record a run.");
        }
        Err(panic) => {
            token.cancel();
            let message = format!(
                "internal error: the engine panicked: {}",
                crate::error::panic_message(&*panic)
            );
            tracing::error!(run_id = %id, error = %message, "Run ended by a panic.");
            fail_claimed(service, &claimed, recorded, &message).await;
            metrics::counter!("octoflow_runs_finished_total", "flow" => claimed.flow.clone(), "status" => RunStatus::Failed.as_str())
                .increment(1);
        }
    }
    None
}

/// Every lease period, hands back the runs whose node stopped renewing their lease (it
/// died): re-queued when their flow says `on_interrupt: retry`, else ended `interrupted`.
async fn sweep_expired(service: Service, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(service.inner.engine.config().lease);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let expired = match service.store().expired_leases(Utc::now()).await {
            Ok(runs) => runs,
            Err(error) => {
                tracing::warn!(error = %crate::error::chain(&error), "Cannot look for expired leases.");
                continue;
            }
        };
        for run in expired {
            if let Err(error) = hand_back(&service, &run).await {
                tracing::warn!(run_id = %run.id, error = %crate::error::chain(&error), "Cannot hand back an interrupted run.");
            }
        }
    }
}

/// Re-queues or ends a run its node left behind ([`crate::engine::hand_back`]); an ended
/// one is told to the flow triggers.
pub(super) async fn hand_back(service: &Service, run: &Run) -> Result<(), StoreError> {
    let handed = crate::engine::hand_back(
        service.store().as_ref(),
        service.inner.catalog.as_ref(),
        run,
    )
    .await?;
    if handed == crate::engine::HandedBack::Interrupted {
        service.run_ended_by_id(run.id);
    }
    Ok(())
}
