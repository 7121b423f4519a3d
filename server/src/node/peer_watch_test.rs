use super::*;
use crate::test_support::TempDir;

#[test]
fn the_address_book_round_trips_and_a_bad_file_is_only_ignored() {
    let dir = TempDir::new("address-book");
    std::fs::create_dir_all(dir.path()).unwrap();
    let path = dir.path().join(ADDRESS_BOOK);
    assert!(load_book(&path).is_empty(), "no file: no peers");
    let book: BTreeMap<NodeId, SocketAddr> = [
        (NodeId(3), "127.0.0.1:7003".parse().unwrap()),
        (NodeId(9), "10.0.0.9:7000".parse().unwrap()),
    ]
    .into();
    save_book(&path, &book).unwrap();
    assert_eq!(load_book(&path), book);
    save_book(&path, &BTreeMap::new()).unwrap();
    assert!(load_book(&path).is_empty());
    std::fs::write(&path, "peers = 7").unwrap();
    assert!(load_book(&path).is_empty());
}
