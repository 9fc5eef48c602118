//! A minimal PNG line chart, so the soak report carries a plot without a plotting crate
//! (none is in the lockfile, and matplotlib is not on the machine): 8-bit RGB, the image
//! data as zlib *stored* blocks (no compression: a few hundred KiB for a chart is fine).
//!
//! No text: the series' colours and scales are written next to the image (the soak
//! prints them and the README's Soak section lists them).

/// One line of the chart: its values in sample order and its colour.
pub struct Series<'a> {
    pub values: &'a [f64],
    pub rgb: [u8; 3],
}

pub const WIDTH: usize = 800;
pub const HEIGHT: usize = 400;
const MARGIN: usize = 20;

/// Draws every series scaled to its own maximum (the plot shows shape: flat or climbing),
/// from x = first sample to x = last, on a white canvas with a grey frame.
pub fn line_chart(series: &[Series]) -> Vec<u8> {
    let mut pixels = vec![255u8; WIDTH * HEIGHT * 3];
    let mut put = |x: usize, y: usize, rgb: [u8; 3]| {
        if x < WIDTH && y < HEIGHT {
            let at = (y * WIDTH + x) * 3;
            pixels[at..at + 3].copy_from_slice(&rgb);
        }
    };
    let (left, right, top, bottom) = (MARGIN, WIDTH - MARGIN, MARGIN, HEIGHT - MARGIN);
    for x in left..=right {
        put(x, top, [180; 3]);
        put(x, bottom, [180; 3]);
    }
    for y in top..=bottom {
        put(left, y, [180; 3]);
        put(right, y, [180; 3]);
    }
    for line in series {
        let max = line.values.iter().copied().fold(0.0f64, f64::max);
        let count = line.values.len();
        if count == 0 || max <= 0.0 {
            continue;
        }
        let point = |i: usize| {
            let x = left as f64 + (right - left) as f64 * i as f64 / (count.max(2) - 1) as f64;
            let y = bottom as f64 - (bottom - top) as f64 * (line.values[i] / max).clamp(0.0, 1.0);
            (x, y)
        };
        for i in 0..count {
            let (x1, y1) = point(i);
            let (x2, y2) = if i + 1 < count {
                point(i + 1)
            } else {
                (x1, y1)
            };
            let steps = ((x2 - x1).abs().max((y2 - y1).abs()).ceil() as usize).max(1);
            for step in 0..=steps {
                let t = step as f64 / steps as f64;
                let (x, y) = (x1 + (x2 - x1) * t, y1 + (y2 - y1) * t);
                // Two pixels thick.
                put(x as usize, y as usize, line.rgb);
                put(x as usize, y as usize + 1, line.rgb);
            }
        }
    }
    encode(WIDTH, HEIGHT, &pixels)
}

/// A PNG file of `width × height` RGB `pixels`, row by row.
fn encode(width: usize, height: usize, pixels: &[u8]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(height * (width * 3 + 1));
    for row in pixels.chunks(width * 3) {
        raw.push(0); // filter: none
        raw.extend_from_slice(row);
    }
    let mut zlib = vec![0x78, 0x01];
    let mut blocks = raw.chunks(65_535).peekable();
    while let Some(block) = blocks.next() {
        zlib.push(u8::from(blocks.peek().is_none()));
        let len = block.len() as u16;
        zlib.extend_from_slice(&len.to_le_bytes());
        zlib.extend_from_slice(&(!len).to_le_bytes());
        zlib.extend_from_slice(block);
    }
    zlib.extend_from_slice(&adler32(&raw).to_be_bytes());
    let mut header = Vec::new();
    header.extend_from_slice(&(width as u32).to_be_bytes());
    header.extend_from_slice(&(height as u32).to_be_bytes());
    header.extend_from_slice(&[8, 2, 0, 0, 0]); // 8 bits, RGB, deflate, filter 0, no interlace
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [(b"IHDR", &header), (b"IDAT", &zlib), (b"IEND", &Vec::new())] {
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = png.len();
        png.extend_from_slice(kind);
        png.extend_from_slice(data);
        let crc = crc32(&png[start..]);
        png.extend_from_slice(&crc.to_be_bytes());
    }
    png
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn adler32(bytes: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in bytes {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_match_their_reference_values() {
        // zlib's and PNG's published check values for "123456789".
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(adler32(b"123456789"), 0x091E_01DE);
    }

    #[test]
    fn a_chart_is_a_png_with_the_stated_size() {
        let values = [1.0, 2.0, 2.0, 3.0];
        let png = line_chart(&[Series {
            values: &values,
            rgb: [200, 0, 0],
        }]);
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&png[12..16], b"IHDR");
        assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 800);
        assert_eq!(u32::from_be_bytes(png[20..24].try_into().unwrap()), 400);
        assert_eq!(&png[png.len() - 8..png.len() - 4], b"IEND");
    }
}
