//! Text normalisation shared by the parsers: full-width characters, spaces inside numbers, and the OCR confusion
//! maps used where the context says a character must be a digit (or a letter).

/// Maps full-width ASCII (`０`-`９`, `Ａ`-`Ｚ`, `：`, `（`...) to ASCII, the ideographic space to a space, and the
/// various dashes and minus signs to `-`. Everything else (CJK text, `一`, `·`) is kept.
pub fn normalize_width(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' | '\u{00A0}' => ' ',
            '\u{2010}' | '\u{2011}' | '\u{2012}' | '\u{2013}' | '\u{2014}' | '\u{2015}' | '\u{2212}' => '-',
            '\u{2022}' | '\u{30FB}' | '\u{2027}' => '\u{00B7}',
            _ => c,
        })
        .collect()
}

/// Removes all whitespace (CJK text has none; OCR inserts it between characters).
pub fn remove_whitespace(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Removes whitespace that sits between two digits: `"1101 0519 49"` → `"1101051949"`. Other spaces are kept.
pub fn join_digit_runs(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            let start = i;
            while i < chars.len() && chars[i].is_whitespace() {
                i += 1;
            }
            let before = start.checked_sub(1).map(|j| chars[j]);
            let after = chars.get(i).copied();
            let between_digits =
                before.is_some_and(|b| b.is_ascii_digit()) && after.is_some_and(|a| a.is_ascii_digit());
            if !between_digits {
                out.extend(&chars[start..i]);
            }
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

/// The digit a character is commonly misread for, in a context where only a digit is possible; digits map to
/// themselves. `O`/`o`/`Q`/`D`→0, `I`/`l`/`i`/`|`/`!`→1, `Z`/`z`→2, `A`→4, `S`/`s`/`$`→5, `G`/`b`→6, `T`→7,
/// `B`→8, `g`/`q`→9.
pub fn digit_for(c: char) -> Option<char> {
    Some(match c {
        '0'..='9' => c,
        'O' | 'o' | 'Q' | 'D' => '0',
        'I' | 'l' | 'i' | '|' | '!' => '1',
        'Z' | 'z' => '2',
        'A' => '4',
        'S' | 's' | '$' => '5',
        'G' | 'b' => '6',
        'T' => '7',
        'B' => '8',
        'g' | 'q' => '9',
        _ => return None,
    })
}

/// The uppercase letter a character is commonly misread for, in a context where only a letter is possible;
/// letters map to their uppercase. `0`→O, `1`→I, `2`→Z, `4`→A, `5`→S, `6`→G, `7`→T, `8`→B.
pub fn letter_for(c: char) -> Option<char> {
    Some(match c {
        'A'..='Z' => c,
        'a'..='z' => c.to_ascii_uppercase(),
        '0' => 'O',
        '1' => 'I',
        '2' => 'Z',
        '4' => 'A',
        '5' => 'S',
        '6' => 'G',
        '7' => 'T',
        '8' => 'B',
        _ => return None,
    })
}

/// Reads `s` as digits only, fixing confusions with [`digit_for`]. Returns the digits and whether anything was
/// changed, or `None` when a character cannot be a digit.
pub fn to_digits(s: &str) -> Option<(String, bool)> {
    let mut changed = false;
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let d = digit_for(c)?;
        changed |= d != c;
        out.push(d);
    }
    Some((out, changed))
}

/// Reads `s` as uppercase letters only, fixing confusions with [`letter_for`]. `changed` ignores case changes.
pub fn to_letters(s: &str) -> Option<(String, bool)> {
    let mut changed = false;
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let l = letter_for(c)?;
        changed |= l != c.to_ascii_uppercase();
        out.push(l);
    }
    Some((out, changed))
}

/// `true` for CJK unified ideographs (the characters of Chinese names and addresses).
pub fn is_cjk(c: char) -> bool {
    matches!(c, '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}' | '\u{20000}'..='\u{2A6DF}' | '\u{F900}'..='\u{FAFF}')
}

/// Width normalisation, then whitespace removed: the form the label-based parsers work on.
pub fn compact(s: &str) -> String {
    remove_whitespace(&normalize_width(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_width_becomes_ascii() {
        assert_eq!(normalize_width("１２３ＡＢｃ：（Ｘ）"), "123ABc:(X)");
        assert_eq!(normalize_width("姓名\u{3000}张三"), "姓名 张三");
        assert_eq!(normalize_width("2015.03.01—2035.03.01"), "2015.03.01-2035.03.01");
        assert_eq!(normalize_width("阿依古丽•买买提"), "阿依古丽·买买提");
        // Chinese 一 (one) is text, not a dash.
        assert_eq!(normalize_width("一路"), "一路");
    }

    #[test]
    fn spaces_inside_numbers_are_removed_only_between_digits() {
        assert_eq!(join_digit_runs("6222 0212  3456 7890"), "6222021234567890");
        assert_eq!(join_digit_runs("VALID THRU 12/29"), "VALID THRU 12/29");
        assert_eq!(join_digit_runs("No 12 34 AB"), "No 1234 AB");
        assert_eq!(compact(" 姓 名  张 三 "), "姓名张三");
    }

    #[test]
    fn digit_context_confusions() {
        assert_eq!(to_digits("11O1O5l949l2312OO2"), Some(("110105194912312002".into(), true)));
        assert_eq!(to_digits("12345"), Some(("12345".into(), false)));
        assert_eq!(to_digits("S8Z"), Some(("582".into(), true)));
        assert_eq!(to_digits("12K"), None);
    }

    #[test]
    fn letter_context_confusions() {
        assert_eq!(to_letters("UT0"), Some(("UTO".into(), true)));
        assert_eq!(to_letters("d<"), None);
        assert_eq!(to_letters("chn"), Some(("CHN".into(), false)));
        assert_eq!(to_letters("5GP"), Some(("SGP".into(), true)));
    }

    #[test]
    fn cjk_detection() {
        assert!(is_cjk('张'));
        assert!(!is_cjk('A'));
        assert!(!is_cjk('·'));
    }
}
