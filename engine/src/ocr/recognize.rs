//! Text-line recognition: PP-OCRv4 SVTR-LCNet with greedy CTC decoding over its 6,623-character dictionary.

use image::RgbImage;
use ort::session::Session;
use ort::value::TensorRef;

use super::{BATCH, by_aspect_ratio, normalized_bgr, resize};
use crate::error::{EngineError, EngineResult};
use crate::runtime::ModelSpec;

/// A batch is padded to its widest line; a line that would make the padding more than this share of the
/// batch's useful width starts a new batch.
const MAX_PADDING: f64 = 0.25;

/// CTC classes: 0 = blank, 1..=6623 = the dictionary, 6624 = space.
pub const CLASSES: usize = 6625;

pub const SPEC: ModelSpec =
    ModelSpec { inputs: &[("x", &[-1, 3, -1, -1])], outputs: &[("softmax_11.tmp_0", &[-1, -1, CLASSES as i64])] };

const HEIGHT: u32 = 48;
const MIN_WIDTH: u32 = 48;

/// The metadata key RapidOCR stores the dictionary under, one character per line.
const CHARSET_KEY: &str = "character";

/// The model's dictionary as CTC classes (index 0, the blank, is an empty string). `Err` with the problem when
/// the model has none or it does not match the output size.
pub fn charset(session: &Session) -> Result<Vec<String>, String> {
    let metadata = session.metadata().map_err(|e| format!("cannot read its metadata ({e})"))?;
    let characters = metadata
        .custom(CHARSET_KEY)
        .ok_or_else(|| format!("it has no `{CHARSET_KEY}` metadata (the dictionary); it is not the expected model"))?;
    let mut classes = vec![String::new()];
    classes.extend(characters.lines().map(str::to_string));
    classes.push(" ".to_string());
    if classes.len() != CLASSES {
        return Err(format!(
            "its dictionary has {} characters; {} are needed for its {CLASSES} outputs",
            classes.len() - 2,
            CLASSES - 2
        ));
    }
    Ok(classes)
}

/// Reads each crop: its text and confidence (mean probability of the characters kept; 0 for no text).
pub fn recognize(session: &mut Session, charset: &[String], crops: &[RgbImage]) -> EngineResult<Vec<(String, f32)>> {
    recognize_with(session, crops, |sequence| ctc_greedy(sequence, charset))
}

/// Reads each crop with the recogniser's choices for every character (see [`ctc_choices`]).
pub fn recognize_choices(
    session: &mut Session,
    charset: &[String],
    crops: &[RgbImage],
) -> EngineResult<Vec<Recognized>> {
    recognize_with(session, crops, |sequence| ctc_choices(sequence, charset, CLASSES))
}

/// Runs the recogniser over the crops in batches and decodes each crop's output sequence with `decode`.
fn recognize_with<T>(session: &mut Session, crops: &[RgbImage], decode: impl Fn(&[f32]) -> T) -> EngineResult<Vec<T>> {
    let mut results: Vec<Option<T>> = (0..crops.len()).map(|_| None).collect();
    let ratio = |i: usize| f64::from(crops[i].width()) / f64::from(crops[i].height());
    for batch in batches(&by_aspect_ratio(crops), ratio) {
        let widest = batch.iter().map(|&i| ratio(i)).fold(0.0, f64::max);
        let width = ((f64::from(HEIGHT) * widest).ceil() as u32).max(MIN_WIDTH);
        let resized = batch
            .iter()
            .map(|&i| {
                let w = ((f64::from(HEIGHT) * ratio(i)).ceil() as u32).clamp(1, width);
                resize(&crops[i], w, HEIGHT)
            })
            .collect::<EngineResult<Vec<_>>>()?;
        let input = normalized_bgr(&resized.iter().collect::<Vec<_>>(), width, HEIGHT)?;
        let outputs = session.run(ort::inputs!["x" => TensorRef::from_array_view(&input)?])?;
        let (shape, probs) = outputs[0].try_extract_tensor::<f32>()?;
        if shape.len() != 3 || shape[0] != batch.len() as i64 || shape[2] != CLASSES as i64 {
            return Err(EngineError::Runtime(format!("text recognizer output shape {shape:?}")));
        }
        let steps = shape[1] as usize;
        for (&i, sequence) in batch.iter().zip(probs.chunks_exact(steps * CLASSES)) {
            results[i] = Some(decode(sequence));
        }
    }
    // Every crop is in exactly one batch.
    Ok(results.into_iter().flatten().collect())
}

/// Splits lines sorted by aspect ratio into batches of at most [`BATCH`], each padded to its widest line: a
/// batch closes early rather than pad its lines by more than [`MAX_PADDING`] of their width. An MRZ line is four
/// times as long as a typical field; padded alongside five of them it made its batch 2.5 times as costly.
fn batches(sorted: &[usize], ratio: impl Fn(usize) -> f64) -> Vec<&[usize]> {
    let mut batches = Vec::new();
    let mut start = 0;
    let mut useful = 0.0;
    for (k, &i) in sorted.iter().enumerate() {
        let count = (k - start + 1) as f64;
        let full = k - start == BATCH;
        if k > start && (full || count * ratio(i) > (1.0 + MAX_PADDING) * (useful + ratio(i))) {
            batches.push(&sorted[start..k]);
            start = k;
            useful = 0.0;
        }
        useful += ratio(i);
    }
    if start < sorted.len() {
        batches.push(&sorted[start..]);
    }
    batches
}

/// Greedy CTC: the most probable class at each step, repeats collapsed, blanks dropped; the confidence is the
/// mean probability of the steps kept.
pub fn ctc_greedy(sequence: &[f32], charset: &[String]) -> (String, f32) {
    ctc_greedy_over(sequence, charset, CLASSES)
}

/// [`ctc_greedy`] for a model with `classes` outputs per step (class 0 the blank).
pub fn ctc_greedy_over(sequence: &[f32], charset: &[String], classes: usize) -> (String, f32) {
    let (mut text, mut sum, mut kept) = (String::new(), 0.0f32, 0usize);
    let mut previous = usize::MAX;
    for step in sequence.chunks_exact(classes) {
        let (class, p) = most_probable(step);
        if class != 0 && class != previous {
            text.push_str(charset.get(class).map_or("", String::as_str));
            sum += p;
            kept += 1;
        }
        previous = class;
    }
    let confidence = if kept == 0 { 0.0 } else { sum / kept as f32 };
    (text, confidence)
}

/// The most probable class of one CTC step, and its probability.
fn most_probable(step: &[f32]) -> (usize, f32) {
    step.iter().enumerate().fold((0, f32::NEG_INFINITY), |best, (k, &p)| if p > best.1 { (k, p) } else { best })
}

/// How many choices [`ctc_choices`] keeps for each character.
pub const CHOICES: usize = 4;

/// A text line as read, with the recogniser's choices for each character of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Recognized {
    pub text: String,
    /// Mean probability of the characters kept (0 for no text), as [`ctc_greedy`] gives it.
    pub confidence: f32,
    /// One entry per character of `text`, in order: the classes most probable over the steps the character was
    /// read in, most probable first (the character read is the first), at most [`CHOICES`].
    pub choices: Vec<Vec<(char, f32)>>,
}

impl Recognized {
    /// The reading without leading and trailing whitespace (and their choices).
    pub fn trimmed(mut self) -> Recognized {
        let blank = |c: &Vec<(char, f32)>| c.first().is_none_or(|(ch, _)| ch.is_whitespace());
        let start = self.choices.iter().take_while(|c| blank(c)).count();
        let end = self.choices.len() - self.choices.iter().rev().take_while(|c| blank(c)).count();
        self.choices = self.choices.drain(start..end.max(start)).collect();
        self.text = self.choices.iter().filter_map(|c| c.first().map(|(ch, _)| *ch)).collect();
        self
    }
}

/// Greedy CTC as [`ctc_greedy_over`], keeping for each character the other classes that rated highest over its
/// steps. A format's grammar can then pick the likeliest character it allows where the first choice is not one
/// (a plate's province read as a look-alike character that is not a province).
pub fn ctc_choices(sequence: &[f32], charset: &[String], classes: usize) -> Recognized {
    let class_char = |k: usize| charset.get(k).and_then(|s| s.chars().next());
    let mut choices: Vec<Vec<(char, f32)>> = Vec::new();
    let (mut sum, mut previous) = (0.0f32, usize::MAX);
    let mut best: Vec<(usize, f32)> = Vec::with_capacity(CHOICES + 1);
    for step in sequence.chunks_exact(classes) {
        let (class, p) = most_probable(step);
        let starts = class != 0 && class != previous;
        let continues = class != 0 && class == previous;
        if starts {
            best.clear();
            sum += p;
        }
        if starts || continues {
            // The highest probabilities of any non-blank class over this character's steps.
            for (k, &q) in step.iter().enumerate().skip(1) {
                if best.len() == CHOICES && q <= best[CHOICES - 1].1 {
                    continue;
                }
                match best.iter().position(|&(c, _)| c == k) {
                    Some(at) if best[at].1 >= q => continue,
                    Some(at) => {
                        best.remove(at);
                    }
                    None => {}
                }
                let at = best.iter().position(|&(_, b)| q > b).unwrap_or(best.len());
                best.insert(at, (k, q));
                best.truncate(CHOICES);
            }
            let kept: Vec<(char, f32)> = best.iter().filter_map(|&(k, q)| class_char(k).map(|c| (c, q))).collect();
            if starts {
                choices.push(kept);
            } else if let Some(last) = choices.last_mut() {
                *last = kept;
            }
        }
        previous = class;
    }
    let choices: Vec<Vec<(char, f32)>> = choices.into_iter().filter(|c| !c.is_empty()).collect();
    let text = choices.iter().map(|c| c[0].0).collect();
    let confidence = if choices.is_empty() { 0.0 } else { sum / choices.len() as f32 };
    Recognized { text, confidence, choices }
}

/// A letter at either end of an embossed line that is a character with less than this probability (its choices'
/// together) is taken for a piece of its neighbour (see [`without_shadow_letters`]).
pub const EDGE_LETTER_BELOW: f32 = 0.9;

/// An embossed line (a bank card's holder name) without a letter read from the neighbouring word's edge or
/// shadow. Embossed words stand far apart, the detector boxes them one by one, and a box's margin reaches into
/// the gap, where the raised letter next door casts its shadow: the recogniser reads a letter there (`THOMAS` |
/// `S CHEN`, `MARK` | `KLOPEZ`, `DENGI` | `HUA`) while unsure that any character is there at all: its choices
/// add up to 0.54-0.85 on 500 clean synthetic cards. The word's own letters add up to 0.98 or more, even where the
/// recogniser hesitates between look-alikes (`O` 0.62, `0` the rest, in `XIAO`): the first choice's probability
/// alone would not tell them apart. So a first or last letter under [`EDGE_LETTER_BELOW`] is dropped, with the
/// space between it and the word. Digits are left alone: the card number's parser repairs them under Luhn.
pub fn without_shadow_letters(read: Recognized) -> Recognized {
    let mut read = read.trimmed();
    let unsure_letter = |c: Option<&Vec<(char, f32)>>| {
        c.is_some_and(|c| {
            let total: f32 = c.iter().map(|&(_, p)| p).sum();
            c.first().is_some_and(|&(ch, _)| ch.is_alphabetic()) && total < EDGE_LETTER_BELOW
        })
    };
    if read.choices.len() > 1 && unsure_letter(read.choices.first()) {
        read.choices.remove(0);
    }
    if read.choices.len() > 1 && unsure_letter(read.choices.last()) {
        read.choices.pop();
    }
    read.trimmed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_line_is_not_batched_with_short_ones() {
        let ratios = [2.0, 2.0, 2.2, 2.4, 2.5, 2.5, 2.6, 3.0, 36.0, 36.5];
        let sorted: Vec<usize> = (0..ratios.len()).collect();
        let batches = batches(&sorted, |i| ratios[i]);
        assert_eq!(batches, vec![&[0, 1, 2, 3, 4, 5][..], &[6, 7][..], &[8, 9][..]]);
    }

    #[test]
    fn ctc_choices_keep_each_characters_runners_up() {
        let charset: Vec<String> = (0..CLASSES).map(|k| if k == 0 { String::new() } else { k.to_string() }).collect();
        let charset: Vec<String> = charset.iter().map(|s| s.chars().last().unwrap_or(' ').to_string()).collect();
        // Steps: 5 (8 second), 5 (8 higher than before, 3 third), blank, 7 (1 second), 7, space -> "57 ".
        let mut sequence = vec![0.0f32; 6 * CLASSES];
        let steps: [&[(usize, f32)]; 6] = [
            &[(5, 0.7), (8, 0.2)],
            &[(5, 0.5), (8, 0.3), (3, 0.1)],
            &[(0, 0.9)],
            &[(7, 0.6), (1, 0.3)],
            &[(7, 0.8)],
            &[(CLASSES - 1, 0.9)],
        ];
        for (step, classes) in steps.iter().enumerate() {
            for &(class, p) in *classes {
                sequence[step * CLASSES + class] = p;
            }
        }
        let mut charset = charset;
        charset[CLASSES - 1] = " ".into();
        let read = ctc_choices(&sequence, &charset, CLASSES);
        assert_eq!(read.text, "57 ");
        assert_eq!((read.choices[0][0], read.choices[0][1], read.choices[0][2]), (('5', 0.7), ('8', 0.3), ('3', 0.1)));
        assert_eq!((read.choices[1][0], read.choices[1][1]), (('7', 0.8), ('1', 0.3)));
        assert_eq!(read.choices[0].len(), CHOICES);
        assert!((read.confidence - (0.7 + 0.6 + 0.9) / 3.0).abs() < 1e-6);
        let trimmed = read.trimmed();
        assert_eq!((trimmed.text.as_str(), trimmed.choices.len()), ("57", 2));
        // It reads what greedy CTC reads.
        assert_eq!(ctc_greedy(&sequence, &charset).0, "57 ");
    }

    #[test]
    fn an_embossed_words_neighbour_is_dropped_from_its_edges_but_its_own_letters_are_kept() {
        // (index, [(character, probability)]) overrides a character's choices; the others are sure.
        let line = |text: &str, unsure: &[(usize, &[(char, f32)])]| {
            let mut choices: Vec<Vec<(char, f32)>> = text.chars().map(|c| vec![(c, 0.99)]).collect();
            for &(i, c) in unsure {
                choices[i] = c.to_vec();
            }
            without_shadow_letters(Recognized { text: text.to_string(), confidence: 0.9, choices }).text
        };
        // Read from the cards of the benchmark's clean set.
        assert_eq!(line("S CHEN", &[(0, &[('S', 0.67), ('G', 0.03)]), (1, &[(' ', 0.57)])]), "CHEN");
        assert_eq!(line("KLOPEZ", &[(0, &[('K', 0.52), ('X', 0.1)])]), "LOPEZ");
        assert_eq!(line("DENGI", &[(4, &[('I', 0.74), ('1', 0.11)])]), "DENG");
        assert_eq!(line("MICHAEL I", &[(7, &[(' ', 0.78)]), (8, &[('I', 0.71), ('L', 0.13)])]), "MICHAEL");
        // The word's own letters stay, even where the recogniser hesitated between look-alikes; digits stay.
        assert_eq!(line("XIAO", &[(3, &[('O', 0.62), ('0', 0.38)])]), "XIAO");
        assert_eq!(line("WU", &[(0, &[('W', 0.84), ('V', 0.16)])]), "WU");
        assert_eq!(line("LIANG QIANG", &[]), "LIANG QIANG");
        assert_eq!(line("62228", &[(4, &[('8', 0.3)])]), "62228");
        assert_eq!(line("I", &[(0, &[('I', 0.5)])]), "I");
    }

    #[test]
    fn ctc_collapses_repeats_and_drops_blanks() {
        let charset: Vec<String> = (0..CLASSES).map(|k| if k == 0 { String::new() } else { k.to_string() }).collect();
        // Steps: 5, 5, blank, 5, 7, 7 -> "5" "5" "7".
        let mut sequence = vec![0.0f32; 6 * CLASSES];
        for (step, (class, p)) in [(5, 0.9), (5, 0.8), (0, 0.99), (5, 0.7), (7, 0.6), (7, 0.5)].iter().enumerate() {
            sequence[step * CLASSES + class] = *p;
        }
        let (text, confidence) = ctc_greedy(&sequence, &charset);
        assert_eq!(text, "557");
        assert!((confidence - (0.9 + 0.7 + 0.6) / 3.0).abs() < 1e-6);
        let (text, confidence) = ctc_greedy(&vec![0.0; 3 * CLASSES], &charset);
        assert_eq!((text.as_str(), confidence), ("", 0.0));
    }
}
