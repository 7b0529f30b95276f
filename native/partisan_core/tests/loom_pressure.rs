//! Model checking of the back-pressure handshake with loom: run with
//! `RUSTFLAGS="--cfg partisan_loom" cargo test -p partisan_core --test loom_pressure`
//! (`make loom`). Every interleaving of a sender that waits and a writer that drains (or a
//! close) must resume the sender exactly once.
#![cfg(partisan_loom)]

#[path = "../src/transport/pressure.rs"]
#[allow(dead_code)]
mod pressure;

use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use loom::sync::Arc;
use pressure::{Pressure, Resume};

fn counter() -> (Arc<AtomicUsize>, Resume) {
    let fired = Arc::new(AtomicUsize::new(0));
    let f = fired.clone();
    (
        fired,
        Resume::new(move || {
            f.fetch_add(1, SeqCst);
        }),
    )
}

#[test]
fn a_sender_waiting_while_the_writer_drains_is_resumed_once() {
    loom::model(|| {
        let p = Arc::new(Pressure::default());
        p.add(100);
        let writer = {
            let p = p.clone();
            loom::thread::spawn(move || p.drained(100, 10))
        };
        let (fired, resume) = counter();
        p.wait(resume, 10);
        writer.join().unwrap();
        assert_eq!(fired.load(SeqCst), 1);
    });
}

#[test]
fn two_senders_and_a_partial_drain() {
    loom::model(|| {
        let p = Arc::new(Pressure::default());
        p.add(200);
        let (fired_a, ra) = counter();
        let (fired_b, rb) = counter();
        let a = {
            let p = p.clone();
            loom::thread::spawn(move || p.wait(ra, 50))
        };
        p.wait(rb, 50);
        p.drained(100, 50); // 100 left: still over the low-water mark
        a.join().unwrap();
        assert_eq!(fired_a.load(SeqCst) + fired_b.load(SeqCst), 0);
        p.drained(100, 50);
        assert_eq!((fired_a.load(SeqCst), fired_b.load(SeqCst)), (1, 1));
    });
}

#[test]
fn close_resumes_waiters_and_later_waits_run_at_once() {
    loom::model(|| {
        let p = Arc::new(Pressure::default());
        p.add(100);
        let closer = {
            let p = p.clone();
            loom::thread::spawn(move || p.close())
        };
        let (fired, resume) = counter();
        p.wait(resume, 10);
        closer.join().unwrap();
        assert_eq!(fired.load(SeqCst), 1);
        let (later, resume) = counter();
        p.wait(resume, 10);
        assert_eq!(later.load(SeqCst), 1);
    });
}
