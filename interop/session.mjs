// One end-to-end session with a TypeScript SDK release this project did not write:
// initialize, imagine with progress, upscale by name, resources list and read (and an unknown one).
//
//   node session.mjs <sdk package: sdk-2025-03-26 | sdk-2025-06-18 | @modelcontextprotocol/sdk> <url>
//
// Prints one JSON line with what the client saw; exits 1 when any step throws (a result the SDK
// refuses to parse, a JSON-RPC error, ...), so the caller sees the client's own error text.
const [pkg, url] = process.argv.slice(2);
const { Client } = await import(`${pkg}/client/index.js`);
const { StreamableHTTPClientTransport } = await import(`${pkg}/client/streamableHttp.js`);
const { CallToolResultSchema } = await import(`${pkg}/types.js`);

const seen = { sdk: pkg, steps: [] };
const transport = new StreamableHTTPClientTransport(new URL(url));
// Every message the client receives, as it arrives (the SDKs keep the negotiated version private).
let inner;
Object.defineProperty(transport, "onmessage", {
  get: () => inner && ((message, ...extra) => {
    if (message.result?.protocolVersion) seen.protocolVersion = message.result.protocolVersion;
    if (message.method) (seen.notifications ??= []).push(message.method);
    inner(message, ...extra);
  }),
  set: (fn) => { inner = fn; },
});
const client = new Client({ name: `interop-${pkg}`, version: "1.0.0" });
const step = (name, detail) => seen.steps.push({ name, ...detail });
const timeout = { timeout: 60_000 };

try {
  await client.connect(transport);
  seen.capabilities = client.getServerCapabilities();
  step("initialize");

  const progress = [];
  const grid = await client.callTool(
    { name: "imagine", arguments: { prompt: "a lighthouse in a storm" } },
    CallToolResultSchema, { ...timeout, onprogress: (p) => progress.push(p.progress) });
  const name = grid.structuredContent?.name;
  step("imagine", { isError: !!grid.isError, image: name, content: grid.content.map((c) => c.type), progress });
  if (grid.isError || !name) throw new Error(`imagine failed: ${JSON.stringify(grid.content)}`);

  const upscaled = await client.callTool(
    { name: "apply_action", arguments: { image: name, action: "upscale2" } }, CallToolResultSchema, timeout);
  const child = upscaled.structuredContent?.name;
  step("upscale", { isError: !!upscaled.isError, image: child, content: upscaled.content.map((c) => c.type) });
  if (upscaled.isError || !child) throw new Error(`upscale failed: ${JSON.stringify(upscaled.content)}`);

  const { resources } = await client.listResources();
  step("resources/list", { names: resources.map((r) => r.name) });
  const uri = resources.find((r) => r.name === child)?.uri;
  if (!uri) throw new Error(`${child} is not in resources/list`);
  const { contents } = await client.readResource({ uri });
  step("resources/read", { uri, mimeType: contents[0].mimeType, bytes: Buffer.from(contents[0].blob ?? "", "base64").length });
  // An unknown resource: a JSON-RPC error, whose code each revision names.
  const unknown = await client.readResource({ uri: "mj://images/no-such-image" }).then(
    () => ({ code: null }), (err) => ({ code: err?.code ?? null, message: String(err?.message ?? err).slice(0, 200) }));
  step("resources/read unknown", unknown);
  seen.ok = true;
} catch (err) {
  seen.ok = false;
  seen.error = String(err?.stack ?? err).slice(0, 2000);
} finally {
  await client.close().catch(() => {});
}
console.log(JSON.stringify(seen));
process.exit(seen.ok ? 0 : 1);
