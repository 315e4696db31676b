// Asks for the API token when the collector answers 401. The token stays in
// sessionStorage (see services/api.js), never in the URL.
import { h } from '../../utils/dom.js';

export function askToken() {
  return new Promise((resolve) => {
    const input = h('input', { type: 'password', id: 'token-input', autocomplete: 'off', required: true, 'aria-label': 'API token' });
    const dlg = h('dialog', { id: 'token-dialog', class: 'dialog' },
      h('form', { method: 'dialog' },
        h('h2', { text: 'API token required' }),
        h('p', { text: 'This collector requires a bearer token (--api-token). It is kept for this browser tab only.' }),
        input,
        h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn primary', text: 'Unlock' }))));
    dlg.addEventListener('close', () => {
      const t = input.value.trim();
      dlg.remove();
      resolve(t);
    });
    dlg.addEventListener('cancel', (e) => e.preventDefault());
    document.body.append(dlg);
    dlg.showModal();
    input.focus();
  });
}
