use super::*;
use crate::dynamo::dvv::{Actor, Dot, Sibling, VersionVector};

fn written(node: u16, value: &[u8]) -> Object {
    Object::new().update(
        &VersionVector::new(),
        Dot {
            actor: Actor {
                node: NodeId(node),
                epoch: 1,
            },
            counter: 1,
        },
        Sibling {
            value: Some(value.to_vec()),
            timestamp_us: 0,
        },
    )
}

#[test]
fn owners_missing_a_version_are_stale_and_fallbacks_never_are() {
    let owner = |n: u16| Target {
        owner: NodeId(n),
        fallback: false,
    };
    let targets = BTreeMap::from([
        (NodeId(0), owner(0)),
        (NodeId(1), owner(1)),
        (NodeId(2), owner(2)),
        (
            NodeId(3),
            Target {
                owner: NodeId(2),
                fallback: true,
            },
        ),
    ]);
    let a = written(0, b"a");
    let b = written(1, b"b");
    let merged = a.join(&b);
    let answers = BTreeMap::from([
        (NodeId(0), Some(a)),
        (NodeId(1), Some(merged.clone())),
        (NodeId(2), None),
        (NodeId(3), None),
    ]);
    assert_eq!(
        stale_answers(&targets, &answers, &merged),
        vec![NodeId(0), NodeId(2)]
    );
    let nothing = BTreeMap::from([(NodeId(2), None)]);
    assert!(stale_answers(&targets, &nothing, &Object::new()).is_empty());
}
