//! Every user-visible word, in English and Simplified Chinese, in one place. Components ask for
//! a [`Ui`] key or call a function with the values to put in; nothing else holds UI text.

use crate::call::{Alert, EndReason, Link, Notice, Status};
use crate::i18n::Lang;
use crate::quality::{Grade, Path, Quality};
use crate::signal::{Code, NameError, MAX_NAME_CHARS};

/// Fixed strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ui {
    Tagline,
    YourName,
    NamePlaceholder,
    NameHint,
    Continue,
    Install,
    IosInstallHint,
    BadNameTitle,
    ChooseName,
    ChooseAnotherName,
    NotFound,
    OpenDuet,
    Offline,
    Video,
    Dismiss,
    Cancel,
    HangUp,
    CallControls,
    MuteMic,
    UnmuteMic,
    CameraOff,
    CameraOn,
    SwitchCamera,
    FullScreen,
    SwapVideos,
    FriendsName,
    FriendPlaceholder,
    Call,
    OnlineNow,
    NobodyOnline,
    YourCallLink,
    IncomingCall,
    MissedCall,
    Decline,
    Accept,
    SwitchLanguage,
    NotifyMe,
    Quality,
    QualityDetails,
    RoundTrip,
    PathLabel,
    PacketLoss,
    Bitrate,
    Resolution,
    Close,
    Measuring,
}

pub fn ui(lang: Lang, key: Ui) -> &'static str {
    let (en, zh) = match key {
        Ui::Tagline => (
            "Private one-to-one video calls, straight from browser to browser.",
            "私密的一对一视频通话，浏览器直连浏览器。",
        ),
        Ui::YourName => ("Your name", "你的名字"),
        Ui::NamePlaceholder => ("e.g. alice", "例如 小明"),
        Ui::NameHint => (
            "Letters, digits, “_”, “-” or “.”, up to 32 characters.",
            "字母、数字、“_”、“-” 或 “.”，最多 32 个字符。",
        ),
        Ui::Continue => ("Continue", "继续"),
        Ui::Install => ("Install Duet on this device", "把 Duet 安装到此设备"),
        Ui::IosInstallHint => (
            "To install Duet, tap Share, then “Add to Home Screen”.",
            "安装 Duet：点“分享”，再点“添加到主屏幕”。",
        ),
        Ui::BadNameTitle => ("That name won't work", "这个名字不能用"),
        Ui::ChooseName => ("Choose a name", "选一个名字"),
        Ui::ChooseAnotherName => ("Choose another name", "换一个名字"),
        Ui::NotFound => ("Page not found", "找不到这个页面"),
        Ui::OpenDuet => ("Open Duet", "打开 Duet"),
        Ui::Offline => (
            "You are offline. Calls need a connection; Duet reconnects by itself.",
            "你已离线。通话需要网络；恢复后 Duet 会自动重连。",
        ),
        Ui::Video => ("Video", "视频"),
        Ui::Dismiss => ("Dismiss", "关闭"),
        Ui::Cancel => ("Cancel", "取消"),
        Ui::HangUp => ("Hang up", "挂断"),
        Ui::CallControls => ("Call controls", "通话控制"),
        Ui::MuteMic => ("Mute microphone", "关闭麦克风"),
        Ui::UnmuteMic => ("Unmute microphone", "打开麦克风"),
        Ui::CameraOff => ("Turn camera off", "关闭摄像头"),
        Ui::CameraOn => ("Turn camera on", "打开摄像头"),
        Ui::SwitchCamera => ("Switch camera", "切换摄像头"),
        Ui::FullScreen => ("Full screen", "全屏"),
        Ui::SwapVideos => (
            "Swap videos (arrow keys move the small one)",
            "交换大小画面（方向键移动小画面）",
        ),
        Ui::FriendsName => ("Friend's name", "好友的名字"),
        Ui::FriendPlaceholder => ("e.g. bob", "例如 小红"),
        Ui::Call => ("Call", "呼叫"),
        Ui::OnlineNow => ("Online now", "在线的人"),
        Ui::NobodyOnline => (
            "Nobody else is online yet. Share your link:",
            "还没有其他人在线。把你的链接发给好友：",
        ),
        Ui::YourCallLink => ("Your call link", "你的通话链接"),
        Ui::IncomingCall => ("Incoming video call", "视频来电"),
        Ui::MissedCall => ("Missed call", "未接来电"),
        Ui::Decline => ("Decline", "拒绝"),
        Ui::Accept => ("Accept", "接听"),
        Ui::SwitchLanguage => ("Switch the language to Chinese", "把界面语言切换为英文"),
        Ui::NotifyMe => ("Notify me of incoming calls", "有来电时通知我"),
        Ui::Quality => ("Connection quality", "连接质量"),
        Ui::QualityDetails => ("Connection details", "连接详情"),
        Ui::RoundTrip => ("Round trip", "往返延迟"),
        Ui::PathLabel => ("Path", "连接方式"),
        Ui::PacketLoss => ("Packet loss", "丢包率"),
        Ui::Bitrate => ("Incoming bitrate", "接收码率"),
        Ui::Resolution => ("Incoming video", "接收画面"),
        Ui::Close => ("Close", "关闭"),
        Ui::Measuring => ("measuring…", "测量中…"),
    };
    pick(lang, en, zh)
}

/// The words of the chat, file sending and screen sharing (only the in-call chunk uses them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Talk {
    Chat,
    CloseChat,
    Message,
    MessagePlaceholder,
    Send,
    SendFile,
    CopyConversation,
    Copied,
    Receive,
    Save,
    Waiting,
    Sent,
    Received,
    Cancelled,
    Failed,
    ShareScreen,
    StopSharing,
}

pub fn talk(lang: Lang, key: Talk) -> &'static str {
    let (en, zh) = match key {
        Talk::Chat => ("Chat", "聊天"),
        Talk::CloseChat => ("Close chat", "关闭聊天"),
        Talk::Message => ("Message", "消息"),
        Talk::MessagePlaceholder => ("Type a message", "输入消息"),
        Talk::Send => ("Send", "发送"),
        Talk::SendFile => ("Send a photo or file", "发送照片或文件"),
        Talk::CopyConversation => ("Copy conversation", "复制聊天记录"),
        Talk::Copied => ("Copied", "已复制"),
        Talk::Receive => ("Receive", "接收"),
        Talk::Save => ("Save", "保存"),
        Talk::Waiting => ("Waiting for the other side…", "等待对方接收…"),
        Talk::Sent => ("Sent", "已发送"),
        Talk::Received => ("Received", "已接收"),
        Talk::Cancelled => ("Cancelled", "已取消"),
        Talk::Failed => ("Failed", "失败"),
        Talk::ShareScreen => ("Share screen", "共享屏幕"),
        Talk::StopSharing => ("Stop sharing", "停止共享"),
    };
    pick(lang, en, zh)
}

/// The chat button's name, with the unread count.
pub fn chat_button(lang: Lang, unread: u32) -> String {
    match unread {
        0 => talk(lang, Talk::Chat).to_owned(),
        n => pick(lang, format!("Chat, {n} unread"), format!("聊天，{n} 条未读")),
    }
}

/// What an empty chat says.
pub fn chat_intro(lang: Lang, peer: &str) -> String {
    pick(
        lang,
        format!("Messages and files go straight to {peer}, not through the server, and are gone when the call ends."),
        format!("消息和文件直接发给 {peer}，不经过服务器，通话结束后即消失。"),
    )
}

/// A note in the chat; `max_file`: the size cap in bytes.
pub fn chat_note(lang: Lang, peer: &str, note: &crate::chat::Note, max_file: u64) -> String {
    use crate::chat::Note;
    use crate::signal::frames::FrameError;
    match note {
        Note::TooLarge => {
            let max = crate::chat::size_text(max_file);
            pick(
                lang,
                format!("That file is too large to send (at most {max})."),
                format!("文件太大，无法发送（最多 {max}）。"),
            )
        }
        Note::Dropped(why) => {
            let (en, zh) = match why {
                FrameError::Malformed | FrameError::Unknown => ("it was not understood", "无法识别"),
                FrameError::Invalid => ("it was not expected", "不符合预期"),
                FrameError::TooLarge => ("it was too large", "内容过大"),
                FrameError::TooFast => ("too many arrived at once", "发送过快"),
            };
            pick(
                lang,
                format!("Something {peer} sent was dropped: {en}."),
                format!("{peer} 发来的内容已丢弃：{zh}。"),
            )
        }
    }
}

pub fn peer_sharing(lang: Lang, peer: &str) -> String {
    pick(
        lang,
        format!("{peer} is sharing their screen"),
        format!("{peer} 正在共享屏幕"),
    )
}

/// The words of a private server's door. Server only: the door page loads no WASM.
#[cfg(feature = "ssr")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Door {
    Title,
    Text,
    Code,
    Enter,
    Wrong,
    TooMany,
    BadInvite,
}

#[cfg(feature = "ssr")]
pub fn door(lang: Lang, key: Door) -> &'static str {
    let (en, zh) = match key {
        Door::Title => ("This Duet is private", "这是私人的 Duet"),
        Door::Text => (
            "Enter the access code you were given. This device will remember it.",
            "请输入你拿到的访问码。此设备会记住它。",
        ),
        Door::Code => ("Access code", "访问码"),
        Door::Enter => ("Enter", "进入"),
        Door::Wrong => ("That is not the code. Try again.", "访问码不对，请再试一次。"),
        Door::BadInvite => (
            "This invite link has expired or been used up. Ask for a new one, or enter the access code.",
            "这个邀请链接已过期或已用完。请要一个新的，或输入访问码。",
        ),
        Door::TooMany => (
            "Too many tries. Wait a minute, then try again.",
            "尝试次数太多。请等一分钟再试。",
        ),
    };
    pick(lang, en, zh)
}

fn pick<T>(lang: Lang, en: T, zh: T) -> T {
    match lang {
        Lang::En => en,
        Lang::Zh => zh,
    }
}

pub fn status(lang: Lang, s: &Status) -> String {
    match (lang, s) {
        (Lang::En, Status::Idle) => "Ready to call".into(),
        (Lang::Zh, Status::Idle) => "可以呼叫了".into(),
        (Lang::En, Status::Calling(p)) => format!("Calling {p}…"),
        (Lang::Zh, Status::Calling(p)) => format!("正在呼叫 {p}…"),
        (Lang::En, Status::Ringing(p)) => format!("{p} is calling you"),
        (Lang::Zh, Status::Ringing(p)) => format!("{p} 正在呼叫你"),
        (Lang::En, Status::Connecting(p)) => format!("Connecting to {p}…"),
        (Lang::Zh, Status::Connecting(p)) => format!("正在连接 {p}…"),
        // The timer is shown next to it (see `call_timer`), outside the live region: a screen
        // reader must not read the status out every second.
        (Lang::En, Status::InCall { peer, .. }) => format!("In call with {peer}"),
        (Lang::Zh, Status::InCall { peer, .. }) => format!("与 {peer} 通话中"),
        (Lang::En, Status::Reconnecting(p)) => format!("The network changed: reconnecting to {p}…"),
        (Lang::Zh, Status::Reconnecting(p)) => format!("网络有变化，正在重新连接 {p}…"),
        (_, Status::Ended { peer, reason }) => ended(lang, peer, reason),
    }
}

/// " · 12:34" after the status while in a call.
pub fn call_timer(s: &Status) -> Option<String> {
    match s {
        Status::InCall { seconds, .. } => Some(format!(" · {}", clock(*seconds))),
        _ => None,
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

fn ended(lang: Lang, peer: &str, reason: &EndReason) -> String {
    let zh = lang == Lang::Zh;
    match reason {
        EndReason::Declined if zh => format!("{peer} 拒绝了通话"),
        EndReason::Declined => format!("{peer} declined the call"),
        EndReason::YouDeclined if zh => format!("你拒绝了 {peer} 的来电"),
        EndReason::YouDeclined => format!("You declined {peer}'s call"),
        EndReason::Unavailable { code, text } => match code {
            Some(Code::Offline | Code::NotOnline) if zh => format!("{peer} 不在线"),
            Some(Code::Offline | Code::NotOnline) => format!("{peer} is not online"),
            Some(Code::Busy) if zh => format!("{peer} 正在另一个通话中"),
            Some(Code::Busy) => format!("{peer} is busy in another call"),
            Some(Code::NoAnswer) if zh => format!("{peer} 没有接听"),
            Some(Code::NoAnswer) => format!("{peer} did not answer"),
            // A classic client's own words: shown as they are.
            _ => text.clone(),
        },
        EndReason::Cancelled if zh => format!("已取消呼叫 {peer}"),
        EndReason::Cancelled => format!("Call to {peer} cancelled"),
        EndReason::Missed if zh => format!("{peer} 的未接来电"),
        EndReason::Missed => format!("Missed call from {peer}"),
        EndReason::YouHungUp if zh => format!("与 {peer} 的通话已结束"),
        EndReason::YouHungUp => format!("Call with {peer} ended"),
        EndReason::PeerHungUp if zh => format!("{peer} 挂断了"),
        EndReason::PeerHungUp => format!("{peer} hung up"),
        EndReason::PeerDisconnected if zh => format!("{peer} 的网络断开，通话已结束"),
        EndReason::PeerDisconnected => format!("{peer} lost the connection; call ended"),
        EndReason::MediaFailed(raw) => media_error(lang, raw),
        EndReason::ConnectionFailed { needs_relay: true } if zh => format!(
            "无法与 {peer} 建立连接：这个网络需要中继服务器（TURN）。请服务器管理员配置 TURN。"
        ),
        EndReason::ConnectionFailed { needs_relay: true } => format!(
            "Could not connect to {peer}: this network needs a relay server (TURN). Ask the server's admin to set one up."
        ),
        EndReason::ConnectionFailed { .. } if zh => format!("无法与 {peer} 建立连接，通话已结束"),
        EndReason::ConnectionFailed { .. } => format!("Could not connect to {peer}; the call ended"),
        EndReason::CallLost if zh => format!("服务器已重启，与 {peer} 的通话已结束"),
        EndReason::CallLost => format!("The server restarted; the call with {peer} ended"),
        EndReason::NegotiationFailed(why) if zh => {
            format!("与 {peer} 的通话无法建立：浏览器不接受连接参数（{why}）")
        }
        EndReason::NegotiationFailed(why) => {
            format!("The call with {peer} could not be set up: the browser refused its connection details ({why})")
        }
    }
}

/// Turns a getUserMedia failure (`"NotAllowedError: ..."`) into advice.
pub fn media_error(lang: Lang, raw: &str) -> String {
    let name = raw.split(':').next().unwrap_or(raw);
    let (en, zh) = match name {
        "NotAllowedError" | "SecurityError" => (
            "Camera and microphone access was denied. Allow it in the browser's site settings and try again.",
            "摄像头和麦克风的权限被拒绝。请在浏览器的网站设置中允许后重试。",
        ),
        "NotFoundError" | "OverconstrainedError" => {
            ("No camera or microphone was found.", "没有找到摄像头或麦克风。")
        }
        "NotReadableError" | "AbortError" => (
            "The camera or microphone is in use by another app.",
            "摄像头或麦克风正被其他应用占用。",
        ),
        "Insecure" => (
            "The camera needs a secure page: open Duet over https (or on localhost).",
            "摄像头需要安全的页面：请通过 https（或 localhost）打开 Duet。",
        ),
        _ => {
            return pick(
                lang,
                format!("Could not start camera and microphone ({raw})."),
                format!("无法启动摄像头和麦克风（{raw}）。"),
            )
        }
    };
    pick(lang, en, zh).into()
}

/// The signaling link, as the dot in the top bar explains it.
pub fn link(lang: Lang, l: &Link) -> &'static str {
    match l {
        Link::Connecting => pick(lang, "Connecting…", "连接中…"),
        Link::Online => pick(lang, "Online", "在线"),
        Link::Reconnecting => pick(lang, "Reconnecting…", "正在重新连接…"),
        Link::Refused(code) => refused(lang, *code),
    }
}

/// Why the server will not let this page use its name.
pub fn refused(lang: Lang, code: Code) -> &'static str {
    match code {
        Code::Replaced => pick(
            lang,
            "Duet was opened with this name in another tab or window, so this one has stopped.",
            "这个名字已在另一个标签页或窗口中打开，此页面已停止。",
        ),
        _ => pick(
            lang,
            "This name is in use in another browser. Choose another name.",
            "这个名字正在另一个浏览器中使用。请换一个名字。",
        ),
    }
}

pub fn notice(lang: Lang, n: &Notice) -> String {
    match n {
        Notice::BadName { name, error } => pick(
            lang,
            format!("Cannot call “{name}”: {}.", name_error(lang, error)),
            format!("无法呼叫“{name}”：{}。", name_error(lang, error)),
        ),
        Notice::CallSelf => pick(lang, "You cannot call yourself.", "不能呼叫自己。").into(),
        Notice::CameraFailed(why) => pick(
            lang,
            format!("The camera could not be turned on ({why})."),
            format!("无法打开摄像头（{why}）。"),
        ),
        Notice::MicFailed(why) => pick(
            lang,
            format!("The microphone could not be turned on ({why}); you are muted."),
            format!("无法打开麦克风（{why}），你已静音。"),
        ),
        Notice::ScreenFailed(why) => pick(
            lang,
            format!("The screen could not be shared ({why})."),
            format!("无法共享屏幕（{why}）。"),
        ),
        Notice::FromPeer { from, text } => format!("{from}: {text}"),
        Notice::Server { code, text } => {
            server_notice(lang, *code).map_or_else(|| text.clone(), str::to_owned)
        }
    }
}

/// Our words for the server's notices the user can meet; others show the server's text.
fn server_notice(lang: Lang, code: Option<Code>) -> Option<&'static str> {
    Some(match code? {
        Code::RateLimited => pick(lang, "Too many messages; slow down.", "消息太多了，请慢一点。"),
        Code::TooLarge => pick(
            lang,
            "A message was too large to send.",
            "有一条消息太大，无法发送。",
        ),
        Code::TooManyConnections => pick(
            lang,
            "The server is full right now; Duet keeps trying.",
            "服务器当前已满，Duet 会继续尝试。",
        ),
        Code::ServerShutdown => pick(
            lang,
            "The server is restarting; Duet reconnects by itself.",
            "服务器正在重启，Duet 会自动重连。",
        ),
        Code::Unavailable => pick(
            lang,
            "The server is busy for a moment; Duet keeps trying.",
            "服务器暂时无法处理，Duet 会继续尝试。",
        ),
        Code::PeerDisconnected => pick(lang, "The other side lost the connection.", "对方的网络断开了。"),
        _ => return None,
    })
}

/// What is wrong with a name, to follow "Cannot call …:" or stand alone.
pub fn name_error(lang: Lang, e: &NameError) -> String {
    match (lang, e) {
        (Lang::En, NameError::Empty) => "a name needs at least one character".into(),
        (Lang::Zh, NameError::Empty) => "名字至少要有一个字符".into(),
        (Lang::En, NameError::TooLong) => format!("a name has at most {MAX_NAME_CHARS} characters"),
        (Lang::Zh, NameError::TooLong) => format!("名字最多 {MAX_NAME_CHARS} 个字符"),
        (Lang::En, NameError::BadChar(c)) => {
            format!("“{c}” is not allowed in a name: use letters, digits, “_”, “-” or “.”")
        }
        (Lang::Zh, NameError::BadChar(c)) => {
            format!("名字里不能有“{c}”：请用字母、数字、“_”、“-” 或 “.”")
        }
    }
}

/// The name error as a sentence of its own (the join form).
pub fn name_error_sentence(lang: Lang, e: &NameError) -> String {
    let words = name_error(lang, e);
    match lang {
        Lang::Zh => format!("{words}。"),
        Lang::En => {
            let mut chars = words.chars();
            let first = chars.next().map(|c| c.to_uppercase().collect::<String>());
            format!("{}{}.", first.unwrap_or_default(), chars.as_str())
        }
    }
}

/// The bad-name page: “name”: what is wrong.
pub fn bad_name(lang: Lang, name: &str, e: &NameError) -> String {
    pick(
        lang,
        format!("“{name}”: {}.", name_error(lang, e)),
        format!("“{name}”：{}。", name_error(lang, e)),
    )
}

pub fn join_heading(lang: Lang, peer: Option<&str>) -> String {
    match peer {
        Some(p) => pick(lang, format!("Call {p} on Duet"), format!("在 Duet 上呼叫 {p}")),
        None => "Duet".into(),
    }
}

/// The call screen's heading (read by screen readers only).
pub fn screen_title(lang: Lang, me: &str) -> String {
    pick(
        lang,
        format!("Duet: calls as {me}"),
        format!("Duet：以 {me} 的身份通话"),
    )
}

pub fn peer_muted(lang: Lang, peer: &str) -> String {
    pick(lang, format!("{peer} is muted"), format!("{peer} 已静音"))
}

pub fn peer_camera_off(lang: Lang, peer: &str) -> String {
    pick(
        lang,
        format!("{peer}'s camera is off"),
        format!("{peer} 关闭了摄像头"),
    )
}

/// The system notification of an incoming or missed call: title and body.
pub fn notification(lang: Lang, alert: &Alert) -> (String, String) {
    match alert {
        Alert::Incoming(peer) => (
            ui(lang, Ui::IncomingCall).to_owned(),
            status(lang, &Status::Ringing(peer.clone())),
        ),
        Alert::Missed(peer) => (
            ui(lang, Ui::MissedCall).to_owned(),
            ended(lang, peer, &EndReason::Missed),
        ),
    }
}

pub fn grade(lang: Lang, g: Grade) -> &'static str {
    match g {
        Grade::Excellent => pick(lang, "excellent", "极好"),
        Grade::Good => pick(lang, "good", "良好"),
        Grade::Fair => pick(lang, "fair", "一般"),
        Grade::Poor => pick(lang, "poor", "差"),
    }
}

/// The bars' accessible name: "Connection quality: good".
pub fn quality_label(lang: Lang, q: Option<&Quality>) -> String {
    let grade = q.map_or(ui(lang, Ui::Measuring), |q| self::grade(lang, q.grade()));
    pick(
        lang,
        format!("{}: {grade}", ui(lang, Ui::Quality)),
        format!("{}：{grade}", ui(lang, Ui::Quality)),
    )
}

/// How the media travels, for the details view.
fn path(lang: Lang, p: Path) -> &'static str {
    match p {
        Path::Direct => pick(lang, "direct", "直连"),
        Path::Stun => pick(lang, "via STUN (through the NAT)", "经 STUN 穿透 NAT"),
        Path::Relay => pick(lang, "via relay (TURN)", "经中继服务器（TURN）"),
    }
}

/// The details view's rows: label, value ("–" while unknown).
pub fn quality_rows(lang: Lang, q: &Quality) -> [(&'static str, String); 5] {
    let unknown = || "–".to_owned();
    [
        (
            ui(lang, Ui::PathLabel),
            q.path.map_or_else(unknown, |p| path(lang, p).to_owned()),
        ),
        (
            ui(lang, Ui::RoundTrip),
            q.rtt_ms.map_or_else(unknown, |v| {
                // Loopback and LAN calls measure well under a millisecond.
                if v < 1.0 {
                    "< 1 ms".to_owned()
                } else {
                    format!("{} ms", whole(v))
                }
            }),
        ),
        (
            ui(lang, Ui::PacketLoss),
            q.loss_pct.map_or_else(unknown, |v| format!("{} %", tenths(v))),
        ),
        (
            ui(lang, Ui::Bitrate),
            q.kbps.map_or_else(unknown, |v| format!("{} kbit/s", whole(v))),
        ),
        (
            ui(lang, Ui::Resolution),
            q.resolution.map_or_else(unknown, |(w, h)| match q.fps {
                Some(fps) => format!("{w}×{h} · {} fps", whole(fps)),
                None => format!("{w}×{h}"),
            }),
        ),
    ]
}

/// Rounded to a whole number. Integer formatting: `{:.0}` on floats pulls ~7 KiB of exact
/// float formatting into the WASM.
fn whole(v: f64) -> i64 {
    v.round() as i64
}

/// One decimal, e.g. `2.5` (see [`whole`]).
fn tenths(v: f64) -> String {
    let t = (v * 10.0).round() as i64;
    let sign = if t < 0 { "-" } else { "" };
    format!("{sign}{}.{}", (t / 10).abs(), (t % 10).abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fixed_string_exists_in_both_languages_and_differs() {
        // A missing translation would show up as an identical or empty string.
        let keys = [
            Ui::Tagline,
            Ui::YourName,
            Ui::Continue,
            Ui::Offline,
            Ui::HangUp,
            Ui::MuteMic,
            Ui::Accept,
            Ui::Decline,
            Ui::OnlineNow,
            Ui::NotifyMe,
            Ui::Quality,
            Ui::SwitchLanguage,
        ];
        for key in keys {
            let (en, zh) = (ui(Lang::En, key), ui(Lang::Zh, key));
            assert!(!en.is_empty() && !zh.is_empty(), "{key:?}");
            assert_ne!(en, zh, "{key:?}");
        }
    }

    #[test]
    fn parameterised_strings_carry_the_values() {
        let s = Status::InCall {
            peer: "张伟".into(),
            seconds: 3725,
        };
        assert_eq!(status(Lang::En, &s), "In call with 张伟");
        assert_eq!(status(Lang::Zh, &s), "与 张伟 通话中");
        assert_eq!(call_timer(&s).as_deref(), Some(" · 1:02:05"));
        assert_eq!(call_timer(&Status::Idle), None);
        let busy = EndReason::Unavailable {
            code: Some(Code::Busy),
            text: "bob is busy".into(),
        };
        assert_eq!(ended(Lang::Zh, "bob", &busy), "bob 正在另一个通话中");
        let classic = EndReason::Unavailable {
            code: None,
            text: "bob is busy".into(),
        };
        assert_eq!(ended(Lang::Zh, "bob", &classic), "bob is busy");
        let bad = Notice::BadName {
            name: "a b".into(),
            error: NameError::BadChar(' '),
        };
        assert!(notice(Lang::En, &bad).starts_with("Cannot call “a b”: “ ” is not allowed"));
        assert!(notice(Lang::Zh, &bad).starts_with("无法呼叫“a b”"));
    }

    #[test]
    fn server_notices_use_our_words_or_the_servers() {
        let known = Notice::Server {
            code: Some(Code::RateLimited),
            text: "too many messages; slow down".into(),
        };
        assert_eq!(notice(Lang::Zh, &known), "消息太多了，请慢一点。");
        let unknown = Notice::Server {
            code: Some(Code::BadMessage),
            text: "missing \"type\"".into(),
        };
        assert_eq!(notice(Lang::Zh, &unknown), "missing \"type\"");
    }

    #[test]
    fn quality_figures_are_rounded_for_reading() {
        let q = Quality {
            rtt_ms: Some(0.4),
            loss_pct: Some(2.46),
            kbps: Some(1234.5),
            resolution: Some((640, 480)),
            fps: Some(29.6),
            path: Some(Path::Relay),
        };
        let rows = quality_rows(Lang::En, &q).map(|(_, v)| v);
        assert_eq!(
            rows,
            [
                "via relay (TURN)",
                "< 1 ms",
                "2.5 %",
                "1235 kbit/s",
                "640×480 · 30 fps"
            ]
        );
        assert_eq!(tenths(0.04), "0.0");
        assert_eq!(tenths(-0.35), "-0.4");
        let unknown = quality_rows(Lang::Zh, &Quality::default()).map(|(_, v)| v);
        assert_eq!(unknown, ["–", "–", "–", "–", "–"]);
    }

    #[test]
    fn media_errors_become_advice() {
        assert!(media_error(Lang::En, "NotAllowedError: Permission denied").contains("denied"));
        assert!(media_error(Lang::Zh, "NotFoundError").contains("没有找到"));
        assert!(media_error(Lang::En, "WeirdError: x").contains("WeirdError"));
    }
}
