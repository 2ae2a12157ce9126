//! JPEG in, pixels, JPEG out. Only decoded pixels are ever re-encoded, so nothing of the
//! input file other than the picture (EXIF, GPS, XMP, maker notes, thumbnails, ICC
//! profiles, comments) can reach the output.

use jpeg_encoder::{ColorType, Encoder, SamplingFactor};
use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

use crate::Error;
use crate::config::Limits;

/// A decoded frame: packed RGB, 3 bytes a pixel, row after row.
#[derive(Debug, Clone)]
pub struct Frame {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
}

impl Frame {
    pub fn decode(jpeg: &[u8], limits: &Limits) -> Result<Frame, Error> {
        if !jpeg.starts_with(&[0xFF, 0xD8]) {
            return Err(Error::NotJpeg);
        }
        // A file cut short loses its end-of-image marker; decoders paint the missing part
        // grey, which would publish a frame whose content nobody looked at.
        if !ends_with_eoi(jpeg) {
            return Err(Error::CorruptJpeg(
                "no end-of-image marker: the file is truncated".into(),
            ));
        }
        let options = DecoderOptions::default()
            .set_strict_mode(true)
            .jpeg_set_out_colorspace(ColorSpace::RGB)
            // Our own limits are checked below, once the header is known.
            .set_max_width(usize::from(u16::MAX))
            .set_max_height(usize::from(u16::MAX));
        let mut decoder = JpegDecoder::new_with_options(ZCursor::new(jpeg), options);
        decoder.decode_headers().map_err(corrupt)?;
        let info = decoder
            .info()
            .ok_or_else(|| Error::CorruptJpeg("no frame header".into()))?;
        let (width, height) = (usize::from(info.width), usize::from(info.height));
        if width > limits.max_side || height > limits.max_side || width * height > limits.max_pixels
        {
            return Err(too_large(width, height, limits));
        }
        let mut rgb = vec![0; width * height * 3];
        decoder.decode_into(&mut rgb).map_err(corrupt)?;
        Ok(Frame { width, height, rgb })
    }

    /// Baseline JPEG with a bare JFIF header: no metadata segment is written.
    pub fn encode(&self, quality: u8) -> Result<Vec<u8>, Error> {
        let (w, h) = (dim_u16(self.width)?, dim_u16(self.height)?);
        let mut out = Vec::with_capacity(self.rgb.len() / 8);
        let mut encoder = Encoder::new(&mut out, quality);
        // 4:2:0 like camera encoders: half the chroma work and size, no visible loss.
        encoder.set_sampling_factor(SamplingFactor::F_2_2);
        encoder
            .encode(&self.rgb, w, h, ColorType::Rgb)
            .map_err(|e| Error::Encode(e.to_string()))?;
        Ok(out)
    }
}

fn ends_with_eoi(jpeg: &[u8]) -> bool {
    // Some encoders pad after EOI; tolerate zero bytes, nothing else.
    let end = jpeg.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    jpeg[..end].ends_with(&[0xFF, 0xD9])
}

fn dim_u16(v: usize) -> Result<u16, Error> {
    u16::try_from(v).map_err(|_| Error::Encode(format!("{v} px exceeds the JPEG limit of 65535")))
}

fn too_large(width: usize, height: usize, limits: &Limits) -> Error {
    Error::TooLarge {
        width,
        height,
        max_side: limits.max_side,
        max_pixels: limits.max_pixels,
    }
}

fn corrupt(e: zune_jpeg::errors::DecodeErrors) -> Error {
    Error::CorruptJpeg(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(width: usize, height: usize) -> Frame {
        let mut rgb = Vec::with_capacity(width * height * 3);
        for y in 0..height {
            for x in 0..width {
                rgb.extend_from_slice(&[(x * 4) as u8, (y * 4) as u8, 128]);
            }
        }
        Frame { width, height, rgb }
    }

    #[test]
    fn round_trip_keeps_size_and_roughly_the_pixels() {
        let f = gradient(48, 32);
        let jpeg = f.encode(95).unwrap();
        let back = Frame::decode(&jpeg, &Limits::default()).unwrap();
        assert_eq!((back.width, back.height), (48, 32));
        let err: u32 = f
            .rgb
            .iter()
            .zip(&back.rgb)
            .map(|(a, b)| a.abs_diff(*b) as u32)
            .max()
            .unwrap();
        assert!(err < 16, "max error {err}");
    }

    #[test]
    fn rejects_non_jpeg_truncated_and_garbage() {
        let limits = Limits::default();
        assert!(matches!(
            Frame::decode(b"\x89PNG\r\n\x1a\n", &limits),
            Err(Error::NotJpeg)
        ));
        assert!(matches!(Frame::decode(b"", &limits), Err(Error::NotJpeg)));
        let jpeg = gradient(64, 64).encode(90).unwrap();
        let cut = &jpeg[..jpeg.len() * 2 / 3];
        assert!(matches!(
            Frame::decode(cut, &limits),
            Err(Error::CorruptJpeg(_))
        ));
        let mut garbage = vec![0xFF, 0xD8];
        garbage.extend(std::iter::repeat_n(0x55, 200));
        garbage.extend([0xFF, 0xD9]);
        assert!(matches!(
            Frame::decode(&garbage, &limits),
            Err(Error::CorruptJpeg(_))
        ));
    }

    #[test]
    fn rejects_frames_over_the_limits_from_the_header() {
        let jpeg = gradient(64, 48).encode(90).unwrap();
        let side = Limits {
            max_side: 32,
            max_pixels: 1 << 30,
        };
        assert!(matches!(
            Frame::decode(&jpeg, &side),
            Err(Error::TooLarge { .. })
        ));
        let pixels = Limits {
            max_side: 1 << 15,
            max_pixels: 64 * 48 - 1,
        };
        assert!(matches!(
            Frame::decode(&jpeg, &pixels),
            Err(Error::TooLarge { .. })
        ));
    }

    #[test]
    fn a_small_file_declaring_a_huge_frame_is_refused_before_decoding() {
        // Patch the SOF0 header of a 64x48 JPEG to claim 60000 x 60000 (3.6 gigapixels).
        let mut jpeg = gradient(64, 48).encode(90).unwrap();
        let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        jpeg[sof + 5..sof + 9].copy_from_slice(&[0xEA, 0x60, 0xEA, 0x60]);
        match Frame::decode(&jpeg, &Limits::default()) {
            Err(Error::TooLarge {
                width: 60000,
                height: 60000,
                ..
            }) => {}
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }
}
