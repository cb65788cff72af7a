//! Ringtone, ringback and vibration, synthesized with WebAudio: no audio files to ship or cache.
//! WebAudio is reached untyped (see [`super::js`]): its fifteen or so typed methods would each be
//! an import in the main WASM module, for code that only the lazily loaded chunk runs.

use super::js;
use crate::call::Tone;
use leptos::prelude::*;
use std::cell::{Cell, RefCell};
use std::time::Duration;
use wasm_bindgen::JsValue;

struct Playing {
    tone: Tone,
    /// The `AudioContext`.
    ctx: JsValue,
    repeat: IntervalHandle,
}

thread_local! {
    static PLAYING: RefCell<Option<Playing>> = const { RefCell::new(None) };
    /// The tone last asked for (it starts a frame later, see [`play`]).
    static WANTED: Cell<Tone> = const { Cell::new(Tone::Silent) };
}

/// How long after the tap on Call the ringback starts, as a phone network's does once the other
/// phone rings: a call answered at once (the accept and its answer come 10-30 ms after the tap)
/// never makes an `AudioContext`, which took the caller's thread for 8-70 ms just when they came
/// (docs/perf.md).
const RINGBACK_AFTER: Duration = Duration::from_millis(500);

/// Plays `tone` (repeating until another tone is asked for); `Silent` stops. A ringtone starts
/// once the page has drawn the call (the frame after), a ringback [`RINGBACK_AFTER`]: making an
/// `AudioContext` takes the page's thread for milliseconds that the incoming sheet, the camera
/// and the connection need first, and a call answered before that never starts one.
pub fn play(tone: Tone) {
    if WANTED.replace(tone) == tone {
        return; // called after every event: most change nothing
    }
    stop();
    if tone == Tone::Silent {
        return;
    }
    let later = move || {
        if WANTED.get() == tone && PLAYING.with(|p| p.borrow().is_none()) {
            start(tone);
        }
    };
    if tone == Tone::Ringback {
        set_timeout(later, RINGBACK_AFTER);
    } else if document().visibility_state() == web_sys::VisibilityState::Hidden {
        // A hidden page draws no frames: its call rings at once.
        later();
    } else {
        request_animation_frame(move || set_timeout(later, Duration::ZERO));
    }
}

fn start(tone: Tone) {
    // Older Safari has only the prefixed name.
    let Some(ctx) = js::new("AudioContext", &[]).or_else(|| js::new("webkitAudioContext", &[])) else {
        return;
    };
    // Suspended when the page has had no user gesture yet; resuming is all we can do. A call
    // answered or ended before that resume settles closes the context, which rejects it:
    // awaited here, so the page reports no unhandled rejection.
    if let Some(resuming) = js::call(&ctx, "resume", &[]) {
        let resuming = wasm_bindgen_futures::JsFuture::from(js_sys::Promise::from(resuming));
        wasm_bindgen_futures::spawn_local(async move {
            let _ = resuming.await;
        });
    }
    let (period, burst) = match tone {
        Tone::Ring => (Duration::from_secs(3), burst_ring as fn(&JsValue)),
        _ => (Duration::from_secs(4), burst_ringback as fn(&JsValue)),
    };
    burst(&ctx);
    let for_timer = ctx.clone();
    let Ok(repeat) = set_interval_with_handle(move || burst(&for_timer), period) else {
        return;
    };
    super::mark_page(
        "data-tone",
        Some(if tone == Tone::Ring { "ring" } else { "ringback" }),
    );
    PLAYING.with(|p| *p.borrow_mut() = Some(Playing { tone, ctx, repeat }));
}

fn stop() {
    if let Some(playing) = PLAYING.with(|p| p.borrow_mut().take()) {
        playing.repeat.clear();
        js::call(&playing.ctx, "close", &[]);
        if playing.tone == Tone::Ring {
            vibrate(&0.into());
        }
    }
    super::mark_page("data-tone", None);
}

/// `navigator.vibrate(pattern)` where there is one (not on iOS or desktops), once the page has
/// been tapped: before that Chromium refuses it and logs an error for every ring.
fn vibrate(pattern: &JsValue) {
    let navigator = window().navigator();
    let activation = js::get(&navigator, "userActivation");
    if activation.is_undefined() || js::get(&activation, "hasBeenActive").is_truthy() {
        js::call(&navigator, "vibrate", &[pattern]);
    }
}

/// A phone-like double ring (two short bursts of a 440 + 480 Hz chord) and a buzz.
fn burst_ring(ctx: &JsValue) {
    for start in [0.0, 0.5] {
        beep(ctx, &[440.0, 480.0], start, 0.4, 0.16);
    }
    let pattern: js_sys::Array = [400, 100, 400].iter().map(|&ms| JsValue::from(ms)).collect();
    vibrate(&pattern);
}

/// A soft ringback: one long 425 Hz tone.
fn burst_ringback(ctx: &JsValue) {
    beep(ctx, &[425.0], 0.0, 1.0, 0.06);
}

/// Sine tones at `freqs` from `start` s (relative to now) for `len` s, with short fades.
fn beep(ctx: &JsValue, freqs: &[f64], start: f64, len: f64, volume: f64) {
    let t0 = js::number(ctx, "currentTime") + start;
    let Some(gain) = js::call(ctx, "createGain", &[]) else {
        return;
    };
    let level = js::get(&gain, "gain");
    for (method, value, at) in [
        ("setValueAtTime", 0.0, t0),
        ("linearRampToValueAtTime", volume, t0 + 0.02),
        ("setValueAtTime", volume, t0 + len - 0.05),
        ("linearRampToValueAtTime", 0.0, t0 + len),
    ] {
        js::call(&level, method, &[&value.into(), &at.into()]);
    }
    if js::call(&gain, "connect", &[&js::get(ctx, "destination")]).is_none() {
        return;
    }
    for &freq in freqs {
        let Some(osc) = js::call(ctx, "createOscillator", &[]) else {
            continue;
        };
        js::set(&osc, "type", &"sine".into());
        js::set(&js::get(&osc, "frequency"), "value", &freq.into());
        if js::call(&osc, "connect", &[&gain]).is_some() {
            js::call(&osc, "start", &[&t0.into()]);
            js::call(&osc, "stop", &[&(t0 + len).into()]);
        }
    }
}
