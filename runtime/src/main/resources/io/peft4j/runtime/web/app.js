// The web page of the peft4j runtime: choose a model and an adapter, upload an image, see the
// labels, scores and latency. Plain JavaScript, no dependencies; it only reads and classifies.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const form = $('form');
  const model = $('model');
  const adapter = $('adapter');
  const image = $('image');
  const top = $('top');
  const button = $('classify');
  const note = $('model-note');
  const result = $('result');
  const status = $('status');
  const error = $('error');
  const preview = $('preview');
  const table = $('labels');
  const caption = $('labels-caption');
  const latency = $('latency');

  /** An answer of the server that is not 2xx, with its {"error": "..."} message. */
  class ServerError extends Error {
    constructor(status, body) {
      super(body && typeof body.error === 'string' ? body.error : 'HTTP ' + status);
      this.status = status;
    }
  }

  const enc = encodeURIComponent;
  let selection = 0;      // the model selection in progress; older answers are dropped
  let previewUrl = null;

  async function readBody(response) {
    const text = await response.text();
    try {
      return JSON.parse(text);
    } catch (e) {
      return { error: text || response.statusText };
    }
  }

  async function getJson(url) {
    const response = await fetch(url, { headers: { Accept: 'application/json' } });
    const body = await readBody(response);
    if (!response.ok) {
      throw new ServerError(response.status, body);
    }
    return body;
  }

  function describe(e) {
    if (e instanceof ServerError) {
      return 'the server answered ' + e.status + ': ' + e.message;
    }
    if (e instanceof TypeError) {
      return 'cannot reach the server (' + e.message + ')';
    }
    return e.message;
  }

  function showError(what, e) {
    error.textContent = what + ': ' + describe(e);
    error.hidden = false;
    status.textContent = '';
    result.dataset.state = 'error';
  }

  function clearError() {
    error.hidden = true;
    error.textContent = '';
  }

  function option(value, text, disabled) {
    const o = document.createElement('option');
    o.value = value;
    o.textContent = text;
    o.disabled = !!disabled;
    return o;
  }

  async function loadModels() {
    status.textContent = 'Loading the models…';
    let index;
    try {
      index = await getJson('v2/repository/index');
    } catch (e) {
      showError('Cannot list the models', e);
      button.disabled = true;
      return;
    }
    model.replaceChildren();
    for (const entry of index) {
      const ready = entry.state === 'READY';
      const text = ready ? entry.name : entry.name + ' (unavailable' + (entry.reason ? ': ' + entry.reason : '') + ')';
      model.append(option(entry.name, text, !ready));
    }
    const first = index.find((entry) => entry.state === 'READY');
    if (!first) {
      note.textContent = 'No model is ready on this server.';
      button.disabled = true;
      status.textContent = '';
      return;
    }
    model.value = first.name;
    status.textContent = 'Choose a model and an image.';
    await selectModel();
  }

  async function selectModel() {
    const name = model.value;
    const mine = ++selection;
    form.dataset.model = '';
    clearError();
    adapter.replaceChildren(option('', 'base model (no adapter)'));
    note.textContent = 'Loading ' + name + '…';
    let meta;
    let adapters;
    try {
      [meta, adapters] = await Promise.all([getJson('v2/models/' + enc(name)), getJson('v2/models/' + enc(name) + '/adapters')]);
    } catch (e) {
      if (mine === selection) {
        note.textContent = '';
        showError('Cannot read model ' + name, e);
        button.disabled = true;
      }
      return;
    }
    if (mine !== selection) {
      return;
    }
    for (const a of adapters.adapters) {
      adapter.append(option(a.name, a.name + ' (' + a.peft_type + ', rank ' + a.rank + ', version ' + a.version + ')'));
    }
    const p = meta.parameters || {};
    const pre = p.preprocessing;
    if (!pre) {
      note.textContent = 'Model ' + name + ' takes no images: its package has no image preprocessing (export it with '
        + '--image-size, --mean and --std, and --labels), so only /infer can run it.';
      button.disabled = true;
    } else {
      let text = 'Takes ' + pre.width + '×' + pre.height + ' images, ' + (pre.channels === 1 ? 'grayscale' : 'RGB') + '.';
      if (!p.labels || p.labels.length === 0) {
        text += ' Its package has no labels: classes show as "class N" (export it with --labels to name them).';
      }
      note.textContent = text;
      button.disabled = false;
    }
    form.dataset.model = name;
  }

  function showPreview() {
    if (previewUrl) {
      URL.revokeObjectURL(previewUrl);
      previewUrl = null;
    }
    const file = image.files[0];
    if (!file) {
      preview.hidden = true;
      return;
    }
    previewUrl = URL.createObjectURL(file);
    preview.src = previewUrl;
    preview.alt = 'The chosen image, ' + file.name;
    preview.hidden = false;
  }

  function render(body, clientMs) {
    const tbody = table.tBodies[0];
    tbody.replaceChildren();
    for (const l of body.labels) {
      const tr = document.createElement('tr');
      tr.dataset.label = l.label;
      tr.dataset.score = String(l.score);
      const name = document.createElement('td');
      name.textContent = l.label;
      const score = document.createElement('td');
      score.textContent = (100 * l.score).toFixed(2) + ' %';
      const bar = document.createElement('td');
      const meter = document.createElement('meter');
      meter.min = 0;
      meter.max = 1;
      meter.value = l.score;
      meter.setAttribute('aria-label', l.label);
      bar.append(meter);
      tr.append(name, score, bar);
      tbody.append(tr);
    }
    caption.textContent = body.model_name + ' with '
      + (body.adapter ? 'adapter ' + body.adapter + (body.adapter_version ? ' (version ' + body.adapter_version + ')' : '') : 'the base model');
    table.hidden = false;
    const server = typeof body.latency_ms === 'number' ? body.latency_ms : null;
    latency.dataset.clientMs = clientMs.toFixed(3);
    latency.dataset.serverMs = server === null ? '' : server.toFixed(3);
    latency.textContent = 'Latency: ' + clientMs.toFixed(1) + ' ms in the browser (upload to answer), '
      + (server === null ? 'not reported by the server.' : server.toFixed(1) + ' ms on the server.');
    latency.hidden = false;
    status.textContent = 'Top ' + body.labels.length + ' of ' + body.model_name + ': ' + (body.labels.length ? body.labels[0].label : 'none') + '.';
  }

  async function classify(event) {
    event.preventDefault();
    clearError();
    const file = image.files[0];
    if (!file) {
      showError('No image', new Error('choose an image file first'));
      image.focus();
      return;
    }
    const k = Number.parseInt(top.value, 10);
    if (!(k >= 1)) {
      showError('Labels to show', new Error('give a whole number of at least 1'));
      top.focus();
      return;
    }
    const name = model.value;
    const query = new URLSearchParams();
    if (adapter.value) {
      query.set('adapter', adapter.value);
    }
    query.set('top', String(k));
    const data = new FormData();
    data.append('image', file, file.name);
    result.dataset.state = 'running';
    status.textContent = 'Classifying ' + file.name + '…';
    table.hidden = true;
    latency.hidden = true;
    button.disabled = true;
    const t0 = performance.now();
    try {
      const response = await fetch('v2/models/' + enc(name) + '/classify?' + query, { method: 'POST', body: data });
      const body = await readBody(response);
      const clientMs = performance.now() - t0;
      if (!response.ok) {
        throw new ServerError(response.status, body);
      }
      render(body, clientMs);
      result.dataset.state = 'done';
    } catch (e) {
      showError('Classification failed', e);
    } finally {
      button.disabled = false;
      result.dataset.runs = String(Number(result.dataset.runs || 0) + 1);
    }
  }

  model.addEventListener('change', selectModel);
  image.addEventListener('change', showPreview);
  form.addEventListener('submit', classify);
  loadModels();
})();
