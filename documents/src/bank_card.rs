//! Payment cards: card number (Luhn, network from the IIN), expiry, holder name, debit/credit when printed.
//!
//! Card numbers are never shown unmasked by `Debug` or `Display` ([`CardNumber`] prints `622202******7890`), and
//! the `raw` text of the number field is masked the same way. The full number is only in the serialised
//! [`CardNumber`] (the API response) and [`CardNumber::digits`].

use std::fmt;

use serde::Serialize;
use serde::ser::SerializeStruct;

use crate::text::{digit_for, letter_for, normalize_width, to_digits};
use crate::{Field, TextLine, min_confidence};

/// Card scheme, from the issuer identification number (leading digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CardNetwork {
    /// 4.
    Visa,
    /// 51-55, 2221-2720.
    Mastercard,
    /// 34, 37.
    Amex,
    /// 62, 81.
    UnionPay,
    /// 3528-3589.
    Jcb,
    /// 6011, 644-649, 65.
    Discover,
    /// 300-305, 3095, 36, 38, 39.
    DinersClub,
    /// 50, 56-69 not claimed above.
    Maestro,
    /// None of the above.
    Unknown,
}

impl CardNetwork {
    /// Card number lengths the network issues.
    fn lengths(self) -> &'static [usize] {
        match self {
            Self::Visa => &[13, 16, 19],
            Self::Mastercard => &[16],
            Self::Amex => &[15],
            Self::DinersClub => &[14, 15, 16, 17, 18, 19],
            Self::UnionPay | Self::Jcb | Self::Discover => &[16, 17, 18, 19],
            Self::Maestro | Self::Unknown => &[13, 14, 15, 16, 17, 18, 19],
        }
    }

    /// The lengths nearly every card of the network has: 16 digits, 15 for Amex, 14 for Diners Club's
    /// oldest, 19 for UnionPay's and Maestro's debit cards. (Visa's 13 digits are long retired; 17 and 18
    /// are rare.)
    fn usual_length(self, length: usize) -> bool {
        match self {
            Self::Amex => length == 15,
            Self::DinersClub => matches!(length, 14 | 16),
            Self::UnionPay | Self::Maestro | Self::Unknown | Self::Visa => matches!(length, 16 | 19),
            Self::Mastercard | Self::Jcb | Self::Discover => length == 16,
        }
    }
}

/// The network of a card number (leading digits; the rest is ignored). Rules are tried from the most specific
/// range to the least: 4-digit ranges, then 3-digit, then 2-digit, then Visa's single `4`, then Maestro's broad
/// 56-69.
pub fn card_network(digits: &str) -> CardNetwork {
    let prefix = |n: usize| {
        digits.get(..n).filter(|p| p.bytes().all(|b| b.is_ascii_digit())).and_then(|p| p.parse::<u32>().ok())
    };
    let p4 = prefix(4).unwrap_or(0);
    let p3 = prefix(3).unwrap_or(0);
    let p2 = prefix(2).unwrap_or(0);
    match () {
        () if (3528..=3589).contains(&p4) => CardNetwork::Jcb,
        () if p4 == 6011 => CardNetwork::Discover,
        () if (2221..=2720).contains(&p4) => CardNetwork::Mastercard,
        () if p4 == 3095 || (300..=305).contains(&p3) => CardNetwork::DinersClub,
        () if (644..=649).contains(&p3) => CardNetwork::Discover,
        () if p2 == 34 || p2 == 37 => CardNetwork::Amex,
        () if p2 == 36 || p2 == 38 || p2 == 39 => CardNetwork::DinersClub,
        () if p2 == 65 => CardNetwork::Discover,
        () if p2 == 62 || p2 == 81 => CardNetwork::UnionPay,
        () if (51..=55).contains(&p2) => CardNetwork::Mastercard,
        () if digits.starts_with('4') => CardNetwork::Visa,
        () if p2 == 50 || (56..=69).contains(&p2) => CardNetwork::Maestro,
        () => CardNetwork::Unknown,
    }
}

/// Luhn (mod 10) check over ASCII digits; `false` for anything else or an empty string.
pub fn luhn_valid(digits: &str) -> bool {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Why a digit string is not a card number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CardNumberError {
    /// Not 13-19 digits.
    #[error("a card number has 13 to 19 digits")]
    Length,
    /// The Luhn check fails.
    #[error("the Luhn check fails")]
    Luhn,
    /// The network does not issue numbers of this length.
    #[error("{0:?} does not issue numbers of this length")]
    NetworkLength(CardNetwork),
}

/// A Luhn-valid card number. `Debug` and `Display` show only the masked form.
#[derive(Clone, PartialEq, Eq)]
pub struct CardNumber {
    digits: String,
}

impl CardNumber {
    /// Validates a digit string (spaces and dashes allowed between groups).
    pub fn parse(text: &str) -> Result<Self, CardNumberError> {
        let digits: String = text.chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
        if !(13..=19).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CardNumberError::Length);
        }
        if !luhn_valid(&digits) {
            return Err(CardNumberError::Luhn);
        }
        let network = card_network(&digits);
        if !network.lengths().contains(&digits.len()) {
            return Err(CardNumberError::NetworkLength(network));
        }
        Ok(Self { digits })
    }

    /// The full number, digits only. Handle with care: never log it.
    pub fn digits(&self) -> &str {
        &self.digits
    }

    /// The network from the leading digits.
    pub fn network(&self) -> CardNetwork {
        card_network(&self.digits)
    }

    /// Grouped for display: 4-6-5 for 15 digits (Amex), 4-6-4 for 14 (Diners), else groups of 4
    /// (`6222 0212 3456 7890`).
    pub fn grouped(&self) -> String {
        let sizes: &[usize] = match self.digits.len() {
            15 => &[4, 6, 5],
            14 => &[4, 6, 4],
            _ => &[4; 5],
        };
        let mut out = String::new();
        let mut rest = self.digits.as_str();
        for size in sizes.iter().chain(std::iter::repeat(&4)) {
            if rest.is_empty() {
                break;
            }
            let (head, tail) = rest.split_at((*size).min(rest.len()));
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(head);
            rest = tail;
        }
        out
    }

    /// First six and last four digits, the rest as `*` (`622202******7890`).
    pub fn masked(&self) -> String {
        mask_digits(&self.digits)
    }

    /// The last four digits.
    pub fn last4(&self) -> &str {
        &self.digits[self.digits.len() - 4..]
    }
}

impl fmt::Debug for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CardNumber").field(&self.masked()).finish()
    }
}

impl fmt::Display for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// Serialises as `{"number": "6222021234567890", "display": "6222 0212 3456 7890", "masked": "622202******7890"}`:
/// the API response is the one place the full number goes.
impl Serialize for CardNumber {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("CardNumber", 3)?;
        s.serialize_field("number", &self.digits)?;
        s.serialize_field("display", &self.grouped())?;
        s.serialize_field("masked", &self.masked())?;
        s.end()
    }
}

/// Masks every digit of `text` except the first six and the last four (fewer when the text is short: at most
/// half the digits stay visible). Other characters are kept.
pub fn mask_digits(text: &str) -> String {
    let total = text.chars().filter(char::is_ascii_digit).count();
    let (keep_head, keep_tail) = if total >= 13 { (6, 4) } else { (total / 4, total / 4) };
    let mut seen = 0;
    text.chars()
        .map(|c| {
            if !c.is_ascii_digit() {
                return c;
            }
            seen += 1;
            if seen <= keep_head || seen > total - keep_tail { c } else { '*' }
        })
        .collect()
}

/// Debit or credit, when printed on the card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CardType {
    /// `DEBIT`, `借记卡`.
    Debit,
    /// `CREDIT`, `信用卡`, `贷记卡`.
    Credit,
    /// `PREPAID`, `预付`.
    Prepaid,
    /// Not printed.
    Unknown,
}

/// Card expiry month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct CardExpiry {
    /// 1-12.
    pub month: u8,
    /// Four-digit year (two-digit years are 20xx).
    pub year: u16,
}

impl fmt::Display for CardExpiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}/{:02}", self.month, self.year % 100)
    }
}

/// Everything read from the front of a card.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BankCard {
    /// The card number; its `raw` text is masked.
    pub number: Field<CardNumber>,
    /// From the number's IIN (`Unknown` without a valid number).
    pub network: CardNetwork,
    /// Debit/credit, only when printed.
    pub card_type: CardType,
    /// Expiry (`VALID THRU 12/29`).
    pub expiry: Field<CardExpiry>,
    /// Embossed holder name, uppercase.
    pub holder_name: Field<String>,
}

/// Parses the OCR lines of a card front.
pub fn parse_bank_card(lines: &[TextLine]) -> BankCard {
    let (number, number_line) = find_number(lines);
    let network = number.value.as_ref().map_or(CardNetwork::Unknown, CardNumber::network);
    BankCard {
        network,
        card_type: find_card_type(lines),
        expiry: find_expiry(lines),
        holder_name: find_holder(lines, number_line),
        number,
    }
}

/// A whitespace-separated token that reads as digits: at least half real digits, the rest confusable letters.
fn digit_token(token: &str) -> Option<(String, bool)> {
    let token = token.trim_matches(|c: char| c == '-' || c == '.' || c == ',');
    let real = token.chars().filter(char::is_ascii_digit).count();
    if token.is_empty() || real * 2 < token.chars().count() {
        return None;
    }
    to_digits(token)
}

/// A whitespace-separated token and, when it reads as digits, the digits and whether a confusion was fixed.
type Token = (String, Option<(String, bool)>);

struct NumberCandidate {
    digits: String,
    raw: String,
    changed: bool,
    /// Part of a longer run of digit groups, never taken as the number: one in ten prefixes of a misread number
    /// passes the Luhn check.
    partial: bool,
    /// A digit was dropped ([`gap_repairs`]): which kind of repair.
    repair: Option<Repair>,
    confidence: f32,
    line: usize,
}

/// Runs of consecutive digit tokens in each line, and across a line break when both lines are all digits, with
/// the gap repairs of [`gap_repairs`] for whole runs.
fn number_candidates(lines: &[TextLine]) -> Vec<NumberCandidate> {
    let tokenised: Vec<Vec<Token>> = lines
        .iter()
        // A gap between groups is sometimes read as a dash (`2645-7416`); no card prints one.
        .map(|l| {
            normalize_width(&l.text)
                .split(|c: char| c.is_whitespace() || c == '-')
                .filter(|t| !t.is_empty())
                .map(|t| (t.to_string(), digit_token(t)))
                .collect()
        })
        .map(stray_letters_as_lone_groups)
        .collect();
    let mut out = Vec::new();
    let mut push_runs = |tokens: &[Token], confidence: f32, line: usize| {
        let is_digits = |i: usize| tokens.get(i).is_some_and(|t| t.1.is_some());
        for start in 0..tokens.len() {
            let mut groups: Vec<&str> = Vec::new();
            let mut raw = Vec::new();
            let mut changed = false;
            for (offset, (text, digit)) in tokens[start..].iter().enumerate() {
                let Some((d, c)) = digit else { break };
                groups.push(d);
                raw.push(text.as_str());
                changed |= *c;
                let digits = groups.concat();
                if digits.len() > 20 {
                    break;
                }
                let partial = (start > 0 && is_digits(start - 1)) || is_digits(start + offset + 1);
                let raw = raw.join(" ");
                let candidate = |digits: String, changed: bool, repair: Option<Repair>| NumberCandidate {
                    digits,
                    raw: raw.clone(),
                    changed,
                    partial,
                    repair,
                    confidence,
                    line,
                };
                if !partial {
                    out.extend(
                        gap_repairs(&groups).into_iter().map(|(digits, kind)| candidate(digits, true, Some(kind))),
                    );
                }
                if (13..=19).contains(&digits.len()) {
                    out.push(candidate(digits, changed, None));
                }
            }
        }
    };
    for (i, tokens) in tokenised.iter().enumerate() {
        push_runs(tokens, lines[i].clamped_confidence(), i);
        if let Some(next) = tokenised.get(i + 1) {
            let all_digits = |t: &Vec<Token>| !t.is_empty() && t.iter().all(|x| x.1.is_some());
            if all_digits(tokens) && all_digits(next) {
                let joined: Vec<_> = tokens.iter().chain(next.iter()).cloned().collect();
                push_runs(&joined, min_confidence([&lines[i], &lines[i + 1]]), i + 1);
            }
        }
    }
    out
}

/// A lone letter between two digit groups (`7041 L 0454`), or a letter before a group of four after one
/// (`3141 L8013`), is the recogniser seeing something in the gap. It is kept as a character that is not a digit,
/// so the run goes on across it and only a repair that drops it ([`gap_repairs`]) can be a number.
fn stray_letters_as_lone_groups(mut tokens: Vec<Token>) -> Vec<Token> {
    for i in 1..tokens.len() {
        if tokens[i].1.is_some() || tokens[i - 1].1.is_none() {
            continue;
        }
        let mut chars = tokens[i].0.chars();
        let first = chars.next().filter(char::is_ascii_alphabetic);
        let rest = chars.as_str();
        if first.is_some() && rest.is_empty() && tokens.get(i + 1).is_some_and(|t| t.1.is_some()) {
            tokens[i].1 = Some(("?".to_string(), true));
        } else if first.is_some()
            && let Some((digits, _)) = digit_token(rest).filter(|_| rest.len() == 4)
        {
            // `L8013`: the letter is what was seen in the gap before a group of four.
            tokens[i].1 = Some((format!("?{digits}"), true));
        }
    }
    tokens
}

/// The recogniser's commonest misreading of an embossed number: in the wide gap between two groups it sees the
/// digit beside the gap twice (`4988 8950` read `49888 8950`, `1265 8787` read `1265 5 8787`), or a digit that
/// is not there at all (`6266 4133` read `6266 5 4133`). Each repair drops one copy of a digit that repeats
/// across a gap, or a lone digit between two groups (no card prints a group of one), or the digit at the gap end
/// of a group of five among groups (`8326 54797`, `0276 50313`: cards print groups of four).
fn gap_repairs(groups: &[&str]) -> Vec<(String, Repair)> {
    let mut repairs: Vec<(String, Repair)> =
        seen_twice_or_alone(groups).into_iter().map(|r| (r, Repair::SeenTwiceOrAlone)).collect();
    // Only for the one group of five of a run: with two, one repair leaves a 17-digit reading that passes the
    // Luhn check one time in ten.
    let fives: Vec<usize> = (0..groups.len()).filter(|&k| groups[k].len() == 5).collect();
    if let [k] = fives[..]
        && groups.len() >= 2
    {
        let mut repaired = groups.to_vec();
        if k > 0 {
            repaired[k] = &groups[k][1..];
            repairs.push((repaired.concat(), Repair::GroupOfFive));
        }
        if k + 1 < groups.len() {
            repaired[k] = &groups[k][..4];
            repairs.push((repaired.concat(), Repair::GroupOfFive));
        }
    }
    repairs.retain(|(r, _)| (13..=19).contains(&r.len()));
    // The same digits by both kinds of repair count once, as the stronger kind.
    repairs.sort();
    repairs.dedup_by(|later, earlier| later.0 == earlier.0);
    repairs
}

/// Kinds of [`gap_repairs`], the stronger first: a digit repeated across the gap (or a lone group) says where the
/// extra digit is; a group of five only says that one is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Repair {
    SeenTwiceOrAlone,
    GroupOfFive,
}

/// The repairs for a digit seen twice across a gap, and for a lone group between two others.
fn seen_twice_or_alone(groups: &[&str]) -> Vec<String> {
    let mut repairs = Vec::new();
    for k in 1..groups.len().saturating_sub(1) {
        if groups[k].len() == 1 {
            let mut repaired = groups.to_vec();
            repaired.remove(k);
            repairs.push(repaired.concat());
        }
    }
    for k in 0..groups.len().saturating_sub(1) {
        let (left, right) = (groups[k], groups[k + 1]);
        if left.is_empty() || right.is_empty() || left.as_bytes()[left.len() - 1] != right.as_bytes()[0] {
            continue;
        }
        // Dropping the lone group, or the last digit of the left group (the same digits as the right's first).
        let mut repaired = groups.to_vec();
        if right.len() == 1 {
            repaired.remove(k + 1);
        } else {
            repaired[k] = &left[..left.len() - 1];
        }
        repairs.push(repaired.concat());
    }
    repairs
}

fn find_number(lines: &[TextLine]) -> (Field<CardNumber>, Option<usize>) {
    let candidates = number_candidates(lines);
    // Valid candidates, whole runs only: of a usual length first (a 17-digit reading with a digit seen twice
    // across a gap passes the Luhn check one time in ten, and UnionPay issues 17 digits, rarely), then as
    // printed before corrected, then the longest. A repair is taken only when it is the one valid repair of its
    // run.
    let parsed: Vec<(&NumberCandidate, CardNumber)> = candidates
        .iter()
        .filter(|c| !c.partial)
        .filter_map(|c| CardNumber::parse(&c.digits).ok().map(|n| (c, n)))
        .collect();
    // A repair is taken only when it is the one valid repair of its kind for its run, and a weaker kind only
    // when no stronger repair of the run is valid.
    let valid_repairs_of = |c: &NumberCandidate, kind: Repair| {
        parsed.iter().filter(|(o, _)| o.repair == Some(kind) && o.line == c.line && o.raw == c.raw).count()
    };
    let mut valid: Vec<&(&NumberCandidate, CardNumber)> = parsed
        .iter()
        .filter(|(c, _)| match c.repair {
            None => true,
            Some(Repair::SeenTwiceOrAlone) => valid_repairs_of(c, Repair::SeenTwiceOrAlone) == 1,
            Some(Repair::GroupOfFive) => {
                valid_repairs_of(c, Repair::GroupOfFive) == 1 && valid_repairs_of(c, Repair::SeenTwiceOrAlone) == 0
            }
        })
        .collect();
    valid.sort_by_key(|(c, n)| {
        let usual = n.network().usual_length(n.digits().len());
        (!usual, c.changed, std::cmp::Reverse(n.digits().len()))
    });
    if let Some((c, n)) = valid.first() {
        return (Field::checked(n.clone(), mask_digits(&c.raw), c.confidence, c.changed), Some(c.line));
    }
    // None valid: report the most number-like one (16 digits preferred), masked.
    let best = candidates.iter().min_by_key(|c| (c.partial, c.digits.len().abs_diff(16)));
    match best {
        Some(c) => (Field::unreadable(mask_digits(&c.raw), c.confidence), Some(c.line)),
        None => (Field::missing(), None),
    }
}

fn find_card_type(lines: &[TextLine]) -> CardType {
    for line in lines {
        let t = normalize_width(&line.text).to_uppercase();
        if t.contains("DEBIT") || t.contains("借记") {
            return CardType::Debit;
        }
        if t.contains("CREDIT") || t.contains("信用卡") || t.contains("贷记") {
            return CardType::Credit;
        }
        if t.contains("PREPAID") || t.contains("预付") {
            return CardType::Prepaid;
        }
    }
    CardType::Unknown
}

struct ExpiryCandidate {
    month: Option<u8>,
    year: u16,
    raw: String,
    changed: bool,
    labelled: bool,
    since: bool,
    confidence: f32,
}

const EXPIRY_LABELS: [&str; 8] = ["THRU", "THROUGH", "EXP", "EXPIRES", "EXPIRY", "GOOD", "有效期", "VALIDTHRU"];

/// `MM/YY` or `MM/YYYY` dates in a line (digits may be confusable letters; spaces around `/` allowed).
fn expiry_candidates(line: &TextLine, previous: Option<&TextLine>) -> Vec<ExpiryCandidate> {
    let text = normalize_width(&line.text);
    let upper = text.to_uppercase();
    let compact_upper: String = upper.chars().filter(|c| !c.is_whitespace()).collect();
    let labelled_line = EXPIRY_LABELS.iter().any(|l| compact_upper.contains(l))
        || previous.is_some_and(|p| {
            let p: String = normalize_width(&p.text).to_uppercase().chars().filter(|c| !c.is_whitespace()).collect();
            EXPIRY_LABELS.iter().any(|l| p.ends_with(l) || p == *l)
        });
    let since = compact_upper.contains("SINCE") || compact_upper.contains("FROM");
    let chars: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).collect();
    let mut out = Vec::new();
    for (i, c) in chars.iter().enumerate() {
        if *c != '/' || i < 2 {
            continue;
        }
        let month_raw: String = chars[i - 2..i].iter().collect();
        let four: String = chars.iter().skip(i + 1).take(4).collect();
        let two: String = chars.iter().skip(i + 1).take(2).collect();
        let year_digits = |s: &str| s.chars().map(digit_for).collect::<Option<String>>();
        let (year_raw, year) = match year_digits(&four) {
            Some(y) if y.len() == 4 && y.starts_with("20") => (four.clone(), y[2..].to_string()),
            _ => match year_digits(&two) {
                Some(y) if y.len() == 2 => (two.clone(), y),
                _ => continue,
            },
        };
        let Some(month_digits) = year_digits(&month_raw) else { continue };
        // Digits glued before the month belong to something else (a card number group).
        if i >= 3 && chars[i - 3].is_ascii_digit() {
            continue;
        }
        let changed = month_digits != month_raw || year_digits(&year_raw).is_some_and(|y| y != year_raw);
        let month = month_digits.parse::<u8>().ok().filter(|m| (1..=12).contains(m));
        let year = 2000 + year.parse::<u16>().unwrap_or(0);
        out.push(ExpiryCandidate {
            month,
            year,
            raw: format!("{month_raw}/{year_raw}"),
            changed,
            labelled: labelled_line,
            since,
            confidence: line.clamped_confidence(),
        });
    }
    out
}

fn find_expiry(lines: &[TextLine]) -> Field<CardExpiry> {
    let mut all: Vec<ExpiryCandidate> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        all.extend(expiry_candidates(line, i.checked_sub(1).map(|j| &lines[j])));
    }
    all.retain(|c| !c.since);
    // A labelled date wins; else the latest (a `VALID FROM` date is earlier than the expiry).
    let best = all
        .iter()
        .rfind(|c| c.labelled)
        .or_else(|| all.iter().filter(|c| c.month.is_some()).max_by_key(|c| (c.year, c.month)).or_else(|| all.first()));
    match best {
        None => Field::missing(),
        Some(c) => match c.month {
            Some(month) => Field::checked(CardExpiry { month, year: c.year }, &c.raw, c.confidence, c.changed),
            None => Field::unreadable(&c.raw, c.confidence),
        },
    }
}

/// Words that appear on cards but are not names.
const NOT_NAME_WORDS: &[&str] = &[
    "VALID",
    "THRU",
    "THROUGH",
    "FROM",
    "GOOD",
    "EXPIRES",
    "EXPIRY",
    "EXP",
    "DATE",
    "MONTH",
    "YEAR",
    "DEBIT",
    "CREDIT",
    "PREPAID",
    "CARD",
    "BANK",
    "VISA",
    "MASTERCARD",
    "MAESTRO",
    "UNIONPAY",
    "AMEX",
    "AMERICAN",
    "EXPRESS",
    "DISCOVER",
    "JCB",
    "DINERS",
    "CLUB",
    "INTERNATIONAL",
    "PLATINUM",
    "GOLD",
    "CLASSIC",
    "SIGNATURE",
    "INFINITE",
    "WORLD",
    "ELITE",
    "BUSINESS",
    "CORPORATE",
    "ELECTRON",
    "QUICKPASS",
    "MEMBER",
    "SINCE",
    "CUSTOMER",
    "SERVICE",
    "AUTHORIZED",
    "ELECTRONIC",
    "USE",
    "ONLY",
    "ATM",
    "TITANIUM",
    "REWARDS",
    "PAYWAVE",
    "CONTACTLESS",
    "CHINA",
    "STANDARD",
    "PREMIER",
    "PLUS",
    "CIRRUS",
    "INTERLINK",
    "CASH",
    "SAVINGS",
    "ACCOUNT",
    "HOLDER",
    "NAME",
];

fn holder_candidate(line: &TextLine) -> Option<String> {
    let text = normalize_width(&line.text);
    // Names have no digits: in a word with letters, a digit is a misread letter (`GAO TA0`).
    let text = text
        .split(' ')
        .map(|word| match word.chars().any(|c| c.is_ascii_alphabetic()) {
            true => word.chars().map(|c| if c.is_ascii_digit() { letter_for(c).unwrap_or(c) } else { c }).collect(),
            false => word.to_string(),
        })
        .collect::<Vec<String>>()
        .join(" ");
    let text = text.trim();
    let letters = text.chars().filter(char::is_ascii_alphabetic).count();
    let upper = text.chars().filter(char::is_ascii_uppercase).count();
    let allowed = text.chars().all(|c| c.is_ascii_alphabetic() || matches!(c, ' ' | '.' | '\'' | '-' | '/'));
    if !allowed || letters < 4 || upper * 10 < letters * 8 || text.chars().count() > 30 {
        return None;
    }
    let name = text.to_ascii_uppercase();
    let words: Vec<&str> = name.split([' ', '/']).filter(|w| !w.is_empty()).collect();
    if words.len() < 2 || words.iter().any(|w| NOT_NAME_WORDS.contains(&w.trim_matches('.'))) {
        return None;
    }
    let squeezed: String = words.concat();
    if NETWORK_NAMES.iter().any(|brand| near(&squeezed, brand)) {
        return None;
    }
    Some(words.join(" "))
}

/// Network names printed as logos, often beside the holder's name and often misread (`DISC VER`).
const NETWORK_NAMES: [&str; 8] =
    ["VISA", "MASTERCARD", "UNIONPAY", "AMERICANEXPRESS", "DISCOVER", "JCB", "MAESTRO", "DINERSCLUB"];

/// Whether `a` is `b` with at most one character in five wrong, missing or extra (Levenshtein distance).
fn near(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            current.push((previous[j] + usize::from(ca != cb)).min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()] * 5 <= b.len()
}

fn find_holder(lines: &[TextLine], number_line: Option<usize>) -> Field<String> {
    let candidates: Vec<(usize, String)> =
        lines.iter().enumerate().filter_map(|(i, l)| holder_candidate(l).map(|n| (i, n))).collect();
    let after_number = number_line.and_then(|n| candidates.iter().rfind(|(i, _)| *i > n));
    match after_number.or(candidates.last()) {
        Some((i, name)) => {
            let raw = normalize_width(&lines[*i].text).trim().to_string();
            Field::valid(name.clone(), raw, lines[*i].clamped_confidence())
        }
        None => Field::missing(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FieldStatus;
    use crate::testutil::lines;

    /// Completes `prefix` (digits, one short of the length) with its Luhn check digit.
    fn with_luhn(prefix: &str) -> String {
        (0..10).map(|d| format!("{prefix}{d}")).find(|s| luhn_valid(s)).unwrap()
    }

    #[test]
    fn luhn_known_test_numbers() {
        for n in [
            "4111111111111111",
            "5555555555554444",
            "378282246310005",
            "6011111111111117",
            "3530111333300000",
            "30569309025904",
            "4012888888881881",
            "6200000000000005",
            "2223003122003222",
        ] {
            assert!(luhn_valid(n), "{n}");
            assert!(CardNumber::parse(n).is_ok(), "{n}");
        }
        assert!(!luhn_valid("4111111111111112"));
        assert!(!luhn_valid(""));
        assert!(!luhn_valid("41111a"));
    }

    #[test]
    fn every_single_digit_error_fails_luhn() {
        let n: Vec<char> = "6222021234567894".chars().collect();
        assert!(luhn_valid(&n.iter().collect::<String>()));
        for pos in 0..n.len() {
            for d in '0'..='9' {
                if d != n[pos] {
                    let mut m = n.clone();
                    m[pos] = d;
                    assert!(!luhn_valid(&m.iter().collect::<String>()));
                }
            }
        }
    }

    #[test]
    fn networks_by_iin() {
        let cases = [
            ("4111111111111111", CardNetwork::Visa),
            ("5105105105105100", CardNetwork::Mastercard),
            ("2221000000000009", CardNetwork::Mastercard),
            ("2720990000000007", CardNetwork::Mastercard),
            ("378282246310005", CardNetwork::Amex),
            ("341111111111111", CardNetwork::Amex),
            ("6222021234567894", CardNetwork::UnionPay),
            ("8171999927660000", CardNetwork::UnionPay),
            ("3530111333300000", CardNetwork::Jcb),
            ("3589000000000000", CardNetwork::Jcb),
            ("6011111111111117", CardNetwork::Discover),
            ("6445644564456445", CardNetwork::Discover),
            ("6500000000000002", CardNetwork::Discover),
            ("30569309025904", CardNetwork::DinersClub),
            ("36227206271667", CardNetwork::DinersClub),
            ("3095000000000000", CardNetwork::DinersClub),
            ("5018000000000009", CardNetwork::Maestro),
            ("6759649826438453", CardNetwork::Maestro),
            ("6304000000000000", CardNetwork::Maestro),
            ("1234567890123", CardNetwork::Unknown),
            ("3527000000000000", CardNetwork::Unknown),
        ];
        for (n, network) in cases {
            assert_eq!(card_network(n), network, "{n}");
        }
    }

    #[test]
    fn length_rules() {
        assert_eq!(CardNumber::parse("123456789012"), Err(CardNumberError::Length));
        assert_eq!(CardNumber::parse("4111111111111112"), Err(CardNumberError::Luhn));
        // A Luhn-valid 16-digit number starting 37 is not an Amex number.
        let amex16 = with_luhn("371449635398431");
        assert_eq!(CardNumber::parse(&amex16), Err(CardNumberError::NetworkLength(CardNetwork::Amex)));
        assert!(CardNumber::parse("6222 0212 3456 7894").is_ok());
    }

    #[test]
    fn display_forms_and_masking() {
        let n = CardNumber::parse("6222021234567894").unwrap();
        assert_eq!(n.grouped(), "6222 0212 3456 7894");
        assert_eq!(n.masked(), "622202******7894");
        assert_eq!(n.last4(), "7894");
        assert_eq!(format!("{n}"), "622202******7894");
        assert_eq!(format!("{n:?}"), "CardNumber(\"622202******7894\")");
        assert_eq!(CardNumber::parse("378282246310005").unwrap().grouped(), "3782 822463 10005");
        assert_eq!(CardNumber::parse("30569309025904").unwrap().grouped(), "3056 930902 5904");
        let n19 = CardNumber::parse(&with_luhn("622202123456789012")).unwrap();
        assert_eq!(n19.grouped().len(), 19 + 4);
        let json = serde_json::to_value(&n).unwrap();
        assert_eq!(json["number"], "6222021234567894");
        assert_eq!(json["display"], "6222 0212 3456 7894");
        assert_eq!(json["masked"], "622202******7894");
        assert_eq!(mask_digits("6222 0212 3456 7894"), "6222 02** **** 7894");
    }

    #[test]
    fn debug_of_a_parsed_card_never_shows_the_number() {
        let card = parse_bank_card(&lines(&["6222 0212 3456 7894", "6222 O212 3456 7895"]));
        let debug = format!("{card:?}");
        assert!(!debug.contains("0212 3456") && !debug.contains("02123456"), "{debug}");
        assert!(debug.contains("622202******7894"));
    }

    #[test]
    fn full_card_front() {
        let card = parse_bank_card(&[
            TextLine::new("中国招商银行", 0.9),
            TextLine::new("CHINA MERCHANTS BANK", 0.9),
            TextLine::new("6222 0212 3456 7894", 0.93),
            TextLine::new("VALID THRU 12/29", 0.88),
            TextLine::new("ZHANG SAN", 0.85),
            TextLine::new("UnionPay 银联", 0.7),
            TextLine::new("DEBIT", 0.9),
        ]);
        assert_eq!(card.number.status, FieldStatus::Valid);
        assert_eq!(card.number.value.as_ref().unwrap().digits(), "6222021234567894");
        assert_eq!(card.number.raw.as_deref(), Some("6222 02** **** 7894"));
        assert!((card.number.confidence - 0.93).abs() < 1e-6);
        assert_eq!(card.network, CardNetwork::UnionPay);
        assert_eq!(card.card_type, CardType::Debit);
        assert_eq!(card.expiry.value, Some(CardExpiry { month: 12, year: 2029 }));
        assert_eq!(card.expiry.value.unwrap().to_string(), "12/29");
        assert_eq!(card.holder_name.value.as_deref(), Some("ZHANG SAN"));
    }

    #[test]
    fn a_gap_read_as_a_dash_separates_groups() {
        let card = parse_bank_card(&lines(&["4128 6535 2645-7416", "VALID THRU 06/29"]));
        assert_eq!(card.number.value.as_ref().map(CardNumber::digits), Some("4128653526457416"));
        assert_eq!(card.number.status, FieldStatus::Valid);
    }

    #[test]
    fn misread_digits_and_split_lines() {
        // O for 0 and l for 1, number split over two lines, expiry without label and a VALID FROM date.
        let card = parse_bank_card(&lines(&[
            "4111 1111",
            "1l1l 1111",
            "VALID FROM 01/20",
            "O9/27",
            "JOHN Q PUBLIC",
            "VISA CLASSIC",
        ]));
        assert_eq!(card.number.status, FieldStatus::Corrected);
        assert_eq!(card.number.value.as_ref().unwrap().digits(), "4111111111111111");
        assert_eq!(card.network, CardNetwork::Visa);
        assert_eq!(card.expiry.value, Some(CardExpiry { month: 9, year: 2027 }));
        assert_eq!(card.expiry.status, FieldStatus::Corrected);
        assert_eq!(card.holder_name.value.as_deref(), Some("JOHN Q PUBLIC"));
        assert_eq!(card.card_type, CardType::Unknown);
    }

    #[test]
    fn a_digit_seen_twice_across_a_gap_is_dropped() {
        // Misreadings of synthetic distorted cards: the digit beside a gap read twice.
        for (read, truth) in [
            ("6249 5131 49888 8950", "6249513149888950"),
            ("3541 1265 5 8787 2840", "3541126587872840"),
            ("4374919707336 6559", "4374919707336559"),
            ("6284 7555 563486474", "6284755563486474"),
            ("3533 9136 8143 31593", "3533913681431593"),
        ] {
            let card = parse_bank_card(&lines(&[read, "VALID THRU 12/26"]));
            assert_eq!(card.number.status, FieldStatus::Corrected, "{read}");
            assert_eq!(card.number.value.as_ref().map(CardNumber::digits), Some(truth), "{read}");
        }
        // Read as printed, 17 digits pass the Luhn check (a UnionPay length) by chance: the one repair of a
        // usual length is the number. A stray lone digit is dropped too.
        for (read, truth) in [
            ("6223 3915 2222 21952", "6223391522221952"),
            ("6245 3155 516994823", "6245315516994823"),
            ("6266 5 4133 2357 5051", "6266413323575051"),
        ] {
            let digits: String = read.split_whitespace().collect();
            assert!(luhn_valid(&digits), "{read}");
            let card = parse_bank_card(&lines(&[read, "VALID THRU 12/26"]));
            assert_eq!(card.number.value.as_ref().map(CardNumber::digits), Some(truth), "{read}");
            assert_eq!(card.number.status, FieldStatus::Corrected);
        }
        // 4374919707336 alone is Luhn-valid (a 13-digit Visa) but is the start of a longer run: not taken.
        assert!(luhn_valid("4374919707336"));
        let card = parse_bank_card(&lines(&["4374919707336 6558"]));
        assert_eq!(card.number.status, FieldStatus::Unreadable);
        // A digit (or a letter) seen in the gap, at the start of a group of five or alone.
        for (read, truth) in [
            ("6515 9088 8326 54797", "6515908883264797"),
            ("4279 3507 3141 L8013", "4279350731418013"),
            ("6274 9402 0276 50313", "6274940202760313"),
            ("548123609098 34490", "5481236090984490"),
            ("6277 1859 7041 L 0454", "6277185970410454"),
            ("4385 0046 4708 33319", "4385004647083319"),
        ] {
            let card = parse_bank_card(&lines(&[read, "VALID THRU 12/26"]));
            assert_eq!(card.number.value.as_ref().map(CardNumber::digits), Some(truth), "{read}");
            assert_eq!(card.number.status, FieldStatus::Corrected, "{read}");
        }
        // Two groups of five: one repair cannot make the number (it would leave 17 digits), so none is tried.
        let card = parse_bank_card(&lines(&["6246 5035 56478 30959", "VALID THRU 12/26"]));
        assert_ne!(card.number.value.as_ref().map(CardNumber::digits), Some("62465035564780959"));
        // Repairs at different gaps that give the same digits are one repair.
        let groups = ["4111", "1111", "11111", "1111"];
        let repairs: Vec<String> = gap_repairs(&groups).into_iter().map(|(r, _)| r).collect();
        assert_eq!(repairs, vec!["4111111111111111".to_string()]);
        // Two different repairs both valid: neither is guessed.
        assert!(luhn_valid("4198061662251996") && luhn_valid("4198006162251996"));
        let card = parse_bank_card(&lines(&["41980 0616 6225 1996"]));
        assert_eq!(card.number.status, FieldStatus::Unreadable);
    }

    #[test]
    fn wrong_digit_is_unreadable_and_masked() {
        let card = parse_bank_card(&lines(&["6222 0212 3456 7895", "EXP 13/29"]));
        assert_eq!(card.number.status, FieldStatus::Unreadable);
        assert_eq!(card.number.value, None);
        assert_eq!(card.number.raw.as_deref(), Some("6222 02** **** 7895"));
        assert_eq!(card.network, CardNetwork::Unknown);
        assert_eq!(card.expiry.status, FieldStatus::Unreadable);
        assert_eq!(card.holder_name.status, FieldStatus::Missing);
    }

    #[test]
    fn expiry_forms() {
        let e = find_expiry(&lines(&["GOOD THRU", "11/2031"]));
        assert_eq!(e.value, Some(CardExpiry { month: 11, year: 2031 }));
        let e = find_expiry(&lines(&["MEMBER SINCE 05/15", "VALID THRU 05 / 28"]));
        assert_eq!(e.value, Some(CardExpiry { month: 5, year: 2028 }));
        assert_eq!(find_expiry(&lines(&["no date"])).status, FieldStatus::Missing);
    }

    #[test]
    fn holder_name_rejects_labels_and_mixed_text() {
        assert_eq!(holder_candidate(&TextLine::new("VALID THRU", 1.0)), None);
        assert_eq!(holder_candidate(&TextLine::new("PLATINUM", 1.0)), None);
        assert_eq!(holder_candidate(&TextLine::new("Customer Service Hotline", 1.0)), None);
        assert_eq!(holder_candidate(&TextLine::new("LI XIAO 123", 1.0)), None);
        assert_eq!(holder_candidate(&TextLine::new("MARY-JANE O'NEIL", 1.0)).as_deref(), Some("MARY-JANE O'NEIL"));
        assert_eq!(holder_candidate(&TextLine::new("wang fang", 1.0)), None);
    }

    #[test]
    fn a_digit_in_a_name_is_a_misread_letter() {
        let card = parse_bank_card(&lines(&["6222 0212 3456 7894", "VALID THRU 12/29", "GAO TA0"]));
        assert_eq!(card.holder_name.value.as_deref(), Some("GAO TAO"));
        assert_eq!(card.expiry.value, Some(CardExpiry { month: 12, year: 2029 }));
    }

    #[test]
    fn a_network_logo_beside_the_name_is_not_the_holder() {
        let card = parse_bank_card(&lines(&["6011 0009 9013 9424", "CHARLOTTE TAYLOR", "DISC VER"]));
        assert_eq!(card.holder_name.value().map(String::as_str), Some("CHARLOTTE TAYLOR"));
        assert!(near("DISCVER", "DISCOVER") && !near("TAYLOR", "DISCOVER"));
    }
}
