use super::*;

#[test]
fn changes_parse_from_the_command_line_form() {
    let add: Change = "add:us-west-1@16".parse().unwrap();
    assert_eq!(add.at, Duration::from_secs(16));
    assert_eq!(
        add.action,
        Action::Add {
            region: "us-west-1".into()
        }
    );
    let added: Change = "remove:added@32.5".parse().unwrap();
    assert_eq!(added.at, Duration::from_millis(32_500));
    assert_eq!(added.action, Action::Remove(Target::Added));
    let by_id: Change = "remove:5@0".parse().unwrap();
    assert_eq!(by_id.action, Action::Remove(Target::Id(5)));
    // The printed form reads back as the same change.
    for change in [add, added, by_id] {
        assert_eq!(change.to_string().parse::<Change>().unwrap(), change);
    }
}

#[test]
fn malformed_changes_are_refused_with_the_form_they_should_have() {
    for bad in [
        "add:us-west-1",
        "add:@3",
        "grow:CA@3",
        "remove:someone@3",
        "remove:5@-1",
        "remove:5@soon",
        "remove:70000@1",
        "add:CA@inf",
    ] {
        let error = bad.parse::<Change>().unwrap_err();
        assert!(error.contains("add:REGION@SECONDS"), "{bad}: {error}");
    }
}
