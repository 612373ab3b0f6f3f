// privis browser client: protective perturbation on the user's device (Ye et al., "Visual Privacy Protection
// in Mobile Image Recognition Using Protective Perturbation", ACM MMSys 2022, Sections 3.1 and 3.4).
//
// The exported generator U runs here with ONNX Runtime Web (WebGPU when the browser offers a GPU adapter,
// WebAssembly otherwise; `?ep=wasm` forces WebAssembly). For each image x the page computes
// x' = clamp(U(x), 0, 1) on canonical (1, C, H, W) float32 pixels in [0, 1], rounds x' to 8 bits, encodes it
// as a PNG (mode L or RGB, written here, so no colour management or alpha touches the values) and POSTs only
// that PNG to /v1/predict under a neutral file name. The original file is read locally and never sent.
"use strict";

const TYPES = ["image/png", "image/jpeg", "image/bmp", "image/x-ms-bmp", "image/gif", "image/webp"];
const VENDOR = "/static/vendor/";

const state = { info: null, session: null, backend: null, count: 0 };
// Read by the test suite and the benchmark: readiness, per-file outcomes and a timing helper.
window.privis = { ready: false, error: null, results: [], timeProtect };

class UserError extends Error {}

const $ = (id) => document.getElementById(id);

function setStatus(text, isError = false) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("error", isError);
}

function message(text) {
  const p = document.createElement("p");
  p.textContent = text;
  $("messages").appendChild(p);
}

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const s = document.createElement("script");
    s.src = src;
    s.onload = resolve;
    s.onerror = () => reject(new UserError(`cannot load ${src} from the server`));
    document.head.appendChild(s);
  });
}

async function serverJSON(path, options) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (e) {
    throw new UserError(`The server at ${location.origin} is unreachable (${e.message}). Is privis serve still running?`);
  }
  let body = null;
  try {
    body = await response.json();
  } catch (e) {
    body = null;
  }
  if (!response.ok) {
    const err = body && body.error ? `${body.error.code}: ${body.error.message}` : response.statusText;
    throw new UserError(`The server refused the image (HTTP ${response.status}, ${err})`);
  }
  return body;
}

async function chooseBackend(wanted) {
  if (wanted !== "wasm" && navigator.gpu) {
    try {
      if (await navigator.gpu.requestAdapter()) return "webgpu";
    } catch (e) { /* no adapter: WebAssembly */ }
  }
  return "wasm";
}

async function init() {
  try {
    state.info = await serverJSON("/v1/model");
    state.backend = await chooseBackend(new URLSearchParams(location.search).get("ep"));
    await loadScript(VENDOR + (state.backend === "webgpu" ? "ort.webgpu.min.js" : "ort.wasm.min.js"));
    ort.env.wasm.wasmPaths = new URL(VENDOR, location.href).href;
    // threads need cross-origin isolation (the server sends COOP/COEP); ONNX Runtime's default otherwise
    ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(4, Math.ceil((navigator.hardwareConcurrency || 2) / 2)) : 1;
    window.privis.threads = ort.env.wasm.numThreads;
    const providers = state.backend === "webgpu" ? ["webgpu", "wasm"] : ["wasm"];
    state.session = await ort.InferenceSession.create("/client/generator.onnx", { executionProviders: providers });
  } catch (e) {
    window.privis.error = e.message;
    setStatus(`Not ready: ${e.message}`, true);
    return;
  }
  const { channels, input_size: [h, w], num_classes: k } = state.info;
  setStatus(`Ready: the generator runs in this browser (${state.backend === "webgpu" ? "WebGPU" : "WebAssembly"}); ` +
            `the server's model takes ${w}×${h} ${channels === 1 ? "grey" : "RGB"} images, ${k} classes.`);
  $("accepts").textContent = `PNG, JPEG, BMP, GIF or WebP, ${w}×${h} pixels, up to ${formatBytes(state.info.max_upload_bytes)}`;
  $("files").disabled = false;
  window.privis.ready = true;
}

// ------------------------------------------------------------------------------------------ pixels

async function decode(file) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
  } catch (e) {
    throw new UserError(`${file.name}: cannot be decoded as an image (damaged or not really ${file.type})`);
  }
  const { width, height } = bitmap;
  if (width * height > state.info.max_pixels) {
    bitmap.close();
    throw new UserError(`${file.name}: image too large: ${width}×${height} = ${width * height} pixels; ` +
                        `the server accepts at most ${state.info.max_pixels} pixels`);
  }
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  return ctx.getImageData(0, 0, width, height, { colorSpace: "srgb" });
}

// A byte count as people read it: 8388608 -> "8 MiB", 1536 -> "1.5 KiB", 700 -> "700 bytes".
function formatBytes(n) {
  const units = [["GiB", 2 ** 30], ["MiB", 2 ** 20], ["KiB", 2 ** 10]];
  for (const [unit, size] of units) {
    if (n >= size) return `${Number((n / size).toFixed(1))} ${unit}`;
  }
  return `${n} bytes`;
}

// RGBA bytes -> canonical (1, C, H, W) float32 in [0, 1]; grey uses Pillow's "L" conversion (ITU-R 601-2).
function toTensor(image, channels, name) {
  const { data, width, height } = image;
  const n = width * height;
  const out = new Float32Array(channels * n);
  for (let i = 0; i < n; i++) {
    if (data[4 * i + 3] !== 255) {
      throw new UserError(`${name}: the image has transparent pixels; send an opaque image (no alpha channel)`);
    }
    const r = data[4 * i], g = data[4 * i + 1], b = data[4 * i + 2];
    if (channels === 1) {
      out[i] = ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16) / 255;
    } else {
      out[i] = r / 255; out[n + i] = g / 255; out[2 * n + i] = b / 255;
    }
  }
  return out;
}

// float (C, H, W) -> 8-bit, rounded as the Python client rounds before encoding (clamp, *255, round).
function quantise(values) {
  const q = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) q[i] = Math.round(Math.min(1, Math.max(0, values[i])) * 255);
  return q;
}

function draw(canvas, planes, channels, width, height) {
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(width, height);
  const n = width * height;
  for (let i = 0; i < n; i++) {
    img.data[4 * i] = planes[i];
    img.data[4 * i + 1] = planes[channels === 1 ? i : n + i];
    img.data[4 * i + 2] = planes[channels === 1 ? i : 2 * n + i];
    img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

// ------------------------------------------------------------------------------------------ PNG encoder

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(bytes) {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

// 8-bit (C, H, W) planes -> PNG bytes, colour type 0 (grey) or 2 (RGB), filter 0, zlib via CompressionStream.
async function encodePng(planes, channels, width, height) {
  const n = width * height;
  const rows = new Uint8Array(height * (1 + width * channels));
  let o = 0;
  for (let y = 0; y < height; y++) {
    rows[o++] = 0;
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < channels; c++) rows[o++] = planes[c * n + y * width + x];
    }
  }
  const zlib = new Uint8Array(await new Response(new Blob([rows]).stream()
    .pipeThrough(new CompressionStream("deflate"))).arrayBuffer());
  const header = new Uint8Array(13);
  const view = new DataView(header.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  header.set([8, channels === 1 ? 0 : 2, 0, 0, 0], 8);
  const signature = new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]);
  return new Blob([signature, chunk("IHDR", header), chunk("IDAT", zlib), chunk("IEND", new Uint8Array(0))],
                  { type: "image/png" });
}

// ------------------------------------------------------------------------------------------ one file

function card(name) {
  const el = document.createElement("article");
  el.className = "card";
  el.innerHTML = `<h2></h2><div class="pair">
    <figure><canvas class="original"></canvas><figcaption>original (stays here)</figcaption></figure>
    <figure><canvas class="protected"></canvas><figcaption>protected (sent)</figcaption></figure></div>
    <p class="prediction"></p><p class="timing"></p>`;
  el.querySelector("h2").textContent = name;
  $("results").appendChild(el);
  return el;
}

async function protect(input, channels, height, width) {
  const feeds = { [state.session.inputNames[0]]: new ort.Tensor("float32", input, [1, channels, height, width]) };
  const t0 = performance.now();
  const outputs = await state.session.run(feeds);
  const ms = performance.now() - t0;
  const out = outputs[state.session.outputNames[0]];
  if (out.data.length !== input.length) {
    throw new UserError(`the generator returned ${out.dims.join("×")} for a 1×${channels}×${height}×${width} image`);
  }
  return { planes: quantise(out.data), ms };
}

async function handleFile(file) {
  const index = ++state.count;
  const el = card(file.name);
  const result = { file: file.name };
  window.privis.results.push(result);
  try {
    if (!TYPES.includes(file.type)) {
      throw new UserError(`${file.name}: unsupported file (${file.type || "unknown type"}); choose a PNG, JPEG, ` +
                          "BMP, GIF or WebP image");
    }
    if (file.size > state.info.max_upload_bytes) {
      throw new UserError(`${file.name}: image too large: ${formatBytes(file.size)}; the server accepts at most ` +
                          `${formatBytes(state.info.max_upload_bytes)}`);
    }
    const image = await decode(file);
    const { width, height } = image;
    const channels = state.info.channels;
    const input = toTensor(image, channels, file.name);
    draw(el.querySelector(".original"), quantise(input), channels, width, height);
    const { planes, ms } = await protect(input, channels, height, width);
    draw(el.querySelector(".protected"), planes, channels, width, height);
    Object.assign(result, { shape: [channels, height, width], protected: Array.from(planes), protectMs: ms });
    el.querySelector(".timing").textContent = `protected in ${ms.toFixed(1)} ms in this browser (${state.backend})`;
    const form = new FormData();
    form.append("images", await encodePng(planes, channels, width, height), `protected-${index}.png`);
    const t0 = performance.now();
    const body = await serverJSON("/v1/predict", { method: "POST", body: form }).catch((e) => {
      throw e instanceof UserError ? new UserError(`${file.name}: ${e.message}`) : e;
    });
    const roundTripMs = performance.now() - t0;
    const p = body.predictions[0];
    const confidence = p.confidences[p.class_index];
    Object.assign(result, { classIndex: p.class_index, className: p.class_name, confidence, roundTripMs });
    el.querySelector(".prediction").textContent = `${p.class_name} (${(100 * confidence).toFixed(1)} % confidence)`;
    el.querySelector(".timing").textContent += ` · round trip to the server ${roundTripMs.toFixed(1)} ms`;
  } catch (e) {
    const text = e instanceof UserError ? e.message : `${file.name}: unexpected error (${e.message})`;
    result.error = text;
    el.querySelector(".prediction").textContent = text;
    el.querySelector(".prediction").classList.add("error");
    message(text);
  }
}

async function handleFiles(files) {
  for (const f of files) await handleFile(f);
}

// Median ms of one generator run on a random (1, C, H, W) image, after one warm-up run (benchmark helper).
async function timeProtect(channels, height, width, repeats = 10) {
  const input = new Float32Array(channels * height * width).map(() => Math.random());
  await protect(input, channels, height, width);
  const times = [];
  for (let i = 0; i < repeats; i++) times.push((await protect(input, channels, height, width)).ms);
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

// ------------------------------------------------------------------------------------------ wiring

$("files").addEventListener("change", (e) => handleFiles(Array.from(e.target.files)));
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  if (window.privis.ready) handleFiles(Array.from(e.dataTransfer.files));
  else message("The generator is not loaded yet; wait for the Ready line above.");
});
init();
