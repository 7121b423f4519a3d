//! Whether a local process has finished exiting, read from `/proc` (Linux).
//!
//! A process killed moments ago (`kill -9`) gives back its memory before its files: for a
//! while its command line reads empty, so it no longer looks like a replica, yet its
//! sockets still hold the replica's ports. It is gone for a restart only once every one
//! of its threads is a zombie or dead: the last thread out closes the files.

use std::time::{Duration, Instant};

/// Whether process `pid` has a thread that is neither a zombie nor dead (false for a
/// process that does not exist).
pub fn has_live_threads(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(|task| {
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // `pid (comm) S ...`: the state follows the last `)` (comm may hold one).
        let state = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next());
        !matches!(state, None | Some('Z' | 'X'))
    })
}

/// The command name of process `pid` (`/proc/PID/comm`, kept until it is reaped).
pub fn command_name(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|name| name.trim_end().to_owned())
}

/// Wait until process `pid` has no live thread, for at most `timeout`; whether it got
/// there.
pub fn wait_until_exited(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !has_live_threads(pid) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
#[path = "process_test.rs"]
mod tests;
