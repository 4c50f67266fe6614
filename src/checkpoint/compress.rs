//! Compression of a checkpoint's parts (the pickle and its out-of-band buffers) and its undoing.
//!
//! The pickle and every buffer that is small, or whose sample compresses, or that fits [`JOIN_BUDGET`] are
//! compressed as one zstd stream stored as the pickle's part; a buffer in it is [`Compression::InState`], its own
//! part empty. One stream finds what parts repeat of each other: NeuroKit2's frames hold hundreds of 1 KB columns
//! (parts under 4 KiB are never compressed alone) and a signal both as an array and as a column (a buffer whose
//! sample alone does not compress); apart, stress checkpoints were 1.9x their size as one stream
//! (docs/BENCHMARKS.md, "Parts compressed as one stream"). Larger incompressible buffers are stored as they are.
use super::envelope::{CheckpointBody, Compression, EnvelopeError};

/// Parts smaller than this are never compressed alone.
const COMPRESS_MIN: usize = 4096;
/// Sample size used to decide whether a part is worth compressing.
const SAMPLE: usize = 16 * 1024;

thread_local! {
    /// One zstd context per thread: creating a context costs more than compressing a 64 KiB sample.
    static ZSTD: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> = const { std::cell::RefCell::new(None) };
}

thread_local! {
    /// The streaming context of [`zstd1_stream`], kept for the same reason.
    static ZSTD_STREAM: std::cell::RefCell<Option<zstd::zstd_safe::CCtx<'static>>> = const { std::cell::RefCell::new(None) };
}

/// Parts compressed as one zstd frame (level 1), without copying them into one buffer first.
fn zstd1_stream(parts: &[&[u8]], raw_len: usize) -> Option<Vec<u8>> {
    use zstd::zstd_safe::{zstd_sys::ZSTD_EndDirective, CCtx, CParameter, InBuffer, OutBuffer, ResetDirective};
    ZSTD_STREAM.with(|z| {
        let mut z = z.borrow_mut();
        if z.is_none() {
            let mut c = CCtx::try_create()?;
            c.set_parameter(CParameter::CompressionLevel(1)).ok()?;
            *z = Some(c);
        }
        let c = z.as_mut()?;
        c.reset(ResetDirective::SessionOnly).ok()?;
        c.set_pledged_src_size(Some(raw_len as u64)).ok()?;
        let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(raw_len));
        let mut step = |out: &mut Vec<u8>, input: &mut InBuffer<'_>, end| {
            if out.len() == out.capacity() {
                out.reserve(1 << 16);
            }
            let pos = out.len();
            c.compress_stream2(&mut OutBuffer::around_pos(out, pos), input, end).ok()
        };
        for p in parts {
            let mut input = InBuffer::around(p);
            while input.pos() < p.len() {
                step(&mut out, &mut input, ZSTD_EndDirective::ZSTD_e_continue)?;
            }
        }
        while step(&mut out, &mut InBuffer::around(&[]), ZSTD_EndDirective::ZSTD_e_end)? != 0 {}
        Some(out)
    })
}

fn zstd1(data: &[u8]) -> Option<Vec<u8>> {
    ZSTD.with(|z| {
        let mut z = z.borrow_mut();
        if z.is_none() {
            *z = zstd::bulk::Compressor::new(1).ok();
        }
        z.as_mut()?.compress(data).ok()
    })
}

/// Incompressible-looking bytes (parts whose sample does not compress) a checkpoint's state stream may still
/// take in: zstd level 1 runs at about 650 MB/s over random float64s here (`zstd -b1` over 48 MB of them), so
/// at most ~3 ms of sealing.
const JOIN_BUDGET: usize = 2 << 20;

/// Whether a part is small, or large with a sample that compresses well.
fn looks_compressible(data: &[u8]) -> bool {
    if data.len() < COMPRESS_MIN {
        return true;
    }
    let sample = &data[..data.len().min(SAMPLE)];
    matches!(zstd1(sample), Some(c) if c.len() * 10 < sample.len() * 8)
}

/// A checkpoint's parts compressed as a whole (the module's doc): the state with the buffers that look
/// compressible, or are small, or fit [`JOIN_BUDGET`], as one stream; the other buffers each as
/// [`compress_parts`] does.
pub fn compress_checkpoint(
    state: Vec<u8>,
    buffers: Vec<Vec<u8>>,
) -> (Compression, Vec<u8>, Vec<(Compression, serde_bytes::ByteBuf)>) {
    let apart = |buffers: Vec<Vec<u8>>| -> Vec<(Compression, serde_bytes::ByteBuf)> {
        buffers
            .into_iter()
            .map(|b| {
                let (c, b) = compress_parts(b);
                (c, serde_bytes::ByteBuf::from(b))
            })
            .collect()
    };
    let mut budget = JOIN_BUDGET;
    let mut joins = |p: &[u8]| {
        if looks_compressible(p) {
            return true;
        }
        let fits = p.len() <= budget;
        if fits {
            budget -= p.len();
        }
        fits
    };
    if !joins(&state) {
        return (Compression::None, state, apart(buffers));
    }
    let joined: Vec<bool> = buffers.iter().map(|b| joins(b)).collect();
    let mut parts: Vec<&[u8]> = vec![&state];
    parts.extend(buffers.iter().zip(&joined).filter(|(_, j)| **j).map(|(b, _)| b.as_slice()));
    let raw_len: usize = parts.iter().map(|p| p.len()).sum();
    let stream = if raw_len < COMPRESS_MIN { None } else { zstd1_stream(&parts, raw_len) };
    let Some(stream) = stream.filter(|c| c.len() < raw_len) else {
        let (c, state) = compress_parts(state);
        return (c, state, apart(buffers));
    };
    // A buffer left out is one whose sample was found not to compress: stored as it is, not sampled again.
    let buffers = buffers
        .into_iter()
        .zip(joined)
        .map(|(b, j)| {
            if j {
                (Compression::InState { raw_len: b.len() as u64 }, serde_bytes::ByteBuf::new())
            } else {
                (Compression::None, serde_bytes::ByteBuf::from(b))
            }
        })
        .collect();
    (Compression::Zstd { raw_len: raw_len as u64 }, stream, buffers)
}

/// Compress a part when it is large and a sample of it compresses well; otherwise keep it as is (random
/// floats do not compress, and trying costs more than the pickling).
pub fn compress_parts(data: Vec<u8>) -> (Compression, Vec<u8>) {
    if data.len() < COMPRESS_MIN || !looks_compressible(&data) {
        return (Compression::None, data);
    }
    match zstd1(&data) {
        Some(c) if c.len() < data.len() => (Compression::Zstd { raw_len: data.len() as u64 }, c),
        _ => (Compression::None, data),
    }
}

/// Undo [`compress_parts`].
pub fn decompress(c: Compression, data: Vec<u8>) -> Result<Vec<u8>, EnvelopeError> {
    match c {
        Compression::None => Ok(data),
        Compression::Zstd { raw_len } => {
            if raw_len > (1 << 34) {
                return Err(EnvelopeError::Malformed("declared size too large".into()));
            }
            zstd::bulk::decompress(&data, raw_len as usize).map_err(|e| EnvelopeError::Malformed(e.to_string()))
        }
        Compression::InState { .. } => Err(EnvelopeError::Malformed("a part in the state's stream outside it".into())),
    }
}

impl CheckpointBody {
    /// The state and buffers, decompressed.
    pub fn into_parts(self) -> Result<(Vec<u8>, Vec<Vec<u8>>), EnvelopeError> {
        let mut state = decompress(self.state_compression, self.state)?;
        let in_state = self.buffers.iter().try_fold(0u64, |n, (c, b)| match c {
            Compression::InState { .. } if !b.is_empty() => None,
            Compression::InState { raw_len } => n.checked_add(*raw_len),
            _ => Some(n),
        });
        let own = match in_state {
            Some(n) if n <= state.len() as u64 => state.len() - n as usize,
            _ => return Err(EnvelopeError::Malformed("the buffers in the state's stream do not fit it".into())),
        };
        // Each joined buffer copied out of the stream once; then the stream cut to the state's own bytes.
        let mut at = own;
        let mut bufs = Vec::with_capacity(self.buffers.len());
        for (c, b) in self.buffers {
            if let Compression::InState { raw_len } = c {
                bufs.push(state[at..at + raw_len as usize].to_vec());
                at += raw_len as usize;
            } else {
                bufs.push(decompress(c, b.into_vec())?);
            }
        }
        if own < state.len() {
            state.truncate(own);
            state.shrink_to_fit();
        }
        Ok((state, bufs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::envelope::tests::body;
    use crate::checkpoint::Envelope;

    #[test]
    fn a_checkpoints_parts_compress_as_one_stream_and_come_back() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let signal: Vec<u8> = (0..200_000).map(|_| rng.random()).collect();
        let big: Vec<u8> = (0..JOIN_BUDGET + 1).map(|_| rng.random()).collect();
        // A pickle holding the signal in band, the same signal as a buffer (its sample alone does not
        // compress), 300 small columns that repeat one another, and noise over the budget.
        let mut state = b"pickle opcodes ".repeat(400);
        state.extend_from_slice(&signal);
        let column: Vec<u8> = (0..1000).map(|_| rng.random()).collect();
        let mut buffers = vec![signal.clone()];
        buffers.extend((0..300).map(|i| if i % 3 == 0 { vec![0u8; 1000] } else { column.clone() }));
        buffers.push(big.clone());
        let apart: usize =
            std::iter::once(state.clone()).chain(buffers.iter().cloned()).map(|p| compress_parts(p).1.len()).sum();
        let (c, stream, parts) = compress_checkpoint(state.clone(), buffers.clone());
        assert!(matches!(c, Compression::Zstd { .. }));
        assert!(parts[..301].iter().all(|(c, b)| matches!(c, Compression::InState { .. }) && b.is_empty()));
        assert_eq!(parts[301].0, Compression::None, "noise over the budget is stored apart, as it is");
        let joint = stream.len() + parts.iter().map(|(_, b)| b.len()).sum::<usize>();
        // Apart, the signal is stored twice and the 1 KB columns raw.
        assert!(joint + 200_000 < apart, "one stream {joint} bytes, apart {apart}");
        let mut b = body();
        (b.state_compression, b.state, b.buffers) = (c, stream, parts);
        let e = Envelope::new(b"k");
        let (s2, bufs2) = e.open(&e.seal(&b)).unwrap().into_parts().unwrap();
        assert_eq!(s2, state);
        assert_eq!(bufs2, buffers);
    }

    #[test]
    fn buffers_that_do_not_fit_the_state_stream_are_refused() {
        let (c, stream, parts) = compress_checkpoint(b"state ".repeat(2000), vec![b"column".repeat(100)]);
        assert!(matches!(parts[0].0, Compression::InState { raw_len: 600 }));
        let with = |state_c: Compression, bufs: Vec<(Compression, serde_bytes::ByteBuf)>| {
            let mut b = body();
            (b.state_compression, b.state, b.buffers) = (state_c, stream.clone(), bufs);
            b.into_parts()
        };
        assert!(with(c, parts.clone()).is_ok());
        let over = vec![(Compression::InState { raw_len: 12_601 }, serde_bytes::ByteBuf::new())];
        let overflow = vec![(Compression::InState { raw_len: u64::MAX }, serde_bytes::ByteBuf::new()); 2];
        let not_empty = vec![(Compression::InState { raw_len: 600 }, serde_bytes::ByteBuf::from(vec![1]))];
        for bad in [over, overflow, not_empty] {
            assert!(matches!(with(c, bad), Err(EnvelopeError::Malformed(_))));
        }
        assert!(matches!(with(Compression::InState { raw_len: 1 }, vec![]), Err(EnvelopeError::Malformed(_))));
    }

    #[test]
    fn incompressible_data_is_stored_as_is() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let noise: Vec<u8> = (0..100_000).map(|_| rng.random()).collect();
        let (c, out) = compress_parts(noise.clone());
        assert_eq!(c, Compression::None);
        assert_eq!(out, noise);
    }
}
