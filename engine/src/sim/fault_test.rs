use super::*;

fn nodes(n: u16) -> Vec<NodeId> {
    (0..n).map(NodeId).collect()
}

#[test]
fn random_plans_are_reproducible_from_the_seed() {
    let a = FaultPlan::random(
        7,
        FaultProfile::Chaos,
        &nodes(5),
        Time::ZERO,
        Time::from_millis(5_000),
    );
    let b = FaultPlan::random(
        7,
        FaultProfile::Chaos,
        &nodes(5),
        Time::ZERO,
        Time::from_millis(5_000),
    );
    assert_eq!(a, b);
}

#[test]
fn never_more_than_a_minority_is_down_and_all_restart_at_heal() {
    for seed in 0..200 {
        let plan = FaultPlan::random(
            seed,
            FaultProfile::Crashes,
            &nodes(5),
            Time::ZERO,
            Time::from_millis(1_000),
        );
        let mut down = std::collections::BTreeSet::new();
        for (_, action) in &plan.actions {
            match action {
                FaultAction::Crash(n) => {
                    assert!(down.insert(*n), "seed {seed}: double crash");
                    assert!(down.len() <= 2, "seed {seed}: majority down");
                }
                FaultAction::Restart(n) => {
                    assert!(down.remove(n), "seed {seed}: restart of a live node")
                }
                _ => {}
            }
        }
        assert!(down.is_empty(), "seed {seed}: node left down after heal");
    }
}
