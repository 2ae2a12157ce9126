//! Tests on the real models and the labelled dev images. They need the models fetched by
//! scripts/fetch-models.sh; run them with
//!     export $(scripts/fetch-models.sh) && cargo test -p inland-vision -- --ignored

use std::path::PathBuf;
use std::sync::Arc;

use inland_vision::eval::{Dataset, evaluate};
use inland_vision::{Anonymizer, Error, VisionConfig};

const NEEDS_MODELS: &str =
    "set INLAND_MODELS_DIR and ORT_DYLIB_PATH: run `export $(scripts/fetch-models.sh)` first";

/// The default config, failing loudly (never skipping) when the models are not set up.
fn config() -> VisionConfig {
    for var in ["INLAND_MODELS_DIR", "ORT_DYLIB_PATH"] {
        assert!(
            std::env::var_os(var).is_some_and(|v| !v.is_empty()),
            "{var} is unset: {NEEDS_MODELS}"
        );
    }
    VisionConfig::default()
}

fn anonymizer() -> Anonymizer {
    Anonymizer::load(&config()).unwrap_or_else(|e| panic!("{e} ({NEEDS_MODELS})"))
}

/// The dev set: `INLAND_ANON_DEV`, else `../shared/data/anon-dev` beside the repo.
fn dev_dir() -> PathBuf {
    std::env::var_os("INLAND_ANON_DEV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/anon-dev")
        })
}

fn dev_image_path(name: &str) -> PathBuf {
    dev_dir().join(name)
}

fn dev_image(name: &str) -> Vec<u8> {
    let path = dev_image_path(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
#[ignore = "needs models: export $(scripts/fetch-models.sh) then cargo test -- --ignored"]
fn dev_set_meets_the_recall_and_area_targets() {
    let set =
        Dataset::load(&dev_dir()).expect("the anon-dev set (set INLAND_ANON_DEV to its folder)");
    let report = evaluate(&anonymizer(), &set).unwrap();
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
    println!("{}", report.json());
    let normal = report.faces_normal.recall().unwrap();
    let plates = report.plates().recall().unwrap();
    assert!(
        normal >= 0.95,
        "normal-face recall {normal:.3} < 0.95; misses {:?}",
        report.misses
    );
    assert!(
        plates >= 0.95,
        "plate recall {plates:.3} < 0.95; misses {:?}",
        report.misses
    );
    assert!(
        report.mean_area_destroyed <= 0.15,
        "mean area destroyed {:.3} > 0.15",
        report.mean_area_destroyed
    );
}

/// Inserts metadata segments right after SOI: EXIF with a GPS tag, XMP, an ICC profile, a
/// Photoshop/IPTC block and a comment.
fn with_metadata(jpeg: &[u8]) -> Vec<u8> {
    let segment = |marker: u8, payload: &[u8]| {
        let mut s = vec![0xFF, marker];
        s.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
        s.extend_from_slice(payload);
        s
    };
    let mut exif = b"Exif\0\0MM\0\x2a\0\0\0\x08\0\x01\x88\x25\0\x04\0\0\0\x01\0\0\0\x1a".to_vec();
    exif.extend_from_slice(b"GPSLatitude 39.9042N GPSLongitude 116.4074E");
    let xmp = b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta><rdf:Description exif:GPSLatitude=\"39,54.25N\"/></x:xmpmeta>";
    let icc = b"ICC_PROFILE\0\x01\x01fake-profile-bytes";
    let iptc = b"Photoshop 3.0\08BIM\x04\x04\0\0\0\0\0\x0bVIN LSVAU2180N2183294";
    let mut out = jpeg[..2].to_vec();
    for s in [
        segment(0xE1, &exif),
        segment(0xE1, xmp),
        segment(0xE2, icc),
        segment(0xED, iptc),
        segment(0xFE, b"owner: driver 42"),
    ] {
        out.extend_from_slice(&s);
    }
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// The markers of the segments before the scan data.
fn header_markers(jpeg: &[u8]) -> Vec<u8> {
    let mut markers = Vec::new();
    let mut i = 2;
    while i + 4 <= jpeg.len() && jpeg[i] == 0xFF {
        let marker = jpeg[i + 1];
        markers.push(marker);
        if marker == 0xDA {
            break;
        }
        i += 2 + usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
    }
    markers
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
#[ignore = "needs models: export $(scripts/fetch-models.sh) then cargo test -- --ignored"]
fn metadata_never_reaches_the_output() {
    let input = with_metadata(&dev_image("plate_scenetext06_0.jpg"));
    let before = header_markers(&input);
    for m in [0xE1, 0xE2, 0xED, 0xFE] {
        assert!(before.contains(&m), "test input lacks segment FF{m:02X}");
    }
    let out = anonymizer().anonymize_jpeg(&input).unwrap();
    assert!(!out.faces.is_empty() && !out.plates.is_empty());
    let after = header_markers(&out.jpeg);
    assert!(
        after
            .iter()
            .all(|m| [0xE0, 0xDB, 0xC0, 0xC4, 0xDA].contains(m)),
        "segments {after:02X?}"
    );
    for needle in [
        &b"Exif"[..],
        b"http://ns.adobe.com",
        b"ICC_PROFILE",
        b"Photoshop",
        b"8BIM",
        b"GPS",
        b"owner",
        b"VIN",
    ] {
        assert!(
            !contains(&out.jpeg, needle),
            "{} survived",
            String::from_utf8_lossy(needle)
        );
    }
}

#[test]
#[ignore = "needs models: export $(scripts/fetch-models.sh) then cargo test -- --ignored"]
fn broken_frames_are_errors_with_a_reason() {
    let a = anonymizer();
    let good = dev_image("plate_lpmotion_0.jpg");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "png",
            b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec(),
            "not a JPEG",
        ),
        ("empty", Vec::new(), "not a JPEG"),
        ("truncated", good[..good.len() / 2].to_vec(), "truncated"),
        (
            "cut before EOI",
            good[..good.len() - 2].to_vec(),
            "truncated",
        ),
        (
            "garbage scan",
            {
                let mut g = good[..600].to_vec();
                g.extend(std::iter::repeat_n(0xA5, 4000));
                g.extend([0xFF, 0xD9]);
                g
            },
            "corrupt",
        ),
        (
            "bomb",
            {
                let mut b = good.clone();
                let sof = b.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
                b[sof + 5..sof + 9].copy_from_slice(&[0xEA, 0x60, 0xEA, 0x60]);
                b
            },
            "over the configured limit",
        ),
    ];
    for (name, bytes, reason) in cases {
        match a.anonymize_jpeg(&bytes) {
            Ok(_) => panic!("{name}: a broken frame passed"),
            Err(e) => {
                assert_eq!(
                    e.code(),
                    inland_core::ErrorCode::InvalidInput,
                    "{name}: {e}"
                );
                assert!(e.to_string().contains(reason), "{name}: {e}");
            }
        }
    }
    // The anonymizer is still fine afterwards.
    a.anonymize_jpeg(&good).unwrap();
}

#[test]
#[ignore = "needs models: export $(scripts/fetch-models.sh) then cargo test -- --ignored"]
fn centerface_runs_at_any_size_despite_its_fixed_10x3x32x32_input() {
    use inland_vision::frame::Frame;
    let a = anonymizer();
    let photo = Frame::decode(&dev_image("face_astronaut.jpg"), &Default::default()).unwrap();
    // Crops of odd sizes around the face (at 175..275 x 54..180), each a different input
    // shape for both networks.
    for (x0, y0, w, h) in [
        (100, 0, 333, 257),
        (150, 30, 150, 170),
        (0, 0, 512, 512),
        (90, 20, 411, 199),
    ] {
        let mut rgb = Vec::with_capacity(w * h * 3);
        for y in y0..y0 + h {
            rgb.extend_from_slice(
                &photo.rgb[(y * photo.width + x0) * 3..(y * photo.width + x0 + w) * 3],
            );
        }
        let crop = Frame {
            width: w,
            height: h,
            rgb,
        }
        .encode(92)
        .unwrap();
        let out = a
            .anonymize_jpeg(&crop)
            .unwrap_or_else(|e| panic!("{w}x{h}: {e}"));
        assert_eq!(out.faces.len(), 1, "{w}x{h}: {:?}", out.faces);
        let back = Frame::decode(&out.jpeg, &Default::default()).unwrap();
        assert_eq!((back.width, back.height), (w, h));
    }
}

/// Detail: the summed horizontal luma steps inside `r`.
fn detail(f: &inland_vision::frame::Frame, r: inland_vision::geometry::Rect) -> i64 {
    let luma = |x: u32, y: u32| {
        let i = (y as usize * f.width + x as usize) * 3;
        (u32::from(f.rgb[i]) * 3 + u32::from(f.rgb[i + 1]) * 6 + u32::from(f.rgb[i + 2])) as i64
    };
    (r.y1..r.y2)
        .flat_map(|y| (r.x1 + 1..r.x2).map(move |x| (y, x)))
        .map(|(y, x)| (luma(x, y) - luma(x - 1, y)).abs())
        .sum()
}

#[test]
#[ignore = "needs models: export $(scripts/fetch-models.sh) then cargo test -- --ignored"]
fn destroyed_faces_keep_no_detail() {
    use inland_vision::frame::Frame;
    let jpeg = dev_image("face_hopper.jpg");
    let out = anonymizer().anonymize_jpeg(&jpeg).unwrap();
    let face = out.faces.first().expect("the face of face_hopper.jpg");
    let before = Frame::decode(&jpeg, &Default::default()).unwrap();
    let after = Frame::decode(&out.jpeg, &Default::default()).unwrap();
    let (was, is) = (
        detail(&before, face.redacted),
        detail(&after, face.redacted),
    );
    assert!(is * 10 < was, "detail {is} left of {was}");
}

#[test]
#[ignore = "needs models: export $(scripts/fetch-models.sh) then cargo test -- --ignored"]
fn one_anonymizer_serves_many_threads() {
    let mut c = config();
    c.workers = 2;
    let a = Arc::new(Anonymizer::load(&c).unwrap());
    let names = [
        "face_basketball1.jpg",
        "plate_leuvenA_0.jpg",
        "plate_londonbus_1.jpg",
        "face_helen_a.jpg",
    ];
    let expected: Vec<(usize, usize)> = names
        .iter()
        .map(|n| {
            a.anonymize_jpeg(&dev_image(n))
                .map(|o| (o.faces.len(), o.plates.len()))
                .unwrap()
        })
        .collect();
    let threads: Vec<_> = names
        .iter()
        .map(|n| {
            let (a, jpeg) = (Arc::clone(&a), dev_image(n));
            std::thread::spawn(move || {
                (0..3)
                    .map(|_| {
                        a.anonymize_jpeg(&jpeg)
                            .map(|o| (o.faces.len(), o.plates.len()))
                    })
                    .collect::<Result<Vec<_>, Error>>()
            })
        })
        .collect();
    for (t, want) in threads.into_iter().zip(expected) {
        for got in t.join().unwrap().unwrap() {
            assert_eq!(got, want);
        }
    }
}

#[test]
#[ignore = "needs models: export $(scripts/fetch-models.sh) then cargo test -- --ignored"]
fn missing_models_are_a_clear_error() {
    let mut c = config();
    c.models_dir = Some(PathBuf::from("/nonexistent"));
    let e = Anonymizer::load(&c).err().expect("no models there");
    assert!(e.to_string().contains("scripts/fetch-models.sh"), "{e}");
}

#[test]
#[ignore = "needs models: export $(scripts/fetch-models.sh) then cargo test -- --ignored"]
fn the_cli_anonymizes_a_file() {
    use inland_vision::cli::{AnonymizeArgs, run};
    config();
    let out = std::env::temp_dir().join(format!("inland-vision-cli-{}.jpg", std::process::id()));
    run(AnonymizeArgs {
        input: Some(dev_image_path("plate_leuvenB_0.jpg")),
        output: Some(out.clone()),
        eval: None,
        json: false,
        models_dir: None,
        ort_dylib: None,
        threads: 1,
    })
    .unwrap();
    let written = std::fs::read(&out).unwrap();
    std::fs::remove_file(&out).unwrap();
    let frame = inland_vision::frame::Frame::decode(&written, &Default::default()).unwrap();
    assert_eq!((frame.width, frame.height), (1280, 720));
    // The file holds what the API makes: the same two plates destroyed.
    let direct = anonymizer()
        .anonymize_jpeg(&dev_image("plate_leuvenB_0.jpg"))
        .unwrap();
    assert_eq!(direct.plates.len(), 2, "{:?}", direct.plates);
    let original =
        inland_vision::frame::Frame::decode(&dev_image("plate_leuvenB_0.jpg"), &Default::default())
            .unwrap();
    for p in &direct.plates {
        let (was, is) = (detail(&original, p.redacted), detail(&frame, p.redacted));
        assert!(
            is * 5 < was,
            "plate at {:?}: detail {is} left of {was}",
            p.redacted
        );
    }
}
