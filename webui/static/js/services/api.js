// REST client for /api/v1. A 401 asks the user for the API token (once, however
// many requests fail together); the token is kept in sessionStorage only.

import { hostPath } from '../utils/format.js';

const TOKEN_KEY = 'netwatch.token';

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error && body.error.message) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.error && body.error.code;
    this.parameter = body && body.error && body.error.details && body.error.details.parameter;
  }
}

export function getToken() {
  try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch { return ''; }
}

export function setToken(t) {
  try {
    if (t) sessionStorage.setItem(TOKEN_KEY, t);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch { /* storage disabled: the token lives as long as the page */ }
}

export class Api {
  /** askToken(): a promise of the token the user typed (see TokenDialog). */
  constructor({ base = 'api/v1/', askToken } = {}) {
    this.base = base;
    this.askToken = askToken;
    this.pendingToken = null;
  }

  headers() {
    const t = getToken();
    return t ? { Authorization: 'Bearer ' + t } : {};
  }

  url(path, params) {
    const q = params ? '?' + new URLSearchParams(params).toString() : '';
    return this.base + path + (q === '?' ? '' : q);
  }

  async get(path, params) {
    for (let attempt = 0; ; attempt++) {
      const res = await fetch(this.url(path, params), { headers: this.headers(), cache: 'no-store' });
      if (res.status === 401 && this.askToken && attempt < 3) {
        await this.token();
        continue;
      }
      const body = await res.json().catch(() => null);
      if (!res.ok) throw new ApiError(res.status, body);
      return body;
    }
  }

  /** text fetches a non-JSON body (CSV). */
  async text(path, params) {
    const res = await fetch(this.url(path, params), { headers: this.headers(), cache: 'no-store' });
    if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
    return res.text();
  }

  token() {
    if (!this.pendingToken) {
      this.pendingToken = this.askToken().then((t) => {
        setToken(t);
        this.pendingToken = null;
      });
    }
    return this.pendingToken;
  }

  health() { return this.get('health'); }
  flows(params) { return this.get('flows', params); }
  metrics() { return this.get('metrics'); }
  history(duration, interval) { return this.get('metrics/history', { duration, interval }); }
  topTalkers(limit = 10, duration = '5m', by = '') { return this.get('top-talkers', by ? { limit, duration, by } : { limit, duration }); }
  host(ip, duration = '5m', limit = 10) { return this.get(hostPath(ip), { duration, limit }); }
  sensors() { return this.get('sensors'); }
}
