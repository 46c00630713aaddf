//! The one module allowed `unsafe`: calls into the C library that no safe
//! wrapper offers. Each call states why it is sound. Everything else in
//! the crate is `#![deny(unsafe_code)]` (see `src/lib.rs`), and
//! `tests/architecture.rs` checks that `unsafe` appears nowhere else.

#![allow(unsafe_code)]

/// glibc gives each thread that allocates its own heap arena (up to 8 per
/// core); freed memory stays in whichever arena it came from, so a gateway
/// whose viewers come and go on every worker thread keeps growing its RSS
/// for a long time before it levels off. Two arenas keep it flat (measured
/// by the viewer churn test in `tests/e2e_webrtc.rs`). `MALLOC_ARENA_MAX`
/// in the environment still wins. Call it first in `main`, before the
/// runtime starts its threads.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only changes allocator tuning; called before any
        // other thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

/// Whether the kernel under `socket` has UDP GSO (`UDP_SEGMENT`, Linux
/// 4.18): asked with getsockopt, as quinn-udp does, because an older
/// kernel ignores the control message and would send the whole buffer as
/// one datagram.
#[cfg(target_os = "linux")]
pub fn udp_gso_supported(socket: &impl std::os::fd::AsFd) -> bool {
    use std::os::fd::AsRawFd;
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the descriptor is borrowed from a live socket; `value` and
    // `len` are valid for writes of the sizes given for the whole call.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_fd().as_raw_fd(),
            libc::SOL_UDP,
            libc::UDP_SEGMENT,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    rc == 0
}

/// No UDP GSO outside Linux.
#[cfg(not(target_os = "linux"))]
pub fn udp_gso_supported<T>(_socket: &T) -> bool {
    false
}

/// The control message that makes one `sendmsg` of packets back to back
/// leave as datagrams of `segment` bytes each (the last may be shorter):
/// `UDP_SEGMENT` at level `SOL_UDP` (Linux UDP GSO), laid out as
/// `CMSG_SPACE(2)` bytes. Empty outside Linux.
pub fn udp_segment_cmsg(segment: u16) -> Vec<u8> {
    #[cfg(target_os = "linux")]
    {
        use std::mem::{offset_of, size_of};
        // SAFETY: CMSG_SPACE and CMSG_LEN are arithmetic on their argument
        // (libc declares them unsafe only because C macros are).
        let (space, len) = unsafe { (libc::CMSG_SPACE(2), libc::CMSG_LEN(2)) };
        let mut out = vec![0u8; space as usize];
        let put = |out: &mut [u8], at: usize, bytes: &[u8]| {
            out[at..at + bytes.len()].copy_from_slice(bytes)
        };
        let cmsg_len = offset_of!(libc::cmsghdr, cmsg_len);
        match size_of::<libc::size_t>() {
            8 => put(&mut out, cmsg_len, &(len as u64).to_ne_bytes()),
            _ => put(&mut out, cmsg_len, &len.to_ne_bytes()),
        }
        put(
            &mut out,
            offset_of!(libc::cmsghdr, cmsg_level),
            &libc::SOL_UDP.to_ne_bytes(),
        );
        put(
            &mut out,
            offset_of!(libc::cmsghdr, cmsg_type),
            &libc::UDP_SEGMENT.to_ne_bytes(),
        );
        // The data follows the aligned header: CMSG_LEN(0) bytes in.
        // SAFETY: as above, arithmetic only.
        let data = unsafe { libc::CMSG_LEN(0) } as usize;
        put(&mut out, data, &segment.to_ne_bytes());
        out
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = segment;
        Vec::new()
    }
}
