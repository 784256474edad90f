// webhook-gateway local console: live refresh and the Redrive button. No framework, no build step.
// The server renders (and escapes) all HTML; this script only swaps in fresh server-rendered fragments and never
// builds markup from data itself (messages go through textContent).
(() => {
  // biome-ignore lint/suspicious/noRedundantUseStrict: loaded as a classic <script>, not a module
  'use strict';
  const body = document.body;
  const content = document.getElementById('content');
  const live = document.getElementById('live');
  const flash = document.getElementById('flash');
  let version = body.dataset.version || '';
  let refreshing = false;

  function say(text, kind) {
    flash.textContent = text;
    flash.className = kind || '';
  }

  async function refresh() {
    if (refreshing || !body.dataset.fragmentSrc) return;
    refreshing = true;
    try {
      const response = await fetch(body.dataset.fragmentSrc, { cache: 'no-store' });
      if (!response.ok && response.status !== 404) throw new Error(`HTTP ${response.status}`);
      const text = await response.text();
      const open = new Set([...content.querySelectorAll('details[open][data-file]')].map((d) => d.dataset.file));
      const closed = new Set(
        [...content.querySelectorAll('details:not([open])[data-file]')].map((d) => d.dataset.file),
      );
      content.innerHTML = text;
      for (const d of content.querySelectorAll('details[data-file]')) {
        if (open.has(d.dataset.file)) d.open = true;
        if (closed.has(d.dataset.file)) d.open = false;
      }
      body.dataset.refreshedAt = new Date().toISOString();
    } finally {
      refreshing = false;
    }
  }

  async function poll() {
    try {
      if (body.dataset.versionSrc) {
        const response = await fetch(body.dataset.versionSrc, { cache: 'no-store' });
        const next = (await response.json()).version;
        if (next && next !== version) {
          await refresh();
          version = next;
        }
        live.className = 'live ok';
        live.textContent = 'live';
      }
    } catch {
      live.className = 'live offline';
      live.textContent = 'gateway not reachable';
    }
    setTimeout(poll, 1000);
  }

  document.addEventListener('click', async (event) => {
    const button = event.target instanceof Element ? event.target.closest('button#redrive') : null;
    if (!button) return;
    const id = button.dataset.id;
    button.disabled = true;
    button.textContent = 'Redriving…';
    say(`Redriving ${id}…`, 'pending');
    try {
      const response = await fetch(`/local/deliveries/${encodeURIComponent(id)}/redrive`, { method: 'POST' });
      const result = await response.json();
      const status = result.status || result.error?.code || `HTTP ${response.status}`;
      const detail =
        result.status === 'failed'
          ? ` — ${result.envelope?.last_error || ''}`
          : result.error
            ? ` — ${result.error.message || result.error}`
            : '';
      say(
        `Redrive of ${id}: ${status}${result.execution_name ? ` (execution ${result.execution_name})` : ''}${detail}`,
        status === 'delivered' || status === 'already_delivered' ? 'ok' : 'bad',
      );
    } catch (error) {
      say(`Redrive of ${id} failed: ${error.message}`, 'bad');
    }
    await refresh().catch(() => {});
  });

  setTimeout(poll, 1000);
})();
