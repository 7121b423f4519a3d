//! Multi-Paxos membership changes in the chaos suite (issue 14, docs/design.md#membership):
//! three of the five `epaxos-5` replicas start as the configuration, the other two are
//! spares; an operator drawn from the seed adds spares (learner, then promote once caught
//! up), removes voters (the leader among them) and replaces one by a spare, during
//! partitions, crashes, lossy links and after the heal. Every history is linearizable,
//! replicas applied the same commands in every slot, every client finishes, every change
//! drawn completes after the heal, and every voter of the final configuration reaches it.

use meridian_engine::configuration::{Change, Configuration, Role};
use meridian_engine::multipaxos::{MultiPaxos, MultiPaxosConfig, Record};
use meridian_engine::sim::{FaultProfile, Sim};
use meridian_engine::{ClientId, Membership, NodeId, RequestId, Time};
use meridian_tests::membership_plan::{assert_voters_reached, Tally};
use meridian_tests::{agree_by_slot, first_unsafe_seed, run_fault_seed_driven, seeds, FaultRun};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::VecDeque;
use std::time::Duration;

const TICK: Duration = Duration::from_millis(100);
/// An operator gives up waiting for an answer after this long and looks again (the
/// replica it asked may have crashed and forgotten the request).
const PATIENCE: Duration = Duration::from_secs(6);

fn initial() -> Vec<NodeId> {
    vec![NodeId(0), NodeId(1), NodeId(2)]
}

fn factory(
    cluster: Membership,
    config: MultiPaxosConfig,
) -> impl FnMut(NodeId, u64, Vec<Record>) -> MultiPaxos {
    move |id, seed, records| MultiPaxos::new(id, &cluster, config.clone(), seed, records)
}

fn config() -> MultiPaxosConfig {
    MultiPaxosConfig::default()
        .with_initial_members(initial())
        .with_compaction(32, 8)
}

/// What the operator wants, resolved against the configuration when it starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Goal {
    /// A spare (or a removed replica) joins as a voter: learner first, promote once caught
    /// up. With four voters already, a removal instead.
    Add,
    /// A voter leaves (the leader, if `leader`); with three voters, a replace instead.
    Remove { leader: bool },
    /// A spare joins as a voter, then a voter (the leader, if `leader`) leaves.
    Replace { leader: bool },
}

/// A goal in progress: who joins, who leaves.
#[derive(Clone, Copy, Debug)]
struct Active {
    add: Option<NodeId>,
    remove: Option<NodeId>,
}

/// The operator: goals drawn from the seed, carried out one change at a time from the
/// configuration it reads off the replicas.
struct Operator {
    rng: ChaCha8Rng,
    goals: VecDeque<(Time, Goal)>,
    planned: usize,
    active: Option<Active>,
    /// The change last asked, and how the changes asked ended.
    tally: Tally,
    next_seq: u64,
    /// Goals carried out, as `(goal, who joined, who left)`.
    done: Vec<String>,
    /// Negative control: joiners stay learners (never promoted).
    learners_only: bool,
    /// Client requests of the run answered `Ok`, and with an unknown outcome.
    requests: (usize, usize),
}

impl Operator {
    fn new(seed: u64, chaos: Duration, learners_only: bool) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6d65_6d62);
        let count = rng.gen_range(2..=4);
        let mut goals: Vec<(Time, Goal)> = (0..count)
            .map(|_| {
                let at = Time::from_micros(rng.gen_range(0..chaos.as_micros() as u64));
                let leader = rng.gen_bool(0.5);
                let goal = match rng.gen_range(0..3) {
                    _ if learners_only => Goal::Add,
                    0 => Goal::Add,
                    1 => Goal::Remove { leader },
                    _ => Goal::Replace { leader },
                };
                (at, goal)
            })
            .collect();
        goals.sort_by_key(|(at, _)| *at);
        Self {
            rng,
            planned: goals.len(),
            goals: goals.into(),
            active: None,
            tally: Tally::default(),
            next_seq: 0,
            done: Vec::new(),
            learners_only,
            requests: (0, 0),
        }
    }

    fn finished(&self) -> bool {
        self.goals.is_empty() && self.active.is_none()
    }

    /// The newest configuration any live replica has executed.
    fn configuration(sim: &Sim<MultiPaxos>) -> Option<Configuration> {
        sim.live_nodes()
            .map(|(_, node)| node.configuration().clone())
            .max_by_key(Configuration::epoch)
    }

    fn leader(sim: &Sim<MultiPaxos>) -> Option<NodeId> {
        sim.live_nodes()
            .filter(|(_, node)| node.is_leader())
            .max_by_key(|(_, node)| node.ballot())
            .map(|(id, _)| id)
    }

    fn tick(&mut self, sim: &mut Sim<MultiPaxos>) {
        if self.tally.waiting(sim, PATIENCE) {
            return;
        }
        let Some(configuration) = Self::configuration(sim) else {
            return;
        };
        let leader = Self::leader(sim);
        if self.active.is_none() {
            let Some(&(at, goal)) = self.goals.front() else {
                return;
            };
            if sim.now() < at {
                return;
            }
            self.goals.pop_front();
            self.active = Some(self.resolve(sim, &configuration, leader, goal));
        }
        let Some(active) = self.active.as_mut() else {
            return;
        };
        let change = match (active.add, active.remove) {
            (Some(x), _) => match configuration.role_of(x) {
                None => Some(Change::AddLearner(sim.cluster().members[x.index()].clone())),
                Some(Role::Learner) if !self.learners_only => Some(Change::Promote(x)),
                Some(_) => {
                    active.add = None;
                    None
                }
            },
            (None, Some(y)) if configuration.role_of(y).is_some() => Some(Change::Remove(y)),
            (None, _) => {
                self.done.push(format!("{active:?}"));
                self.active = None;
                None
            }
        };
        let Some(change) = change else {
            return;
        };
        // Ask the leader half the time, any live member otherwise (it forwards).
        let members: Vec<NodeId> = configuration
            .members()
            .iter()
            .map(|m| m.id)
            .filter(|&id| sim.node(id).is_some())
            .collect();
        let target = match leader {
            Some(leader) if self.rng.gen_bool(0.5) => leader,
            _ if members.is_empty() => return,
            _ => members[self.rng.gen_range(0..members.len())],
        };
        self.next_seq += 1;
        let request = RequestId {
            client: ClientId(1_000_000),
            seq: self.next_seq,
        };
        self.tally.ask(sim, target, request, change);
    }

    /// Pick who joins and who leaves, keeping three or four voters.
    fn resolve(
        &mut self,
        sim: &Sim<MultiPaxos>,
        configuration: &Configuration,
        leader: Option<NodeId>,
        goal: Goal,
    ) -> Active {
        let voters: Vec<NodeId> = configuration.voters().collect();
        let outside: Vec<NodeId> = sim
            .cluster()
            .ids()
            .filter(|&id| configuration.role_of(id) != Some(Role::Voter))
            .collect();
        let goal = match goal {
            Goal::Add if voters.len() >= 4 => Goal::Remove { leader: false },
            Goal::Remove { leader } if voters.len() <= 3 => Goal::Replace { leader },
            other => other,
        };
        let mut pick = |from: &[NodeId]| -> Option<NodeId> {
            (!from.is_empty()).then(|| from[self.rng.gen_range(0..from.len())])
        };
        let leaving =
            |pick: &mut dyn FnMut(&[NodeId]) -> Option<NodeId>, want_leader: bool| match leader
                .filter(|l| want_leader && voters.contains(l))
            {
                Some(l) => Some(l),
                None => pick(&voters),
            };
        match goal {
            Goal::Add => Active {
                add: pick(&outside),
                remove: None,
            },
            Goal::Remove { leader } => Active {
                add: None,
                remove: leaving(&mut pick, leader),
            },
            Goal::Replace { leader } => {
                let add = pick(&outside);
                Active {
                    add,
                    remove: leaving(&mut pick, leader).filter(|&r| Some(r) != add),
                }
            }
        }
    }
}

fn fault_run() -> FaultRun {
    FaultRun {
        profile: FaultProfile::Chaos,
        ..FaultRun::default()
    }
}

/// One seed: the run, then the membership checks. Returns the operator's summary, or why
/// replicas diverged.
fn run_seed(
    test: &str,
    seed: u64,
    config: MultiPaxosConfig,
    learners_only: bool,
) -> Result<Operator, String> {
    let run = fault_run();
    let cluster = run.topology.membership();
    let mut operator = Operator::new(seed, run.chaos, learners_only);
    let outcome = run_fault_seed_driven(
        test,
        seed,
        &run,
        factory(cluster, config),
        Some(TICK),
        |sim| operator.tick(sim),
    );
    operator.requests = (outcome.ok, outcome.unknown);
    let sim = outcome.sim;
    let applied: Vec<Vec<_>> = sim
        .live_nodes()
        .map(|(_, node)| node.applied().iter().map(|e| (e.slot, e.request)).collect())
        .collect();
    let views: Vec<&[_]> = applied.iter().map(Vec::as_slice).collect();
    agree_by_slot(&views).map_err(|e| format!("seed {seed}: replicas diverged: {e}"))?;
    let replay =
        format!("MERIDIAN_SEED={seed} cargo test -p meridian-tests --test sim -- {test} --exact");
    assert!(
        operator.finished(),
        "seed {seed}: liveness: membership goals left after the heal: {:?} (active {:?}, done {:?})\n  replay: {replay}",
        operator.goals,
        operator.active,
        operator.done
    );
    let last = Operator::configuration(&sim).expect("a live replica");
    let epoch_of = |id| sim.node(id).map(|n| n.configuration().epoch());
    assert_voters_reached(&last, epoch_of, seed, &replay);
    Ok(operator)
}

/// Issue 14: 200 seeds of chaos with membership changes drawn from the seed (adds,
/// removes of the leader or another voter, replaces), linearizable, same order everywhere,
/// every client and every change finishes.
#[test]
fn membership_changes_under_random_faults_over_200_seeds() {
    let test = "t24_multipaxos_membership::membership_changes_under_random_faults_over_200_seeds";
    let (mut goals, mut applied, mut failed, mut ok, mut unknown) = (0, 0, 0, 0, 0);
    for seed in seeds(200) {
        let operator = run_seed(test, seed, config(), false).unwrap_or_else(|e| panic!("{e}"));
        goals += operator.planned;
        applied += operator.tally.applied;
        failed += operator.tally.failed;
        ok += operator.requests.0;
        unknown += operator.requests.1;
    }
    println!("{goals} membership goals, {applied} changes applied, {failed} answered otherwise");
    println!("{ok} client requests completed, {unknown} with unknown outcome");
    assert!(
        applied >= goals,
        "{applied} changes applied for {goals} goals"
    );
}

/// Negative control: votes from learners counted like a voter's (the pitfall the
/// learner-first rule avoids). With learners added (never promoted) and chaos, some seed's
/// history is not linearizable or replicas diverge; the seed is printed and replays.
#[test]
fn counting_learner_votes_is_caught() {
    let test = "t24_multipaxos_membership::counting_learner_votes_is_caught";
    let broken = MultiPaxosConfig {
        unsafe_count_learner_votes: true,
        ..config()
    };
    let caught = first_unsafe_seed(seeds(300), |seed| {
        run_seed(test, seed, broken.clone(), true).map(|_| ())
    });
    let caught = caught.expect("no seed exposed counting learners' votes");
    println!("broken variant caught: {caught}");
}
