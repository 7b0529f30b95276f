//! The membership CRDT's merge is a join: commutative, associative, idempotent; and removals
//! are not undone by stale state.

use partisan_core::membership::{Entry, NodeSpec, State};
use proptest::prelude::*;

fn spec(i: u8) -> NodeSpec {
    NodeSpec {
        name: format!("n{i}@h"),
        listen_addrs: vec![([127, 0, 0, 1], 9000 + i as u16).into()],
        channels: vec![],
    }
}

fn state() -> impl Strategy<Value = State> {
    prop::collection::vec((0u8..6, 0u64..4, any::<bool>()), 0..12).prop_map(|ops| {
        let mut s = State::new();
        for (n, inc, removed) in ops {
            s.apply(Entry {
                incarnation: inc,
                removed,
                spec: spec(n),
            });
        }
        s
    })
}

fn merged(a: &State, b: &State) -> State {
    let mut x = a.clone();
    x.merge(b);
    x
}

proptest! {
    #[test]
    fn merge_is_commutative(a in state(), b in state()) {
        prop_assert_eq!(merged(&a, &b), merged(&b, &a));
    }

    #[test]
    fn merge_is_associative(a in state(), b in state(), c in state()) {
        prop_assert_eq!(merged(&merged(&a, &b), &c), merged(&a, &merged(&b, &c)));
    }

    #[test]
    fn merge_is_idempotent(a in state(), b in state()) {
        prop_assert_eq!(merged(&a, &a), a.clone());
        let ab = merged(&a, &b);
        prop_assert_eq!(merged(&ab, &b), ab);
    }

    #[test]
    fn encoding_round_trips(a in state()) {
        prop_assert_eq!(State::decode(&a.encode()).unwrap(), a);
    }

    #[test]
    fn stale_gossip_never_resurrects(a in state(), n in 0u8..6) {
        let stale = a.clone();
        let mut fresh = a.clone();
        let name = spec(n).name;
        fresh.remove(&name);
        prop_assert!(!merged(&fresh, &stale).is_member(&name));
        prop_assert!(!merged(&stale, &fresh).is_member(&name));
    }
}

#[test]
fn a_new_life_beats_an_old_removal() {
    let mut s = State::new();
    s.add(spec(1), 5);
    assert!(s.remove("n1@h"));
    assert!(!s.is_member("n1@h"));
    assert!(s.is_removed("n1@h", 5));
    assert!(!s.add(spec(1), 5), "same life stays removed");
    assert!(s.add(spec(1), 6));
    assert!(s.is_member("n1@h"));
    assert!(!s.is_removed("n1@h", 6));
}
