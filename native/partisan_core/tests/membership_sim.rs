//! Deterministic simulation of full-mesh membership gossip: a thousand replicas of the CRDT,
//! a seeded random schedule, lossy delivery, joins through one contact and leaves. Checks that
//! every live replica converges to the same view, that removed nodes stay removed, and that no
//! node that left is brought back by stale state (the problem of Partisan issues #191 and #128).

use partisan_core::membership::{NodeSpec, State};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const NODES: usize = 1000;
const FANOUT: usize = 3;
const LOSS: f64 = 0.2;

fn spec(i: usize) -> NodeSpec {
    NodeSpec {
        name: format!("n{i}@10.{}.{}.1", i / 256, i % 256),
        listen_addrs: vec![([10, (i / 256) as u8, (i % 256) as u8, 1], 9090).into()],
        channels: vec![],
    }
}

/// One gossip round: every live node sends its state to `FANOUT` random live peers; each message
/// is lost with probability `LOSS`. Messages of a round are computed before any is applied, so a
/// round is a synchronous step, as if all were in flight at once.
fn round(states: &mut [State], live: &[usize], rng: &mut StdRng) -> bool {
    let snapshots: Vec<(usize, State)> = live.iter().map(|&i| (i, states[i].clone())).collect();
    let mut changed = false;
    for (from, snapshot) in &snapshots {
        for _ in 0..FANOUT {
            let to = live[rng.gen_range(0..live.len())];
            if to != *from && !rng.gen_bool(LOSS) {
                changed |= states[to].merge(snapshot);
            }
        }
    }
    changed
}

fn converge(states: &mut [State], live: &[usize], rng: &mut StdRng) -> usize {
    let mut rounds = 0;
    // Rounds until every live node holds the same state (bounded: epidemic spreading needs
    // O(log n) rounds; 200 means something is wrong).
    while rounds < 200 {
        round(states, live, rng);
        rounds += 1;
        let first = &states[live[0]];
        if live.iter().all(|&i| states[i] == *first) {
            return rounds;
        }
    }
    panic!("no convergence after {rounds} rounds");
}

#[test]
fn a_thousand_nodes_converge_and_leaves_stick() {
    let mut rng = StdRng::seed_from_u64(0x9a27_15a9);
    // Every node starts alone; node 0 is the contact everyone joins through.
    let mut states: Vec<State> = (0..NODES)
        .map(|i| {
            let mut s = State::new();
            s.add(spec(i), 1);
            s
        })
        .collect();
    for i in 1..NODES {
        let joiner = states[i].clone();
        states[0].merge(&joiner);
    }
    let all: Vec<usize> = (0..NODES).collect();
    let rounds = converge(&mut states, &all, &mut rng);
    assert!(rounds < 40, "took {rounds} rounds");
    assert_eq!(states[0].members().count(), NODES);

    // A stale copy of the full view, kept by a node that will be partitioned away.
    let stale = states[NODES - 1].clone();

    // A hundred nodes leave (each marks itself removed and tells one random peer), then stop.
    let leavers: Vec<usize> = (0..100).map(|k| 5 + k * 9).collect();
    for &l in &leavers {
        let name = spec(l).name;
        states[l].remove(&name);
        let peer = loop {
            let p = rng.gen_range(0..NODES);
            if !leavers.contains(&p) {
                break p;
            }
        };
        let news = states[l].clone();
        states[peer].merge(&news);
    }
    let live: Vec<usize> = (0..NODES).filter(|i| !leavers.contains(i)).collect();
    converge(&mut states, &live, &mut rng);

    // The stale view comes back (a partitioned node rejoining with old state): nothing it says
    // about the leavers may resurrect them.
    let survivor = live[live.len() / 2];
    states[survivor].merge(&stale);
    converge(&mut states, &live, &mut rng);
    for &i in &live {
        assert_eq!(states[i].members().count(), NODES - leavers.len());
        for &l in &leavers {
            assert!(!states[i].is_member(&spec(l).name));
        }
    }

    // A leaver that starts a new life (higher incarnation) and joins again is a member again.
    let back = leavers[0];
    let mut fresh = State::new();
    fresh.add(spec(back), 2);
    states[live[0]].merge(&fresh);
    let mut with_back = live.clone();
    with_back.push(back);
    states[back] = fresh;
    converge(&mut states, &with_back, &mut rng);
    assert!(with_back
        .iter()
        .all(|&i| states[i].is_member(&spec(back).name)));
}
