// The client's only ways to the server: the SCIM API, /catalogue and /session.

export const USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User";
export const GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group";
export const PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
export const ESERVICES = "urn:ietf:params:scim:schemas:extension:behorigheter:2.0:User";
export const ESERVICES_GROUP = "urn:ietf:params:scim:schemas:extension:behorigheter:2.0:Group";
const SCIM_TYPE = "application/scim+json";
const CHANGES = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/** A refused or failed request: the SCIM error (RFC 7644 §3.12) the server answered with. */
export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.detail) || `HTTP ${status}`);
    this.status = status;
    this.scimType = (body && body.scimType) || null;
    this.detail = (body && body.detail) || "";
    // Swedish text for the person, where the server has one (/session).
    this.userMessage = (body && body.message) || null;
  }
}

export class NetworkError extends Error {}

let csrfToken = null;
let scimBase = "/scim/v2";
let onLoggedOut = () => {};

/** Called whenever the server says the session is gone, so the client shows the login. */
export function whenLoggedOut(handler) {
  onLoggedOut = handler;
}

async function send(method, url, { body, etag, signal } = {}) {
  const headers = { Accept: `${SCIM_TYPE}, application/json` };
  if (body !== undefined) headers["Content-Type"] = SCIM_TYPE;
  if (CHANGES.has(method) && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  if (etag) headers["If-Match"] = etag;
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
      signal,
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new NetworkError(error.message);
  }
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, data);
  return { data, etag: response.headers.get("ETag") };
}

async function guarded(method, url, options) {
  try {
    return await send(method, url, options);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      csrfToken = null;
      onLoggedOut();
    }
    throw error;
  }
}

function scim(method, path, options) {
  return guarded(method, scimBase + path, options);
}

// --- /session ---------------------------------------------------------------

function remember(session) {
  csrfToken = session.csrfToken;
  if (session.scimBasePath) scimBase = session.scimBasePath;
  return session;
}

/** Who is logged in, or null. */
export async function currentSession() {
  try {
    return remember((await send("GET", "/session")).data);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return null;
    throw error;
  }
}

export async function logInWithCertificate() {
  return remember((await send("POST", "/session", { body: {} })).data);
}

/** The demo administrators, or null when the server is not in demo mode. */
export async function demoAdministrators() {
  try {
    return (await send("GET", "/session/demo")).data;
  } catch (error) {
    if (error instanceof ApiError && (error.status === 404 || error.status === 403)) return null;
    throw error;
  }
}

export async function logInAsDemo(hsaId) {
  return remember((await send("POST", "/session/demo", { body: { hsaId } })).data);
}

export async function logOut() {
  try {
    await send("DELETE", "/session");
  } finally {
    csrfToken = null;
  }
}

// --- the SCIM API and the catalogue ----------------------------------------------

export async function catalogue() {
  return (await guarded("GET", "/catalogue")).data;
}

/** Who changed a user or a group, what and when (newest first), from the audit log. */
export async function history(endpoint, id) {
  return (await guarded("GET", `/history/${endpoint}/${encodeURIComponent(id)}`)).data.Resources;
}

export async function listUsers({ filter, sortBy, sortOrder, startIndex, cursor, count, attributes }, signal) {
  const query = new URLSearchParams();
  if (filter) query.set("filter", filter);
  if (sortBy) query.set("sortBy", sortBy);
  if (sortOrder) query.set("sortOrder", sortOrder);
  // RFC 9865: a cursor ("" to start) pages through a list however long; else an index.
  if (cursor !== undefined) query.set("cursor", cursor);
  else query.set("startIndex", String(startIndex));
  query.set("count", String(count));
  if (attributes) query.set("attributes", attributes.join(","));
  return (await scim("GET", `/Users?${query}`, { signal })).data;
}

/** A user with everything the user view shows, and its ETag for If-Match. */
export async function getUser(id) {
  const attributes = [
    "userName",
    "name",
    "displayName",
    "emails",
    "groups",
    `${ESERVICES}:hsaId`,
    `${ESERVICES}:permissions`,
    `${ESERVICES}:effectivePermissions`,
  ];
  const query = new URLSearchParams({ attributes: attributes.join(",") });
  const { data, etag } = await scim("GET", `/Users/${encodeURIComponent(id)}?${query}`);
  return { user: data, etag: etag || (data.meta && data.meta.version) };
}

export async function createUser(body) {
  return (await scim("POST", "/Users", { body })).data;
}

/** One PATCH (RFC 7644 §3.5.2), refused with 412 if the user changed since ``etag``. */
export async function patchUser(id, operations, etag) {
  const body = { schemas: [PATCH_SCHEMA], Operations: operations };
  return (await scim("PATCH", `/Users/${encodeURIComponent(id)}`, { body, etag })).data;
}

export async function deleteUser(id, etag) {
  await scim("DELETE", `/Users/${encodeURIComponent(id)}`, { etag });
}

/** A page of the organisation's groups, without their members (a group may have 100,000). */
export async function listGroups({ filter, sortOrder, startIndex, count }, signal) {
  const query = new URLSearchParams({
    sortBy: "displayName",
    sortOrder,
    startIndex: String(startIndex),
    count: String(count),
    attributes: ["displayName", "externalId", `${ESERVICES_GROUP}:permissions`].join(","),
  });
  if (filter) query.set("filter", filter);
  return (await scim("GET", `/Groups?${query}`, { signal })).data;
}

/** How many members a group has: a count, not a list. */
export async function countMembers(groupId, signal) {
  const filter = `groups.value eq ${filterString(groupId)}`;
  const query = new URLSearchParams({ filter, count: "0" });
  return (await scim("GET", `/Users?${query}`, { signal })).data.totalResults;
}

/** A group without its members, and its ETag for If-Match. */
export async function getGroup(id) {
  const attributes = ["displayName", "externalId", `${ESERVICES_GROUP}:permissions`];
  const query = new URLSearchParams({ attributes: attributes.join(",") });
  const { data, etag } = await scim("GET", `/Groups/${encodeURIComponent(id)}?${query}`);
  return { group: data, etag: etag || (data.meta && data.meta.version) };
}

export async function createGroup(body) {
  return (await scim("POST", "/Groups", { body })).data;
}

export async function deleteGroup(id, etag) {
  await scim("DELETE", `/Groups/${encodeURIComponent(id)}`, { etag });
}

/** One PATCH of a group, refused with 412 if it changed since ``etag``. */
export async function patchGroup(id, operations, etag) {
  const body = { schemas: [PATCH_SCHEMA], Operations: operations };
  return (await scim("PATCH", `/Groups/${encodeURIComponent(id)}`, { body, etag })).data;
}

/** A string for a SCIM filter (RFC 7644 §3.4.2.2): JSON string syntax. */
export function filterString(value) {
  return JSON.stringify(value);
}
