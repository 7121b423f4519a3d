//! `meridian`: replica server and client CLI.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("meridian: the server is not built yet (see issue 4)")
}
