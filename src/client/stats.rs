//! Twice a second during a connected call: read `getStats`, keep the counters, publish the
//! figures of the last second ([`Quality::between`] does the arithmetic), and tell the call
//! when nothing arrives any more and when it flows again ([`Quality::stalled`]).

use super::{call_method, dispatch, peer};
use crate::call::Event;
use crate::quality::{Path, Quality, Sample};
use js_sys::Reflect;
use leptos::prelude::*;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::{spawn_local, JsFuture};

/// Between readings.
pub const INTERVAL_MS: u64 = 500;

thread_local! {
    /// The last readings, oldest first: figures span two intervals (a second), a stall one.
    static LAST: RefCell<VecDeque<Sample>> = const { RefCell::new(VecDeque::new()) };
    static STALLED: Cell<bool> = const { Cell::new(false) };
    /// A reading in flight: a slow `getStats` must not pile up readings.
    static READING: Cell<bool> = const { Cell::new(false) };
}

/// Takes a reading if the call is `connected`; otherwise forgets the figures.
pub fn tick(quality: RwSignal<Option<Quality>>, connected: bool) {
    if !connected {
        LAST.with(|l| l.borrow_mut().clear());
        STALLED.set(false);
        if quality.with_untracked(Option::is_some) {
            quality.set(None);
        }
        return;
    }
    let Some(pc) = peer::connection() else { return };
    if READING.replace(true) {
        return;
    }
    spawn_local(async move {
        let report = JsFuture::from(pc.get_stats()).await;
        READING.set(false);
        let Some(now) = report.ok().map(|r| read(&r)) else {
            return;
        };
        let (oldest, prev) = LAST.with(|l| {
            let mut l = l.borrow_mut();
            l.push_back(now);
            if l.len() > 3 {
                l.pop_front();
            }
            (l.front().copied(), l.len().checked_sub(2).map(|i| l[i]))
        });
        if let Some(oldest) = oldest.filter(|o| o.at_ms < now.at_ms) {
            quality.set(Some(Quality::between(&oldest, &now)));
        }
        if let Some(prev) = prev {
            let stalled = Quality::stalled(&prev, &now);
            if STALLED.replace(stalled) != stalled {
                dispatch(if stalled {
                    Event::MediaStalled
                } else {
                    Event::MediaFlowing
                });
            }
        }
    });
}

/// The counters of one `RTCStatsReport` (a JS Map of id → stats dictionary).
fn read(report: &JsValue) -> Sample {
    let mut sample = Sample {
        at_ms: js_sys::Date::now(),
        ..Sample::default()
    };
    let stats: Vec<JsValue> = call_method(report, "values", &[])
        .and_then(|it| js_sys::try_iter(&it).ok().flatten())
        .map(|it| it.filter_map(Result::ok).collect())
        .unwrap_or_default();
    let text = |s: &JsValue, k: &str| Reflect::get(s, &k.into()).ok().and_then(|v| v.as_string());
    let num = |s: &JsValue, k: &str| Reflect::get(s, &k.into()).ok().and_then(|v| v.as_f64());
    // The pair in use: named by the transport (Chromium, Safari), else the nominated one.
    let selected = stats
        .iter()
        .find_map(|s| (text(s, "type")? == "transport").then(|| text(s, "selectedCandidatePairId"))?);
    for s in &stats {
        match text(s, "type").as_deref() {
            Some("candidate-pair") => {
                let chosen = match &selected {
                    Some(id) => text(s, "id").as_ref() == Some(id),
                    None => {
                        Reflect::get(s, &"nominated".into())
                            .ok()
                            .and_then(|v| v.as_bool())
                            == Some(true)
                    }
                };
                if chosen {
                    sample.rtt_s = num(s, "currentRoundTripTime").or(sample.rtt_s);
                    let kind = |key: &str| {
                        let id = text(s, key)?;
                        let candidate = stats.iter().find(|c| text(c, "id").as_ref() == Some(&id))?;
                        text(candidate, "candidateType")
                    };
                    if let (Some(local), Some(remote)) = (kind("localCandidateId"), kind("remoteCandidateId"))
                    {
                        sample.path = Some(Path::of(&local, &remote));
                    }
                }
            }
            Some("inbound-rtp") => {
                sample.packets_received += num(s, "packetsReceived").unwrap_or(0.0) as u64;
                sample.packets_lost += num(s, "packetsLost").unwrap_or(0.0) as i64;
                sample.bytes_received += num(s, "bytesReceived").unwrap_or(0.0) as u64;
                if text(s, "kind").as_deref() == Some("video") {
                    if let (Some(w), Some(h)) = (num(s, "frameWidth"), num(s, "frameHeight")) {
                        sample.frame_size = Some((w as u32, h as u32));
                    }
                    sample.fps = num(s, "framesPerSecond");
                }
            }
            _ => {}
        }
    }
    sample
}
