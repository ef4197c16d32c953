//! Splits master-file text into entries (RFC 1035 §5.1): one entry per line, or across
//! lines inside parentheses; comments dropped; quoted strings kept whole with their
//! quotes and escapes, so the record-data parser sees them as written.

/// One whitespace-separated item of an entry, exactly as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Token<'a> {
    pub text: &'a str,
    pub quoted: bool,
}

/// A directive or a record: its tokens and the line it starts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry<'a> {
    pub line: usize,
    /// The entry starts with white space: the owner is the previous record's.
    pub owner_omitted: bool,
    pub tokens: Vec<Token<'a>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LexError {
    pub line: usize,
    pub message: String,
}

/// Where an entry starts; its tokens went to the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    pub line: usize,
    /// The entry starts with white space: the owner is the previous record's.
    pub owner_omitted: bool,
}

/// Iterates over the entries of `text`.
pub(crate) struct Lexer<'a> {
    text: &'a str,
    at: usize,
    line: usize,
    failed: bool,
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Self {
            text,
            at: 0,
            line: 1,
            failed: false,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    /// Advances over one character (which may be several bytes of UTF-8).
    fn advance_char(&mut self) {
        let width = self.text[self.at..]
            .chars()
            .next()
            .map_or(1, char::len_utf8);
        if self.peek() == Some(b'\n') {
            self.line += 1;
        }
        self.at += width;
    }

    /// Reads the next entry's tokens into `tokens` (cleared first: one buffer serves
    /// a whole file, where a fresh vector per entry was a million allocations).
    pub(crate) fn next_into(
        &mut self,
        tokens: &mut Vec<Token<'a>>,
    ) -> Result<Option<Head>, LexError> {
        if self.failed {
            return Ok(None);
        }
        let result = self.entry(tokens);
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    fn entry(&mut self, tokens: &mut Vec<Token<'a>>) -> Result<Option<Head>, LexError> {
        loop {
            tokens.clear();
            if self.at >= self.text.len() {
                return Ok(None);
            }
            let line = self.line;
            let owner_omitted = matches!(self.peek(), Some(b' ' | b'\t'));
            let mut open_paren: Option<usize> = None;
            loop {
                let Some(byte) = self.peek() else {
                    if let Some(opened) = open_paren {
                        return Err(LexError {
                            line: opened,
                            message: "this '(' is never closed; add the matching ')'".into(),
                        });
                    }
                    break;
                };
                match byte {
                    b' ' | b'\t' | b'\r' => self.at += 1,
                    b';' => {
                        while !matches!(self.peek(), None | Some(b'\n')) {
                            self.advance_char();
                        }
                    }
                    b'\n' => {
                        self.advance_char();
                        if open_paren.is_none() {
                            break;
                        }
                    }
                    b'(' => {
                        if open_paren.is_some() {
                            return Err(LexError {
                                line: self.line,
                                message: "parentheses cannot nest; remove the inner '('".into(),
                            });
                        }
                        open_paren = Some(self.line);
                        self.at += 1;
                    }
                    b')' => {
                        if open_paren.take().is_none() {
                            return Err(LexError {
                                line: self.line,
                                message: "')' without a '(' before it; remove it or add the '('"
                                    .into(),
                            });
                        }
                        self.at += 1;
                    }
                    b'"' => tokens.push(self.quoted()?),
                    _ => tokens.push(self.word()),
                }
            }
            if !tokens.is_empty() {
                return Ok(Some(Head {
                    line,
                    owner_omitted,
                }));
            }
        }
    }

    fn quoted(&mut self) -> Result<Token<'a>, LexError> {
        let start = self.at;
        let line = self.line;
        self.at += 1;
        loop {
            match self.peek() {
                None => {
                    return Err(LexError {
                        line,
                        message: "this quoted string is never closed; add the closing '\"'".into(),
                    });
                }
                Some(b'\\') => {
                    self.at += 1;
                    if self.peek().is_some() {
                        self.advance_char();
                    }
                }
                Some(b'"') => {
                    self.at += 1;
                    return Ok(Token {
                        text: &self.text[start..self.at],
                        quoted: true,
                    });
                }
                Some(_) => self.advance_char(),
            }
        }
    }

    fn word(&mut self) -> Token<'a> {
        let start = self.at;
        while let Some(byte) = self.peek() {
            match byte {
                b' ' | b'\t' | b'\r' | b'\n' | b';' | b'(' | b')' | b'"' => break,
                // Byte by byte: the delimiters are ASCII and never part of a
                // multi-byte character, so the token still ends on a boundary.
                b'\\' => {
                    self.at += 1;
                    if self.peek().is_some_and(|b| b != b'\n') {
                        self.at += 1;
                    }
                }
                _ => self.at += 1,
            }
        }
        Token {
            text: &self.text[start..self.at],
            quoted: false,
        }
    }
}

impl<'a> Iterator for Lexer<'a> {
    type Item = Result<Entry<'a>, LexError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut tokens = Vec::new();
        match self.next_into(&mut tokens) {
            Ok(Some(head)) => Some(Ok(Entry {
                line: head.line,
                owner_omitted: head.owner_omitted,
                tokens,
            })),
            Ok(None) => None,
            Err(error) => Some(Err(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn texts(entry: &Entry<'_>) -> Vec<String> {
        entry.tokens.iter().map(|t| t.text.to_string()).collect()
    }

    #[test]
    fn entries_span_parentheses_and_skip_comments() {
        let text = "$TTL 3600 ; default\n\n@ IN SOA ns hostmaster (\n  1 ; serial\n  2 3 4 5 )\n  A 192.0.2.1\n";
        let entries: Vec<_> = Lexer::new(text).collect::<Result<_, _>>().unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(texts(&entries[0]), ["$TTL", "3600"]);
        assert_eq!(entries[1].line, 3);
        assert_eq!(
            texts(&entries[1]),
            [
                "@",
                "IN",
                "SOA",
                "ns",
                "hostmaster",
                "1",
                "2",
                "3",
                "4",
                "5"
            ]
        );
        assert!(entries[2].owner_omitted);
        assert_eq!(entries[2].line, 6);
    }

    #[test]
    fn quoted_strings_keep_spaces_semicolons_and_escapes() {
        let text = "t TXT \"a b;c\" \"q\\\"q\" x\\ y\n";
        let entry = Lexer::new(text).next().unwrap().unwrap();
        assert_eq!(
            texts(&entry),
            ["t", "TXT", "\"a b;c\"", "\"q\\\"q\"", "x\\ y"]
        );
        assert!(entry.tokens[2].quoted);
    }

    #[test]
    fn errors_name_the_line() {
        let err = Lexer::new("a A 1\nb TXT (\n\"x\"\n")
            .last()
            .unwrap()
            .unwrap_err();
        assert_eq!(err.line, 2);
        let err = Lexer::new("a A 1\n\nb TXT \"open\n")
            .last()
            .unwrap()
            .unwrap_err();
        assert_eq!(err.line, 3);
        let err = Lexer::new("a A 1 )\n").next().unwrap().unwrap_err();
        assert_eq!(err.line, 1);
    }

    proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,200}") {
            for entry in Lexer::new(&text) {
                if entry.is_err() { break; }
            }
        }
    }
}
