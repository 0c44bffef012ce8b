//! Reading order: detected lines grouped into visual rows, rows top to bottom, lines left to right in a row,
//! on the page as it reads (turned upright when the text is rotated).
//!
//! RapidOCR sorts by the top-left corner and swaps neighbours whose tops differ by less than a fixed 10 px. A
//! fixed tolerance depends on the resolution (10 px is half a line on a small card photo and nothing on a
//! scan), so here two lines share a row when their vertical extents overlap by at least half the smaller height.

use super::{Quad, TextLine, TextRow};

/// A line with its extent on the upright page.
struct Placed {
    top: f32,
    bottom: f32,
    left: f32,
    line: TextLine,
}

impl Placed {
    fn height(&self) -> f32 {
        self.bottom - self.top
    }
}

/// Sorts lines into reading order and groups them into rows (`TextRow::lines` index the sorted lines).
/// `angle`: the direction the text reads in the image, degrees clockwise from the x axis (0: upright, 90: lines
/// run top to bottom, 180: upside down; anything between for a photo taken at a slant). The page is turned by
/// it before rows are formed; the `width x height` image only fixes where the turned page lies.
pub fn reading_order(lines: Vec<TextLine>, angle: f32, width: u32, height: u32) -> (Vec<TextLine>, Vec<TextRow>) {
    let (w, h) = (width as f32, height as f32);
    let (sin, cos) = angle.to_radians().sin_cos();
    // A point on the page turned upright, about the image centre (only relative positions matter).
    let upright = |[x, y]: [f32; 2]| {
        let (x, y) = (x - w / 2.0, y - h / 2.0);
        [x * cos + y * sin, -x * sin + y * cos]
    };
    let mut placed: Vec<Placed> = lines
        .into_iter()
        .map(|line| {
            let q: Quad = line.quad.map(upright);
            let top = q.iter().map(|p| p[1]).fold(f32::INFINITY, f32::min);
            let bottom = q.iter().map(|p| p[1]).fold(f32::NEG_INFINITY, f32::max);
            let left = q.iter().map(|p| p[0]).fold(f32::INFINITY, f32::min);
            Placed { top, bottom, left, line }
        })
        .collect();
    // By vertical centre, so each row's lines arrive together.
    placed.sort_by(|a, b| (a.top + a.bottom).total_cmp(&(b.top + b.bottom)).then(a.left.total_cmp(&b.left)));
    let mut rows: Vec<Vec<Placed>> = Vec::new();
    for line in placed {
        let joins = rows.last().and_then(|row| row.last()).is_some_and(|last| {
            let overlap = line.bottom.min(last.bottom) - line.top.max(last.top);
            overlap >= 0.5 * line.height().min(last.height())
        });
        match rows.last_mut() {
            Some(row) if joins => row.push(line),
            _ => rows.push(vec![line]),
        }
    }
    let mut ordered = Vec::new();
    let mut grouped = Vec::new();
    for mut row in rows {
        row.sort_by(|a, b| a.left.total_cmp(&b.left));
        let start = ordered.len();
        ordered.extend(row.into_iter().map(|p| p.line));
        grouped.push(row_of(&ordered, start..ordered.len()));
    }
    (ordered, grouped)
}

/// A row from its lines: texts joined with a space, the lowest confidence, the bounding box as a quad.
fn row_of(lines: &[TextLine], range: std::ops::Range<usize>) -> TextRow {
    let members = &lines[range.clone()];
    let text = members.iter().map(|l| l.text.as_str()).collect::<Vec<_>>().join(" ");
    let confidence = members.iter().map(|l| l.confidence).fold(1.0, f32::min);
    let (mut x0, mut y0, mut x1, mut y1) = (f32::INFINITY, f32::INFINITY, f32::NEG_INFINITY, f32::NEG_INFINITY);
    for p in members.iter().flat_map(|l| l.quad.iter()) {
        (x0, y0, x1, y1) = (x0.min(p[0]), y0.min(p[1]), x1.max(p[0]), y1.max(p[1]));
    }
    TextRow { text, confidence, quad: [[x0, y0], [x1, y0], [x1, y1], [x0, y1]], lines: range }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str, x: f32, y: f32, w: f32, h: f32) -> TextLine {
        TextLine { text: text.into(), confidence: 0.9, quad: [[x, y], [x + w, y], [x + w, y + h], [x, y + h]] }
    }

    #[test]
    fn lines_on_one_row_read_left_to_right_even_when_a_little_offset() {
        let (lines, rows) = reading_order(
            vec![
                line("number", 260.0, 416.0, 400.0, 40.0),
                line("张三", 140.0, 42.0, 80.0, 36.0),
                line("label", 40.0, 420.0, 180.0, 34.0),
                line("姓名", 40.0, 40.0, 80.0, 36.0),
            ],
            0.0,
            800,
            500,
        );
        let texts: Vec<_> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["姓名", "张三", "label", "number"]);
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].text.as_str(), rows[0].lines.clone()), ("姓名 张三", 0..2));
        assert_eq!((rows[1].text.as_str(), rows[1].lines.clone()), ("label number", 2..4));
        assert_eq!(rows[1].quad, [[40.0, 416.0], [660.0, 416.0], [660.0, 456.0], [40.0, 456.0]]);
    }

    #[test]
    fn lines_that_barely_overlap_are_separate_rows() {
        let (_, rows) =
            reading_order(vec![line("b", 0.0, 30.0, 50.0, 40.0), line("a", 100.0, 0.0, 50.0, 40.0)], 0.0, 200, 100);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].text, "a");
    }

    #[test]
    fn a_turned_page_reads_in_its_own_order() {
        // Two rows of two words, the page upside down in a 200 x 100 image: the last word is top-left.
        let upside_down = vec![
            line("d", 10.0, 10.0, 40.0, 20.0),
            line("c", 100.0, 10.0, 40.0, 20.0),
            line("b", 10.0, 60.0, 40.0, 20.0),
            line("a", 100.0, 60.0, 40.0, 20.0),
        ];
        let (_, rows) = reading_order(upside_down, 180.0, 200, 100);
        assert_eq!(rows.iter().map(|r| r.text.as_str()).collect::<Vec<_>>(), ["a b", "c d"]);
        // One column of words running top to bottom (turned 90° clockwise): the rightmost column is read first.
        let sideways = vec![
            line("b", 10.0, 10.0, 20.0, 40.0),
            line("a", 60.0, 10.0, 20.0, 40.0),
            line("a2", 60.0, 60.0, 20.0, 40.0),
        ];
        let (_, rows) = reading_order(sideways, 90.0, 100, 200);
        assert_eq!(rows.iter().map(|r| r.text.as_str()).collect::<Vec<_>>(), ["a a2", "b"]);
    }

    #[test]
    fn a_slanted_page_reads_row_by_row() {
        // Two rows of two words on a page turned 30° clockwise: in the image the rows' words are at different
        // heights, and the second row's first word is higher than the first row's last word.
        let (sin, cos) = 30f32.to_radians().sin_cos();
        let at = |text: &str, x: f32, y: f32| {
            let turn = |[px, py]: [f32; 2]| [200.0 + px * cos - py * sin, 100.0 + px * sin + py * cos];
            let quad = [[x, y], [x + 60.0, y], [x + 60.0, y + 20.0], [x, y + 20.0]].map(turn);
            TextLine { text: text.into(), confidence: 0.9, quad }
        };
        let page = vec![at("d", 120.0, 50.0), at("a", 0.0, 0.0), at("c", 0.0, 50.0), at("b", 120.0, 0.0)];
        let (_, rows) = reading_order(page, 30.0, 500, 400);
        assert_eq!(rows.iter().map(|r| r.text.as_str()).collect::<Vec<_>>(), ["a b", "c d"]);
    }
}
