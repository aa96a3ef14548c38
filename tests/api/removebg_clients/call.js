// Run one call of the npm package remove.bg (unmodified) against another server: its endpoint is a constant in the
// package, so the one thing replaced is the base URL it hands to unirest.post, at run time.
// Usage: node call.js <base URL> <function> <options as JSON>; prints the resolved value (or the rejection) as JSON.
"use strict";
const unirest = require("unirest");
const REMOVE_BG = "https://api.remove.bg";
const [base, name, options] = [process.argv[2], process.argv[3], JSON.parse(process.argv[4])];
const post = unirest.post;
unirest.post = (url, ...rest) => post.call(unirest, url.replace(REMOVE_BG, base), ...rest);

const removeBg = require("remove.bg");
removeBg[name](options).then(
  (result) => { console.log(JSON.stringify({ ok: true, result: { ...result, base64img: undefined } })); },
  (errors) => { console.log(JSON.stringify({ ok: false, errors })); process.exitCode = 1; },
);
