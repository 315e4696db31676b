// DOM helpers. Every value is inserted as text (createTextNode / textContent), never
// as HTML: sensor ids, hostnames and addresses come from the network.

/** h(tag, props, ...children) builds an element. props: class, text, on<event>
 *  (function), dataset (object), anything else becomes an attribute. */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v == null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = String(v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

/** append adds children (nodes, strings, numbers, nested arrays) as nodes or text. */
export function append(el, children) {
  for (const c of [children].flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** setText changes el's text only when it differs (no layout work otherwise). */
export function setText(el, s) {
  s = String(s);
  if (el.textContent !== s) el.textContent = s;
}

/** replace swaps el's children for children. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** frame runs fn once on the next animation frame, however often it is asked. */
export function frame(fn) {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => { queued = false; fn(); });
  };
}
