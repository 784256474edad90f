// webhook-gateway local console: live refresh, Redrive and Resend, the Endpoints page's Pause/Resume and recover. No framework, no build step.
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
  /** What "live" follows on this page, as the server titled it (the Endpoints page: its receivers, not conversations). */
  const liveTitle = live ? live.title : '';
  /**
   * The refresh under way, or null. A press's refresh asked meanwhile runs after it: the one under way (the live poll's)
   * may have fetched the page before the press was answered, and would leave the page as it was before the press until
   * the next change. A live refresh asked meanwhile is dropped: the poll keeps the version it had, so that the next poll
   * asks again (the one under way may have fetched the page before the change the poll saw).
   */
  let refreshing = null;
  /**
   * The page's content as the server last rendered it (as the browser writes it out): a fresh fragment the same is not
   * swapped in again (nothing it shows changed).
   */
  let shown = content.innerHTML;

  /**
   * While a mouse button (or a finger) is down on the page, a promise settled once it is up and the click it makes was
   * handled; else null. A swap meanwhile would replace the button under it: the press ended on another element and
   * made no click (a Plan pressed as the Endpoints page refreshed for a delivery was lost), so a swap waits for it.
   */
  let pressed = null;
  let released = () => {};
  addEventListener(
    'pointerdown',
    () => {
      pressed ??= new Promise((resolve) => {
        released = resolve;
      });
    },
    true,
  );
  const pointerUp = () => {
    if (!pressed) return;
    pressed = null;
    // The click comes in the same task as the pointerup, after it: a message is a task of its own (and no timer,
    // which a page's paused clock would hold).
    const channel = new MessageChannel();
    channel.port1.onmessage = released;
    channel.port2.postMessage(0);
  };
  addEventListener('pointerup', pointerUp, true);
  addEventListener('pointercancel', pointerUp, true);
  // A window left with the button down (another window brought to the front) may never see it come up.
  addEventListener('blur', pointerUp);

  /**
   * Text with its control characters written out (`\u0000`, `\u001b`, a bidirectional override `\u202e`), as the
   * server writes them into the page (printable in functions/domain/unicode.ts): a receiver's answer or an error quoted
   * in a message is the sender's text.
   */
  const CONTROL =
    // biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is what it is for
    /\r(?!\n)|[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
  const printable = (text) =>
    String(text).replace(CONTROL, (c) => (c === '\r' ? '\\r' : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));

  function say(text, kind) {
    flash.textContent = printable(text);
    flash.className = kind || '';
  }

  /**
   * Where the keyboard was, as a selector of the same control in a fresh page (by what it acts on: Pause becomes
   * Resume, Redrive becomes Resend), or null: a refresh replaces the page, which would send the focus to its top.
   */
  function focusTarget(el) {
    // A control of the page (or one a live refresh already replaced), not the header's links.
    if (!el || el === content || (el.isConnected && !content.contains(el))) return null;
    const d = el.dataset;
    if (el.id === 'redrive' || el.id === 'resend') return '#redrive, #resend';
    if (d.endpointAction) return `button[data-endpoint-action][data-type="${CSS.escape(d.type)}"]`;
    if (d.testDelivery) return `button[data-test-delivery="${CSS.escape(d.testDelivery)}"]`;
    if (d.plan) return `button[data-plan="${CSS.escape(d.plan)}"]`;
    if (d.recover) return `button[data-plan="${CSS.escape(d.recover)}"]`;
    // getAttribute: the form's `id` property is its field named id.
    if (el.form?.getAttribute('id') === 'filters' && el.name) return `#filters [name="${CSS.escape(el.name)}"]`;
    if (el.name === 'since') return `input[name="since"][data-type="${CSS.escape(d.type)}"]`;
    const details = el.tagName === 'SUMMARY' ? el.parentElement : null;
    if (details?.dataset.file) return `details[data-file="${CSS.escape(details.dataset.file)}"] > summary`;
    if (details?.dataset.attempt) return `details[data-attempt="${CSS.escape(details.dataset.attempt)}"] > summary`;
    if (details?.dataset.receiverError)
      return `details[data-receiver-error="${CSS.escape(details.dataset.receiverError)}"] > summary`;
    if (details?.dataset.keep) return `details[data-keep="${CSS.escape(details.dataset.keep)}"] > summary`;
    if (el.tagName === 'A' && el.getAttribute('href')) return `a[href="${CSS.escape(el.getAttribute('href'))}"]`;
    return null;
  }

  /** How long the live poll waits for the gateway's answer, ms; the page's refresh (a page render) waits longer. */
  const POLL_ANSWER_MS = 10000;
  const REFRESH_ANSWER_MS = 30000;

  /**
   * A GET of the gateway and its answer's text, given up after `ms` (by the page's own timers): a gateway that takes
   * the connection but never answers (hung, stopped in a debugger) is then said to be unreachable, not "live" over a
   * page that no longer changes.
   */
  async function getWithin(url, ms) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), ms);
    try {
      const response = await fetch(url, { cache: 'no-store', signal: controller.signal });
      return { response, text: await response.text() };
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Swaps in the page's fresh fragment, once no mouse button is held down on it; the keyboard stays where it is then,
   * else goes back to `from` (the control pressed, which lost it while disabled; else the one focused when asked).
   * `live`: the poll's refresh, which leaves the page as it is when the fragment is the one it swapped in last (a
   * button's refresh always swaps: the button pressed is put back as the page has it). False when a live refresh was
   * dropped for the one under way.
   */
  async function refresh(from = document.activeElement, live = false) {
    if (!body.dataset.fragmentSrc) return true;
    while (refreshing) {
      if (live) return false;
      await refreshing.catch(() => {});
    }
    refreshing = swapFresh(from, live);
    try {
      await refreshing;
    } finally {
      refreshing = null;
    }
    return true;
  }

  async function swapFresh(from, live) {
    const { response, text } = await getWithin(body.dataset.fragmentSrc, REFRESH_ANSWER_MS);
    // 404, 500 and an HTML 503 are pages of the console too (not found; could not be built, and why; its data folder
    // refused a read, out of file descriptors among others, and what to do): shown as they come. The gateway's own
    // 503 while it starts or stops (JSON: STARTING, STOPPING) is no page: the page stays as it is.
    const html = /^text\/html/.test(response.headers.get('content-type') ?? '');
    const consolePage = response.status === 404 || response.status === 500 || (response.status === 503 && html);
    if (!response.ok && !consolePage) throw new Error(`HTTP ${response.status}`);
    // Nothing it shows changed (a conversation the page does not list, a run's next state): left as it is, what
    // the reader selected or scrolled to too.
    const fresh = document.createElement('template');
    fresh.innerHTML = text;
    if (live && fresh.innerHTML === shown) return;
    while (pressed) await pressed;
    shown = fresh.innerHTML;
    // Where the keyboard is now (the reader may have gone on to a field while the page was fetched), else the control
    // pressed (disabled while it ran, it lost the keyboard to the page's top).
    // The page's main counts as its top: a press on the button while it was disabled (a double click's second) gave
    // the keyboard to the main, its nearest focusable ancestor.
    const active = document.activeElement;
    const focus = focusTarget(active && active !== body && active !== content ? active : from);
    // What the reader opened or closed stays so: an export document (by file), a receiver's answer (by attempt), a
    // receiver's last error (by type), the Analytics page's table per hour (data-keep).
    const kept = 'details[data-file], details[data-attempt], details[data-receiver-error], details[data-keep]';
    const keyOf = (d) =>
      d.dataset.file
        ? `file:${d.dataset.file}`
        : d.dataset.attempt
          ? `attempt:${d.dataset.attempt}`
          : d.dataset.keep
            ? `keep:${d.dataset.keep}`
            : `receiver:${d.dataset.receiverError}`;
    const was = new Map([...content.querySelectorAll(kept)].map((d) => [keyOf(d), d.open]));
    // What the operator typed and has not submitted stays too: a recover form's since field (another type's Pause
    // refreshes the page), the list's filters; and the field the keyboard is in, as it is, with its text selected or
    // its caret where it was (a field selected whole and then cleared kept the page's new text instead).
    const typedKey = (i) => (i.dataset.type ? `since:${i.dataset.type}` : `filter:${i.name}`);
    const typedFields = 'input[name="since"][data-type], #filters input[name]';
    const typed = new Map(
      [...content.querySelectorAll(typedFields)]
        .filter((i) => i.value !== i.defaultValue || i === active)
        .map((i) => [typedKey(i), { value: i.value, invalid: i.getAttribute('aria-invalid') }]),
    );
    const selection =
      content.contains(active) && active.matches(typedFields)
        ? [active.selectionStart, active.selectionEnd, active.selectionDirection]
        : null;
    // A planned recover stays offered, as planned (a delivery meanwhile refreshes the Endpoints page).
    const planned = new Map(
      [...content.querySelectorAll('button[data-recover]')].filter((b) => !b.hidden).map((b) => [b.dataset.recover, b]),
    );
    content.innerHTML = text;
    for (const button of content.querySelectorAll('button[data-recover]')) {
      const was = planned.get(button.dataset.recover);
      if (!was) continue;
      button.replaceWith(was);
    }
    for (const d of content.querySelectorAll(kept)) {
      const open = was.get(keyOf(d));
      if (open !== undefined) d.open = open;
    }
    for (const input of content.querySelectorAll(typedFields)) {
      const entry = typed.get(typedKey(input));
      if (!entry) continue;
      input.value = entry.value;
      if (entry.invalid) input.setAttribute('aria-invalid', entry.invalid);
    }
    const focused = focus ? content.querySelector(focus) : null;
    focused?.focus();
    if (selection && focused?.matches(typedFields)) focused.setSelectionRange(...selection);
    body.dataset.refreshedAt = new Date().toISOString();
  }

  /** How often the page asks whether anything changed while the gateway answers, ms. */
  const POLL_MS = 1000;
  /** The longest wait between two asks while the gateway does not answer, ms. */
  const MAX_UNREACHABLE_WAIT_MS = 30000;
  /**
   * Asks in a row the gateway did not answer: the wait before the next doubles with each (1 s, 2 s, 4 s … 30 s), so a
   * page left open on a stopped gateway does not log a failed request every second; back to POLL_MS once it answers.
   */
  let misses = 0;

  /**
   * The least time between two live refreshes, ms, as the server set it (the Endpoints page, whose rows change with
   * every delivery on a busy gateway); a change seen sooner is refreshed once that time is up. 0: at once.
   */
  const minRefreshMs = Number(body.dataset.minRefreshMs) || 0;
  /** When the poll last refreshed the page (Date.now()), or -Infinity. */
  let liveRefreshedAt = Number.NEGATIVE_INFINITY;

  /** Whether the last poll got an error answer: the page then shows the gateway's error page, refreshed once. */
  let failing = false;
  /** When the gateway last did not answer (its first miss in a row), or null while it answers. */
  let unreachableSince = null;

  /**
   * The header's state (a status: a screen reader says it when it changes), written only when it changes: a poll
   * every second rewriting the same words would have it said again and again.
   */
  function showLive(kind, text, title) {
    const className = `live ${kind}`;
    if (live.className !== className) live.className = className;
    if (live.textContent !== text) live.textContent = text;
    if (live.title !== printable(title)) live.title = printable(title);
  }

  /** How long ago, in one short unit, as the server says it (functions/domain/iso-date.ts, `age`). */
  function age(iso) {
    const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (s < 120) return `${s}s`;
    if (s < 7200) return `${Math.round(s / 60)}m`;
    if (s < 172800) return `${Math.round(s / 3600)}h`;
    return `${Math.round(s / 86400)}d`;
  }

  /**
   * The ages the page shows (`since <time> (<age> ago)`: a paused or disabled receiver) kept current: the page is
   * refreshed only when what it shows changes, and a pause an hour old would still say "1s ago".
   */
  function ageTimes() {
    for (const el of content.querySelectorAll('[data-age-of]')) {
      const text = `since ${el.dataset.ageOf} (${age(el.dataset.ageOf)} ago)`;
      if (el.textContent !== text) el.textContent = text;
    }
    // A receiver's Retry-After (`in <age>`): how long it still holds its deliveries, or that its time is over.
    for (const el of content.querySelectorAll('[data-age-until]')) {
      const left = Date.parse(el.dataset.ageUntil) - Date.now();
      const text = left > 0 ? `in ${age(new Date(Date.now() - left).toISOString())}` : 'over now: reload';
      if (el.textContent !== text) el.textContent = text;
    }
  }

  /** The header while the browser's own network is cut (its offline): the gateway may well be running. */
  function showBrowserOffline() {
    showLive(
      'offline',
      'browser offline',
      `this browser is offline (its network is cut) since ${unreachableSince}: the page shows what it had then, and asks again once it is back`,
    );
  }

  async function poll() {
    ageTimes();
    try {
      if (body.dataset.versionSrc) {
        const { response, text } = await getWithin(body.dataset.versionSrc, POLL_ANSWER_MS);
        let answer = {};
        try {
          answer = JSON.parse(text);
        } catch {
          // not JSON: said by its status below
        }
        if (!response.ok) {
          // The gateway answers but cannot say what changed (a damaged data folder): not "live" over a stale page;
          // the page is refreshed once, to the console's error page that says why.
          if (!failing) await refresh().catch(() => {});
          failing = true;
          unreachableSince = null;
          showLive('offline', 'gateway error', answer.error?.message || `HTTP ${response.status}`);
        } else {
          const changed = answer.version && answer.version !== version;
          // Not yet due: `version` is left as it was, so that the next poll after the wait refreshes it.
          // Dropped for a press's refresh under way: `version` too is left as it was (that refresh may have fetched
          // the page before this change; before, the page showed it only at the next change).
          if (
            (failing || (changed && Date.now() - liveRefreshedAt >= minRefreshMs)) &&
            (await refresh(document.activeElement, !failing))
          ) {
            version = answer.version;
            failing = false;
            liveRefreshedAt = Date.now();
          }
          unreachableSince = null;
          if (answer.stopping)
            showLive(
              'offline',
              'gateway stopping',
              'the gateway is stopping: the conversations in flight finish, new ones are refused until it is started again',
            );
          else showLive('ok', 'live', liveTitle);
        }
      }
      misses = 0;
    } catch {
      misses++;
      // Stopped or restarting: the page keeps what it showed, and says since when that is.
      unreachableSince = unreachableSince || new Date().toTimeString().slice(0, 8);
      // The browser's own network cut (offline): the gateway may be running; said so, not as a stopped gateway.
      if (navigator.onLine === false) showBrowserOffline();
      else
        showLive(
          'offline',
          'gateway not reachable',
          `the gateway did not answer since ${unreachableSince}: the page shows what it had then`,
        );
    }
    polling = false;
    schedule(misses === 0 ? POLL_MS : Math.min(MAX_UNREACHABLE_WAIT_MS, POLL_MS * 2 ** (misses - 1)));
  }

  /** The next poll's timer, and whether a poll is under way. */
  let pollTimer = null;
  let polling = false;
  function schedule(ms) {
    clearTimeout(pollTimer);
    pollTimer = setTimeout(() => {
      polling = true;
      poll();
    }, ms);
  }

  // The browser's network back (after its offline): asked at once, not after the wait the misses meanwhile grew to
  // (up to 30 s of a page still saying it is offline).
  window.addEventListener('online', () => {
    misses = 0;
    if (!polling) schedule(0);
  });
  // Cut: said at once.
  window.addEventListener('offline', () => {
    if (!live?.classList.contains('ok')) return;
    unreachableSince = new Date().toTimeString().slice(0, 8);
    showBrowserOffline();
  });

  /**
   * A request to the gateway's operator routes (loopback, Host and Origin checked there): the response and its JSON
   * answer. A gateway that does not answer (stopped, restarting) is said so, not as the browser's "Failed to fetch".
   */
  async function call(url, init) {
    let response;
    try {
      response = await fetch(url, { cache: 'no-store', ...init });
    } catch {
      if (navigator.onLine === false)
        throw Object.assign(new Error('this browser is offline (its network is cut): the gateway did not answer'), {
          unanswered: true,
          offline: true,
        });
      throw Object.assign(new Error('the gateway did not answer (is npm start still running?)'), { unanswered: true });
    }
    const result = await response.json().catch(() => ({}));
    return { response, result };
  }

  /** POST to an operator route; the JSON answer, or an error. */
  async function post(url) {
    const { response, result } = await call(url, { method: 'POST' });
    if (!response.ok) throw new Error(result.error?.message || `HTTP ${response.status}`);
    return result;
  }

  /**
   * What a press adds when the gateway did not answer it: the browser cannot tell a gateway stopped before the press
   * from one killed while it worked (docs/operations.md, "After a crash"), so what it may have done (`after`), and
   * what shows it once the gateway runs again.
   */
  const ifCut = (error, during, after) =>
    error.offline
      ? `; whether the ${during} was made, this page shows once the browser is back online`
      : error.unanswered
        ? `; if it stopped during the ${during}, ${after}`
        : '';

  function outcome(verb, id, result) {
    const status = result.status || 'error';
    const detail =
      result.status === 'failed'
        ? ` — ${result.error || result.envelope?.last_error || ''}`
        : result.status === 'held'
          ? ` — its receiver held it back${result.held_by ? `: ${result.held_by}` : ' (paused, disabled or at its rate: see Endpoints); nothing was attempted'}`
          : result.status === 'skipped'
            ? ` — ${result.error || 'another redelivery of it was running; look again in a moment'}`
            : result.error
              ? ` — ${result.error}`
              : '';
    say(
      `${verb} of ${id}: ${status}${result.execution_name ? ` (execution ${result.execution_name})` : ''}${detail}`,
      status === 'delivered' || status === 'already_delivered' ? 'ok' : 'bad',
    );
  }

  async function deliveryButton(button, verb, path) {
    const id = button.dataset.id;
    const label = button.textContent;
    button.disabled = true;
    button.textContent = `${verb === 'Redrive' ? 'Redriving' : 'Resending'}…`;
    say(`${verb === 'Redrive' ? 'Redriving' : 'Resending'} ${id}…`, 'pending');
    try {
      outcome(verb, id, await post(`/local/deliveries/${encodeURIComponent(id)}/${path}`));
    } catch (error) {
      const cut = ifCut(
        error,
        verb.toLowerCase(),
        'it may have reached the receiver: once it runs again, its "recovered" line and this page show what became of it',
      );
      say(`${verb} of ${id} failed: ${error.message}${cut}`, 'bad');
    } finally {
      // Whatever the answer, the button is offered again: the refresh after it shows what the page now offers (Resend
      // once delivered), but may not come (the gateway gone since, a live refresh under way that found no change).
      button.textContent = label;
      button.disabled = false;
    }
  }

  const sinceOf = (type) => content.querySelector(`input[name="since"][data-type="${type}"]`).value.trim();
  const recoverQuery = (type, since) =>
    `type=${encodeURIComponent(type)}${since ? `&since=${encodeURIComponent(since)}` : ''}`;

  /** How many of a plan's conversations its message names (the rest: the CLI's dry run lists them). */
  const PLAN_SHOWN = 5;

  /**
   * Which conversations a plan would redrive, as the operator decides whether to: `: <id> (dead, 5 tries), <id>
   * (pending, 1 try) and 3 more (…--dry-run lists them all)`; before, the plan said only how many.
   */
  function plannedList(type, since, result) {
    const rows = result.deliveries || [];
    if (rows.length === 0) return '';
    const named = rows.map(
      (d) => `${d.conversation_id} (${d.state}, ${d.attempts} ${d.attempts === 1 ? 'try' : 'tries'})`,
    );
    const more = result.count - rows.length;
    const dryRun = `npx webhook-gateway deliveries redrive --all --type ${type}${since ? ` --since ${since}` : ''} --dry-run --limit ${result.count}`;
    return `: ${named.join(', ')}${more > 0 ? ` and ${more} more (${dryRun} lists them all)` : ''}`;
  }

  async function plan(button) {
    const type = button.dataset.plan;
    const since = sinceOf(type);
    // Looked up once the answer is in: a live refresh meanwhile replaced the page's form and its buttons.
    const confirm = () => content.querySelector(`button[data-recover="${type}"]`);
    const field = () => content.querySelector(`input[name="since"][data-type="${type}"]`);
    // A since that is no ISO 8601 date or date-time with a zone is said here, by the pattern the server put on the
    // field (the one it checks with), not sent: its 400 was logged by the browser as a resource that failed to load.
    const pattern = field()?.getAttribute('pattern');
    if (since && pattern && !new RegExp(`^(?:${pattern})$`, 'u').test(since)) {
      field()?.setAttribute('aria-invalid', 'true');
      say(
        `Plan for ${type}: since must be an ISO 8601 date or date-time with a zone (e.g. 2026-11-29 or 2026-11-29T08:00:00Z), got "${since}"`,
        'bad',
      );
      const button = confirm();
      if (button) button.hidden = true;
      return;
    }
    // A slow gateway: the press is seen at once, not only once the count comes.
    say(`Planning ${type}: counting the deliveries owed ${since ? `since ${since}` : 'at any time'}…`, 'pending');
    try {
      const { response, result } = await call(
        `/local/deliveries/plan?${recoverQuery(type, since)}&limit=${PLAN_SHOWN}`,
      );
      // A since the gateway refuses: the field is marked (its text kept as typed), the message says why.
      if (response.status === 400) field()?.setAttribute('aria-invalid', 'true');
      if (!response.ok) throw new Error(result.error?.message || `HTTP ${response.status}`);
      field()?.removeAttribute('aria-invalid');
      // A paused or disabled receiver holds an operator's redrive too (docs/operations.md): said before it is run.
      const hold = heldBy(type);
      say(
        `${result.count} ${type} ${result.count === 1 ? 'delivery' : 'deliveries'} owed ${since ? `since ${since}` : 'at any time'} would be redriven, oldest first${plannedList(type, since, result)}${hold && result.count > 0 ? `; but ${hold}: each would be held back, nothing attempted, until it is resumed` : ''}`,
        'pending',
      );
      // None when the page was replaced meanwhile by one without the form (the console's error page): said all the same.
      const button = confirm();
      if (!button) return;
      button.dataset.since = since;
      button.dataset.count = String(result.count);
      button.textContent = `Recover ${result.count}`;
      button.setAttribute('aria-label', `Recover ${result.count} ${type}`);
      button.hidden = result.count === 0;
      // A plan made again after a recover (which used its button up) can be recovered again.
      button.disabled = false;
    } catch (error) {
      say(`Plan for ${type}: ${error.message}`, 'bad');
      const button = confirm();
      if (button) button.hidden = true;
    }
  }

  /**
   * The receiver's state when it holds every delivery, an operator's redrive too, as the server says it (heldState in
   * functions/domain/endpoints.ts): "<type> is paused since <time> (<age> ago)" (or disabled), else null.
   */
  function heldBy(type) {
    const row = content.querySelector(`#endpoints tr[data-type="${CSS.escape(type)}"]`);
    const state = row?.dataset.state;
    if (state !== 'paused' && state !== 'disabled') return null;
    const since = row.querySelector('.state-since')?.dataset.ageOf;
    return `${type} is ${state}${since ? ` since ${since} (${age(since)} ago)` : ''}`;
  }

  async function recover(button) {
    const type = button.dataset.recover;
    button.disabled = true;
    say(`Recovering ${button.dataset.count} ${type} deliveries…`, 'pending');
    try {
      const result = await post(`/local/deliveries/redrive?${recoverQuery(type, button.dataset.since)}`);
      const counts = Object.entries(result.counts)
        .map(([k, n]) => `${n} ${k.replace('_', ' ')}`)
        .join(', ');
      // Delivered by this recover or meanwhile (another tab, the schedule): nothing is owed any more.
      const done = (result.counts.delivered ?? 0) + (result.counts.already_delivered ?? 0);
      const held = result.counts.held ?? 0;
      say(
        result.count === 0
          ? `Recovered ${type}: nothing to redrive, none is owed any more ${button.dataset.since ? `since ${button.dataset.since}` : 'at all'} (the plan said ${button.dataset.count}: delivered or redriven meanwhile)`
          : held === result.count
            ? `Recover ${type}: nothing attempted, its receiver held back all ${held} (${result.results[0]?.held_by || 'paused, disabled or at its rate: see its state above'}); they stay owed`
            : `Recovered ${type}: ${result.count} redriven${counts ? ` (${counts})` : ''}`,
        done === result.count ? 'ok' : 'bad',
      );
      // The plan is used up: not offered again (the refresh keeps a button still offered), until planned again.
      button.hidden = true;
    } catch (error) {
      const cut = ifCut(
        error,
        'recover',
        'some of them may have reached the receiver: once it runs again, its "recovered" line says what became of them, and a new plan what is still owed',
      );
      say(`Recover ${type} failed: ${error.message}${cut}`, 'bad');
      button.disabled = false;
    }
  }

  async function endpointAction(button) {
    const { endpointAction: action, type } = button.dataset;
    button.disabled = true;
    say(`${action === 'pause' ? 'Pausing' : 'Resuming'} ${type}…`, 'pending');
    try {
      const view = await post(`/local/endpoints/${encodeURIComponent(type)}/${action}`);
      // A Resume of a receiver held by its Retry-After (docs/operations.md, "Retry-After"): what it released.
      const released =
        button.dataset.releases === 'retry-after'
          ? ': its Retry-After is forgotten; its queued deliveries go out when the schedule finds them due, a redrive or resend at once'
          : '';
      say(`${type} is ${view.status}${released}`, 'ok');
    } catch (error) {
      const cut = ifCut(
        error,
        action,
        `the ${action} may or may not have been made: once it runs again, this page (or "endpoints list") shows whether ${type} is paused`,
      );
      say(`${action} ${type} failed: ${error.message}${cut}`, 'bad');
      button.disabled = false;
    }
  }

  /** The Endpoints page's Send test: one signed test delivery to the receiver, and what it answered. */
  async function testDelivery(button) {
    const type = button.dataset.testDelivery;
    button.disabled = true;
    say(`Sending a test delivery to ${type}…`, 'pending');
    try {
      const { attempt, response, signing, delivered } = await post(`/local/endpoints/${encodeURIComponent(type)}/test`);
      const answer = attempt.status_code ? `HTTP ${attempt.status_code}` : attempt.error;
      const body = response?.body ? ` — ${response.body.slice(0, 200)}` : '';
      say(
        `Test delivery to ${type} (${signing}): ${answer} in ${attempt.duration_ms} ms${body}`,
        delivered ? 'ok' : 'bad',
      );
    } catch (error) {
      say(`Test delivery to ${type} failed: ${error.message}`, 'bad');
    } finally {
      button.disabled = false;
    }
  }

  document.addEventListener('click', async (event) => {
    const target = event.target instanceof Element ? event.target.closest('button') : null;
    if (!target) return;
    // The second click of a double click (a keyboard's Enter is click 0, a single click 1) acts on nothing: the first
    // one's answer moved the page under the pointer (its message line appeared, a row grew), so it would land on
    // another receiver's or another delivery's button and run that too.
    if (event.detail > 1) return;
    if (target.id === 'redrive') await deliveryButton(target, 'Redrive', 'redrive');
    else if (target.id === 'resend') await deliveryButton(target, 'Resend', 'resend');
    else if (target.dataset.endpointAction) await endpointAction(target);
    else if (target.dataset.testDelivery) await testDelivery(target);
    else if (target.dataset.recover) await recover(target);
    else return; // Plan is a form's submit button: planned on the form's submit, below.
    await refresh(target).catch(() => {});
    // Disabled while it ran, the button lost the keyboard to the page's top; a refresh that did not come (the gateway
    // gone) did not put it back: the keyboard stays where it was.
    if (target.isConnected && (document.activeElement === body || document.activeElement === content)) target.focus();
  });

  /** The longest list address the filters are sent in, well under the gateway's 16 KB for a request's line and headers. */
  const MAX_FILTER_ADDRESS = 8000;

  /**
   * Opens the list filtered, once the gateway answers: a stopped gateway would leave the console for the browser's
   * "refused to connect" page, and what was typed with it. Instead the page stays, says so, as the other actions do.
   */
  async function filterTo(address) {
    try {
      await getWithin('/console/api/version', POLL_ANSWER_MS);
    } catch {
      say(
        navigator.onLine === false
          ? 'Not filtered: this browser is offline (its network is cut); press Filter again once it is back'
          : 'Not filtered: the gateway did not answer (is npm start still running?); press Filter again once it is',
        'bad',
      );
      return;
    }
    location.assign(address);
  }

  // A recover form, submitted by its Plan button or by Enter in its since field: planned here, never sent as a
  // navigation (the page, and what was typed, stay).
  document.addEventListener('submit', (event) => {
    const form = event.target instanceof HTMLFormElement ? event.target : null;
    // The list's filters: the address keeps only those given (a shared or reloaded address shows the same list).
    // getAttribute: the form's `id` property is its field named id.
    if (form?.getAttribute('id') === 'filters') {
      event.preventDefault();
      const params = new URLSearchParams();
      for (const [name, value] of new FormData(form)) if (String(value).trim()) params.set(name, String(value).trim());
      const address = params.size > 0 ? `/console?${params}` : '/console';
      // The gateway refuses a request line and headers over 16 KB (431, its JSON in place of the console): a filter
      // that long (a page of text pasted in a field) is refused here, the page and what was typed kept.
      if (address.length > MAX_FILTER_ADDRESS) {
        const longest = [...form.querySelectorAll('input[name]')].reduce((a, b) =>
          b.value.length > a.value.length ? b : a,
        );
        longest.setAttribute('aria-invalid', 'true');
        longest.focus();
        say(
          `Not filtered: ${longest.name} has ${longest.value.length} characters, too long to send (no id, key, source or date is that long)`,
          'bad',
        );
        return;
      }
      filterTo(address);
      return;
    }
    if (!form?.dataset.planForm) return;
    event.preventDefault();
    const button = content.querySelector(`button[data-plan="${CSS.escape(form.dataset.planForm)}"]`);
    if (button) plan(button);
  });

  schedule(POLL_MS);
})();
