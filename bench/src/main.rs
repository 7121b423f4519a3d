//! `meridian-bench`: reproduces cross-region latency comparisons.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("meridian-bench: the driver is not built yet (see issue 5)")
}
