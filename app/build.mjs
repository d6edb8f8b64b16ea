// Builds the view into ONE self-contained HTML file, ../mj_mcp/ui/view.html (JS and CSS inlined, no
// network at run time), and the browser tests' host page into build/host.html.
//
//   node build.mjs            build both
//   node build.mjs --check    build the view in memory; exit 1 if the committed file differs
//   node build.mjs --host     build the host page only (what the tests need; the view is committed)
//
// Reproducible: the same sources and lockfile give the same bytes (no timestamps, no absolute paths,
// deterministic bundler and minifier), so CI can rebuild and compare.
//
// Why Rollup and not esbuild alone: the App SDK's dependencies ship without `sideEffects` hints and
// reach zod through its `z` namespace object; Rollup tree-shakes those (228 KB minified for the bare
// SDK), esbuild keeps nearly all of zod and the client (592 KB). sdk-trim.mjs then tells Rollup what it
// cannot see (which schemas the view never builds; what it never calls): 159 KB for the SDK as the view
// uses it. esbuild strips the TypeScript and minifies the bundle.

import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { rollup } from "@rollup/wasm-node"; // the WebAssembly build: no native package per platform to lock
import resolve from "@rollup/plugin-node-resolve";
import { transform } from "esbuild";
import { checkBundle, trimPlugins, zodEnglishOnly } from "./sdk-trim.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const VIEW_OUT = join(here, "..", "mj_mcp", "ui", "view.html");
const HOST_OUT = join(here, "build", "host.html");
const BUDGET = 200 * 1024;

const typescript = {
  name: "typescript",
  async transform(code, id) {
    if (!id.endsWith(".ts")) return null;
    const out = await transform(code, { loader: "ts", target: "es2022", sourcefile: id });
    return { code: out.code, map: null };
  },
};
const nodeResolve = () => resolve({ browser: true, extensions: [".ts", ".mjs", ".js"] });

// The view brings only what it uses of the SDK (sdk-trim.mjs); the tests' host page is built from the
// SDK as published, as a real host would be.
async function bundle(entry, { minified, trimmed }) {
  const build = await rollup({
    input: join(here, entry),
    plugins: [typescript, ...(trimmed ? trimPlugins() : [zodEnglishOnly()]), nodeResolve()],
    // The SDK's modules run nothing at import time that a view needs; this lets Rollup drop the
    // server, transport and auth code the view never reaches.
    treeshake: { moduleSideEffects: (id) => !id.includes("/node_modules/"), propertyReadSideEffects: false },
    onwarn(warning, warn) {
      if (warning.code === "CIRCULAR_DEPENDENCY" || warning.code === "INVALID_ANNOTATION") return;
      warn(warning);
    },
  });
  const { output } = await build.generate({ format: "iife", inlineDynamicImports: true });
  await build.close();
  const code = output[0].code;
  if (trimmed) checkBundle(code);
  if (!minified) return code;
  // esbuild's minifier: within 0.1% of terser's size here, in 0.1 s instead of 4 s.
  const out = await transform(code, { minify: true, target: "es2022", legalComments: "none" });
  return out.code;
}

async function css(file) {
  const out = await transform(readFileSync(join(here, file), "utf8"), { loader: "css", minify: true });
  return out.code.trim();
}

// Inline text must not close its element early: "</script" inside JS becomes "<\/script" (the same
// string to JS), "</style" cannot occur in the CSS we write.
function page(template, { style, script }) {
  const html = readFileSync(join(here, template), "utf8");
  const parts = html.split("/*STYLE*/");
  if (parts.length !== 2) throw new Error(`${template}: one /*STYLE*/ slot expected`);
  const [head, rest] = parts;
  const tail = rest.split("/*SCRIPT*/");
  if (tail.length !== 2) throw new Error(`${template}: one /*SCRIPT*/ slot expected`);
  return head + style + tail[0] + script.replace(/<\/(script)/gi, "<\\/$1") + tail[1];
}

async function buildView() {
  const script = await bundle("src/main.ts", { minified: true, trimmed: true });
  return page("src/view.html", { style: await css("src/style.css"), script });
}

async function buildHost() {
  const script = await bundle("test-host/host.ts", { minified: false, trimmed: false });
  return page("test-host/host.html", { style: "", script });
}

const check = process.argv.includes("--check");
if (process.argv.includes("--host")) {
  mkdirSync(dirname(HOST_OUT), { recursive: true });
  writeFileSync(HOST_OUT, await buildHost());
  console.log("build/host.html written");
  process.exit(0);
}
const view = await buildView();
const size = Buffer.byteLength(view);
if (check) {
  let committed = "";
  try {
    committed = readFileSync(VIEW_OUT, "utf8");
  } catch {}
  if (committed !== view) {
    console.error(`mj_mcp/ui/view.html differs from the build of app/ (run: cd app && npm run build)`);
    process.exit(1);
  }
  console.log(`view.html matches the build (${size} bytes)`);
} else {
  writeFileSync(VIEW_OUT, view);
  mkdirSync(dirname(HOST_OUT), { recursive: true });
  writeFileSync(HOST_OUT, await buildHost());
  console.log(`mj_mcp/ui/view.html: ${size} bytes (budget ${BUDGET}); build/host.html written`);
}
