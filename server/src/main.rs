//! `meridian`: replica server and client CLI.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "meridian",
    about = "Meridian geo-replicated key-value server and client"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a cluster CA, node certificates and a client certificate.
    Certs {
        /// Directory to write ca.pem/key, node-<id>.pem/key and client.pem/key into.
        #[arg(long)]
        out: PathBuf,
        /// Number of node certificates (ids 0..N).
        #[arg(long)]
        nodes: u16,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Certs { out, nodes } => {
            meridian_server::tls::write_cluster_certs(&out, nodes)
                .with_context(|| format!("writing certificates to {}", out.display()))?;
            println!(
                "wrote CA, {nodes} node certificates and a client certificate to {}",
                out.display()
            );
        }
    }
    Ok(())
}
