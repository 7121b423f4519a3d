//! Execution-order agreement (the ordering half of state machine replication, as in
//! fantoch's executor monitor): every pair of interfering commands executes in the same
//! relative order on every replica that executed both. Replicas may lag (execute fewer
//! commands); they may not disagree.

use crate::command::Command;
use std::collections::BTreeMap;
use std::fmt::Debug;

/// One replica's commands on one key, in execution order, with whether each writes.
type KeySequence<'a, T> = Vec<(&'a T, bool)>;

/// Check the execution sequences of several replicas. `T` identifies a command instance.
pub fn check_execution_order<T: Ord + Clone + Debug>(
    replicas: &[Vec<(T, Command)>],
) -> Result<(), String> {
    // Per key, per replica: the instances on that key in execution order, with whether
    // they write.
    let mut per_key: BTreeMap<&[u8], Vec<KeySequence<'_, T>>> = BTreeMap::new();
    for (r, sequence) in replicas.iter().enumerate() {
        for (id, command) in sequence {
            let lists = per_key
                .entry(command.key().as_slice())
                .or_insert_with(|| vec![Vec::new(); replicas.len()]);
            lists[r].push((id, !command.is_read()));
        }
    }
    for (key, lists) in per_key {
        let positions: Vec<BTreeMap<&T, usize>> = lists
            .iter()
            .map(|list| {
                list.iter()
                    .enumerate()
                    .map(|(i, (id, _))| (*id, i))
                    .collect()
            })
            .collect();
        for (a, list_a) in lists.iter().enumerate() {
            for (b, positions_b) in positions.iter().enumerate().skip(a + 1) {
                let common: Vec<(&T, bool)> = list_a
                    .iter()
                    .filter(|(id, _)| positions_b.contains_key(id))
                    .copied()
                    .collect();
                for (i, (x, x_writes)) in common.iter().enumerate() {
                    for (y, y_writes) in &common[i + 1..] {
                        if !(x_writes | y_writes) {
                            continue; // two reads commute
                        }
                        if positions_b[x] > positions_b[y] {
                            return Err(format!(
                                "key {:?}: replica {a} executed {x:?} before {y:?}, replica {b} the other way",
                                String::from_utf8_lossy(key)
                            ));
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "execution_order_test.rs"]
mod tests;
