//! RTP packets to one UDP destination sent in as few system calls as the
//! kernel allows: packets of equal size back to back in one buffer leave in
//! one `sendmsg` with Linux UDP GSO (`UDP_SEGMENT`), which cuts them into
//! datagrams again; without GSO, one `send_to` per packet as before.

use std::io::{self, IoSlice};
use std::net::SocketAddr;

use socket2::{MsgHdr, SockAddr, SockRef};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Most datagrams in one GSO send: the kernel's `UDP_MAX_SEGMENTS` (64 up
/// to Linux 6.8, 128 since).
pub(super) const MAX_SEGMENTS: usize = 64;
/// Most bytes in one GSO send: the largest UDP payload is 65,507 bytes.
pub(super) const MAX_BYTES: usize = 65_000;

/// Packets for one destination waiting to leave together. Every packet but
/// the last is exactly `segment` bytes (GSO's rule; the last may be
/// shorter), so the buffer cut in `segment`-byte pieces gives the packets
/// back.
#[derive(Debug)]
pub(super) struct UdpBatch {
    /// The packets, back to back; reused from batch to batch.
    buf: Vec<u8>,
    /// The GSO segment size: the largest packet the output sends (RTP
    /// header and largest payload).
    segment: usize,
    /// Packets in `buf`.
    packets: usize,
    /// Length of the last packet in `buf`.
    last: usize,
    /// Most packets in one send: 1 without GSO.
    max_packets: usize,
    /// The `UDP_SEGMENT` control message, built once.
    cmsg: Vec<u8>,
}

impl UdpBatch {
    /// A batch of packets of at most `segment` bytes sent from `socket`,
    /// with GSO when its kernel has it.
    pub(super) fn new(socket: &UdpSocket, segment: usize) -> Self {
        let gso = crate::sys::udp_gso_supported(socket) && segment <= usize::from(u16::MAX);
        let max_packets = if gso {
            MAX_SEGMENTS.min(MAX_BYTES / segment.max(1)).max(1)
        } else {
            1
        };
        UdpBatch {
            buf: Vec::with_capacity(segment * max_packets),
            segment,
            packets: 0,
            last: 0,
            max_packets,
            cmsg: crate::sys::udp_segment_cmsg(segment as u16),
        }
    }

    /// Whether a packet of `len` bytes can join the batch (else
    /// [`UdpBatch::flush`] first): the batch is empty, or GSO can carry one
    /// more, every packet so far is a full segment and this one is no
    /// longer. A packet longer than a segment only ever leaves alone.
    pub(super) fn has_room(&self, len: usize) -> bool {
        self.packets == 0
            || (self.packets < self.max_packets && self.last == self.segment && len <= self.segment)
    }

    /// The buffer to append one packet to (after [`UdpBatch::has_room`]);
    /// call [`UdpBatch::appended`] after.
    pub(super) fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Records the packet of `len` bytes just appended to [`UdpBatch::buf`].
    pub(super) fn appended(&mut self, len: usize) {
        self.packets += 1;
        self.last = len;
    }

    /// Sends the batch to `dest` and empties it. Errors are not returned:
    /// RTP is fire and forget, and a consumer that is not listening yet
    /// (ICMP port unreachable) is normal.
    pub(super) async fn flush(&mut self, socket: &UdpSocket, dest: SocketAddr) {
        let result = match self.packets {
            0 => return,
            1 => socket.send_to(&self.buf, dest).await,
            _ => self.send_gso(socket, dest).await,
        };
        if let Err(e) = result {
            if self.packets > 1 && gso_refused(&e) {
                tracing::info!(
                    error = %e,
                    destination = %dest,
                    "UDP GSO refused; one system call per RTP packet from now on"
                );
                self.max_packets = 1;
                for packet in self.buf.chunks(self.segment) {
                    if let Err(e) = socket.send_to(packet, dest).await {
                        tracing::trace!(error = %e, "rtp send failed");
                    }
                }
            } else {
                tracing::trace!(error = %e, "rtp send failed");
            }
        }
        self.buf.clear();
        self.packets = 0;
        self.last = 0;
    }

    async fn send_gso(&self, socket: &UdpSocket, dest: SocketAddr) -> io::Result<usize> {
        send_segments(socket, dest, &[IoSlice::new(&self.buf)], &self.cmsg).await
    }
}

/// Whether a GSO send failed because segmenting cannot work on this path,
/// so that one datagram per call is the way from now on: EIO, the device
/// cannot checksum the segments; EINVAL, a segment over the path MTU (IP
/// would have fragmented it).
pub(super) fn gso_refused(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EIO | libc::EINVAL))
}

/// Sends the bytes of `iov`, back to back, to `dest` in one `sendmsg`
/// with the control message `cmsg` (a `UDP_SEGMENT` one cuts them into
/// datagrams), waiting while the socket's send buffer is full.
pub(super) async fn send_segments(
    socket: &UdpSocket,
    dest: SocketAddr,
    iov: &[IoSlice<'_>],
    cmsg: &[u8],
) -> io::Result<usize> {
    let addr = SockAddr::from(dest);
    loop {
        socket.writable().await?;
        let sent = socket.try_io(Interest::WRITABLE, || {
            let msg = MsgHdr::new()
                .with_addr(&addr)
                .with_buffers(iov)
                .with_control(cmsg);
            SockRef::from(socket).sendmsg(&msg, 0)
        });
        match sent {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packets of a picture (full segments, then a shorter one) sent in one
    /// batch arrive as the same datagrams, in order.
    #[tokio::test]
    async fn batch_arrives_as_its_packets() {
        let rx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let dest = rx.local_addr().unwrap();
        let segment = 100;
        let mut batch = UdpBatch::new(&tx, segment);
        let lens = [100, 100, 100, 37, 100, 12, 5, 300, 100, 100];
        let mut sent = Vec::new();
        for (i, &len) in lens.iter().enumerate() {
            if !batch.has_room(len) {
                batch.flush(&tx, dest).await;
            }
            let packet = vec![i as u8; len];
            batch.buf().extend_from_slice(&packet);
            batch.appended(len);
            sent.push(packet);
        }
        batch.flush(&tx, dest).await;
        let mut buf = [0u8; 2048];
        for want in sent {
            let n = tokio::time::timeout(std::time::Duration::from_secs(2), rx.recv(&mut buf))
                .await
                .expect("datagram arrives")
                .unwrap();
            assert_eq!(&buf[..n], &want[..]);
        }
    }

    #[test]
    fn cmsg_is_one_header_and_two_bytes() {
        let c = crate::sys::udp_segment_cmsg(1400);
        if cfg!(target_os = "linux") {
            assert!(c.len() >= 18, "{}", c.len());
        }
    }
}
