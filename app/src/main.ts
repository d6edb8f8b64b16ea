// The mj-mcp MCP App: connects to the host with the official App SDK, follows its theme and size,
// hands tool results to the Viewer, and tells the model what the person did.

import "./jitless";
import {
  App,
  applyDocumentTheme,
  applyHostFonts,
  applyHostStyleVariables,
  type McpUiHostContext,
} from "@modelcontextprotocol/ext-apps";
import { loadCatalogue } from "./catalogue";
import type { ToolResult } from "./types";
import { Viewer } from "./viewer";

const CHOICES_KEPT = 5; // a context update replaces the previous one: it carries the last few choices

const app = new App({ name: "mj-mcp", version: "0.2.0" }, { availableDisplayModes: ["inline"] }, { autoResize: true });
const root = document.getElementById("app")!;
const choices: string[] = [];

function tell(line: string): void {
  choices.push(line);
  if (choices.length > CHOICES_KEPT) choices.shift();
  const caps = app.getHostCapabilities();
  const text = `In the mj-mcp image view, ${choices.join("; then ")}.`;
  // A context update reaches the model on its next turn without starting one; a host without it
  // gets a message instead, so the conversation still knows what the person chose.
  const sent = caps?.updateModelContext
    ? app.updateModelContext({ content: [{ type: "text", text }], structuredContent: { choices: [...choices] } })
    : caps?.message
      ? app.sendMessage({ role: "user", content: [{ type: "text", text: `In the image view, ${line}.` }] })
      : null;
  sent?.catch((err: unknown) => console.warn("[mj-mcp] the host refused the update:", err));
}

async function download(uri: string | null | undefined, name: string, mimeType: string): Promise<boolean> {
  if (!app.getHostCapabilities()?.downloadFile || !uri) return false;
  // A link, not the bytes: the host reads the resource (the full image, a clip) itself.
  const result = await app.downloadFile({ contents: [{ type: "resource_link", uri, name, mimeType }] });
  return !result.isError;
}

/** A clip, read through the host from the server (never from a CDN the CSP blocks), as a data: URL: the
 * spec's default CSP allows data: media (`media-src 'self' data:`), not blob:. */
async function media(uri: string): Promise<string | null> {
  const content = (await app.readServerResource({ uri })).contents[0] as { blob?: string; mimeType?: string } | undefined;
  const type = content?.mimeType ?? "";
  return content?.blob && /^video\/(mp4|webm)$/.test(type) ? `data:${type};base64,${content.blob}` : null;
}

const viewer = new Viewer(root, {
  catalogue: loadCatalogue(document),
  call: (name, args) => app.callServerTool({ name, arguments: args }) as Promise<ToolResult>,
  tell,
  download,
  media,
});

function follow(ctx: McpUiHostContext | undefined): void {
  if (!ctx) return;
  if (ctx.theme) applyDocumentTheme(ctx.theme);
  if (ctx.styles?.variables) applyHostStyleVariables(ctx.styles.variables);
  if (ctx.styles?.css?.fonts) applyHostFonts(ctx.styles.css.fonts);
  const box = ctx.containerDimensions as { height?: number; maxHeight?: number } | undefined;
  const tall = box?.height ?? box?.maxHeight;
  // Keep the buttons in sight: the picture gets what the container leaves after them.
  if (tall) document.documentElement.style.setProperty("--stage-max-h", `${Math.max(160, tall - 190)}px`);
}

// Handlers first: the host may send the input and the result right after the handshake.
app.addEventListener("toolinput", (params) => viewer.input(app.getHostContext()?.toolInfo?.tool.name, params.arguments ?? {}));
app.addEventListener("toolresult", (result) => viewer.result(result as ToolResult));
app.addEventListener("toolcancelled", (params) => viewer.cancelled(params.reason ?? ""));
app.addEventListener("hostcontextchanged", (ctx) => follow(ctx));
app.onteardown = async () => {
  viewer.stop();
  return {};
};

app.connect().then(
  () => follow(app.getHostContext()),
  (err: unknown) => {
    root.textContent = `Cannot connect to the host: ${err instanceof Error ? err.message : String(err)}`;
  },
);
