// The TypeScript SDK's list-changed auto-refresh: a client that trusts the server's declared
// `resources.listChanged` re-lists resources when told the list changed. After one imagine the
// refreshed list must hold the new image.
//
//   node list_changed.mjs <url>
//
// Prints one JSON line; exits 1 when no refresh brought the image within the wait.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url] = process.argv.slice(2);
const refreshes = [];
let resolveSeen;
const seen = new Promise((resolve) => { resolveSeen = resolve; });
const client = new Client({ name: "interop-list-changed", version: "1.0.0" }, {
  listChanged: {
    resources: {
      debounceMs: 0,
      onChanged: (error, resources) => {
        refreshes.push(error ? `error: ${error.message}` : resources.map((r) => r.name));
        if (resources?.some((r) => r.name === "harbour-dusk")) resolveSeen();
      },
    },
  },
});
const out = {};
try {
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  out.listChanged = client.getServerCapabilities()?.resources?.listChanged ?? false;
  const r = await client.callTool({ name: "imagine", arguments: { prompt: "a harbour at dusk" } });
  out.imagine = r.structuredContent?.name;
  const waited = await Promise.race([seen.then(() => true), new Promise((r) => setTimeout(() => r(false), 10_000))]);
  out.ok = waited;
} catch (err) {
  out.ok = false;
  out.error = String(err?.stack ?? err).slice(0, 2000);
} finally {
  out.refreshes = refreshes;
  await client.close().catch(() => {});
}
console.log(JSON.stringify(out));
process.exit(out.ok ? 0 : 1);
