//! Depth-first search over every schedule within the bounds, with state deduplication.
//!
//! A state already explored with at least as many moves left is not explored again
//! (fingerprints hash every core's full state, the durable logs, the pending persists,
//! the in-flight message set, the budgets and what clients saw). Syncs forced by pending
//! records cost no depth. At every leaf that has nothing left to do or no depth left,
//! optionally, a fair run with a reliable network checks liveness.

use super::scenario::{Budget, Scenario};
use super::world::{Step, World};
use super::{Observe, Subject};
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;

/// How far to search.
pub(crate) struct Bounds {
    /// Moves per schedule (forced syncs excluded).
    pub(crate) depth: usize,
    /// Drops, crashes and timer moves per schedule.
    pub(crate) budget: Budget,
    /// Run every leaf to quiescence and check liveness.
    pub(crate) liveness: bool,
}

/// What a search covered.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// Distinct states reached.
    pub(crate) states: usize,
    /// Moves made (states reached, counted with repeats).
    pub(crate) transitions: u64,
    /// Schedules explored to their end: leaves of the search tree.
    pub(crate) schedules: u64,
    /// Leaves where some replica started a recovery.
    pub(crate) recovering_schedules: u64,
    /// Leaves where two replicas started recovering the same instance.
    pub(crate) competing_schedules: u64,
    /// Leaves driven to quiescence for the liveness check.
    pub(crate) liveness_runs: u64,
}

/// A schedule that broke an invariant.
pub(crate) struct Counterexample {
    pub(crate) trace: Vec<String>,
    pub(crate) violation: String,
}

impl fmt::Display for Counterexample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.violation)?;
        writeln!(f, "schedule ({} moves):", self.trace.len())?;
        for (i, step) in self.trace.iter().enumerate() {
            writeln!(f, "  {i:>3}. {step}")?;
        }
        Ok(())
    }
}

/// Steps of a fair run before it counts as not converging.
const FAIR_RUN_STEPS: usize = 3_000;

/// Explore every schedule of `scenario` within `bounds`; stops at the first violation.
pub(crate) fn explore<P: Subject>(
    scenario: &Scenario<P>,
    bounds: &Bounds,
) -> (Report, Option<Counterexample>)
where
    P::Message: Hash,
    P::Record: Hash,
{
    let mut search = Search {
        scenario,
        bounds,
        visited: HashMap::new(),
        report: Report::default(),
        path: Vec::new(),
    };
    let start = World::new(scenario, bounds.budget);
    let outcome = search.visit(&start, bounds.depth).err();
    search.report.states = search.visited.len();
    (search.report, outcome)
}

struct Search<'a, P: Subject> {
    scenario: &'a Scenario<P>,
    bounds: &'a Bounds,
    /// Fingerprint → most moves left with which the state was explored.
    visited: HashMap<u64, usize>,
    report: Report,
    /// Moves from the start to the state being explored.
    path: Vec<Step>,
}

impl<P: Subject> Search<'_, P>
where
    P::Message: Hash,
    P::Record: Hash,
{
    fn visit(&mut self, world: &World<P>, moves_left: usize) -> Result<(), Counterexample> {
        let fingerprint = world.fingerprint();
        if self
            .visited
            .get(&fingerprint)
            .is_some_and(|&explored| explored >= moves_left)
        {
            return Ok(());
        }
        self.visited.insert(fingerprint, moves_left);
        let steps = world.steps(self.scenario);
        let forced = matches!(steps.first(), Some(Step::Sync(_)));
        if steps.is_empty() || (moves_left == 0 && !forced) {
            return self.leaf(world);
        }
        for step in steps {
            let cost = usize::from(!matches!(step, Step::Sync(_)));
            if cost > moves_left {
                continue;
            }
            let mut next = world.clone();
            self.path.push(step);
            self.report.transitions += 1;
            if let Err(violation) = next.apply(self.scenario, step) {
                return Err(self.counterexample(violation, None));
            }
            self.visit(&next, moves_left - cost)?;
            self.path.pop();
        }
        Ok(())
    }

    fn leaf(&mut self, world: &World<P>) -> Result<(), Counterexample> {
        self.report.schedules += 1;
        if !world.recoverers.is_empty() {
            self.report.recovering_schedules += 1;
        }
        if world.recoverers.values().any(|nodes| nodes.len() > 1) {
            self.report.competing_schedules += 1;
        }
        if !self.bounds.liveness {
            return Ok(());
        }
        self.report.liveness_runs += 1;
        let mut fair = world.clone();
        let outcome = fair
            .run_fairly(self.scenario, FAIR_RUN_STEPS)
            .and_then(|quiet| {
                if quiet {
                    Ok(())
                } else {
                    Err(format!(
                        "liveness: still busy after {FAIR_RUN_STEPS} fair steps"
                    ))
                }
            })
            .and_then(|()| {
                fair.observations
                    .check_outcome(self.scenario, &fair.cores(), &|i| fair.was_submitted(i))
            });
        match outcome {
            Ok(()) => Ok(()),
            Err(violation) => {
                Err(self.counterexample(violation, Some("then a fair run on a reliable network")))
            }
        }
    }

    /// Describe the moves of the current path by replaying them from the start.
    fn counterexample(&self, violation: String, last: Option<&str>) -> Counterexample {
        let mut world = World::<P>::new(self.scenario, self.bounds.budget);
        let mut trace = Vec::new();
        for &step in &self.path {
            trace.push(world.describe(self.scenario, step));
            if world.apply(self.scenario, step).is_err() {
                break;
            }
        }
        trace.extend(last.map(str::to_owned));
        Counterexample { trace, violation }
    }
}
