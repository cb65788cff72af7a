//! A first visit's page carries the app's WASM inside it: a phone on a slow link gets the page
//! and the app in one response instead of waiting a second round trip for `duet.<hash>.wasm`
//! (on the slow-4G profile of docs/perf.md, ~560 ms of a ~2.4 s start).
//!
//! How, without growing the download: such a page is sent in windows-1252, where every byte is a
//! character, so the WASM's bytes go into `<script type="application/octet-stream">` elements as
//! they are; only CR (which the parser rewrites) and, where what follows would matter, `<` and
//! the escape byte are escaped — CR swapped with the module's rarest value first, so ~40 of
//! 430,000 bytes. The WASM part is brotli-compressed once, at startup, as a stream that can be
//! spliced after another; each page is compressed on its own and the streams spliced, so the
//! page costs what the `.wasm.br` file did. A setup script in the page's head decodes each
//! 64 KiB piece once the parser is past it and feeds it to `WebAssembly.compileStreaming`, so
//! the module is compiled by the time the page has arrived; it keeps the bytes in Cache Storage
//! under the file's URL, where the service worker and later visits find them.
//!
//! A visit whose browser has this build's WASM (cookie [`COOKIE`], set with the file or by the
//! decoder) gets the plain UTF-8 page. Characters windows-1252 lacks go as references (`&#20013;`);
//! a page with such a character inside a script is sent plain.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;
use std::sync::OnceLock;

/// Names the WASM build a browser has cached: its value is the file's hash.
pub const COOKIE: &str = "duet-pkg";

/// Where the decoder keeps the bytes; the service worker's install looks there first.
const CACHE: &str = "duet-inline";

/// A larger module (a debug build) is not worth the seconds of brotli, nor the page.
const MAX_WASM: usize = 1 << 20;

/// WASM bytes per element: the page decodes each as it arrives and feeds it to a streaming
/// compilation, so little is left to do when the last one is in.
const PIECE: usize = 64 * 1024;

const ESCAPE: u8 = 0x01;
/// The byte values a `<script>` element cannot always carry as they are, escaped as [`ESCAPE`]
/// then `a` + their index here: CR (the parser makes it LF); the escape byte itself, but only
/// where `a`–`c` follow it; `<`, but only where `/` or `!` follow it (it could close the element
/// or start an escaped section). NUL goes as it is: the parser makes it U+FFFD, which
/// windows-1252 has no byte for, so the decoder knows.
const ESCAPED: [u8; 3] = [0x0d, ESCAPE, b'<'];
/// CR is swapped with the rarest value (its partner), so that it seldom occurs (each escape
/// costs the compressor ~4 bytes).
const SWAPPED: u8 = 0x0d;

/// The WASM as a page's tail, ready to splice.
pub struct Payload {
    /// The file's fingerprinted URL and hash, as pages name it.
    wasm_url: String,
    hash: String,
    /// The value swapped with [`SWAPPED`].
    partner: u8,
    /// `<script type="application/octet-stream" id="duet-wasm-0">…</script>` and the next
    /// pieces, then an empty `duet-wasm-end`; catable brotli.
    brotli: Vec<u8>,
}

static PAYLOAD: OnceLock<Option<Payload>> = OnceLock::new();

/// Prepares the payload of `build` in the background (about a second of brotli); pages go
/// plain until it is ready. Once per process, in a release build.
pub fn prepare(build: crate::assets::Build) {
    // Not in a debug server: its unoptimised brotli takes tens of seconds of a core (the test
    // suites start many servers at once), and a debug build's WASM is too big anyway.
    if cfg!(debug_assertions) {
        return;
    }
    if PAYLOAD.get().is_none() {
        std::thread::spawn(move || prepare_now(&build));
    }
}

/// [`prepare`], in the calling thread.
pub fn prepare_now(build: &crate::assets::Build) {
    PAYLOAD.get_or_init(|| {
        let wasm = std::fs::read(build.dir.join(format!("{}.wasm", build.name))).ok()?;
        let wasm_url = build.url("wasm");
        let hash = wasm_url.rsplit('.').nth(1)?.to_owned();
        if wasm.len() > MAX_WASM || hash.len() != 16 {
            return None;
        }
        let partner = rarest(&wasm);
        let brotli = compress(&pieces(&wasm, partner), BINARY)?;
        tracing::info!(wasm = wasm.len(), brotli = brotli.len(), %wasm_url, "first visits carry the WASM");
        Some(Payload {
            wasm_url,
            hash,
            partner,
            brotli,
        })
    });
}

/// The WASM as the page's elements: its pieces, encoded, then the empty end marker.
fn pieces(wasm: &[u8], partner: u8) -> Vec<u8> {
    let mut body = Vec::with_capacity(wasm.len() + 4096);
    for (k, piece) in wasm.chunks(PIECE).enumerate() {
        body.extend_from_slice(piece_tag(k).as_bytes());
        body.extend(encode(piece, partner));
        body.extend_from_slice(b"</script>");
    }
    body.extend_from_slice(END_TAG.as_bytes());
    body
}

fn piece_tag(k: usize) -> String {
    format!("<script type=\"application/octet-stream\" id=\"duet-wasm-{k}\">")
}

const END_TAG: &str = "<script type=\"application/octet-stream\" id=\"duet-wasm-end\"></script>";

/// The value least used in `wasm` (other than those with a meaning in the encoding).
fn rarest(wasm: &[u8]) -> u8 {
    let mut count = [0usize; 256];
    wasm.iter().for_each(|b| count[*b as usize] += 1);
    let mut values: Vec<u8> = (0..=255u8)
        .filter(|b| !ESCAPED.contains(b) && ![0, b'/', b'!', b'a', b'b', b'c'].contains(b))
        .collect();
    values.sort_by_key(|b| count[*b as usize]);
    values[0]
}

/// [`SWAPPED`] and its `partner` swapped; any other value as it is.
fn swap(b: u8, partner: u8) -> u8 {
    match b {
        SWAPPED => partner,
        b if b == partner => SWAPPED,
        b => b,
    }
}

fn encode(wasm: &[u8], partner: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(wasm.len() + 1024);
    for (i, b) in wasm.iter().enumerate() {
        let b = swap(*b, partner);
        let next = wasm.get(i + 1).map(|n| swap(*n, partner));
        let escape = match b {
            0x0d => true,
            ESCAPE => matches!(next, Some(b'a'..=b'c')),
            b'<' => matches!(next, Some(b'/' | b'!')),
            _ => false,
        };
        match ESCAPED.iter().position(|u| *u == b).filter(|_| escape) {
            Some(i) => out.extend_from_slice(&[ESCAPE, b'a' + i as u8]),
            None => out.push(b),
        }
    }
    out
}

use brotli::enc::backward_references::BrotliEncoderMode;

/// The encoder's mode for the WASM: its "font" tuning (meant for WOFF2's binary tables) packs
/// the module ~1.1 % (1.6 KB) smaller than the generic one; it is only a hint to the encoder,
/// the stream is plain brotli.
const BINARY: BrotliEncoderMode = BrotliEncoderMode::BROTLI_MODE_FONT;
const TEXT: BrotliEncoderMode = BrotliEncoderMode::BROTLI_MODE_GENERIC;

/// Brotli at its best, as a stream that can follow another ([`splice`]).
fn compress(data: &[u8], mode: BrotliEncoderMode) -> Option<Vec<u8>> {
    let params = brotli::enc::BrotliEncoderParams {
        mode,
        quality: 11,
        lgwin: 22,
        catable: true,
        appendable: true,
        // A catable stream begins byte aligned: this metadata block does that.
        magic_number: true,
        ..Default::default()
    };
    let mut out = Vec::new();
    brotli::BrotliCompress(&mut &data[..], &mut out, &params).ok()?;
    Some(out)
}

/// One brotli stream that decodes to what `parts` decode to, one after the other.
fn splice(parts: &[&[u8]]) -> Option<Vec<u8>> {
    use brotli::concat::{BroCatli, BroCatliResult};
    let mut cat = BroCatli::new_with_window_size(22);
    let mut out = vec![0u8; parts.iter().map(|p| p.len()).sum::<usize>() + 16];
    let mut at = 0;
    for part in parts {
        cat.new_brotli_file();
        match cat.stream(part, &mut 0, &mut out, &mut at) {
            BroCatliResult::Success | BroCatliResult::NeedsMoreInput => {}
            _ => return None,
        }
    }
    match cat.finish(&mut out, &mut at) {
        BroCatliResult::Success => {
            out.truncate(at);
            Some(out)
        }
        _ => None,
    }
}

/// windows-1252's characters for bytes 0x80–0x9F (0: the byte is U+0080 + n, a control).
const CP1252: [u16; 32] = [
    0x20AC, 0, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0,
    0x017D, 0, 0, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A,
    0x0153, 0, 0x017E, 0x0178,
];

/// `page` in windows-1252, a character it lacks as a reference; `None` if one of those is in a
/// script (references mean nothing there) or is a C1 control (a reference to one means a
/// windows-1252 character instead).
fn transcode(page: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(page.len() + 64);
    let mut in_script = false;
    for (i, c) in page.char_indices() {
        if c == '<' {
            let rest = &page.as_bytes()[i..];
            if rest.starts_with(b"<script") {
                in_script = true;
            } else if rest.starts_with(b"</script") {
                in_script = false;
            }
        }
        let code = c as u32;
        if code < 0x80 || (0xA0..=0xFF).contains(&code) {
            out.push(code as u8);
        } else if let Some(n) = CP1252.iter().position(|w| u32::from(*w) == code) {
            out.push(0x80 + n as u8);
        } else if in_script || code < 0xA0 {
            return None;
        } else {
            out.extend_from_slice(format!("&#{code};").as_bytes());
        }
    }
    Some(out)
}

/// The script that takes the WASM in as the page arrives: each piece, once the parser has gone
/// past it (a `MutationObserver` follows the parser), is decoded and fed to
/// `WebAssembly.compileStreaming`; `window.duetWasm` is the compiled module's promise, which the
/// hydration script hands to the glue. At the end the bytes go to Cache Storage under the file's
/// URL, and the cookie says so. Written small (it is part of every first download):
/// `W` windows-1252's characters for 0x80–0x9F → their bytes (the browser's decoder knows them)
/// and U+FFFD → NUL,
/// `P` the byte swap undone, `t` decodes one piece, `d` takes the pieces the parser has passed
/// (all of them at `DOMContentLoaded`) and ends the stream after the last.
const SETUP: &str = "(function(){var u=@URL@,W={65533:0},P=new Uint8Array(256),U=[@ESCAPED@],\
B=[],C,k=0,z=0,i,T=new TextDecoder('windows-1252').decode(new Uint8Array(32).map(function(_,i){return 128+i}));\
for(i=0;i<32;i++)W[T.charCodeAt(i)]=128+i;for(i=0;i<256;i++)P[i]=i;P[@SWAPPED@]=@PARTNER@;P[@PARTNER@]=@SWAPPED@;\
function t(e){var s=e.textContent,n=s.length,o=new Uint8Array(n),j=0,c,i,x;\
for(i=0;i<n;i++){c=s.charCodeAt(i);if(c>255)c=W[c];else if(c===@ESCAPE@&&(x=s.charCodeAt(i+1)-97)>=0&&x<3){c=U[x];i++}o[j++]=P[c]}\
e.remove();o=o.slice(0,j);B.push(o);C.enqueue(o)}\
function g(x){return document.getElementById('duet-wasm-'+x)}\
function d(a){if(z)return;var e;while((e=g(k))&&(a||e.nextSibling)){t(e);k++}if(!a&&!g('end'))return;\
z=1;m.disconnect();C.close();if(e=g('end'))e.remove();\
if(window.caches)caches.open('@CACHE@').then(function(c){return c.put(u,new Response(new Blob(B),\
{headers:{'content-type':'application/wasm'}}))}).then(function(){document.cookie=@COOKIE@},function(){})}\
var r=new Response(new ReadableStream({start:function(c){C=c}}),{headers:{'content-type':'application/wasm'}});\
window.duetWasm=WebAssembly.compileStreaming?WebAssembly.compileStreaming(r):\
r.arrayBuffer().then(function(b){return WebAssembly.compile(b)});\
var m=new MutationObserver(function(){d(0)});m.observe(document,{childList:!0,subtree:!0});\
document.addEventListener('DOMContentLoaded',function(){d(1)})})()";

/// [`SETUP`] for `p`.
fn setup(p: &Payload) -> String {
    SETUP
        .replace("@URL@", &format!("{:?}", p.wasm_url))
        .replace("@ESCAPED@", &ESCAPED.map(|u| u.to_string()).join(","))
        .replace("@SWAPPED@", &SWAPPED.to_string())
        .replace("@PARTNER@", &p.partner.to_string())
        .replace("@ESCAPE@", &ESCAPE.to_string())
        .replace("@CACHE@", CACHE)
        .replace("@COOKIE@", &format!("{:?}", cookie_value(&p.hash)))
}

/// The cookie that says this build's WASM is cached, as `document.cookie` or `Set-Cookie` takes it.
pub fn cookie_value(hash: &str) -> String {
    format!("{COOKIE}={hash}; Path=/; Max-Age=31536000; SameSite=Lax")
}

/// Whether the request says its browser has the WASM of hash `hash`.
fn has_cached(headers: &HeaderMap, hash: &str) -> bool {
    crate::server::cookie_values(headers, COOKIE).any(|v| v == hash)
}

/// `page` (a rendered page), as one that carries the WASM if this is a first visit from a
/// browser that takes brotli; else as it is.
pub async fn page(headers: &HeaderMap, page: Response) -> Response {
    let Some(Some(payload)) = PAYLOAD.get() else {
        return page;
    };
    let brotli = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("br")));
    if !brotli || !page.status().is_success() || has_cached(headers, &payload.hash) {
        return page;
    }
    let (mut parts, body) = page.into_parts();
    let bytes = match axum::body::to_bytes(body, 1 << 20).await {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::warn!(error = %e, "page body not read");
            return Response::from_parts(parts, Body::empty());
        }
    };
    match carrying(&bytes, payload) {
        Some(body) => {
            let h = &mut parts.headers;
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=windows-1252"),
            );
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("br"));
            h.insert(header::VARY, HeaderValue::from_static("accept-encoding, cookie"));
            h.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(body))
        }
        None => Response::from_parts(parts, Body::from(bytes)),
    }
}

/// What the page's hydration script hands the glue: the module the setup script compiles from
/// the page when the page carries it (`window.duetWasm`), else the file's URL.
pub fn module_or_path(wasm_url: &str) -> String {
    format!("module_or_path: window.duetWasm || {wasm_url:?}")
}

/// The page `html` with the WASM in it, compressed; `None` if it cannot carry it (not a page
/// that loads this build, or a script the transcoding would break).
fn carrying(html: &[u8], payload: &Payload) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(html).ok()?;
    let at = text.find(&module_or_path(&payload.wasm_url))?;
    // The WASM's preload goes: the page has it.
    let preload = text.find(&format!("<link rel=\"preload\" href=\"{}\"", payload.wasm_url))?;
    let preload_end = preload + text[preload..].find('>')? + 1;
    let charset = "<meta charset=\"utf-8\">";
    let meta = text.find(charset)?;
    if !(meta < preload && preload < at) {
        return None;
    }
    // The hydration script's nonce is the page's: the setup script carries it too.
    let nonce_at = text[..at].rfind(" nonce=\"")? + 8;
    let nonce = &text[nonce_at..nonce_at + text[nonce_at..].find('"')?];
    let page = [
        &text[..meta],
        "<meta charset=\"windows-1252\">",
        &text[meta + charset.len()..preload],
        &format!("<script nonce=\"{nonce}\">{}</script>", setup(payload)),
        &text[preload_end..],
    ]
    .concat();
    // Before the scripts Leptos puts after the page: a script after the stylesheet waits for it,
    // and the parser with it; the pieces must not.
    let end = page.rfind("</body>")?;
    splice(&[
        &compress(&transcode(&page[..end])?, TEXT)?,
        &payload.brotli,
        &compress(&transcode(&page[end..])?, TEXT)?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the page's decoder does, in Rust (a NUL stands for the parser's U+FFFD).
    fn decode(text: &[u8], partner: u8) -> Vec<u8> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < text.len() {
            let mut b = text[i];
            if let (ESCAPE, Some(x @ b'a'..=b'c')) = (b, text.get(i + 1)) {
                b = ESCAPED[(x - b'a') as usize];
                i += 1;
            }
            out.push(swap(b, partner));
            i += 1;
        }
        out
    }

    #[test]
    fn every_byte_goes_through_and_none_a_script_cannot_carry() {
        let wasm: Vec<u8> = (0..20_000u32)
            .map(|i| (i * 31 % 256) as u8)
            .chain(*b"\r\x01<</script><!-- <a\x01a\x01\x01b\x01")
            .collect();
        let partner = rarest(&wasm);
        let text = encode(&wasm, partner);
        for (i, b) in text.iter().enumerate() {
            assert_ne!(*b, b'\r', "byte {i}");
            if *b == b'<' {
                assert!(!matches!(text.get(i + 1), Some(b'/' | b'!')), "byte {i}");
            }
        }
        assert_eq!(decode(&text, partner), wasm);
    }

    #[test]
    fn the_rarest_values_are_swapped_in() {
        let mut wasm = vec![0u8; 1000];
        wasm.extend(0..=255u8);
        wasm.extend([7, 7, 9, 13, 13, 1, 1]);
        let partner = rarest(&wasm);
        assert!(![0, 1, 7, 9, 13, b'<', b'/', b'!'].contains(&partner));
        // Only the value swapped in for CR costs a byte more (no `a`–`c` after an escape byte).
        assert_eq!(encode(&wasm, partner).len(), wasm.len() + 1);
    }

    #[test]
    fn windows_1252_with_references_outside_scripts() {
        assert_eq!(
            transcode("<p title=\"Connecting…\">中文 é</p>").unwrap(),
            b"<p title=\"Connecting\x85\">&#20013;&#25991; \xe9</p>"
        );
        assert_eq!(
            transcode("<script>var a = '…';</script>").unwrap(),
            b"<script>var a = '\x85';</script>"
        );
        assert_eq!(transcode("<script>var a = '中';</script>"), None);
        assert_eq!(transcode("<p>\u{85}</p>"), None);
    }

    #[test]
    fn spliced_streams_decode_to_both() {
        let a = b"<!DOCTYPE html><html><body>hello hello</body></html>".repeat(20);
        let b: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let joined = splice(&[&compress(&a, TEXT).unwrap(), &compress(&b, BINARY).unwrap()]).unwrap();
        let mut out = Vec::new();
        brotli::BrotliDecompress(&mut &joined[..], &mut out).unwrap();
        assert_eq!(out, [a, b].concat());
    }

    #[test]
    fn a_page_carries_the_wasm_in_pieces_and_loads_it_from_them() {
        let wasm: Vec<u8> = (0..150_000u32)
            .map(|i| (i * 7919 % 251) as u8)
            .chain(*b"\r\x01a</")
            .collect();
        let partner = rarest(&wasm);
        let body = pieces(&wasm, partner);
        let payload = Payload {
            wasm_url: "/pkg/duet.0123456789abcdef.wasm".into(),
            hash: "0123456789abcdef".into(),
            partner,
            brotli: compress(&body, BINARY).unwrap(),
        };
        let page = "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><script nonce=\"N1\">early()</script>\
            <link rel=\"preload\" href=\"/pkg/duet.0123456789abcdef.wasm\" as=\"fetch\">\
            <script type=\"module\" nonce=\"N1\">m.default({ module_or_path: window.duetWasm || \"/pkg/duet.0123456789abcdef.wasm\" })</script>\
            </head><body><p title=\"中文\">Connecting…</p></body></html><script nonce=\"N1\">x=[];</script>";
        let mut html = Vec::new();
        brotli::BrotliDecompress(&mut &carrying(page.as_bytes(), &payload).unwrap()[..], &mut html).unwrap();
        let text: String = html.iter().map(|b| *b as char).collect();
        assert!(text.contains("<meta charset=\"windows-1252\">"));
        assert!(!text.contains("rel=\"preload\""), "the WASM is not fetched");
        assert!(text.contains("<script nonce=\"N1\">(function(){var u=\"/pkg/duet.0123456789abcdef.wasm\""));
        assert!(text.contains("module_or_path: window.duetWasm || \"/pkg/duet.0123456789abcdef.wasm\""));
        assert!(text.contains("<p title=\"&#20013;&#25991;\">Connecting\u{85}</p>"));
        // The pieces come before the script after the page (it waits for the stylesheet).
        let first = text.find(&piece_tag(0)).unwrap();
        assert!(text.find("</body>").unwrap() > text.find(END_TAG).unwrap());
        assert!(text.find("x=[]").unwrap() > first);
        let mut decoded = Vec::new();
        for k in 0.. {
            let Some(at) = html
                .windows(piece_tag(k).len())
                .position(|w| w == piece_tag(k).as_bytes())
            else {
                break;
            };
            let from = at + piece_tag(k).len();
            let to = from + html[from..].windows(8).position(|w| w == b"</script").unwrap();
            decoded.extend(decode(&html[from..to], partner));
        }
        assert_eq!(decoded, wasm);
    }

    #[test]
    fn the_cookie_names_the_build() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("lang=en; duet-pkg=0123456789abcdef"),
        );
        assert!(has_cached(&h, "0123456789abcdef"));
        assert!(!has_cached(&h, "fedcba9876543210"));
        assert!(!has_cached(&HeaderMap::new(), "0123456789abcdef"));
    }
}
