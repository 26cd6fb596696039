// Building the page from data without ever parsing it as HTML: text goes in as text nodes,
// so nothing a user or an identity system typed can become markup.

/** An element: h("button", { type: "button", onclick }, "Spara"). */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "className") element.className = value;
    else if (name === "dataset") Object.assign(element.dataset, value);
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, String(value));
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else if (child instanceof Node) element.appendChild(child);
    else element.appendChild(document.createTextNode(String(child)));
  }
}

/** Replace an element's content. */
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

/** A modal dialog (the native <dialog>: focus moves in, Escape closes, focus returns). */
export function openDialog(labelId, ...children) {
  const opener = document.activeElement;
  const dialog = h("dialog", { "aria-labelledby": labelId }, ...children);
  document.body.appendChild(dialog);
  dialog.addEventListener("close", () => {
    dialog.remove();
    if (opener && opener.isConnected) opener.focus();
  });
  dialog.showModal();
  const first = dialog.querySelector("input, button");
  if (first) first.focus();
  return dialog;
}

/** Call ``action`` once typing has paused, so a search box sends one request, not one per key. */
export function debounce(action, milliseconds) {
  let timer = null;
  const debounced = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => action(...args), milliseconds);
  };
  debounced.now = (...args) => {
    clearTimeout(timer);
    action(...args);
  };
  return debounced;
}
