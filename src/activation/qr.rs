//! QR codes of activation codes (error correction M, with the standard quiet zone).

use qrcode::{Color, EcLevel, QrCode};

use crate::error::ApiError;

const MIN_SIZE: u32 = 256;

fn code(data: &str) -> Result<QrCode, ApiError> {
    QrCode::with_error_correction_level(data.as_bytes(), EcLevel::M).map_err(ApiError::internal)
}

pub fn svg(data: &str) -> Result<String, ApiError> {
    Ok(code(data)?
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(MIN_SIZE, MIN_SIZE)
        .quiet_zone(true)
        .build())
}

/// Modules of light margin on each side: the standard's quiet zone.
const QUIET_ZONE: usize = 4;

/// The code as a grayscale PNG at least `MIN_SIZE` pixels wide, each module a square of
/// whole pixels, with the quiet zone.
pub fn png(data: &str) -> Result<Vec<u8>, ApiError> {
    let code = code(data)?;
    let modules = code.width();
    let colors = code.to_colors();
    let side_modules = modules + 2 * QUIET_ZONE;
    let scale = (MIN_SIZE as usize).div_ceil(side_modules);
    let side = side_modules * scale;
    let mut pixels = vec![u8::MAX; side * side];
    for (i, color) in colors.iter().enumerate() {
        if *color != Color::Dark {
            continue;
        }
        let (x0, y0) = (
            (i % modules + QUIET_ZONE) * scale,
            (i / modules + QUIET_ZONE) * scale,
        );
        for row in pixels.chunks_exact_mut(side).skip(y0).take(scale) {
            row[x0..x0 + scale].fill(0);
        }
    }
    let side = u32::try_from(side).map_err(ApiError::internal)?;
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    encoder
        .write_header()
        .and_then(|mut writer| {
            writer.write_image_data(&pixels)?;
            writer.finish()
        })
        .map_err(ApiError::internal)?;
    Ok(bytes)
}
