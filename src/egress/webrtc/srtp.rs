//! SRTP for the RTP camgate sends to viewers (RFC 3711 AES_CM_128_HMAC_SHA1_80,
//! RFC 7714 AEAD_AES_128_GCM): each packet is written, header and
//! encrypted payload, straight into the send buffer, with no allocation.
//! The keys are the ones the `webrtc` crate exported from DTLS (RFC 5764);
//! the crate keeps protecting RTCP and reading the viewer's.

use aes::cipher::{BlockEncrypt, InnerIvInit, KeyInit, StreamCipher};
use aes::Aes128;
use hmac::{Hmac, Mac};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};
use sha1::Sha1;
use webrtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use webrtc::srtp::protection_profile::ProtectionProfile;

/// The profiles offered in DTLS, the ones this module implements (both are
/// in every browser), AES-GCM first: cheaper per byte than AES-CM plus
/// HMAC-SHA1.
pub(super) const PROFILES: [SrtpProtectionProfile; 2] = [
    SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
    SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
];

/// RFC 3711 4.3.1 key derivation labels.
const LABEL_RTP_KEY: u8 = 0;
const LABEL_RTP_AUTH: u8 = 1;
const LABEL_RTP_SALT: u8 = 2;

/// Why keys cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SrtpError {
    /// DTLS agreed on a profile not implemented here.
    #[error("SRTP profile {0:?} not implemented")]
    Profile(ProtectionProfile),
    /// The key or salt has the wrong length for the profile.
    #[error("SRTP master key of {key} bytes or salt of {salt} bytes does not fit {profile:?}")]
    KeyLength {
        profile: ProtectionProfile,
        key: usize,
        salt: usize,
    },
}

/// The RTP header fields camgate writes (no CSRC, no extension).
#[derive(Debug, Clone, Copy)]
pub(super) struct Header {
    pub payload_type: u8,
    pub marker: bool,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

impl Header {
    fn write(&self, out: &mut Vec<u8>) {
        out.push(0x80);
        out.push(self.payload_type & 0x7f | if self.marker { 0x80 } else { 0 });
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
    }
}

/// One direction's SRTP transform (the sending side of one viewer; every
/// stream of the viewer shares it, told apart by SSRC).
pub(super) enum SrtpSender {
    /// AES_CM_128_HMAC_SHA1_80.
    CmSha1(Box<CmSha1>),
    /// AEAD_AES_128_GCM.
    Gcm {
        /// ring's AES-GCM (assembly with AES-NI and CLMUL), much cheaper
        /// per byte than RustCrypto's aes-gcm.
        cipher: Box<LessSafeKey>,
        salt: [u8; 12],
    },
}

impl std::fmt::Debug for SrtpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys.
        f.write_str(match self {
            SrtpSender::CmSha1(_) => "SrtpSender(AES_CM_128_HMAC_SHA1_80)",
            SrtpSender::Gcm { .. } => "SrtpSender(AEAD_AES_128_GCM)",
        })
    }
}

/// AES_CM_128_HMAC_SHA1_80 session keys.
pub(super) struct CmSha1 {
    cipher: Aes128,
    salt: [u8; 14],
    /// Keyed once; cloned per packet.
    auth: Hmac<Sha1>,
}

/// RFC 3711 4.3.3: the AES-CM PRF output for `label` (key derivation rate
/// 0, as RFC 5764 has it), `out.len()` bytes.
fn derive(master: &Aes128, master_salt: &[u8], label: u8, out: &mut [u8]) {
    let mut x = [0u8; 16];
    x[..master_salt.len()].copy_from_slice(master_salt);
    x[7] ^= label;
    for (i, chunk) in out.chunks_mut(16).enumerate() {
        let mut block = x;
        block[14..].copy_from_slice(&(i as u16).to_be_bytes());
        let mut b = aes::Block::from(block);
        master.encrypt_block(&mut b);
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
}

impl SrtpSender {
    /// The sender for `profile` with the master key and salt from DTLS.
    pub fn new(profile: ProtectionProfile, key: &[u8], salt: &[u8]) -> Result<Self, SrtpError> {
        let bad = || SrtpError::KeyLength {
            profile,
            key: key.len(),
            salt: salt.len(),
        };
        if key.len() != 16 || salt.len() != profile.salt_len() {
            return Err(bad());
        }
        let master = Aes128::new_from_slice(key).map_err(|_| bad())?;
        let mut session_key = [0u8; 16];
        derive(&master, salt, LABEL_RTP_KEY, &mut session_key);
        match profile {
            ProtectionProfile::Aes128CmHmacSha1_80 => {
                let mut session_salt = [0u8; 14];
                derive(&master, salt, LABEL_RTP_SALT, &mut session_salt);
                let mut auth_key = [0u8; 20];
                derive(&master, salt, LABEL_RTP_AUTH, &mut auth_key);
                Ok(SrtpSender::CmSha1(Box::new(CmSha1 {
                    cipher: Aes128::new(&session_key.into()),
                    salt: session_salt,
                    auth: <Hmac<Sha1> as Mac>::new_from_slice(&auth_key).map_err(|_| bad())?,
                })))
            }
            ProtectionProfile::AeadAes128Gcm => {
                let mut session_salt = [0u8; 12];
                derive(&master, salt, LABEL_RTP_SALT, &mut session_salt);
                let key = UnboundKey::new(&AES_128_GCM, &session_key).map_err(|_| bad())?;
                Ok(SrtpSender::Gcm {
                    cipher: Box::new(LessSafeKey::new(key)),
                    salt: session_salt,
                })
            }
            other => Err(SrtpError::Profile(other)),
        }
    }

    /// Bytes an SRTP packet has beyond its RTP header and payload.
    pub fn overhead(&self) -> usize {
        match self {
            SrtpSender::CmSha1(_) => 10,
            SrtpSender::Gcm { .. } => 16,
        }
    }

    /// Appends the SRTP packet of `header` and `payload` to `out`, the
    /// payload encrypted as it is copied in; returns its length. `roc` is
    /// the rollover counter of `header.seq` (the packet index is
    /// `roc << 16 | seq`).
    pub fn protect(&self, header: &Header, roc: u32, payload: &[u8], out: &mut Vec<u8>) -> usize {
        let start = out.len();
        header.write(out);
        let body = out.len();
        out.extend_from_slice(payload);
        match self {
            SrtpSender::CmSha1(k) => {
                let CmSha1 { cipher, salt, auth } = &**k;
                let mut iv = [0u8; 16];
                iv[..14].copy_from_slice(salt);
                xor(&mut iv[4..8], &header.ssrc.to_be_bytes());
                xor(&mut iv[8..12], &roc.to_be_bytes());
                xor(&mut iv[12..14], &header.seq.to_be_bytes());
                let mut ctr = ctr::Ctr128BE::<Aes128>::from_core(ctr::CtrCore::inner_iv_init(
                    cipher.clone(),
                    &iv.into(),
                ));
                ctr.apply_keystream(&mut out[body..]);
                let mut mac = auth.clone();
                mac.update(&out[start..]);
                mac.update(&roc.to_be_bytes());
                let tag = mac.finalize().into_bytes();
                out.extend_from_slice(&tag[..10]);
            }
            SrtpSender::Gcm { cipher, salt } => {
                let mut iv = [0u8; 12];
                iv[2..6].copy_from_slice(&header.ssrc.to_be_bytes());
                iv[6..10].copy_from_slice(&roc.to_be_bytes());
                iv[10..12].copy_from_slice(&header.seq.to_be_bytes());
                xor(&mut iv, salt);
                let (aad, data) = out[start..].split_at_mut(body - start);
                // Cannot fail: the message is far below GCM's length limit
                // (a packet without its tag would only be dropped).
                let tag = cipher.seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(iv),
                    Aad::from(&*aad),
                    data,
                );
                if let Ok(tag) = tag {
                    out.extend_from_slice(tag.as_ref());
                }
            }
        }
        out.len() - start
    }
}

fn xor(a: &mut [u8], b: &[u8]) {
    for (a, b) in a.iter_mut().zip(b) {
        *a ^= b;
    }
}

/// A stream's packet index (RFC 3711 3.3.1): the sequence number extended
/// with the rollover counter, counted here as packets are sent in order.
#[derive(Debug, Clone, Copy)]
pub(super) struct PacketIndex(u64);

impl PacketIndex {
    /// Starts at sequence number `seq` with rollover counter 0.
    pub fn new(seq: u16) -> Self {
        PacketIndex(u64::from(seq))
    }

    /// The next packet's sequence number and rollover counter; advances.
    pub fn next(&mut self) -> (u16, u32) {
        let i = self.0;
        self.0 += 1;
        Self::split(i)
    }

    /// The sequence number and rollover counter of index `i`.
    pub fn split(i: u64) -> (u16, u32) {
        (i as u16, (i >> 16) as u32)
    }

    /// The index the next packet will have.
    pub fn peek(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use webrtc::srtp::context::Context;

    fn keys(profile: ProtectionProfile) -> (Vec<u8>, Vec<u8>) {
        let key: Vec<u8> = (0..16u8)
            .map(|i| i.wrapping_mul(37).wrapping_add(3))
            .collect();
        let salt: Vec<u8> = (0..profile.salt_len() as u8).map(|i| 200 - i * 3).collect();
        (key, salt)
    }

    /// Packets protected here are opened by webrtc-srtp (the receiving
    /// side's implementation) with the same keys, across a sequence number
    /// wrap (the rollover counter).
    #[test]
    fn the_crates_srtp_opens_our_packets_across_the_wrap() {
        for profile in [
            ProtectionProfile::Aes128CmHmacSha1_80,
            ProtectionProfile::AeadAes128Gcm,
        ] {
            let (key, salt) = keys(profile);
            let tx = SrtpSender::new(profile, &key, &salt).unwrap();
            let mut rx = Context::new(&key, &salt, profile, None, None).unwrap();
            let mut index = PacketIndex::new(65_530);
            for n in 0..20u32 {
                let (seq, roc) = index.next();
                let header = Header {
                    payload_type: 102,
                    marker: n % 3 == 0,
                    seq,
                    timestamp: 9000 * n,
                    ssrc: 0x1234_5678,
                };
                let payload: Vec<u8> = (0..(100 + n as usize * 61)).map(|i| i as u8).collect();
                let mut out = vec![0xee; 5];
                let len = tx.protect(&header, roc, &payload, &mut out);
                assert_eq!(len, out.len() - 5);
                assert_eq!(len, 12 + payload.len() + tx.overhead());
                let plain = rx
                    .decrypt_rtp(&out[5..])
                    .unwrap_or_else(|e| panic!("{profile:?} seq {seq}: {e}"));
                assert_eq!(&plain[12..], &payload[..], "{profile:?} seq {seq}");
                assert_eq!(u16::from_be_bytes([plain[2], plain[3]]), seq);
                assert_eq!(plain[1] & 0x80 != 0, header.marker);
                assert_eq!(plain[1] & 0x7f, 102);
            }
            assert_eq!(
                PacketIndex::split(index.peek()),
                (65_530u16.wrapping_add(20), 1)
            );
        }
    }

    #[test]
    fn wrong_keys_and_profiles_are_refused() {
        assert!(SrtpSender::new(ProtectionProfile::AeadAes128Gcm, &[0; 16], &[0; 14]).is_err());
        assert!(SrtpSender::new(ProtectionProfile::AeadAes256Gcm, &[0; 32], &[0; 12]).is_err());
        assert!(
            SrtpSender::new(ProtectionProfile::Aes128CmHmacSha1_80, &[0; 15], &[0; 14]).is_err()
        );
    }
}
