//! `--json FILE`: one object per (protocol, workload).

use super::RunReport;
use anyhow::Context;
use std::path::Path;

/// Write every report as a JSON array.
pub fn write(path: &Path, reports: &[RunReport]) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(reports).context("serializing reports")?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
