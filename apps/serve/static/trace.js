// The forward and backward panel: the "trace" of an answer to POST /predict?trace=1 drawn as the
// chain of the network's nodes. Going forward: the input x, each node's output (a strip of
// values, or small tiles for maps), the probabilities as bars; going back: the gradient on the
// input as a map, and for each node the norm of the gradient arriving at its output and the
// sizes of its parameters' gradients. Every number shown is also in a data attribute.
"use strict";
const traceBox = document.getElementById("trace");

function clearTrace() {
  traceBox.hidden = true;
  for (const key of ["predicted", "target", "loss"]) traceBox.dataset[key] = "";
  document.getElementById("trace-nodes").replaceChildren();
  document.getElementById("trace-probs").replaceChildren();
}

function fmt(v) {
  if (v === null) return "–";
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e4) ? v.toExponential(2) : String(+v.toPrecision(4));
}

function shape(s) {
  return s.length ? s.join("×") : "scalar";
}

// A colour for v in [-scale, scale]: grey levels from black when every value is >= 0 (as
// activations and the input are), else blue (negative) through white to red (positive).
function colour(v, scale, signed) {
  const t = scale > 0 ? Math.max(-1, Math.min(1, v / scale)) : 0;
  if (!signed) {
    const g = Math.round(255 * t);
    return [g, g, g];
  }
  const k = Math.round(255 * (1 - Math.abs(t)));
  return t >= 0 ? [255, k, k] : [k, k, 255];
}

function picture(rows, signed, css) {
  const h = rows.length, w = rows[0].length;
  const canvas = document.createElement("canvas");
  canvas.width = w;
  canvas.height = h;
  canvas.className = css;
  const flat = rows.flat();
  const scale = Math.max(...flat.map(v => Math.abs(v || 0)));
  signed = signed || flat.some(v => v < 0);
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(w, h);
  flat.forEach((v, i) => img.data.set([...colour(v || 0, scale, signed), 255], 4 * i));
  ctx.putImageData(img, 0, 0);
  return canvas;
}

function drawInto(id, rows, signed) {
  const canvas = document.getElementById(id), ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(picture(rows, signed, ""), 0, 0, canvas.width, canvas.height);
}

// What a node computed (forward) or received (backward): a strip of values or tiles of maps.
function view(part, signed) {
  const div = document.createElement("div");
  if (part.maps) {
    div.className = "tiles";
    part.maps.forEach(m => div.append(picture(m, signed, "tile")));
    if (part.channels > part.maps.length) {
      div.append(Object.assign(document.createElement("span"),
        {className: "more", textContent: "+" + (part.channels - part.maps.length) + " maps"}));
    }
  } else if (part.values && part.values.length > 1) {
    div.className = "strip";
    div.append(picture([part.values], signed, "cells"));
  }
  return div;
}

function nodeItem(node) {
  const li = document.createElement("li");
  li.className = "node";
  li.dataset.name = node.name;
  li.dataset.kind = node.kind;
  li.dataset.gradNorm = node.backward.norm;
  const box = document.createElement("div");
  box.className = "box";
  box.append(Object.assign(document.createElement("span"), {className: "name", textContent: node.name}),
             Object.assign(document.createElement("span"),
               {className: "shape", textContent: shape(node.in_shape) + " → " + shape(node.out_shape)}));
  li.append(box);
  if (node.kind === "softmax-loss") {
    li.append(Object.assign(document.createElement("p"),
      {className: "grads", textContent: "L = " + fmt(node.forward.values[0]) + ", ∂L/∂L = 1"}));
    return li;
  }
  const pics = document.createElement("div");
  pics.className = "pics";
  pics.append(view(node.forward, false), view(node.backward, true));
  li.append(pics);
  const grads = document.createElement("p");
  grads.className = "grads";
  grads.append("‖∂L/∂out‖ = ", Object.assign(document.createElement("span"),
    {className: "norm", textContent: fmt(node.backward.norm)}));
  for (const p of node.params) {
    const span = document.createElement("span");
    span.className = "param";
    span.dataset.key = p.key;
    span.dataset.gradNorm = p.grad_norm;
    span.dataset.gradMaxAbs = p.grad_max_abs;
    span.textContent = "‖∂L/∂" + p.name + "‖ = " + fmt(p.grad_norm) + " (max |·| " +
                       fmt(p.grad_max_abs) + ", " + shape(p.shape) + ")";
    grads.append(" · ", span);
  }
  li.append(grads);
  return li;
}

// Show a trace; choose(c) is called with a class clicked (null: back to the predicted class).
function showTrace(t, choose) {
  traceBox.hidden = false;
  traceBox.dataset.predicted = t.predicted;
  traceBox.dataset.target = t.target;
  traceBox.dataset.loss = t.loss;
  document.getElementById("trace-loss").textContent = fmt(t.loss);
  document.getElementById("trace-target").textContent = t.target;
  document.getElementById("trace-which").textContent = t.target === t.predicted ?
    "(the predicted class; click another class below)" : "(chosen; the network predicts " + t.predicted + ")";
  drawInto("trace-input", t.input.image, false);
  drawInto("trace-grad", t.input.grad, true);
  const gradNorm = document.getElementById("trace-grad-norm");
  gradNorm.textContent = "‖∂L/∂x‖ = " + fmt(t.input.grad_norm);
  gradNorm.dataset.gradNorm = t.input.grad_norm;
  document.getElementById("trace-nodes").replaceChildren(...t.nodes.map(nodeItem));
  document.getElementById("trace-probs").replaceChildren(...t.probabilities.map((p, c) => {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.label = c;
    button.dataset.probability = p;
    button.className = (c === t.target ? "target " : "") + (c === t.predicted ? "predicted" : "");
    button.title = "take the loss against class " + c;
    button.innerHTML = '<span class="digit"></span><span class="track"><span class="fill"></span>' +
                       '</span><span class="pct"></span>';
    button.querySelector(".digit").textContent = c;
    button.querySelector(".fill").style.width = (100 * p).toFixed(1) + "%";
    button.querySelector(".pct").textContent = (100 * p).toFixed(1) + "%";
    button.addEventListener("click", () => choose(c === t.target && c !== t.predicted ? null : c));
    li.append(button);
    return li;
  }));
}
