// The offline page's language, picked like the server does: the remembered choice, else the
// browser's. A file, not inline: the Content-Security-Policy runs no inline script without a nonce.
var c = document.cookie.match(/(?:^|; )duet_lang=([^;]*)/);
var zh = c ? /^zh/i.test(c[1]) : /^zh/i.test(navigator.language || "");
document.documentElement.lang = zh ? "zh-CN" : "en";
