//! The envelope format. On the wire:
//!
//! ```text
//! "MLCK" | format: u16 LE | key id: 8 bytes | meta_len: u32 LE | parts_len: u64 LE | meta (postcard) | parts (raw) | tag: 32 bytes
//! tag = HMAC-SHA256(key, "MLCK" | format | key id | meta_len | parts_len | meta | BLAKE3(parts))
//! ```
//!
//! The key id ([`key_id`]: the first 8 bytes of the key's BLAKE3 hash) names the key that signed it, so a node
//! checks the tag under that key alone and says which key a checkpoint it cannot open needs. Format 3 (no key
//! id; checkpoints stored before an upgrade) is still opened, under every key the node holds.
//!
//! The metadata (job, sequence number, CPython version, module source digest, frame identities, the library
//! packages the state needs, the length and compression of each part) is small and postcard-encoded; the parts (the pickle, then its out-of-band buffers
//! such as numpy arrays) are stored raw, so a 1 MiB array costs one copy, not an encoding pass. The MAC covers
//! every byte: the parts through their BLAKE3 digest (hash-then-MAC: BLAKE3 hashes about three times faster than
//! SHA-256 here, which is most of the sealing cost of a large checkpoint). It is checked, in constant time,
//! before anything else in the envelope is decoded.
use ring::hmac;
use serde::{Deserialize, Serialize};

pub const MAGIC: [u8; 4] = *b"MLCK";
/// 3: the metadata names the library packages the state needs (`imports`). 4: the header names the key. 5:
/// buffers may be stored in the state's compressed stream ([`Compression::InState`]).
pub const FORMAT_VERSION: u16 = 5;
/// Format 4: as 5, without buffers in the state's stream (opened as it is).
const FORMAT_V4: u16 = 4;
/// The oldest format still opened (3: without a key id).
const OLDEST_FORMAT: u16 = 3;
const KEY_ID: usize = 8;
const HEADER: usize = 4 + 2 + KEY_ID + 4 + 8;
const HEADER_V3: usize = 4 + 2 + 4 + 8;
const MAC_LEN: usize = 32;
/// Metadata larger than this is refused before it is decoded.
const MAX_META: usize = 16 << 20;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("not a microlambda checkpoint (bad magic)")]
    BadMagic,
    #[error("checkpoint is truncated ({0} bytes)")]
    Truncated(usize),
    #[error("checkpoint format version {found} is not supported (this build reads version {FORMAT_VERSION})")]
    Version { found: u16 },
    #[error("checkpoint signature does not verify: forged, damaged, or signed with another key")]
    BadSignature,
    #[error(
        "checkpoint was signed with key {found}, which this node does not hold (it holds {}): a checkpoint of \
         another mesh, or of a key this node no longer accepts",
        held.join(", ")
    )]
    UnknownKey { found: String, held: Vec<String> },
    #[error("checkpoint body is malformed: {0}")]
    Malformed(String),
    #[error("checkpoint was taken on CPython {found}, this worker runs {running}")]
    PythonMismatch { found: String, running: String },
    #[error("checkpoint is for another module source (the job's code changed)")]
    SourceMismatch,
}

/// Identity of one frame's code: a restore against changed code fails clearly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameIdentity {
    pub module: String,
    pub qualname: String,
    pub firstlineno: u32,
    /// blake2b-64 of the code's bytecode, names and constants (hex).
    pub code_hash: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Compression {
    None,
    Zstd {
        raw_len: u64,
    },
    /// A buffer compressed in the state part's stream: its `raw_len` bytes follow the state's, and those of
    /// the buffers before it stored there too; its own part is empty.
    InState {
        raw_len: u64,
    },
}

/// Everything a checkpoint says, authenticated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointBody {
    /// `major.minor` of the CPython that took it.
    pub python: String,
    pub job_id: String,
    pub seq: u64,
    pub created_unix_ms: u64,
    pub module_name: String,
    pub source_sha256: [u8; 32],
    /// Outermost frame first.
    pub frames: Vec<FrameIdentity>,
    /// Top-level names of the library packages the job had imported (sorted; no stdlib, job or runtime
    /// module): a node forks the restore from a zygote that has them imported, when it has one.
    pub imports: Vec<String>,
    /// Pickle (protocol 5) of the job's state.
    pub state_compression: Compression,
    #[serde(with = "serde_bytes")]
    pub state: Vec<u8>,
    /// Out-of-band pickle buffers (numpy arrays), each possibly compressed.
    pub buffers: Vec<(Compression, serde_bytes::ByteBuf)>,
}

/// The authenticated metadata (everything but the parts' bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Meta {
    python: String,
    job_id: String,
    seq: u64,
    created_unix_ms: u64,
    module_name: String,
    source_sha256: [u8; 32],
    frames: Vec<FrameIdentity>,
    imports: Vec<String>,
    /// Compression and stored length of each part: the state first, then the buffers.
    parts: Vec<(Compression, u64)>,
}

/// A sealed checkpoint as pieces: `head`, then the parts in order, then `tag`.
#[derive(Debug)]
pub struct Sealed<'a> {
    pub head: Vec<u8>,
    pub parts: Vec<&'a [u8]>,
    pub tag: [u8; MAC_LEN],
}

impl Sealed<'_> {
    pub fn len(&self) -> usize {
        self.head.len() + self.parts.iter().map(|p| p.len()).sum::<usize>() + MAC_LEN
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        out.extend_from_slice(&self.head);
        for p in &self.parts {
            out.extend_from_slice(p);
        }
        out.extend_from_slice(&self.tag);
        out
    }

    pub fn write_to<W: std::io::Write>(&self, w: &mut W) -> std::io::Result<()> {
        w.write_all(&self.head)?;
        for p in &self.parts {
            w.write_all(p)?;
        }
        w.write_all(&self.tag)
    }
}

/// Sealing and opening envelopes: sealed with one key; opened with it or, during a rotation, with the
/// previous key until a deadline.
pub struct Envelope {
    key: hmac::Key,
    id: [u8; KEY_ID],
    /// Keys still accepted when opening (never used to seal), each with its id, until its instant.
    previous: Vec<(hmac::Key, [u8; KEY_ID], std::time::Instant)>,
}

/// A key's public id: the first 8 bytes of its BLAKE3 hash, as hex. It names a key in logs and docs without
/// revealing it.
pub fn key_id(key: &[u8]) -> String {
    hex(&id_of(key))
}

fn id_of(key: &[u8]) -> [u8; KEY_ID] {
    blake3::hash(key).as_bytes()[..KEY_ID].try_into().expect("8 bytes")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// The fixed-size start of an envelope, read before anything is verified (lengths only; the tag covers it).
struct Head {
    /// None in format 3.
    key_id: Option<[u8; KEY_ID]>,
    /// Where the metadata starts.
    len: usize,
    meta_len: usize,
    parts_len: u64,
}

impl Head {
    fn read(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        if bytes.len() < 4 {
            return Err(EnvelopeError::Truncated(bytes.len()));
        }
        if bytes[..4] != MAGIC {
            return Err(EnvelopeError::BadMagic);
        }
        if bytes.len() < 6 {
            return Err(EnvelopeError::Truncated(bytes.len()));
        }
        let version = u16::from_le_bytes([bytes[4], bytes[5]]);
        let (key_id, len) = match version {
            FORMAT_VERSION | FORMAT_V4 => {
                let id = bytes.get(6..6 + KEY_ID).ok_or(EnvelopeError::Truncated(bytes.len()))?;
                (Some(id.try_into().expect("8 bytes")), HEADER)
            }
            OLDEST_FORMAT => (None, HEADER_V3),
            found => return Err(EnvelopeError::Version { found }),
        };
        if bytes.len() < len + MAC_LEN {
            return Err(EnvelopeError::Truncated(bytes.len()));
        }
        let meta_len = u32::from_le_bytes(bytes[len - 12..len - 8].try_into().expect("4 bytes")) as usize;
        let parts_len = u64::from_le_bytes(bytes[len - 8..len].try_into().expect("8 bytes"));
        Ok(Head { key_id, len, meta_len, parts_len })
    }
}

impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Envelope { key: <hidden> }")
    }
}

impl Envelope {
    pub fn new(key: &[u8]) -> Self {
        Self { key: hmac::Key::new(hmac::HMAC_SHA256, key), id: id_of(key), previous: Vec::new() }
    }

    /// Also open envelopes signed with `old` until `until` (a key rotation: nodes seal with the new key at once
    /// and still restore checkpoints sealed before it).
    pub fn accepting_until(mut self, old: &[u8], until: std::time::Instant) -> Self {
        self.previous.push((hmac::Key::new(hmac::HMAC_SHA256, old), id_of(old), until));
        self
    }

    /// The keys this envelope opens with now: its own, then the previous ones not yet expired.
    fn held(&self) -> impl Iterator<Item = (&hmac::Key, &[u8; KEY_ID])> {
        let now = std::time::Instant::now();
        std::iter::once((&self.key, &self.id))
            .chain(self.previous.iter().filter(move |(_, _, until)| now < *until).map(|(k, id, _)| (k, id)))
    }

    /// The signature checks out under the key the header names (format 3: under any key held).
    fn verifies(&self, key_id: Option<&[u8; KEY_ID]>, msg: &[u8], tag: &[u8]) -> Result<(), EnvelopeError> {
        let ok = match key_id {
            Some(id) => {
                let Some((key, _)) = self.held().find(|(_, held)| *held == id) else {
                    return Err(EnvelopeError::UnknownKey {
                        found: hex(id),
                        held: self.held().map(|(_, id)| hex(id)).collect(),
                    });
                };
                hmac::verify(key, msg, tag).is_ok()
            }
            None => self.held().any(|(key, _)| hmac::verify(key, msg, tag).is_ok()),
        };
        if ok {
            Ok(())
        } else {
            Err(EnvelopeError::BadSignature)
        }
    }

    fn tag(&self, head: &[u8], parts: &[u8]) -> hmac::Tag {
        self.tag_of(head, blake3::hash(parts))
    }

    fn tag_of(&self, head: &[u8], digest: blake3::Hash) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(head);
        ctx.update(digest.as_bytes());
        ctx.sign()
    }

    /// The signed header and metadata (room for `more` bytes after them).
    fn head(&self, meta: &[u8], parts_len: u64, more: usize) -> Vec<u8> {
        let mut head = Vec::with_capacity(HEADER + meta.len() + more);
        head.extend_from_slice(&MAGIC);
        head.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        head.extend_from_slice(&self.id);
        head.extend_from_slice(&(meta.len() as u32).to_le_bytes());
        head.extend_from_slice(&parts_len.to_le_bytes());
        head.extend_from_slice(meta);
        head
    }

    /// Encode and sign.
    pub fn seal(&self, body: &CheckpointBody) -> Vec<u8> {
        self.seal_parts(body).to_vec()
    }

    /// Encode and sign without concatenating the parts: a writer can send `head`, the parts and `tag` one after
    /// the other, so a large checkpoint is never copied into one buffer.
    pub fn seal_parts<'a>(&self, body: &'a CheckpointBody) -> Sealed<'a> {
        let mut parts: Vec<&'a [u8]> = vec![&body.state];
        parts.extend(body.buffers.iter().map(|(_, b)| b.as_slice()));
        let mut lens = vec![(body.state_compression, body.state.len() as u64)];
        lens.extend(body.buffers.iter().map(|(c, b)| (*c, b.len() as u64)));
        let meta = Meta {
            python: body.python.clone(),
            job_id: body.job_id.clone(),
            seq: body.seq,
            created_unix_ms: body.created_unix_ms,
            module_name: body.module_name.clone(),
            source_sha256: body.source_sha256,
            frames: body.frames.clone(),
            imports: body.imports.clone(),
            parts: lens,
        };
        let meta = postcard::to_stdvec(&meta).expect("checkpoint metadata always encodes");
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let head = self.head(&meta, total as u64, 0);
        let mut hasher = blake3::Hasher::new();
        for p in &parts {
            hasher.update(p);
        }
        let tag = self.tag_of(&head, hasher.finalize());
        let mut t = [0u8; MAC_LEN];
        t.copy_from_slice(tag.as_ref());
        Sealed { head, parts, tag: t }
    }

    /// Verify and decode. Nothing of the metadata is interpreted before the MAC checks out.
    pub fn open(&self, bytes: &[u8]) -> Result<CheckpointBody, EnvelopeError> {
        let h = Head::read(bytes)?;
        let expected = (h.len + MAC_LEN + h.meta_len) as u64;
        if h.meta_len > MAX_META || h.parts_len > u64::MAX - expected || bytes.len() as u64 != expected + h.parts_len {
            return Err(EnvelopeError::Truncated(bytes.len()));
        }
        let (signed, tag) = bytes.split_at(bytes.len() - MAC_LEN);
        let (head, parts) = signed.split_at(h.len + h.meta_len);
        let digest = blake3::hash(parts);
        let mut msg = Vec::with_capacity(head.len() + 32);
        msg.extend_from_slice(head);
        msg.extend_from_slice(digest.as_bytes());
        self.verifies(h.key_id.as_ref(), &msg, tag)?;
        let meta: Meta = postcard::from_bytes(&head[h.len..]).map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
        let declared: u64 = meta.parts.iter().map(|(_, n)| *n).fold(0u64, |a, n| a.saturating_add(n));
        if meta.parts.is_empty() || declared != parts.len() as u64 {
            return Err(EnvelopeError::Malformed("part lengths do not add up".into()));
        }
        let mut off = 0usize;
        let mut pieces = meta.parts.iter().map(|(c, n)| {
            let p = &parts[off..off + *n as usize];
            off += *n as usize;
            (*c, p.to_vec())
        });
        let (state_compression, state) = pieces.next().expect("checked non-empty");
        let buffers = pieces.map(|(c, b)| (c, serde_bytes::ByteBuf::from(b))).collect();
        Ok(CheckpointBody {
            python: meta.python,
            job_id: meta.job_id,
            seq: meta.seq,
            created_unix_ms: meta.created_unix_ms,
            module_name: meta.module_name,
            source_sha256: meta.source_sha256,
            frames: meta.frames,
            imports: meta.imports,
            state_compression,
            state,
            buffers,
        })
    }

    /// Frame and sign arbitrary metadata bytes and parts, for fuzzing the decoder past the MAC check (a fuzzer
    /// cannot forge tags, so without this it would only ever exercise the refusal path).
    #[doc(hidden)]
    pub fn seal_raw(&self, meta: &[u8], parts: &[u8]) -> Vec<u8> {
        let mut out = self.head(meta, parts.len() as u64, parts.len() + MAC_LEN);
        let head_len = out.len();
        out.extend_from_slice(parts);
        let tag = self.tag(&out[..head_len], &out[head_len..]);
        out.extend_from_slice(tag.as_ref());
        out
    }

    /// Verify the MAC only (hosts that route checkpoints without opening them).
    pub fn verify(&self, bytes: &[u8]) -> Result<(), EnvelopeError> {
        self.open(bytes).map(|_| ())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::checkpoint::compress_parts;

    pub(in crate::checkpoint) fn body() -> CheckpointBody {
        let (c, state) = compress_parts(b"state".repeat(2000));
        CheckpointBody {
            python: "3.11".into(),
            job_id: "j1".into(),
            seq: 7,
            created_unix_ms: 1,
            module_name: "mljob_x".into(),
            source_sha256: [3; 32],
            frames: vec![FrameIdentity {
                module: "mljob_x".into(),
                qualname: "main".into(),
                firstlineno: 1,
                code_hash: "00".into(),
            }],
            imports: vec!["numpy".into(), "sklearn".into()],
            state_compression: c,
            state,
            buffers: vec![(Compression::None, serde_bytes::ByteBuf::from(vec![1, 2, 3]))],
        }
    }

    #[test]
    fn a_rotation_opens_the_previous_keys_envelopes_until_its_deadline_only() {
        use std::time::{Duration, Instant};
        let sealed_old = Envelope::new(b"old").seal(&body());
        let later = Instant::now() + Duration::from_secs(60);
        let rotated = Envelope::new(b"new").accepting_until(b"old", later);
        assert_eq!(rotated.open(&sealed_old).unwrap().seq, body().seq);
        // It seals with the new key only: a node still on the old key alone cannot open it.
        let sealed_new = rotated.seal(&body());
        let unknown = |found: &[u8], held: &[&[u8]]| EnvelopeError::UnknownKey {
            found: key_id(found),
            held: held.iter().map(|k| key_id(k)).collect(),
        };
        assert_eq!(Envelope::new(b"old").open(&sealed_new), Err(unknown(b"new", &[b"old"])));
        assert!(Envelope::new(b"new").open(&sealed_new).is_ok());
        // Past the deadline, or a key it was never told of: refused, naming the key it would need.
        let past = Instant::now().checked_sub(Duration::from_millis(1)).unwrap();
        let expired = Envelope::new(b"new").accepting_until(b"old", past);
        assert_eq!(expired.open(&sealed_old), Err(unknown(b"old", &[b"new"])));
        let sealed_other = Envelope::new(b"other").seal(&body());
        assert_eq!(rotated.open(&sealed_other), Err(unknown(b"other", &[b"new", b"old"])));
        assert_eq!(key_id(b"new").len(), 16);
        assert_ne!(key_id(b"new"), key_id(b"old"));
    }

    #[test]
    fn seal_then_open_gives_the_body_back() {
        let e = Envelope::new(b"k");
        let b = body();
        let sealed = e.seal(&b);
        let opened = e.open(&sealed).unwrap();
        assert_eq!(opened, b);
        let (state, bufs) = opened.into_parts().unwrap();
        assert_eq!(state, b"state".repeat(2000));
        assert_eq!(bufs, vec![vec![1, 2, 3]]);
    }

    #[test]
    fn another_key_is_refused_by_its_id() {
        let sealed = Envelope::new(b"k").seal(&body());
        let e = Envelope::new(b"other").open(&sealed).unwrap_err();
        assert_eq!(e, EnvelopeError::UnknownKey { found: key_id(b"k"), held: vec![key_id(b"other")] });
        assert!(e.to_string().contains(&key_id(b"k")) && e.to_string().contains(&key_id(b"other")), "{e}");
        // The id names a key held, but another key signed it: the tag decides.
        let mut forged = sealed.clone();
        forged[6..6 + KEY_ID].copy_from_slice(&id_of(b"other"));
        assert_eq!(Envelope::new(b"other").open(&forged), Err(EnvelopeError::BadSignature));
    }

    /// A format-3 envelope (no key id) as nodes before format 4 sealed it.
    fn seal_v3(e: &Envelope, b: &CheckpointBody) -> Vec<u8> {
        let v4 = e.seal(b);
        let meta_len = u32::from_le_bytes(v4[14..18].try_into().unwrap()) as usize;
        let mut out = v4[..4].to_vec();
        out.extend_from_slice(&OLDEST_FORMAT.to_le_bytes());
        out.extend_from_slice(&v4[14..HEADER + meta_len]);
        let head_len = out.len();
        out.extend_from_slice(&v4[HEADER + meta_len..v4.len() - MAC_LEN]);
        let tag = e.tag(&out[..head_len], &out[head_len..]);
        out.extend_from_slice(tag.as_ref());
        out
    }

    #[test]
    fn a_format_3_envelope_is_still_opened_under_any_key_held() {
        use std::time::{Duration, Instant};
        let v3 = seal_v3(&Envelope::new(b"old"), &body());
        assert_eq!(Envelope::new(b"old").open(&v3).unwrap(), body());
        let rotated = Envelope::new(b"new").accepting_until(b"old", Instant::now() + Duration::from_secs(60));
        assert_eq!(rotated.open(&v3).unwrap(), body());
        assert_eq!(Envelope::new(b"other").open(&v3), Err(EnvelopeError::BadSignature));
    }

    #[test]
    fn every_truncation_is_refused() {
        let e = Envelope::new(b"k");
        let sealed = e.seal(&body());
        for n in 0..sealed.len() {
            assert!(e.open(&sealed[..n]).is_err(), "truncated to {n} was accepted");
        }
    }

    #[test]
    fn every_single_bit_flip_is_refused() {
        let e = Envelope::new(b"k");
        let sealed = e.seal(&body());
        for i in 0..sealed.len() {
            for bit in [0u8, 3, 7] {
                let mut b = sealed.clone();
                b[i] ^= 1 << bit;
                assert!(e.open(&b).is_err(), "flip of byte {i} bit {bit} was accepted");
            }
        }
    }

    #[test]
    fn a_newer_format_version_is_named() {
        let e = Envelope::new(b"k");
        let mut sealed = e.seal(&body());
        sealed[4] = 9; // its header may be laid out otherwise: named before anything else is read
        assert_eq!(e.open(&sealed), Err(EnvelopeError::Version { found: 9 }));
    }

    #[test]
    fn random_bytes_never_panic() {
        use rand::{Rng, SeedableRng};
        let e = Envelope::new(b"k");
        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        let good = e.seal(&body());
        for _ in 0..20_000 {
            let n = rng.random_range(0..300);
            let mut b: Vec<u8> = (0..n).map(|_| rng.random()).collect();
            if rng.random_bool(0.5) && b.len() >= 10 {
                b[..10].copy_from_slice(&good[..10]);
            }
            assert!(e.open(&b).is_err());
        }
    }

    #[test]
    fn signed_garbage_metadata_is_refused_not_panicking() {
        use rand::{Rng, SeedableRng};
        let e = Envelope::new(b"k");
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let good = e.seal(&body());
        let meta_len = u32::from_le_bytes(good[14..18].try_into().unwrap()) as usize;
        let meta = &good[HEADER..HEADER + meta_len];
        for _ in 0..20_000 {
            let mut m = meta.to_vec();
            for _ in 0..rng.random_range(1..4) {
                let i = rng.random_range(0..m.len());
                m[i] = rng.random();
            }
            let parts: Vec<u8> = (0..rng.random_range(0..64)).map(|_| rng.random()).collect();
            // Decoding may succeed (a mutation can land in a string) but must never panic.
            let _ = e.open(&e.seal_raw(&m, &parts));
        }
    }
}
