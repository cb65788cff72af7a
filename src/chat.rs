//! Pure: the in-call chat and file transfers. Frames from the peer, the person's actions and the
//! browser's progress reports go in ([`Chat::step`]); the chat's state (what the panel shows)
//! and [`Out`]put for the shell come out. Nothing here touches a data channel or a clock: the
//! browser shell (`client/chat.rs`) owns the channels and the bytes, and passes the time in.
//!
//! Two data channels, both negotiated up front with the call (see `client/peer.rs`): `chat`
//! carries text, `file` carries the transfers' control frames and their bytes, so a message is
//! never stuck behind megabytes of a photo. Every frame from the peer is untrusted: bounded in
//! size and rate, checked against what was announced, and dropped with a note when wrong.
//! The wire format of both is in [`crate::signal::frames`].

pub use crate::signal::frames::MAX_TEXT_CHARS;
use crate::signal::frames::{Frame, FrameError};
/// Lines kept in the panel; older ones go first.
pub const MAX_LINES: usize = 500;
/// Files larger than this are neither sent nor accepted (a transfer is held in memory).
pub const DEFAULT_MAX_FILE: u64 = 100 * 1024 * 1024;
/// Offers from the peer not yet answered, at most.
const MAX_PENDING_OFFERS: usize = 20;
/// Frames the peer may send in a burst, then one per [`REFILL_MS`].
const BURST: u32 = 30;
const REFILL_MS: f64 = 100.0;

/// The chat of one call.
#[derive(Clone, Debug, PartialEq)]
pub struct Chat {
    pub lines: Vec<Line>,
    /// Messages and offers that arrived while the panel was closed.
    pub unread: u32,
    /// The panel is open.
    pub open: bool,
    /// The channels are open and the peer said `hello`: it speaks this chat (a classic page's
    /// side of the channels opens too, but nothing reads them).
    pub ready: bool,
    /// Our channels are open (we said `hello`), the peer said `hello`: either may come first.
    channels: bool,
    hello: bool,
    pub max_file: u64,
    next_id: u32,
    /// The peer's file whose bytes arrive now (its last `begin`), if we still take it.
    receiving: Option<u32>,
    /// Rate limit on the peer's frames: tokens left and when they were last counted.
    tokens: u32,
    counted_at: f64,
    /// A key per line (same index), stable while the line lives: the panel's list keys.
    keys: Vec<u64>,
    next_key: u64,
}

impl Default for Chat {
    fn default() -> Chat {
        Chat::new(DEFAULT_MAX_FILE)
    }
}

/// One entry in the panel.
#[derive(Clone, Debug, PartialEq)]
pub enum Line {
    Said { mine: bool, text: String, at_ms: f64 },
    File(Transfer),
    Note(Note),
}

/// Something about the chat itself, shown in the panel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Note {
    /// The peer sent something malformed, too long, too much or too fast: dropped.
    Dropped(FrameError),
    /// The chosen file is larger than [`Chat::max_file`]: not offered.
    TooLarge,
}

/// A file on its way in or out.
#[derive(Clone, Debug, PartialEq)]
pub struct Transfer {
    /// Ours to give (outgoing) or the peer's (incoming): the two sides number their own.
    pub id: u32,
    pub mine: bool,
    pub name: String,
    pub size: u64,
    pub mime: String,
    /// Bytes sent (acknowledged by the data channel) or received.
    pub done: u64,
    pub stage: Stage,
    /// Incoming, complete: the `blob:` URL of the file (save link, preview).
    pub url: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Offered, waiting for the receiver's choice.
    Offered,
    Going,
    Done,
    /// Declined or stopped before the end; `by_me`: by this side.
    Cancelled {
        by_me: bool,
    },
    /// The peer broke the transfer's rules (sent more than announced) or the channel failed.
    Failed,
}

impl Transfer {
    pub fn is_image(&self) -> bool {
        // Not SVG: a preview is a picture, never a document that could carry script.
        matches!(
            self.mime.as_str(),
            "image/png" | "image/jpeg" | "image/gif" | "image/webp" | "image/avif"
        )
    }

    /// Progress in whole percent.
    pub fn percent(&self) -> u8 {
        percent(self.done, self.size)
    }

    fn open(&self) -> bool {
        matches!(self.stage, Stage::Offered | Stage::Going)
    }
}

/// A file size for people: "512 B", "1.5 KB", "23.4 MB" (powers of 1024; integer arithmetic,
/// no float printing in the WASM).
pub fn size_text(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KB", "MB", "GB"];
    let mut unit = 0;
    let mut scaled = bytes;
    while scaled >= 1024 * 1024 && unit < UNITS.len() - 2 {
        scaled /= 1024;
        unit += 1;
    }
    if scaled < 1024 {
        return format!("{scaled} {}", UNITS[unit]);
    }
    let tenths = (scaled * 10 + 512) / 1024;
    format!("{}.{} {}", tenths / 10, tenths % 10, UNITS[unit + 1])
}

/// `done` of `size` in whole percent (an empty file is complete).
pub fn percent(done: u64, size: u64) -> u8 {
    done.min(size)
        .saturating_mul(100)
        .checked_div(size)
        .map_or(100, |p| p as u8)
}

/// What happens to the chat.
#[derive(Clone, Debug, PartialEq)]
pub enum In {
    /// Both channels are open (we say `hello`; ready once the peer has too).
    Ready,
    /// The call is over (or its connection gone): open transfers end.
    Closed,
    /// The panel was opened or closed.
    Show(bool),
    /// The person sends a message.
    Say(String),
    /// The person picked a file to send (id from [`Chat::new_id`]).
    Offer {
        id: u32,
        name: String,
        size: u64,
        mime: String,
    },
    /// The person takes an incoming file.
    Accept(u32),
    /// The person declines or stops a transfer (`mine`: one of ours).
    Cancel { id: u32, mine: bool },
    /// A text frame from the peer, on either channel.
    Frame(String),
    /// A chunk of the file being received arrived (the shell keeps the bytes, for
    /// [`Chat::receiving`]).
    Chunk { len: u64 },
    /// The data channel has taken this many bytes of an outgoing file in all.
    Sent { id: u32, bytes: u64 },
    /// An incoming file is put together: here is its URL.
    Saved { id: u32, url: String },
    /// Sending an outgoing file failed in the browser (reading it, the channel).
    SendFailed(u32),
}

/// What the shell must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Out {
    /// A frame on the `chat` channel.
    Text(String),
    /// A control frame on the `file` channel.
    Control(String),
    /// Start streaming our file `id` (the peer took it).
    Stream(u32),
    /// Forget a transfer's bytes: stop streaming ours, drop the chunks of theirs.
    Drop { id: u32, mine: bool },
    /// All of incoming file `id` is here: put it together, report [`In::Saved`].
    Assemble(u32),
    /// Let go of a file's URL (`URL.revokeObjectURL`).
    Revoke(String),
}

impl Chat {
    pub fn new(max_file: u64) -> Chat {
        Chat {
            lines: Vec::new(),
            unread: 0,
            open: false,
            ready: false,
            channels: false,
            hello: false,
            max_file,
            next_id: 1,
            receiving: None,
            tokens: BURST,
            counted_at: f64::NEG_INFINITY,
            keys: Vec::new(),
            next_key: 0,
        }
    }

    /// The lines with their keys.
    pub fn keyed(&self) -> impl Iterator<Item = (u64, &Line)> {
        self.keys.iter().copied().zip(&self.lines)
    }

    pub fn by_key(&self, key: u64) -> Option<&Line> {
        let i = self.keys.iter().position(|k| *k == key)?;
        self.lines.get(i)
    }

    /// An id for our next outgoing file.
    pub fn new_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    /// The peer's file whose chunks arrive now; `None`: chunks arriving are dropped (a file
    /// cancelled while its bytes were on the way).
    pub fn receiving(&self) -> Option<u32> {
        self.receiving
    }

    pub fn transfer(&self, id: u32, mine: bool) -> Option<&Transfer> {
        self.lines.iter().find_map(|l| match l {
            Line::File(t) if t.id == id && t.mine == mine => Some(t),
            _ => None,
        })
    }

    fn transfer_mut(&mut self, id: u32, mine: bool) -> Option<&mut Transfer> {
        self.lines.iter_mut().find_map(|l| match l {
            Line::File(t) if t.id == id && t.mine == mine => Some(t),
            _ => None,
        })
    }

    /// Applies one input at time `now_ms`; returns what the shell must do.
    pub fn step(&mut self, input: In, now_ms: f64) -> Vec<Out> {
        let mut out = Vec::new();
        match input {
            In::Ready => {
                self.channels = true;
                self.ready = self.hello;
                out.push(Out::Text(Frame::Hello.encode()));
            }
            In::Closed => {
                self.ready = false;
                self.channels = false;
                self.hello = false;
                let ended: Vec<(u32, bool)> = self.open_transfers().collect();
                for (id, mine) in ended {
                    self.end_transfer(id, mine, Stage::Cancelled { by_me: false }, &mut out);
                }
            }
            In::Show(open) => {
                self.open = open;
                if open {
                    self.unread = 0;
                }
            }
            In::Say(text) => self.say(text, now_ms, &mut out),
            In::Offer { id, name, size, mime } => self.offer(id, name, size, mime, &mut out),
            In::Accept(id) => {
                if let Some(t) = self.transfer_mut(id, false).filter(|t| t.stage == Stage::Offered) {
                    t.stage = Stage::Going;
                    out.push(Out::Control(Frame::Accept { id }.encode()));
                    if t.size == 0 {
                        out.push(Out::Assemble(id));
                        out.push(Out::Control(Frame::Done { id }.encode()));
                    }
                }
            }
            In::Cancel { id, mine } => {
                if self.transfer(id, mine).is_some_and(Transfer::open) {
                    let frame = if mine {
                        Frame::Stop { id }
                    } else {
                        Frame::Refuse { id }
                    };
                    out.push(Out::Control(frame.encode()));
                    self.end_transfer(id, mine, Stage::Cancelled { by_me: true }, &mut out);
                }
            }
            In::Frame(text) => self.frame(&text, now_ms, &mut out),
            In::Chunk { len } => self.chunk(len, &mut out),
            In::Sent { id, bytes } => {
                if let Some(t) = self.transfer_mut(id, true).filter(|t| t.stage == Stage::Going) {
                    t.done = bytes.min(t.size);
                }
            }
            In::Saved { id, url } => match self.transfer_mut(id, false) {
                Some(t) if t.stage == Stage::Going => {
                    t.stage = Stage::Done;
                    t.done = t.size;
                    t.url = Some(url);
                }
                // Cancelled while it was being put together.
                _ => out.push(Out::Revoke(url)),
            },
            In::SendFailed(id) => {
                if self.transfer(id, true).is_some_and(Transfer::open) {
                    out.push(Out::Control(Frame::Stop { id }.encode()));
                    self.end_transfer(id, true, Stage::Failed, &mut out);
                }
            }
        }
        out
    }

    fn open_transfers(&self) -> impl Iterator<Item = (u32, bool)> + '_ {
        self.lines.iter().filter_map(|l| match l {
            Line::File(t) if t.open() => Some((t.id, t.mine)),
            _ => None,
        })
    }

    fn end_transfer(&mut self, id: u32, mine: bool, stage: Stage, out: &mut Vec<Out>) {
        if !mine && self.receiving == Some(id) {
            self.receiving = None;
        }
        if let Some(t) = self.transfer_mut(id, mine) {
            t.stage = stage;
            out.push(Out::Drop { id, mine });
        }
    }

    fn say(&mut self, text: String, now_ms: f64, out: &mut Vec<Out>) {
        let text = text.trim();
        if text.is_empty() || !self.ready {
            return;
        }
        if text.chars().count() > MAX_TEXT_CHARS {
            return; // the input's maxlength keeps the person from typing it
        }
        out.push(Out::Text(Frame::Text(text.to_owned()).encode()));
        self.push(Line::Said {
            mine: true,
            text: text.to_owned(),
            at_ms: now_ms,
        });
    }

    fn offer(&mut self, id: u32, name: String, size: u64, mime: String, out: &mut Vec<Out>) {
        if !self.ready {
            return;
        }
        if size > self.max_file {
            self.note(Note::TooLarge);
            return;
        }
        let (name, mime) = (clean_name(&name), clean_mime(&mime));
        out.push(Out::Control(
            Frame::Offer {
                id,
                name: name.clone(),
                size,
                mime: mime.clone(),
            }
            .encode(),
        ));
        self.push(Line::File(Transfer {
            id,
            mine: true,
            name,
            size,
            mime,
            done: 0,
            stage: Stage::Offered,
            url: None,
        }));
    }

    /// One frame from the peer: limited in rate, checked, applied.
    fn frame(&mut self, text: &str, now_ms: f64, out: &mut Vec<Out>) {
        if !self.take_token(now_ms) {
            return self.note(Note::Dropped(FrameError::TooFast));
        }
        let frame = match Frame::decode(text) {
            Ok(f) => f,
            Err(e) => return self.note(Note::Dropped(e)),
        };
        match frame {
            Frame::Hello => {
                self.hello = true;
                self.ready = self.channels;
            }
            Frame::Text(text) => {
                self.push(Line::Said {
                    mine: false,
                    text,
                    at_ms: now_ms,
                });
                self.unseen();
            }
            Frame::Offer { id, name, size, mime } => {
                let pending = self
                    .lines
                    .iter()
                    .filter(|l| matches!(l, Line::File(t) if !t.mine && t.stage == Stage::Offered))
                    .count();
                if self.transfer(id, false).is_some() || pending >= MAX_PENDING_OFFERS {
                    return self.note(Note::Dropped(FrameError::Invalid));
                }
                if size > self.max_file {
                    out.push(Out::Control(Frame::Refuse { id }.encode()));
                    return self.note(Note::Dropped(FrameError::TooLarge));
                }
                self.push(Line::File(Transfer {
                    id,
                    mine: false,
                    name: clean_name(&name),
                    size,
                    mime: clean_mime(&mime),
                    done: 0,
                    stage: Stage::Offered,
                    url: None,
                }));
                self.unseen();
            }
            Frame::Accept { id } => {
                if let Some(t) = self.transfer_mut(id, true).filter(|t| t.stage == Stage::Offered) {
                    t.stage = Stage::Going;
                    out.push(Out::Stream(id));
                }
            }
            Frame::Begin { id } => {
                let taken = self.transfer(id, false).is_some_and(|t| t.stage == Stage::Going);
                // Ours to drop either way: a file we did not take, or no longer take.
                self.receiving = taken.then_some(id);
            }
            Frame::Done { id } => {
                if let Some(t) = self.transfer_mut(id, true).filter(|t| t.open()) {
                    t.stage = Stage::Done;
                    t.done = t.size;
                    out.push(Out::Drop { id, mine: true });
                }
            }
            // The peer stops its own transfer, or refuses ours.
            Frame::Stop { id } => self.peer_cancelled(id, false, out),
            Frame::Refuse { id } => self.peer_cancelled(id, true, out),
        }
    }

    fn peer_cancelled(&mut self, id: u32, mine: bool, out: &mut Vec<Out>) {
        if self.transfer(id, mine).is_some_and(Transfer::open) {
            self.end_transfer(id, mine, Stage::Cancelled { by_me: false }, out);
        }
    }

    fn chunk(&mut self, len: u64, out: &mut Vec<Out>) {
        // Chunks of a transfer already ended (cancelled while they were on the way) are dropped.
        let Some(id) = self.receiving else { return };
        let Some(t) = self.transfer_mut(id, false).filter(|t| t.stage == Stage::Going) else {
            return;
        };
        t.done += len;
        if t.done > t.size {
            out.push(Out::Control(Frame::Refuse { id }.encode()));
            self.end_transfer(id, false, Stage::Failed, out);
            self.note(Note::Dropped(FrameError::TooLarge));
        } else if t.done == t.size {
            self.receiving = None;
            out.push(Out::Assemble(id));
            out.push(Out::Control(Frame::Done { id }.encode()));
        }
    }

    /// Counts an arrival for the unread badge while the panel is closed.
    fn unseen(&mut self) {
        if !self.open {
            self.unread = self.unread.saturating_add(1);
        }
    }

    fn take_token(&mut self, now_ms: f64) -> bool {
        let elapsed = now_ms - self.counted_at;
        if elapsed >= REFILL_MS {
            let refill = (elapsed / REFILL_MS).min(BURST as f64) as u32;
            self.tokens = (self.tokens + refill).min(BURST);
            self.counted_at = now_ms;
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }

    /// A note; one that follows a note of the same kind takes its place (a flood of bad
    /// frames makes one note, not hundreds).
    fn note(&mut self, note: Note) {
        if let Some(Line::Note(last)) = self.lines.last() {
            if std::mem::discriminant(last) == std::mem::discriminant(&note) {
                // Under a new key: the panel renders each key once.
                self.lines.pop();
                self.keys.pop();
            }
        }
        self.push(Line::Note(note));
    }

    /// Adds a line; past [`MAX_LINES`] the oldest finished line goes (open transfers stay).
    fn push(&mut self, line: Line) {
        self.lines.push(line);
        self.keys.push(self.next_key);
        self.next_key += 1;
        if self.lines.len() > MAX_LINES {
            if let Some(i) = self
                .lines
                .iter()
                .position(|l| !matches!(l, Line::File(t) if t.open()))
            {
                self.lines.remove(i);
                self.keys.remove(i);
            }
        }
    }

    /// Every file URL the chat holds (to let go of at the end of the call).
    pub fn urls(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().filter_map(|l| match l {
            Line::File(t) => t.url.as_deref(),
            _ => None,
        })
    }

    /// The conversation as plain text, one line per message ("[12:03] bob: hi"), for the
    /// person to keep: `time` formats a timestamp in their own clock.
    pub fn transcript(&self, me: &str, peer: &str, time: impl Fn(f64) -> String) -> String {
        let mut text = String::new();
        for line in &self.lines {
            let (at, who, what) = match line {
                Line::Said { mine, text, at_ms } => (Some(*at_ms), *mine, text.clone()),
                Line::File(t) if matches!(t.stage, Stage::Done) => (None, t.mine, format!("📎 {}", t.name)),
                _ => continue,
            };
            if let Some(at) = at {
                text.push('[');
                text.push_str(&time(at));
                text.push_str("] ");
            }
            text.push_str(if who { me } else { peer });
            text.push_str(": ");
            text.push_str(&what);
            text.push('\n');
        }
        text
    }
}

/// A file name fit to show and to save under: no path, no control characters, not empty, at
/// most 200 characters.
pub fn clean_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let clean: String = base.chars().filter(|c| !c.is_control()).take(200).collect();
    let clean = clean.trim();
    if clean.is_empty() || clean.chars().all(|c| c == '.') {
        "file".to_owned()
    } else {
        clean.to_owned()
    }
}

/// A media type as `type/subtype` in plain lowercase ASCII, else `application/octet-stream`.
pub fn clean_mime(mime: &str) -> String {
    let mime = mime.trim().to_ascii_lowercase();
    let ok = mime.len() <= 100
        && mime.split_once('/').is_some_and(|(t, s)| {
            let part = |p: &str| {
                !p.is_empty()
                    && p.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
            };
            part(t) && part(s)
        });
    if ok {
        mime
    } else {
        "application/octet-stream".to_owned()
    }
}

/// A piece of a message: plain text, or a web link (http or https only: never `javascript:`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    Text(&'a str),
    Link(&'a str),
}

/// Splits a message into text and links. A link starts with `http://` or `https://` (any case)
/// and runs to the first space or non-ASCII character (so "看https://a.cn，好" stops at "，"),
/// without trailing punctuation.
pub fn pieces(text: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut plain_from = 0;
    let mut at = 0;
    let lower = text.to_ascii_lowercase();
    while at < text.len() {
        let rest = &lower[at..];
        let scheme = if rest.starts_with("https://") {
            8
        } else if rest.starts_with("http://") {
            7
        } else {
            0
        };
        if scheme == 0 {
            at += text[at..].chars().next().map_or(1, char::len_utf8);
            continue;
        }
        let run = text[at..]
            .bytes()
            .take_while(|b| b.is_ascii_graphic() && !b"<>\"`".contains(b))
            .count();
        let mut end = at + run;
        while end > at + scheme && b".,;:!?)]}'".contains(&text.as_bytes()[end - 1]) {
            end -= 1;
        }
        if end == at + scheme {
            at += scheme;
            continue; // a bare "https://" is no link
        }
        if plain_from < at {
            out.push(Piece::Text(&text[plain_from..at]));
        }
        out.push(Piece::Link(&text[at..end]));
        at = end;
        plain_from = end;
    }
    if plain_from < text.len() {
        out.push(Piece::Text(&text[plain_from..]));
    }
    out
}

/// Bytes per chunk of a file (one data-channel message) at most: 256 KiB, Chromium's largest
/// (its `max-message-size`). Fewer, larger messages: a bare send loop in a call moved 50 MiB
/// ~15 % faster than with 64 KiB, Duet's pages alike in the median with fewer slow runs (see
/// docs/perf.md). Less if the connection's SCTP transport says the peer takes less
/// ([`chunk_size`]: 64 KiB when it does not say, which every browser takes).
pub const CHUNK: u64 = 256 * 1024;

/// The chunk size for a connection whose `RTCSctpTransport.maxMessageSize` is `max` (0 or
/// absent: unknown, 64 KiB, which every browser takes).
pub fn chunk_size(max: Option<u64>) -> u64 {
    match max {
        Some(0) | None => 64 * 1024,
        Some(max) => max.min(CHUNK),
    }
}

/// The chunks of a `size`-byte file: (offset, length) each.
pub fn chunks(size: u64, payload: u64) -> impl Iterator<Item = (u64, u64)> {
    let payload = payload.max(1);
    (0..size.div_ceil(payload)).map(move |i| {
        let offset = i * payload;
        (offset, payload.min(size - offset))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready() -> Chat {
        let mut c = Chat::default();
        assert_eq!(c.step(In::Ready, 0.0), [Out::Text(Frame::Hello.encode())]);
        assert!(!c.ready, "not before the peer's hello");
        c.step(frame(Frame::Hello), 0.0);
        assert!(c.ready);
        c
    }

    fn frame(f: Frame) -> In {
        In::Frame(f.encode())
    }

    #[test]
    fn messages_both_ways_with_times_and_an_unread_count() {
        let mut c = ready();
        let out = c.step(In::Say("  hi 👋 你好  ".into()), 1000.0);
        assert_eq!(out, [Out::Text(Frame::Text("hi 👋 你好".into()).encode())]);
        c.step(frame(Frame::Text("yo".into())), 2000.0);
        c.step(frame(Frame::Text("there".into())), 2500.0);
        assert_eq!(c.unread, 2);
        assert_eq!(
            c.lines[1],
            Line::Said {
                mine: false,
                text: "yo".into(),
                at_ms: 2000.0
            }
        );
        c.step(In::Show(true), 3000.0);
        assert_eq!(c.unread, 0);
        c.step(frame(Frame::Text("seen".into())), 3100.0);
        assert_eq!(c.unread, 0, "read as it arrives while open");
    }

    #[test]
    fn nothing_is_sent_before_the_channel_is_open_or_when_empty_or_too_long() {
        let mut c = Chat::default();
        assert_eq!(c.step(In::Say("early".into()), 0.0), []);
        // A peer that never says hello (a classic page) gets no chat.
        c.step(In::Ready, 0.0);
        assert_eq!(c.step(In::Say("anyone?".into()), 0.0), []);
        assert!(!c.ready);
        let mut c = ready();
        assert_eq!(c.step(In::Say("   ".into()), 0.0), []);
        assert_eq!(c.step(In::Say("x".repeat(MAX_TEXT_CHARS + 1)), 0.0), []);
        assert_eq!(c.step(In::Say("字".repeat(MAX_TEXT_CHARS)), 0.0).len(), 1);
    }

    #[test]
    fn bad_frames_are_dropped_with_one_note() {
        let mut c = ready();
        for bad in ["", "nope", "{\"t\":\"text\"}", "{\"t\":\"boom\"}", "[1,2]"] {
            assert_eq!(c.step(In::Frame(bad.into()), 0.0), [], "{bad}");
        }
        assert_eq!(c.lines.len(), 1);
        assert!(matches!(c.lines[0], Line::Note(Note::Dropped(_))));
        let long = Frame::Text("x".repeat(MAX_TEXT_CHARS + 1)).encode();
        c.step(In::Frame(long), 0.0);
        assert_eq!(
            c.lines.last(),
            Some(&Line::Note(Note::Dropped(FrameError::TooLarge)))
        );
    }

    #[test]
    fn the_peers_hello_may_come_before_our_channels_are_both_open() {
        let mut c = Chat::default();
        c.step(In::Frame(Frame::Hello.encode()), 0.0);
        assert!(!c.ready);
        c.step(In::Ready, 0.0);
        assert!(c.ready);
    }

    #[test]
    fn a_note_that_replaces_another_gets_a_new_key() {
        let mut c = ready();
        c.step(In::Frame("nope".into()), 0.0);
        let (first, _) = c.keyed().next().unwrap();
        c.step(
            In::Frame(Frame::Text("x".repeat(MAX_TEXT_CHARS + 1)).encode()),
            0.0,
        );
        let keyed: Vec<_> = c.keyed().map(|(k, l)| (k, l.clone())).collect();
        assert_eq!(keyed.len(), 1);
        assert_ne!(keyed[0].0, first, "the panel must render the new note");
        assert_eq!(keyed[0].1, Line::Note(Note::Dropped(FrameError::TooLarge)));
    }

    #[test]
    fn a_flood_is_cut_to_the_rate_limit() {
        let mut c = ready();
        for _ in 0..100 {
            c.step(frame(Frame::Text("spam".into())), 5000.0);
        }
        let said = c.lines.iter().filter(|l| matches!(l, Line::Said { .. })).count();
        assert_eq!(said, BURST as usize);
        assert_eq!(
            c.lines.last(),
            Some(&Line::Note(Note::Dropped(FrameError::TooFast)))
        );
        // A second later, ten more are welcome.
        for i in 0..10 {
            c.step(frame(Frame::Text("later".into())), 6000.0 + f64::from(i));
        }
        let said = c.lines.iter().filter(|l| matches!(l, Line::Said { .. })).count();
        assert_eq!(said, BURST as usize + 10);
    }

    #[test]
    fn history_is_capped() {
        let mut c = ready();
        for i in 0..MAX_LINES + 50 {
            c.step(In::Say(format!("m{i}")), i as f64 * 1000.0);
        }
        assert_eq!(c.lines.len(), MAX_LINES);
        assert_eq!(
            c.lines[0],
            Line::Said {
                mine: true,
                text: "m50".into(),
                at_ms: 50_000.0
            }
        );
    }

    #[test]
    fn sending_a_file_offer_accept_progress_done() {
        let mut c = ready();
        let id = c.new_id();
        let out = c.step(
            In::Offer {
                id,
                name: "C:\\photos\\cat.png".into(),
                size: 100_000,
                mime: "image/PNG".into(),
            },
            0.0,
        );
        let offer = Frame::Offer {
            id,
            name: "cat.png".into(),
            size: 100_000,
            mime: "image/png".into(),
        };
        assert_eq!(out, [Out::Control(offer.encode())]);
        assert_eq!(c.step(frame(Frame::Accept { id }), 0.0), [Out::Stream(id)]);
        c.step(In::Sent { id, bytes: 65_532 }, 0.0);
        assert_eq!(c.transfer(id, true).unwrap().percent(), 65);
        assert_eq!(
            c.step(frame(Frame::Done { id }), 0.0),
            [Out::Drop { id, mine: true }]
        );
        assert_eq!(c.transfer(id, true).unwrap().stage, Stage::Done);
        // A second accept or done changes nothing.
        assert_eq!(c.step(frame(Frame::Accept { id }), 0.0), []);
    }

    #[test]
    fn receiving_a_file_in_chunks_then_saving() {
        let mut c = ready();
        c.step(
            frame(Frame::Offer {
                id: 7,
                name: "notes.txt".into(),
                size: 10,
                mime: "text/plain".into(),
            }),
            0.0,
        );
        assert_eq!(c.unread, 1);
        c.step(frame(Frame::Begin { id: 7 }), 0.0);
        assert_eq!(c.receiving(), None, "not accepted: its bytes are not taken");
        assert_eq!(c.step(In::Chunk { len: 5 }, 0.0), []);
        assert_eq!(
            c.step(In::Accept(7), 0.0),
            [Out::Control(Frame::Accept { id: 7 }.encode())]
        );
        c.step(frame(Frame::Begin { id: 7 }), 0.0);
        assert_eq!(c.receiving(), Some(7));
        assert_eq!(c.step(In::Chunk { len: 4 }, 0.0), []);
        assert_eq!(c.transfer(7, false).unwrap().percent(), 40);
        assert_eq!(
            c.step(In::Chunk { len: 6 }, 0.0),
            [Out::Assemble(7), Out::Control(Frame::Done { id: 7 }.encode())]
        );
        c.step(
            In::Saved {
                id: 7,
                url: "blob:x".into(),
            },
            0.0,
        );
        let t = c.transfer(7, false).unwrap();
        assert_eq!((&t.stage, t.url.as_deref()), (&Stage::Done, Some("blob:x")));
        assert_eq!(c.urls().collect::<Vec<_>>(), ["blob:x"]);
    }

    #[test]
    fn more_bytes_than_announced_fail_the_transfer() {
        let mut c = ready();
        c.step(
            frame(Frame::Offer {
                id: 1,
                name: "a".into(),
                size: 10,
                mime: "".into(),
            }),
            0.0,
        );
        c.step(In::Accept(1), 0.0);
        c.step(frame(Frame::Begin { id: 1 }), 0.0);
        let out = c.step(In::Chunk { len: 11 }, 0.0);
        assert_eq!(
            out,
            [
                Out::Control(Frame::Refuse { id: 1 }.encode()),
                Out::Drop { id: 1, mine: false }
            ]
        );
        assert_eq!(c.transfer(1, false).unwrap().stage, Stage::Failed);
        assert_eq!(c.transfer(1, false).unwrap().mime, "application/octet-stream");
    }

    #[test]
    fn either_side_cancels_and_a_hang_up_ends_everything() {
        let mut c = ready();
        let id = c.new_id();
        c.step(
            In::Offer {
                id,
                name: "big.bin".into(),
                size: 1 << 20,
                mime: "application/octet-stream".into(),
            },
            0.0,
        );
        c.step(frame(Frame::Accept { id }), 0.0);
        // The receiver stops it.
        assert_eq!(
            c.step(frame(Frame::Refuse { id }), 0.0),
            [Out::Drop { id, mine: true }]
        );
        assert_eq!(
            c.transfer(id, true).unwrap().stage,
            Stage::Cancelled { by_me: false }
        );
        // We stop an incoming one.
        c.step(
            frame(Frame::Offer {
                id,
                name: "theirs".into(),
                size: 5,
                mime: "".into(),
            }),
            0.0,
        );
        c.step(In::Accept(id), 0.0);
        c.step(frame(Frame::Begin { id }), 0.0);
        let out = c.step(In::Cancel { id, mine: false }, 0.0);
        assert_eq!(
            out,
            [
                Out::Control(Frame::Refuse { id }.encode()),
                Out::Drop { id, mine: false }
            ]
        );
        // Late chunks of it are dropped quietly.
        assert_eq!(c.receiving(), None);
        assert_eq!(c.step(In::Chunk { len: 5 }, 0.0), []);
        // A third, open when the call ends.
        let third = c.new_id();
        c.step(
            In::Offer {
                id: third,
                name: "x".into(),
                size: 5,
                mime: "".into(),
            },
            0.0,
        );
        assert_eq!(
            c.step(In::Closed, 0.0),
            [Out::Drop {
                id: third,
                mine: true
            }]
        );
        assert!(!c.ready);
    }

    #[test]
    fn offers_are_bounded() {
        let mut c = Chat::new(1000);
        c.step(In::Ready, 0.0);
        c.step(frame(Frame::Hello), 0.0);
        let id = c.new_id();
        c.step(
            In::Offer {
                id,
                name: "big".into(),
                size: 1001,
                mime: "".into(),
            },
            0.0,
        );
        assert_eq!(c.lines, [Line::Note(Note::TooLarge)]);
        let big = Frame::Offer {
            id: 9,
            name: "big".into(),
            size: 1001,
            mime: "".into(),
        };
        assert_eq!(
            c.step(frame(big), 0.0),
            [Out::Control(Frame::Refuse { id: 9 }.encode())]
        );
        for i in 0..MAX_PENDING_OFFERS as u32 + 5 {
            let offer = Frame::Offer {
                id: 100 + i,
                name: "f".into(),
                size: 1,
                mime: "".into(),
            };
            c.step(frame(offer), f64::from(i) * 1000.0);
        }
        let offered = c.lines.iter().filter(|l| matches!(l, Line::File(_))).count();
        assert_eq!(offered, MAX_PENDING_OFFERS);
    }

    #[test]
    fn an_empty_file_completes_on_accept() {
        let mut c = ready();
        c.step(
            frame(Frame::Offer {
                id: 3,
                name: "empty".into(),
                size: 0,
                mime: "".into(),
            }),
            0.0,
        );
        let out = c.step(In::Accept(3), 0.0);
        assert_eq!(
            out[1..],
            [Out::Assemble(3), Out::Control(Frame::Done { id: 3 }.encode())]
        );
    }

    #[test]
    fn names_and_types_are_cleaned() {
        assert_eq!(clean_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_name("a\u{0}b\nc.txt"), "abc.txt");
        assert_eq!(clean_name(".."), "file");
        assert_eq!(clean_name(""), "file");
        assert_eq!(clean_name(&"名".repeat(300)).chars().count(), 200);
        assert_eq!(clean_mime("Image/PNG"), "image/png");
        assert_eq!(clean_mime("text/html; charset=x"), "application/octet-stream");
        assert_eq!(clean_mime("nonsense"), "application/octet-stream");
        let t = |mime: &str| Transfer {
            id: 1,
            mine: false,
            name: "x".into(),
            size: 1,
            mime: mime.into(),
            done: 0,
            stage: Stage::Done,
            url: None,
        };
        assert!(t("image/jpeg").is_image());
        assert!(!t("image/svg+xml").is_image());
    }

    #[test]
    fn links_are_found_and_only_web_links() {
        use Piece::{Link, Text};
        assert_eq!(
            pieces("see https://example.com/a?b=1, ok"),
            [Text("see "), Link("https://example.com/a?b=1"), Text(", ok")]
        );
        assert_eq!(
            pieces("看这个https://duet.example/u/张（好）"),
            [Text("看这个"), Link("https://duet.example/u/"), Text("张（好）")]
        );
        assert_eq!(pieces("javascript:alert(1)"), [Text("javascript:alert(1)")]);
        assert_eq!(pieces("HTTP://A.B."), [Link("HTTP://A.B"), Text(".")]);
        assert_eq!(pieces("https:// nothing"), [Text("https:// nothing")]);
        assert_eq!(pieces("(http://x.y)"), [Text("("), Link("http://x.y"), Text(")")]);
        assert_eq!(pieces(""), []);
    }

    #[test]
    fn the_transcript_keeps_messages_and_received_files() {
        let mut c = ready();
        c.step(In::Say("hi".into()), 60_000.0);
        c.step(frame(Frame::Text("hello 🙂".into())), 120_000.0);
        let t = c.transcript("alice", "bob", |ms| format!("{}", ms / 60_000.0));
        assert_eq!(t, "[1] alice: hi\n[2] bob: hello 🙂\n");
    }

    #[test]
    fn sizes_for_people() {
        assert_eq!(size_text(0), "0 B");
        assert_eq!(size_text(1023), "1023 B");
        assert_eq!(size_text(1536), "1.5 KB");
        assert_eq!(size_text(5 * 1024 * 1024), "5.0 MB");
        assert_eq!(size_text(100 * 1024 * 1024 + 200 * 1024), "100.2 MB");
        assert_eq!(size_text(3 << 30), "3.0 GB");
    }

    #[test]
    fn lines_keep_their_keys_when_old_ones_go() {
        let mut c = ready();
        for i in 0..MAX_LINES + 2 {
            c.step(In::Say(format!("m{i}")), 0.0);
        }
        let (first, line) = c.keyed().next().unwrap();
        assert_eq!(first, 2);
        assert_eq!(c.by_key(2), Some(line));
        assert_eq!(c.by_key(1), None);
    }

    #[test]
    fn chunks_fit_what_the_peer_takes() {
        assert_eq!(chunk_size(None), 65_536);
        assert_eq!(chunk_size(Some(0)), 65_536);
        assert_eq!(chunk_size(Some(262_144)), 262_144);
        assert_eq!(chunk_size(Some(65_536)), 65_536);
        assert_eq!(chunk_size(Some(1 << 30)), CHUNK, "Firefox says 1 GiB");
        assert_eq!(chunk_size(Some(16_384)), 16_384);
    }

    #[test]
    fn chunk_arithmetic() {
        assert_eq!(chunks(0, 10).count(), 0);
        assert_eq!(chunks(10, 10).collect::<Vec<_>>(), [(0, 10)]);
        assert_eq!(chunks(25, 10).collect::<Vec<_>>(), [(0, 10), (10, 10), (20, 5)]);
        assert_eq!(percent(1, 3), 33);
        assert_eq!(percent(0, 0), 100);
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// Chunks cover the file exactly once, in order, none larger than the payload.
        #[test]
        fn chunks_tile_the_file(size in 0u64..10_000_000, payload in 1u64..300_000) {
            let mut next = 0;
            for (offset, len) in chunks(size, payload) {
                prop_assert_eq!(offset, next);
                prop_assert!(len > 0 && len <= payload);
                next += len;
            }
            prop_assert_eq!(next, size);
        }

        /// Whatever the peer sends, in whatever order, the chat never panics, never counts
        /// more than announced, and keeps its bounds.
        #[test]
        fn any_frames_keep_the_bounds(
            inputs in proptest::collection::vec(
                prop_oneof![
                    ".{0,40}".prop_map(In::Frame),
                    (0u32..4, 0u64..50).prop_map(|(id, size)| In::Frame(Frame::Offer {
                        id, name: "f".into(), size, mime: "text/plain".into()
                    }.encode())),
                    (0u32..4).prop_map(|id| In::Frame(Frame::Accept { id }.encode())),
                    (0u32..4).prop_map(|id| In::Frame(Frame::Refuse { id }.encode())),
                    (0u32..4).prop_map(|id| In::Frame(Frame::Stop { id }.encode())),
                    (0u32..4).prop_map(|id| In::Frame(Frame::Done { id }.encode())),
                    (0u32..4).prop_map(In::Accept),
                    (0u32..4).prop_map(|id| In::Frame(Frame::Begin { id }.encode())),
                    (0u64..30).prop_map(|len| In::Chunk { len }),
                    (0u32..4, any::<bool>()).prop_map(|(id, mine)| In::Cancel { id, mine }),
                    Just(In::Closed),
                    Just(In::Ready),
                ],
                0..80,
            )
        ) {
            let mut c = Chat::default();
            c.step(In::Ready, 0.0);
            c.step(In::Frame(Frame::Hello.encode()), 0.0);
            for (i, input) in inputs.into_iter().enumerate() {
                c.step(input, i as f64 * 10.0);
                prop_assert!(c.lines.len() <= MAX_LINES);
                for line in &c.lines {
                    if let Line::File(t) = line {
                        prop_assert!(t.done <= t.size || t.stage == Stage::Failed);
                    }
                }
            }
        }
    }
}
