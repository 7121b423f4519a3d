//! Helpers shared by the server's integration tests.

#![allow(dead_code)] // each test binary uses its own subset

use meridian_server::launcher::ServerCommand;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let path = std::env::temp_dir().join(format!("meridian-it-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // MERIDIAN_KEEP_TEST_DIRS=1 keeps a failed test's configs, data and node logs.
        if std::thread::panicking() && std::env::var_os("MERIDIAN_KEEP_TEST_DIRS").is_some() {
            eprintln!("kept {}", self.0.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The Prometheus text of a node's metrics endpoint (plain HTTP/1.0 GET), or the error.
pub fn scrape(addr: SocketAddr) -> String {
    use std::io::{Read, Write};
    let fetch = || -> std::io::Result<String> {
        let mut stream = std::net::TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
        stream.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")?;
        let mut text = String::new();
        stream.read_to_string(&mut text)?;
        Ok(text)
    };
    fetch().unwrap_or_else(|e| format!("scraping {addr}: {e}"))
}

/// Free loopback UDP ports (bound then released: a small race other tests could lose).
pub fn free_addrs(n: usize) -> Vec<SocketAddr> {
    let sockets: Vec<UdpSocket> = (0..n)
        .map(|_| UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind"))
        .collect();
    sockets
        .iter()
        .map(|s| s.local_addr().expect("addr"))
        .collect()
}

/// `meridian serve` from this package's binary.
pub fn meridian() -> ServerCommand {
    ServerCommand::meridian(env!("CARGO_BIN_EXE_meridian"))
}
