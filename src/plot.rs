//! The plots mathlake writes as PNG: a training run's loss curves (next to its
//! checkpoints) and an experiment's arms as bars with error bars (next to its report).
//!
//! A chart needs little: a raster, lines, a 5x7 font for the labels, and the PNG
//! container (zlib through flate2, which the project already uses, and its CRC-32). That
//! is less code than adapting a plotting crate and its font stack.

use std::io::Write;

use flate2::Crc;
use flate2::write::ZlibEncoder;

use crate::error::Result;

const WIDTH: usize = 800;
const HEIGHT: usize = 480;
const LEFT: usize = 80;
const RIGHT: usize = 20;
const TOP: usize = 30;
const BOTTOM: usize = 50;
/// Line colors, told apart in print: blue, orange, green, red, purple, brown, pink, olive.
const PALETTE: [[u8; 3]; 8] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [188, 189, 34],
];
const BASELINE: [u8; 3] = [160, 160, 160];
const INK: [u8; 3] = [40, 40, 40];
const GRID: [u8; 3] = [225, 225, 225];

/// A training run's loss: every update's training loss and each validation, by step.
pub fn loss_png(train: &[(u64, f64)], validation: &[(u64, f64)]) -> Result<Vec<u8>> {
    let points = |p: &[(u64, f64)]| p.iter().map(|&(step, loss)| (step as f64, loss)).collect();
    let series = [
        Series { label: Some("train".into()), color: 0, points: points(train), markers: false },
        Series { label: Some("val".into()), color: 1, points: points(validation), markers: true },
    ];
    lines_png("", "step", "loss", &series)
}

/// One line of a line chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Its legend entry; `None` for a line that shares an entry (another seed of an arm).
    pub label: Option<String>,
    /// Index into the palette: lines of one color belong together.
    pub color: usize,
    /// (x, y), in drawing order; points with a value that is not finite are left out.
    pub points: Vec<(f64, f64)>,
    /// A square on every point (sparse points such as validations).
    pub markers: bool,
}

/// Lines over a shared x axis from zero, with a legend at the top right.
pub fn lines_png(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> Result<Vec<u8>> {
    let mut canvas = Canvas::new();
    let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite();
    let all: Vec<(f64, f64)> = series.iter().flat_map(|s| s.points.iter().filter(finite)).copied().collect();
    let max_x = all.iter().map(|p| p.0).fold(1e-9, f64::max);
    let (mut lo, mut hi) = all.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
    if all.is_empty() {
        (lo, hi) = (0.0, 1.0);
    }
    if hi - lo < 1e-9 {
        (lo, hi) = (lo - 0.5, hi + 0.5);
    }
    let axis = ValueAxis::new(lo, hi);
    axis.draw(&mut canvas);
    let plot_w = (WIDTH - LEFT - RIGHT) as f64;
    let x_of = |x: f64| LEFT as f64 + x / max_x * plot_w;
    for t in ticks(0.0, max_x) {
        if t > max_x {
            continue;
        }
        let x = x_of(t).round() as i64;
        canvas.line((x, TOP as i64), (x, (HEIGHT - BOTTOM) as i64), GRID);
        let label = number(t);
        canvas.text(x - text_width(&label) / 2, (HEIGHT - BOTTOM) as i64 + 8, &label, INK);
    }
    canvas.frame();
    canvas.text((WIDTH as i64 - text_width(x_label)) / 2, HEIGHT as i64 - 20, x_label, INK);
    canvas.text(8, 8, y_label, INK);
    canvas.text(8 + text_width(y_label) + 24, 8, title, INK);
    for line in series {
        let color = PALETTE[line.color % PALETTE.len()];
        let points: Vec<(i64, i64)> =
            line.points.iter().filter(finite).map(|p| (x_of(p.0).round() as i64, axis.y(p.1))).collect();
        for pair in points.windows(2) {
            canvas.line(pair[0], pair[1], color);
        }
        if line.markers {
            for &(x, y) in &points {
                canvas.square(x, y, 3, color);
            }
        }
    }
    let entries: Vec<(&str, [u8; 3])> = series
        .iter()
        .filter_map(|s| s.label.as_deref().map(|label| (label, PALETTE[s.color % PALETTE.len()])))
        .collect();
    let widest = entries.iter().map(|(label, _)| text_width(label)).max().unwrap_or(0);
    let legend_x = (WIDTH - RIGHT) as i64 - widest - 24;
    for (row, (label, color)) in entries.iter().enumerate() {
        let y = TOP as i64 + 10 + 20 * row as i64;
        canvas.square(legend_x, y + 7, 4, *color);
        canvas.text(legend_x + 10, y, label, INK);
    }
    canvas.png()
}

/// One bar: an arm's mean over its seeds and their standard deviation.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub label: String,
    pub mean: f64,
    pub std: f64,
    /// Drawn grey: the arm the others are compared with.
    pub baseline: bool,
}

/// Bars with +-std error bars under `title`; the value axis covers every bar's error bar
/// (not from zero: losses of close arms would all look alike), each bar rising from the
/// axis's lowest tick, which is never below zero for values that are not.
pub fn bars_png(title: &str, bars: &[Bar]) -> Result<Vec<u8>> {
    let mut canvas = Canvas::new();
    let finite: Vec<&Bar> = bars.iter().filter(|b| b.mean.is_finite()).collect();
    let spread = |b: &&Bar| if b.std.is_finite() { b.std } else { 0.0 };
    let (mut lo, mut hi) = finite
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), b| (lo.min(b.mean - spread(b)), hi.max(b.mean + spread(b))));
    if finite.is_empty() {
        (lo, hi) = (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.15).max(1e-6);
    // Values that cannot be negative (losses, accuracies) keep the axis at or above zero.
    let floor = if lo >= 0.0 { 0.0 } else { f64::MIN };
    let axis = ValueAxis::new((lo - pad).max(floor), hi + pad);
    axis.draw(&mut canvas);
    let (x0, x1, y1) = (LEFT as i64, (WIDTH - RIGHT) as i64, (HEIGHT - BOTTOM) as i64);
    let slot = (x1 - x0) / bars.len().max(1) as i64;
    for (i, bar) in bars.iter().enumerate() {
        let center = x0 + slot * i as i64 + slot / 2;
        let half = (slot * 3 / 10).max(2);
        let fits = (slot / (6 * SCALE)).max(1) as usize;
        let label: String = bar.label.chars().take(fits).collect();
        canvas.text(center - text_width(&label) / 2, y1 + 8, &label, INK);
        if !bar.mean.is_finite() {
            continue;
        }
        let top = axis.y(bar.mean);
        canvas.rect(center - half, top, center + half, y1, if bar.baseline { BASELINE } else { PALETTE[0] });
        if bar.std.is_finite() && bar.std > 0.0 {
            let (upper, lower) = (axis.y(bar.mean + bar.std), axis.y(bar.mean - bar.std));
            canvas.line((center, upper), (center, lower), INK);
            for y in [upper, lower] {
                canvas.line((center - half / 2, y), (center + half / 2, y), INK);
            }
        }
    }
    canvas.frame();
    canvas.text(8, 2, title, INK);
    canvas.png()
}

/// The vertical value axis: a range widened to round ticks (a range from zero or above
/// keeps its ticks there), drawn as grid lines with labels.
struct ValueAxis {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

impl ValueAxis {
    fn new(lo: f64, hi: f64) -> ValueAxis {
        let ticks = ticks(lo, hi);
        let (lo, hi) = (lo.min(ticks[0]), hi.max(*ticks.last().unwrap_or(&hi)));
        ValueAxis { lo, hi, ticks }
    }

    /// The pixel row of `value`.
    fn y(&self, value: f64) -> i64 {
        let plot_h = (HEIGHT - TOP - BOTTOM) as f64;
        (TOP as f64 + (self.hi - value) / (self.hi - self.lo) * plot_h).round() as i64
    }

    fn draw(&self, canvas: &mut Canvas) {
        for &t in &self.ticks {
            let y = self.y(t);
            canvas.line((LEFT as i64, y), ((WIDTH - RIGHT) as i64, y), GRID);
            let label = number(t);
            canvas.text(LEFT as i64 - 8 - text_width(&label), y - 7, &label, INK);
        }
    }
}

/// About five round tick values covering `lo..=hi`.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let raw = (hi - lo) / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|s| *s >= raw).unwrap_or(10.0 * magnitude);
    let first = (lo / step).floor() * step;
    (0..=12).map(|i| first + i as f64 * step).take_while(|t| *t < hi + step).collect()
}

fn number(v: f64) -> String {
    if v.abs() >= 10_000.0 {
        format!("{}k", (v / 1000.0).round())
    } else if v.fract().abs() < 1e-9 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

const SCALE: i64 = 2;

fn text_width(text: &str) -> i64 {
    text.chars().count() as i64 * 6 * SCALE
}

struct Canvas {
    pixels: Vec<u8>,
}

impl Canvas {
    fn new() -> Canvas {
        Canvas { pixels: vec![255; WIDTH * HEIGHT * 3] }
    }

    fn set(&mut self, x: i64, y: i64, color: [u8; 3]) {
        if (0..WIDTH as i64).contains(&x) && (0..HEIGHT as i64).contains(&y) {
            let i = (y as usize * WIDTH + x as usize) * 3;
            self.pixels[i..i + 3].copy_from_slice(&color);
        }
    }

    /// Bresenham.
    fn line(&mut self, (mut x, mut y): (i64, i64), (x1, y1): (i64, i64), color: [u8; 3]) {
        let (dx, dy) = ((x1 - x).abs(), -(y1 - y).abs());
        let (sx, sy) = (if x < x1 { 1 } else { -1 }, if y < y1 { 1 } else { -1 });
        let mut err = dx + dy;
        loop {
            self.set(x, y, color);
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// The plot area's left and bottom edges.
    fn frame(&mut self) {
        let (x0, y0, x1, y1) = (LEFT as i64, TOP as i64, (WIDTH - RIGHT) as i64, (HEIGHT - BOTTOM) as i64);
        self.line((x0, y1), (x1, y1), INK);
        self.line((x0, y0), (x0, y1), INK);
    }

    fn square(&mut self, x: i64, y: i64, half: i64, color: [u8; 3]) {
        self.rect(x - half, y - half, x + half, y + half, color);
    }

    /// Filled, corners included.
    fn rect(&mut self, left: i64, top: i64, right: i64, bottom: i64, color: [u8; 3]) {
        for y in top..=bottom {
            for x in left..=right {
                self.set(x, y, color);
            }
        }
    }

    fn text(&mut self, x: i64, y: i64, text: &str, color: [u8; 3]) {
        for (i, c) in text.chars().enumerate() {
            let rows = glyph(c);
            for (r, bits) in rows.iter().enumerate() {
                for col in 0..5 {
                    if bits & (0b10000 >> col) != 0 {
                        let (px, py) = (x + (i as i64 * 6 + col) * SCALE, y + r as i64 * SCALE);
                        for (ox, oy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                            self.set(px + ox, py + oy, color);
                        }
                    }
                }
            }
        }
    }

    fn png(&self) -> Result<Vec<u8>> {
        let mut raw = Vec::with_capacity((WIDTH * 3 + 1) * HEIGHT);
        for row in self.pixels.chunks(WIDTH * 3) {
            raw.push(0); // filter: none
            raw.extend_from_slice(row);
        }
        let mut zlib = ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        zlib.write_all(&raw)?;
        let mut header = Vec::with_capacity(13);
        header.extend_from_slice(&(WIDTH as u32).to_be_bytes());
        header.extend_from_slice(&(HEIGHT as u32).to_be_bytes());
        header.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB, no interlace
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        chunk(&mut png, b"IHDR", &header);
        chunk(&mut png, b"IDAT", &zlib.finish()?);
        chunk(&mut png, b"IEND", &[]);
        Ok(png)
    }
}

fn chunk(png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    png.extend_from_slice(&(data.len() as u32).to_be_bytes());
    png.extend_from_slice(kind);
    png.extend_from_slice(data);
    let mut crc = Crc::new();
    crc.update(kind);
    crc.update(data);
    png.extend_from_slice(&crc.sum().to_be_bytes());
}

/// 5x7 glyphs, one row per byte, the leftmost pixel in bit 4: digits, lowercase letters
/// (capitals are drawn as these) and the punctuation labels use.
fn glyph(c: char) -> [u8; 7] {
    match c.to_ascii_lowercase() {
        '0' => [14, 17, 19, 21, 25, 17, 14],
        '1' => [4, 12, 4, 4, 4, 4, 14],
        '2' => [14, 17, 1, 2, 4, 8, 31],
        '3' => [31, 2, 4, 2, 1, 17, 14],
        '4' => [2, 6, 10, 18, 31, 2, 2],
        '5' => [31, 16, 30, 1, 1, 17, 14],
        '6' => [6, 8, 16, 30, 17, 17, 14],
        '7' => [31, 1, 2, 4, 8, 8, 8],
        '8' => [14, 17, 17, 14, 17, 17, 14],
        '9' => [14, 17, 17, 15, 1, 2, 12],
        'a' => [0, 0, 14, 1, 15, 17, 15],
        'b' => [16, 16, 22, 25, 17, 17, 30],
        'c' => [0, 0, 14, 16, 16, 17, 14],
        'd' => [1, 1, 13, 19, 17, 17, 15],
        'e' => [0, 0, 14, 17, 31, 16, 14],
        'f' => [6, 9, 8, 28, 8, 8, 8],
        'g' => [0, 0, 15, 17, 15, 1, 14],
        'h' => [16, 16, 22, 25, 17, 17, 17],
        'i' => [4, 0, 12, 4, 4, 4, 14],
        'j' => [2, 0, 6, 2, 2, 18, 12],
        'k' => [16, 16, 18, 20, 24, 20, 18],
        'l' => [12, 4, 4, 4, 4, 4, 14],
        'm' => [0, 0, 26, 21, 21, 17, 17],
        'n' => [0, 0, 22, 25, 17, 17, 17],
        'o' => [0, 0, 14, 17, 17, 17, 14],
        'p' => [0, 0, 30, 17, 30, 16, 16],
        'q' => [0, 0, 13, 19, 15, 1, 1],
        'r' => [0, 0, 22, 25, 16, 16, 16],
        's' => [0, 0, 15, 16, 14, 1, 30],
        't' => [8, 8, 28, 8, 8, 9, 6],
        'u' => [0, 0, 17, 17, 17, 19, 13],
        'v' => [0, 0, 17, 17, 17, 10, 4],
        'w' => [0, 0, 17, 17, 21, 21, 10],
        'x' => [0, 0, 17, 10, 4, 10, 17],
        'y' => [0, 0, 17, 17, 15, 1, 14],
        'z' => [0, 0, 31, 2, 4, 8, 31],
        '.' => [0, 0, 0, 0, 0, 12, 12],
        ',' => [0, 0, 0, 0, 12, 4, 8],
        ':' => [0, 12, 12, 0, 12, 12, 0],
        '-' => [0, 0, 0, 31, 0, 0, 0],
        '+' => [0, 4, 4, 31, 4, 4, 0],
        '_' => [0, 0, 0, 0, 0, 0, 31],
        '=' => [0, 0, 31, 0, 31, 0, 0],
        '/' => [0, 1, 2, 4, 8, 16, 0],
        '(' => [2, 4, 8, 8, 8, 4, 2],
        ')' => [8, 4, 2, 2, 2, 4, 8],
        '%' => [24, 25, 2, 4, 8, 19, 3],
        _ => [0; 7],
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// Decodes the PNG written above (one IDAT, filter 0) into RGB pixels.
    fn decode(png: &[u8]) -> (u32, u32, Vec<u8>) {
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let (mut at, mut size, mut data) = (8, (0, 0), Vec::new());
        while at < png.len() {
            let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
            let kind = &png[at + 4..at + 8];
            let body = &png[at + 8..at + 8 + len];
            let mut crc = Crc::new();
            crc.update(&png[at + 4..at + 8 + len]);
            assert_eq!(crc.sum().to_be_bytes(), png[at + 8 + len..at + 12 + len], "chunk CRC");
            match kind {
                b"IHDR" => {
                    size = (
                        u32::from_be_bytes(body[..4].try_into().unwrap()),
                        u32::from_be_bytes(body[4..8].try_into().unwrap()),
                    )
                }
                b"IDAT" => data.extend_from_slice(body),
                _ => {}
            }
            at += 12 + len;
        }
        let mut raw = Vec::new();
        flate2::read::ZlibDecoder::new(&data[..]).read_to_end(&mut raw).unwrap();
        let pixels = raw.chunks(size.0 as usize * 3 + 1).flat_map(|r| r[1..].to_vec()).collect();
        (size.0, size.1, pixels)
    }

    #[test]
    fn plots_both_curves_into_a_valid_png() -> Result<()> {
        let train: Vec<(u64, f64)> = (1..=200).map(|s| (s, 9.0 / (1.0 + s as f64 / 20.0) + 1.0)).collect();
        let validation = vec![(50, 4.0), (100, 3.0), (150, 2.6), (200, 2.5)];
        let (w, h, pixels) = decode(&loss_png(&train, &validation)?);
        assert_eq!((w, h), (WIDTH as u32, HEIGHT as u32));
        let count = |c: [u8; 3]| pixels.chunks(3).filter(|p| *p == c).count();
        assert!(count(PALETTE[0]) > 300, "the train curve is drawn: {} pixels", count(PALETTE[0]));
        assert!(count(PALETTE[1]) > 100, "the validation curve and points are drawn");
        assert!(count(INK) > 500, "axes and labels are drawn");
        // A NaN loss (a diverged step) is left out rather than breaking the scale.
        let (_, _, with_nan) = decode(&loss_png(&[(1, f64::NAN), (2, 3.0), (3, 2.0)], &[])?);
        assert!(with_nan.chunks(3).filter(|p| *p == PALETTE[0]).count() > 10);
        Ok(())
    }

    #[test]
    fn bars_have_error_bars_and_the_baseline_in_grey() -> Result<()> {
        let bars = [
            Bar { label: "base1".into(), mean: 6.2, std: 0.05, baseline: true },
            Bar { label: "test2".into(), mean: 5.9, std: 0.1, baseline: false },
            Bar { label: "tutorship".into(), mean: f64::NAN, std: f64::NAN, baseline: false },
        ];
        let png = bars_png("gsm8k: loss, mean +- std over 3 seeds", &bars)?;
        let (w, h, pixels) = decode(&png);
        assert_eq!((w, h), (WIDTH as u32, HEIGHT as u32));
        let at = |x: usize, y: usize| &pixels[(y * WIDTH + x) * 3..(y * WIDTH + x) * 3 + 3];
        let column = |x: usize, color: [u8; 3]| (0..HEIGHT).filter(|&y| at(x, y) == color).count();
        // Three slots of 233 px: the baseline's bar is grey, the next blue and taller
        // (a lower loss is a shorter bar, so base1's is the taller one here).
        let slot = (WIDTH - LEFT - RIGHT) / 3;
        let (first, second) = (LEFT + slot / 2 + 20, LEFT + slot + slot / 2 + 20);
        assert!(column(first, BASELINE) > column(second, PALETTE[0]), "base1's mean is higher");
        assert!(column(second, PALETTE[0]) > 50, "test2 is drawn");
        // The error bar: ink on the bar's centre line above and below its top.
        let centre = LEFT + slot + slot / 2;
        assert!(column(centre, INK) > 10, "test2's error bar is drawn");
        // The NaN arm keeps its slot and label, without a bar.
        let third = LEFT + 2 * slot + slot / 2 + 20;
        assert_eq!(column(third, PALETTE[0]), 0);
        Ok(())
    }

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(0.0, 1000.0), vec![0.0, 200.0, 400.0, 600.0, 800.0, 1000.0]);
        let t = ticks(2.37, 9.1);
        assert!(t[0] <= 2.37 && *t.last().unwrap() >= 9.1, "{t:?}");
    }
}
