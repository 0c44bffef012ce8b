//! Splitting OCR lines at printed labels (`姓名`, `性别`, ...), whether a label was read on its own line or glued
//! to its value (`姓名张三`, `性别男民族汉`).

use crate::TextLine;
use crate::text::compact;

/// A run of text: either what follows a label (up to the next label or the end of the line), or a piece of a line
/// with no label in front of it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Segment<L> {
    pub label: Option<L>,
    /// Width-normalised text without whitespace.
    pub text: String,
    /// Characters of `text` before the first place the OCR line had whitespace (0: none). A stray mark read
    /// into a label's box stands apart from the value (`姓名草 韩莉梅`), which this tells.
    pub first_word: usize,
    pub line: usize,
    pub confidence: f32,
}

/// A value gathered from one or more segments.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Found {
    pub text: String,
    /// As [`Segment::first_word`], for the first segment the value comes from.
    pub first_word: usize,
    pub confidence: f32,
}

impl Found {
    pub fn new(text: String, confidence: f32) -> Found {
        Found { text, first_word: 0, confidence }
    }

    /// The text after a mark of one or two characters that stands apart at its start (`有效期限2 2008-11-23`,
    /// a stroke of the label's box read as `2`), for a value that fails as read.
    pub fn without_stray_mark(&self) -> Option<Found> {
        if !(1..=2).contains(&self.first_word) {
            return None;
        }
        let (at, _) = self.text.char_indices().nth(self.first_word)?;
        Some(Found::new(self.text[at..].to_string(), self.confidence))
    }
}

/// Splits every line at the label variants (matched case-insensitively for ASCII, longest match first).
pub(crate) fn segment<L: Copy + PartialEq>(lines: &[TextLine], labels: &[(L, &[&str])]) -> Vec<Segment<L>> {
    let same = |a: L, b: L| a == b;
    let variants: Vec<(L, Vec<char>)> = labels
        .iter()
        .flat_map(|(label, vs)| vs.iter().map(move |v| (*label, compact(v).to_lowercase().chars().collect())))
        .collect();
    let mut out = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let chars: Vec<char> = compact(&line.text).chars().collect();
        // Whether whitespace came before each of `chars` in the line.
        let mut space_before = Vec::with_capacity(chars.len());
        let mut pending = false;
        for c in crate::text::normalize_width(&line.text).chars() {
            if c.is_whitespace() {
                pending = true;
            } else {
                space_before.push(std::mem::take(&mut pending));
            }
        }
        let lower: Vec<char> = chars.iter().map(|c| c.to_ascii_lowercase()).collect();
        let confidence = line.clamped_confidence();
        let mut current: Option<L> = None;
        let mut text = String::new();
        let mut first_word = 0;
        let mut started = false;
        let mut i = 0;
        while i < chars.len() {
            let exact = variants
                .iter()
                .filter(|(_, v)| !v.is_empty() && lower[i..].starts_with(v))
                .map(|(label, v)| (label, v.len()))
                .max_by_key(|(_, len)| *len);
            let best = exact.or_else(|| {
                variants.iter().filter_map(|(label, v)| Some((label, near_prefix(&lower[i..], v)?))).max_by_key(|m| m.1)
            });
            if let Some((label, len)) = best {
                // A bilingual label (`姓名 Name`) is one label: the second half adds nothing.
                let same_again = text.is_empty() && current.is_some_and(|c| same(c, *label));
                if same_again {
                    i += len;
                    continue;
                }
                if started || !text.is_empty() {
                    let text = std::mem::take(&mut text);
                    out.push(Segment { label: current, text, first_word, line: index, confidence });
                }
                first_word = 0;
                current = Some(*label);
                started = true;
                i += len;
            } else {
                if first_word == 0 && !text.is_empty() && space_before.get(i).copied().unwrap_or(false) {
                    first_word = text.chars().count();
                }
                text.push(chars[i]);
                i += 1;
            }
        }
        if started || !text.is_empty() {
            out.push(Segment { label: current, text, first_word, line: index, confidence });
        }
    }
    out
}

/// How many characters of `text` an English label of 7 letters or more takes when misread by one letter, one
/// dropped (`Nationalty`, `DateofFirstssue`) or one changed (`uicenseNo`); `None` when it is not there.
/// Shorter labels and Chinese ones must match exactly: one letter off, they would match ordinary words.
fn near_prefix(text: &[char], label: &[char]) -> Option<usize> {
    if label.len() < 7 || !label.iter().all(char::is_ascii_alphabetic) {
        return None;
    }
    let n = label.len();
    if text.len() >= n && text[..n].iter().zip(label).filter(|(a, b)| a != b).count() <= 1 {
        return Some(n);
    }
    let shorter = text.get(..n - 1)?;
    (0..n).any(|k| label[..k] == shorter[..k] && label[k + 1..] == shorter[k..]).then_some(n - 1)
}

fn is<L: PartialEq>(seg: &Segment<L>, label: L) -> bool {
    seg.label.as_ref() == Some(&label)
}

/// The value of the first occurrence of `label`: the text glued to it, or else the next unlabeled segment.
pub(crate) fn value_of<L: Copy + PartialEq>(segs: &[Segment<L>], label: L) -> Option<Found> {
    let mut at = segs.iter().position(|s| is(s, label))?;
    // The two halves of a bilingual label read as separate lines (`姓名` / `Name`).
    while segs[at].text.is_empty() && segs.get(at + 1).is_some_and(|n| is(n, label)) {
        at += 1;
    }
    let seg = &segs[at];
    if !seg.text.is_empty() {
        return Some(Found { text: seg.text.clone(), first_word: seg.first_word, confidence: seg.confidence });
    }
    let next = segs.get(at + 1).filter(|n| n.label.is_none() && !n.text.is_empty())?;
    Some(Found {
        text: next.text.clone(),
        first_word: next.first_word,
        confidence: next.confidence.min(seg.confidence),
    })
}

/// The text after `label` plus every following unlabeled segment, until the next label or a segment for which
/// `stop` is true (multi-line values such as addresses).
pub(crate) fn continued_value<L: Copy + PartialEq>(
    segs: &[Segment<L>],
    label: L,
    stop: impl Fn(&str) -> bool,
) -> Option<Found> {
    let at = segs.iter().position(|s| is(s, label))?;
    let mut text = segs[at].text.clone();
    let first_word = segs[at].first_word;
    let mut confidence = segs[at].confidence;
    for seg in &segs[at + 1..] {
        if seg.label.is_some() || stop(&seg.text) {
            break;
        }
        text.push_str(&seg.text);
        confidence = confidence.min(seg.confidence);
    }
    if text.is_empty() { None } else { Some(Found { text, first_word, confidence }) }
}

/// Index of the first segment with `label`.
pub(crate) fn position<L: Copy + PartialEq>(segs: &[Segment<L>], label: L) -> Option<usize> {
    segs.iter().position(|s| is(s, label))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::lines;

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum L {
        Name,
        Sex,
        Nation,
        Birth,
        BirthDate,
    }

    const LABELS: &[(L, &[&str])] = &[
        (L::Name, &["姓名", "Name"]),
        (L::Sex, &["性别"]),
        (L::Nation, &["民族"]),
        (L::Birth, &["出生"]),
        (L::BirthDate, &["出生日期"]),
    ];

    #[test]
    fn long_english_labels_match_one_letter_off() {
        let chars = |t: &str| t.chars().collect::<Vec<char>>();
        let near = |text: &str, label: &str| near_prefix(&chars(text), &chars(label));
        assert_eq!(near("nationalty中国", "nationality"), Some(10));
        assert_eq!(near("uicenseno3401", "licenseno"), Some(9));
        assert_eq!(near("nationality", "nationality"), Some(11));
        assert_eq!(near("natonalty", "nationality"), None);
        // Under 7 letters, exact only: `nane` is not `name`.
        assert_eq!(near("nane", "name"), None);
    }

    #[test]
    fn glued_and_separate_labels() {
        let segs = segment(&lines(&["姓名张三", "性别 男  民族 汉"]), LABELS);
        assert_eq!(value_of(&segs, L::Name).unwrap().text, "张三");
        assert_eq!(value_of(&segs, L::Sex).unwrap().text, "男");
        assert_eq!(value_of(&segs, L::Nation).unwrap().text, "汉");
        let segs = segment(&lines(&["姓 名", "张三", "性别"]), LABELS);
        assert_eq!(value_of(&segs, L::Name).unwrap().text, "张三");
        assert_eq!(value_of(&segs, L::Sex), None);
    }

    #[test]
    fn longest_label_wins_and_ascii_is_case_insensitive() {
        let segs = segment(&lines(&["出生日期1990-01-01", "NAME 李四", "姓名 Name 王五"]), LABELS);
        assert_eq!(segs.iter().filter(|s| s.label == Some(L::Name)).count(), 2);
        assert_eq!(segs[2].text, "王五");
        assert_eq!(value_of(&segs, L::BirthDate).unwrap().text, "1990-01-01");
        assert_eq!(value_of(&segs, L::Birth), None);
        assert_eq!(value_of(&segs, L::Name).unwrap().text, "李四");
    }

    #[test]
    fn continued_values_span_lines_until_a_label_or_stop() {
        let segs = segment(&lines(&["姓名", "北京市", "东城区", "110101", "性别男"]), LABELS);
        let v = continued_value(&segs, L::Name, |t| t.starts_with('1')).unwrap();
        assert_eq!(v.text, "北京市东城区");
        let v = continued_value(&segs, L::Name, |_| false).unwrap();
        assert_eq!(v.text, "北京市东城区110101");
    }
}
