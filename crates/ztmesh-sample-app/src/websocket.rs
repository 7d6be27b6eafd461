//! The parts of WebSocket (RFC 6455) the sample app and its client need:
//! the handshake's accept key and single-frame messages of up to 64 KiB.

use base64::Engine;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
pub const MAX_PAYLOAD: usize = 64 * 1024;

pub const OP_TEXT: u8 = 0x1;
pub const OP_CLOSE: u8 = 0x8;

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (RFC 6455 §4.2.2).
pub fn accept_key(key: &str) -> String {
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        format!("{key}{GUID}").as_bytes(),
    );
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("reading a frame: {0}")]
    Io(#[from] std::io::Error),
    #[error("a frame of {0} bytes is over the {MAX_PAYLOAD}-byte limit")]
    TooLarge(u64),
    #[error("fragmented messages are not supported")]
    Fragmented,
}

/// One frame: opcode and unmasked payload.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    pub opcode: u8,
    pub payload: Vec<u8>,
}

pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Frame, FrameError> {
    let mut head = [0u8; 2];
    r.read_exact(&mut head).await?;
    if head[0] & 0x80 == 0 {
        return Err(FrameError::Fragmented);
    }
    let opcode = head[0] & 0x0f;
    let masked = head[1] & 0x80 != 0;
    let len = match head[1] & 0x7f {
        126 => u64::from(r.read_u16().await?),
        127 => r.read_u64().await?,
        n => u64::from(n),
    };
    if len > MAX_PAYLOAD as u64 {
        return Err(FrameError::TooLarge(len));
    }
    let mut mask = [0u8; 4];
    if masked {
        r.read_exact(&mut mask).await?;
    }
    let mut payload = vec![0u8; len as usize];
    r.read_exact(&mut payload).await?;
    if masked {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
    }
    Ok(Frame { opcode, payload })
}

/// Writes one final frame; clients must mask (`mask: Some`), servers must not.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    opcode: u8,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) -> std::io::Result<()> {
    let mut out = vec![0x80 | opcode];
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(m) => {
            out.extend_from_slice(&m);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ m[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    w.write_all(&out).await?;
    w.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_from_the_rfc() {
        // RFC 6455 §1.3's example.
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[tokio::test]
    async fn frames_round_trip_masked_and_not() {
        for (payload, mask) in [
            (b"hello".to_vec(), Some([1, 2, 3, 4])),
            (vec![7u8; 300], None),
            (vec![9u8; 70_000 - 6_000], Some([9, 9, 9, 9])),
        ] {
            let mut buf = Vec::new();
            write_frame(&mut buf, OP_TEXT, &payload, mask)
                .await
                .unwrap();
            let frame = read_frame(&mut buf.as_slice()).await.unwrap();
            assert_eq!(
                frame,
                Frame {
                    opcode: OP_TEXT,
                    payload
                }
            );
        }
        let mut big = Vec::new();
        write_frame(&mut big, OP_TEXT, &vec![0u8; MAX_PAYLOAD + 1], None)
            .await
            .unwrap();
        assert!(matches!(
            read_frame(&mut big.as_slice()).await,
            Err(FrameError::TooLarge(_))
        ));
    }
}
