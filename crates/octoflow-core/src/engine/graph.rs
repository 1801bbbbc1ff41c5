//! The state of a run's step graph: which steps wait, run or are done, what a finished step
//! unblocks, and how `goto` moves the run.

use crate::flow::Step;
use crate::store::StepStatus;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Slot {
    Pending,
    Running,
    /// Done; `blocks` when dependents must be skipped.
    Done {
        blocks: bool,
    },
}

/// Where a jump lands.
#[derive(Debug, PartialEq)]
pub(super) enum Jump {
    /// Continue at this step.
    To(usize),
    /// Skip everything left.
    End,
    /// The target does not exist.
    Unknown,
}

pub(super) struct Graph {
    deps: Vec<Vec<usize>>,
    slots: Vec<Slot>,
    /// Steps recorded `skipped` because of a failure or a halt (candidates for `finally_step`).
    pub(super) skipped: Vec<usize>,
    pub(super) jumps: u32,
}

impl Graph {
    pub(super) fn new(steps: &[Step]) -> Self {
        Self {
            deps: dependencies(steps),
            slots: vec![Slot::Pending; steps.len()],
            skipped: Vec::new(),
            jumps: 0,
        }
    }

    /// The next pending step whose dependencies are done, and whether one of them blocks it.
    pub(super) fn next_ready(&self) -> Option<(usize, bool)> {
        (0..self.slots.len()).find_map(|i| {
            let ready = self.slots[i] == Slot::Pending
                && self.deps[i]
                    .iter()
                    .all(|&d| matches!(self.slots[d], Slot::Done { .. }));
            let blocked = self.deps[i]
                .iter()
                .any(|&d| matches!(self.slots[d], Slot::Done { blocks: true }));
            ready.then_some((i, blocked))
        })
    }

    pub(super) fn start(&mut self, i: usize) {
        self.slots[i] = Slot::Running;
    }

    pub(super) fn skip(&mut self, i: usize, blocks: bool) {
        self.slots[i] = Slot::Done { blocks };
        if blocks {
            self.skipped.push(i);
        }
    }

    pub(super) fn finish(&mut self, i: usize, status: StepStatus, blocks: bool) {
        let blocks = blocks
            && !matches!(
                status,
                StepStatus::Succeeded | StepStatus::Ignored | StepStatus::Skipped
            );
        self.slots[i] = Slot::Done { blocks };
    }

    /// Resolves a jump target by name.
    pub(super) fn target(steps: &[Step], target: &str) -> Jump {
        match target {
            "__start__" => Jump::To(0),
            "__end__" => Jump::End,
            name => steps
                .iter()
                .position(|s| s.name == name)
                .map_or(Jump::Unknown, Jump::To),
        }
    }

    /// Moves the run from step `from` to step `to`: steps from `to` on wait again; steps
    /// jumped over are returned, to be recorded `skipped`.
    pub(super) fn jump(&mut self, from: usize, to: usize) -> Vec<usize> {
        self.jumps += 1;
        if to <= from {
            for slot in &mut self.slots[to..] {
                if matches!(slot, Slot::Done { .. }) {
                    *slot = Slot::Pending;
                }
            }
            self.skipped.retain(|&s| s < to);
            Vec::new()
        } else {
            let over: Vec<usize> = (from + 1..to)
                .filter(|&j| self.slots[j] == Slot::Pending)
                .collect();
            for &j in &over {
                self.slots[j] = Slot::Done { blocks: false };
            }
            over
        }
    }
}

/// Each step's dependencies: its `depends`, else the step before it.
fn dependencies(steps: &[Step]) -> Vec<Vec<usize>> {
    steps
        .iter()
        .enumerate()
        .map(|(i, step)| match &step.depends {
            None => i.checked_sub(1).into_iter().collect(),
            Some(names) => names
                .iter()
                .filter_map(|n| steps.iter().position(|s| &s.name == n))
                .collect(),
        })
        .collect()
}
