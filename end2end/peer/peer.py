"""A WebRTC peer that is not a browser: aiortc speaking Duet's classic signaling protocol.

The e2e suite (end2end/tests/peer.spec.ts) runs it to prove that any standard WebRTC peer can
call Duet and be called by it. It joins the relay under a name, answers calls (or places one),
sends a moving test pattern and a 440 Hz tone, and reports on stdout, one JSON object a line,
what happens and what it receives. It reads commands from stdin, one JSON object a line:
  {"cmd": "call", "to": NAME}   place a call
  {"cmd": "hangup"}             hang up
  {"cmd": "stats"}              report what was received so far
Options: --grouping shared|per-track|none|no-msid  how its SDP groups its tracks in streams
         --decline                                  decline incoming calls
         --bad-sdp                                  answer with an SDP no browser accepts
Its candidates are all in its SDP; after it, it sends the two end-of-candidates forms peers use:
an `_ice` with an empty candidate and one with `iceCandidate: null`.

What a peer must do to call Duet (docs/protocol.md): connect to /webrtc/{name}?key=..., wait for
`presence`, exchange call_start / call_back "1", then offer / answer with SDP (candidates may be
in the SDP, as here, or trickled as `_ice`), and `hangup`.
"""

import argparse
import asyncio
import fractions
import json
import math
import re
import secrets
import sys

import aioice.ice
import av
import websockets
from aiortc import (
    MediaStreamTrack,
    RTCPeerConnection,
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.sdp import candidate_from_sdp

# The suite's peer lives on loopback only (aioice leaves 127.0.0.1 out by default).
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


def say(event, **fields):
    print(json.dumps({"event": event, **fields}), flush=True)


class Pattern(VideoStreamTrack):
    """A 320x240 picture whose brightness changes every frame."""

    async def recv(self):
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame(320, 240, "yuv420p")
        shade = (pts // 3000) % 200 + 30
        frame.planes[0].update(bytes([shade]) * frame.planes[0].buffer_size)
        for plane in frame.planes[1:]:
            plane.update(bytes([128]) * plane.buffer_size)
        frame.pts, frame.time_base = pts, time_base
        return frame


class Tone(MediaStreamTrack):
    """A 440 Hz sine, 20 ms frames at 48 kHz."""

    kind = "audio"

    def __init__(self):
        super().__init__()
        self.samples = 0
        self.start = None

    async def recv(self):
        loop = asyncio.get_running_loop()
        if self.start is None:
            self.start = loop.time()
        wait = self.start + self.samples / 48000 - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        frame = av.AudioFrame(format="s16", layout="mono", samples=960)
        pcm = b"".join(
            int(8000 * math.sin(2 * math.pi * 440 * (self.samples + i) / 48000)).to_bytes(2, "little", signed=True)
            for i in range(960)
        )
        frame.planes[0].update(pcm)
        frame.pts, frame.sample_rate = self.samples, 48000
        frame.time_base = fractions.Fraction(1, 48000)
        self.samples += 960
        return frame


def regroup(sdp, grouping):
    """Rewrites how the SDP groups the tracks in streams (aiortc gives each track its own)."""
    if grouping == "per-track":
        return sdp
    if grouping == "no-msid":
        return "".join(l for l in sdp.splitlines(keepends=True) if not l.startswith("a=msid:"))
    if grouping == "none":
        return re.sub(r"^a=msid:\S+ ", "a=msid:- ", sdp, flags=re.M)
    # shared: one stream for both tracks, as a browser's addTrack(track, stream) does
    return re.sub(r"^a=msid:\S+ ", "a=msid:duet-peer-stream ", sdp, flags=re.M)


class Peer:
    def __init__(self, args):
        self.args = args
        self.ws = None
        self.pc = None
        self.partner = None
        self.received = {"video": 0, "audio": 0}
        self.audio_peak = 0

    async def send(self, kind, to, **fields):
        await self.ws.send(json.dumps({"type": kind, "toUser": to, **fields}))

    def new_pc(self):
        pc = RTCPeerConnection()
        pc.addTrack(Tone())
        pc.addTrack(Pattern())

        @pc.on("track")
        def on_track(track):
            asyncio.ensure_future(self.consume(track))

        @pc.on("connectionstatechange")
        async def on_state():
            say("state", state=pc.connectionState)

        self.pc = pc
        return pc

    async def consume(self, track):
        while True:
            try:
                frame = await track.recv()
            except Exception:
                return
            self.received[track.kind] += 1
            if track.kind == "audio":
                data = bytes(frame.planes[0])
                peak = max(abs(int.from_bytes(data[i : i + 2], "little", signed=True)) for i in range(0, min(len(data), 400), 2))
                self.audio_peak = max(self.audio_peak, peak)

    async def local_description(self, create):
        await self.pc.setLocalDescription(await create())  # gathers every candidate into the SDP
        if self.args.bad_sdp:
            return "v=0\r\nthis is not a session description\r\n"
        return regroup(self.pc.localDescription.sdp, self.args.grouping)

    async def end_of_candidates(self, to):
        await self.send("_ice", to, iceCandidate={"candidate": "", "sdpMid": "0", "sdpMLineIndex": 0})
        await self.send("_ice", to, iceCandidate=None)

    async def end(self, why):
        if self.pc:
            await self.pc.close()
        self.pc, self.partner = None, None
        say("ended", why=why)

    async def on_message(self, m):
        kind, sender = m.get("type"), m.get("fromUser")
        if kind == "presence":
            return
        if kind == "call_start":
            say("ringing", by=sender)
            if self.args.decline:
                await self.send("call_back", sender, msg="0")
                return
            self.partner = sender
            await self.send("call_back", sender, msg="1")
        elif kind == "call_back" and sender == self.partner and m.get("msg") == "1":
            pc = self.new_pc()
            await self.send("offer", sender, sdp=await self.local_description(pc.createOffer))
            await self.end_of_candidates(sender)
        elif kind == "call_back":
            say("notice", by=sender, msg=m.get("msg"), code=m.get("code"))
            if sender == self.partner:
                await self.end("declined" if m.get("msg") == "0" else "unavailable")
        elif kind == "offer" and sender == self.partner:
            pc = self.pc or self.new_pc()
            await pc.setRemoteDescription(RTCSessionDescription(m["sdp"], "offer"))
            await self.send("answer", sender, sdp=await self.local_description(pc.createAnswer))
            await self.end_of_candidates(sender)
        elif kind == "answer" and sender == self.partner and self.pc:
            await self.pc.setRemoteDescription(RTCSessionDescription(m["sdp"], "answer"))
        elif kind == "_ice" and sender == self.partner and self.pc:
            c = m.get("iceCandidate") or {}
            line = c.get("candidate", "")
            if line:  # an empty candidate marks the end of candidates: nothing to add
                candidate = candidate_from_sdp(line.split(":", 1)[1])
                candidate.sdpMid, candidate.sdpMLineIndex = c.get("sdpMid"), c.get("sdpMLineIndex")
                await self.pc.addIceCandidate(candidate)
        elif kind == "media" and sender == self.partner:
            say("media", audio=m.get("audio"), video=m.get("video"))
        elif kind == "hangup" and sender == self.partner:
            await self.end("hangup")

    async def on_command(self, c):
        if c["cmd"] == "call":
            self.partner = c["to"]
            await self.send("call_start", c["to"])
        elif c["cmd"] == "hangup" and self.partner:
            await self.send("hangup", self.partner)
            await self.end("hung_up")
        elif c["cmd"] == "stats":
            say("stats", video=self.received["video"], audio=self.received["audio"], audio_peak=self.audio_peak)

    async def commands(self):
        reader = asyncio.StreamReader()
        await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            await self.on_command(json.loads(line))
        await self.end("stdin closed")
        await self.ws.close()

    async def run(self):
        url = f"{self.args.url}/webrtc/{self.args.name}?key={secrets.token_hex(16)}"
        async with websockets.connect(url) as ws:
            self.ws = ws
            first = json.loads(await ws.recv())
            say("online", users=first.get("users"))
            commands = asyncio.ensure_future(self.commands())
            try:
                async for frame in ws:
                    await self.on_message(json.loads(frame))
            except websockets.ConnectionClosed:
                pass
            commands.cancel()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", default="ws://127.0.0.1:3000")
    p.add_argument("--name", required=True)
    p.add_argument("--grouping", default="per-track", choices=["shared", "per-track", "none", "no-msid"])
    p.add_argument("--decline", action="store_true")
    p.add_argument("--bad-sdp", action="store_true")
    asyncio.run(Peer(p.parse_args()).run())


if __name__ == "__main__":
    main()
