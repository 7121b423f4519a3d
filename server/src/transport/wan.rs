//! WAN emulation inside the process: a UDP socket for quinn that holds every outgoing
//! datagram for the one-way delay (plus jitter) to its destination.
//!
//! ```text
//!  quinn ──try_send(&Transmit)──▶ WanSocket: copy, stamp release = now + delay + jitter
//!                                   │ (FIFO per destination; queue full ⇒ drop, Ok)
//!                                   ▼
//!                      pump thread: heap ordered by (release, seq), sleeps until the
//!                      earliest release, then inner.try_send ──▶ kernel UDP socket
//!  quinn ◀──poll_recv──────────── inner socket (receiving is not delayed)
//! ```
//!
//! The kernel here has no netem, so delay is added where quinn hands datagrams to the
//! socket: QUIC's own pacing, loss recovery and congestion control run unchanged on top.
//! Each side delays what it sends, so two emulated endpoints see RTT = the two one-way
//! delays.
//!
//! Correctness notes (quinn 0.11): any `try_send` error but `WouldBlock` kills the
//! connection, so a full queue drops the datagram and returns `Ok` (QUIC retransmits);
//! this socket never returns `WouldBlock`, so its poller is always ready without making
//! quinn spin. The pump is a dedicated OS thread rather than a tokio timer: tokio's
//! timer wheel has 1 ms granularity and rounds deadlines up, which adds about 1 ms per
//! hop; a thread parked with a precise timeout wakes within tens of microseconds.
//! Per-destination FIFO keeps jitter from reordering a flow (reordering would trip
//! QUIC's packet-threshold loss detection, which real WAN paths rarely do).

use quinn::udp::{EcnCodepoint, RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Delay added to datagrams towards one destination.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkDelay {
    /// Fixed one-way delay.
    pub one_way: Duration,
    /// Extra delay drawn uniformly from `[0, jitter]` per datagram.
    pub jitter: Duration,
}

impl LinkDelay {
    /// A fixed delay without jitter.
    pub fn fixed(one_way: Duration) -> Self {
        Self {
            one_way,
            jitter: Duration::ZERO,
        }
    }
}

/// How a [`WanSocket`] delays datagrams.
#[derive(Clone, Debug)]
pub struct WanConfig {
    /// One-way delay per destination address.
    pub links: HashMap<SocketAddr, LinkDelay>,
    /// Delay towards destinations not in `links` (default: none).
    pub default: LinkDelay,
    /// Datagrams held at once before new ones are dropped (default 65,536).
    pub queue_datagrams_max: usize,
    /// Seed of the jitter draws.
    pub seed: u64,
}

impl Default for WanConfig {
    fn default() -> Self {
        Self {
            links: HashMap::new(),
            default: LinkDelay::default(),
            queue_datagrams_max: 65_536,
            seed: 0,
        }
    }
}

/// Counters of one emulated socket.
#[derive(Debug, Default)]
pub struct WanStats {
    /// Datagrams released to the network.
    pub sent: AtomicU64,
    /// Datagrams dropped because the queue was full.
    pub dropped_queue_full: AtomicU64,
    /// Datagrams the kernel refused (logged, dropped).
    pub send_errors: AtomicU64,
    /// Datagrams held right now.
    pub queued: AtomicUsize,
    /// Microseconds past their release time at which released datagrams reached the
    /// kernel, summed (divided by `sent`: the emulation's mean lateness per hop).
    pub late_us: AtomicU64,
    /// The same for datagrams sent before their release time (at most the timer slack).
    pub early_us: AtomicU64,
}

/// One datagram waiting for its release time.
struct Held {
    release: Instant,
    seq: u64,
    destination: SocketAddr,
    ecn: Option<EcnCodepoint>,
    contents: Vec<u8>,
    segment_size: Option<usize>,
    src_ip: Option<IpAddr>,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        (self.release, self.seq) == (other.release, other.seq)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.release, self.seq).cmp(&(other.release, other.seq))
    }
}

/// Release-time bookkeeping shared by senders.
struct Schedule {
    rng: ChaCha8Rng,
    /// Last release per destination, for FIFO.
    last_release: HashMap<SocketAddr, Instant>,
    seq: u64,
}

/// A quinn UDP socket that delays outgoing datagrams per destination.
pub struct WanSocket {
    inner: Arc<dyn AsyncUdpSocket>,
    links: HashMap<SocketAddr, LinkDelay>,
    default: LinkDelay,
    queue_datagrams_max: usize,
    schedule: Mutex<Schedule>,
    pump: mpsc::Sender<Held>,
    stats: Arc<WanStats>,
}

impl fmt::Debug for WanSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WanSocket")
            .field("inner", &self.inner)
            .field("links", &self.links.len())
            .finish_non_exhaustive()
    }
}

impl WanSocket {
    /// Bind a UDP socket at `addr` and wrap it. Must run inside a tokio runtime (the
    /// inner socket is a tokio socket).
    pub fn bind(addr: SocketAddr, config: WanConfig) -> io::Result<Arc<Self>> {
        Self::from_std(std::net::UdpSocket::bind(addr)?, config)
    }

    /// Wrap an already bound UDP socket. Must run inside a tokio runtime.
    pub fn from_std(socket: std::net::UdpSocket, config: WanConfig) -> io::Result<Arc<Self>> {
        let inner = quinn::Runtime::wrap_udp_socket(&quinn::TokioRuntime, socket)?;
        Self::wrap(inner, config)
    }

    /// Wrap an existing quinn socket.
    pub fn wrap(inner: Arc<dyn AsyncUdpSocket>, config: WanConfig) -> io::Result<Arc<Self>> {
        let (tx, rx) = mpsc::channel();
        let stats = Arc::new(WanStats::default());
        let pump_inner = inner.clone();
        let pump_stats = stats.clone();
        std::thread::Builder::new()
            .name("wan-pump".into())
            .spawn(move || pump(rx, pump_inner, pump_stats))?;
        Ok(Arc::new(Self {
            inner,
            links: config.links,
            default: config.default,
            queue_datagrams_max: config.queue_datagrams_max.max(1),
            schedule: Mutex::new(Schedule {
                rng: ChaCha8Rng::seed_from_u64(config.seed),
                last_release: HashMap::new(),
                seq: 0,
            }),
            pump: tx,
            stats,
        }))
    }

    /// Counters.
    pub fn stats(&self) -> Arc<WanStats> {
        self.stats.clone()
    }

    /// The delay towards `destination`.
    pub fn delay_to(&self, destination: SocketAddr) -> LinkDelay {
        self.links
            .get(&destination)
            .copied()
            .unwrap_or(self.default)
    }
}

impl AsyncUdpSocket for WanSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(AlwaysWritable)
    }

    fn try_send(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        if self.stats.queued.load(Ordering::Relaxed) >= self.queue_datagrams_max {
            self.stats
                .dropped_queue_full
                .fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let delay = self.delay_to(transmit.destination);
        let now = Instant::now();
        let held = {
            // A poisoned lock only means another sender panicked mid-update; the
            // schedule is still usable.
            let mut schedule = self.schedule.lock().unwrap_or_else(|e| e.into_inner());
            let jitter = if delay.jitter.is_zero() {
                Duration::ZERO
            } else {
                let max = u64::try_from(delay.jitter.as_nanos()).unwrap_or(u64::MAX);
                Duration::from_nanos(schedule.rng.gen_range(0..=max))
            };
            let mut release = now + delay.one_way + jitter;
            if let Some(&last) = schedule.last_release.get(&transmit.destination) {
                release = release.max(last);
            }
            schedule.last_release.insert(transmit.destination, release);
            schedule.seq += 1;
            Held {
                release,
                seq: schedule.seq,
                destination: transmit.destination,
                ecn: transmit.ecn,
                contents: transmit.contents.to_vec(),
                segment_size: transmit.segment_size,
                src_ip: transmit.src_ip,
            }
        };
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        if self.pump.send(held).is_err() {
            // The pump thread is gone (it only exits when this socket is dropped, or
            // after a panic); dropping is all that is left.
            self.stats.queued.fetch_sub(1, Ordering::Relaxed);
            self.stats.send_errors.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_recv(cx, bufs, meta)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}

/// `try_send` never returns `WouldBlock`, so the socket is always writable.
#[derive(Debug)]
struct AlwaysWritable;

impl UdpPoller for AlwaysWritable {
    fn poll_writable(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Longest a datagram waits for a busy kernel socket before it is dropped.
const SEND_WAIT_MAX: Duration = Duration::from_millis(50);

/// How early the pump releases a datagram: a sleeping thread wakes this much after its
/// deadline at best (Linux's default timer slack), so waking this much before it
/// centres the release on the emulated delay instead of always after it.
const TIMER_SLACK: Duration = Duration::from_micros(50);

/// Wakes the pump thread when the inner socket becomes writable.
struct ThreadWaker(std::thread::Thread);

impl std::task::Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// The pump: hold datagrams in a heap by (release, seq) and send each at its time.
fn pump(rx: mpsc::Receiver<Held>, inner: Arc<dyn AsyncUdpSocket>, stats: Arc<WanStats>) {
    let mut heap: BinaryHeap<Reverse<Held>> = BinaryHeap::new();
    let mut poller = inner.clone().create_io_poller();
    let waker = std::task::Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    loop {
        let now = Instant::now();
        while heap
            .peek()
            .is_some_and(|Reverse(h)| h.release <= now + TIMER_SLACK)
        {
            let Some(Reverse(held)) = heap.pop() else {
                break;
            };
            let sent_at = Instant::now();
            let (counter, off) = if sent_at >= held.release {
                (&stats.late_us, sent_at - held.release)
            } else {
                (&stats.early_us, held.release - sent_at)
            };
            counter.fetch_add(
                u64::try_from(off.as_micros()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
            send(&*inner, poller.as_mut(), &waker, &held, &stats);
            stats.queued.fetch_sub(1, Ordering::Relaxed);
        }
        let received = match heap.peek() {
            Some(Reverse(next)) => rx.recv_timeout(
                next.release
                    .saturating_duration_since(Instant::now() + TIMER_SLACK),
            ),
            None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
        };
        match received {
            Ok(held) => heap.push(Reverse(held)),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Hand one datagram to the kernel; when its buffer is full, wait (parked, woken by the
/// socket's poller) up to [`SEND_WAIT_MAX`], then drop it: QUIC retransmits.
fn send(
    inner: &dyn AsyncUdpSocket,
    mut poller: Pin<&mut dyn UdpPoller>,
    waker: &std::task::Waker,
    held: &Held,
    stats: &WanStats,
) {
    let transmit = Transmit {
        destination: held.destination,
        ecn: held.ecn,
        contents: &held.contents,
        segment_size: held.segment_size,
        src_ip: held.src_ip,
    };
    let deadline = Instant::now() + SEND_WAIT_MAX;
    let mut cx = Context::from_waker(waker);
    loop {
        match inner.try_send(&transmit) {
            Ok(()) => {
                stats.sent.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => {
                stats.send_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(destination = %held.destination, error = %e, "emulated WAN send failed; datagram dropped");
                return;
            }
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                stats.send_errors.fetch_add(1, Ordering::Relaxed);
                return;
            }
            match poller.as_mut().poll_writable(&mut cx) {
                Poll::Ready(Ok(())) => break,
                Poll::Ready(Err(e)) => {
                    stats.send_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(error = %e, "emulated WAN socket not writable; datagram dropped");
                    return;
                }
                Poll::Pending => std::thread::park_timeout(left),
            }
        }
    }
}

#[cfg(test)]
#[path = "wan_test.rs"]
mod tests;
