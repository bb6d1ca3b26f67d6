// The drawing pad: pointer events (mouse, pen, finger) draw white strokes on black, as MNIST
// digits are; a PNG of the pad goes to POST /predict?trace=1 at most every 150 ms while drawing
// and once when a stroke ends; the answer fills the bars and the 28x28 picture, and its trace
// the forward and backward panel (trace.js). Clicking a class there sends the drawing again
// with &target=that class.
"use strict";
const pad = document.getElementById("pad");
const ctx = pad.getContext("2d");
const seen = document.getElementById("seen").getContext("2d");
const answer = document.getElementById("answer");
const bars = document.getElementById("bars");
const status = document.getElementById("status");
const TOP = 5, DEBOUNCE_MS = 150;
let drawing = false, last = null, inked = false, timer = null, sent = 0, shown = 0;
let target = null;  // the class the trace's loss is taken against (null: the predicted one)

function clearPad() {
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, pad.width, pad.height);
  inked = false;
  sent += 1; shown = sent;  // answers to older drawings are dropped
  answer.textContent = "–";
  answer.dataset.label = "";
  bars.replaceChildren();
  seen.fillStyle = "#000";
  seen.fillRect(0, 0, 140, 140);
  status.textContent = "";
  target = null;
  clearTrace();
}

function point(e) {
  const r = pad.getBoundingClientRect();
  return [(e.clientX - r.left) * pad.width / r.width, (e.clientY - r.top) * pad.height / r.height];
}

function line(a, b) {
  ctx.strokeStyle = "#fff";
  ctx.lineWidth = 18;
  ctx.lineCap = ctx.lineJoin = "round";
  ctx.beginPath();
  ctx.moveTo(a[0], a[1]);
  ctx.lineTo(b[0], b[1]);
  ctx.stroke();
  inked = true;
}

pad.addEventListener("pointerdown", e => {
  e.preventDefault();
  pad.setPointerCapture(e.pointerId);
  drawing = true;
  last = point(e);
  line(last, last);
  schedule();
});
pad.addEventListener("pointermove", e => {
  if (!drawing) return;
  const p = point(e);
  line(last, p);
  last = p;
  schedule();
});
for (const type of ["pointerup", "pointercancel"]) {
  pad.addEventListener(type, () => {
    if (!drawing) return;
    drawing = false;
    clearTimeout(timer); timer = null;
    send();
  });
}
document.getElementById("clear").addEventListener("click", clearPad);

function schedule() {
  if (timer === null) timer = setTimeout(() => { timer = null; send(); }, DEBOUNCE_MS);
}

function send() {
  if (!inked) return;
  const id = ++sent;
  pad.toBlob(async png => {
    try {
      const query = "predict?top=" + TOP + "&trace=1" + (target === null ? "" : "&target=" + target);
      const res = await fetch(query, {method: "POST", body: png,
                                                     headers: {"Content-Type": "image/png"}});
      const body = await res.json();
      if (id < shown) return;
      shown = id;
      if (!res.ok) { status.textContent = body.error || res.statusText; return; }
      show(body);
    } catch (err) {
      status.textContent = "no answer from the server (" + err + ")";
    }
  }, "image/png");
}

function show(body) {
  status.textContent = "";
  answer.textContent = body.top[0].label;
  answer.dataset.label = body.top[0].label;
  bars.replaceChildren(...body.top.map(t => {
    const li = document.createElement("li");
    li.dataset.label = t.label;
    li.innerHTML = '<span class="digit"></span><span class="track"><span class="fill"></span></span>' +
                   '<span class="pct"></span>';
    li.querySelector(".digit").textContent = t.label;
    li.querySelector(".fill").style.width = (100 * t.probability).toFixed(1) + "%";
    li.querySelector(".pct").textContent = (100 * t.probability).toFixed(1) + "%";
    return li;
  }));
  const img = seen.createImageData(28, 28);
  body.input.flat().forEach((v, i) => {
    img.data.set([v, v, v, 255], 4 * i);
  });
  const small = document.createElement("canvas");
  small.width = small.height = 28;
  small.getContext("2d").putImageData(img, 0, 0);
  seen.imageSmoothingEnabled = false;
  seen.drawImage(small, 0, 0, 140, 140);
  if (body.trace) showTrace(body.trace, cls => {
    target = cls;
    send();
  });
}

clearPad();
