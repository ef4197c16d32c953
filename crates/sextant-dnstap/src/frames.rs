//! Frame Streams, the framing dnstap travels in: each data frame is its length (32
//! bits, big endian) and its bytes; a length of zero escapes a control frame (its
//! own length, its type, then fields, of which only the content type exists).
//!
//! A file is START, data frames, STOP. A socket first agrees on the content type:
//! the writer sends READY, the reader answers ACCEPT, then START, data, STOP, and
//! the reader's FINISH ends it.

use std::io::{self, Read, Write};

/// The content type of dnstap's frames.
pub const CONTENT_TYPE: &[u8] = b"protobuf:dnstap.Dnstap";

/// The control frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlKind {
    /// The reader takes these content types.
    Accept = 1,
    /// Data frames of this content type follow.
    Start = 2,
    /// No more data frames.
    Stop = 3,
    /// The writer offers these content types.
    Ready = 4,
    /// The reader saw STOP and is done.
    Finish = 5,
}

impl ControlKind {
    fn from_u32(value: u32) -> Option<Self> {
        Some(match value {
            1 => ControlKind::Accept,
            2 => ControlKind::Start,
            3 => ControlKind::Stop,
            4 => ControlKind::Ready,
            5 => ControlKind::Finish,
            _ => return None,
        })
    }
}

/// A control frame read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Control {
    /// Its type.
    pub kind: ControlKind,
    /// The content types it names.
    pub content_types: Vec<Vec<u8>>,
}

/// The largest control frame a reader must take (the protocol's limit).
const MAX_CONTROL: u32 = 512;
const FIELD_CONTENT_TYPE: u32 = 1;
/// The largest data frame read back: an entry holds at most two 64 KiB messages.
const MAX_DATA: u32 = 1 << 20;

/// Writes a control frame, naming dnstap's content type when `with_type`.
pub fn write_control(out: &mut impl Write, kind: ControlKind, with_type: bool) -> io::Result<()> {
    let mut frame = Vec::with_capacity(48);
    frame.extend_from_slice(&0u32.to_be_bytes());
    let fields = if with_type {
        8 + CONTENT_TYPE.len() as u32
    } else {
        0
    };
    frame.extend_from_slice(&(4 + fields).to_be_bytes());
    frame.extend_from_slice(&(kind as u32).to_be_bytes());
    if with_type {
        frame.extend_from_slice(&FIELD_CONTENT_TYPE.to_be_bytes());
        frame.extend_from_slice(&(CONTENT_TYPE.len() as u32).to_be_bytes());
        frame.extend_from_slice(CONTENT_TYPE);
    }
    out.write_all(&frame)
}

/// Appends one data frame.
pub fn push_data(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
}

/// Reads one control frame (escape included); anything else is an error.
pub fn read_control(input: &mut impl Read) -> io::Result<Control> {
    let escape = read_u32(input)?;
    if escape != 0 {
        return Err(invalid("expected a control frame, got a data frame"));
    }
    read_control_body(input)
}

fn read_control_body(input: &mut impl Read) -> io::Result<Control> {
    let len = read_u32(input)?;
    if !(4..=MAX_CONTROL).contains(&len) {
        return Err(invalid("control frame length out of range"));
    }
    let mut body = vec![0u8; len as usize];
    input.read_exact(&mut body)?;
    let mut fields = body.as_slice();
    let kind = take_u32(&mut fields)
        .and_then(ControlKind::from_u32)
        .ok_or_else(|| invalid("unknown control frame type"))?;
    let mut content_types = Vec::new();
    while !fields.is_empty() {
        let (Some(field), Some(field_len)) = (take_u32(&mut fields), take_u32(&mut fields)) else {
            return Err(invalid("truncated control field"));
        };
        let field_len = field_len as usize;
        if field_len > fields.len() {
            return Err(invalid("control field longer than its frame"));
        }
        let (value, rest) = fields.split_at(field_len);
        if field == FIELD_CONTENT_TYPE {
            content_types.push(value.to_vec());
        }
        fields = rest;
    }
    Ok(Control {
        kind,
        content_types,
    })
}

/// Reads a unidirectional stream (a file): START naming dnstap, data frames, STOP.
#[derive(Debug)]
pub struct Reader<R> {
    input: R,
    stopped: bool,
}

impl<R: Read> Reader<R> {
    /// Reads the START frame and checks its content type.
    pub fn new(mut input: R) -> io::Result<Self> {
        let start = read_control(&mut input)?;
        if start.kind != ControlKind::Start {
            return Err(invalid("stream does not begin with START"));
        }
        if !start.content_types.is_empty() && !start.content_types.iter().any(|t| t == CONTENT_TYPE)
        {
            return Err(invalid("stream is not dnstap"));
        }
        Ok(Self {
            input,
            stopped: false,
        })
    }

    /// The next data frame; `None` after STOP.
    pub fn next_frame(&mut self) -> io::Result<Option<Vec<u8>>> {
        if self.stopped {
            return Ok(None);
        }
        let len = read_u32(&mut self.input)?;
        if len == 0 {
            let control = read_control_body(&mut self.input)?;
            if control.kind == ControlKind::Stop {
                self.stopped = true;
                return Ok(None);
            }
            return Err(invalid("unexpected control frame inside the stream"));
        }
        if len > MAX_DATA {
            return Err(invalid("data frame longer than any dnstap entry"));
        }
        let mut frame = vec![0u8; len as usize];
        self.input.read_exact(&mut frame)?;
        Ok(Some(frame))
    }
}

fn read_u32(input: &mut impl Read) -> io::Result<u32> {
    let mut bytes = [0u8; 4];
    input.read_exact(&mut bytes)?;
    Ok(u32::from_be_bytes(bytes))
}

fn take_u32(input: &mut &[u8]) -> Option<u32> {
    let (head, rest) = input.split_first_chunk::<4>()?;
    *input = rest;
    Some(u32::from_be_bytes(*head))
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("Frame Streams: {what}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_stream_reads_back_frame_by_frame() {
        let mut stream = Vec::new();
        write_control(&mut stream, ControlKind::Start, true).unwrap();
        let mut data = Vec::new();
        push_data(&mut data, b"first");
        push_data(&mut data, b"second");
        stream.extend_from_slice(&data);
        write_control(&mut stream, ControlKind::Stop, false).unwrap();

        let mut reader = Reader::new(stream.as_slice()).unwrap();
        assert_eq!(reader.next_frame().unwrap().unwrap(), b"first");
        assert_eq!(reader.next_frame().unwrap().unwrap(), b"second");
        assert_eq!(reader.next_frame().unwrap(), None);
        assert_eq!(reader.next_frame().unwrap(), None);
    }

    #[test]
    fn control_frames_carry_the_content_type() {
        let mut frame = Vec::new();
        write_control(&mut frame, ControlKind::Ready, true).unwrap();
        // Escape, length, type, field, field length, the type's 22 bytes.
        assert_eq!(frame.len(), 4 + 4 + 4 + 4 + 4 + CONTENT_TYPE.len());
        let control = read_control(&mut frame.as_slice()).unwrap();
        assert_eq!(control.kind, ControlKind::Ready);
        assert_eq!(control.content_types, vec![CONTENT_TYPE.to_vec()]);
    }

    #[test]
    fn malformed_control_frames_are_errors_not_panics() {
        let cases: [&[u8]; 6] = [
            &[0, 0, 0, 5],                                                  // a data frame
            &[0, 0, 0, 0, 0, 0, 0, 2],                                      // shorter than its type
            &[0, 0, 0, 0, 0, 0, 2, 1],                                      // longer than 512
            &[0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 9],                          // unknown type
            &[0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 1],              // truncated field
            &[0, 0, 0, 0, 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9], // field overruns
        ];
        for case in cases {
            assert!(read_control(&mut &case[..]).is_err(), "{case:?}");
        }
        assert!(Reader::new(&b"\0\0\0\0\0\0\0\x04\0\0\0\x03"[..]).is_err());
        // A data frame claiming 4 GiB is refused before anything is allocated.
        let mut huge = Vec::new();
        write_control(&mut huge, ControlKind::Start, true).unwrap();
        huge.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        assert!(Reader::new(huge.as_slice()).unwrap().next_frame().is_err());
    }
}
