use super::*;

fn put(key: &str) -> Command {
    Command::Put {
        key: key.into(),
        value: b"v".to_vec(),
    }
}
fn get(key: &str) -> Command {
    Command::Get { key: key.into() }
}

#[test]
fn lagging_replicas_and_commuting_reads_are_fine() {
    let a = vec![(1, put("k")), (2, get("k")), (3, get("k")), (4, put("k"))];
    let b = vec![(1, put("k")), (3, get("k")), (2, get("k"))];
    assert!(check_execution_order(&[a, b]).is_ok());
}

#[test]
fn interfering_commands_in_different_orders_are_caught() {
    let a = vec![(1, put("k")), (2, get("k"))];
    let b = vec![(2, get("k")), (1, put("k"))];
    assert!(check_execution_order(&[a, b]).is_err());
}

#[test]
fn different_keys_never_conflict() {
    let a = vec![(1, put("k")), (2, put("j"))];
    let b = vec![(2, put("j")), (1, put("k"))];
    assert!(check_execution_order(&[a, b]).is_ok());
}
