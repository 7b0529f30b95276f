//! The engine's I/O threads.
//!
//! With one I/O thread (the default on machines of up to 3 cores) the tasks run on tokio's
//! current-thread runtime, driven by a thread of our own. A message that finds the node idle
//! then costs that thread one wake-up from `epoll_wait`, the reader's work and the `enif_send`:
//! tokio's multi-thread scheduler adds work-stealing bookkeeping, per-batch statistics and
//! wake-ups of parked workers to every such wake-up, for no gain when there is no other
//! worker to steal. With more threads the multi-thread runtime spreads the connections.

use std::io;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::runtime::{Builder, Handle, Runtime};
use tokio::sync::oneshot;

/// Name of every I/O thread (shown by `top -H`, `perf`).
const THREAD_NAME: &str = "partisan-io";

pub(crate) enum IoRuntime {
    /// Several I/O threads: tokio's work-stealing runtime.
    Multi(Runtime),
    /// One I/O thread, ours, inside `block_on` until told to stop.
    Single {
        handle: Handle,
        stop: oneshot::Sender<Duration>,
        thread: JoinHandle<()>,
    },
}

impl IoRuntime {
    /// Starts `threads` I/O threads, each calling `on_start` first.
    pub fn start(threads: usize, on_start: impl Fn() + Send + Sync + 'static) -> io::Result<Self> {
        if threads > 1 {
            let rt = Builder::new_multi_thread()
                .worker_threads(threads)
                .max_blocking_threads(1)
                .thread_name(THREAD_NAME)
                .on_thread_start(on_start)
                .enable_all()
                .build()?;
            return Ok(IoRuntime::Multi(rt));
        }
        let rt = Builder::new_current_thread()
            .max_blocking_threads(1)
            .thread_name(THREAD_NAME)
            .enable_all()
            .build()?;
        let handle = rt.handle().clone();
        let (stop, stopped) = oneshot::channel::<Duration>();
        let thread = std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || {
                on_start();
                // A dropped sender (the engine dropped without `stop`) ends the thread too.
                let grace = rt.block_on(stopped).unwrap_or(Duration::ZERO);
                rt.shutdown_timeout(grace);
            })?;
        Ok(IoRuntime::Single {
            handle,
            stop,
            thread,
        })
    }

    /// Where tasks are spawned.
    pub fn handle(&self) -> &Handle {
        match self {
            IoRuntime::Multi(rt) => rt.handle(),
            IoRuntime::Single { handle, .. } => handle,
        }
    }

    /// Stops the tasks, giving them up to `grace` to finish, and joins the threads.
    pub fn shutdown(self, grace: Duration) {
        match self {
            IoRuntime::Multi(rt) => rt.shutdown_timeout(grace),
            IoRuntime::Single { stop, thread, .. } => {
                let _ = stop.send(grace);
                let _ = thread.join();
            }
        }
    }

    /// Stops the tasks without waiting for them (safe on a thread that must not block).
    pub fn shutdown_background(self) {
        match self {
            IoRuntime::Multi(rt) => rt.shutdown_background(),
            IoRuntime::Single { stop, .. } => {
                let _ = stop.send(Duration::ZERO);
            }
        }
    }
}
