//! How large a jq program may be, checked on its text before jaq parses it: jaq's parser,
//! compiler and evaluator recurse once per level of nesting and per term of a chain, so an
//! unbounded program (20,000 parentheses, a pipe of 20,000 terms) would overflow any stack.

/// Most levels of nesting: brackets, string interpolation and `if` … `end`.
pub(super) const MAX_NESTING: usize = 64;
/// Most tokens (names, numbers, strings, operators).
pub(super) const MAX_TOKENS: usize = 4_000;

/// Why a program is too large.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TooLarge {
    Nesting,
    Tokens,
}

/// What a character starts, outside strings.
enum Frame {
    Bracket,
    /// `\(` inside a string: its `)` goes back into the string.
    Interpolation,
    /// `if` … `end`.
    If,
}

/// Checks the nesting and the token count of `source`; a lexical pass, so it never
/// recurses, whatever the text.
pub(super) fn check(source: &str) -> Result<(), TooLarge> {
    let mut frames: Vec<Frame> = Vec::new();
    let mut tokens = 0usize;
    let mut chars = source.chars().peekable();
    let mut in_string = false;
    let mut word = String::new();
    let push = |frames: &mut Vec<Frame>, frame| {
        frames.push(frame);
        if frames.len() > MAX_NESTING {
            Err(TooLarge::Nesting)
        } else {
            Ok(())
        }
    };
    while let Some(c) = chars.next() {
        if in_string {
            match c {
                '"' => in_string = false,
                // An escape: the next character is taken with it; `\(` opens code.
                '\\' if chars.next() == Some('(') => {
                    in_string = false;
                    push(&mut frames, Frame::Interpolation)?;
                }
                _ => {}
            }
            continue;
        }
        if c.is_alphanumeric() || c == '_' || c == '$' || c == '@' {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            tokens += 1;
            match word.as_str() {
                "if" => push(&mut frames, Frame::If)?,
                "end" => {
                    if matches!(frames.last(), Some(Frame::If)) {
                        frames.pop();
                    }
                }
                _ => {}
            }
            word.clear();
        }
        match c {
            '#' => {
                for skipped in chars.by_ref() {
                    if skipped == '\n' {
                        break;
                    }
                }
            }
            '"' => {
                tokens += 1;
                in_string = true;
            }
            '(' | '[' | '{' => {
                tokens += 1;
                push(&mut frames, Frame::Bracket)?;
            }
            ')' | ']' | '}' => {
                tokens += 1;
                if let Some(Frame::Interpolation) = frames.pop() {
                    in_string = true;
                }
            }
            c if c.is_whitespace() => {}
            _ => tokens += 1,
        }
        if tokens > MAX_TOKENS {
            return Err(TooLarge::Tokens);
        }
    }
    if !word.is_empty() && word == "if" {
        push(&mut frames, Frame::If)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn case(source: &str, expected: Result<(), TooLarge>) {
        assert_eq!(check(source), expected, "{source:.60}");
    }

    #[test]
    fn ordinary_programs_pass() {
        case(
            "[.items[] | select(.open) | {id, name: .title}] | length",
            Ok(()),
        );
        case(
            r#""a \("b \("c")")" | ascii_downcase # (((( a comment"#,
            Ok(()),
        );
        case("if . then 1 elif .a then 2 else 3 end", Ok(()));
        case(
            &format!("{}.{}", "(".repeat(MAX_NESTING), ")".repeat(MAX_NESTING)),
            Ok(()),
        );
    }

    #[test]
    fn deep_nesting_is_refused() {
        let deep = MAX_NESTING + 1;
        case(
            &format!("{}.{}", "(".repeat(deep), ")".repeat(deep)),
            Err(TooLarge::Nesting),
        );
        case(&"[".repeat(20_000), Err(TooLarge::Nesting));
        case(
            &format!("{}.", "if . then ".repeat(deep)),
            Err(TooLarge::Nesting),
        );
        case(&"\"\\(".repeat(deep), Err(TooLarge::Nesting));
    }

    #[test]
    fn long_chains_are_refused() {
        case(&". | ".repeat(MAX_TOKENS), Err(TooLarge::Tokens));
        case(&"1 + ".repeat(MAX_TOKENS), Err(TooLarge::Tokens));
        case(&"- ".repeat(MAX_TOKENS + 1), Err(TooLarge::Tokens));
    }
}
