//! Ringtone, ringback and vibration, synthesized with WebAudio: no audio files to ship or cache.

use crate::call::Tone;
use leptos::prelude::*;
use std::cell::RefCell;
use std::time::Duration;
use wasm_bindgen::JsValue;
use web_sys::{AudioContext, OscillatorType};

struct Playing {
    tone: Tone,
    ctx: AudioContext,
    repeat: IntervalHandle,
}

thread_local! {
    static PLAYING: RefCell<Option<Playing>> = const { RefCell::new(None) };
}

/// Plays `tone` (repeating until another tone is asked for); `Silent` stops.
pub fn play(tone: Tone) {
    let current = PLAYING.with(|p| p.borrow().as_ref().map(|p| p.tone));
    if current.unwrap_or(Tone::Silent) == tone {
        return; // called after every event: most change nothing
    }
    stop();
    if tone == Tone::Silent {
        return;
    }
    let Ok(ctx) = AudioContext::new() else { return };
    // Suspended when the page has had no user gesture yet; resuming is all we can do.
    let _ = ctx.resume();
    let (period, burst) = match tone {
        Tone::Ring => (Duration::from_secs(3), burst_ring as fn(&AudioContext)),
        _ => (Duration::from_secs(4), burst_ringback as fn(&AudioContext)),
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
        let _ = playing.ctx.close();
        if playing.tone == Tone::Ring {
            let _ = window().navigator().vibrate_with_duration(0);
        }
    }
    super::mark_page("data-tone", None);
}

/// A phone-like double ring (two short bursts of a 440 + 480 Hz chord) and a buzz.
fn burst_ring(ctx: &AudioContext) {
    for start in [0.0, 0.5] {
        beep(ctx, &[440.0, 480.0], start, 0.4, 0.16);
    }
    let pattern: js_sys::Array = [400, 100, 400].iter().map(|&ms| JsValue::from(ms)).collect();
    let _ = window().navigator().vibrate_with_pattern(&pattern);
}

/// A soft ringback: one long 425 Hz tone.
fn burst_ringback(ctx: &AudioContext) {
    beep(ctx, &[425.0], 0.0, 1.0, 0.06);
}

/// Sine tones at `freqs` from `start` s (relative to now) for `len` s, with short fades.
fn beep(ctx: &AudioContext, freqs: &[f32], start: f64, len: f64, volume: f32) {
    let t0 = ctx.current_time() + start;
    let Ok(gain) = ctx.create_gain() else { return };
    let level = gain.gain();
    let _ = level.set_value_at_time(0.0, t0);
    let _ = level.linear_ramp_to_value_at_time(volume, t0 + 0.02);
    let _ = level.set_value_at_time(volume, t0 + len - 0.05);
    let _ = level.linear_ramp_to_value_at_time(0.0, t0 + len);
    if gain.connect_with_audio_node(&ctx.destination()).is_err() {
        return;
    }
    for &freq in freqs {
        let Ok(osc) = ctx.create_oscillator() else {
            continue;
        };
        osc.set_type(OscillatorType::Sine);
        osc.frequency().set_value(freq);
        if osc.connect_with_audio_node(&gain).is_ok() {
            let _ = osc.start_with_when(t0);
            let _ = osc.stop_with_when(t0 + len);
        }
    }
}
