//! QR codes of activation codes (error correction M, with the standard quiet zone).

use image::ImageEncoder;
use qrcode::{EcLevel, QrCode};

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

pub fn png(data: &str) -> Result<Vec<u8>, ApiError> {
    let image = code(data)?
        .render::<image::Luma<u8>>()
        .min_dimensions(MIN_SIZE, MIN_SIZE)
        .quiet_zone(true)
        .build();
    let mut bytes = Vec::new();
    image::codecs::png::PngEncoder::new(&mut bytes)
        .write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            image::ExtendedColorType::L8,
        )
        .map_err(ApiError::internal)?;
    Ok(bytes)
}
