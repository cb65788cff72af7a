//! Every user-visible sentence, in one place, so wording stays consistent and can be translated.

use crate::call::{EndReason, Link, Status};
use crate::signal::Code;

pub fn status(s: &Status) -> String {
    match s {
        Status::Idle => "Ready to call".into(),
        Status::Calling(p) => format!("Calling {p}…"),
        Status::Ringing(p) => format!("{p} is calling you"),
        Status::Connecting(p) => format!("Connecting to {p}…"),
        Status::InCall { peer, seconds } => format!("In call with {peer} · {}", clock(*seconds)),
        Status::Ended { peer, reason } => ended(peer, reason),
    }
}

/// `mm:ss`, or `h:mm:ss` past an hour.
pub fn clock(seconds: u64) -> String {
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m:02}:{s:02}")
    }
}

fn ended(peer: &str, reason: &EndReason) -> String {
    match reason {
        EndReason::Declined => format!("{peer} declined the call"),
        EndReason::YouDeclined => format!("You declined {peer}'s call"),
        EndReason::Unavailable { code, text } => match code {
            Some(Code::Offline | Code::NotOnline) => format!("{peer} is not online"),
            Some(Code::Busy) => format!("{peer} is busy in another call"),
            Some(Code::NoAnswer) => format!("{peer} did not answer"),
            _ => text.clone(),
        },
        EndReason::Cancelled => format!("Call to {peer} cancelled"),
        EndReason::Missed => format!("Missed call from {peer}"),
        EndReason::YouHungUp => format!("Call with {peer} ended"),
        EndReason::PeerHungUp => format!("{peer} hung up"),
        EndReason::PeerDisconnected => format!("{peer} lost the connection; call ended"),
        EndReason::MediaFailed(raw) => media_error(raw),
        EndReason::ConnectionFailed => format!("The connection to {peer} failed"),
    }
}

/// Turns a getUserMedia failure (`"NotAllowedError: ..."`) into advice.
pub fn media_error(raw: &str) -> String {
    let name = raw.split(':').next().unwrap_or(raw);
    match name {
        "NotAllowedError" | "SecurityError" => {
            "Camera and microphone access was denied. Allow it in the browser's site settings and try again."
                .into()
        }
        "NotFoundError" | "OverconstrainedError" => "No camera or microphone was found.".into(),
        "NotReadableError" | "AbortError" => "The camera or microphone is in use by another app.".into(),
        "Insecure" => "The camera needs a secure page: open Duet over https (or on localhost).".into(),
        _ => format!("Could not start camera and microphone ({raw})."),
    }
}

pub fn link(l: &Link) -> &str {
    match l {
        Link::Connecting => "Connecting…",
        Link::Online => "Online",
        Link::Reconnecting => "Reconnecting…",
        Link::Refused(text) => text,
    }
}
