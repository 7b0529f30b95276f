//! The one piece of the external term format the engine must understand itself: compressed
//! terms (`term_to_binary(T, [compressed])`), which the VM's NIF decoder does not accept.

use std::borrow::Cow;

use flate2::{Decompress, FlushDecompress, Status};

use super::WireError;

const VERSION_MAGIC: u8 = 131;
const COMPRESSED: u8 = 80;

/// True if `payload` is a compressed external term.
pub fn is_compressed(payload: &[u8]) -> bool {
    payload.len() >= 2 && payload[0] == VERSION_MAGIC && payload[1] == COMPRESSED
}

/// Returns `payload` ready for `enif_binary_to_term`: unchanged if it is not compressed, else
/// inflated. The inflated size is announced in the header; one over `max` is refused before any
/// memory is reserved, and the zlib stream must produce exactly that many bytes.
pub fn uncompressed_term(payload: &[u8], max: usize) -> Result<Cow<'_, [u8]>, WireError> {
    if !is_compressed(payload) {
        return Ok(Cow::Borrowed(payload));
    }
    let header = payload.get(2..6).ok_or(WireError::Truncated)?;
    let size = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    if size > max {
        return Err(WireError::FrameTooLarge { len: size, max });
    }
    let mut out = Vec::with_capacity(size + 1);
    out.push(VERSION_MAGIC);
    let mut z = Decompress::new(true);
    let status = z
        .decompress_vec(&payload[6..], &mut out, FlushDecompress::Finish)
        .map_err(|_| WireError::Invalid("zlib stream"))?;
    if status != Status::StreamEnd || out.len() != size + 1 {
        return Err(WireError::Invalid("compressed term size"));
    }
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::ZlibEncoder;
    use flate2::Compression;
    use std::io::Write;

    fn compressed(inner: &[u8], announced: u32) -> Vec<u8> {
        let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
        e.write_all(inner).unwrap();
        let mut v = vec![131, 80];
        v.extend_from_slice(&announced.to_be_bytes());
        v.extend_from_slice(&e.finish().unwrap());
        v
    }

    #[test]
    fn plain_terms_pass_through_and_compressed_ones_inflate() {
        assert_eq!(
            &*uncompressed_term(&[131, 97, 1], 10).unwrap(),
            &[131, 97, 1]
        );
        let inner = [109u8, 0, 0, 0, 3, 1, 2, 3];
        let c = compressed(&inner, inner.len() as u32);
        let out = uncompressed_term(&c, 100).unwrap();
        assert_eq!(out[0], 131);
        assert_eq!(&out[1..], &inner);
    }

    #[test]
    fn lies_and_bombs_are_refused() {
        let inner = vec![0u8; 10_000];
        assert!(
            uncompressed_term(&compressed(&inner, 10_000), 1000).is_err(),
            "over the bound"
        );
        assert!(
            uncompressed_term(&compressed(&inner, 5), 100_000).is_err(),
            "size lie"
        );
        assert!(
            uncompressed_term(&[131, 80, 0, 0], 100).is_err(),
            "truncated"
        );
        assert!(
            uncompressed_term(&[131, 80, 0, 0, 0, 4, 1, 2, 3], 100).is_err(),
            "not zlib"
        );
    }
}
