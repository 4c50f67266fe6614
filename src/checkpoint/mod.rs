//! Checkpoints as bytes: the signed, versioned envelope around a job's pickled state.
//!
//! Architecture invariant: nothing unpickles a checkpoint before [`Envelope::open`] has verified its MAC;
//! unpickling runs code, so a forged or damaged checkpoint must never reach Python.
mod compress;
mod envelope;

pub use compress::{compress_checkpoint, compress_parts, decompress};

pub use envelope::{
    key_id, CheckpointBody, Compression, Envelope, EnvelopeError, FrameIdentity, Sealed, FORMAT_VERSION, MAGIC,
};

/// SHA-256 of a job's module source, as recorded in its checkpoints.
pub fn source_digest(source: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, source.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}
