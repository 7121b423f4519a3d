//! Where a benchmark runs: the deterministic simulator (`sim`) or real server processes
//! (`cluster`).

pub mod cluster;
pub mod efficiency;
pub mod reconfigure;
pub mod sim;

use meridian_engine::check::{check_kv, CheckConfig, History, Verdict};

/// The linearizability verdict of `history`, as the report prints it.
pub fn verdict_text(history: &History) -> String {
    let report = check_kv(history, &CheckConfig::default());
    match report.verdict {
        Verdict::Linearizable => format!("linearizable ({} ops checked)", report.ops_checked),
        Verdict::Violation {
            key, explanation, ..
        } => format!(
            "NOT linearizable on key {:?}: {explanation}",
            String::from_utf8_lossy(&key)
        ),
        Verdict::Inconclusive { keys } => format!(
            "inconclusive (check budget exhausted on {} keys)",
            keys.len()
        ),
    }
}
