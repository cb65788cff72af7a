//! The browser side of the in-call chat ([`crate::chat`] holds its logic): the two data
//! channels, the bytes of files on their way, the `blob:` URLs of files received. Part of the
//! media side's chunk ([`super::shell`]): nothing here is needed before a call.

use crate::chat::{chunks, In, Out, CHUNK_PAYLOAD};
use crate::signal::frames::{chunk_header, chunk_id};
use js_sys::{ArrayBuffer, Uint8Array};
use leptos::prelude::*;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{
    Blob, BlobPropertyBag, File, MessageEvent, RtcDataChannel, RtcDataChannelInit, RtcDataChannelState,
    RtcDataChannelType, RtcPeerConnection, Url,
};

/// Bytes read from a file at a time (then sent in [`CHUNK_PAYLOAD`] pieces).
const BLOCK: u64 = 1024 * 1024;
/// Sending pauses while the channel holds more than this, and goes on when it has drained to
/// [`LOW_WATER`]: enough in flight to keep the connection busy, little held in memory.
const HIGH_WATER: u32 = 4 * 1024 * 1024;
const LOW_WATER: u32 = 1024 * 1024;

struct Channels {
    chat: RtcDataChannel,
    file: RtcDataChannel,
    _handlers: Vec<Closure<dyn FnMut(MessageEvent)>>,
    _opened: Closure<dyn FnMut()>,
    _closed: Closure<dyn FnMut()>,
}

thread_local! {
    static CHANNELS: RefCell<Option<Channels>> = const { RefCell::new(None) };
    /// Our files offered or being sent, by id.
    static OUTBOX: RefCell<HashMap<u32, File>> = RefCell::new(HashMap::new());
    /// The chunks of incoming files taken, by id (views into the received buffers: no copy).
    static INBOX: RefCell<HashMap<u32, js_sys::Array>> = RefCell::new(HashMap::new());
    /// Channels open so far (both: ready).
    static OPEN: Cell<u8> = const { Cell::new(0) };
}

/// Makes the call's `chat` and `file` channels on a new connection (negotiated: ids 0 and 1 on
/// both sides, no in-band announcement) and starts a new chat.
pub fn open_channels(pc: &RtcPeerConnection) {
    close_channels();
    if let Some(chat) = super::chat_signal() {
        let max_file = chat.with_untracked(|c| c.max_file);
        chat.set(crate::chat::Chat::new(max_file));
    }
    let make = |label: &str, id: u16| {
        let init = RtcDataChannelInit::new();
        init.set_negotiated(true);
        init.set_id(id);
        pc.create_data_channel_with_data_channel_dict(label, &init)
    };
    let (chat, file) = (make("chat", 0), make("file", 1));
    file.set_binary_type(RtcDataChannelType::Arraybuffer);
    file.set_buffered_amount_low_threshold(LOW_WATER);
    let on_text = Closure::<dyn FnMut(MessageEvent)>::new(|ev: MessageEvent| {
        if let Some(text) = ev.data().as_string() {
            step(In::Frame(text));
        }
    });
    let on_file = Closure::<dyn FnMut(MessageEvent)>::new(|ev: MessageEvent| {
        match ev.data().dyn_into::<ArrayBuffer>() {
            Ok(buffer) => chunk(&buffer),
            Err(data) => {
                if let Some(text) = data.as_string() {
                    step(In::Frame(text));
                }
            }
        }
    });
    let opened = Closure::<dyn FnMut()>::new(|| {
        if OPEN.get() + 1 == 2 {
            step(In::Ready);
        }
        OPEN.set(OPEN.get() + 1);
    });
    let closed = Closure::<dyn FnMut()>::new(|| step(In::Closed));
    for channel in [&chat, &file] {
        channel.set_onopen(Some(opened.as_ref().unchecked_ref()));
        channel.set_onclose(Some(closed.as_ref().unchecked_ref()));
    }
    chat.set_onmessage(Some(on_text.as_ref().unchecked_ref()));
    file.set_onmessage(Some(on_file.as_ref().unchecked_ref()));
    // For the console and the e2e suite (which plays a misbehaving peer with them).
    if let Some(window) = web_sys::window() {
        let both = js_sys::Object::new();
        let _ = js_sys::Reflect::set(&both, &"chat".into(), &chat);
        let _ = js_sys::Reflect::set(&both, &"file".into(), &file);
        let _ = js_sys::Reflect::set(&window, &"duetChannels".into(), &both);
    }
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
    step(In::Closed);
    for channel in [&channels.chat, &channels.file] {
        channel.set_onopen(None);
        channel.set_onclose(None);
        channel.set_onmessage(None);
        channel.close();
    }
    if let Some(chat) = super::chat_signal() {
        chat.with_untracked(|c| c.urls().for_each(|u| Url::revoke_object_url(u).unwrap_or(())));
    }
    OUTBOX.with(|o| o.borrow_mut().clear());
    INBOX.with(|i| i.borrow_mut().clear());
    // A handler may be what called us: drop the closures only after it has returned.
    spawn_local(async move { drop(channels) });
}

/// The person's action in the chat panel.
pub fn act(input: In) {
    if let In::Accept(id) = input {
        INBOX.with(|i| i.borrow_mut().insert(id, js_sys::Array::new()));
    }
    step(input);
}

/// The person picked a file to send: offered to the peer, kept here until it is sent.
pub fn send_file(file: File) {
    let Some(chat) = super::chat_signal() else { return };
    let id = chat.try_update_untracked(|c| c.new_id()).unwrap_or_default();
    let offer = In::Offer {
        id,
        name: file.name(),
        size: file.size() as u64,
        mime: file.type_(),
    };
    OUTBOX.with(|o| o.borrow_mut().insert(id, file));
    step(offer);
}

/// Feeds the chat model and runs what it asks for. Progress reports re-render the panel only
/// when a percentage changes (a 50 MiB file is 800 chunks).
fn step(input: In) {
    let Some(chat) = super::chat_signal() else { return };
    let progress = match &input {
        In::Chunk { id, .. } => Some((*id, false)),
        In::Sent { id, .. } => Some((*id, true)),
        _ => None,
    };
    let percent = |c: &crate::chat::Chat| {
        progress.and_then(|(id, mine)| c.transfer(id, mine).map(|t| (t.percent(), t.stage.clone())))
    };
    let now = js_sys::Date::now();
    let Some((out, quiet)) = chat.try_update_untracked(|c| {
        let before = percent(c);
        let out = c.step(input, now);
        let quiet = progress.is_some() && out.is_empty() && before == percent(c);
        (out, quiet)
    }) else {
        return;
    };
    if !quiet {
        chat.notify();
    }
    out.into_iter().for_each(run);
}

fn run(out: Out) {
    match out {
        Out::Text(frame) => send_text(|c| &c.chat, &frame),
        Out::Control(frame) => send_text(|c| &c.file, &frame),
        Out::Stream(id) => spawn_local(stream(id)),
        Out::Drop { id, mine: true } => drop(OUTBOX.with(|o| o.borrow_mut().remove(&id))),
        Out::Drop { id, mine: false } => drop(INBOX.with(|i| i.borrow_mut().remove(&id))),
        Out::Assemble(id) => assemble(id),
        Out::Revoke(url) => Url::revoke_object_url(&url).unwrap_or(()),
    }
}

fn send_text(which: fn(&Channels) -> &RtcDataChannel, frame: &str) {
    CHANNELS.with(|c| {
        if let Some(channels) = c.borrow().as_ref() {
            if let Err(e) = which(channels).send_with_str(frame) {
                leptos::logging::warn!("chat frame not sent: {e:?}");
            }
        }
    });
}

fn file_channel() -> Option<RtcDataChannel> {
    CHANNELS.with(|c| c.borrow().as_ref().map(|c| c.file.clone()))
}

/// A binary message on the `file` channel: a chunk of the peer's file.
fn chunk(buffer: &ArrayBuffer) {
    let bytes = Uint8Array::new(buffer);
    let mut header = [0u8; 4];
    if bytes.length() >= 4 {
        bytes.subarray(0, 4).copy_to(&mut header);
    }
    let Some(id) = chunk_id(&header).filter(|_| bytes.length() >= 4) else {
        return; // too short to be a chunk: nothing to count it against
    };
    let len = bytes.length() - 4;
    let taken = INBOX.with(|i| {
        i.borrow().get(&id).map(|parts| {
            parts.push(&Uint8Array::new_with_byte_offset(buffer, 4));
        })
    });
    if taken.is_some() {
        step(In::Chunk { id, len: len.into() });
    }
}

/// Sends our file `id` in chunks, pausing while the channel is full; stops when the transfer
/// is dropped (cancelled by either side, the call over).
async fn stream(id: u32) {
    let (Some(file), Some(channel)) = (OUTBOX.with(|o| o.borrow().get(&id).cloned()), file_channel()) else {
        return;
    };
    let size = file.size() as u64;
    let going = || OUTBOX.with(|o| o.borrow().contains_key(&id));
    let mut offset = 0;
    while offset < size {
        let end = (offset + BLOCK).min(size);
        let block = match read(&file, offset, end).await {
            Ok(block) => block,
            Err(e) => {
                leptos::logging::warn!("reading the file failed: {e:?}");
                return step(In::SendFailed(id));
            }
        };
        for (at, len) in chunks(end - offset, CHUNK_PAYLOAD) {
            while going() && channel.buffered_amount() > HIGH_WATER {
                drained(&channel).await;
            }
            if !going() {
                return;
            }
            if channel.ready_state() != RtcDataChannelState::Open {
                return step(In::SendFailed(id));
            }
            let frame = Uint8Array::new_with_length(4 + len as u32);
            frame.subarray(0, 4).copy_from(&chunk_header(id));
            frame.set(&block.subarray(at as u32, (at + len) as u32), 4);
            if let Err(e) = channel.send_with_array_buffer_view(&frame) {
                leptos::logging::warn!("sending a chunk failed: {e:?}");
                return step(In::SendFailed(id));
            }
        }
        offset = end;
        let bytes = offset.saturating_sub(channel.buffered_amount().into());
        step(In::Sent { id, bytes });
    }
}

async fn read(file: &File, from: u64, to: u64) -> Result<Uint8Array, JsValue> {
    let slice = file.slice_with_f64_and_f64(from as f64, to as f64)?;
    let buffer = JsFuture::from(slice.array_buffer()).await?;
    Ok(Uint8Array::new(&buffer))
}

/// Until the channel's `bufferedamountlow` event, or half a second (a channel closed meanwhile
/// never fires it).
async fn drained(channel: &RtcDataChannel) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        channel.set_onbufferedamountlow(Some(&resolve));
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, 500);
        }
    });
    let _ = JsFuture::from(promise).await;
    channel.set_onbufferedamountlow(None);
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
    let options = BlobPropertyBag::new();
    options.set_type(&mime);
    let url = Blob::new_with_u8_array_sequence_and_options(&parts, &options)
        .and_then(|blob| Url::create_object_url_with_blob(&blob));
    match url {
        Ok(url) => step(In::Saved { id, url }),
        Err(e) => {
            leptos::logging::warn!("putting a received file together failed: {e:?}");
            act(In::Cancel { id, mine: false });
        }
    }
}
