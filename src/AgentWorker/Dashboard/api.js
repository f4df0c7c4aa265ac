// API reference: renders this worker's OpenAPI document (/openapi/v1.json) as a page. No dependencies, no CDN.
'use strict';

/** Text with `code` spans, as the OpenAPI descriptions write them. */
function rich(text) {
  return (text || '').split('`').map((part, i) => (i % 2 ? h('code', {}, part) : part));
}

const anchor = (method, path) => `op-${method}-${path}`.replace(/[^A-Za-z0-9-]+/g, '-');
const schemaAnchor = name => `schema-${name}`;
const refName = ref => ref.split('/').pop();

/** A short, linked rendering of a schema's type: JobView, string | null, array of Finding, "queued" | "running" … */
function typeOf(schema) {
  if (!schema) return 'any';
  if (schema.$ref) return h('a', { href: `#${schemaAnchor(refName(schema.$ref))}` }, refName(schema.$ref));
  const parts = [];
  if (schema.oneOf || schema.anyOf) {
    (schema.oneOf || schema.anyOf).forEach((alt, i) => { if (i) parts.push(' | '); parts.push(typeOf(alt)); });
    return h('span', {}, parts);
  }
  if (schema.enum) return h('span', {}, schema.enum.map(v => JSON.stringify(v)).join(' | '));
  const types = Array.isArray(schema.type) ? schema.type : schema.type ? [schema.type] : [];
  types.forEach((t, i) => {
    if (i) parts.push(' | ');
    if (t === 'array') parts.push('array of ', typeOf(schema.items));
    else parts.push(schema.format && t !== 'null' ? `${t} (${schema.format})` : t);
  });
  return h('span', {}, parts.length ? parts : schema.properties ? 'object' : 'any');
}

function propertiesTable(schema) {
  const properties = Object.entries(schema.properties || {});
  if (properties.length === 0) return null;
  const required = new Set(schema.required || []);
  return h('div', { class: 'table-wrap' }, h('table', { class: 'cards-sm' },
    h('thead', {}, h('tr', {}, ['Property', 'Type', 'Required', 'Description'].map(x => h('th', { scope: 'col' }, x)))),
    h('tbody', {}, properties.map(([name, property]) => h('tr', {},
      h('td', { 'data-label': 'Property', class: 'mono' }, name),
      h('td', { 'data-label': 'Type', class: 'wrap' }, typeOf(property)),
      h('td', { 'data-label': 'Required' }, required.has(name) ? 'yes' : 'no'),
      h('td', { 'data-label': 'Description', class: 'wrap' }, rich(property.description)))))));
}

function examples(media, open) {
  const list = Object.entries(media.examples || {}).map(([name, ex]) => [ex.summary || name, ex.value]);
  if (media.example !== undefined) list.push(['Example', media.example]);
  return list.map(([title, value]) => h('details', { open },
    h('summary', {}, title),
    h('pre', { class: 'example', tabindex: '0' }, typeof value === 'string' ? value : JSON.stringify(value, null, 2))));
}

/** Request examples are shown open (they are what a client copies); response examples and schemas fold away. */
function content(body, open) {
  return Object.entries(body?.content || {}).map(([type, media]) => h('div', {},
    h('p', {}, h('code', {}, type), media.schema?.oneOf ? ' — one of:' : media.schema ? [' — ', typeOf(media.schema)] : ''),
    media.schema?.oneOf ? h('ul', {}, media.schema.oneOf.map(alt => h('li', {},
      alt.$ref ? typeOf(alt) : h('details', {}, h('summary', {}, rich(alt.description || 'object')), propertiesTable(alt))))) : null,
    examples(media, open)));
}

function operation(path, method, op, secured, sameAs) {
  const params = op.parameters || [];
  return h('section', { class: 'op', id: anchor(method, path), 'aria-labelledby': `${anchor(method, path)}-title` },
    h('h3', { id: `${anchor(method, path)}-title` }, h('span', { class: `method method-${method}` }, method.toUpperCase()), h('code', {}, path)),
    op.summary ? h('p', {}, op.summary, secured ? ' · ' : '', secured ? h('strong', {}, 'needs the bearer token') : '') : null,
    op.description ? h('p', { class: 'muted' }, rich(op.description)) : null,
    params.length ? [h('h4', {}, 'Parameters'), h('div', { class: 'table-wrap' }, h('table', { class: 'cards-sm' },
      h('thead', {}, h('tr', {}, ['Name', 'In', 'Type', 'Required', 'Description'].map(x => h('th', { scope: 'col' }, x)))),
      h('tbody', {}, params.map(p => h('tr', {},
        h('td', { 'data-label': 'Name', class: 'mono' }, p.name), h('td', { 'data-label': 'In' }, p.in),
        h('td', { 'data-label': 'Type' }, typeOf(p.schema)), h('td', { 'data-label': 'Required' }, p.required ? 'yes' : 'no'),
        h('td', { 'data-label': 'Description', class: 'wrap' }, rich(p.description)))))))] : null,
    sameAs ? h('p', {}, 'Takes the same request body and gives the same responses as ', h('a', { href: `#${sameAs.id}` }, sameAs.name), '.') : [
      op.requestBody ? [h('h4', {}, 'Request body'), op.requestBody.description ? h('p', { class: 'muted' }, rich(op.requestBody.description)) : null, content(op.requestBody, true)] : null,
      h('h4', {}, 'Responses'),
      Object.entries(op.responses || {}).map(([status, response]) => h('div', {},
        h('p', {}, h('strong', {}, status), ' ', response.description || ''),
        content(response, false)))]);
}

async function render() {
  const main = document.getElementById('main');
  let doc;
  try {
    const response = await fetch('/openapi/v1.json', { headers: { Accept: 'application/json' } });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    doc = await response.json();
  } catch (e) {
    document.getElementById('loading').textContent = `Could not load the OpenAPI document: ${e.message}`;
    return;
  }
  const operations = [];
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const method of ['get', 'post', 'put', 'patch', 'delete']) {
      if (item[method]) operations.push({ path, method, op: item[method], tag: (item[method].tags || ['other'])[0] });
    }
  }
  const tags = [...new Set(operations.map(o => o.tag))];
  const secured = op => (op.security || doc.security || []).length > 0;
  // The seed-compatible intake routes take the same bodies as POST /v1/jobs: described once, linked from the others.
  const bodies = new Map();
  const firstWithSameBody = o => {
    if (!o.op.requestBody) return null;
    const key = JSON.stringify([o.op.requestBody, o.op.responses]);
    const first = bodies.get(key);
    if (first) return first;
    bodies.set(key, { id: anchor(o.method, o.path), name: `${o.method.toUpperCase()} ${o.path}` });
    return null;
  };
  fill(main,
    h('h1', {}, doc.info?.title || 'API reference', ' ', h('span', { class: 'muted' }, doc.info?.version || '')),
    h('p', {}, rich(doc.info?.description)),
    h('p', { class: 'muted' }, 'OpenAPI ', doc.openapi, ' · machine-readable: ', h('a', { href: '/openapi/v1.json' }, '/openapi/v1.json')),
    h('nav', { class: 'panel', 'aria-labelledby': 'toc-title' },
      h('h2', { id: 'toc-title' }, 'Operations'),
      h('ul', { class: 'toc' }, operations.map(o => h('li', {},
        h('a', { href: `#${anchor(o.method, o.path)}` }, `${o.method.toUpperCase()} ${o.path}`))))),
    tags.map(tag => h('section', { class: 'panel', 'aria-labelledby': `tag-${tag}` },
      h('h2', { id: `tag-${tag}` }, tag),
      operations.filter(o => o.tag === tag).map(o => operation(o.path, o.method, o.op, secured(o.op), firstWithSameBody(o))))),
    h('section', { class: 'panel', 'aria-labelledby': 'schemas-title' },
      h('h2', { id: 'schemas-title' }, 'Schemas'),
      Object.entries(doc.components?.schemas || {}).map(([name, schema]) => h('section', { class: 'op', id: schemaAnchor(name), 'aria-label': name },
        h('h3', {}, h('code', {}, name)),
        schema.description ? h('p', { class: 'muted' }, rich(schema.description)) : null,
        propertiesTable(schema) || h('p', {}, typeOf(schema))))));
  if (location.hash) document.getElementById(location.hash.slice(1))?.scrollIntoView();
}

render();
