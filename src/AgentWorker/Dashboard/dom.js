// DOM helpers shared by the dashboard (app.js) and the API reference (api.js); loaded before either.
'use strict';

/** Builds an element: h('a', {href: '#/', class: 'x', onclick: f}, 'text', child). Text is always set as text, never as HTML. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) el.addEventListener(name.slice(2), value);
    else if (name === 'class') el.className = value;
    else if (value === true) el.setAttribute(name, '');
    else el.setAttribute(name, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** Replaces an element's content; arrays are flattened and null, undefined and false are skipped, as in h(). */
function fill(el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter(c => c !== undefined && c !== null && c !== false).map(c => (c instanceof Node ? c : String(c))));
}
