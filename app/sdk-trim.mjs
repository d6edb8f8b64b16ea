// What the view brings of the App SDK (@modelcontextprotocol/ext-apps), the MCP client it extends and
// zod, and what it leaves out. Rollup keeps whatever it cannot prove unused; these plugins tell it what
// it cannot see for itself. Figures (bytes, first paint) for each step are in app/README.md.
//
// Every edit of the SDK's own text is exact and counted: if an SDK upgrade moves the text, the build
// fails and names the edit, instead of shipping a view that silently carries (or lacks) something.
// checkBundle() then verifies, on every build, the facts each edit relies on.

import { readFileSync } from "node:fs";

const SDK = /\/node_modules\/@modelcontextprotocol\/(core|client|ext-apps)\//;
const CLIENT = "/node_modules/@modelcontextprotocol/client/dist/";
const HERE = "app/sdk-trim.mjs";

// zod registers only its English messages; the other 40-odd locales are reachable solely through
// `z.locales.*`, which nothing here calls, yet the namespace object keeps them all (250 KB).
export function zodEnglishOnly() {
  return {
    name: "zod-english-only",
    load(id) {
      return id.endsWith("/zod/v4/locales/index.js") ? 'export { default as en } from "./en.js";' : null;
    },
  };
}

// Building a zod schema only allocates, but Rollup cannot see that through zod's code, so it kept every
// schema the SDK defines: all ~170 of the MCP spec's, the OAuth ones, every App message's. This marks
// each top-level definition rooted at zod (or at another schema) as pure: the ones nothing reads go.
export function schemaDefinitionsArePure() {
  return {
    name: "schema-definitions-are-pure",
    transform(code, id) {
      if (!SDK.test(id)) return null;
      const ast = this.parse(code);
      // The names a schema expression can start from: zod's exports, the core package's schemas.
      const roots = new Set();
      for (const statement of ast.body) {
        if (statement.type !== "ImportDeclaration") continue;
        const from = statement.source.value;
        if (from === "zod" || from.startsWith("zod/") || from.startsWith("@modelcontextprotocol/core")) {
          for (const specifier of statement.specifiers) roots.add(specifier.local.name);
        }
      }
      const calls = [];
      for (let statement of ast.body) {
        if (statement.type === "ExportNamedDeclaration" && statement.declaration) statement = statement.declaration;
        if (statement.type !== "VariableDeclaration") continue;
        for (const declarator of statement.declarations) {
          if (declarator.init?.type !== "CallExpression" || !roots.has(rootName(declarator.init))) continue;
          collectCalls(declarator.init, calls);
          if (declarator.id.type === "Identifier") roots.add(declarator.id.name);
        }
      }
      if (calls.length === 0) return null;
      let out = code;
      for (const at of [...new Set(calls)].sort((a, b) => b - a)) out = `${out.slice(0, at)}/* @__PURE__ */ ${out.slice(at)}`;
      return { code: out, map: null };
    },
  };
}

/** `z.object({...}).extend({...}).describe("...")` -> "z". */
function rootName(node) {
  for (;;) {
    if (node.type === "CallExpression") node = node.callee;
    else if (node.type === "MemberExpression") node = node.object;
    else if (node.type === "ChainExpression") node = node.expression;
    else return node.type === "Identifier" ? node.name : null;
  }
}

/** Where each call of an expression starts, not looking into functions (they do not run at definition). */
function collectCalls(node, calls) {
  if (!node || typeof node.type !== "string") return;
  if (node.type === "ArrowFunctionExpression" || node.type === "FunctionExpression" || node.type === "ClassExpression") return;
  if (node.type === "CallExpression" || node.type === "NewExpression") calls.push(node.start);
  for (const key of Object.keys(node)) {
    const value = node[key];
    if (Array.isArray(value)) for (const item of value) collectCalls(item, calls);
    else if (value && typeof value.type === "string") collectCalls(value, calls);
  }
}

// zod's JSON Schema generation: the view registers no App tool and converts no schema, yet zod's
// every schema reaches it through `toJSONSchema()` and `~standard.jsonSchema`. zod keeps it in two
// modules of its own, so both are replaced by stubs with the same exports that throw if ever called.
const JSON_SCHEMA_MODULES = /\/zod\/v4\/core\/(to-json-schema|json-schema-processors)\.js$/;
// Called when a schema's `~standard` is read (every validation): they must return the method, not throw.
const METHOD_FACTORIES = ["createToJSONSchemaMethod", "createStandardJSONSchemaMethod"];

export function zodWithoutJsonSchema() {
  const stubbed = new Set();
  return {
    name: "zod-without-json-schema",
    load(id) {
      if (!JSON_SCHEMA_MODULES.test(id)) return null;
      const lines = [`function leftOut() { throw new Error("zod's JSON Schema generation is not in this view (${HERE})"); }`];
      for (const [name, kind] of exportsOf(this.parse(readFileSync(id, "utf8")))) {
        stubbed.add(name);
        if (METHOD_FACTORIES.includes(name)) lines.push(`export const ${name} = () => leftOut;`);
        else if (kind === "object") lines.push(`export const ${name} = {};`);
        else lines.push(`export const ${name} = leftOut;`);
      }
      return lines.join("\n");
    },
    buildEnd(error) {
      const missing = METHOD_FACTORIES.filter((name) => !stubbed.has(name));
      if (!error && missing.length) this.error(`zod changed: ${missing.join(", ")} no longer stubbed (${HERE})`);
    },
  };
}

/** [name, "object" | "function"] for each export of a module. */
function exportsOf(ast) {
  const out = [];
  for (const statement of ast.body) {
    if (statement.type !== "ExportNamedDeclaration") continue;
    const declaration = statement.declaration;
    if (declaration?.type === "FunctionDeclaration") out.push([declaration.id.name, "function"]);
    else if (declaration?.type === "VariableDeclaration") {
      for (const d of declaration.declarations) out.push([d.id.name, d.init?.type === "ObjectExpression" ? "object" : "function"]);
    }
    for (const specifier of statement.specifiers ?? []) out.push([specifier.exported.name, "function"]);
  }
  return out;
}

// Parts of the MCP client's one bundled chunk the view never runs, which Rollup keeps because of a
// top-level statement it must assume has effects. Each `find` must occur exactly once.
const CLIENT_EDITS = [
  {
    // `specTypeSchemas` / `isSpecType`: public validators for every spec type, filled by two loops at
    // load (Rollup keeps every loop), which kept all ~170 spec schemas and the OAuth ones. The view
    // reads neither (checkBundle verifies it).
    name: "spec-type validators",
    find: "for (const key of SPEC_SCHEMA_KEYS) register(key, schemas_exports[key]);\n" +
      "for (const [key, schema] of Object.entries(authSchemas)) register(key, schema);\n",
    replace: "",
  },
  {
    // The server's multi-round-trip result builder (`inputRequired.elicit(...)`): it carries the
    // elicitation schema converter, which pulls in zod's JSON Schema generation.
    name: "inputRequired builder",
    find: "const inputRequired = Object.assign(buildInputRequired, {",
    replace: "const inputRequired = /* @__PURE__ */ Object.assign(buildInputRequired, {",
  },
  {
    // The 2026-07-28 wire schemas. A Protocol's era is the version its Client or Server negotiated;
    // the App extends Protocol directly and negotiates none, so every message it sends or receives goes
    // through the 2025-11-25 codec (whatever era the host speaks with the server: the host relays
    // results, and the 2025 schemas are what the App has always validated them with). The 2026 codec
    // stays (its method tables gate spec methods); only its schema set, never built here, goes.
    // checkBundle verifies that nothing in the view can set the negotiated version.
    name: "2026-07-28 wire schemas",
    find: "function buildSchemas2026() {\n\treturn memo ??= build();\n}",
    replace: "function buildSchemas2026() {\n\tthrow new Error(\"the 2026-07-28 wire schemas are not in this view: the App speaks the 2025-11-25 codec (" + HERE + ")\");\n}",
  },
];

export function unusedClientParts() {
  const applied = new Map();
  return {
    name: "unused-client-parts",
    transform(code, id) {
      if (!id.includes(CLIENT)) return null;
      let out = code;
      for (const edit of CLIENT_EDITS) {
        const count = out.split(edit.find).length - 1;
        if (count === 0) continue;
        applied.set(edit.name, (applied.get(edit.name) ?? 0) + count);
        out = out.replace(edit.find, () => edit.replace);
      }
      return out === code ? null : { code: out, map: null };
    },
    buildEnd(error) {
      if (error) return;
      const wrong = CLIENT_EDITS.filter((edit) => applied.get(edit.name) !== 1).map((edit) => edit.name);
      if (wrong.length) this.error(`the MCP client changed: ${wrong.join(", ")} no longer applies exactly once; re-measure what the view brings (${HERE})`);
    },
  };
}

/** The plugins of the view's build, in order (before node-resolve). */
export function trimPlugins() {
  return [zodEnglishOnly(), zodWithoutJsonSchema(), schemaDefinitionsArePure(), unusedClientParts()];
}

// Facts the edits rely on, checked in the bundle (before minifying, while names are readable).
const MUST_NOT_APPEAR = [
  // Only a Client or Server writes the negotiated version; if the view could, the 2026 codec could be chosen.
  [/_negotiatedProtocolVersion\s*=[^=]|writeNegotiatedProtocolVersion/, "something in the view can set the negotiated protocol version (the 2026-07-28 schemas are left out)"],
  [/\b_specTypeSchemas\b|\b_isSpecType\b/, "something in the view reads specTypeSchemas / isSpecType (their filling is left out)"],
  [/\bbuildInputRequired\b/, "something in the view uses buildInputRequired without inputRequired's methods"],
];

export function checkBundle(code) {
  const problems = MUST_NOT_APPEAR.filter(([pattern]) => pattern.test(code)).map(([, why]) => why);
  if (problems.length) throw new Error(`${HERE}: ${problems.join("; ")}`);
}
