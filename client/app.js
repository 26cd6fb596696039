// The administrators' client: the views of the administrators' manual (sections 3–4), each a
// hash route, all data from the SCIM API. Filtering, searching, sorting and paging are SCIM
// query parameters, so the server does them in SQL whatever the size of the organisation.

import * as api from "./api.js";
import { debounce, fill, h, openDialog } from "./dom.js";
import T from "./texts/sv.js";

const E = api.ESERVICES;
const PAGE_SIZE = 25;
const SEARCH_PAUSE_MS = 350;
const HSA_ID = /^SE\d{10}-[A-Z0-9]+$/i;
const EMAIL = /^[^\s@]+@[^\s@.]+(\.[^\s@.]+)+$/;
// The list's columns and the SCIM attribute each sorts by (RFC 7644 §3.4.2.3).
const COLUMNS = [
  ["givenName", "name.givenName"],
  ["familyName", "name.familyName"],
  ["hsaId", `${E}:hsaId`],
  ["email", "emails.value"],
];

const app = document.getElementById("app");
const main = h("main", { id: "main", tabindex: "-1" });
const status = h("div", { id: "status", role: "status", "aria-live": "polite" });

let session = null;
let flash = ""; // a message for the next view, e.g. "saved" after leaving a dialog
// Bumped by every route(): a view whose data arrives after a newer view was asked for is
// not drawn, so quick navigation never ends on the older view.
let navigation = 0;
// Asked before leaving a view with unsaved changes: true to leave (see onHashChange).
let leaveGuard = null;
let currentHash = location.hash;
let offering = null; // what the organisation may grant: see loadOffering()
const list = {
  term: "",
  services: new Set(),
  permissions: new Set(),
  sortBy: "givenName",
  sortOrder: "ascending",
  startIndex: 1,
};

// --- the lists' state lives in the address: reload, Back and a shared link show the same --

const ORDER_WORDS = { ascending: "stigande", descending: "fallande" };
const split = (text) => (text ? text.split(",").filter(Boolean) : []);

/** The user list as ``#/?sok=…&tjanster=…&behorigheter=…&sortera=…&ordning=…&start=…``. */
function listAddress() {
  const query = new URLSearchParams();
  if (list.term) query.set("sok", list.term);
  if (list.services.size) query.set("tjanster", [...list.services].join(","));
  if (list.permissions.size) query.set("behorigheter", [...list.permissions].join(","));
  if (list.sortBy !== "givenName") query.set("sortera", list.sortBy);
  if (list.sortOrder !== "ascending") query.set("ordning", ORDER_WORDS[list.sortOrder]);
  if (list.startIndex > 1) query.set("start", String(list.startIndex));
  return query.size ? `#/?${query}` : "#/";
}

function groupListAddress() {
  const query = new URLSearchParams();
  if (groupList.term) query.set("sok", groupList.term);
  if (groupList.sortOrder !== "ascending") query.set("ordning", ORDER_WORDS[groupList.sortOrder]);
  if (groupList.startIndex > 1) query.set("start", String(groupList.startIndex));
  return query.size ? `#/grupper?${query}` : "#/grupper";
}

function orderFrom(query) {
  return query.get("ordning") === ORDER_WORDS.descending ? "descending" : "ascending";
}

function startFrom(query) {
  const start = Number.parseInt(query.get("start") || "1", 10);
  return Number.isFinite(start) && start >= 1 ? start : 1;
}

function listFromAddress(query) {
  list.term = query.get("sok") || "";
  list.services = new Set(split(query.get("tjanster")));
  list.permissions = new Set(split(query.get("behorigheter")));
  const sortBy = query.get("sortera");
  list.sortBy = COLUMNS.some(([key]) => key === sortBy) ? sortBy : "givenName";
  list.sortOrder = orderFrom(query);
  list.startIndex = startFrom(query);
}

function groupListFromAddress(query) {
  groupList.term = query.get("sok") || "";
  groupList.sortOrder = orderFrom(query);
  groupList.startIndex = startFrom(query);
}

/** The address of what a list shows now, without a new step in the history. */
function remember(address) {
  if (location.hash !== address) history.replaceState(history.state, "", address);
  currentHash = location.hash;
}

// --- shell ----------------------------------------------------------------------------

function say(message, { alert = false } = {}) {
  fill(status, message ? h("p", { className: alert ? "notice error" : "notice" }, message) : null);
  status.setAttribute("role", alert ? "alert" : "status");
}

/** Go to a view, showing ``message`` there once it is drawn. */
function navigate(hash, message = "") {
  flash = message;
  const here = location.hash || "#/";
  if (here === hash) route();
  else location.hash = hash;
}

function header() {
  const organisation = session.organisation.name;
  const inGroups = location.hash.startsWith("#/grupper");
  const link = (href, label, current) =>
    h("a", { href, "aria-current": current ? "page" : null }, label);
  return h(
    "header",
    { className: "top" },
    h("p", { className: "app-title" }, T.appTitle),
    h(
      "nav",
      { className: "views", "aria-label": T.navigation },
      link(listAddress(), T.usersHeading, !inGroups),
      link(groupListAddress(), T.groupsHeading, inGroups),
    ),
    h(
      "div",
      { className: "who" },
      h("span", { className: "organisation" }, organisation),
      h("span", { className: "logged-in" }, `${T.loggedInAs} ${session.name}`),
      h("button", { type: "button", className: "secondary", onclick: logOut }, T.logout),
    ),
  );
}

function show(...children) {
  const footer = h(
    "footer",
    { className: "bottom" },
    h("a", { href: STATEMENT }, T.accessibilityStatement),
  );
  fill(app, session ? header() : null, status, fill(main, ...children), footer);
  say(flash);
  flash = "";
  // WCAG 2.4.2: each view has its own title, the name of what it shows first.
  const title = main.querySelector("h1")?.textContent;
  document.title = title && title !== T.appTitle ? `${title} – ${T.appTitle}` : T.appTitle;
  const heading = main.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus();
  }
}

/**
 * Fill ``container`` anew, keeping the keyboard where it was: on the sort arrow or page
 * button just used (WCAG 2.4.3), or its neighbour when that one is now disabled.
 */
function redraw(container, ...children) {
  const active = document.activeElement;
  const name = (button) => button.getAttribute("aria-label") || button.textContent;
  const key = active instanceof HTMLButtonElement && container.contains(active) ? name(active) : null;
  fill(container, ...children);
  if (key === null) return;
  const buttons = [...container.querySelectorAll("button")];
  const again = buttons.find((button) => name(button) === key);
  const usable = again && !again.disabled ? again : again?.parentElement?.querySelector("button:not([disabled])");
  (usable || buttons.find((button) => !button.disabled))?.focus();
}

/**
 * What to tell a person about a failed request: a Swedish text for every refusal, with the
 * server's own words (which are English) at most as a second line.
 */
function refusal(error) {
  if (error instanceof api.NetworkError) return [T.networkError, null];
  if (!(error instanceof api.ApiError)) return [T.serverError, null];
  const text = T.refused[error.scimType] || T.refused[error.status] || (error.status >= 500 ? T.serverError : T.refused.other);
  return [text, error.status < 500 && error.detail ? error.detail : null];
}

function refusalNotice(error) {
  const [text, detail] = refusal(error);
  return h(
    "div",
    { className: "notice error", role: "alert" },
    h("p", {}, text),
    detail ? h("p", { className: "hint", lang: "en" }, `${T.serverSaid} ${detail}`) : null,
  );
}

function failed(error) {
  if (error.name === "AbortError") return;
  if (error instanceof api.ApiError && error.status === 401) return; // whenLoggedOut shows login
  fill(status, refusalNotice(error));
  status.setAttribute("role", "alert");
}

async function logOut() {
  try {
    await api.logOut();
  } catch (error) {
    // The session is gone either way; what matters is that the server forgot it.
    if (!(error instanceof api.ApiError)) return failed(error);
  }
  session = null;
  offering = null;
  history.replaceState(null, "", location.pathname);
  await showLogin(T.loggedOut);
}

/** A modal dialog that Back closes: opening it adds a step to the history, closing it
 * (Avbryt, Escape, or after saving) takes that step back. */
function modal(labelId, ...children) {
  const dialog = openDialog(labelId, ...children);
  history.pushState({ dialog: true }, "", location.hash);
  dialog.addEventListener("close", () => {
    if (history.state?.dialog) history.back();
  });
  return dialog;
}

window.addEventListener("popstate", () => {
  // Back while a dialog is open: the dialog closes, and nothing it would have done happens.
  for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
});

// --- 3.1 Logga in -----------------------------------------------------------------------

async function showLogin(message = "", { alert = false } = {}) {
  session = null;
  const problem = h("div", { id: "login-problem" });
  const card = h(
    "section",
    { className: "card" },
    h("h1", {}, T.appTitle),
    h("h2", {}, T.loginHeading),
    h("p", {}, T.loginIntro),
    h("button", { type: "button", onclick: () => logIn(api.logInWithCertificate, problem) }, T.loginButton),
    problem,
  );
  show(card);
  say(message, { alert });
  const administrators = await api.demoAdministrators().catch(() => null);
  if (administrators && administrators.length) {
    card.appendChild(
      h(
        "section",
        { className: "demo", "aria-labelledby": "demo-heading" },
        h("h2", { id: "demo-heading" }, T.demoHeading),
        h("p", {}, T.demoIntro),
        h(
          "ul",
          { className: "plain" },
          administrators.map((administrator) =>
            h(
              "li",
              {},
              h(
                "button",
                {
                  type: "button",
                  className: "secondary",
                  onclick: () => logIn(() => api.logInAsDemo(administrator.hsaId), problem),
                },
                T.demoLoginAs(
                  administrator.name,
                  `${administrator.organisation.name} (${T.kinds[administrator.organisation.kind]})`,
                ),
              ),
            ),
          ),
        ),
      ),
    );
  }
}

async function logIn(how, problem) {
  try {
    session = await how();
  } catch (error) {
    if (!(error instanceof api.ApiError)) return failed(error);
    // 3.1.1: what the person can check themselves.
    fill(
      problem,
      h("p", { className: "notice error", role: "alert" }, error.userMessage || T.serverError),
      h("h3", {}, T.loginProblemHeading),
      h("ul", {}, T.loginProblemAdvice.map((advice) => h("li", {}, advice))),
    );
    return;
  }
  await route();
}

// --- what the organisation may grant --------------------------------------------------

/** The organisation's e-services (those with an agreement), their permission groups, and an
 * index from "service:permission" to where it sits in the catalogue. */
async function loadOffering() {
  if (offering) return offering;
  const known = await api.catalogue();
  const agreed = new Set(known.organisation.agreements);
  const services = known.services.filter(
    (service) => service.offeredTo === known.organisation.kind && agreed.has(service.id),
  );
  const index = new Map();
  for (const service of known.services) {
    for (const group of service.groups) {
      for (const permission of group.permissions) {
        index.set(`${service.id}:${permission.id}`, { service, group, permission });
      }
    }
  }
  offering = { services, index, grantable: new Set(known.grantable) };
  return offering;
}

// --- 4 Användarlistan -------------------------------------------------------------------

function listFilter() {
  const clauses = [];
  // 4.2: every word must occur in some column.
  for (const word of list.term.trim().split(/\s+/).filter(Boolean)) {
    const value = api.filterString(word);
    clauses.push(
      `(name.givenName co ${value} or name.familyName co ${value} or ${E}:hsaId co ${value} or emails.value co ${value})`,
    );
  }
  // 4.1: users who may use a chosen permission, or else any permission of a chosen e-service.
  const either = (attribute, values) =>
    [...values].map((value) => `${attribute} eq ${api.filterString(value)}`).join(" or ");
  if (list.permissions.size) {
    clauses.push(`${E}:effectivePermissions[${either("value", list.permissions)}]`);
  } else if (list.services.size) {
    clauses.push(`${E}:effectivePermissions[${either("service", list.services)}]`);
  }
  return clauses.join(" and ");
}

async function showUsers() {
  const ticket = navigation;
  const { services, index } = await loadOffering();
  if (ticket !== navigation) return;
  const results = h("div", { id: "results", "aria-busy": "true" });
  let pending = null;

  const refresh = async () => {
    pending?.abort();
    pending = new AbortController();
    results.setAttribute("aria-busy", "true");
    remember(listAddress());
    const sortAttribute = COLUMNS.find(([key]) => key === list.sortBy)[1];
    try {
      const page = await api.listUsers(
        {
          filter: listFilter(),
          sortBy: sortAttribute,
          sortOrder: list.sortOrder,
          startIndex: list.startIndex,
          count: PAGE_SIZE,
          attributes: ["name.givenName", "name.familyName", "emails", `${E}:hsaId`],
        },
        pending.signal,
      );
      redraw(results, usersTable(page, refresh));
      results.setAttribute("aria-busy", "false");
    } catch (error) {
      failed(error);
    }
  };
  const search = debounce(() => {
    list.startIndex = 1;
    refresh();
  }, SEARCH_PAUSE_MS);

  const permissionChoices = h("div", { className: "choices" });
  const drawPermissionChoices = () => {
    const chosen = services.filter((service) => list.services.has(service.id));
    if (!chosen.length) {
      fill(permissionChoices, h("p", { className: "hint" }, T.filterPermissionsEmpty));
      return;
    }
    fill(
      permissionChoices,
      chosen.map((service) =>
        h(
          "fieldset",
          {},
          h("legend", {}, service.name),
          service.groups.flatMap((group) =>
            group.permissions.map((permission) => {
              const value = `${service.id}:${permission.id}`;
              return checkbox(`filter-${value}`, permission.name, list.permissions.has(value), (on) => {
                toggle(list.permissions, value, on);
                search.now();
              });
            }),
          ),
        ),
      ),
    );
  };
  drawPermissionChoices();

  const serviceChoices = h(
    "div",
    { className: "choices" },
    services.map((service) =>
      checkbox(`filter-${service.id}`, service.name, list.services.has(service.id), (on) => {
        toggle(list.services, service.id, on);
        if (!on) {
          for (const value of [...list.permissions]) {
            if (index.get(value)?.service.id === service.id) list.permissions.delete(value);
          }
        }
        drawPermissionChoices();
        search.now();
      }),
    ),
  );

  show(
    h("h1", {}, T.usersHeading),
    h(
      "div",
      { className: "toolbar" },
      h("button", { type: "button", onclick: () => userDialog(null) }, T.addUser),
      h(
        "details",
        { className: "filter" },
        h("summary", {}, T.filterServices),
        h("fieldset", {}, h("legend", { className: "visually-hidden" }, T.filterServices), serviceChoices),
      ),
      h("details", { className: "filter" }, h("summary", {}, T.filterPermissions), permissionChoices),
      h(
        "button",
        {
          type: "button",
          className: "link",
          onclick: () => {
            list.services.clear();
            list.permissions.clear();
            list.term = "";
            list.startIndex = 1;
            showUsers().catch(failed);
          },
        },
        T.clearFilters,
      ),
      h(
        "button",
        { type: "button", className: "secondary", onclick: () => exportList(index).catch(failed) },
        T.exportList,
      ),
      searchForm("search", T.search, T.searchHint, list.term, search, (term) => {
        list.term = term;
      }),
    ),
    results,
  );
  await refresh();
}

/** "Sök": a search box that searches once typing pauses, or at once on Enter. */
function searchForm(id, label, hint, value, search, remember) {
  return h(
    "form",
    {
      role: "search",
      className: "search",
      onsubmit: (event) => {
        event.preventDefault();
        search.now();
      },
    },
    h("label", { for: id }, label),
    h("input", {
      id,
      type: "search",
      value,
      autocomplete: "off",
      "aria-describedby": `${id}-hint`,
      oninput: (event) => {
        remember(event.target.value);
        search();
      },
    }),
    h("p", { id: `${id}-hint`, className: "hint" }, hint),
  );
}

function toggle(set, value, on) {
  if (on) set.add(value);
  else set.delete(value);
}

function checkbox(id, label, checked, onchange, { disabled = false, note = null } = {}) {
  const noteId = note ? `${id}-note` : null;
  return h(
    "div",
    { className: "check" },
    h("input", {
      type: "checkbox",
      id,
      checked,
      disabled,
      "aria-describedby": noteId,
      onchange: (event) => onchange(event.target.checked),
    }),
    h("label", { for: id }, label),
    note ? h("span", { id: noteId, className: "hint" }, ` (${note})`) : null,
  );
}

function usersTable(page, refresh) {
  const users = page.Resources || [];
  const total = page.totalResults;
  const first = total === 0 ? 0 : page.startIndex;
  const last = first + users.length - 1;
  const sortButton = (key, order, arrow, label) =>
    h(
      "button",
      {
        type: "button",
        className: "sort",
        "aria-label": label,
        "aria-pressed": String(list.sortBy === key && list.sortOrder === order),
        onclick: () => {
          list.sortBy = key;
          list.sortOrder = order;
          list.startIndex = 1;
          refresh();
        },
      },
      arrow,
    );
  const head = COLUMNS.map(([key]) => {
    const title = T.columns[key];
    const sorted = list.sortBy === key ? list.sortOrder : "none";
    return h(
      "th",
      { scope: "col", "aria-sort": sorted },
      h("span", {}, title),
      h(
        "span",
        { className: "arrows" },
        sortButton(key, "ascending", "▲", T.sortAscending(title)),
        sortButton(key, "descending", "▼", T.sortDescending(title)),
      ),
    );
  });
  const rows = users.map((user) => {
    const cells = userColumns(user);
    return h(
      "tr",
      {},
      h(
        "td",
        { dataset: { label: T.columns.givenName } },
        h("a", { href: `#/anvandare/${encodeURIComponent(user.id)}` }, cells.givenName || "–"),
      ),
      h("td", { dataset: { label: T.columns.familyName } }, cells.familyName),
      h("td", { dataset: { label: T.columns.hsaId } }, cells.hsaId),
      h("td", { dataset: { label: T.columns.email } }, cells.email),
    );
  });
  const filtered = list.term.trim() || list.services.size || list.permissions.size;
  return [
    h(
      "table",
      { className: "users" },
      h("caption", { className: "visually-hidden" }, T.listCaption),
      h("thead", {}, h("tr", {}, head)),
      h("tbody", {}, rows),
    ),
    users.length ? null : h("p", { className: "empty" }, filtered ? T.noUsers : T.noUsersAtAll),
    h(
      "nav",
      { className: "pager", "aria-label": T.listCaption },
      h("p", { id: "showing" }, T.showing(first, last, total)),
      h(
        "button",
        {
          type: "button",
          className: "secondary",
          disabled: first <= 1,
          onclick: () => {
            list.startIndex = Math.max(1, list.startIndex - PAGE_SIZE);
            refresh();
          },
        },
        T.previous,
      ),
      h(
        "button",
        {
          type: "button",
          className: "secondary",
          disabled: last >= total,
          onclick: () => {
            list.startIndex += PAGE_SIZE;
            refresh();
          },
        },
        T.next,
      ),
    ),
  ];
}

function primaryEmail(user) {
  const emails = user.emails || [];
  return (emails.find((email) => email.primary) || emails[0] || {}).value || "";
}

function userColumns(user) {
  return {
    givenName: user.name?.givenName || "",
    familyName: user.name?.familyName || "",
    hsaId: user[E]?.hsaId || "",
    email: primaryEmail(user),
  };
}

function fullName(user) {
  const { givenName, familyName } = userColumns(user);
  return `${givenName} ${familyName}`.trim() || user.userName;
}

// --- 4.4, 4.6 Lägg till och ändra användare --------------------------------------------

function field(key, value) {
  const id = `field-${key}`;
  return h(
    "div",
    { className: "field" },
    h("label", { for: id }, T.fields[key], " ", h("span", { className: "hint" }, T.required)),
    h("input", {
      id,
      name: key,
      value,
      required: true,
      maxlength: key === "hsaId" ? 31 : key === "email" ? EMAIL_LIMIT : NAME_LIMIT,
      type: key === "email" ? "email" : "text",
      autocomplete: "off",
      spellcheck: "false",
      "aria-describedby": `${id}-error`,
    }),
    h("p", { id: `${id}-error`, className: "field-error" }),
  );
}

// What the server takes (scim/storage/tables.py): the name becomes displayName, at most 255.
const NAME_LIMIT = 255;
const EMAIL_LIMIT = 254;

/** A dialog form's "Spara" (its submit) and "Avbryt". */
function saveOrCancel(cancel) {
  return h(
    "div",
    { className: "actions" },
    h("button", { type: "submit" }, T.save),
    h("button", { type: "button", className: "secondary", onclick: cancel }, T.cancel),
  );
}

function checkFields(values) {
  const errors = {};
  for (const key of ["givenName", "familyName", "hsaId", "email"]) {
    if (!values[key]) errors[key] = T.missing[key];
  }
  if (`${values.givenName} ${values.familyName}`.length > NAME_LIMIT) {
    errors.familyName = T.nameTooLong(NAME_LIMIT);
  }
  if (values.email.length > EMAIL_LIMIT) errors.email = T.tooLongAt(EMAIL_LIMIT);
  if (values.hsaId && (!HSA_ID.test(values.hsaId) || values.hsaId.length > 31)) {
    errors.hsaId = T.invalidHsaId;
  }
  if (values.email && !EMAIL.test(values.email)) errors.email = T.invalidEmail;
  return errors;
}

/** Which field a refused write was about, from the SCIM error (RFC 7644 §3.12). */
function fieldErrorsOf(error) {
  if (!(error instanceof api.ApiError)) return null;
  if (error.status === 409 && error.scimType === "uniqueness") return { hsaId: T.takenHsaId };
  if (error.status === 400) {
    if (/hsaId|userName/.test(error.detail)) return { hsaId: T.invalidHsaId };
    if (/email/i.test(error.detail)) return { email: T.invalidEmail };
    if (/givenName/.test(error.detail)) return { givenName: T.tooLong };
    if (/familyName|displayName/.test(error.detail)) return { familyName: T.nameTooLong(NAME_LIMIT) };
  }
  return null;
}

function showFieldErrors(form, errors) {
  let first = null;
  for (const input of form.querySelectorAll("input")) {
    const message = errors[input.name] || "";
    input.setAttribute("aria-invalid", String(Boolean(message)));
    fill(form.querySelector(`#${input.id}-error`), message);
    if (message && !first) first = input;
  }
  if (first) first.focus();
  return first !== null;
}

/** "Lägg till användare" (user null) or "Ändra användare" for a loaded user and its ETag. */
function userDialog(loaded) {
  const current = loaded ? userColumns(loaded.user) : {};
  const headingId = "user-dialog-heading";
  const problem = h("div", { className: "dialog-problem" });
  const form = h(
    "form",
    { novalidate: true },
    h("h2", { id: headingId }, loaded ? T.editUserHeading : T.newUserHeading),
    ["givenName", "familyName", "hsaId", "email"].map((key) => field(key, current[key] || "")),
    problem,
    saveOrCancel(() => dialog.close()),
  );
  const dialog = modal(headingId, form);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    fill(problem);
    const values = Object.fromEntries(
      ["givenName", "familyName", "hsaId", "email"].map((key) => [key, form.elements[key].value.trim()]),
    );
    values.hsaId = values.hsaId.toUpperCase();
    if (showFieldErrors(form, checkFields(values))) return;
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      if (loaded) {
        await api.patchUser(loaded.user.id, editOperations(loaded.user, values), loaded.etag);
        dialog.close();
        navigate(`#/anvandare/${encodeURIComponent(loaded.user.id)}`, T.userSaved);
      } else {
        const created = await api.createUser(newUser(values));
        dialog.close();
        navigate(`#/anvandare/${encodeURIComponent(created.id)}`, T.userCreated(fullName(created)));
      }
    } catch (error) {
      button.disabled = false;
      const errors = fieldErrorsOf(error);
      if (errors) return showFieldErrors(form, errors);
      if (error instanceof api.ApiError && error.status === 412) {
        return fill(problem, staleNotice(() => dialog.close()));
      }
      if (error instanceof api.ApiError && error.status === 404) {
        dialog.close();
        return route();
      }
      // Whatever else went wrong, what was typed stays, and the dialog says what happened.
      fill(problem, refusalNotice(error));
    }
  });
}

function newUser(values) {
  return {
    schemas: [api.USER_SCHEMA, E],
    // The HSA-id is the person's identity in the organisation, so it is the userName too.
    userName: values.hsaId,
    name: { givenName: values.givenName, familyName: values.familyName },
    displayName: `${values.givenName} ${values.familyName}`,
    emails: [{ value: values.email, type: "work", primary: true }],
    active: true,
    [E]: { hsaId: values.hsaId },
  };
}

/** One PATCH for the four fields; other e-mail addresses an identity system set stay. */
function editOperations(user, values) {
  const emails = (user.emails || []).map((email) => ({ ...email }));
  const primary = emails.find((email) => email.primary) || emails[0];
  if (primary) primary.value = values.email;
  else emails.push({ value: values.email, type: "work", primary: true });
  const operations = [
    { op: "replace", path: "name.givenName", value: values.givenName },
    { op: "replace", path: "name.familyName", value: values.familyName },
    { op: "replace", path: "displayName", value: `${values.givenName} ${values.familyName}` },
    { op: "replace", path: "emails", value: emails },
    { op: "replace", path: `${E}:hsaId`, value: values.hsaId },
  ];
  // A user made here has its HSA-id as userName: keep the two together.
  const oldHsaId = user[E]?.hsaId || "";
  if (user.userName && user.userName.toUpperCase() === oldHsaId.toUpperCase()) {
    operations.push({ op: "replace", path: "userName", value: values.hsaId });
  }
  return operations;
}

function staleNotice(beforeReload) {
  return h(
    "div",
    { className: "notice error", role: "alert" },
    h("p", {}, T.staleEdit),
    h(
      "button",
      {
        type: "button",
        onclick: () => {
          beforeReload?.();
          route();
        },
      },
      T.reload,
    ),
  );
}

// --- 4.5 Användarvyn --------------------------------------------------------------------

/** A loaded user, or null after showing that it is gone (deleted, or never ours). */
async function loadUser(id, ticket) {
  try {
    return await api.getUser(id);
  } catch (error) {
    if (error instanceof api.ApiError && error.status === 404) {
      if (ticket === navigation) show(backToUsers(), h("h1", {}, T.userNotFound));
      return null;
    }
    throw error;
  }
}

function backToUsers() {
  return h("a", { className: "back", href: listAddress() }, `← ${T.backToUsers}`);
}

async function showUser(id) {
  const ticket = navigation;
  const [{ index }, loaded] = await Promise.all([loadOffering(), loadUser(id, ticket)]);
  if (!loaded || ticket !== navigation) return;
  const { user } = loaded;
  const columns = userColumns(user);
  show(
    backToUsers(),
    h("h1", {}, fullName(user)),
    h(
      "section",
      { "aria-labelledby": "details-heading", className: "details" },
      h("h2", { id: "details-heading" }, T.userDetails),
      h(
        "dl",
        {},
        h("dt", {}, T.detailColumns.name),
        h("dd", {}, `${columns.givenName} ${columns.familyName}`),
        h("dt", {}, T.detailColumns.hsaId),
        h("dd", {}, columns.hsaId),
        h("dt", {}, T.detailColumns.email),
        h("dd", {}, columns.email),
      ),
      h("button", { type: "button", className: "secondary", onclick: () => userDialog(loaded) }, T.editUser),
    ),
    h(
      "section",
      { "aria-labelledby": "permissions-heading" },
      h("h2", { id: "permissions-heading" }, T.currentPermissions),
      currentPermissions(user, index),
    ),
    h(
      "div",
      { className: "actions" },
      h("a", { className: "button", href: `#/anvandare/${encodeURIComponent(user.id)}/behorigheter` }, T.editPermissions),
      h("button", { type: "button", className: "danger", onclick: () => deleteDialog(loaded) }, T.deleteUser),
    ),
    historySection("Users", user.id),
  );
}

/** Where each effective permission comes from: "direct", and the groups ({id, name}). */
function sources(user) {
  const groupNames = new Map((user.groups || []).map((group) => [group.value, group.display || group.value]));
  const found = new Map();
  for (const effective of user[E]?.effectivePermissions || []) {
    const from = found.get(effective.value) || new Map();
    const key = effective.source;
    from.set(key, key === "direct" ? "direct" : { id: key, name: groupNames.get(key) || key });
    found.set(effective.value, from);
  }
  return new Map([...found].map(([value, from]) => [value, [...from.values()]]));
}

/** The groups among a permission's sources. */
function viaGroups(from) {
  return (from || []).filter((source) => source !== "direct");
}

function currentPermissions(user, index) {
  const effective = sources(user);
  if (!effective.size) return h("p", {}, T.noPermissions);
  // Grouped by e-service and permission group, in the catalogue's order (as in the manual).
  const byService = new Map();
  for (const [value, entry] of index) {
    if (!effective.has(value)) continue;
    const groups = byService.get(entry.service) || new Map();
    const items = groups.get(entry.group) || [];
    items.push([entry.permission, effective.get(value)]);
    groups.set(entry.group, items);
    byService.set(entry.service, groups);
  }
  return [...byService].map(([service, groups]) =>
    h(
      "div",
      { className: "service" },
      h("h3", {}, service.name),
      [...groups].map(([group, items]) => [
        h("h4", {}, group.name),
        h(
          "ul",
          {},
          items.map(([permission, from]) => {
            const notes = viaGroups(from).map((group) =>
              h("a", { href: `#/grupper/${encodeURIComponent(group.id)}` }, T.viaGroup(group.name)),
            );
            if (permission.retired) notes.push(T.retired);
            if (!notes.length) return h("li", {}, permission.name);
            const joined = notes.flatMap((note, at) => (at ? [", ", note] : [note]));
            return h("li", {}, permission.name, h("span", { className: "hint" }, " (", ...joined, ")"));
          }),
        ),
      ]),
    ),
  );
}

// --- 4.5 Ändra och lägg till behörigheter -----------------------------------------------

/** What the permission views need of a user or a group, by the first part of the address. */
const SUBJECTS = {
  anvandare: {
    load: async (id, ticket) => {
      const loaded = await loadUser(id, ticket);
      return loaded && { item: loaded.user, etag: loaded.etag };
    },
    name: fullName,
    path: `${E}:permissions`,
    own: (user) => user[E]?.permissions || [],
    sources,
    patch: api.patchUser,
    backToSubject: T.backToUserDetails,
    choose: T.choosePermissions,
  },
  grupper: {
    load: async (id, ticket) => {
      const loaded = await loadGroup(id, ticket);
      return loaded && { item: loaded.group, etag: loaded.etag };
    },
    name: (group) => group.displayName,
    path: `${api.ESERVICES_GROUP}:permissions`,
    own: (group) => group[api.ESERVICES_GROUP]?.permissions || [],
    sources: () => new Map(), // a group holds only what it is given
    patch: api.patchGroup,
    backToSubject: T.backToGroup,
    choose: T.choosePermissionsForGroup,
  },
};

async function showServices(kind, id) {
  const subject = SUBJECTS[kind];
  const ticket = navigation;
  const [{ services }, loaded] = await Promise.all([loadOffering(), subject.load(id, ticket)]);
  if (!loaded || ticket !== navigation) return;
  const base = `#/${kind}/${encodeURIComponent(id)}`;
  show(
    h("a", { className: "back", href: base }, `← ${subject.backToSubject}`),
    h("h1", {}, T.editPermissions),
    h("p", { className: "subject" }, subject.name(loaded.item)),
    h("h2", {}, T.chooseService),
    services.length
      ? h(
          "ul",
          { className: "plain services" },
          services.map((service) =>
            h(
              "li",
              { className: "card" },
              h("h3", {}, service.name),
              h("p", {}, service.description),
              h("a", { className: "button", href: `${base}/behorigheter/${encodeURIComponent(service.id)}` }, service.name),
            ),
          ),
        )
      : h("p", {}, T.noAgreements),
  );
}

async function showServicePermissions(kind, id, serviceId) {
  const subject = SUBJECTS[kind];
  const ticket = navigation;
  const [{ services, grantable }, loaded] = await Promise.all([
    loadOffering(),
    subject.load(id, ticket),
  ]);
  if (!loaded || ticket !== navigation) return;
  const base = `#/${kind}/${encodeURIComponent(id)}`;
  const service = services.find((offered) => offered.id === serviceId);
  if (!service) {
    // Never offer an e-service without an agreement, whatever the address says.
    location.hash = `${base}/behorigheter`;
    return;
  }
  const { item, etag } = loaded;
  const own = new Set(subject.own(item).map((permission) => permission.value));
  const effective = subject.sources(item);
  const ticked = new Set([...own].filter((value) => value.startsWith(`${service.id}:`)));
  const problem = h("div");

  const groups = service.groups
    .map((group) => {
      const boxes = group.permissions.flatMap((permission) => {
        const value = `${service.id}:${permission.id}`;
        const groupNames = viaGroups(effective.get(value)).map((source) => source.name);
        const held = own.has(value);
        if (!held && !groupNames.length && !grantable.has(value)) return []; // retired, never held
        const fromGroupOnly = groupNames.length > 0 && !held;
        const notes = groupNames.map(T.viaGroup);
        if (permission.retired) notes.push(T.retired);
        return [
          checkbox(
            `permission-${permission.id}`,
            permission.name,
            held || fromGroupOnly,
            (on) => toggle(ticked, value, on),
            {
              disabled: fromGroupOnly,
              note: fromGroupOnly ? T.fromGroupCannotUntick(groupNames.join(", ")) : notes.join(", ") || null,
            },
          ),
        ];
      });
      return boxes.length ? h("fieldset", {}, h("legend", {}, group.name), boxes) : null;
    })
    .filter(Boolean);

  const done = async () => {
    const others = [...own].filter((value) => !value.startsWith(`${service.id}:`));
    const wanted = [...others, ...ticked].sort();
    const unchanged = wanted.length === own.size && wanted.every((value) => own.has(value));
    try {
      if (!unchanged) {
        const value = wanted.map((permission) => ({ value: permission }));
        await subject.patch(item.id, [{ op: "replace", path: subject.path, value }], etag);
      }
    } catch (error) {
      if (error instanceof api.ApiError && error.status === 412) return fill(problem, staleNotice());
      if (error instanceof api.ApiError && error.status === 400) {
        return fill(problem, h("p", { className: "notice error", role: "alert" }, T.notGrantable, " ", error.detail));
      }
      return failed(error);
    }
    leaveGuard = null;
    navigate(base, unchanged ? "" : T.permissionsSaved);
  };
  const initial = new Set(ticked);
  const unsaved = () => ticked.size !== initial.size || [...ticked].some((value) => !initial.has(value));

  show(
    h("a", { className: "back", href: `${base}/behorigheter` }, `← ${T.backToServices}`),
    h("h1", {}, T.changePermissionsHeading),
    h("p", { className: "subject" }, subject.name(item)),
    h("h2", {}, `${subject.choose}: ${service.name}`),
    h("form", { className: "permissions", onsubmit: (event) => { event.preventDefault(); done(); } },
      groups,
      problem,
      h(
        "div",
        { className: "actions" },
        h("button", { type: "submit" }, T.done),
        // Avbryt leaves without saving; going anywhere with unsaved ticks asks first.
        h("a", { className: "button secondary", href: base }, T.cancel),
      ),
    ),
  );
  leaveGuard = { unsaved };
}

// --- Grupper ------------------------------------------------------------------------------

const groupList = { term: "", sortOrder: "ascending", startIndex: 1 };

/** The names of the permissions a group gives, in the catalogue's order. */
function permissionNames(group, index) {
  const values = new Set((group[api.ESERVICES_GROUP]?.permissions || []).map((p) => p.value));
  return [...index].filter(([value]) => values.has(value)).map(([, entry]) => entry.permission.name);
}

async function showGroups() {
  const ticket = navigation;
  const { index } = await loadOffering();
  if (ticket !== navigation) return;
  const results = h("div", { id: "results", "aria-busy": "true" });
  let pending = null;

  const refresh = async () => {
    pending?.abort();
    pending = new AbortController();
    const signal = pending.signal;
    results.setAttribute("aria-busy", "true");
    const term = groupList.term.trim();
    remember(groupListAddress());
    try {
      const page = await api.listGroups(
        {
          filter: term ? `displayName co ${api.filterString(term)}` : null,
          sortOrder: groupList.sortOrder,
          startIndex: groupList.startIndex,
          count: PAGE_SIZE,
        },
        signal,
      );
      const groups = page.Resources || [];
      const counts = await Promise.all(groups.map((group) => api.countMembers(group.id, signal)));
      redraw(results, groupsTable(page, counts, index, refresh));
      results.setAttribute("aria-busy", "false");
    } catch (error) {
      failed(error);
    }
  };
  const search = debounce(() => {
    groupList.startIndex = 1;
    refresh();
  }, SEARCH_PAUSE_MS);

  show(
    h("h1", {}, T.groupsHeading),
    h(
      "div",
      { className: "toolbar" },
      h("button", { type: "button", onclick: () => groupDialog() }, T.addGroup),
      searchForm("search-groups", T.searchGroups, T.searchGroupsHint, groupList.term, search, (term) => {
        groupList.term = term;
      }),
    ),
    results,
  );
  await refresh();
}

function pager(label, showing, first, last, total, state, refresh) {
  const step = (delta) => () => {
    state.startIndex = Math.max(1, state.startIndex + delta);
    refresh();
  };
  return h(
    "nav",
    { className: "pager", "aria-label": label },
    h("p", {}, showing(first, last, total)),
    h("button", { type: "button", className: "secondary", disabled: first <= 1, onclick: step(-PAGE_SIZE) }, T.previous),
    h("button", { type: "button", className: "secondary", disabled: last >= total, onclick: step(PAGE_SIZE) }, T.next),
  );
}

function groupsTable(page, counts, index, refresh) {
  const groups = page.Resources || [];
  const total = page.totalResults;
  const first = total === 0 ? 0 : page.startIndex;
  const last = first + groups.length - 1;
  const title = T.groupColumns.name;
  const sortButton = (order, arrow, label) =>
    h(
      "button",
      {
        type: "button",
        className: "sort",
        "aria-label": label,
        "aria-pressed": String(groupList.sortOrder === order),
        onclick: () => {
          groupList.sortOrder = order;
          groupList.startIndex = 1;
          refresh();
        },
      },
      arrow,
    );
  const rows = groups.map((group, at) =>
    h(
      "tr",
      {},
      h(
        "td",
        { dataset: { label: T.groupColumns.name } },
        h("a", { href: `#/grupper/${encodeURIComponent(group.id)}` }, group.displayName),
      ),
      h("td", { dataset: { label: T.groupColumns.members } }, String(counts[at])),
      h("td", { dataset: { label: T.groupColumns.permissions } }, permissionNames(group, index).join(", ") || "–"),
    ),
  );
  return [
    h(
      "table",
      { className: "users groups" },
      h("caption", { className: "visually-hidden" }, T.groupsCaption),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h(
            "th",
            { scope: "col", "aria-sort": groupList.sortOrder },
            h("span", {}, title),
            h(
              "span",
              { className: "arrows" },
              sortButton("ascending", "▲", T.sortAscending(title)),
              sortButton("descending", "▼", T.sortDescending(title)),
            ),
          ),
          h("th", { scope: "col" }, T.groupColumns.members),
          h("th", { scope: "col" }, T.groupColumns.permissions),
        ),
      ),
      h("tbody", {}, rows),
    ),
    groups.length ? null : h("p", { className: "empty" }, groupList.term.trim() ? T.noGroups : T.noGroupsAtAll),
    pager(T.groupsCaption, T.showingGroups, first, last, total, groupList, refresh),
  ];
}

/** A loaded group, or null after showing that it is gone. */
async function loadGroup(id, ticket) {
  try {
    return await api.getGroup(id);
  } catch (error) {
    if (error instanceof api.ApiError && error.status === 404) {
      if (ticket === navigation) {
        show(h("a", { className: "back", href: groupListAddress() }, `← ${T.backToGroups}`), h("h1", {}, T.groupNotFound));
      }
      return null;
    }
    throw error;
  }
}

async function showGroup(id) {
  const ticket = navigation;
  const [{ index }, loaded] = await Promise.all([loadOffering(), loadGroup(id, ticket)]);
  if (!loaded || ticket !== navigation) return;
  const { group } = loaded;
  const names = permissionNames(group, index);
  const members = h("div", { id: "members", "aria-busy": "true" });
  const memberList = { startIndex: 1 };
  // A group the administrator made is the administrator's to fill and delete; one from an
  // identity system is changed there (the next sync would undo a change made here).
  const own = !group.externalId;
  const refresh = async () => {
    members.setAttribute("aria-busy", "true");
    try {
      const page = await api.listUsers({
        filter: `groups.value eq ${api.filterString(group.id)}`,
        sortBy: "name.familyName",
        sortOrder: "ascending",
        startIndex: memberList.startIndex,
        count: PAGE_SIZE,
        attributes: ["name.givenName", "name.familyName", `${E}:hsaId`],
      });
      const users = page.Resources || [];
      const total = page.totalResults;
      const first = total === 0 ? 0 : page.startIndex;
      redraw(
        members,
        users.length
          ? h(
              "table",
              { className: "users" },
              h("caption", { className: "visually-hidden" }, T.membersCaption),
              h(
                "thead",
                {},
                h(
                  "tr",
                  {},
                  ["name", "hsaId"].map((key) => h("th", { scope: "col" }, T.detailColumns[key])),
                  own ? h("th", { scope: "col" }, h("span", { className: "visually-hidden" }, T.removeMember)) : null,
                ),
              ),
              h(
                "tbody",
                {},
                users.map((user) => {
                  const cells = userColumns(user);
                  const name = `${cells.givenName} ${cells.familyName}`.trim() || user.id;
                  return h(
                    "tr",
                    {},
                    h(
                      "td",
                      { dataset: { label: T.detailColumns.name } },
                      h("a", { href: `#/anvandare/${encodeURIComponent(user.id)}` }, name),
                    ),
                    h("td", { dataset: { label: T.detailColumns.hsaId } }, cells.hsaId),
                    own
                      ? h(
                          "td",
                          {},
                          h(
                            "button",
                            {
                              type: "button",
                              className: "link",
                              "aria-label": T.removeMemberNamed(name),
                              onclick: () =>
                                confirmDialog(
                                  T.removeMemberHeading,
                                  T.removeMemberQuestion(name, group.displayName),
                                  () =>
                                    api.patchGroup(
                                      group.id,
                                      [{ op: "remove", path: `members[value eq ${api.filterString(user.id)}]` }],
                                      loaded.etag,
                                    ),
                                  () => navigate(location.hash, T.memberRemoved(name)),
                                ),
                            },
                            T.removeMember,
                          ),
                        )
                      : null,
                  );
                }),
              ),
            )
          : h("p", { className: "empty" }, T.noMembers),
        pager(T.membersCaption, T.showingMembers, first, first + users.length - 1, total, memberList, refresh),
      );
      members.setAttribute("aria-busy", "false");
    } catch (error) {
      failed(error);
    }
  };
  show(
    h("a", { className: "back", href: groupListAddress() }, `← ${T.backToGroups}`),
    h("h1", {}, group.displayName),
    group.externalId ? h("p", { className: "notice" }, T.provisionedGroup) : null,
    h(
      "section",
      { "aria-labelledby": "permissions-heading" },
      h("h2", { id: "permissions-heading" }, T.groupPermissions),
      h("p", { className: "hint" }, T.groupPermissionsHint),
      names.length ? h("ul", {}, names.map((name) => h("li", {}, name))) : h("p", {}, T.noGroupPermissions),
      h("a", { className: "button", href: `#/grupper/${encodeURIComponent(group.id)}/behorigheter` }, T.editPermissions),
    ),
    h(
      "section",
      { "aria-labelledby": "members-heading" },
      h("h2", { id: "members-heading" }, T.groupMembers),
      own ? h("button", { type: "button", onclick: () => addMemberDialog(loaded) }, T.addMember) : null,
      members,
    ),
    own
      ? h(
          "div",
          { className: "actions" },
          h(
            "button",
            {
              type: "button",
              className: "danger",
              onclick: () =>
                confirmDialog(
                  T.deleteGroupHeading,
                  T.deleteGroupQuestion(group.displayName),
                  () => api.deleteGroup(group.id, loaded.etag),
                  () => navigate(groupListAddress(), T.groupDeleted(group.displayName)),
                ),
            },
            T.deleteGroup,
          ),
        )
      : null,
    historySection("Groups", group.id),
  );
  await refresh();
}

// --- 4.7 Ta bort användare --------------------------------------------------------------

function deleteDialog(loaded) {
  const name = fullName(loaded.user);
  confirmDialog(
    T.deleteHeading,
    T.deleteQuestion(name, userColumns(loaded.user).hsaId),
    () => api.deleteUser(loaded.user.id, loaded.etag),
    () => navigate(listAddress(), T.userDeleted(name)),
  );
}

/**
 * A question with "OK", which does ``action`` and then ``after``, and "Avbryt", the safe
 * default, which does nothing. Something already gone (404) counts as done.
 */
function confirmDialog(heading, question, action, after) {
  const headingId = "confirm-heading";
  const problem = h("div");
  const dialog = modal(
    headingId,
    h("h2", { id: headingId }, heading),
    h("p", {}, question),
    problem,
    h(
      "div",
      { className: "actions" },
      h(
        "button",
        {
          type: "button",
          className: "danger",
          onclick: async () => {
            try {
              await action();
            } catch (error) {
              if (error instanceof api.ApiError && error.status === 412) {
                return fill(problem, staleNotice(() => dialog.close()));
              }
              if (!(error instanceof api.ApiError && error.status === 404)) {
                return fill(problem, refusalNotice(error));
              }
            }
            dialog.close();
            after();
          },
        },
        T.ok,
      ),
      h("button", { type: "button", className: "secondary", onclick: () => dialog.close() }, T.cancel),
    ),
  );
  // Cancelling is the safe default: focus starts on "Avbryt".
  dialog.querySelector("button.secondary").focus();
}

// --- Grupper: created, emptied and filled by the administrator ------------------------------

function groupDialog() {
  const headingId = "group-dialog-heading";
  const problem = h("div", { className: "dialog-problem" });
  const form = h(
    "form",
    { novalidate: true },
    h("h2", { id: headingId }, T.newGroupHeading),
    field("groupName", ""),
    problem,
    saveOrCancel(() => dialog.close()),
  );
  const dialog = modal(headingId, form);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = form.elements.groupName.value.trim();
    if (showFieldErrors(form, name ? {} : { groupName: T.missingGroupName })) return;
    try {
      const created = await api.createGroup({ schemas: [api.GROUP_SCHEMA], displayName: name });
      dialog.close();
      navigate(`#/grupper/${encodeURIComponent(created.id)}`, T.groupCreated(name));
    } catch (error) {
      if (error instanceof api.ApiError && error.status === 409) {
        return showFieldErrors(form, { groupName: T.takenGroupName });
      }
      fill(problem, refusalNotice(error));
    }
  });
}

/** "Lägg till medlem": find users by name or HSA-id, and add one with one PATCH. */
function addMemberDialog(loaded) {
  const headingId = "member-dialog-heading";
  const results = h("ul", { className: "plain candidates", "aria-live": "polite" });
  const problem = h("div");
  const search = debounce(async (term) => {
    if (!term.trim()) return fill(results);
    const clauses = term
      .trim()
      .split(/\s+/)
      .map((word) => {
        const value = api.filterString(word);
        return `(name.givenName co ${value} or name.familyName co ${value} or ${E}:hsaId co ${value})`;
      });
    try {
      const page = await api.listUsers({
        filter: clauses.join(" and "),
        sortBy: "name.familyName",
        sortOrder: "ascending",
        startIndex: 1,
        count: 10,
        attributes: ["name.givenName", "name.familyName", `${E}:hsaId`],
      });
      const users = page.Resources || [];
      fill(
        results,
        users.length
          ? users.map((user) => {
              const columns = userColumns(user);
              return h(
                "li",
                {},
                h("span", {}, `${columns.givenName} ${columns.familyName} (${columns.hsaId})`),
                " ",
                h(
                  "button",
                  {
                    type: "button",
                    className: "secondary",
                    "aria-label": T.addMemberNamed(`${columns.givenName} ${columns.familyName}`),
                    onclick: async () => {
                      try {
                        await api.patchGroup(
                          loaded.group.id,
                          [{ op: "add", path: "members", value: [{ value: user.id }] }],
                          loaded.etag,
                        );
                      } catch (error) {
                        if (error instanceof api.ApiError && error.status === 412) {
                          return fill(problem, staleNotice(() => dialog.close()));
                        }
                        return fill(problem, refusalNotice(error));
                      }
                      dialog.close();
                      navigate(location.hash, T.memberAdded(fullName(user)));
                    },
                  },
                  T.addMember,
                ),
              );
            })
          : h("li", {}, T.noUsers),
      );
    } catch (error) {
      fill(problem, refusalNotice(error));
    }
  }, SEARCH_PAUSE_MS);
  const dialog = modal(
    headingId,
    h("h2", { id: headingId }, T.addMemberHeading),
    h(
      "div",
      { className: "field" },
      h("label", { for: "member-search" }, T.search),
      h("input", {
        id: "member-search",
        type: "search",
        autocomplete: "off",
        "aria-describedby": "member-search-hint",
        oninput: (event) => search(event.target.value),
      }),
      h("p", { id: "member-search-hint", className: "hint" }, T.memberSearchHint),
    ),
    results,
    problem,
    h(
      "div",
      { className: "actions" },
      h("button", { type: "button", className: "secondary", onclick: () => dialog.close() }, T.cancel),
    ),
  );
}

// --- Exportera: the list as it is filtered, every page, with effective permissions --------

const EXPORT_PAGE = 1000;

/** A CSV cell: quoted, and kept from being read as a formula by a spreadsheet (OWASP). */
function cell(value) {
  let text = String(value ?? "");
  if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return `"${text.replaceAll('"', '""')}"`;
}

async function exportList(index) {
  say(T.exporting);
  const sortAttribute = COLUMNS.find(([key]) => key === list.sortBy)[1];
  const users = [];
  let cursor = "";
  while (cursor !== undefined) {
    const page = await api.listUsers({
      filter: listFilter(),
      sortBy: sortAttribute,
      sortOrder: list.sortOrder,
      cursor,
      count: EXPORT_PAGE,
      attributes: ["name.givenName", "name.familyName", "emails", `${E}:hsaId`, `${E}:effectivePermissions`],
    });
    users.push(...(page.Resources || []));
    cursor = page.nextCursor;
  }
  const lines = [T.exportColumns.map(cell).join(";")];
  for (const user of users) {
    const columns = userColumns(user);
    const held = new Set((user[E]?.effectivePermissions || []).map((permission) => permission.value));
    const permissions = [...index]
      .filter(([value]) => held.has(value))
      .map(([, entry]) => `${entry.service.name}: ${entry.permission.name}`);
    const row = [columns.givenName, columns.familyName, columns.hsaId, columns.email, permissions.join(", ")];
    lines.push(row.map(cell).join(";"));
  }
  // Excel in Swedish reads UTF-8 when it starts with a byte order mark, and ";" separates.
  const blob = new Blob(["\ufeff", lines.join("\r\n"), "\r\n"], { type: "text/csv;charset=utf-8" });
  const link = h("a", { href: URL.createObjectURL(blob), download: T.exportFile(session.organisation.name) });
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  say(T.exported(users.length));
}

// --- Historik: who changed what and when, from the audit log ---------------------------------

const WHEN = new Intl.DateTimeFormat("sv-SE", { dateStyle: "short", timeStyle: "short" });

/** The attributes a change named: a PATCH's paths, or the keys of what was sent. */
function changedAttributes(changes) {
  if (!changes || typeof changes !== "object") return [];
  const names = new Set();
  const add = (key) => {
    // 'emails[type eq "work"].value' → emails; "urn:…:User:hsaId" → hsaId; name.givenName → givenName
    const path = String(key).replace(/\[.*?\]/g, "").split(":").pop().split(".");
    const name = path[0] === "name" && path[1] ? path[1] : path[0];
    names.add(T.attributeNames[name] || name);
  };
  for (const operation of changes.Operations || []) {
    if (operation.path) add(operation.path);
    else if (operation.value && typeof operation.value === "object") Object.keys(operation.value).forEach(add);
  }
  if (!changes.Operations) {
    for (const key of Object.keys(changes)) {
      if (key === "schemas") continue;
      if (key.startsWith("urn:") && changes[key] && typeof changes[key] === "object") Object.keys(changes[key]).forEach(add);
      else add(key);
    }
  }
  return [...names];
}

function historySection(endpoint, id) {
  const body = h("div", { id: "history", "aria-busy": "true" }, h("p", {}, T.loading));
  api
    .history(endpoint, id)
    .then((records) => {
      body.setAttribute("aria-busy", "false");
      if (!records.length) return fill(body, h("p", {}, T.noHistory));
      fill(
        body,
        h(
          "table",
          { className: "users history" },
          h("caption", { className: "visually-hidden" }, T.historyHeading),
          h("thead", {}, h("tr", {}, T.historyColumns.map((title) => h("th", { scope: "col" }, title)))),
          h(
            "tbody",
            {},
            records.map((record) => {
              const action = T.actions[record.action.split(".").pop()] || record.action;
              const attributes = changedAttributes(record.changes);
              return h(
                "tr",
                {},
                h("td", { dataset: { label: T.historyColumns[0] } }, WHEN.format(new Date(record.at))),
                h("td", { dataset: { label: T.historyColumns[1] } }, record.who),
                h(
                  "td",
                  { dataset: { label: T.historyColumns[2] } },
                  attributes.length ? `${action}: ${attributes.join(", ")}` : action,
                ),
              );
            }),
          ),
        ),
      );
    })
    .catch((error) => fill(body, refusalNotice(error)));
  return h(
    "section",
    { "aria-labelledby": "history-heading" },
    h("h2", { id: "history-heading" }, T.historyHeading),
    body,
  );
}

// --- Tillgänglighetsredogörelse (lagen om tillgänglighet till digital offentlig service) ---

const STATEMENT = "#/tillganglighet";

function showStatement() {
  const back = session ? h("a", { className: "back", href: "#/" }, `← ${T.backToUsers}`) : h("a", { className: "back", href: "#/" }, `← ${T.loginHeading}`);
  show(
    back,
    h("h1", {}, T.accessibilityStatement),
    T.statement.map(([heading, ...paragraphs]) => [
      h("h2", {}, heading),
      paragraphs.map((paragraph) => h("p", {}, paragraph)),
    ]),
  );
}

// --- routing ----------------------------------------------------------------------------

/** A new address: the view it names, unless the person chooses to stay with unsaved ticks. */
function onHashChange() {
  if (leaveGuard && leaveGuard.unsaved() && !window.confirm(T.leaveUnsaved)) {
    history.replaceState(null, "", currentHash); // back to where the changes are
    return;
  }
  leaveGuard = null;
  route();
}

async function route() {
  currentHash = location.hash;
  leaveGuard = null;
  if (location.hash === STATEMENT) return showStatement();
  if (!session) return showLogin();
  navigation += 1;
  const [path, search] = location.hash.replace(/^#\/?/, "").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const query = new URLSearchParams(search || "");
  try {
    const [kind, id, section, serviceId] = parts;
    if ((kind === "anvandare" || kind === "grupper") && id && section === "behorigheter") {
      if (serviceId) await showServicePermissions(kind, id, serviceId);
      else await showServices(kind, id);
    } else if (kind === "anvandare" && id) {
      await showUser(id);
    } else if (kind === "grupper" && id) {
      await showGroup(id);
    } else if (kind === "grupper") {
      groupListFromAddress(query);
      await showGroups();
    } else {
      listFromAddress(query);
      await showUsers();
    }
  } catch (error) {
    failed(error);
  }
}

async function start() {
  document.documentElement.lang = T.lang;
  document.title = T.appTitle;
  api.whenLoggedOut(() => {
    offering = null;
    showLogin(T.sessionExpired, { alert: true });
  });
  window.addEventListener("hashchange", onHashChange);
  window.addEventListener("beforeunload", (event) => {
    if (leaveGuard && leaveGuard.unsaved()) event.preventDefault();
  });
  try {
    session = await api.currentSession();
  } catch (error) {
    show(h("h1", {}, T.appTitle));
    return failed(error);
  }
  await route();
}

start();
