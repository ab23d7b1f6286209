// The one way the pages talk to the server: JSON requests carrying the CSRF token,
// answers as {ok, status, data}, and one wording for a refusal. A network failure
// rejects (fetch's TypeError): callers that keep working offline catch it.

/** Django's CSRF token, from its cookie (every signed-in page renders a form with
 * {% csrf_token %}, which sets it). */
function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

/** Send ``body`` (JSON, when given) and read the JSON answer (``{}`` when there is none). */
export async function request(method, url, body = undefined, headers = {}) {
  const response = await fetch(url, {
    method, credentials: "same-origin",
    headers: { Accept: "application/json", "Content-Type": "application/json", "X-CSRFToken": csrfToken(), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { ok: response.ok, status: response.status, data: await response.json().catch(() => ({})) };
}

export const getJson = (url) => request("GET", url);
export const postJson = (url, body = {}) => request("POST", url, body);

/** What to tell the user about a refused request. */
export function refusal({ status, data }) {
  return data.detail || `HTTP ${status}`;
}

/** GET a binary body; throws on an error status. Resolves with the response (its
 * headers describe the body). */
export async function fetchBinary(url) {
  const response = await fetch(url, { credentials: "same-origin" });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response;
}
