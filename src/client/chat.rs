//! The browser side of the in-call chat ([`crate::chat`] holds its logic): the two data
//! channels, the bytes of files on their way, the `blob:` URLs of files received. Part of the
//! media side's chunk ([`super::shell`]): nothing here is needed before a call.

use super::js;
use crate::chat::{chunk_size, chunks, In, Out};
use crate::signal::frames::Frame;
use leptos::prelude::*;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{MessageEvent, RtcPeerConnection};

/// Bytes read from a file at a time (then sent in [`chunk_size`] pieces).
const BLOCK: u64 = 4 * 1024 * 1024;
/// Sending pauses while the channel holds more than this, and goes on when it has drained to
/// [`LOW_WATER`]: enough in flight to keep the connection busy, little held in memory.
const HIGH_WATER: f64 = 8.0 * 1024.0 * 1024.0;
const LOW_WATER: u32 = 2 * 1024 * 1024;

/// The two `RTCDataChannel`s (untyped: see [`js`]) and their handlers.
struct Channels {
    chat: JsValue,
    file: JsValue,
    _handlers: Vec<Closure<dyn FnMut(MessageEvent)>>,
    _opened: Closure<dyn FnMut()>,
    _closed: Closure<dyn FnMut()>,
}

thread_local! {
    static CHANNELS: RefCell<Option<Channels>> = const { RefCell::new(None) };
    /// Our files (`File` objects) offered or being sent, by id.
    static OUTBOX: RefCell<HashMap<u32, JsValue>> = RefCell::new(HashMap::new());
    /// The chunks of incoming files taken, by id (views into the received buffers: no copy).
    static INBOX: RefCell<HashMap<u32, js_sys::Array>> = RefCell::new(HashMap::new());
    /// Channels open so far (both: ready).
    static OPEN: Cell<u8> = const { Cell::new(0) };
    /// A file of ours is being streamed (one at a time: chunks carry no id, see
    /// `signal::frames`); the ones accepted meanwhile wait, in order.
    static SENDING: Cell<bool> = const { Cell::new(false) };
    static WAITING: RefCell<VecDeque<u32>> = const { RefCell::new(VecDeque::new()) };
    /// Bytes received since the incoming file's chunks were last folded into a Blob.
    static UNFOLDED: Cell<u64> = const { Cell::new(0) };
    /// When progress last re-rendered the panel (ms).
    static LAST_PROGRESS: Cell<f64> = const { Cell::new(0.0) };
}

/// The call's `chat` and `file` channels on a new connection (negotiated: ids 0 and 1 on both
/// sides, no in-band announcement), made before its first offer so that they are in it.
pub fn make_channels(pc: &RtcPeerConnection) -> Option<[JsValue; 2]> {
    let make = |label: &str, id: u16| {
        let init = js::object(&[("negotiated", &JsValue::TRUE), ("id", &id.into())]);
        js::call(pc, "createDataChannel", &[&label.into(), &init])
    };
    Some([make("chat", 0)?, make("file", 1)?])
}

/// Starts a new chat on the channels [`make_channels`] made for the call's connection.
pub fn open_channels(made: Option<[JsValue; 2]>) {
    close_channels();
    if let Some(chat) = super::chat_signal() {
        // The server's cap (`--max-file-mib`), carried by the page.
        let max_file = document()
            .document_element()
            .and_then(|e| e.get_attribute("data-max-file"))
            .and_then(|v| v.parse().ok())
            .unwrap_or(crate::chat::DEFAULT_MAX_FILE);
        chat.set(crate::chat::Chat::new(max_file));
    }
    let Some([chat, file]) = made else {
        leptos::logging::warn!("no data channels: this call has no chat");
        return;
    };
    js::set(&file, "binaryType", &"arraybuffer".into());
    js::set(&file, "bufferedAmountLowThreshold", &LOW_WATER.into());
    // Text on either channel is a frame; anything else on `file` is a chunk.
    let on_message = || {
        Closure::<dyn FnMut(MessageEvent)>::new(|ev: MessageEvent| {
            let data = ev.data();
            match data.as_string() {
                Some(text) => step(In::Frame(text)),
                None => chunk(&data),
            }
        })
    };
    let (on_text, on_file) = (on_message(), on_message());
    let opened = Closure::<dyn FnMut()>::new(|| {
        let open = OPEN.get() + 1;
        OPEN.set(open);
        if open == 2 {
            step(In::Ready);
        }
    });
    let closed = Closure::<dyn FnMut()>::new(|| step(In::Closed));
    for (channel, on_message) in [(&chat, &on_text), (&file, &on_file)] {
        js::set(channel, "onopen", opened.as_ref());
        js::set(channel, "onclose", closed.as_ref());
        js::set(channel, "onmessage", on_message.as_ref());
    }
    // For the console and the e2e suite (which plays a misbehaving peer with them).
    js::set(
        &js::global(),
        "duetChannels",
        &js::object(&[("chat", &chat), ("file", &file)]),
    );
    OPEN.set(0);
    CHANNELS.with(|c| {
        *c.borrow_mut() = Some(Channels {
            chat,
            file,
            _handlers: vec![on_text, on_file],
            _opened: opened,
            _closed: closed,
        })
    });
}

/// The call is over: open transfers end, their bytes and URLs are let go, the channels close.
pub fn close_channels() {
    let Some(channels) = CHANNELS.with(|c| c.borrow_mut().take()) else {
        return;
    };
    for channel in [&channels.chat, &channels.file] {
        for handler in ["onopen", "onclose", "onmessage"] {
            js::set(channel, handler, &JsValue::NULL);
        }
        js::call(channel, "close", &[]);
    }
    // Nothing of the conversation outlives the call (the panel is gone with it): a fresh chat,
    // and every transfer's bytes let go below.
    if let Some(chat) = super::chat_signal() {
        chat.with_untracked(|c| c.urls().for_each(revoke));
        chat.update(|c| *c = crate::chat::Chat::new(c.max_file));
    }
    OUTBOX.with(|o| o.borrow_mut().clear());
    INBOX.with(|i| i.borrow_mut().clear());
    WAITING.with(|w| w.borrow_mut().clear());
    // A handler may be what called us: drop the closures only after it has returned.
    spawn_local(async move { drop(channels) });
}

/// The person's action in the chat panel.
pub fn act(input: In) {
    if let In::Accept(id) = input {
        INBOX.with(|i| i.borrow_mut().insert(id, js_sys::Array::new()));
        UNFOLDED.set(0);
    }
    step(input);
}

/// The person picked a file (a `File`) to send: offered to the peer, kept here until sent.
pub fn send_file(file: JsValue) {
    let Some(chat) = super::chat_signal() else { return };
    let id = chat.try_update_untracked(|c| c.new_id()).unwrap_or_default();
    let offer = In::Offer {
        id,
        name: js::get(&file, "name").as_string().unwrap_or_default(),
        size: js::number(&file, "size") as u64,
        mime: js::get(&file, "type").as_string().unwrap_or_default(),
    };
    OUTBOX.with(|o| o.borrow_mut().insert(id, file));
    step(offer);
}

/// Feeds the chat model and runs what it asks for. Progress alone (a 50 MiB file is 800
/// chunks) re-renders the panel only when a percentage changes, at most ten times a second.
fn step(input: In) {
    let Some(chat) = super::chat_signal() else { return };
    let progress = match &input {
        In::Chunk { .. } => chat.with_untracked(|c| c.receiving()).map(|id| (id, false)),
        In::Sent { id, .. } => Some((*id, true)),
        _ => None,
    };
    let percent = |c: &crate::chat::Chat| {
        progress.and_then(|(id, mine)| c.transfer(id, mine).map(|t| (t.stage.clone(), t.percent())))
    };
    let now = js_sys::Date::now();
    let Some((out, quiet)) = chat.try_update_untracked(|c| {
        let before = percent(c);
        let out = c.step(input, now);
        let after = percent(c);
        // Progress alone re-renders at most ten times a second: rendering competes with the
        // transfer for the page's thread.
        let same_stage = before.as_ref().map(|b| &b.0) == after.as_ref().map(|a| &a.0);
        let soon = before == after || now - LAST_PROGRESS.get() < 100.0;
        let quiet = progress.is_some() && out.is_empty() && same_stage && soon;
        (out, quiet)
    }) else {
        return;
    };
    if !quiet {
        if progress.is_some() {
            LAST_PROGRESS.set(now);
        }
        chat.notify();
    }
    out.into_iter().for_each(run);
}

fn run(out: Out) {
    match out {
        Out::Text(frame) => send_text(|c| &c.chat, &frame),
        Out::Control(frame) => send_text(|c| &c.file, &frame),
        Out::Stream(id) => {
            WAITING.with(|w| w.borrow_mut().push_back(id));
            stream_next();
        }
        Out::Drop { id, mine: true } => drop(OUTBOX.with(|o| o.borrow_mut().remove(&id))),
        Out::Drop { id, mine: false } => drop(INBOX.with(|i| i.borrow_mut().remove(&id))),
        Out::Assemble(id) => assemble(id),
        Out::Revoke(url) => revoke(&url),
    }
}

fn send_text(which: fn(&Channels) -> &JsValue, frame: &str) {
    CHANNELS.with(|c| {
        if let Some(channels) = c.borrow().as_ref() {
            if js::call(which(channels), "send", &[&frame.into()]).is_none() {
                leptos::logging::warn!("chat frame not sent (channel closed?)");
            }
        }
    });
}

fn file_channel() -> Option<JsValue> {
    CHANNELS.with(|c| c.borrow().as_ref().map(|c| c.file.clone()))
}

/// A binary message on the `file` channel (an `ArrayBuffer`): bytes of the file being
/// received, kept as they are (no copy) until the file is complete.
fn chunk(buffer: &JsValue) {
    let Some(id) = super::chat_signal().and_then(|c| c.with_untracked(|c| c.receiving())) else {
        return; // a file not taken, or cancelled while its bytes were on the way
    };
    let len = js::number(buffer, "byteLength") as u64;
    let taken = INBOX.with(|i| {
        i.borrow().get(&id).map(|parts| {
            parts.push(buffer);
            // Every 4 MiB into a Blob: the browser takes the bytes into its blob store as they
            // come, and the page lets go of the buffers, instead of holding the whole file (up
            // to the cap, 100 MiB) and copying it at the end. Measured: the renderers' peak
            // RSS ~30–50 MiB lower over a 50 MiB file, and faster (the garbage collector has
            // less to walk): 16.7 against 11.6 MB/s in a bare loop (docs/perf.md).
            let unfolded = UNFOLDED.get() + len;
            UNFOLDED.set(unfolded);
            if unfolded >= BLOCK {
                if let Some(blob) = js::new("Blob", &[parts]) {
                    // The parts so far become the first part.
                    js::set(parts, "length", &0.into());
                    parts.push(&blob);
                    UNFOLDED.set(0);
                }
            }
        })
    });
    if taken.is_some() {
        step(In::Chunk { len });
    }
}

/// Streams the next accepted file unless one is being streamed.
fn stream_next() {
    if SENDING.get() {
        return;
    }
    let Some(id) = WAITING.with(|w| w.borrow_mut().pop_front()) else {
        return;
    };
    SENDING.set(true);
    spawn_local(async move {
        stream(id).await;
        SENDING.set(false);
        stream_next();
    });
}

/// Sends our file `id`: `begin`, then its bytes in chunks, pausing while the channel is full;
/// stops when the transfer is dropped (cancelled by either side, the call over).
async fn stream(id: u32) {
    let (Some(file), Some(channel)) = (OUTBOX.with(|o| o.borrow().get(&id).cloned()), file_channel()) else {
        return;
    };
    let size = js::number(&file, "size") as u64;
    let going = || OUTBOX.with(|o| o.borrow().contains_key(&id));
    send_text(|c| &c.file, &Frame::Begin { id }.encode());
    let max = super::peer::connection()
        .map(|pc| js::get(&js::get(&pc, "sctp"), "maxMessageSize"))
        .and_then(|m| m.as_f64());
    let chunk = chunk_size(max.map(|m| m as u64));
    let mut offset = 0;
    while offset < size {
        let end = (offset + BLOCK).min(size);
        let Some(block) = read(&file, offset, end).await else {
            leptos::logging::warn!("reading the file to send failed");
            return step(In::SendFailed(id));
        };
        for (at, len) in chunks(end - offset, chunk) {
            while going() && js::number(&channel, "bufferedAmount") > HIGH_WATER {
                wait(500, Some(&channel)).await;
            }
            if !going() {
                return;
            }
            let (from, to) = (JsValue::from(at as f64), JsValue::from((at + len) as f64));
            let sent = js::call(&block, "subarray", &[&from, &to])
                .and_then(|piece| js::call(&channel, "send", &[&piece]));
            if sent.is_none() {
                leptos::logging::warn!("sending a chunk failed (channel closed?)");
                return step(In::SendFailed(id));
            }
            sent_so_far(id, &channel, offset + at + len);
        }
        offset = end;
    }
    // All queued: the progress follows the channel draining, until the receiver says done.
    while going() && js::number(&channel, "bufferedAmount") > 0.0 {
        wait(100, None).await;
        sent_so_far(id, &channel, size);
    }
}

/// Our progress: what was handed to the channel less what it still holds.
fn sent_so_far(id: u32, channel: &JsValue, queued: u64) {
    let bytes = queued.saturating_sub(js::number(channel, "bufferedAmount") as u64);
    step(In::Sent { id, bytes });
}

/// Bytes `from..to` of a `File`, as a `Uint8Array`.
async fn read(file: &JsValue, from: u64, to: u64) -> Option<JsValue> {
    let slice = js::call(file, "slice", &[&(from as f64).into(), &(to as f64).into()])?;
    let promise = js::call(&slice, "arrayBuffer", &[])?;
    let buffer = JsFuture::from(promise.unchecked_into::<js_sys::Promise>())
        .await
        .ok()?;
    js::new("Uint8Array", &[&buffer])
}

/// Until `ms` have passed or, with a `channel`, its `bufferedamountlow` event (which a channel
/// closed meanwhile never fires).
pub(super) async fn wait(ms: i32, channel: Option<&JsValue>) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(channel) = channel {
            js::set(channel, "onbufferedamountlow", &resolve);
        }
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    });
    let _ = JsFuture::from(promise).await;
    if let Some(channel) = channel {
        js::set(channel, "onbufferedamountlow", &JsValue::NULL);
    }
}

/// All of file `id` is here: one Blob of its chunks, and a URL for the save link and preview.
fn assemble(id: u32) {
    let Some(parts) = INBOX.with(|i| i.borrow_mut().remove(&id)) else {
        return;
    };
    let Some(mime) = super::chat_signal()
        .and_then(|c| c.with_untracked(|c| c.transfer(id, false).map(|t| t.mime.clone())))
    else {
        return;
    };
    let options = js::object(&[("type", &mime.into())]);
    let url = js::new("Blob", &[&parts, &options])
        .and_then(|blob| js::call(&js::get(&js::global(), "URL"), "createObjectURL", &[&blob]))
        .and_then(|url| url.as_string());
    match url {
        Some(url) => step(In::Saved { id, url }),
        None => {
            leptos::logging::warn!("putting a received file together failed");
            act(In::Cancel { id, mine: false });
        }
    }
}

fn revoke(url: &str) {
    js::call(&js::get(&js::global(), "URL"), "revokeObjectURL", &[&url.into()]);
}
