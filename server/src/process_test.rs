use super::*;

fn sleeper() -> std::process::Child {
    std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("sleep starts")
}

#[test]
fn a_running_process_has_live_threads_and_a_name() {
    let mut child = sleeper();
    assert!(has_live_threads(child.id()));
    assert_eq!(command_name(child.id()).as_deref(), Some("sleep"));
    assert!(
        !wait_until_exited(child.id(), Duration::from_millis(50)),
        "a running process does not exit by waiting"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_killed_process_is_exited_once_only_its_zombie_is_left() {
    let mut child = sleeper();
    let pid = child.id();
    child.kill().unwrap();
    // Not reaped: the zombie stays in /proc, named, with no live thread.
    assert!(wait_until_exited(pid, Duration::from_secs(10)));
    assert!(!has_live_threads(pid));
    assert_eq!(command_name(pid).as_deref(), Some("sleep"));
    child.wait().unwrap();
}
