//! The viewers' shared UDP port, written in batches: under the `webrtc`
//! crate's UDP mux, every datagram (SRTP, SRTCP, STUN, DTLS) is queued, and
//! a sender task (one per worker thread, each for its share of the
//! destinations) sends what the viewers queued while it slept, each
//! viewer's packets of equal size back to back in one `sendmsg` with Linux
//! UDP GSO (`UDP_SEGMENT`; a picture's packets have one size but the
//! last), in the order they were queued. One `sendto` per packet was
//! about a third of camgate's CPU with 200 viewers.
//!
//! The sender lets the tasks that are ready run before it takes the queue
//! (it yields while the queue grows, a few times at most), so the viewers
//! writing a picture queue all of it; the delay is a few turns of the
//! runtime, well under a millisecond. A full queue
//! (more than [`MAX_QUEUED`] bytes, when the socket's send buffer is full)
//! makes writers wait, as the socket itself would.

use std::io::{self, IoSlice};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::net::UdpSocket;
use tokio::sync::Notify;
use webrtc::util::conn::Conn;

use crate::egress::udp_batch::{gso_refused, send_segments, MAX_BYTES, MAX_SEGMENTS};

/// Most turns of the runtime the sender lets pass before it sends what
/// is queued.
const MAX_YIELDS: usize = 8;
/// Bytes queued before writers wait for the sender.
const MAX_QUEUED: usize = 4 << 20;
/// Buffer bytes a queue keeps between bursts: after a burst (new viewers'
/// fast start sends them a GOP at once, up to [`MAX_QUEUED`]), a buffer
/// used to under a quarter of its size shrinks back.
const KEEP_BYTES: usize = 256 << 10;

/// A UDP socket whose sends are queued and leave in batches (see the
/// module docs); receiving is the socket's own.
pub(super) struct UdpQueue {
    socket: Arc<UdpSocket>,
    /// One queue and sender per worker thread, each for its share of the
    /// destinations: on loopback the kernel's delivery to the receiver runs
    /// inside the sender's system call, more than one core can do for 500
    /// viewers.
    shards: Vec<Arc<Shared>>,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Wakes the sender when the queue stops being empty.
    queued: Notify,
    /// Wakes writers waiting for room when the sender takes the queue.
    taken: Notify,
    closed: AtomicBool,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding the lock leaves only whole packets behind.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Datagrams back to back in one buffer, each with its destination.
#[derive(Default)]
struct Queue {
    bytes: Vec<u8>,
    datagrams: Vec<Datagram>,
}

#[derive(Clone, Copy)]
struct Datagram {
    dest: SocketAddr,
    /// The RTP stream (SSRC) the datagram belongs to, or [`NOT_RTP`].
    stream: u64,
    start: usize,
    len: usize,
}

/// The stream of every datagram that is not RTP (RTCP, STUN, DTLS): these
/// keep their order among themselves.
const NOT_RTP: u64 = 1 << 32;

/// The SSRC of an RTP packet (RFC 5761's demultiplexing: first byte 128 to
/// 191, second byte outside RTCP's 192 to 223), else [`NOT_RTP`].
fn stream_of(datagram: &[u8]) -> u64 {
    match datagram {
        [first @ 128..=191, second, _, _, _, _, _, _, s0, s1, s2, s3, ..]
            if !(192..=223).contains(second) =>
        {
            u64::from(u32::from_be_bytes([*s0, *s1, *s2, *s3]))
        }
        _ => NOT_RTP,
    }
}

impl UdpQueue {
    /// Queues sends on `socket`; starts the sender task (on the current
    /// runtime), which ends when this is dropped or closed.
    pub(super) fn new(socket: UdpSocket) -> UdpQueue {
        let socket = Arc::new(socket);
        let senders = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
        let shards = (0..senders)
            .map(|_| {
                let shared = Arc::new(Shared {
                    queue: Mutex::new(Queue::default()),
                    queued: Notify::new(),
                    taken: Notify::new(),
                    closed: AtomicBool::new(false),
                });
                tokio::spawn(run_sender(socket.clone(), shared.clone()));
                shared
            })
            .collect();
        UdpQueue { socket, shards }
    }

    /// The queue for `dest`: always the same one, so that a destination's
    /// datagrams keep their order.
    fn shard(&self, dest: SocketAddr) -> &Shared {
        let key = match dest.ip() {
            IpAddr::V4(ip) => u64::from(ip.to_bits()),
            IpAddr::V6(ip) => ip.to_bits() as u64,
        };
        let key = (key ^ (u64::from(dest.port()) << 32)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        &self.shards[((key >> 32) as usize) % self.shards.len()]
    }

    fn close_sender(&self) {
        for shared in &self.shards {
            shared.closed.store(true, Ordering::Release);
            shared.queued.notify_one();
        }
    }
}

impl Drop for UdpQueue {
    fn drop(&mut self) {
        self.close_sender();
    }
}

#[async_trait::async_trait]
impl Conn for UdpQueue {
    async fn connect(&self, addr: SocketAddr) -> webrtc::util::Result<()> {
        Ok(self.socket.connect(addr).await?)
    }

    async fn recv(&self, buf: &mut [u8]) -> webrtc::util::Result<usize> {
        Ok(self.socket.recv(buf).await?)
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc::util::Result<(usize, SocketAddr)> {
        Ok(self.socket.recv_from(buf).await?)
    }

    async fn send(&self, buf: &[u8]) -> webrtc::util::Result<usize> {
        Ok(self.socket.send(buf).await?)
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc::util::Result<usize> {
        if buf.len() > MAX_BYTES {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "datagram too long").into());
        }
        let shared = self.shard(target);
        loop {
            let room = shared.taken.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let mut q = shared.queue();
                if q.bytes.len() < MAX_QUEUED {
                    let start = q.bytes.len();
                    q.bytes.extend_from_slice(buf);
                    q.datagrams.push(Datagram {
                        dest: target,
                        stream: stream_of(buf),
                        start,
                        len: buf.len(),
                    });
                    let first = q.datagrams.len() == 1;
                    drop(q);
                    if first {
                        shared.queued.notify_one();
                    }
                    return Ok(buf.len());
                }
            }
            if shared.closed.load(Ordering::Acquire) {
                return Err(webrtc::util::Error::ErrAlreadyClosed);
            }
            room.await;
        }
    }

    fn local_addr(&self) -> webrtc::util::Result<SocketAddr> {
        Ok(self.socket.local_addr()?)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }

    async fn close(&self) -> webrtc::util::Result<()> {
        self.close_sender();
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

async fn run_sender(socket: Arc<UdpSocket>, shared: Arc<Shared>) {
    let mut batch = Queue::default();
    let mut order: Vec<usize> = Vec::new();
    let mut gso = crate::sys::udp_gso_supported(&*socket);
    let mut cmsg = (0, Vec::new());
    loop {
        shared.queued.notified().await;
        if shared.closed.load(Ordering::Acquire) {
            shared.taken.notify_waiters();
            return;
        }
        // The tasks that are ready (viewers in the middle of a picture)
        // queue the rest of their packets first: yield while the queue
        // grows, a few turns at most.
        let mut queued = 0;
        for _ in 0..MAX_YIELDS {
            tokio::task::yield_now().await;
            let now = shared.queue().datagrams.len();
            if now == queued {
                break;
            }
            queued = now;
        }
        std::mem::swap(&mut *shared.queue(), &mut batch);
        shared.taken.notify_waiters();

        // Each RTP stream's datagrams together, in the order queued (a
        // viewer's audio packets would cut its video's GSO runs short).
        order.clear();
        order.extend(0..batch.datagrams.len());
        order.sort_unstable_by_key(|&i| (batch.datagrams[i].dest, batch.datagrams[i].stream, i));
        let mut i = 0;
        while i < order.len() {
            let first = batch.datagrams[order[i]];
            let end = if gso {
                gso_run(&batch, &order, i)
            } else {
                i + 1
            };
            let payload = |k: usize| {
                let d = batch.datagrams[order[k]];
                &batch.bytes[d.start..d.start + d.len]
            };
            if end - i == 1 {
                if let Err(e) = socket.send_to(payload(i), first.dest).await {
                    tracing::trace!(error = %e, destination = %first.dest, "WebRTC send failed");
                }
            } else {
                if cmsg.0 != first.len {
                    cmsg = (first.len, crate::sys::udp_segment_cmsg(first.len as u16));
                }
                let iov: Vec<IoSlice<'_>> = (i..end).map(|k| IoSlice::new(payload(k))).collect();
                if let Err(e) = send_segments(&socket, first.dest, &iov, &cmsg.1).await {
                    if gso_refused(&e) {
                        tracing::info!(error = %e, "UDP GSO refused on the WebRTC port");
                        gso = false;
                        for k in i..end {
                            let _ = socket.send_to(payload(k), first.dest).await;
                        }
                    } else {
                        tracing::trace!(error = %e, destination = %first.dest, "WebRTC send failed");
                    }
                }
            }
            i = end;
        }
        batch.shrink_after_burst();
        batch.bytes.clear();
        batch.datagrams.clear();
    }
}

impl Queue {
    /// Gives back what a burst grew the buffers to, once they are used to
    /// under a quarter of it (the queue and the sender's batch swap, so
    /// both pass here).
    fn shrink_after_burst(&mut self) {
        let used = self.bytes.len();
        if self.bytes.capacity() > KEEP_BYTES && used < self.bytes.capacity() / 4 {
            self.bytes.shrink_to(KEEP_BYTES.max(2 * used));
            let datagrams = self.datagrams.len();
            self.datagrams.shrink_to(2 * datagrams);
        }
    }
}

/// The end of the GSO send that starts at `order[i]`: datagrams to the
/// same destination, all as long as the first but the last (which may be
/// shorter), within the kernel's limits.
fn gso_run(batch: &Queue, order: &[usize], i: usize) -> usize {
    let first = batch.datagrams[order[i]];
    let mut bytes = first.len;
    let mut end = i + 1;
    while end < order.len() && end - i < MAX_SEGMENTS {
        let prev = batch.datagrams[order[end - 1]];
        let next = batch.datagrams[order[end]];
        if next.dest != first.dest
            || next.stream != first.stream
            || prev.len != first.len
            || next.len > first.len
            || bytes + next.len > MAX_BYTES
        {
            break;
        }
        bytes += next.len;
        end += 1;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Datagrams from several writers to two destinations, of sizes that
    /// make GSO runs and break them, in two RTP streams and as other
    /// datagrams: all arrive, each stream's in the order written.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_datagram_arrives_in_order() {
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let dests = [a.local_addr().unwrap(), b.local_addr().unwrap()];
        let queue = Arc::new(UdpQueue::new(UdpSocket::bind("127.0.0.1:0").await.unwrap()));
        const LENS: [usize; 11] = [600, 600, 600, 200, 600, 45, 600, 600, 1000, 600, 80];
        // Few and short enough to fit the receivers' socket buffers (212,992
        // bytes by default) should the readers not run until the end.
        let per_dest = 150;
        // Datagram n: RTP of SSRC 1 or 2, or not RTP (first byte 0),
        // carrying n in its sequence number field.
        fn make(n: usize) -> Vec<u8> {
            let mut d = vec![0u8; LENS[n % LENS.len()]];
            let kind = (n % 3) as u8;
            d[0] = if kind == 0 { 0 } else { 0x80 };
            d[1] = 96;
            d[2..4].copy_from_slice(&(n as u16).to_be_bytes());
            d[11] = kind;
            d
        }
        let mut writers = Vec::new();
        for dest in dests {
            let queue = queue.clone();
            writers.push(tokio::spawn(async move {
                for n in 0..per_dest {
                    queue.send_to(&make(n), dest).await.unwrap();
                    if n % 7 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            }));
        }
        let readers: Vec<_> = [a, b]
            .into_iter()
            .map(|rx| {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut next = [0usize, 1, 2];
                    for _ in 0..per_dest {
                        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv(&mut buf))
                            .await
                            .expect("datagram arrives")
                            .unwrap();
                        let kind = usize::from(buf[11]);
                        let n = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
                        assert_eq!(n, next[kind], "stream {kind} out of order");
                        assert_eq!(&buf[..got], &make(n)[..]);
                        next[kind] += 3;
                    }
                    assert_eq!(next.map(|n| n / 3), [per_dest / 3; 3]);
                })
            })
            .collect();
        for r in readers {
            r.await.unwrap();
        }
        for w in writers {
            w.await.unwrap();
        }
    }

    #[test]
    fn runs_end_at_a_shorter_datagram_or_another_destination() {
        let x: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let y: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let mut q = Queue::default();
        for (dest, len) in [(x, 10), (x, 10), (x, 4), (x, 10), (y, 10), (x, 10), (x, 12)] {
            q.datagrams.push(Datagram {
                dest,
                stream: NOT_RTP,
                start: 0,
                len,
            });
        }
        let order: Vec<usize> = (0..q.datagrams.len()).collect();
        assert_eq!(gso_run(&q, &order, 0), 3);
        assert_eq!(gso_run(&q, &order, 3), 4);
        assert_eq!(gso_run(&q, &order, 4), 5);
        assert_eq!(gso_run(&q, &order, 5), 6);
    }

    #[test]
    fn rtp_streams_are_told_apart_from_rtcp_stun_and_dtls() {
        let mut rtp = [0u8; 20];
        rtp[0] = 0x80;
        rtp[1] = 96;
        rtp[8..12].copy_from_slice(&0xdead_beef_u32.to_be_bytes());
        assert_eq!(stream_of(&rtp), 0xdead_beef);
        rtp[1] = 0x80 | 111; // marker bit set
        assert_eq!(stream_of(&rtp), 0xdead_beef);
        let mut rtcp = rtp;
        rtcp[1] = 200; // sender report
        assert_eq!(stream_of(&rtcp), NOT_RTP);
        assert_eq!(
            stream_of(&[0, 1, 0, 8, 0x21, 0x12, 0xa4, 0x42, 0, 0, 0, 0]),
            NOT_RTP
        );
        assert_eq!(
            stream_of(&[22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            NOT_RTP
        );
        assert_eq!(stream_of(&rtp[..11]), NOT_RTP);
    }

    #[test]
    fn buffers_shrink_back_after_a_burst() {
        let datagram = |start: usize| Datagram {
            dest: "127.0.0.1:9".parse().unwrap(),
            stream: NOT_RTP,
            start,
            len: 1200,
        };
        let mut q = Queue::default();
        // A burst: 4 MiB queued at once.
        q.bytes.resize(4 << 20, 0);
        q.datagrams.extend((0..3500).map(|i| datagram(i * 1200)));
        q.shrink_after_burst();
        assert!(q.bytes.capacity() >= 4 << 20, "in use, kept");
        q.bytes.clear();
        q.datagrams.clear();
        // The next batches are small: the buffers shrink to what they use.
        q.bytes.resize(100_000, 0);
        q.datagrams.extend((0..80).map(|i| datagram(i * 1200)));
        q.shrink_after_burst();
        assert!(q.bytes.capacity() < 4 << 20);
        assert!(q.bytes.capacity() >= KEEP_BYTES);
        assert!(q.datagrams.capacity() < 3500);
        assert_eq!(q.bytes.len(), 100_000, "nothing queued is lost");
        assert_eq!(q.datagrams.len(), 80);
    }
}
