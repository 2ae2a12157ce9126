//! The gRPC codec of Inland's services: prost's encoding, but each message is decoded from
//! its bytes split off tonic's buffer rather than through that buffer. tonic's `DecodeBuf`
//! advances a `BytesMut` at every field read (an out-of-line call with bookkeeping), which
//! under load was ~5 % of the gateway's CPU; `Bytes` advances by a pointer bump, and
//! `bytes` fields (a frame's JPEG) are still sliced, not copied.

use std::marker::PhantomData;

use prost::Message;
use prost::bytes::Buf;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder};
use tonic_prost::ProstEncoder;

/// Named in the generated services by `build.rs` (`codec_path`).
#[derive(Debug, Clone)]
pub struct BytesCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for BytesCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for BytesCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = BytesDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        BytesDecoder(PhantomData)
    }
}

#[derive(Debug, Clone)]
pub struct BytesDecoder<U>(PhantomData<U>);

impl<U: Message + Default> Decoder for BytesDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        let message = buf.copy_to_bytes(buf.remaining());
        // As tonic-prost maps it, following gRPC's status code guide.
        U::decode(message)
            .map(Some)
            .map_err(|e| Status::internal(e.to_string()))
    }
}
