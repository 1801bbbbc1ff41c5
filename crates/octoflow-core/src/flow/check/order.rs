//! Checking the order of a flow's steps: `depends`, cycles, and jump targets.

use std::collections::HashMap;

use super::Checker;
use super::steps::Head;
use crate::flow::model::Step;

/// `finally_step` and every `on_error_goto` name steps of the flow.
pub(super) fn check_targets(c: &mut Checker<'_>, steps: &[Head], finally_step: Option<&str>) {
    let known = |target: &str| steps.iter().any(|s| s.name == target);
    let unknown =
        |target: &str| match crate::flow::suggest(target, steps.iter().map(|s| s.name.as_str())) {
            Some(s) => format!("unknown step `{target}`; did you mean `{s}`?"),
            None => format!("unknown step `{target}`"),
        };
    if let Some(target) = finally_step.filter(|t| !known(t)) {
        c.problem("finally_step", unknown(target));
    }
    for (i, step) in steps.iter().enumerate() {
        if let Some(target) = step.on_error_goto.as_deref().filter(|t| !known(t)) {
            c.problem(format!("steps[{i}].on_error_goto"), unknown(target));
        }
    }
}

/// Jumps move through file order, so they cannot be mixed with `depends`.
pub(super) fn check_jumps_without_depends(c: &mut Checker<'_>, steps: &[Step]) {
    if !steps.iter().any(|s| s.depends.is_some()) {
        return;
    }
    for (i, step) in steps.iter().enumerate() {
        if step.kind == "goto" || step.on_error_goto.is_some() {
            c.problem(
                format!("steps[{i}]"),
                format!(
                    "step `{}` jumps, which a flow that uses `depends` cannot do",
                    step.name
                ),
            );
        }
    }
}

/// `depends` names known steps and the graph has no cycle.
pub(super) fn check_order(c: &mut Checker<'_>, steps: &[Head]) {
    let index: HashMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let mut deps: Vec<Vec<usize>> = Vec::with_capacity(steps.len());
    for (i, step) in steps.iter().enumerate() {
        let mut mine = Vec::new();
        match &step.depends {
            None => mine.extend(i.checked_sub(1)),
            Some(names) => {
                for (j, name) in names.iter().enumerate() {
                    let at = format!("steps[{i}].depends[{j}]");
                    match index.get(name.as_str()) {
                        Some(&k) if k == i => {
                            c.problem(at, format!("step `{}` depends on itself", step.name));
                        }
                        Some(&k) => mine.push(k),
                        None => {
                            let hint =
                                crate::flow::suggest(name, steps.iter().map(|s| s.name.as_str()))
                                    .map(|s| format!("; did you mean `{s}`?"))
                                    .unwrap_or_default();
                            let message = format!(
                                "step `{}` depends on unknown step `{name}`{hint}",
                                step.name
                            );
                            c.problem(at, message);
                        }
                    }
                }
            }
        }
        deps.push(mine);
    }
    if let Some(cycle) = find_cycle(&deps) {
        let names: Vec<&str> = cycle.iter().map(|&i| steps[i].name.as_str()).collect();
        let first = cycle[0];
        c.problem(
            format!("steps[{first}].depends"),
            format!("steps form a cycle: {}", names.join(" → ")),
        );
    }
}

/// A dependency cycle as step indexes, first repeated at the end.
fn find_cycle(deps: &[Vec<usize>]) -> Option<Vec<usize>> {
    // 0 = unvisited, 1 = on the stack, 2 = done.
    let mut state = vec![0u8; deps.len()];
    let mut stack = Vec::new();
    (0..deps.len()).find_map(|n| {
        if state[n] == 0 {
            visit(n, deps, &mut state, &mut stack)
        } else {
            None
        }
    })
}

/// Depth-first search from `n`; returns a cycle when it meets a node on the stack.
fn visit(
    n: usize,
    deps: &[Vec<usize>],
    state: &mut [u8],
    stack: &mut Vec<usize>,
) -> Option<Vec<usize>> {
    state[n] = 1;
    stack.push(n);
    for &d in &deps[n] {
        if state[d] == 1 {
            let start = stack.iter().position(|&s| s == d).unwrap_or(0);
            let mut cycle: Vec<usize> = stack[start..].to_vec();
            cycle.reverse();
            cycle.push(cycle[0]);
            return Some(cycle);
        }
        if state[d] == 0
            && let Some(c) = visit(d, deps, state, stack)
        {
            return Some(c);
        }
    }
    stack.pop();
    state[n] = 2;
    None
}
