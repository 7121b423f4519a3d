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

#[test]
fn storage_profiles_draw_their_faults_and_keep_a_majority_up() {
    let (mut in_compaction, mut amnesia) = (0, 0);
    for seed in 0..300 {
        for profile in [FaultProfile::Storage, FaultProfile::Amnesia] {
            let plan = FaultPlan::random(
                seed,
                profile,
                &nodes(5),
                Time::ZERO,
                Time::from_millis(1_000),
            );
            let mut down = std::collections::BTreeSet::new();
            let mut wiped = 0;
            for (at, action) in &plan.actions {
                match action {
                    FaultAction::Crash(n) | FaultAction::CrashInCompaction(n) => {
                        in_compaction +=
                            usize::from(matches!(action, FaultAction::CrashInCompaction(_)));
                        assert!(down.insert(*n), "seed {seed}: double crash");
                    }
                    FaultAction::Amnesia(n) => {
                        assert_eq!(profile, FaultProfile::Amnesia);
                        wiped += 1;
                        amnesia += 1;
                        assert!(down.insert(*n), "seed {seed}: double crash");
                    }
                    FaultAction::Restart(n) => {
                        assert!(down.remove(n), "seed {seed}: restart of a live node")
                    }
                    _ => {}
                }
                assert!(down.len() <= 2, "seed {seed} at {at}: majority down");
            }
            assert!(wiped <= 1, "seed {seed}: more than one lost disk");
            assert!(down.is_empty(), "seed {seed}: node left down after heal");
        }
    }
    assert!(
        in_compaction > 50 && amnesia > 50,
        "{in_compaction} {amnesia}"
    );
}

#[test]
fn profiles_parse_by_name() {
    for (name, profile) in [
        ("chaos", FaultProfile::Chaos),
        ("storage", FaultProfile::Storage),
        ("amnesia", FaultProfile::Amnesia),
    ] {
        assert_eq!(name.parse::<FaultProfile>(), Ok(profile));
    }
    assert!("disk".parse::<FaultProfile>().is_err());
}
