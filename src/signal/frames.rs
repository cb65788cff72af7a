//! The frames two Duet pages exchange over their call's data channels (never through the
//! relay): chat text on the `chat` channel; file offers, answers and ends on the `file`
//! channel, whose binary messages are the bytes of the file most recently announced there by
//! `begin` (the channel is ordered, and a side sends one file at a time: a chunk needs no
//! header, so it is sent and kept as it is, without a copy). Small JSON objects `{"t": kind, ...}`, written and read with the protocol's own
//! JSON (no serde in the browser). See docs/protocol.md.

use super::json::{self, Json};
use super::{object, string, Fields};

/// A message longer than this (in characters) is not sent, and one received is dropped.
pub const MAX_TEXT_CHARS: usize = 4000;
/// A text frame longer than this is not even parsed (4,000 characters, escaped, fit easily).
pub const MAX_FRAME_BYTES: usize = 32 * 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// "I speak this chat": each side's first frame on `chat`. A peer that never says it (a
    /// classic page: negotiated channels open on its side too, unread) gets no chat.
    Hello,
    /// A chat message.
    Text(String),
    /// The sender offers its file `id`.
    Offer {
        id: u32,
        name: String,
        size: u64,
        mime: String,
    },
    /// The receiver takes file `id`: the chunks may come.
    Accept { id: u32 },
    /// The sender's next binary messages are file `id`'s bytes.
    Begin { id: u32 },
    /// The receiver has all of file `id`.
    Done { id: u32 },
    /// The sender stops its file `id` (cancelled).
    Stop { id: u32 },
    /// The receiver declines or stops file `id`.
    Refuse { id: u32 },
}

/// Why a frame from the peer was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Not a frame at all (not JSON, a field missing or of the wrong type).
    Malformed,
    /// A kind this page does not know (a newer Duet, say).
    Unknown,
    /// Well formed but not acceptable now (a repeated id, too many offers).
    Invalid,
    /// Longer than allowed (text, frame, or a file's bytes beyond its size).
    TooLarge,
    /// More frames than the rate limit allows.
    TooFast,
}

impl Frame {
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(32);
        let mut f = Fields::new(&mut out);
        let (kind, id) = match self {
            Frame::Hello => {
                f.str("t", Some("hello"));
                f.end();
                return out;
            }
            Frame::Text(text) => {
                f.str("t", Some("text"));
                f.str("text", Some(text));
                f.end();
                return out;
            }
            Frame::Offer { id, .. } => ("offer", id),
            Frame::Accept { id } => ("accept", id),
            Frame::Begin { id } => ("begin", id),
            Frame::Done { id } => ("done", id),
            Frame::Stop { id } => ("stop", id),
            Frame::Refuse { id } => ("refuse", id),
        };
        f.str("t", Some(kind));
        f.key("id");
        f.out.push_str(&id.to_string());
        if let Frame::Offer { name, size, mime, .. } = self {
            f.str("name", Some(name));
            f.key("size");
            f.out.push_str(&size.to_string());
            f.str("mime", Some(mime));
        }
        f.end();
        out
    }

    pub fn decode(text: &str) -> Result<Frame, FrameError> {
        if text.len() > MAX_FRAME_BYTES {
            return Err(FrameError::TooLarge);
        }
        let value = json::parse(text).map_err(|_| FrameError::Malformed)?;
        let fields =
            object(value, &["t", "text", "id", "name", "size", "mime"]).map_err(|_| FrameError::Malformed)?;
        let [t, text, id, name, size, mime] =
            <[Option<Json>; 6]>::try_from(fields).map_err(|_| FrameError::Malformed)?;
        let text_of = |v: Option<Json>| v.and_then(|v| string(v).ok()).ok_or(FrameError::Malformed);
        let id = || {
            number(id)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or(FrameError::Malformed)
        };
        Ok(match text_of(t)?.as_str() {
            "hello" => Frame::Hello,
            "text" => {
                let text = text_of(text)?;
                if text.chars().count() > MAX_TEXT_CHARS {
                    return Err(FrameError::TooLarge);
                }
                Frame::Text(text)
            }
            "offer" => Frame::Offer {
                id: id()?,
                name: text_of(name)?,
                size: number(size).ok_or(FrameError::Malformed)?,
                mime: text_of(mime)?,
            },
            "accept" => Frame::Accept { id: id()? },
            "begin" => Frame::Begin { id: id()? },
            "done" => Frame::Done { id: id()? },
            "stop" => Frame::Stop { id: id()? },
            "refuse" => Frame::Refuse { id: id()? },
            _ => return Err(FrameError::Unknown),
        })
    }
}

/// A non-negative integer field.
fn number(value: Option<Json>) -> Option<u64> {
    match value? {
        Json::Num(n) => n.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_wire_form() {
        assert_eq!(
            Frame::Text("hi \"x\"".into()).encode(),
            r#"{"t":"text","text":"hi \"x\""}"#
        );
        let offer = Frame::Offer {
            id: 3,
            name: "猫.png".into(),
            size: 1234,
            mime: "image/png".into(),
        };
        assert_eq!(
            offer.encode(),
            r#"{"t":"offer","id":3,"name":"猫.png","size":1234,"mime":"image/png"}"#
        );
        assert_eq!(Frame::Refuse { id: 9 }.encode(), r#"{"t":"refuse","id":9}"#);
        assert_eq!(Frame::Begin { id: 4 }.encode(), r#"{"t":"begin","id":4}"#);
        assert_eq!(Frame::Hello.encode(), r#"{"t":"hello"}"#);
    }

    #[test]
    fn bad_frames_are_typed() {
        use FrameError::*;
        for (text, e) in [
            ("", Malformed),
            ("{}", Malformed),
            (r#"{"t":"text"}"#, Malformed),
            (r#"{"t":"accept","id":-1}"#, Malformed),
            (r#"{"t":"accept","id":4294967296}"#, Malformed),
            (r#"{"t":"accept","id":"1"}"#, Malformed),
            (
                r#"{"t":"offer","id":1,"name":"a","size":1.5,"mime":""}"#,
                Malformed,
            ),
            (r#"{"t":"wave"}"#, Unknown),
        ] {
            assert_eq!(Frame::decode(text), Err(e), "{text}");
        }
        let long = Frame::Text("x".repeat(MAX_TEXT_CHARS + 1)).encode();
        assert_eq!(Frame::decode(&long), Err(TooLarge));
        assert_eq!(Frame::decode(&" ".repeat(MAX_FRAME_BYTES + 1)), Err(TooLarge));
    }

    proptest! {
        #[test]
        fn every_frame_makes_the_round_trip(
            text in ".{0,200}",
            id in any::<u32>(),
            size in any::<u64>(),
            kind in 0..8u8,
        ) {
            let frame = match kind {
                0 => Frame::Text(text),
                1 => Frame::Offer { id, name: text.clone(), size, mime: text },
                2 => Frame::Accept { id },
                3 => Frame::Done { id },
                4 => Frame::Stop { id },
                5 => Frame::Begin { id },
                6 => Frame::Hello,
                _ => Frame::Refuse { id },
            };
            prop_assert_eq!(Frame::decode(&frame.encode()), Ok(frame));
        }

        #[test]
        fn arbitrary_text_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Frame::decode(&String::from_utf8_lossy(&bytes));
        }
    }
}
