// Init script for ab.mjs (CAPS=1): when the page's camera frames arrive. Every getUserMedia
// video track also plays in a hidden video element, whose first frames' times (Date.now(), one
// clock for all pages of the machine) go into window.__caps. All pages of one Chromium share
// its fake camera, so these are the captures every sender can pick from.
(() => {
  const gum = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  window.__caps = [];
  navigator.mediaDevices.getUserMedia = async (constraints) => {
    const stream = await gum(constraints);
    const track = stream.getVideoTracks()[0];
    if (track) {
      const video = document.createElement('video');
      video.muted = true;
      video.srcObject = new MediaStream([track]);
      video.play();
      let seen = 0;
      const tick = () => {
        window.__caps.push(Date.now());
        if (++seen < 5) video.requestVideoFrameCallback(tick);
      };
      video.requestVideoFrameCallback(tick);
    }
    return stream;
  };
})();
