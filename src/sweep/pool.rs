//! The worker pool: one thread per device, each making its worker, reporting its GPU, waiting for
//! the coordinator's go, then taking points from a shared queue. A worker left unusable by a
//! failed point (a sticky CUDA fault) is dropped and made anew; one that cannot be remade stops,
//! leaving its points in the queue.

use super::backend::RunConfig;
use super::worker::{Worker, WorkerFactory};
use super::PointSpec;
use crate::error::{Error, Result};
use crate::profile::{GemmPoint, GpuInfo, Point, PointStatus, ProfileKind};
use std::collections::VecDeque;
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

/// What a worker thread reports; each message carries the worker's index in the pool.
pub enum Event {
    Ready {
        kind: ProfileKind,
        info: GpuInfo,
        idle: Option<f64>,
    },
    Fatal(Error),
    /// A finished point and the seconds it took.
    Point(Box<Point>, f64),
    Gemm(Result<GemmPoint>),
    Warning(String),
    Done,
}

/// A worker's GPU, as it reported it before taking points.
#[derive(Debug, Clone)]
pub struct Ready {
    pub kind: ProfileKind,
    pub info: GpuInfo,
    pub idle: Option<f64>,
}

type Queue = Arc<Mutex<VecDeque<PointSpec>>>;
/// The coordinator's decision for waiting workers: None until given, then go (true) or stop.
type Gate = Arc<(Mutex<Option<bool>>, Condvar)>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub struct Pool {
    ordinals: Vec<usize>,
    queue: Queue,
    gate: Gate,
    rx: mpsc::Receiver<(usize, Event)>,
    handles: Vec<JoinHandle<()>>,
    /// Workers that have not sent Done.
    live: usize,
}

impl Pool {
    /// Starts one worker thread per CUDA ordinal; the first runs the `gemm` calibration points
    /// after the queue is empty.
    pub fn start(
        ordinals: &[usize],
        cfg: &RunConfig,
        factory: WorkerFactory,
        gemm: Vec<(usize, usize, usize)>,
    ) -> Pool {
        let queue: Queue = Default::default();
        let gate: Gate = Default::default();
        let (tx, rx) = mpsc::channel();
        let handles = ordinals
            .iter()
            .enumerate()
            .map(|(w, &ordinal)| {
                let t = Thread {
                    w,
                    ordinal,
                    cfg: cfg.clone(),
                    factory: factory.clone(),
                    queue: queue.clone(),
                    gate: gate.clone(),
                    tx: tx.clone(),
                    gemm: if w == 0 { gemm.clone() } else { vec![] },
                };
                std::thread::spawn(move || t.serve())
            })
            .collect();
        Pool { ordinals: ordinals.to_vec(), queue, gate, rx, handles, live: ordinals.len() }
    }

    /// Every worker's GPU, in `--devices` order, or the first worker's error (named by its GPU
    /// when there are several).
    pub fn ready(&mut self) -> Result<Vec<Ready>> {
        let mut ready: Vec<Option<Ready>> = vec![None; self.ordinals.len()];
        let mut fatal = None;
        for _ in 0..self.ordinals.len() {
            match self.rx.recv() {
                Ok((w, Event::Ready { kind, info, idle })) => ready[w] = Some(Ready { kind, info, idle }),
                Ok((w, Event::Fatal(e))) => {
                    let e = if self.ordinals.len() > 1 {
                        Error::Invalid(format!("GPU {}: {e}", self.ordinals[w]))
                    } else {
                        e
                    };
                    fatal.get_or_insert(e);
                }
                Ok(_) | Err(_) => break,
            }
        }
        match fatal {
            Some(e) => Err(e),
            None => ready
                .into_iter()
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| Error::Invalid("a sweep worker stopped before it was ready".into())),
        }
    }

    fn release(&self, go: bool) {
        let (lock_, cv) = &*self.gate;
        *lock(lock_) = Some(go);
        cv.notify_all();
    }

    /// Queues `todo` and lets the workers take points.
    pub fn go(&mut self, todo: Vec<PointSpec>) {
        lock(&self.queue).extend(todo);
        self.release(true);
    }

    /// The next event of a running pool; None once every worker is done.
    pub fn recv(&mut self) -> Option<(usize, Event)> {
        if self.live == 0 {
            return None;
        }
        let (w, e) = self.rx.recv().ok()?;
        if matches!(e, Event::Done) {
            self.live -= 1;
        }
        Some((w, e))
    }

    /// Waits for every worker thread; returns the points nobody ran (workers that stopped).
    pub fn finish(mut self) -> usize {
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
        lock(&self.queue).len()
    }
}

impl Drop for Pool {
    /// A pool given up early (refused start, a log that cannot be written) releases its waiting
    /// workers and empties the queue, so that no thread stays blocked or keeps measuring.
    fn drop(&mut self) {
        lock(&self.queue).clear();
        self.release(false);
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// One worker thread's state.
struct Thread {
    w: usize,
    ordinal: usize,
    cfg: RunConfig,
    factory: WorkerFactory,
    queue: Queue,
    gate: Gate,
    tx: mpsc::Sender<(usize, Event)>,
    gemm: Vec<(usize, usize, usize)>,
}

impl Thread {
    fn send(&self, e: Event) -> bool {
        self.tx.send((self.w, e)).is_ok()
    }

    fn serve(self) {
        let mut worker = match (self.factory)(self.ordinal, &self.cfg) {
            Ok(x) => x,
            Err(e) => {
                self.send(Event::Fatal(e));
                return;
            }
        };
        self.send(Event::Ready { kind: worker.kind(), info: worker.info(), idle: worker.idle_watts() });
        if !self.wait_for_go() {
            return;
        }
        loop {
            let next = lock(&self.queue).pop_front();
            let Some(spec) = next else { break };
            let t0 = Instant::now();
            let seed = self.cfg.seed ^ crate::sweep::fnv(&spec.key());
            // A panic in a worker (a bug) costs its point, recorded as failed, and the worker
            // (made anew), not the thread and the points queued behind it.
            let (p, panicked) =
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| worker.point(&spec, seed))) {
                    Ok(p) => (p, false),
                    Err(e) => {
                        let why = e
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| e.downcast_ref::<String>().cloned())
                            .unwrap_or_default();
                        (super::worker::failed(&spec, format!("internal error (a bug; please report): {why}")), true)
                    }
                };
            let error = match &p.status {
                PointStatus::Failed { error } => Some(error.clone()),
                _ => None,
            };
            if !self.send(Event::Point(Box::new(p), t0.elapsed().as_secs_f64())) {
                return;
            }
            if let Some(error) = error.filter(|_| panicked || !worker.healthy()) {
                drop(worker); // first: the old context must be released before a new one is made
                match self.restart(&error) {
                    Some(w) => worker = w,
                    None => {
                        self.send(Event::Done);
                        return;
                    }
                }
            }
        }
        for &(m, n, k) in &self.gemm {
            self.send(Event::Gemm(worker.gemm(m, n, k)));
        }
        self.send(Event::Done);
    }

    /// Blocks until the coordinator decides; true to go on.
    fn wait_for_go(&self) -> bool {
        let (lock_, cv) = &*self.gate;
        let mut g = lock(lock_);
        while g.is_none() {
            g = cv.wait(g).unwrap_or_else(|p| p.into_inner());
        }
        g.unwrap_or(false)
    }

    /// A fresh worker after `error` left the last one unusable, or None (warned) when it cannot be made.
    fn restart(&self, error: &str) -> Option<Box<dyn Worker>> {
        let ordinal = self.ordinal;
        match (self.factory)(ordinal, &self.cfg).map(|mut x| (x.healthy(), x)) {
            Ok((true, x)) => {
                self.send(Event::Warning(format!(
                    "GPU {ordinal} unusable after a failed point ({error}); worker restarted"
                )));
                Some(x)
            }
            made => {
                let why = made.err().map_or("still unusable".to_string(), |e| e.to_string());
                self.send(Event::Warning(format!(
                    "GPU {ordinal} unusable after a failed point ({error}) and not restartable ({why}): it stops here; \
                     `--resume` runs the points left"
                )));
                None
            }
        }
    }
}
