// Small DOM helpers shared by the pages. Text goes in with textContent, never as HTML.

export function el(tag, text = null, attrs = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

/** Enable ``button`` unless ``why`` (then disabled, the reason as its tooltip); enabled,
 * its tooltip is ``title``. */
export function enableUnless(button, why, title = "") {
  button.disabled = Boolean(why);
  button.title = why || title;
}
