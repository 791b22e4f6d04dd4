// team.js draws fbpub's scheduling page (GET /team/<group>, /team?user=…):
// one row per member over a week in the viewer's time zone, their busy
// times shaded by FBTYPE, and the common free slots. It asks fbpub's own
// endpoints with the page's credentials: the group URL as JSON for the
// busy times (with the time outside working hours marked, as slots count
// it), and /freebusy/slots. Names are written with textContent only.
//
// For tests and people's tools, each busy block carries data-user,
// data-start, data-end (UTC, RFC 3339) and data-fbtype; each slot
// data-slot-start and data-slot-end; the grid data-window-start and
// data-window-end; and <main> data-state "ready" (or "error") when done.
(function () {
  'use strict';

  const DAY = 86400000;
  const main = document.getElementById('team');
  const ds = main.dataset;
  const form = document.getElementById('controls');
  const statusLine = document.getElementById('status');
  const grid = document.getElementById('grid');
  const slotList = document.getElementById('slots');
  const durationSelect = document.getElementById('duration');
  const users = Array.from(form.querySelectorAll('input[name=user]'), (e) => e.value);
  const group = ds.group;
  const duration = durationSelect.value;
  const durationLabel = durationSelect.options[durationSelect.selectedIndex].textContent;
  const tentativeFree = document.getElementById('tentative').checked;

  function browserZone() {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
    } catch (e) {
      return 'UTC';
    }
  }

  function fail(message) {
    statusLine.textContent = message;
    statusLine.classList.add('error');
    main.dataset.state = 'error';
  }

  let tz = ds.tz || browserZone();
  let tzNote = '';
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
  } catch (e) {
    tzNote = ' This browser does not know the time zone ' + tz + '.';
    tz = 'UTC';
  }
  document.getElementById('tz').placeholder = browserZone();

  // wall returns the wall-clock fields of the instant ms in tz.
  const fieldsFormat = new Intl.DateTimeFormat('en-US', {
    timeZone: tz, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric',
    hour: 'numeric', minute: 'numeric', second: 'numeric',
  });
  function wall(ms) {
    const w = {};
    for (const p of fieldsFormat.formatToParts(new Date(ms))) {
      if (p.type !== 'literal') w[p.type] = Number(p.value);
    }
    return w;
  }
  // offset is tz's offset from UTC at the instant ms, in milliseconds.
  function offset(ms) {
    const w = wall(ms);
    return Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second) - Math.floor(ms / 1000) * 1000;
  }
  // zoned is the instant of the wall time y-m-d h:00 in tz (for a time
  // that a change of clocks skips, the instant the clocks move).
  function zoned(y, m, d, h) {
    const guess = Date.UTC(y, m - 1, d, h);
    const t = guess - offset(guess);
    return guess - offset(t);
  }
  function isoDate(ms) {
    return new Date(ms).toISOString().slice(0, 10);
  }
  function rfc3339(ms) {
    return new Date(ms).toISOString().replace('.000Z', 'Z');
  }

  // The week: Monday to Monday in tz, around start= or the server's today.
  const now = Date.parse(ds.now) || Date.now();
  let base;
  if (/^\d{4}-\d{2}-\d{2}$/.test(ds.start)) {
    const [y, m, d] = ds.start.split('-').map(Number);
    base = Date.UTC(y, m - 1, d);
  } else {
    const w = wall(now);
    base = Date.UTC(w.year, w.month - 1, w.day);
  }
  const monday = base - ((new Date(base).getUTCDay() + 6) % 7) * DAY;
  const days = [];
  for (let i = 0; i <= 7; i++) {
    const c = new Date(monday + i * DAY);
    const y = c.getUTCFullYear(), m = c.getUTCMonth() + 1, d = c.getUTCDate();
    days.push({ y, m, d, civil: c, at: zoned(y, m, d, 0) });
  }
  const winStart = days[0].at, winEnd = days[7].at;
  document.getElementById('start').value = isoDate(base);

  // Previous, this and next week keep every other parameter.
  function link(id, start) {
    const q = new URLSearchParams(location.search);
    if (start) q.set('start', start); else q.delete('start');
    document.getElementById(id).href = '?' + q.toString();
  }
  link('prev', isoDate(monday - 7 * DAY));
  link('this', '');
  link('next', isoDate(monday + 7 * DAY));

  const dayFormat = new Intl.DateTimeFormat('en-GB', { timeZone: 'UTC', weekday: 'short', day: 'numeric', month: 'short' });
  const timeFormat = new Intl.DateTimeFormat('en-GB', { timeZone: tz, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
  const whenFormat = new Intl.DateTimeFormat('en-GB', { timeZone: tz, weekday: 'short', day: 'numeric', month: 'short' });
  function range(s, e) {
    const from = whenFormat.format(s), to = whenFormat.format(e - 1);
    if (from === to) return from + ', ' + timeFormat.format(s) + '–' + timeFormat.format(e);
    return from + ' ' + timeFormat.format(s) + ' – ' + whenFormat.format(e) + ' ' + timeFormat.format(e);
  }

  // pos maps an instant to its place in a row (percent): each day of the
  // week is one seventh, whatever its length in hours.
  function pos(ms) {
    if (ms <= winStart) return 0;
    if (ms >= winEnd) return 100;
    let i = 0;
    while (ms >= days[i + 1].at) i++;
    return ((i + (ms - days[i].at) / (days[i + 1].at - days[i].at)) * 100) / 7;
  }
  function place(el, s, e) {
    const left = pos(s);
    el.style.left = left + '%';
    el.style.width = Math.max(pos(e) - left, 0.1) + '%';
  }
  function make(tag, cls, text) {
    const el = document.createElement(tag);
    if (cls) el.className = cls;
    if (text !== undefined) el.textContent = text;
    return el;
  }
  function row(cls, name) {
    const r = make('div', 'row ' + cls);
    const n = make('div', 'name');
    const track = make('div', 'track');
    if (name !== undefined) n.append(make('span', 'who', name));
    // Weekends, days and six-hour marks behind everything.
    for (let i = 0; i < 7; i++) {
      const dow = days[i].civil.getUTCDay();
      if (dow === 0 || dow === 6) {
        const w = make('span', 'weekend');
        w.setAttribute('aria-hidden', 'true');
        place(w, days[i].at, days[i + 1].at);
        track.append(w);
      }
      for (const h of [0, 6, 12, 18]) {
        if (i === 0 && h === 0) continue;
        const line = make('span', h === 0 ? 'line day' : 'line');
        line.setAttribute('aria-hidden', 'true');
        line.style.left = pos(h === 0 ? days[i].at : zoned(days[i].y, days[i].m, days[i].d, h)) + '%';
        track.append(line);
      }
    }
    r.append(n, track);
    return { el: r, name: n, track };
  }

  const FBTYPES = {
    'BUSY': ['busy', 'busy'],
    'BUSY-TENTATIVE': ['tentative', 'tentative'],
    'BUSY-UNAVAILABLE': ['unavailable', 'unavailable (out of office, or outside working hours)'],
  };
  const STATUS = {
    'no-authority': 'no authority: no calendar of this name that you may see',
    'unknown': 'unknown: fbpub publishes no calendar for this name',
  };

  function draw(fb, sl) {
    grid.replaceChildren();
    grid.dataset.windowStart = fb.start;
    grid.dataset.windowEnd = fb.end;
    const slots = sl.slots.map((s) => ({ start: s.start, end: s.end, s: Date.parse(s.start), e: Date.parse(s.end) }));

    const head = row('head');
    head.name.append(make('span', 'zone', tz));
    for (let i = 0; i < 7; i++) {
      const label = make('span', 'daylabel', dayFormat.format(days[i].civil));
      place(label, days[i].at, days[i + 1].at);
      head.track.append(label);
      for (const h of [6, 12, 18]) {
        const tick = make('span', 'tick', String(h).padStart(2, '0'));
        tick.setAttribute('aria-hidden', 'true');
        tick.style.left = pos(zoned(days[i].y, days[i].m, days[i].d, h)) + '%';
        head.track.append(tick);
      }
    }
    grid.append(head.el);

    let hidden = 0;
    for (const m of fb.members) {
      const r = row('member', m.user);
      r.el.dataset.member = m.user;
      r.el.dataset.status = m.status;
      r.name.title = m.user;
      if (m.status !== 'ok') {
        hidden++;
        r.name.append(make('span', 'status', STATUS[m.status] || m.status));
        r.track.classList.add('none');
        r.track.append(make('span', 'none-text', 'no information'));
        grid.append(r.el);
        continue;
      }
      for (const s of slots) {
        const shade = make('span', 'shade');
        shade.setAttribute('aria-hidden', 'true');
        place(shade, s.s, s.e);
        r.track.append(shade);
      }
      const busy = m.busy.filter((b) => Date.parse(b.end) > winStart && Date.parse(b.start) < winEnd);
      r.track.setAttribute('aria-label', m.user + ': ' + busy.length + ' busy or unavailable times');
      for (const b of busy) {
        const [cls, label] = FBTYPES[b.fbtype] || FBTYPES.BUSY;
        const s = Date.parse(b.start), e = Date.parse(b.end);
        const el = make('span', 'block ' + cls);
        el.dataset.user = m.user;
        el.dataset.start = b.start;
        el.dataset.end = b.end;
        el.dataset.fbtype = b.fbtype;
        el.title = m.user + ': ' + label + ', ' + range(s, e);
        el.setAttribute('role', 'img');
        el.setAttribute('aria-label', el.title);
        place(el, s, e);
        r.track.append(el);
      }
      grid.append(r.el);
    }

    const sr = row('slots', 'Everyone free');
    sr.name.append(make('span', 'status', durationLabel + ' or more'));
    slotList.replaceChildren();
    for (const s of slots) {
      const text = range(s.s, s.e);
      const el = make('span', 'slot');
      el.dataset.slotStart = s.start;
      el.dataset.slotEnd = s.end;
      el.title = 'Everyone free: ' + text;
      el.setAttribute('role', 'img');
      el.setAttribute('aria-label', el.title);
      place(el, s.s, s.e);
      sr.track.append(el);
      slotList.append(make('li', '', text));
    }
    if (slots.length === 0) slotList.append(make('li', 'empty', 'No time this week when everyone is free for ' + durationLabel + '.'));
    grid.append(sr.el);

    const n = fb.members.length;
    let text = 'Week of ' + dayFormat.format(days[0].civil) + ' to ' + dayFormat.format(days[6].civil) + ', times in ' + tz + '. ' +
      n + (n === 1 ? ' member' : ' members') + ', ' + slots.length + (slots.length === 1 ? ' common free time' : ' common free times') +
      ' of ' + durationLabel + '.';
    if (hidden > 0) text += ' ' + hidden + ' not shown: their free/busy is not available to you.';
    text += tzNote;
    statusLine.textContent = text;
    main.dataset.state = 'ready';
  }

  async function get(path) {
    // Resolved without the page's user name and password, which a URL
    // may carry but fetch refuses: the browser sends the credentials it
    // used for the page.
    const url = new URL(path, location.href);
    url.username = '';
    url.password = '';
    const r = await fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
    if (!r.ok) {
      const msg = (await r.text()).trim();
      throw new Error(r.status === 401 ? 'Log in to see free/busy times.' : 'The server answered ' + r.status + ': ' + msg);
    }
    return r.json();
  }

  const who = group ? 'group=' + encodeURIComponent(group) : users.map((u) => 'user=' + encodeURIComponent(u)).join('&');
  const win = 'start=' + encodeURIComponent(rfc3339(winStart)) + '&end=' + encodeURIComponent(rfc3339(winEnd));
  const busyURL = ds.root + (group ? 'freebusy/group/' + encodeURIComponent(group) + '.vfb?' : 'freebusy/group.vfb?' + who + '&') +
    win + '&off_hours=unavailable';
  const slotsURL = ds.root + 'freebusy/slots?' + who + '&duration=' + encodeURIComponent(duration) +
    (tentativeFree ? '&tentative=free' : '') + '&' + win;
  Promise.all([get(busyURL), get(slotsURL)]).then(([fb, sl]) => draw(fb, sl), (err) => fail(err.message));
})();
